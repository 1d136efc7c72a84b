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

Bounds on a statement (`StatementBounds`): a page is split into its statements as received (msgspec keeps each
as raw bytes) before any is parsed, so one statement nested thousands of levels deep or megabytes long cannot
stop a page, or every later run, from loading. A statement larger than `max_bytes` or nested deeper than
`max_depth` is not parsed at all: it comes back in `StatementPage.refused` with its position, reason, size,
sha256 and a short excerpt (and its `id`/`stored` when they can be read), for the loader to record as a
reject; the page's other statements are passed on as usual. A page msgspec cannot split because of the depth
is split by an iterative scanner instead.

Unparsed pages (`iter_statement_pages(..., parse_statements=False)`): for a caller that reads each statement's
bytes itself (the loader checks and stores them as received), the usual page is split and its ids read by
msgspec without building a Python object per statement; `StatementPage.statements` then parses on first use.

Timestamps: `parse_xapi_timestamp` accepts ISO 8601 with 'Z' or any offset and returns an aware
UTC datetime; a value without a timezone raises `TimezoneMissingError` (a `XapiTimestampError`,
itself a ValueError) rather than guessing one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import msgspec

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
DEFAULT_MAX_STATEMENT_DEPTH = 64
DEFAULT_MAX_STATEMENT_BYTES = 1_048_576
DEFAULT_REFUSED_EXCERPT_BYTES = 4096
# json.loads recurses once per level and shares Python's recursion limit (1000) with the caller's stack.
MAX_STATEMENT_DEPTH_ALLOWED = 256
STATEMENT_TOO_LARGE = "statement is larger than lms.max_statement_bytes"
STATEMENT_TOO_DEEP = "statement nests deeper than lms.max_statement_depth"
STATEMENT_NOT_STORABLE = "statement holds JSON that PostgreSQL cannot store"
# The escapes PostgreSQL's json and jsonb refuse, though JSON allows them: NUL, and surrogates (paired ones
# are read, an unpaired one refused). A statement holding none of these byte strings holds neither.
_REFUSED_ESCAPE_MARKS = (b"\\u0000", b"\\ud", b"\\uD")
_SURROGATE = re.compile("[\ud800-\udfff]")


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


# -- bounded statement pages ---------------------------------------------------------------------


@dataclass(frozen=True)
class StatementBounds:
    """The largest statement a page may carry: bytes as received and nesting depth (``{}`` is depth 1).

    `excerpt_bytes`: how much of a refused statement is kept (its sha256 and size are kept whole).
    """

    max_depth: int = DEFAULT_MAX_STATEMENT_DEPTH
    max_bytes: int = DEFAULT_MAX_STATEMENT_BYTES
    excerpt_bytes: int = DEFAULT_REFUSED_EXCERPT_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= MAX_STATEMENT_DEPTH_ALLOWED:
            raise ValueError(f"max_depth must be between 1 and {MAX_STATEMENT_DEPTH_ALLOWED}")
        if self.max_bytes < 1 or self.excerpt_bytes < 0:
            raise ValueError("max_bytes must be positive and excerpt_bytes not negative")


@dataclass(frozen=True)
class RefusedStatement:
    """A statement of a page refused whole for its size, its depth or what it holds (JSON PostgreSQL cannot
    store): never parsed, never loaded."""

    position: int  # 1-based, on its page
    reason: str  # STATEMENT_TOO_LARGE, STATEMENT_TOO_DEEP or STATEMENT_NOT_STORABLE
    # the measure against the bound, e.g. "10485931 bytes, over 1048576", or what cannot be stored
    detail: str
    size_bytes: int
    sha256: str  # of the statement's bytes as received
    excerpt: str  # its first `excerpt_bytes` as received (UTF-8, cut at a character boundary)
    statement_id: str | None  # its top-level `id`, when that is a string that could be read
    stored: str | None  # likewise its `stored`

    @property
    def is_excerpt_truncated(self) -> bool:
        return len(self.excerpt.encode("utf-8")) < self.size_bytes


