"""Near-real-time LMS ingestion: an Airflow asset watcher on the LRS, and what changes for the runs it
triggers.

`LmsStatementsStoredTrigger` runs in the triggerer as the watcher of the asset `LMS_STATEMENTS_STORED`
(`turnover_signals.assets`). Every `lms.watch_poll_seconds` it reads what was last loaded (the xAPI
watermark in `audit.extract_watermark`, source ``xapi:<conn_id>``, through the loader's warehouse login)
and asks the LRS for the newest statement stored after it (``GET statements?since=<watermark>&limit=1
&ascending=false``, the `lms_api` connection's Basic or OAuth2 auth, through `XapiClient`). When there
is one, it fires an asset event and `lms_api_ingest` runs. Blocking work (connection and Variable
look-ups, HTTP, PostgreSQL) runs in a worker thread (`asyncio.to_thread`): the triggerer's event loop
serves every other trigger meanwhile.

Why the watermark is the cursor, not something the trigger remembers: it is what the warehouse holds.
Whatever happened to an event (fired while the DAG was paused and dropped, fired while a run was active
and queued, or never fired because the triggerer was down), statements stay "after the watermark" until
a run loads them, so the watcher keeps seeing them. To avoid one event per poll while a run is loading,
it announces the same newest statement once; if that statement is still not loaded after
`lms.watch_refire_minutes` (a run failed, or an event was lost), it announces it again.

Kwargs (stored in the metadata DB) hold at most connection ids and a poll interval, never a secret;
the log names the LRS by URL without user info and the warehouse by connection id.

Runs the watcher triggers (run type ``asset_triggered``) load `core.lms_activity` like any other run,
but re-read only `lms.watch_since_overlap_minutes` before the watermark (the hourly run keeps the
`lms.since_overlap_days` safety margin) and do not announce `LMS_ACTIVITY`: identity and features are
not rebuilt on every statement; the hourly run announces what the event runs loaded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from turnover_signals.config import ConfigError

log = logging.getLogger(__name__)

ASSET_TRIGGERED = "asset_triggered"
DEFAULT_POLL_SECONDS = 60.0
DEFAULT_REFIRE_MINUTES = 5.0
DEFAULT_SINCE_OVERLAP_MINUTES = 10.0
# A probe that fails waits longer each time, up to this many poll intervals: an LRS that is down for
# hours is asked a few times an hour, not every minute, and the watcher never stops.
MAX_BACKOFF_POLLS = 10
# The watcher asks once or twice and reports; the next poll is the retry.
PROBE_ATTEMPTS = 2
PROBE_TIMEOUT_SECONDS = 30.0


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchSettings:
    """What one poll needs, from the configuration (file + Variable) and the trigger's kwargs."""

    lrs_conn_id: str
    warehouse_conn_id: str
    poll_seconds: float
    refire_after: timedelta

    @property
    def source(self) -> str:
        """The watermark's source key, as the extraction writes it (`lms.statements.StatementExtraction`)."""
        return watermark_source(self.lrs_conn_id)


def watermark_source(lrs_conn_id: str) -> str:
    return f"xapi:{lrs_conn_id}"


def _positive_number(lms: Mapping[str, Any], key: str, default: float) -> float:
    value = lms.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0:
        raise ConfigError(
            f"configuration lms.{key}",
            f"{value!r} is not a positive number",
            f"set lms.{key} in the turnover_signals Variable to a number above 0 (default {default:g})",
            "configuration",
        )
    return number


def poll_seconds(config: Mapping[str, Any]) -> float:
    """`lms.watch_poll_seconds`: how often the watcher asks the LRS (default 60)."""
    return _positive_number(config["lms"], "watch_poll_seconds", DEFAULT_POLL_SECONDS)


def refire_after(config: Mapping[str, Any]) -> timedelta:
    """`lms.watch_refire_minutes`: when statements announced but still not loaded are announced again."""
    return timedelta(minutes=_positive_number(config["lms"], "watch_refire_minutes", DEFAULT_REFIRE_MINUTES))


def event_run_overlap(config: Mapping[str, Any]) -> timedelta:
    """`lms.watch_since_overlap_minutes`: how far before the watermark a watcher-triggered run re-reads."""
    return timedelta(
        minutes=_positive_number(config["lms"], "watch_since_overlap_minutes", DEFAULT_SINCE_OVERLAP_MINUTES)
    )


def watch_settings(
    config: Mapping[str, Any],
    lrs_conn_id: str | None = None,
    warehouse_conn_id: str | None = None,
    poll_seconds_override: float | None = None,
) -> WatchSettings:
    """The settings of one poll: explicit kwargs first, else the configuration.

    The warehouse is read as the loader (`connections.warehouse_loader`; refused when it is not defined,
    unless `security.allow_owner_fallback`, as for every loader task): it owns the watermark.
    """
    from turnover_signals.airflow_tasks import config_for_stage

    if warehouse_conn_id is None:
        warehouse_conn_id = config_for_stage(config, "loader")["connections"]["warehouse"]
    return WatchSettings(
        lrs_conn_id=lrs_conn_id or config["connections"]["lms_api"],
        warehouse_conn_id=warehouse_conn_id,
        poll_seconds=poll_seconds_override or poll_seconds(config),
        refire_after=refire_after(config),
    )


