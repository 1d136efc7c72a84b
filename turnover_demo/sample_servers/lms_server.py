"""A sample LMS: an xAPI 1.0.3 Learning Record Store and a SCIM 2.0 user directory on one port.

`LmsSampleServer(data_dir)` serves

- ``GET /xapi/statements``: the xAPI Statements resource, read-only. Basic auth, the
  `X-Experience-API-Version` header, `since` (exclusive) / `until` (inclusive) on the *stored*
  time, `limit`, `ascending`, `verb`, `agent`, `activity`, `registration`, `related_agents`,
  `related_activities`, single `statementId` / `voidedStatementId`. Pages end with a `more` link,
  an opaque relative URL (``/xapi/statements?cursor=...``) that encodes the filters, the position
  (stored time, id) and an upper bound frozen at the first request, so requesting the same link
  twice returns the same page. Voided statements are left out of normal queries; the voiding
  statements are returned. ``GET /xapi/about`` answers without auth.
- ``GET /scim/v2/Users`` (bearer token; `startIndex`/`count` paging, sorted by id, filter
  ``meta.lastModified gt|ge "<time>"``), ``GET /scim/v2/Users/{id}`` and
  ``GET /scim/v2/ServiceProviderConfig``.

Data: ``DATA_DIR/lms/statements.jsonl`` (one statement per line, each with `id` and `stored`) is
streamed into a temporary SQLite file at start-up, so a million statements do not sit in memory;
``DATA_DIR/lms/users.jsonl`` (one SCIM User per line) is held in memory. `add_statements()` and
`add_or_update_users()` change the data while the server runs, for incremental tests.

Not implemented (a real LRS does these): writing statements over HTTP, attachments,
`format=ids|canonical` (every format returns the statements as stored), returning statements that
target a matching statement through a StatementRef, and group-member matching for `agent`.

Deviations for tests (`deviations=` at construction, `XAPI_DEVIATIONS`): behaviours of real LRSs that
bend xAPI 1.0.3, as seen in Ralph 5.1.0: no version and Consistent-Through headers, a full last page
followed by an empty one, no `more` key at the end, each page in reverse order, `since`/`until` on the
statement's `timestamp` (`since_on_timestamp`), and voided statements listed and returned by `statementId`
while `voidedStatementId` is ignored (`voided_listed`). `SCIM_DEVIATIONS`: Users served without
`meta.created` and `meta.lastModified` (`scim_no_meta_times`; filtering still uses the server's own times).

Faults for tests: ``inject_fault(kind, path_prefix="/xapi", count=1, **params)`` arms a fault
that fires on the next `count` requests whose path starts with `path_prefix`, then disarms:

- ``status``: answer `status` (default 500) at once; `retry_after` adds a Retry-After header.
- ``delay``: sleep `seconds` (default 2.0) before answering normally (for read timeouts).
- ``reset``: send the status line, the headers and `after_bytes` of the body (default: half),
  then reset the TCP connection.
- ``malformed_json``: a 200 whose body is the real body cut short (not valid JSON).
- ``repeat_page``: serve the previous page of the same endpoint again, more link included.
- ``more_loop``: serve the real page, but with `more` pointing back at the requested URL.

`requests` records every request as ``(method, path_with_query, headers)`` for assertions; the
`Authorization` header is recorded as its scheme only ("Basic" / "Bearer").

CLI: ``python -m turnover_demo.sample_servers.lms_server --data DIR [--port N]`` prints one
JSON line (base_url and the Airflow connections) and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import struct
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlsplit

log = logging.getLogger(__name__)

XAPI_VERSION = "1.0.3"
VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"
SCIM_LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_CONTENT_TYPE = "application/scim+json"
FAULT_KINDS = ("status", "delay", "reset", "malformed_json", "repeat_page", "more_loop")
STATEMENT_QUERY_PARAMS = frozenset(
    {
        "statementId",
        "voidedStatementId",
        "agent",
        "verb",
        "activity",
        "registration",
        "related_activities",
        "related_agents",
        "since",
        "until",
        "limit",
        "format",
        "attachments",
        "ascending",
    }
)
# Sorts after every real key and id (ids and keys are ASCII; SQLite compares text bytewise).
MAX_TEXT = "\U0010ffff"
LOAD_BATCH_SIZE = 10_000
RECORDED_HEADERS = ("X-Experience-API-Version", "Accept", "Content-Type", "User-Agent", "If-None-Match")


class BadRequest(ValueError):
    """A request the server answers with 400 (or the given SCIM error type)."""

    def __init__(self, message: str, scim_type: str | None = None) -> None:
        super().__init__(message)
        self.scim_type = scim_type


# -- time ----------------------------------------------------------------------------------------


def parse_timestamp(text: str, what: str = "timestamp") -> datetime:
    """Parse an ISO 8601 time that carries a timezone; naive times are rejected."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise BadRequest(f"{what} {text!r} is not an ISO 8601 timestamp") from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise BadRequest(f"{what} {text!r} has no timezone; use 'Z' or an offset such as +00:00")
    return parsed.astimezone(UTC)


_UTC_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.(\d{1,6}))?Z")


def stored_key_from_text(text: str, what: str = "stored") -> str:
    """`time_key` of an ISO text; UTC "Z" values (the usual case) skip datetime parsing."""
    match = _UTC_TEXT.fullmatch(text)
    if match:
        fraction = match.group(1) or ""
        return f"{text[:19]}.{fraction:0<6}Z"
    return time_key(parse_timestamp(text, what))