@dataclass(frozen=True)
class DecodedStatementPage:
    """A statements page split and bounded: what `XapiClient.decode_statement_page` returns."""

    is_statement_result: bool  # a JSON object whose `statements` is an array
    statements: Sequence[Any]
    texts: list[bytes] | None  # each of `statements` as received (None: re-serialise them)
    refused: list[RefusedStatement]
    more: Any
    has_more_key: bool = False  # `more` present (even if null), for the conformance probe
    statement_ids: list[str] | None = None  # the string ids of `statements`, when read without parsing them


class _TopLevel(msgspec.Struct):
    id: Any = None
    stored: Any = None


class _StatementResult(msgspec.Struct):
    statements: list[msgspec.Raw] | None = None  # each statement's bytes, not parsed
    more: Any = msgspec.UNSET


class _StatementResultIds(msgspec.Struct):
    statements: list[_TopLevel]


_TOP_LEVEL = msgspec.json.Decoder(_TopLevel)
_STATEMENT_RESULT = msgspec.json.Decoder(_StatementResult)
_STATEMENT_RESULT_IDS = msgspec.json.Decoder(_StatementResultIds)


class UnparsedStatements(Sequence[Any]):
    """The statements of a page kept as the bytes received and parsed on first use (`len` needs no parse)."""

    def __init__(self, texts: list[bytes]):
        self._texts = texts
        self._parsed: list[Any] | None = None

    def __len__(self) -> int:
        return len(self._texts)

    def __getitem__(self, index: Any) -> Any:
        if self._parsed is None:
            self._parsed = [json.loads(text) for text in self._texts]
        return self._parsed[index]

    def __eq__(self, other: object) -> bool:
        # Equal to a list (or page) of the same statements, as the parsed page's list would be.
        if isinstance(other, UnparsedStatements | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # compared by content, so unhashable like the list it stands for


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:,]', re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_OPENERS = frozenset(b"[{")
_WHITESPACE = b" \t\r\n"


def nesting_depth(text: bytes) -> int:
    """How deeply a JSON value nests (a scalar 0, ``{}`` 1, ``[{}]`` 2), without recursion."""
    brackets = _JSON_STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for char in brackets:
        if char in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _utf8_body(body: bytes) -> bytes:
    """The body as UTF-8 without a BOM (JSON in UTF-16/32 is transcoded); ValueError if undecodable."""
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode(json.detect_encoding(body)).encode("utf-8")
    return body


def _top_level_strings(text: bytes) -> tuple[str | None, str | None]:
    """The top-level `id` and `stored` of a statement when they are strings (read without recursion)."""
    try:
        found = _TOP_LEVEL.decode(text)
        pairs = {"id": found.id, "stored": found.stored}
    except RecursionError:
        pairs = {}
        depth, key, previous = 0, None, None
        for match in _JSON_TOKEN.finditer(text):
            token = match.group()
            char = token[0]
            if char in _OPENERS:
                depth += 1
            elif char in b"]}":
                depth -= 1
            elif depth == 1 and char == 0x22:  # a string directly in the statement: a key or a value
                if previous == b":" and key in ("id", "stored") and key not in pairs:
                    pairs[key] = json.loads(token)
                key = json.loads(token) if previous != b":" else None
            previous = token if len(token) == 1 else b'"'
    except msgspec.DecodeError:
        try:
            document = json.loads(text)  # what only json reads: an unpaired surrogate, NaN
        except (ValueError, RecursionError):
            return None, None
        pairs = document if isinstance(document, dict) else {}
    values = [pairs.get(name) for name in ("id", "stored")]
    return tuple(value if isinstance(value, str) else None for value in values)  # type: ignore[return-value]