# -- one poll ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """What one poll saw: the watermark, and the newest statement stored after it (None: nothing new)."""

    loaded_through: datetime | None
    newest_stored: datetime | None

    @property
    def has_new_statements(self) -> bool:
        return self.newest_stored is not None


def read_loaded_through(warehouse_conn_id: str, source: str, dsn: str | None = None) -> datetime | None:
    """The xAPI watermark of `source` (None before the first load)."""
    from turnover_signals.lms.statements import read_watermark
    from turnover_signals.warehouse import warehouse_connection

    with warehouse_connection(warehouse_conn_id, dsn) as conn:
        return read_watermark(conn, source)


def newest_stored_after(client: Any, since: datetime | None) -> datetime | None:
    """The `stored` time of the newest statement stored after `since` (None when there is none).

    One request with limit=1, newest first. An LRS that ignores `ascending` answers with the oldest new
    statement instead: still proof that something is new, which is all the watcher needs.
    """
    from turnover_signals.sources.xapi import format_xapi_timestamp, statement_stored_at

    params: dict[str, Any] = {"limit": 1, "ascending": "false"}
    if since is not None:
        params["since"] = format_xapi_timestamp(since)
    document = client.get_json(
        client.statements_url, "newest statement", params=params, decode=client.decode_document
    ).document
    statements = document.get("statements") if isinstance(document, dict) else None
    if not isinstance(statements, list) or not statements:
        return None
    return statement_stored_at(statements[0])


def probe_lrs(settings: WatchSettings, config: Mapping[str, Any], dsn: str | None = None) -> Probe:
    """One poll (blocking: run it in a thread): the watermark, then the newest statement after it."""
    from turnover_signals.lms.statements import retry_policy
    from turnover_signals.sources.http_base import RetryPolicy
    from turnover_signals.sources.xapi import XapiClient

    loaded_through = read_loaded_through(settings.warehouse_conn_id, settings.source, dsn)
    base = retry_policy(config["lms"])
    retry = RetryPolicy(
        attempts=PROBE_ATTEMPTS,
        initial_backoff_seconds=base.initial_backoff_seconds,
        max_backoff_seconds=base.max_backoff_seconds,
        # a rate-limited LRS is asked again at the next poll, not after a long wait in a thread
        max_retry_after_seconds=min(base.max_retry_after_seconds, settings.poll_seconds),
    )
    with XapiClient(settings.lrs_conn_id, timeout=PROBE_TIMEOUT_SECONDS, retry=retry) as client:
        return Probe(loaded_through, newest_stored_after(client, loaded_through))


# -- when to fire --------------------------------------------------------------------------------


@dataclass
class Announcements:
    """What the watcher has announced (in memory: a restarted watcher announces unloaded statements once more,
    which costs at most one run that finds little to do)."""

    newest: datetime | None = None
    at: float | None = None  # time.monotonic() of the last announcement

    def should_fire(self, probe: Probe, refire_after: timedelta, now: float) -> bool:
        """Fire for statements newer than the last announced; again for the same ones once `refire_after`
        has passed and they are still not loaded."""
        if not probe.has_new_statements:
            return False
        if self.newest is None or self.at is None or probe.newest_stored > self.newest:
            return True
        return now - self.at >= refire_after.total_seconds()

    def record(self, probe: Probe, now: float) -> None:
        self.newest = max(filter(None, [self.newest, probe.newest_stored]), default=None)
        self.at = now


def backoff_seconds(poll: float, failures: int) -> float:
    """The wait after `failures` failed polls in a row: the poll interval doubled, capped."""
    return min(poll * 2 ** max(failures - 1, 0), poll * MAX_BACKOFF_POLLS)


def event_payload(probe: Probe, settings: WatchSettings) -> dict[str, Any]:
    """The asset event's extra: times and the source key only (no statement, no learner)."""
    return {
        "source": settings.source,
        "newest_stored": probe.newest_stored.isoformat() if probe.newest_stored else None,
        "loaded_through": probe.loaded_through.isoformat() if probe.loaded_through else None,
    }


# -- the trigger ---------------------------------------------------------------------------------


