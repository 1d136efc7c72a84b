"""What a run tells people on the DAG run itself: its note, written through Airflow's public REST API.

Airflow 3 tasks have no metadata-DB access and the execution API cannot set a note, so a task that has
something to say on the run (the features build deferring a date) asks the API server, as the user of
the optional connection `airflow_api` (type http: the API server's base URL; login/password of an
Airflow user allowed to edit DAG runs, exchanged for a token at `/auth/token`; or a ready token in the
password field or the extra `token`).

The note is shared with people: only the lines this package wrote (they start with `NOTE_PREFIX`) are
replaced; whatever a person wrote stays. Writing the same lines again sends nothing, so a rerun leaves
the note as it was. A note that cannot be written is a WARNING in the task log, never a failed task:
the message is in the log already, and the data the task published is not in question.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from turnover_signals.sources.http_base import (
    display_url,
    read_airflow_connection,
    resolve_base_url,
    scrub,
    verify_setting,
)

log = logging.getLogger(__name__)

NOTE_CONNECTION = "airflow_api"
NOTE_PREFIX = "turnover-signals: "
NOTE_MAX_CHARS = 1000  # the API's limit on a DAG run note
TIMEOUT_SECONDS = 30
PAGE_LIMIT = 100  # the API's default maximum page size
# What a call through AirflowApi raises when the API cannot answer: a warning for callers, not a failed task
API_ERRORS = (requests.RequestException, RuntimeError, ValueError, KeyError)


def merged_note(existing: str | None, lines: Sequence[str]) -> str | None:
    """`existing` with our lines replaced by `lines` (each prefixed), people's lines kept, within the
    limit."""
    kept = [line for line in (existing or "").splitlines() if not line.startswith(NOTE_PREFIX)]
    while kept and not kept[-1].strip():
        kept.pop()
    ours = [NOTE_PREFIX + line for line in lines]
    room = NOTE_MAX_CHARS - len("\n".join(kept)) - (1 if kept and ours else 0)
    text = "\n".join(ours)
    if len(text) > room:
        ending = " … (the full text is in the task log)"
        text = text[: max(room - len(ending), 0)].rstrip() + ending if room > len(ending) else ""
    note = "\n".join(part for part in ("\n".join(kept), text) if part)
    return note or None


@dataclass
class AirflowApi:
    """The few calls of Airflow's public REST API (v2) this package makes: run notes, and the run states the
    pipeline success rate KPI counts (kpi/dag_runs.py)."""

    base_url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    verify: bool | str = True
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    @classmethod
    def from_connection(cls, conn_id: str = NOTE_CONNECTION) -> AirflowApi:
        conn = read_airflow_connection(conn_id)
        extra = dict(getattr(conn, "extra_dejson", None) or {})
        base_url = resolve_base_url(conn.host, conn.schema, conn.port, extra.get("base_path"))
        if conn.login:
            return cls(
                base_url,
                username=str(conn.login),
                password=str(conn.password or ""),
                verify=verify_setting(extra, conn_id),
            )
        token = conn.password or extra.get("token")
        if not token:
            raise ValueError(
                f"Airflow connection '{conn_id}' has neither a login nor a token: set the login/password of "
                "an Airflow user allowed to edit DAG runs, or a token in the password field"
            )
        return cls(base_url, token=str(token), verify=verify_setting(extra, conn_id))

    def _secrets(self) -> list[str]:
        return [s for s in (self.password, self.token) if s]

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}/{path.lstrip('/')}"
        if self.token is None:
            self.token = self._fetch_token()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        response = self.session.request(
            method, url, headers=headers, timeout=TIMEOUT_SECONDS, verify=self.verify, **kwargs
        )
        if response.status_code >= 300:
            raise RuntimeError(
                f"Airflow API {method} {display_url(url)}: HTTP {response.status_code}: "
                f"{scrub(response.text[:300], self._secrets())}"
            )
        return response.json()

    def _fetch_token(self) -> str:
        url = f"{self.base_url}/auth/token"
        response = self.session.post(
            url,
            json={"username": self.username, "password": self.password},
            timeout=TIMEOUT_SECONDS,
            verify=self.verify,
        )
        if response.status_code not in (200, 201):
            raise RuntimeError(
                f"Airflow API {display_url(url)}: login of user {self.username!r} answered HTTP "
                f"{response.status_code}: {scrub(response.text[:300], self._secrets())}"
            )
        return str(response.json()["access_token"])

    def dag_run_path(self, dag_id: str, run_id: str) -> str:
        return f"api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"

    def dag_run_note(self, dag_id: str, run_id: str) -> str | None:
        return self._request("GET", self.dag_run_path(dag_id, run_id)).get("note")

    def set_dag_run_note(self, dag_id: str, run_id: str, note: str | None) -> None:
        self._request(
            "PATCH", self.dag_run_path(dag_id, run_id), params={"update_mask": "note"}, json={"note": note}
        )

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item of a paged list endpoint (`limit`/`offset`, ordered by id so pages do not overlap)."""
        items: list[dict[str, Any]] = []
        while True:
            page = self._request("GET", path, params={**params, "limit": PAGE_LIMIT, "offset": len(items)})
            items.extend(page[key])
            if not page[key] or len(items) >= int(page["total_entries"]):
                return items

    def dag_ids_tagged(self, tag: str) -> list[str]:
        """The DAGs the API server knows with `tag`, paused or not."""
        dags = self._pages("api/v2/dags", "dags", {"tags": tag, "order_by": "dag_id"})
        return sorted(dag["dag_id"] for dag in dags)

    def dag_run_states(self, dag_id: str, run_after_gte: datetime, run_after_lt: datetime) -> list[str]:
        """The state of each run of `dag_id` whose run_after is in [run_after_gte, run_after_lt)."""
        params = {
            "run_after_gte": run_after_gte.isoformat(),
            "run_after_lt": run_after_lt.isoformat(),
            "order_by": "id",
        }
        runs = self._pages(f"api/v2/dags/{quote(dag_id, safe='')}/dagRuns", "dag_runs", params)
        return [str(run["state"]) for run in runs]