def _refusal(
    text: bytes, position: int, bounds: StatementBounds, depth: int | None, unstorable: str | None = None
) -> RefusedStatement | None:
    """The refusal of one statement beyond a bound or that PostgreSQL cannot store, or None. `depth` when
    already measured; `unstorable` when the caller found already what cannot be stored."""
    size = len(text)
    if size > bounds.max_bytes:
        reason, detail = STATEMENT_TOO_LARGE, f"{size} bytes, over {bounds.max_bytes}"
    else:
        if depth is None and text.count(b"{") + text.count(b"[") > bounds.max_depth:
            depth = nesting_depth(text)
        if depth is not None and depth > bounds.max_depth:
            reason, detail = STATEMENT_TOO_DEEP, f"nested {depth} levels deep, over {bounds.max_depth}"
        else:
            unstorable = unstorable or unstorable_json(text)
            if unstorable is None:
                return None
            reason, detail = STATEMENT_NOT_STORABLE, unstorable
    statement_id, stored = (_storable(value) for value in _top_level_strings(text))
    excerpt = text[: bounds.excerpt_bytes].decode("utf-8", "ignore").replace("\x00", "\ufffd")
    return RefusedStatement(
        position=position,
        reason=reason,
        detail=detail,
        size_bytes=size,
        sha256=hashlib.sha256(text).hexdigest(),
        excerpt=excerpt,
        statement_id=statement_id,
        stored=stored,
    )


def unstorable_json(text: bytes) -> str | None:
    """What a statement (valid JSON within the bounds) holds that PostgreSQL's json and jsonb refuse, or None.

    Such a statement would fail the COPY of its whole chunk, and every later run that fetched it again.
    """
    if not any(mark in text for mark in _REFUSED_ESCAPE_MARKS):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None  # not readable here: the checks say what it is
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
            strings: Any = item.keys()
        elif isinstance(item, list):
            pending.extend(item)
            continue
        elif isinstance(item, str):
            strings = (item,)
        else:
            continue
        for string in strings:
            if "\x00" in string:
                return "a \\u0000 (NUL) in a string"
            if _SURROGATE.search(string):
                return "an unpaired UTF-16 surrogate escape in a string"
    return None


def _storable(value: str | None) -> str | None:
    """A refused statement's id or stored time as the warehouse can keep it: None when it holds a NUL or an
    unpaired surrogate (the refusal is then named by the statement's sha256)."""
    if value is None or "\x00" in value or _SURROGATE.search(value):
        return None
    return value


def _reserialised(statement: Any) -> tuple[bytes, str | None]:
    """A statement parsed by json.loads as JSON text again, and what in it JSON or PostgreSQL cannot hold."""
    try:
        return json.dumps(statement, ensure_ascii=False, allow_nan=False).encode("utf-8"), None
    except UnicodeEncodeError:
        problem = "an unpaired UTF-16 surrogate escape in a string"
    except ValueError:
        problem = "NaN or Infinity, which JSON has no number for"
    return json.dumps(statement).encode("ascii"), problem  # ASCII escapes: an excerpt that can be stored