def time_key(moment: datetime) -> str:
    """Fixed-width UTC text that sorts like the time itself (microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def display_time(key: str) -> str:
    """A `time_key` as returned to clients: milliseconds unless the value needs microseconds."""
    return key[:-4] + "Z" if key.endswith("000Z") else key


def now_key() -> str:
    return time_key(datetime.now(UTC))


# -- statements (SQLite) -------------------------------------------------------------------------


def agent_identifier(agent: Any) -> str | None:
    """The Inverse Functional Identifier of an Agent/Group as one comparable string."""
    if not isinstance(agent, dict):
        return None
    for key in ("mbox", "mbox_sha1sum", "openid"):
        if isinstance(agent.get(key), str) and agent[key]:
            return f"{key}:{agent[key]}"
    account = agent.get("account")
    if isinstance(account, dict) and account.get("homePage") and account.get("name"):
        return f"account:{account['homePage']}|{account['name']}"
    return None


def _is_agent_object(target: Any) -> bool:
    return isinstance(target, dict) and target.get("objectType") in ("Agent", "Group")


def _is_activity_object(target: Any) -> bool:
    return isinstance(target, dict) and target.get("objectType", "Activity") == "Activity" and "id" in target


def _token_set(values: Iterable[str | None]) -> str:
    """Newline-delimited set, searched with instr() for the related_* filters."""
    present = sorted({value for value in values if value})
    return "\n" + "\n".join(present) + "\n" if present else ""


def _context_activity_ids(context: Any) -> list[str]:
    ids: list[str] = []
    if isinstance(context, dict) and isinstance(context.get("contextActivities"), dict):
        for value in context["contextActivities"].values():
            for activity in value if isinstance(value, list) else [value]:
                if isinstance(activity, dict) and isinstance(activity.get("id"), str):
                    ids.append(activity["id"])
    return ids


def _statement_index_fields(statement: dict[str, Any]) -> tuple[Any, ...]:
    """(verb_id, actor, object agent, object activity, registration, related agents/activities, voids)."""
    verb = statement.get("verb")
    verb_id = verb.get("id") if isinstance(verb, dict) else None
    target = statement.get("object")
    context = statement.get("context")
    substatement = target if isinstance(target, dict) and target.get("objectType") == "SubStatement" else {}
    agents = [
        agent_identifier(statement.get("actor")),
        agent_identifier(target) if _is_agent_object(target) else None,
        agent_identifier(statement.get("authority")),
        agent_identifier(substatement.get("actor")),
        agent_identifier(substatement.get("object"))
        if _is_agent_object(substatement.get("object"))
        else None,
    ]
    if isinstance(context, dict):
        agents += [agent_identifier(context.get("instructor")), agent_identifier(context.get("team"))]
    activities = [target["id"] if _is_activity_object(target) else None, *_context_activity_ids(context)]
    if _is_activity_object(substatement.get("object")):
        activities.append(substatement["object"]["id"])
    activities += _context_activity_ids(substatement.get("context"))
    voids = None
    if verb_id == VOIDED_VERB and isinstance(target, dict) and target.get("objectType") == "StatementRef":
        voids = target.get("id")
    return (
        verb_id,
        agent_identifier(statement.get("actor")),
        agent_identifier(target) if _is_agent_object(target) else None,
        target["id"] if _is_activity_object(target) else None,
        context.get("registration") if isinstance(context, dict) else None,
        _token_set(agents),
        _token_set(activities),
        voids,
    )


_CREATE_STATEMENT_TABLE = """
create table statement (
    seq integer primary key,
    id text not null unique,
    stored_key text not null,
    timestamp_key text not null,
    verb_id text,
    actor_ifi text,
    object_agent_ifi text,
    object_activity_id text,
    registration text,
    related_agents text not null,
    related_activities text not null,
    voids_id text,
    is_voided integer not null default 0,
    body text not null,
    body_is_display integer not null
)
"""
_CREATE_STATEMENT_INDEXES = (
    "create index if not exists statement_stored_id on statement (stored_key, id)",
    "create index if not exists statement_timestamp_id on statement (timestamp_key, id)",
    "create index if not exists statement_voids on statement (voids_id) where voids_id is not null",
)
_INSERT_STATEMENT = """
insert into statement (
    id, stored_key, timestamp_key, verb_id, actor_ifi, object_agent_ifi, object_activity_id, registration,
    related_agents, related_activities, voids_id, body, body_is_display
) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_STATEMENT_IGNORING_DUPLICATES = _INSERT_STATEMENT.replace("insert into", "insert or ignore into", 1)
# A voiding statement cannot itself be voided (xAPI 1.0.3, 2.3.2).
_APPLY_VOIDS = """
update statement set is_voided = 1
where is_voided = 0
  and voids_id is null
  and id in (select voids_id from statement where voids_id is not null)
"""
# since/until and the cursor position are folded into one exclusive (stored_key, id) range so
# SQLite walks the index from the cursor instead of from `since` on every page. The two
# statements differ only in their order by.
_PAGE_ASCENDING = """
select stored_key as page_key, id, body, body_is_display, stored_key
from statement
where (stored_key, id) > (:low_key, :low_id) and (stored_key, id) < (:high_key, :high_id)
    and is_voided = 0
    and (:verb is null or verb_id = :verb)
    and (:registration is null or registration = :registration)
    and (:agent is null
         or (:related_agents = 0 and (actor_ifi = :agent or object_agent_ifi = :agent))
         or (:related_agents = 1 and instr(related_agents, :agent_token) > 0))
    and (:activity is null
         or (:related_activities = 0 and object_activity_id = :activity)
         or (:related_activities = 1 and instr(related_activities, :activity_token) > 0))
order by stored_key, id
limit :rows
"""
_PAGE_DESCENDING = """
select stored_key as page_key, id, body, body_is_display, stored_key
from statement
where (stored_key, id) > (:low_key, :low_id) and (stored_key, id) < (:high_key, :high_id)
    and is_voided = 0
    and (:verb is null or verb_id = :verb)
    and (:registration is null or registration = :registration)
    and (:agent is null
         or (:related_agents = 0 and (actor_ifi = :agent or object_agent_ifi = :agent))
         or (:related_agents = 1 and instr(related_agents, :agent_token) > 0))
    and (:activity is null
         or (:related_activities = 0 and object_activity_id = :activity)
         or (:related_activities = 1 and instr(related_activities, :activity_token) > 0))
order by stored_key desc, id desc
limit :rows
"""