def write_run_note(
    dag_id: str,
    run_id: str,
    lines: Sequence[str],
    conn_id: str = NOTE_CONNECTION,
    api: AirflowApi | None = None,
) -> str:
    """Make this package's lines of the run's note `lines` (none: remove them). Returns what happened:
    ``written``, ``unchanged``, ``no connection`` or ``failed`` (logged as a WARNING)."""
    from turnover_signals.airflow_tasks import airflow_connection_exists
    from turnover_signals.errors import TurnoverSignalsError

    if api is None and not airflow_connection_exists(conn_id):
        if lines:
            log.info(
                "the DAG run note is not written: Airflow connection '%s' is not defined "
                "(docs/reference/connections.md); the lines above say the same",
                conn_id,
            )
        return "no connection"
    try:
        api = api or AirflowApi.from_connection(conn_id)
        existing = api.dag_run_note(dag_id, run_id)
        note = merged_note(existing, lines)
        if note == (existing or None):
            return "unchanged"
        api.set_dag_run_note(dag_id, run_id, note)
    except (*API_ERRORS, TurnoverSignalsError) as exc:
        log.warning(
            "the DAG run note of %s / %s could not be written through Airflow connection '%s': %s. "
            "Next step: check that the connection points at the API server and that its user may edit "
            "DAG runs; the message is in this log either way",
            dag_id,
            run_id,
            conn_id,
            exc,
        )
        return "failed"
    log.info("DAG run note of %s / %s updated (%d line(s) from this package)", dag_id, run_id, len(lines))
    return "written"


def note_on_this_run(lines: Sequence[str]) -> str:
    """`write_run_note` for the DAG run of the running task."""
    from airflow.sdk import get_current_context

    dag_run = get_current_context()["dag_run"]
    return write_run_note(dag_run.dag_id, dag_run.run_id, lines)