def _split_deep_result(body: bytes) -> tuple[bool, list[tuple[bytes, int]], bytes | None, bool]:
    """A StatementResult split without recursion: (has a statements array, [(statement, depth)], more token,
    whether `more` is there).

    For the pages msgspec cannot split (a statement nested deeper than Python's recursion limit). Raises
    ValueError when the brackets do not balance (a truncated body).
    """
    depth = 0
    value_key: str | None = None
    key_token: bytes | None = None
    previous: bytes | None = None
    found = in_statements = False
    elements: list[tuple[bytes, int]] = []
    element_start = element_depth = 0
    more_token: bytes | None = None
    has_more_key = False

    def finish(end: int, closing: bool) -> None:
        text = body[element_start:end].strip(_WHITESPACE)
        if text:
            elements.append((text, element_depth))
        elif not (closing and previous == b"["):  # "[]" is empty; "[1,,2]" or "[1,]" is broken
            raise ValueError("an empty element in the statements array")

    for match in _JSON_TOKEN.finditer(body):
        token = match.group()
        char = token[0]
        if char in _OPENERS:
            if depth == 0 and char != 0x7B:
                return False, [], None, False  # a document that is not an object
            if depth == 1 and char == 0x5B and value_key == "statements" and not found:
                found = in_statements = True
                element_start, element_depth = match.end(), 0
            depth += 1
            if in_statements and depth > 2:
                element_depth = max(element_depth, depth - 2)
        elif char in b"]}":
            if in_statements and depth == 2:
                finish(match.start(), closing=True)
                in_statements = False
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced brackets")
        elif char == 0x2C:  # ","
            if in_statements and depth == 2:
                finish(match.start(), closing=False)
                element_start, element_depth = match.end(), 0
            elif depth == 1:
                value_key = None
        elif char == 0x3A:  # ":"
            if depth == 1 and key_token is not None:
                value_key = json.loads(key_token)
                has_more_key = has_more_key or value_key == "more"
        elif depth == 1:  # a string directly in the document: a key, or the value of `more`
            if previous == b":" and value_key == "more":
                more_token = token
            key_token = token if previous != b":" else None
        previous = token if len(token) == 1 else b'"'
    if depth != 0 or in_statements:
        raise ValueError("unbalanced brackets")
    return found, elements, more_token, has_more_key


def decode_statement_page(
    body: bytes, bounds: StatementBounds, parse_statements: bool = True
) -> DecodedStatementPage:
    """Split a statements page into its statements, refusing those beyond `bounds`, and parse the rest (when
    not `parse_statements`, the usual page's statements are left unparsed and only their ids read).

    Raises ValueError for a body that is not JSON (the client retries it as a truncated transfer).
    """
    body = _utf8_body(body)
    try:
        document = _STATEMENT_RESULT.decode(body)
    except msgspec.ValidationError:
        return DecodedStatementPage(False, [], None, [], None)  # not an object, or statements not an array
    except RecursionError:
        found, elements, more_token, has_more_key = _split_deep_result(body)
        if not found:
            return DecodedStatementPage(False, [], None, [], None)
        more = json.loads(more_token) if more_token is not None else None
        return _bounded(elements, more, bounds, has_more_key)
    except msgspec.DecodeError:
        return _decoded_by_json(body, bounds)  # what only json reads (NaN, ...), else ValueError
    if document.statements is None:
        return DecodedStatementPage(False, [], None, [], None)
    raws = [bytes(raw) for raw in document.statements]
    has_more_key = document.more is not msgspec.UNSET
    more = document.more if has_more_key else None
    max_bytes, max_depth = bounds.max_bytes, bounds.max_depth
    # Few brackets cannot nest deeply: most statements are cleared by three C-speed measures.
    if any(
        len(raw) > max_bytes
        or raw.count(b"{") + raw.count(b"[") > max_depth
        or (b"\\u" in raw and any(mark in raw for mark in _REFUSED_ESCAPE_MARKS))
        for raw in raws
    ):
        return _bounded([(raw, None) for raw in raws], more, bounds, has_more_key)
    if not parse_statements:
        try:
            tops = _STATEMENT_RESULT_IDS.decode(body).statements
        except msgspec.ValidationError:
            pass  # a statement that is not an object: parsed below, as for any caller
        else:
            ids = [top.id for top in tops if type(top.id) is str]
            return DecodedStatementPage(True, UnparsedStatements(raws), raws, [], more, has_more_key, ids)
    # the usual page: one json.loads of the whole body is cheaper than one per statement
    return DecodedStatementPage(True, json.loads(body)["statements"], raws, [], more, has_more_key)


