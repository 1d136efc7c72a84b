"""Reading statements from an xAPI 1.0.3 Learning Record Store (connection `lms_api`).

`XapiClient.iter_statement_pages(since, until, limit=..., ascending=True)` sends
``GET {base_url}/statements?since=..&until=..&limit=..&ascending=..`` with
``X-Experience-API-Version: 1.0.3`` on every request (times are always sent as UTC with 'Z') and
follows `more` until it is empty or absent. Auth, retries and the error policy are those of
`HttpSourceClient` (see `http_base`).

Interoperability tolerances (real LRSs deviate from the standard):

- `more` is opaque. xAPI 1.0.3 (Data 2.5, StatementResult) makes it a relative IRL "including the
  full path ... but excluding scheme, host, and port", i.e. relative to the server root, not to
  the LRS endpoint. It is resolved as a URI reference (RFC 3986) against the statements URL, so
  the spec's ``/xapi/statements?...`` resolves against scheme://host:port, an absolute URL is
  used as is, and a non-conforming endpoint-relative ``statements?...`` lands under the LRS
  endpoint. A link to another origin is refused: credentials are never sent elsewhere.
- Servers that cap `limit` below what was asked, return a final empty page, or an empty page
  that still has a `more` link are followed until `more` is empty (or absent / null).
- A page that repeats statements already read in this extraction (overlap, or a stale page from
  a cache) is passed on, with those ids in `StatementPage.already_seen_ids`; deduplication by id
  is the loader's job. Only a listing that stops advancing is an error (`PaginationLoopError`):
  a `more` link pointing at a page already read that contributed new statements, or
  `max_stalled_pages` consecutive pages without a single new statement (empty or repeated).
- Missing `X-Experience-API-Version` / `X-Experience-API-Consistent-Through` response headers are
  tolerated (logged once). The smallest Consistent-Through seen is kept in
  `StatementPages.consistent_through` so the caller can cap its watermark.

Timestamps: `parse_xapi_timestamp` accepts ISO 8601 with 'Z' or any offset and returns an aware
UTC datetime; a value without a timezone raises `TimezoneMissingError` (a `XapiTimestampError`,
itself a ValueError) rather than guessing one.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from turnover_signals.errors import SourceRefusedError
from turnover_signals.sources.http_base import (
    RUNBOOK_PAGINATION,
    RUNBOOK_REFUSED,
    HttpSourceClient,
    JsonResponse,
    PaginationLoopError,
    display_url,
    origin_of,
    to_utc_iso,
    with_query,
)

log = logging.getLogger(__name__)

XAPI_VERSION = "1.0.3"
VERSION_HEADER = "X-Experience-API-Version"
CONSISTENT_THROUGH_HEADER = "X-Experience-API-Consistent-Through"
DEFAULT_PAGE_LIMIT = 500
DEFAULT_MAX_STALLED_PAGES = 3
DEFAULT_SEEN_IDS_WINDOW = 100_000


# -- timestamps ----------------------------------------------------------------------------------


class XapiTimestampError(ValueError):
    """A value that is not a usable xAPI timestamp."""


class TimezoneMissingError(XapiTimestampError):
    """An ISO 8601 timestamp without 'Z' or an offset: its instant is unknown, so it is not guessed."""


def parse_xapi_timestamp(text: Any) -> datetime:
    """Parse an ISO 8601 timestamp with 'Z' or any offset into an aware UTC datetime.

    Raises `TimezoneMissingError` for a timezone-less value and `XapiTimestampError` for anything
    else that is not ISO 8601. Fractions beyond microseconds are truncated.
    """
    if not isinstance(text, str) or not text.strip():
        raise XapiTimestampError(f"{text!r} is not an ISO 8601 timestamp")
    candidate = text.strip()
    if candidate[-1] in "zZ":
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError as exc:
        raise XapiTimestampError(f"{text!r} is not an ISO 8601 timestamp") from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise TimezoneMissingError(f"{text!r} has no timezone ('Z' or an offset such as +00:00)")
    return parsed.astimezone(UTC)


def format_xapi_timestamp(moment: datetime) -> str:
    """An aware datetime as ISO 8601 UTC with 'Z' (microseconds when present); naive ones raise ValueError."""
    return to_utc_iso(moment)


def statement_stored_at(statement: Mapping[str, Any]) -> datetime:
    """The `stored` time of a statement (aware UTC); raises `XapiTimestampError` naming the statement."""
    statement_id = statement.get("id") if isinstance(statement, Mapping) else None
    stored = statement.get("stored") if isinstance(statement, Mapping) else None
    if stored is None:
        raise XapiTimestampError(f"statement {statement_id}: no 'stored' time")
    try:
        return parse_xapi_timestamp(stored)
    except XapiTimestampError as exc:
        raise type(exc)(f"statement {statement_id}: stored {exc}") from None


# -- pages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementPage:
    """One StatementResult as received."""

    page_number: int
    request_url: str
    statements: list[dict[str, Any]]
    more: str  # as sent by the server; "" on the last page
    next_url: str | None  # `more` resolved to an absolute URL; None on the last page
    consistent_through: datetime | None
    xapi_version: str | None
    already_seen_ids: frozenset[str]  # ids this extraction had already received on earlier pages
    raw_body: bytes = field(repr=False)

    @property
    def raw_body_bytes(self) -> int:
        return len(self.raw_body)


class _RecentIds:
    """The last `window` statement ids received (a bounded set: memory stays flat on big backfills)."""

    def __init__(self, window: int):
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._window = window

    def split(self, ids: list[str]) -> tuple[int, frozenset[str]]:
        """Record `ids`; return how many were new and which were already seen."""
        new, seen = 0, set()
        for statement_id in ids:
            if statement_id in self._ids:
                seen.add(statement_id)
                continue
            new += 1
            self._ids.add(statement_id)
            self._order.append(statement_id)
            if len(self._order) > self._window:
                self._ids.discard(self._order.popleft())
        return new, frozenset(seen)


class StatementPages(Iterator[StatementPage]):
    """The pages of one extraction, with running totals for the caller's watermark and logs.

    `consistent_through` is the smallest X-Experience-API-Consistent-Through seen so far (None if
    the server sent none); `complete` turns True once a page without `more` has been received.
    """

    def __init__(self, client: XapiClient, first_url: str, limit: int):
        self.client = client
        self.first_url = first_url
        self.limit = limit
        self.pages = 0
        self.statements = 0
        self.already_seen = 0
        self.stalled_pages = 0
        self.consistent_through: datetime | None = None
        self.complete = False
        self._warned: set[str] = set()
        self._pages = self._walk()

    def __iter__(self) -> StatementPages:
        return self

    def __next__(self) -> StatementPage:
        return next(self._pages)

    def _walk(self) -> Iterator[StatementPage]:
        client = self.client
        recent = _RecentIds(client.seen_ids_window)
        advanced_urls: set[str] = set()
        url = self.first_url
        while True:
            response = client.get_json(url, "statements page")
            statements, more = self._statement_result(response)
            ids = [s["id"] for s in statements if isinstance(s, dict) and isinstance(s.get("id"), str)]
            new_count, seen_ids = recent.split(ids)
            next_url = client.resolve_more(more) if more else None
            page = StatementPage(
                page_number=self.pages + 1,
                request_url=url,
                statements=statements,
                more=more,
                next_url=next_url,
                consistent_through=self._consistent_through(response),
                xapi_version=self._version(response),
                already_seen_ids=seen_ids,
                raw_body=response.raw_body,
            )
            self.pages += 1
            self.statements += len(statements)
            self.already_seen += len(seen_ids)
            if page.consistent_through is not None and (
                self.consistent_through is None or page.consistent_through < self.consistent_through
            ):
                self.consistent_through = page.consistent_through
            if new_count:
                advanced_urls.add(url)
                self.stalled_pages = 0
            else:
                self.stalled_pages += 1
            if seen_ids:
                log.info(
                    "xAPI page %d repeats %d statement(s) already received; passed on for the loader to "
                    "dedupe",
                    page.page_number,
                    len(seen_ids),
                )
            if next_url and 0 < len(statements) < self.limit and new_count:
                self._once(
                    "capped",
                    "xAPI LRS returned %d statements for limit=%d with more to come: it caps the page size",
                    len(statements),
                    self.limit,
                )
            if next_url is None:
                self.complete = True
            yield page
            if next_url is None:
                return
            if next_url in advanced_urls:
                raise self._loop_error(
                    next_url, "the more link points back at a page already read in this extraction"
                )
            if self.stalled_pages >= client.max_stalled_pages:
                raise self._loop_error(
                    next_url,
                    f"{self.stalled_pages} consecutive pages brought no new statement (empty or "
                    "already received) while more links kept coming",
                )
            url = next_url

    def _statement_result(self, response: JsonResponse) -> tuple[list[dict[str, Any]], str]:
        document = response.document
        statements = document.get("statements") if isinstance(document, dict) else None
        more = document.get("more") if isinstance(document, dict) else None
        if not isinstance(statements, list) or not isinstance(more, str | None):
            raise SourceRefusedError(
                f"xAPI LRS {display_url(response.url)}",
                'the answer is JSON but not a StatementResult ({"statements": [...], "more": ...})',
                "check that host and extra base_path of the connection point at the LRS endpoint "
                "(the URL that /statements hangs off)",
                RUNBOOK_REFUSED,
            )
        return statements, (more or "").strip()

    def _consistent_through(self, response: JsonResponse) -> datetime | None:
        value = response.headers.get(CONSISTENT_THROUGH_HEADER)
        if not value:
            self._once(
                "no-consistent",
                "xAPI LRS sends no %s header; the watermark is not capped by it",
                CONSISTENT_THROUGH_HEADER,
            )
            return None
        try:
            return parse_xapi_timestamp(value)
        except XapiTimestampError as exc:
            self._once(
                "bad-consistent",
                "xAPI LRS sent an unusable %s header (%s); ignored",
                CONSISTENT_THROUGH_HEADER,
                exc,
                level=logging.WARNING,
            )
            return None

    def _version(self, response: JsonResponse) -> str | None:
        version = response.headers.get(VERSION_HEADER)
        if not version:
            self._once("no-version", "xAPI LRS sends no %s header; continuing", VERSION_HEADER)
        elif not version.strip().startswith("1.0"):
            self._once(
                "odd-version",
                "xAPI LRS answers with version %r; this client speaks %s",
                version,
                XAPI_VERSION,
                level=logging.WARNING,
            )
        return version

    def _once(self, key: str, message: str, *args: Any, level: int = logging.INFO) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.log(level, message, *args)

    def _loop_error(self, next_url: str, problem: str) -> PaginationLoopError:
        return PaginationLoopError(
            f"xAPI LRS {display_url(self.first_url)}",
            f"{problem} (after page {self.pages}, next: {display_url(next_url)}); stopped instead of looping",
            "nothing was lost: the watermark stays where it was. Report the paging bug to the LMS "
            "vendor with this URL; meanwhile a smaller extra lookback or limit may avoid it",
            RUNBOOK_PAGINATION,
        )


# -- the client ----------------------------------------------------------------------------------


class XapiClient(HttpSourceClient):
    """The Statements resource of an xAPI LRS.

    Extra settings: `max_stalled_pages` (consecutive pages without a new statement before the
    listing counts as stuck) and `seen_ids_window` (how many recent ids are remembered to spot
    repeats). Everything else as `HttpSourceClient`.
    """

    api_name = "xAPI LRS"
    default_conn_id = "lms_api"
    auth_kind = "basic_or_oauth2"
    default_headers = {"Accept": "application/json", VERSION_HEADER: XAPI_VERSION}

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        max_stalled_pages: int = DEFAULT_MAX_STALLED_PAGES,
        seen_ids_window: int = DEFAULT_SEEN_IDS_WINDOW,
        **kwargs: Any,
    ):
        super().__init__(conn_id, **kwargs)
        if max_stalled_pages < 1:
            raise ValueError("max_stalled_pages must be at least 1")
        self.max_stalled_pages = max_stalled_pages
        self.seen_ids_window = seen_ids_window

    @property
    def statements_url(self) -> str:
        return self.url_for("statements")

    def resolve_more(self, more: str) -> str:
        """The absolute URL of a `more` link; refuses one that leaves the LRS's origin."""
        url = urljoin(self.statements_url, more.strip())
        if origin_of(url) != origin_of(self.base_url):
            raise SourceRefusedError(
                f"xAPI LRS {display_url(self.base_url)}",
                f"a more link points at another server ({display_url(url)}); credentials are not sent there",
                "confirm with the LMS vendor which host serves the LRS, and point the connection at it",
                RUNBOOK_REFUSED,
            )
        return url

    def iter_statement_pages(
        self,
        since: datetime | None,
        until: datetime | None = None,
        *,
        limit: int = DEFAULT_PAGE_LIMIT,
        ascending: bool = True,
    ) -> StatementPages:
        """The pages of statements stored after `since` (exclusive) and up to `until` (inclusive).

        Raises ValueError for naive datetimes; `SourceUnavailableError` (after retries),
        `SourceRefusedError` (auth, 4xx, not an LRS) and `PaginationLoopError` while iterating.
        """
        if limit < 0:
            raise ValueError("limit cannot be negative (0 lets the server choose)")
        params: dict[str, Any] = {}
        if since is not None:
            params["since"] = format_xapi_timestamp(since)
        if until is not None:
            params["until"] = format_xapi_timestamp(until)
        if since is not None and until is not None and until < since:
            raise ValueError(f"until ({params['until']}) is before since ({params['since']})")
        params["limit"] = limit
        params["ascending"] = "true" if ascending else "false"
        return StatementPages(self, with_query(self.statements_url, params), limit)

    def iter_statements(
        self,
        since: datetime | None,
        until: datetime | None = None,
        *,
        limit: int = DEFAULT_PAGE_LIMIT,
        ascending: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Every statement of `iter_statement_pages`, in page order (repeats included)."""
        for page in self.iter_statement_pages(since, until, limit=limit, ascending=ascending):
            yield from page.statements

    def voided_statement(self, statement_id: str) -> dict[str, Any] | None:
        """``GET statements?voidedStatementId=...``: a statement the LRS has voided, which it leaves out of
        every listing (xAPI 1.0.3, 2.1.4); None when the LRS does not have it (404) or returns something
        else."""
        response = self.get_json(
            self.statements_url,
            "voided statement",
            params={"voidedStatementId": statement_id},
            missing_ok=True,
        )
        document = response.document
        return document if isinstance(document, dict) and document.get("id") == statement_id else None

    def about(self) -> dict[str, Any]:
        """``GET {base_url}/about``: the versions the LRS speaks (a cheap health check)."""
        document = self.get_json(self.url_for("about"), "about").document
        return document if isinstance(document, dict) else {}
