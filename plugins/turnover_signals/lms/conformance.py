"""What an LRS actually does, learned by reading it, and the extraction strategy that loses nothing on it.

xAPI 1.0.3 says `since`/`until` filter on `stored`, but real LRSs bend it (Ralph 5.x filters on
`timestamp`, caps pages at 100, sends no version header and lists voided statements). A client that trusts
`since` on a timestamp-filtering LRS silently loses every statement whose `timestamp` is older than its
watermark. So, at the first use of a connection (and on demand: ``python -m
turnover_signals.lms.conformance``), `probe_lrs` reads the LRS — a handful of GET requests, nothing written —
and records an `LrsProfile` per source in `audit.lrs_conformance`:

- **since field**: a statement S whose `stored` and `timestamp` differ by a second or more is looked for in a
  listing with `since` halfway between the two and `until` at the later one. Returned: the LRS filters on the
  field that is after the halfway point; absent from a complete listing: on the other one. No such statement
  in the sample, or a listing too long to read to its end: `unknown`.
- **page cap**: the first page of a `limit=1000` listing that has more pages after it.
- **headers**: whether `X-Experience-API-Version` and `X-Experience-API-Consistent-Through` come back.
- **voiding**: for a voiding statement in the sample, whether its target is hidden from `statementId` and
  listings, and whether `voidedStatementId` returns it (else the loader does not ask for voided targets).
- **more**: the form of a `more` link (root-relative as the standard says, endpoint-relative, absolute).

`extraction_window` then picks where an extraction starts:

- `stored_overlap` (the LRS filters on `stored`): the watermark minus `lms.since_overlap_days`.
- `timestamp_lookback` (on `timestamp`, or not known): the watermark minus a look-back on `timestamp` that
  covers the longest lateness (`stored - timestamp`) seen so far with a quarter to spare, at least
  `lms.timestamp_lookback_floor_days`; every `lms.reconciliation_sweep_hours` one batch reaches back
  `lms.reconciliation_window_days` instead (a sweep), to find what was later still. Statements are keyed by
  id, so what is re-read is counted as already loaded, and what a plain `since = watermark` query would have
  missed is counted as late in the batch's audit row.

An operator who knows the LRS may declare it (`lms.lrs_since_field: stored | timestamp`); the probe is then
not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from turnover_signals.errors import SourceRefusedError
from turnover_signals.sources.http_base import JsonResponse, display_url
from turnover_signals.sources.xapi import (
    CONSISTENT_THROUGH_HEADER,
    VERSION_HEADER,
    XapiClient,
    XapiTimestampError,
    format_xapi_timestamp,
    parse_xapi_timestamp,
)
from turnover_signals.sqlfiles import read_sql

log = logging.getLogger(__name__)

VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"
PROBE_PAGE_LIMIT = 1000  # larger than any cap seen in the wild, so a cap shows
PROBE_MAX_PAGES = 4  # a since-field listing longer than this is inconclusive rather than read to its end
PROBE_CANDIDATES = 3  # statements tried for the since field before giving up
MIN_DECISIVE_GAP = timedelta(seconds=1)  # below this, an LRS storing whole seconds could blur the answer
LATENESS_MARGIN = 1.25
SINCE_FIELDS = ("stored", "timestamp", "unknown")


@dataclass(frozen=True)
class LrsProfile:
    """What the probe learned about one LRS (see the module docstring)."""

    since_field: str
    page_cap: int | None
    sends_version_header: bool
    sends_consistent_through: bool
    voided_hidden: bool | None
    voided_query_supported: bool | None
    more_form: str
    evidence: list[dict[str, Any]] = field(default_factory=list, compare=False)
    declared: bool = False

    @property
    def strategy(self) -> str:
        # Only a verified stored filter is trusted with the short overlap: an unknown LRS gets the
        # look-back that cannot lose a statement, whatever it filters on.
        return "stored_overlap" if self.since_field == "stored" else "timestamp_lookback"

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "evidence"} | {"strategy": self.strategy}


@dataclass(frozen=True)
class ExtractionWindow:
    """Where one extraction starts and why."""

    since: datetime
    kind: str  # initial, incremental, sweep or event (a run the LRS watcher triggered)
    strategy: str
    lookback: timedelta | None


def declared_profile(since_field: str) -> LrsProfile:
    """The profile of an LRS the operator declared (`lms.lrs_since_field`); nothing else is assumed."""
    return LrsProfile(
        since_field=since_field,
        page_cap=None,
        sends_version_header=False,
        sends_consistent_through=False,
        voided_hidden=None,
        voided_query_supported=None,
        more_form="unknown",
        evidence=[{"declared": f"lms.lrs_since_field = {since_field}"}],
        declared=True,
    )


# -- the probe ----------------------------------------------------------------------------------


class _Probe:
    def __init__(self, client: XapiClient):
        self.client = client
        self.evidence: list[dict[str, Any]] = []

    def get(self, what: str, params: Mapping[str, Any], url: str | None = None) -> JsonResponse:
        response = self.client.get_json(
            url or self.client.statements_url,
            what,
            params=params,
            missing_ok=True,
            decode=self.client.decode_document,  # a statement beyond the bounds cannot stop the probe
        )
        self.evidence.append({"request": what, "params": dict(params), "status": response.status})
        return response

    def note(self, **facts: Any) -> None:
        self.evidence[-1].update(facts)

    def run(self) -> LrsProfile:
        sample = self.get("newest statements", {"limit": PROBE_PAGE_LIMIT, "ascending": "false"})
        statements, more, has_more_key = _statement_result(sample)
        page_cap = len(statements) if more and 0 < len(statements) < PROBE_PAGE_LIMIT else None
        self.note(statements=len(statements), more=bool(more), page_cap=page_cap)
        headers = {key.lower() for key in sample.headers}
        more_form = self._more_form(more, has_more_key)
        voided_hidden, voided_query = self._voiding(statements, more)
        return LrsProfile(
            since_field=self._since_field(statements),
            page_cap=page_cap,
            sends_version_header=VERSION_HEADER.lower() in headers,
            sends_consistent_through=CONSISTENT_THROUGH_HEADER.lower() in headers,
            voided_hidden=voided_hidden,
            voided_query_supported=voided_query,
            more_form=more_form,
            evidence=self.evidence,
        )

    def _more_form(self, more: str, has_more_key: bool) -> str:
        if not more:
            one = self.get("a two-page listing", {"limit": 1, "ascending": "false"})
            _statements, more, has_more_key = _statement_result(one)
        if not more:
            return "none" if has_more_key else "absent"
        if "://" in more.split("?", 1)[0]:
            return "absolute"
        return "root_relative" if more.startswith("/") else "endpoint_relative"

    def _since_field(self, statements: list[Any]) -> str:
        candidates = sorted(
            (gap, statement_id, stored, timestamp)
            for statement_id, stored, timestamp in _times(statements)
            if (gap := abs(stored - timestamp)) >= MIN_DECISIVE_GAP
        )
        if not candidates:
            self.evidence.append(
                {
                    "request": "since field",
                    "conclusion": "no statement whose stored and timestamp differ by 1 s",
                }
            )
            return "unknown"
        # The smallest decisive gaps first: their listings are the shortest to read to the end.
        for _gap, statement_id, stored, timestamp in candidates[:PROBE_CANDIDATES]:
            answer = self._since_field_of(statement_id, stored, timestamp)
            if answer != "unknown":
                return answer
        return "unknown"

    def _since_field_of(self, statement_id: str, stored: datetime, timestamp: datetime) -> str:
        halfway = min(stored, timestamp) + abs(stored - timestamp) / 2
        later = max(stored, timestamp)
        params = {
            "since": format_xapi_timestamp(halfway),
            "until": format_xapi_timestamp(later),
            "limit": PROBE_PAGE_LIMIT,
            "ascending": "false",
        }
        after_halfway = "stored" if stored > timestamp else "timestamp"
        before_halfway = "timestamp" if after_halfway == "stored" else "stored"
        response = self.get(f"since field, statement {statement_id}", params)
        for page_number in range(1, PROBE_MAX_PAGES + 1):
            statements, more, _ = _statement_result(response)
            if any(isinstance(s, dict) and s.get("id") == statement_id for s in statements):
                self.note(found=True, pages=page_number, conclusion=f"since filters on {after_halfway}")
                return after_halfway
            if not more:
                self.note(found=False, pages=page_number, conclusion=f"since filters on {before_halfway}")
                return before_halfway
            if page_number < PROBE_MAX_PAGES:
                response = self.get(
                    f"since field, statement {statement_id}, next page", {}, self.client.resolve_more(more)
                )
        self.note(found=False, conclusion=f"listing longer than {PROBE_MAX_PAGES} pages: inconclusive")
        return "unknown"

    def _voiding(self, statements: list[Any], more: str) -> tuple[bool | None, bool | None]:
        voids = self._find_voids(statements, more)
        if not voids:
            self.evidence.append({"request": "voiding", "conclusion": "no voiding statement found"})
            return None, None
        target = voids[0]["object"]["id"]
        listed = any(isinstance(s, dict) and s.get("id") == target for s in statements)
        shown = self.get("voided target by statementId", {"statementId": target})
        by_id = _holds(shown, target)
        self.note(found=by_id, listed_in_sample=listed)
        voided = self.get("voided target by voidedStatementId", {"voidedStatementId": target})
        # Only the statement itself counts: an LRS that ignores the parameter answers with a listing.
        supported = isinstance(voided.document, dict) and voided.document.get("id") == target
        self.note(returned_the_statement=supported)
        return not (by_id or listed), supported

    def _find_voids(self, statements: list[Any], more: str) -> list[dict[str, Any]]:
        """Voiding statements: in the sample, else through the verb filter, else on the sample's next pages
        (an LRS may ignore the filter, or list in its own order rather than newest first)."""
        if voids := _voids(statements):
            return voids
        by_verb = self.get("a voiding statement by verb", {"verb": VOIDED_VERB, "limit": 1})
        if voids := _voids(_statement_result(by_verb)[0]):
            return voids
        for _ in range(PROBE_MAX_PAGES - 1):
            if not more:
                break
            page = self.get("newest statements, next page", {}, self.client.resolve_more(more))
            next_statements, more, _ = _statement_result(page)
            statements.extend(next_statements)
            if voids := _voids(next_statements):
                return voids
        return []


def _voids(statements: list[Any]) -> list[dict[str, Any]]:
    return [
        s
        for s in statements
        if isinstance(s, dict)
        and isinstance(s.get("verb"), dict)
        and s["verb"].get("id") == VOIDED_VERB
        and isinstance(s.get("object"), dict)
        and s["object"].get("objectType") == "StatementRef"
        and isinstance(s["object"].get("id"), str)
    ]


def _statement_result(response: JsonResponse) -> tuple[list[Any], str, bool]:
    document = response.document
    if (
        response.status == 404
        or not isinstance(document, dict)
        or not isinstance(document.get("statements"), list)
    ):
        raise SourceRefusedError(
            f"xAPI LRS {display_url(response.url)}",
            'the conformance probe got no StatementResult ({"statements": [...], "more": ...})',
            "check that host and extra base_path of the connection point at the LRS endpoint",
            "lms-lrs-conformance",
        )
    more = document.get("more")
    return document["statements"], (more if isinstance(more, str) else "").strip(), "more" in document


def _holds(response: JsonResponse, statement_id: str) -> bool:
    """Whether an answer carries the statement: as itself, or (an LRS answering with a list) in a list."""
    document = response.document
    if response.status != 200 or not isinstance(document, dict):
        return False
    if document.get("id") == statement_id:
        return True
    listed = document.get("statements")
    return isinstance(listed, list) and any(
        isinstance(s, dict) and s.get("id") == statement_id for s in listed
    )


def _times(statements: Iterable[Any]) -> Iterable[tuple[str, datetime, datetime]]:
    for statement in statements:
        if not isinstance(statement, dict) or not isinstance(statement.get("id"), str):
            continue
        try:
            stored = parse_xapi_timestamp(statement.get("stored"))
            timestamp = parse_xapi_timestamp(statement.get("timestamp"))
        except XapiTimestampError:
            continue
        yield statement["id"], stored, timestamp


def probe_lrs(client: XapiClient) -> LrsProfile:
    """Read the LRS behind `client` (a few GET requests, nothing written) and say what it does."""
    profile = _Probe(client).run()
    log.info("xAPI LRS %s conformance: %s", display_url(client.statements_url), profile.summary())
    return profile


# -- recorded profiles --------------------------------------------------------------------------


def record_profile(conn: psycopg.Connection, source: str, endpoint: str, profile: LrsProfile) -> None:
    conn.execute(
        read_sql("audit", "lrs_conformance"),
        {
            "source": source,
            "endpoint": endpoint,
            "since_field": profile.since_field,
            "page_cap": profile.page_cap,
            "sends_version_header": profile.sends_version_header,
            "sends_consistent_through": profile.sends_consistent_through,
            "voided_hidden": profile.voided_hidden,
            "voided_query_supported": profile.voided_query_supported,
            "more_form": profile.more_form,
            "strategy": profile.strategy,
            "evidence": Jsonb(profile.evidence),
        },
    )


def latest_profile(conn: psycopg.Connection, source: str) -> tuple[LrsProfile, str, datetime] | None:
    """The profile in force for `source`, with the endpoint it was probed at and when."""
    row = conn.execute(
        """
        select since_field, page_cap, sends_version_header, sends_consistent_through, voided_hidden,
               voided_query_supported, more_form, evidence, endpoint, probed_at
        from audit.lrs_conformance where source = %s order by probe_id desc limit 1
        """,
        (source,),
    ).fetchone()
    if row is None:
        return None
    return LrsProfile(*row[:8]), row[8], row[9]


def profile_for_extraction(
    conn: psycopg.Connection, client: XapiClient, source: str, lms: Mapping[str, Any]
) -> LrsProfile:
    """The declared profile, else the recorded one, else (first use, a moved endpoint, or a profile past
    `lms.conformance_max_age_hours`, a day for an inconclusive one) a fresh probe, recorded."""
    declared = str(lms.get("lrs_since_field") or "probe")
    if declared != "probe":
        if declared not in ("stored", "timestamp"):
            raise ValueError(f"lms.lrs_since_field must be probe, stored or timestamp, not {declared!r}")
        return declared_profile(declared)
    recorded = latest_profile(conn, source)
    if recorded is not None:
        profile, endpoint, probed_at = recorded
        max_age = timedelta(hours=float(lms.get("conformance_max_age_hours", 168)))
        if profile.since_field == "unknown":
            max_age = min(max_age, timedelta(hours=24))
        if endpoint == client.statements_url and datetime.now(UTC) - probed_at < max_age:
            return profile
    profile = probe_lrs(client)
    record_profile(conn, source, client.statements_url, profile)
    return profile


# -- the window ---------------------------------------------------------------------------------


def longest_lateness(conn: psycopg.Connection, source: str) -> timedelta:
    """The longest `stored - timestamp` among the statements published from `source` (0 if none)."""
    row = conn.execute(
        "select max(max_lateness_seconds) from audit.lms_extract_batch where source = %s and status = "
        "'published'",
        (source,),
    ).fetchone()
    return timedelta(seconds=max(0, row[0] or 0))


def last_sweep(conn: psycopg.Connection, source: str) -> datetime | None:
    row = conn.execute(
        "select max(started_at) from audit.lms_extract_batch"
        # the first extraction reads everything: it counts as a sweep
        " where source = %s and extraction_kind in ('sweep', 'initial') and status = 'published'",
        (source,),
    ).fetchone()
    return row[0]


def extraction_window(
    conn: psycopg.Connection,
    source: str,
    profile: LrsProfile,
    watermark: datetime | None,
    lms: Mapping[str, Any],
    initial_since: datetime,
    now: datetime | None = None,
) -> ExtractionWindow:
    """Where the next extraction of `source` starts, for the strategy its profile calls for."""
    if watermark is None:
        return ExtractionWindow(initial_since, "initial", profile.strategy, None)
    if lms.get("event_run"):
        # a run the LRS watcher triggered: minutes after the watermark, cheaply; what it cannot see (late
        # statements on a timestamp-filtering LRS) the hourly run's look-back and sweep find
        overlap = timedelta(days=float(lms["since_overlap_days"]))
        return ExtractionWindow(watermark - overlap, "event", profile.strategy, overlap)
    if profile.strategy == "stored_overlap":
        overlap = timedelta(days=float(lms["since_overlap_days"]))
        return ExtractionWindow(watermark - overlap, "incremental", profile.strategy, overlap)
    now = now or datetime.now(UTC)
    floor = timedelta(days=float(lms.get("timestamp_lookback_floor_days", 7)))
    seen = longest_lateness(conn, source)
    lookback = max(floor, timedelta(seconds=math.ceil(seen.total_seconds() * LATENESS_MARGIN)))
    swept = last_sweep(conn, source)
    if swept is None or now - swept >= timedelta(hours=float(lms.get("reconciliation_sweep_hours", 24))):
        window = timedelta(days=float(lms.get("reconciliation_window_days", 90)))
        return ExtractionWindow(
            watermark - max(lookback, window), "sweep", profile.strategy, max(lookback, window)
        )
    return ExtractionWindow(watermark - lookback, "incremental", profile.strategy, lookback)


# -- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m turnover_signals.lms.conformance",
        description="Probe an xAPI LRS (read-only) and print what it does; --record keeps it for the loader.",
    )
    parser.add_argument("--conn-id", default="lms_api", help="the Airflow connection of the LRS")
    parser.add_argument(
        "--record",
        action="store_true",
        help="record the profile in audit.lrs_conformance (the next extraction uses it)",
    )
    parser.add_argument(
        "--dsn",
        help="warehouse URL (default: $TURNOVER_WAREHOUSE_URL or the configured warehouse connection)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # stdout carries the report alone (for jq and scripts); whatever Airflow logs on the way goes to stderr
    with contextlib.redirect_stdout(sys.stderr):
        from turnover_signals.config import load_config
        from turnover_signals.lms.statements import xapi_client
        from turnover_signals.warehouse import warehouse_connection

        config = load_config()
        config["connections"]["lms_api"] = args.conn_id
        with xapi_client(config) as client:
            profile = probe_lrs(client)
            report = {
                "endpoint": display_url(client.statements_url),
                **profile.summary(),
                "evidence": profile.evidence,
            }
            if args.record:
                with warehouse_connection(config["connections"]["warehouse"], args.dsn) as conn:
                    record_profile(conn, f"xapi:{args.conn_id}", client.statements_url, profile)
                report["recorded_for"] = f"xapi:{args.conn_id}"
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