def _bounded(
    elements: list[tuple[bytes, int | None]], more: Any, bounds: StatementBounds, has_more_key: bool
) -> DecodedStatementPage:
    statements: list[Any] = []
    texts: list[bytes] = []
    refused: list[RefusedStatement] = []
    for position, (text, depth) in enumerate(elements, start=1):
        refusal = _refusal(text, position, bounds, depth)
        if refusal is not None:
            refused.append(refusal)
            continue
        statements.append(json.loads(text))
        texts.append(text)
    return DecodedStatementPage(True, statements, texts, refused, more, has_more_key)


def _decoded_by_json(body: bytes, bounds: StatementBounds) -> DecodedStatementPage:
    """A body msgspec refuses but json.loads reads (non-standard literals such as NaN): bounded on the
    re-serialised statements, which the loader stores (as before)."""
    try:
        document = json.loads(body)
    except RecursionError:
        raise ValueError("not JSON that can be split") from None
    statements = document.get("statements") if isinstance(document, dict) else None
    if not isinstance(statements, list):
        return DecodedStatementPage(False, [], None, [], None)
    refused = []
    for n, statement in enumerate(statements, start=1):
        text, problem = _reserialised(statement)
        refusal = _refusal(text, n, bounds, None, problem)
        if refusal is not None:
            refused.append(refusal)
    positions = {refusal.position for refusal in refused}
    kept = [s for n, s in enumerate(statements, start=1) if n not in positions]
    return DecodedStatementPage(True, kept, None, refused, document.get("more"), "more" in document)