class LmsStatementsStoredTrigger(BaseEventTrigger):
    """Fires when the LRS holds statements stored after the warehouse's xAPI watermark (see the module docs).

    :param lrs_conn_id: the LRS connection; default `connections.lms_api` of the configuration.
    :param warehouse_conn_id: where the watermark is read; default the loader's warehouse connection.
    :param poll_seconds: default `lms.watch_poll_seconds`, read at every poll.
    """

    def __init__(
        self,
        lrs_conn_id: str | None = None,
        warehouse_conn_id: str | None = None,
        poll_seconds: float | None = None,
    ):
        super().__init__()
        self.lrs_conn_id = lrs_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.poll_seconds = poll_seconds
        # the loader's warehouse connection, looked up once per configured name (a missing one is logged once)
        self._warehouse_by_config: dict[tuple[str, str], str] = {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "lrs_conn_id": self.lrs_conn_id,
                "warehouse_conn_id": self.warehouse_conn_id,
                "poll_seconds": self.poll_seconds,
            },
        )

    def _settings(self) -> tuple[WatchSettings, dict[str, Any]]:
        from turnover_signals.config import load_config

        # Read at every poll, so a changed Variable applies without restarting the triggerer.
        config = load_config()
        warehouse = self.warehouse_conn_id
        if warehouse is None:
            connections = config["connections"]
            key = (connections["warehouse"], connections.get("warehouse_loader") or "")
            if key not in self._warehouse_by_config:
                self._warehouse_by_config[key] = watch_settings(config).warehouse_conn_id
            warehouse = self._warehouse_by_config[key]
        return watch_settings(config, self.lrs_conn_id, warehouse, self.poll_seconds), config

    def _poll(self) -> tuple[WatchSettings, Probe]:
        settings, config = self._settings()
        return settings, probe_lrs(settings, config)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        announced = Announcements()
        failures = 0
        poll = self.poll_seconds or DEFAULT_POLL_SECONDS
        log.info("LRS watcher started (connection %s)", self.lrs_conn_id or "from the configuration")
        while True:
            try:
                settings, probe = await asyncio.to_thread(self._poll)
            except Exception as exc:  # noqa: BLE001 - the watcher reports and keeps watching
                failures += 1
                wait = backoff_seconds(poll, failures)
                # Known source and warehouse errors carry subject, problem and next step and no secret.
                log.warning(
                    "LRS watcher: poll %d in a row failed: %s; next try in %.0f s (statements stored "
                    "meanwhile are loaded by the next run; the hourly run does not depend on the watcher)",
                    failures,
                    exc,
                    wait,
                    exc_info=not _is_expected(exc),
                )
                await asyncio.sleep(wait)
                continue
            if failures:
                log.info("LRS watcher: polls succeed again after %d failure(s)", failures)
            failures = 0
            poll = settings.poll_seconds
            now = time.monotonic()
            if announced.should_fire(probe, settings.refire_after, now):
                again = announced.newest is not None and probe.newest_stored <= announced.newest
                announced.record(probe, now)
                log.info(
                    "LRS watcher: statements stored after %s (newest %s)%s: asset event",
                    probe.loaded_through.isoformat() if probe.loaded_through else "the beginning",
                    probe.newest_stored.isoformat(),
                    f"; announced again, still not loaded after {settings.refire_after}" if again else "",
                )
                yield TriggerEvent(event_payload(probe, settings))
            await asyncio.sleep(poll)


def _is_expected(exc: BaseException) -> bool:
    """Errors with a message made for people (no traceback needed in the log)."""
    from turnover_signals.errors import TurnoverSignalsError

    return isinstance(exc, TurnoverSignalsError)


# -- the runs the watcher triggers ---------------------------------------------------------------


def is_event_run(run_type: Any) -> bool:
    """Whether a DAG run was triggered by an asset event (the watcher's) rather than by the clock or a
    person."""
    return str(getattr(run_type, "value", run_type)) == ASSET_TRIGGERED


def config_for_run(config: Mapping[str, Any], run_type: Any) -> dict[str, Any]:
    """The configuration an extraction of this run uses: an event run re-reads minutes, not days.

    The hourly run's `lms.since_overlap_days` (late stores, LRSs filtering `since` on the timestamp)
    stays the safety margin: what an event run's short overlap misses, the next hourly run loads.
    """
    if not is_event_run(run_type):
        return dict(config)
    overlap_days = event_run_overlap(config) / timedelta(days=1)
    # `event_run`: whatever the LRS's strategy, a short window and never the sweep (lms.conformance); the
    # look-back a timestamp-filtering LRS needs is the hourly run's
    return {**config, "lms": {**config["lms"], "since_overlap_days": overlap_days, "event_run": True}}


def extract_statements_for_run(
    config: Mapping[str, Any], run: Any, run_type: Any, dsn: str | None = None, client: Any = None
) -> dict[str, Any]:
    """`extract_statements` with the overlap of this run's type (see `config_for_run`)."""
    from turnover_signals.lms.statements import extract_statements

    return extract_statements(config_for_run(config, run_type), run, dsn, client)


def reason_not_to_announce(run_type: Any) -> str | None:
    """Why this run must not emit the `LMS_ACTIVITY` asset event (None: announce it).

    A watcher-triggered run would otherwise rebuild identity and features for every few statements; the
    hourly (and any manual) run announces everything loaded since, event runs included.
    """
    if is_event_run(run_type):
        return (
            "a run triggered by the LRS watcher: core.lms_activity is updated, but identity_resolution and "
            "turnover_features wait for the hourly run"
        )
    return None


def announce_lms_activity(run_type: Any) -> str:
    """The body of the task whose outlet is `LMS_ACTIVITY`: skipped on event runs (a skipped task emits
    no asset event), done otherwise."""
    reason = reason_not_to_announce(run_type)
    if reason is not None:
        from airflow.sdk.exceptions import AirflowSkipException

        log.info("not announcing LMS_ACTIVITY: %s", reason)
        raise AirflowSkipException(reason)
    return "announced"