@dataclass(frozen=True)
class StatementQuery:
    """The filters of one statements listing, frozen into its `more` cursor."""

    since: str = ""
    until: str = MAX_TEXT
    verb: str | None = None
    agent: str | None = None
    activity: str | None = None
    registration: str | None = None
    related_agents: bool = False
    related_activities: bool = False
    ascending: bool = False
    limit: int = 0
    after: tuple[str, str] | None = None

    def to_cursor(self) -> str:
        defaults = StatementQuery()
        changed = {name: value for name, value in self.__dict__.items() if value != getattr(defaults, name)}
        payload = json.dumps(changed, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")

    @classmethod
    def from_cursor(cls, token: str) -> StatementQuery:
        try:
            payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if payload.get("after") is not None:
                payload["after"] = tuple(payload["after"])
            return cls(**payload)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise BadRequest("cursor is not one this server issued") from exc


class StatementStore:
    """Statements in a temporary SQLite file, indexed on (stored, id) and (timestamp, id).

    `since_on_timestamp`: listings filter and page on the statement's timestamp instead of `stored`;
    `voided_listed`: voided statements stay in listings (both as Ralph 5.1.0 does).
    """

    def __init__(self, since_on_timestamp: bool = False, voided_listed: bool = False) -> None:
        self._pages = {}
        for ascending, query in ((True, _PAGE_ASCENDING), (False, _PAGE_DESCENDING)):
            if since_on_timestamp:
                head, rest = query.split("from statement", 1)
                query = (
                    head.replace("stored_key as", "timestamp_key as")
                    + "from statement"
                    + rest.replace("stored_key", "timestamp_key")
                )
            if voided_listed:
                query = query.replace("and is_voided = 0", "")
            self._pages[ascending] = query
        handle, name = tempfile.mkstemp(prefix="lms-sample-", suffix=".sqlite")
        os.close(handle)
        self.path = Path(name)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("pragma journal_mode = off")
        self._db.execute("pragma synchronous = off")
        self._db.execute(_CREATE_STATEMENT_TABLE)
        self._lock = threading.Lock()
        self._max_key = ""

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self.path.unlink(missing_ok=True)

    def load_jsonl(self, path: Path) -> int:
        """Stream a JSONL file of statements in; returns how many were inserted."""
        inserted = 0
        with self._lock, open(path, encoding="utf-8") as handle:
            self._db.execute("begin")
            batch: list[tuple[Any, ...]] = []
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                batch.append(self._row(line.strip(), f"{path}:{line_number}"))
                if len(batch) >= LOAD_BATCH_SIZE:
                    inserted += self._insert_ignoring_duplicates(batch)
                    batch = []
            inserted += self._insert_ignoring_duplicates(batch)
            for statement in _CREATE_STATEMENT_INDEXES:
                self._db.execute(statement)
            self._db.execute(_APPLY_VOIDS)
            self._db.execute("commit")
            self._max_key = self._db.execute(
                "select coalesce(max(stored_key), '') from statement"
            ).fetchone()[0]
        return inserted

    def _insert_ignoring_duplicates(self, rows: list[tuple[Any, ...]]) -> int:
        before = self._db.total_changes
        self._db.executemany(_INSERT_STATEMENT_IGNORING_DUPLICATES, rows)
        return self._db.total_changes - before

    @staticmethod
    def _row(text: str, where: str) -> tuple[Any, ...]:
        try:
            statement = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON ({exc.msg})") from exc
        except RecursionError:
            # Nested beyond what json parses (a fault test's statement): served as written, indexed by the
            # first "id", "stored" and "timestamp" strings of its text only (write them first).
            statement = {
                key: match.group(1)
                for key in ("id", "stored", "timestamp")
                if (match := re.search(rf'"{key}"\s*:\s*"([^"]*)"', text))
            }
        if not isinstance(statement, dict) or not statement.get("id") or not statement.get("stored"):
            raise ValueError(f"{where}: a statement must be a JSON object with 'id' and 'stored'")
        try:
            key = stored_key_from_text(str(statement["stored"]))
        except BadRequest as exc:
            raise ValueError(f"{where}: {exc}") from exc
        body_is_display = statement["stored"] == display_time(key)
        try:
            timestamp_key = stored_key_from_text(str(statement.get("timestamp")), "timestamp")
        except BadRequest:
            timestamp_key = key  # a statement without a usable timestamp sorts by its stored time
        return (
            str(statement["id"]),
            key,
            timestamp_key,
            *_statement_index_fields(statement),
            text,
            int(body_is_display),
        )

    def add(self, statements: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store statements now: `stored` is set by the LRS (strictly increasing), `id` if missing."""
        stored: list[dict[str, Any]] = []
        with self._lock:
            self._db.execute("begin")
            try:
                for original in statements:
                    statement = dict(original)
                    statement.setdefault("id", str(uuid.uuid4()))
                    key = now_key()
                    if key <= self._max_key:
                        later = datetime.fromisoformat(self._max_key) + timedelta(microseconds=1)
                        key = time_key(later)
                    statement["stored"] = display_time(key)
                    text = json.dumps(statement, separators=(",", ":"))
                    try:
                        self._db.execute(_INSERT_STATEMENT, self._row(text, "add_statements"))
                    except sqlite3.IntegrityError as exc:
                        raise ValueError(f"statement id {statement['id']} is already stored") from exc
                    self._max_key = key
                    stored.append(statement)
                self._db.execute(_APPLY_VOIDS)
                self._db.execute("commit")
            except BaseException:
                self._db.execute("rollback")
                raise
        return stored

    @property
    def max_key(self) -> str:
        return self._max_key

    def count(self) -> int:
        with self._lock:
            return self._db.execute("select count(*) from statement").fetchone()[0]

    def page(self, query: StatementQuery, rows: int) -> list[tuple[str, str, str]]:
        """Up to `rows` (stored_key, id, display body) rows after `query.after` in query order."""
        # No id sorts after MAX_TEXT: (since, MAX) excludes `since` itself, (until, MAX) keeps `until`.
        low, high = (query.since, MAX_TEXT), (query.until, MAX_TEXT)
        if query.after is not None:
            if query.ascending:
                low = query.after
            else:
                high = query.after
        params = {
            "low_key": low[0],
            "low_id": low[1],
            "high_key": high[0],
            "high_id": high[1],
            "verb": query.verb,
            "registration": query.registration,
            "agent": query.agent,
            "agent_token": f"\n{query.agent}\n",
            "related_agents": int(query.related_agents),
            "activity": query.activity,
            "activity_token": f"\n{query.activity}\n",
            "related_activities": int(query.related_activities),
            "rows": rows,
        }
        sql = self._pages[query.ascending]
        with self._lock:
            fetched = self._db.execute(sql, params).fetchall()
        return [
            (page_key, statement_id, self._display_body(body, ok, stored_key))
            for page_key, statement_id, body, ok, stored_key in fetched
        ]

    def get(self, statement_id: str, voided: bool | None) -> str | None:
        """One statement's display body if it exists with the given voided state (None: either)."""
        with self._lock:
            row = self._db.execute(
                "select stored_key, body, body_is_display from statement"
                " where id = ? and (? is null or is_voided = ?)",
                (statement_id, voided, voided),
            ).fetchone()
        return self._display_body(row[1], row[2], row[0]) if row else None

    @staticmethod
    def _display_body(body: str, body_is_display: int, key: str) -> str:
        if body_is_display:
            return body
        statement = json.loads(body)
        statement["stored"] = display_time(key)
        return json.dumps(statement, separators=(",", ":"))


# -- users (in memory) ---------------------------------------------------------------------------


class UserDirectory:
    """SCIM User resources by id, with their lastModified times as sortable keys."""

    def __init__(self) -> None:
        self._users: dict[str, dict[str, Any]] = {}
        self._modified: dict[str, str] = {}
        self._sorted_ids: list[str] | None = None
        self._lock = threading.Lock()

    def load_jsonl(self, path: Path) -> int:
        loaded = 0
        with open(path, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                user = json.loads(line)
                if not isinstance(user, dict) or not user.get("id"):
                    raise ValueError(f"{path}:{line_number}: a SCIM User must be a JSON object with 'id'")
                self._put(self._with_defaults(user, now_key()))
                loaded += 1
        return loaded

    @staticmethod
    def _with_defaults(user: dict[str, Any], modified_key: str | None) -> dict[str, Any]:
        user = dict(user)
        user["id"] = str(user["id"])
        user.setdefault("schemas", [SCIM_USER_SCHEMA])
        meta = dict(user.get("meta") or {})
        meta.setdefault("resourceType", "User")
        if modified_key is not None and not meta.get("lastModified"):
            meta["lastModified"] = display_time(modified_key)
        meta.setdefault("created", meta["lastModified"])
        user["meta"] = meta
        return user

    def _put(self, user: dict[str, Any]) -> None:
        modified = parse_timestamp(str(user["meta"]["lastModified"]), "meta.lastModified")
        with self._lock:
            if user["id"] not in self._users:
                self._sorted_ids = None
            self._users[user["id"]] = user
            self._modified[user["id"]] = time_key(modified)

    def add_or_update(self, users: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Upsert by id; `meta.lastModified` becomes now, `meta.created` is kept for known users."""
        stored = []
        for original in users:
            user = dict(original)
            user.setdefault("id", str(uuid.uuid4()))
            modified = display_time(now_key())
            existing = self._users.get(str(user["id"]))
            meta = dict(user.get("meta") or {})
            meta["lastModified"] = modified
            meta["created"] = (
                (existing or {}).get("meta", {}).get("created") or meta.get("created") or modified
            )
            user["meta"] = meta
            user = self._with_defaults(user, None)
            self._put(user)
            stored.append(user)
        return stored

    def get(self, user_id: str) -> dict[str, Any] | None:
        return self._users.get(user_id)

    def matching(self, modified_after: str | None, inclusive: bool) -> list[dict[str, Any]]:
        with self._lock:
            if self._sorted_ids is None:
                self._sorted_ids = sorted(self._users)
            ids = self._sorted_ids
            if modified_after is not None:
                ids = [
                    user_id
                    for user_id in ids
                    if self._modified[user_id] > modified_after
                    or (inclusive and self._modified[user_id] == modified_after)
                ]
            return [self._users[user_id] for user_id in ids]

    def __len__(self) -> int:
        return len(self._users)


_SCIM_FILTER = re.compile(r'^\s*meta\.lastModified\s+(gt|ge)\s+"([^"]*)"\s*$', re.IGNORECASE)


def parse_scim_filter(text: str) -> tuple[str, bool]:
    """The one filter this directory supports: ``meta.lastModified gt|ge "<time>"``."""
    match = _SCIM_FILTER.match(text)
    if not match:
        raise BadRequest(
            f'unsupported filter {text!r}; only meta.lastModified gt|ge "<time>" is supported',
            scim_type="invalidFilter",
        )
    try:
        moment = parse_timestamp(match.group(2), "filter value")
    except BadRequest as exc:
        raise BadRequest(str(exc), scim_type="invalidFilter") from exc
    return time_key(moment), match.group(1).lower() == "ge"


# -- HTTP plumbing -------------------------------------------------------------------------------


class RecordedRequest(NamedTuple):
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    # Set on list pages so faults can repeat a page or rewrite its more link.
    endpoint: str | None = None


@dataclass
class Fault:
    kind: str
    path_prefix: str
    remaining: int
    params: dict[str, Any]


def _json_bytes(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "turnover-signals-sample-lms/1.0"
    timeout = 60  # idle keep-alive connections do not pin a thread forever
    # Headers and body go out in separate writes; with Nagle on, each page waits ~40 ms for an ACK.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming convention
        self.server.app.handle(self)  # type: ignore[attr-defined]

    def _read_only(self) -> None:
        # The request body is never read, so the connection cannot be reused afterwards.
        self.close_connection = True
        self.server.app.handle(self)  # type: ignore[attr-defined]

    do_POST = do_PUT = do_DELETE = do_PATCH = _read_only

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: LmsSampleServer) -> None:
        self.app = app
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self.sockets_lock:
            sockets, self.open_sockets = list(self.open_sockets), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# -- the server ----------------------------------------------------------------------------------


# Ways real LRSs bend xAPI 1.0.3 that the server can reproduce (docs/concepts/lms.md: LRSs that bend the
# standard): no version / Consistent-Through headers, a full last page followed by an empty one, no `more` key
# at the end, each page in reverse order, since/until (and paging) on the timestamp instead of stored, and
# voided statements kept in listings with voidedStatementId ignored.
XAPI_DEVIATIONS = (
    "no_version_headers",
    "empty_final_page",
    "more_absent_at_end",
    "reversed_pages",
    "since_on_timestamp",
    "voided_listed",
)
# Ways real SCIM directories bend RFC 7643: Users served without meta.created and meta.lastModified.
SCIM_DEVIATIONS = ("scim_no_meta_times",)


class LmsSampleServer:
    """xAPI LRS + SCIM directory over `data_dir`, on one threaded HTTP server on loopback."""

    xapi_base_path = "/xapi"
    scim_base_path = "/scim/v2"

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        xapi_credentials: tuple[str, str] = ("lrs", "lrs-secret"),
        scim_token: str = "scim-token",
        max_page_size: int = 500,
        scim_max_count: int = 200,
        deviations: Iterable[str] = (),
    ) -> None:
        unknown = set(deviations) - set(XAPI_DEVIATIONS) - set(SCIM_DEVIATIONS)
        if unknown:
            raise ValueError(
                f"unknown deviation(s) {sorted(unknown)}; expected some of "
                f"{XAPI_DEVIATIONS + SCIM_DEVIATIONS}"
            )
        self.deviations = frozenset(deviations)
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.xapi_credentials = xapi_credentials
        self.scim_token = scim_token
        self.max_page_size = max_page_size
        self.scim_max_count = scim_max_count
        self.requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self._last_pages: dict[str, Response] = {}
        self._statements: StatementStore | None = None
        self._users = UserDirectory()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LmsSampleServer:
        """Load the data and start serving; returns once the port accepts connections."""
        if self._httpd is not None:
            return self
        if self._statements is None:
            self._statements = StatementStore(
                since_on_timestamp="since_on_timestamp" in self.deviations,
                voided_listed="voided_listed" in self.deviations,
            )
            statements_file = self.data_dir / "lms" / "statements.jsonl"
            if statements_file.exists():
                self._statements.load_jsonl(statements_file)
            users_file = self.data_dir / "lms" / "users.jsonl"
            if users_file.exists():
                self._users.load_jsonl(users_file)
        self._stopping.clear()
        self._httpd = _Server((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="lms-sample", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close open connections. `start()` again serves the same data and port."""
        self._stopping.set()  # wakes requests sleeping in a delay fault
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            httpd.close_open_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        """Stop and delete the temporary statement database."""
        self.stop()
        if self._statements is not None:
            self._statements.close()
            self._statements = None

    def __enter__(self) -> LmsSampleServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connection details ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def airflow_connections(self) -> dict[str, dict[str, Any]]:
        """The `lms_api` (Basic auth) and `lms_directory` (bearer token) Airflow connections."""
        login, password = self.xapi_credentials
        common = {"conn_type": "http", "host": self.host, "port": self.port, "schema": "http"}
        return {
            "lms_api": {
                **common,
                "login": login,
                "password": password,
                "extra": {"base_path": self.xapi_base_path},
            },
            "lms_directory": {
                **common,
                "password": self.scim_token,
                "extra": {"base_path": self.scim_base_path},
            },
        }

    def airflow_connections_env(self) -> dict[str, str]:
        """``AIRFLOW_CONN_LMS_API`` / ``AIRFLOW_CONN_LMS_DIRECTORY`` as JSON, for env or monkeypatch."""
        return {
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)
            for conn_id, conn in self.airflow_connections().items()
        }

    # -- data --------------------------------------------------------------------------------

    def add_statements(self, statements: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store statements as an LRS would now (sets `stored`, and `id` when missing); returns them."""
        assert self._statements is not None, "start the server first"
        return self._statements.add(statements)

    def add_or_update_users(self, users: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Upsert SCIM users by id with `meta.lastModified` = now; returns them as served."""
        return self._users.add_or_update(users)

    @property
    def statement_count(self) -> int:
        """Statements held, voided ones included."""
        return self._statements.count() if self._statements is not None else 0

    @property
    def user_count(self) -> int:
        return len(self._users)

    # -- faults and request log --------------------------------------------------------------

    def inject_fault(self, kind: str, path_prefix: str = "/xapi", count: int = 1, **params: Any) -> None:
        """Arm a fault for the next `count` requests under `path_prefix` (see the module docs)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if kind == "status":
            params.setdefault("status", 500)
        if kind == "delay":
            params.setdefault("seconds", 2.0)
        with self._faults_lock:
            self._faults.append(Fault(kind, path_prefix, count, params))

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._faults.clear()

    @property
    def armed_faults(self) -> list[Fault]:
        with self._faults_lock:
            return [Fault(f.kind, f.path_prefix, f.remaining, dict(f.params)) for f in self._faults]

    def clear_requests(self) -> None:
        self.requests.clear()

    def _take_fault(self, path: str) -> Fault | None:
        with self._faults_lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- request handling --------------------------------------------------------------------

    def handle(self, handler: _Handler) -> None:
        """Answer one request: record it, apply an armed fault, route it, send the response."""
        headers = {name: handler.headers[name] for name in RECORDED_HEADERS if handler.headers.get(name)}
        if handler.headers.get("Authorization"):
            headers["Authorization"] = handler.headers["Authorization"].split(" ", 1)[0]
        self.requests.append(RecordedRequest(handler.command, handler.path, headers))
        path = urlsplit(handler.path).path
        fault = self._take_fault(path)
        if fault is not None and fault.kind == "status":
            self._send(handler, self._fault_status(path, fault.params))
            return
        if fault is not None and fault.kind == "delay":
            if self._stopping.wait(float(fault.params["seconds"])):
                handler.close_connection = True
                return
        try:
            response = self._route(handler)
        except BadRequest as exc:
            response = self._error(path, HTTPStatus.BAD_REQUEST, str(exc), exc.scim_type)
        except Exception as exc:  # a sample server answers 500 rather than dropping the connection
            log.exception("sample LMS failed on %s", handler.path)
            response = self._error(path, HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {exc}")
        if fault is not None:
            response = self._apply_fault(handler, fault, response)
            if response is None:
                return
        if response.endpoint is not None and response.status == HTTPStatus.OK:
            self._last_pages[response.endpoint] = response
        self._send(handler, response)

    def _apply_fault(self, handler: _Handler, fault: Fault, response: Response) -> Response | None:
        if fault.kind == "repeat_page":
            return self._last_pages.get(response.endpoint or "", response)
        if fault.kind == "more_loop" and response.endpoint is not None:
            document = json.loads(response.body)
            if "more" in document:
                document["more"] = handler.path
                return Response(
                    response.status, _json_bytes(document), response.headers, response.content_type
                )
            return response
        if fault.kind == "malformed_json":
            cut = max(1, len(response.body) * 3 // 5)
            return Response(response.status, response.body[:cut], response.headers, response.content_type)
        if fault.kind == "reset":
            self._send_then_reset(handler, response, fault.params.get("after_bytes"))
            return None
        return response

    def _fault_status(self, path: str, params: dict[str, Any]) -> Response:
        status = int(params["status"])
        response = self._error(path, status, params.get("body") or f"injected fault: HTTP {status}")
        if params.get("retry_after") is not None:
            response.headers["Retry-After"] = str(params["retry_after"])
        return response

    def _send(self, handler: _Handler, response: Response) -> None:
        handler.send_response(response.status)
        self._send_headers(handler, response)
        handler.wfile.write(response.body)

    def _send_headers(self, handler: _Handler, response: Response) -> None:
        handler.send_header("Content-Type", f"{response.content_type}; charset=utf-8")
        handler.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            handler.send_header(name, value)
        handler.end_headers()

    def _send_then_reset(self, handler: _Handler, response: Response, after_bytes: int | None) -> None:
        handler.send_response(response.status)
        self._send_headers(handler, response)
        cut = (
            len(response.body) // 2 if after_bytes is None else min(int(after_bytes), len(response.body) - 1)
        )
        handler.wfile.write(response.body[: max(cut, 0)])
        handler.wfile.flush()
        # SO_LINGER with a zero timeout turns close() into a TCP RST: the client sees a reset
        # connection mid-body rather than a clean end of stream.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
        handler.connection.close()

    def _error(self, path: str, status: int, detail: str, scim_type: str | None = None) -> Response:
        if path.startswith(self.scim_base_path):
            document: dict[str, Any] = {
                "schemas": [SCIM_ERROR_SCHEMA],
                "status": str(int(status)),
                "detail": detail,
            }
            if scim_type:
                document["scimType"] = scim_type
            return Response(int(status), _json_bytes(document), {}, SCIM_CONTENT_TYPE)
        headers = {"X-Experience-API-Version": XAPI_VERSION} if path.startswith(self.xapi_base_path) else {}
        return Response(int(status), _json_bytes({"error": detail, "status": int(status)}), headers)

    def _route(self, handler: _Handler) -> Response:
        parts = urlsplit(handler.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qsl(parts.query, keep_blank_values=True)
        if handler.command != "GET":
            response = self._error(path, HTTPStatus.METHOD_NOT_ALLOWED, "this sample server is read-only")
            response.headers["Allow"] = "GET"
            return response
        if path == f"{self.xapi_base_path}/about":
            return self._xapi_response({"version": [XAPI_VERSION]})
        if path == f"{self.xapi_base_path}/statements":
            return self._statements_resource(handler, query)
        if path == f"{self.scim_base_path}/ServiceProviderConfig":
            return self._service_provider_config()
        if path == f"{self.scim_base_path}/Users":
            return self._scim_users(handler, query)
        if path.startswith(f"{self.scim_base_path}/Users/"):
            return self._scim_user(handler, unquote(path.rsplit("/", 1)[1]))
        return self._error(path, HTTPStatus.NOT_FOUND, f"no resource at {path}")

    # -- xAPI --------------------------------------------------------------------------------

    def _xapi_response(
        self, document: Any, status: int = HTTPStatus.OK, endpoint: str | None = None
    ) -> Response:
        body = document if isinstance(document, bytes) else _json_bytes(document)
        consistent = display_time(max(now_key(), self._statements.max_key if self._statements else ""))
        headers = {
            "X-Experience-API-Version": XAPI_VERSION,
            "X-Experience-API-Consistent-Through": consistent,
        }
        if "no_version_headers" in self.deviations:
            headers = {}
        return Response(int(status), body, headers, endpoint=endpoint)

    def _check_basic_auth(self, handler: _Handler) -> bool:
        header = handler.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, _, password = (
                base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected_login, expected_password = self.xapi_credentials
        return hmac.compare_digest(login, expected_login) & hmac.compare_digest(password, expected_password)

    def _statements_resource(self, handler: _Handler, query: list[tuple[str, str]]) -> Response:
        if not self._check_basic_auth(handler):
            response = self._error(
                self.xapi_base_path, HTTPStatus.UNAUTHORIZED, "Basic authentication required"
            )
            response.headers["WWW-Authenticate"] = 'Basic realm="sample LRS"'
            return response
        version = handler.headers.get("X-Experience-API-Version")
        if not version:
            raise BadRequest("the X-Experience-API-Version header is required")
        if not re.fullmatch(r"1\.0(\.\d+)?", version.strip()):
            raise BadRequest(f"unsupported xAPI version {version!r}; this LRS speaks {XAPI_VERSION}")
        params = dict(query)
        if "cursor" in params:
            if len(params) > 1:
                raise BadRequest("a more link's cursor cannot be combined with other parameters")
            return self._statement_page(StatementQuery.from_cursor(params["cursor"]))
        unknown = sorted(set(params) - STATEMENT_QUERY_PARAMS)
        if unknown:
            raise BadRequest(f"unknown parameter(s): {', '.join(unknown)}")
        if "statementId" in params or "voidedStatementId" in params:
            return self._single_statement(params)
        return self._statement_page(self._parse_statement_query(params))

    def _single_statement(self, params: dict[str, str]) -> Response:
        if "statementId" in params and "voidedStatementId" in params:
            raise BadRequest("statementId and voidedStatementId cannot both be given")
        extra = set(params) - {"statementId", "voidedStatementId", "format", "attachments"}
        if extra:
            raise BadRequest(
                f"statementId/voidedStatementId cannot be combined with {', '.join(sorted(extra))}"
            )
        voided = "voidedStatementId" in params
        statement_id = params["voidedStatementId" if voided else "statementId"]
        assert self._statements is not None
        if "voided_listed" in self.deviations:
            if voided:  # not implemented: the parameter is ignored and the first page of a listing answers
                return self._statement_page(StatementQuery(until=self._statements.max_key or now_key()))
            body = self._statements.get(statement_id, voided=None)
        else:
            body = self._statements.get(statement_id, voided=voided)
        if body is None:
            return self._error(self.xapi_base_path, HTTPStatus.NOT_FOUND, f"no statement {statement_id}")
        return self._xapi_response(body.encode("utf-8"))

    def _parse_statement_query(self, params: dict[str, str]) -> StatementQuery:
        agent = None
        if "agent" in params:
            try:
                agent_document = json.loads(params["agent"])
            except json.JSONDecodeError as exc:
                raise BadRequest("agent must be a JSON Agent or Group") from exc
            identifiers = [
                key
                for key in ("mbox", "mbox_sha1sum", "openid", "account")
                if isinstance(agent_document, dict) and key in agent_document
            ]
            agent = agent_identifier(agent_document)
            if len(identifiers) != 1 or agent is None:
                raise BadRequest(
                    "agent must carry exactly one identifier: mbox, mbox_sha1sum, openid or account"
                )
        limit_text = params.get("limit", "0")
        if not limit_text.isdigit():
            raise BadRequest("limit must be a non-negative integer")
        since = time_key(parse_timestamp(params["since"], "since")) if "since" in params else ""
        until = time_key(parse_timestamp(params["until"], "until")) if "until" in params else MAX_TEXT
        # Freeze the upper bound at what is stored now, so every page of this listing (and any
        # repeat request of a more link) sees the same statements.
        assert self._statements is not None
        until = min(until, self._statements.max_key or now_key())
        return StatementQuery(
            since=since,
            until=until,
            verb=params.get("verb"),
            agent=agent,
            activity=params.get("activity"),
            registration=params.get("registration"),
            related_agents=_parse_bool(params, "related_agents"),
            related_activities=_parse_bool(params, "related_activities"),
            ascending=_parse_bool(params, "ascending"),
            limit=int(limit_text),
        )

    def _statement_page(self, query: StatementQuery) -> Response:
        page_size = min(query.limit or self.max_page_size, self.max_page_size)
        assert self._statements is not None
        # empty_final_page: a full page always links a next one, which may hold nothing (Ralph)
        lookahead = 0 if "empty_final_page" in self.deviations else 1
        rows = self._statements.page(query, page_size + lookahead)
        more = ""
        if len(rows) > page_size or (lookahead == 0 and rows and len(rows) == page_size):
            rows = rows[:page_size]
            last_key, last_id, _ = rows[-1]
            cursor = StatementQuery(**{**query.__dict__, "after": (last_key, last_id)}).to_cursor()
            more = f"{self.xapi_base_path}/statements?cursor={quote(cursor)}"
        if "reversed_pages" in self.deviations:
            rows = rows[
                ::-1
            ]  # each page in the opposite order, paging still forward (Ralph with `ascending`)
        body = b'{"statements":[' + ",".join(body for _, _, body in rows).encode("utf-8") + b"]"
        if more or "more_absent_at_end" not in self.deviations:
            body += b',"more":' + json.dumps(more).encode("ascii")
        return self._xapi_response(body + b"}", endpoint="xapi_statements")

    # -- SCIM --------------------------------------------------------------------------------

    def _check_bearer(self, handler: _Handler) -> Response | None:
        scheme, _, token = handler.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), self.scim_token):
            return None
        response = self._error(
            self.scim_base_path, HTTPStatus.UNAUTHORIZED, "a valid bearer token is required"
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="sample SCIM directory"'
        return response

    def _scim_document(self, document: Any, endpoint: str | None = None) -> Response:
        return Response(HTTPStatus.OK, _json_bytes(document), {}, SCIM_CONTENT_TYPE, endpoint)

    def _with_location(self, user: dict[str, Any]) -> dict[str, Any]:
        meta = {**user["meta"], "location": f"{self.base_url}{self.scim_base_path}/Users/{quote(user['id'])}"}
        if "scim_no_meta_times" in self.deviations:
            meta = {k: v for k, v in meta.items() if k not in ("created", "lastModified")}
        return {**user, "meta": meta}

    def _scim_users(self, handler: _Handler, query: list[tuple[str, str]]) -> Response:
        unauthorized = self._check_bearer(handler)
        if unauthorized:
            return unauthorized
        params = dict(query)
        start_index = _scim_int(params, "startIndex", 1)
        count = min(max(_scim_int(params, "count", self.scim_max_count), 0), self.scim_max_count)
        start_index = max(start_index, 1)  # RFC 7644 3.4.2.4: values below 1 mean 1
        modified_after, inclusive = (
            parse_scim_filter(params["filter"]) if "filter" in params else (None, False)
        )
        users = self._users.matching(modified_after, inclusive)
        page = users[start_index - 1 : start_index - 1 + count]
        document = {
            "schemas": [SCIM_LIST_SCHEMA],
            "totalResults": len(users),
            "itemsPerPage": len(page),
            "startIndex": start_index,
            "Resources": [self._with_location(user) for user in page],
        }
        return self._scim_document(document, endpoint="scim_users")

    def _scim_user(self, handler: _Handler, user_id: str) -> Response:
        unauthorized = self._check_bearer(handler)
        if unauthorized:
            return unauthorized
        user = self._users.get(user_id)
        if user is None:
            return self._error(self.scim_base_path, HTTPStatus.NOT_FOUND, f"User {user_id} not found")
        return self._scim_document(self._with_location(user))

    def _service_provider_config(self) -> Response:
        unsupported = {"supported": False}
        return self._scim_document(
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                "patch": unsupported,
                "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
                "filter": {"supported": True, "maxResults": self.scim_max_count},
                "changePassword": unsupported,
                "sort": unsupported,
                "etag": unsupported,
                "authenticationSchemes": [
                    {
                        "type": "oauthbearertoken",
                        "name": "OAuth Bearer Token",
                        "description": "Authentication with a static bearer token",
                        "primary": True,
                    }
                ],
                "meta": {
                    "resourceType": "ServiceProviderConfig",
                    "location": f"{self.base_url}{self.scim_base_path}/ServiceProviderConfig",
                },
            }
        )


def _parse_bool(params: dict[str, str], name: str) -> bool:
    value = params.get(name, "false").strip().lower()
    if value not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false")
    return value == "true"


def _scim_int(params: dict[str, str], name: str, default: int) -> int:
    if name not in params:
        return default
    try:
        return int(params[name])
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer", scim_type="invalidValue") from exc


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-empty line (helper for tests and the demo)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def main(argv: list[str] | None = None) -> int:
    """Run the sample LMS until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", required=True, help="data directory holding lms/statements.jsonl and lms/users.jsonl"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-page-size", type=int, default=500)
    args = parser.parse_args(argv)

    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    with LmsSampleServer(args.data, args.host, args.port, max_page_size=args.max_page_size) as server:
        print(
            json.dumps(
                {
                    "base_url": server.base_url,
                    "xapi_base_path": server.xapi_base_path,
                    "scim_base_path": server.scim_base_path,
                    "statements": server.statement_count,
                    "users": server.user_count,
                    "connections": server.airflow_connections(),
                }
            ),
            flush=True,
        )
        while not stop_requested.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