# -- pages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementPage:
    """One StatementResult as received.

    `statements` are those within the client's `StatementBounds` (parsed), `statement_texts` the same as
    received (None when built from parsed statements), `refused` the others.
    """

    page_number: int
    request_url: str
    statements: Sequence[dict[str, Any]]  # a list, or `UnparsedStatements` (parse_statements=False)
    more: str  # as sent by the server; "" on the last page
    next_url: str | None  # `more` resolved to an absolute URL; None on the last page
    consistent_through: datetime | None
    xapi_version: str | None
    already_seen_ids: frozenset[str]  # ids this extraction had already received on earlier pages
    raw_body: bytes = field(repr=False)
    statement_texts: list[bytes] | None = field(default=None, repr=False)
    refused: tuple[RefusedStatement, ...] = ()

    @property
    def raw_body_bytes(self) -> int:
        return len(self.raw_body)

    @property
    def received(self) -> int:
        """Statements on the page, refused ones included."""
        return len(self.statements) + len(self.refused)


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

    def __init__(self, client: XapiClient, first_url: str, limit: int, parse_statements: bool = True):
        self.client = client
        self.first_url = first_url
        self.limit = limit
        self.parse_statements = parse_statements
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
        decode = (
            client.decode_statement_page if self.parse_statements else client.decode_unparsed_statement_page
        )
        while True:
            response = client.get_json(url, "statements page", decode=decode)
            decoded, more = self._statement_result(response)
            statements = decoded.statements
            ids = decoded.statement_ids
            if ids is None:
                ids = [s["id"] for s in statements if isinstance(s, dict) and isinstance(s.get("id"), str)]
            # a refused statement still advances the listing (by its id, else its bytes' digest)
            ids += [refusal.statement_id or f"sha256:{refusal.sha256}" for refusal in decoded.refused]
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
                statement_texts=decoded.texts,
                refused=tuple(decoded.refused),
            )
            for refusal in decoded.refused:
                log.warning(
                    "xAPI page %d: the statement at position %d (id %s, sha256 %s) is refused whole: %s "
                    "(%s); it is recorded as a reject and the page's other statements load",
                    page.page_number,
                    refusal.position,
                    refusal.statement_id or "unreadable",
                    refusal.sha256[:16],
                    refusal.reason,
                    refusal.detail,
                )
            self.pages += 1
            self.statements += page.received
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
            if next_url and 0 < page.received < self.limit and new_count:
                self._once(
                    "capped",
                    "xAPI LRS returned %d statements for limit=%d with more to come: it caps the page size",
                    page.received,
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

    def _statement_result(self, response: JsonResponse) -> tuple[DecodedStatementPage, str]:
        decoded: DecodedStatementPage = response.document
        more = decoded.more
        if not decoded.is_statement_result or not isinstance(more, str | None):
            raise SourceRefusedError(
                f"xAPI LRS {display_url(response.url)}",
                'the answer is JSON but not a StatementResult ({"statements": [...], "more": ...})',
                "check that host and extra base_path of the connection point at the LRS endpoint "
                "(the URL that /statements hangs off)",
                RUNBOOK_REFUSED,
            )
        return decoded, (more or "").strip()

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
    listing counts as stuck), `seen_ids_window` (how many recent ids are remembered to spot
    repeats) and `statement_bounds` (the largest statement parsed). Everything else as `HttpSourceClient`.
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
        statement_bounds: StatementBounds | None = None,
        **kwargs: Any,
    ):
        super().__init__(conn_id, **kwargs)
        if max_stalled_pages < 1:
            raise ValueError("max_stalled_pages must be at least 1")
        self.max_stalled_pages = max_stalled_pages
        self.seen_ids_window = seen_ids_window
        self.statement_bounds = statement_bounds or StatementBounds()

    def decode_statement_page(self, body: bytes) -> DecodedStatementPage:
        """A statements page body split and bounded by `statement_bounds` (see `decode_statement_page`)."""
        return decode_statement_page(body, self.statement_bounds)

    def decode_unparsed_statement_page(self, body: bytes) -> DecodedStatementPage:
        """The same, the usual page's statements left as bytes (parsed on first use), only their ids read."""
        return decode_statement_page(body, self.statement_bounds, parse_statements=False)

    def _decode_single_statement(self, body: bytes) -> Any:
        """One statement's document, or its `RefusedStatement` when it is beyond `statement_bounds`."""
        body = _utf8_body(body)
        text = body.strip(_WHITESPACE)
        refusal = _refusal(text, 1, self.statement_bounds, None)
        if refusal is not None:
            return refusal
        document = json.loads(body)
        _, problem = _reserialised(document)  # NaN or Infinity, which json.loads reads and JSON has not
        return _refusal(text, 1, self.statement_bounds, None, problem) if problem else document

    def decode_document(self, body: bytes) -> Any:
        """Any answer of the statements resource as plain JSON; a StatementResult without the statements
        beyond `statement_bounds` (for the conformance probe and the watcher, which only look)."""
        page = decode_statement_page(body, self.statement_bounds)
        if not page.is_statement_result:
            return json.loads(_utf8_body(body))
        document: dict[str, Any] = {"statements": page.statements}
        if page.has_more_key:
            document["more"] = page.more
        return document

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
        parse_statements: bool = True,
    ) -> StatementPages:
        """The pages of statements stored after `since` (exclusive) and up to `until` (inclusive).

        Without `parse_statements`, each page's `statements` are parsed only when read: for a caller that
        reads `statement_texts` (see the module's "Unparsed pages").

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
        return StatementPages(self, with_query(self.statements_url, params), limit, parse_statements)

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
        else, or when it is beyond `statement_bounds` (logged: it stays unknown, like one never returned)."""
        response = self.get_json(
            self.statements_url,
            "voided statement",
            params={"voidedStatementId": statement_id},
            missing_ok=True,
            decode=self._decode_single_statement,
        )
        document = response.document
        if isinstance(document, RefusedStatement):
            log.warning(
                "xAPI voided statement %s is refused whole: %s (%s); it stays unknown",
                statement_id,
                document.reason,
                document.detail,
            )
            return None
        return document if isinstance(document, dict) and document.get("id") == statement_id else None

    def about(self) -> dict[str, Any]:
        """``GET {base_url}/about``: the versions the LRS speaks (a cheap health check)."""
        document = self.get_json(self.url_for("about"), "about").document
        return document if isinstance(document, dict) else {}
