"""The gate's checks and the normalised `core.lms_activity` columns of each xAPI statement, computed while
fetching.

`include/sql/staging/lms_statement_checks.sql` is the definition: it gives the checks table its columns and
says what each means for any JSON at all. Computing them there cost about 60 µs a statement on one
PostgreSQL backend (regexes, a plpgsql time parser, jsonb field access), the single largest part of an
extraction; here they take a few µs in the fetching process, with msgspec reading only the fields the checks
use. A statement is checked here only when every field it reads has the JSON type the usual statement has
(strings, objects, numbers, booleans or null where expected); anything else (an actor that is an array, an
id that is a number or missing, a non-ASCII verb id, ...) is left to the SQL definition, row by row, so the
two can never disagree on odd input. `tests/integration/test_lms_statement_checks.py` runs both on the
same statements and compares every column. A statement the client refused for its size or depth
(`sources.xapi.StatementBounds`) is checked by neither: `refused_row` gives it its rejected stand-in row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import msgspec

from turnover_signals.sources.xapi import (
    STATEMENT_NOT_STORABLE,
    STATEMENT_TOO_DEEP,
    STATEMENT_TOO_LARGE,
    RefusedStatement,
)

VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"

# The columns of a chunk's checks table: those of lms_statement_checks.sql that the gate and the publisher
# read (the score parts and the declared id are only steps there), in this order; the loader COPYs a row of
# these per statement, plus `is_checked_in_sql`.
CHECK_COLUMNS = (
    "received_order",
    "statement",
    "statement_id",
    "verb_id",
    "object_type",
    "object_id",
    "occurred_at",
    "stored_at",
    "is_timestamp_assumed_utc",
    "is_id_uuid",
    "is_verb_iri",
    "actor_identifier_count",
    "is_in_future",
    "is_stored_in_future",
    "timestamp_problem",
    "is_score_in_range",
    "reject_reason",
    "learner_identifier",
    "learner_identifier_type",
    "event_type",
    "course_id",
    "course_name",
    "score_normalized",
    "is_success",
    "is_completion",
    "duration_seconds",
)

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Only printable ASCII verb ids are checked here: PostgreSQL's \s follows the server's locale beyond ASCII.
_VERB_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^ ]+")
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2})(?::([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,6})[0-9]*)?)?)?)?"
    r"(?:([Zz])|([+-])([0-9]{2})(?::?([0-9]{2}))?)?"
)
_DURATION_PART = r"([0-9]+\.?[0-9]*|\.[0-9]+)"  # a number as numeric reads it: "1.2.3" is none
_DURATION = re.compile(
    rf"P(?:{_DURATION_PART}D)?(?:T(?:{_DURATION_PART}H)?(?:{_DURATION_PART}M)?(?:{_DURATION_PART}S)?)?"
)
_SIX_PLACES = Decimal("0.000001")
_INT4_MAX = 2**31 - 1
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class InSql(Exception):
    """This statement has a shape only the SQL definition decides; check it there."""


class _Statement(msgspec.Struct):
    """The fields of a statement the checks read (missing and JSON null are alike, as with ->>)."""

    id: Any = None
    actor: Any = None
    verb: Any = None
    object: Any = None
    result: Any = None
    timestamp: Any = None
    stored: Any = None


class _Page(msgspec.Struct):
    statements: list[msgspec.Raw]


_PAGE = msgspec.json.Decoder(_Page)
# Numbers as Decimal, as PostgreSQL's numeric: the score checks and the normalised score are exact.
_STATEMENT = msgspec.json.Decoder(_Statement, float_hook=Decimal)


def split_page(body: bytes) -> list[bytes] | None:
    """Each statement of a StatementResult body as the bytes received; None when msgspec cannot read it."""
    try:
        return [bytes(raw) for raw in _PAGE.decode(body).statements]
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _text(value: Any) -> str | None:
    """`->>` of a value that must be a string or null here; anything else is for the SQL definition."""
    if value is None or type(value) is str:
        return value
    raise InSql


def _number(value: Any) -> Decimal | int | None:
    """A JSON number (`jsonb_typeof(...) = 'number'`), else null.

    Beyond 15 significant digits or places, Decimal's 28-digit arithmetic and PostgreSQL's numeric could
    round the normalised score differently: such a score is for the SQL definition.
    """
    kind = type(value)
    if kind is int:
        if -(10**15) < value < 10**15:
            return value
        raise InSql
    if kind is Decimal:
        sign, digits, exponent = value.as_tuple()
        if len(digits) > 15 or not -15 <= exponent <= 15:
            raise InSql
        return value
    return None


def _boolean(value: Any) -> bool | None:
    return value if type(value) is bool else None


def parse_time(value: str | None, is_zone_required: bool) -> tuple[datetime | None, bool]:
    """`core.parse_xapi_timestamp_text(value, is_zone_required)` and whether the value had a zone."""
    if value is None:
        return None, False
    # The shape LRSs send (2026-03-02T09:04:00Z, 2026-03-02T09:04:00.123Z) parsed by the C parser, 5 times
    # faster than the pattern below; its range checks are PostgreSQL's (no year 0, real days, hour < 24).
    if (
        (len(value) == 20 or (len(value) == 24 and value[19] == "."))
        and value[-1] == "Z"
        and value[10] == "T"
        and value[4] == "-"
        and value[7] == "-"
        and value[13] == ":"
        and value[16] == ":"
        and value.isascii()
    ):
        try:
            return datetime.fromisoformat(value), True
        except ValueError:
            pass  # not digits, or not a real date or time: the pattern below says which
    match = _TIME.fullmatch(value.strip(" "))
    if match is None:
        return None, False
    year, month, day, hour, minute, second, fraction, zulu, sign, zone_hour, zone_minute = match.groups()
    has_zone = zulu is not None or sign is not None
    if (is_zone_required and not has_zone) or (hour is None and has_zone):
        return None, has_zone
    year_n, month_n, day_n = int(year), int(month), int(day)
    hour_n, minute_n, second_n = int(hour or 0), int(minute or 0), int(second or 0)
    offset_hour, offset_minute = int(zone_hour or 0), int(zone_minute or 0)
    if (
        year_n < 1
        or not 1 <= month_n <= 12
        or day_n < 1
        or hour_n > 23
        or minute_n > 59
        or second_n > 59
        or offset_hour > 15
        or offset_minute > 59
    ):
        return None, has_zone
    if day_n > _DAYS_IN_MONTH[month_n - 1] or (
        month_n == 2 and day_n == 29 and not (year_n % 4 == 0 and (year_n % 100 != 0 or year_n % 400 == 0))
    ):
        return None, has_zone
    offset = timedelta(hours=offset_hour, minutes=offset_minute)
    zone = timezone(-offset if sign == "-" else offset) if sign else UTC
    micro = int((fraction or "0").ljust(6, "0"))
    try:
        moment = datetime(year_n, month_n, day_n, hour_n, minute_n, second_n, micro, zone)
        return moment.astimezone(UTC), has_zone
    except OverflowError:  # year 1 or 9999 moved past the range Python has (PostgreSQL's is wider)
        raise InSql from None


def _duration_seconds(duration: Any) -> int | None:
    """The definition's duration: no parts (no duration, or not of the pattern) add up to 0 seconds; beyond an
    integer's range it is unknown (None)."""
    if type(duration) is not str:
        return 0  # ->> of a number, boolean or object never matches the pattern
    match = _DURATION.fullmatch(duration)
    if match is None:
        return 0
    if any(part is not None and len(part) > 15 for part in match.groups()):
        # beyond 15 characters a part could round in Decimal's 28 digits where numeric is exact: SQL decides
        raise InSql
    parts = [Decimal(part) if part is not None else 0 for part in match.groups()]
    total = parts[0] * 86400 + parts[1] * 3600 + parts[2] * 60 + parts[3]
    seconds = int(Decimal(total).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return seconds if seconds <= _INT4_MAX else None


def _round6(value: Decimal | int | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value).quantize(_SIX_PLACES, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise InSql from None


def _reject_reason(
    is_id_uuid: bool,
    timestamp_problem: str | None,
    is_in_future: bool,
    is_stored_in_future: bool,
    is_verb_iri: bool,
    identifier_count: int,
    is_scaled_in_range: bool,
    raw_score: Decimal | int | None,
    score_min: Decimal | int | None,
    score_max: Decimal | int | None,
) -> str:
    """Every problem of a statement, in the definition's order."""
    problems = []
    if not is_id_uuid:
        problems.append("id is not a UUID")
    if timestamp_problem is not None:
        problems.append(timestamp_problem)
    if is_in_future:
        problems.append("timestamp is in the future beyond the tolerance")
    if is_stored_in_future:
        problems.append("stored is in the future beyond the tolerance")
    if not is_verb_iri:
        problems.append("verb id is not an IRI")
    if identifier_count != 1:
        problems.append("actor must have exactly one identifier")
    if not is_scaled_in_range:
        problems.append("result.score.scaled outside [-1, 1]")
    if score_min is not None and score_max is not None and score_min > score_max:
        problems.append("result.score.min above max")
    if raw_score is not None and (
        (score_min is not None and raw_score < score_min) or (score_max is not None and raw_score > score_max)
    ):
        problems.append("result.score.raw outside [min, max]")
    return "; ".join(problems)


# The reasons of statements the xAPI client refused whole (sources.xapi.StatementBounds): never parsed, so the
# checks table holds a stand-in for them (`refused_row`) and the rejects table an excerpt, not the statement.
REFUSED_REASONS = (STATEMENT_TOO_LARGE, STATEMENT_TOO_DEEP, STATEMENT_NOT_STORABLE)
REFUSED_KEY = "refused_statement"


def refused_row(received_order: int, refusal: RefusedStatement, future_limit: datetime) -> tuple[Any, ...]:
    """The CHECK_COLUMNS of a statement refused for its size or depth: rejected with that reason.

    Its `statement` is a stand-in: the statement's `id` and `stored` when readable, and under
    `refused_statement` the reason, the measure, the size, the sha256 and the excerpt of what was received.
    Every check that would need the statement parsed is null (unknown, and not counted by the gate's
    per-check expectations; the reject itself is).
    """
    try:
        stored_at = parse_time(refusal.stored, True)[0]
    except InSql:
        stored_at = None
    stand_in: dict[str, Any] = {"id": refusal.statement_id, "stored": refusal.stored}
    stand_in[REFUSED_KEY] = {
        "reason": refusal.reason,
        "detail": refusal.detail,
        "bytes": refusal.size_bytes,
        "sha256": refusal.sha256,
        "excerpt": refusal.excerpt,
    }
    values: dict[str, Any] = dict.fromkeys(CHECK_COLUMNS)
    values.update(
        received_order=received_order,
        statement=json.dumps({k: v for k, v in stand_in.items() if v is not None}, ensure_ascii=False),
        statement_id=refusal.statement_id or f"payload:{refusal.sha256}",
        stored_at=stored_at,
        is_stored_in_future=stored_at is not None and stored_at > future_limit,
        reject_reason=refusal.reason,
    )
    return tuple(values[column] for column in CHECK_COLUMNS)


class StatementChecker:
    """Checks statements one at a time, as lms_statement_checks.sql does, for one chunk's settings."""

    def __init__(self, future_limit: datetime, verb_event_types: Mapping[str, str]):
        self.future_limit = future_limit
        self.verb_event_types = dict(verb_event_types)

    def check(self, received_order: int, statement: bytes) -> tuple[Any, ...] | None:
        """The CHECK_COLUMNS of one statement (`statement` as received, UTF-8), or None for the SQL
        definition."""
        try:
            return self._check(received_order, statement)
        except (InSql, msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            return None

    def _check(self, received_order: int, raw: bytes) -> tuple[Any, ...]:
        statement = _STATEMENT.decode(raw)  # a statement that is not an object fails here: SQL decides
        declared_id = statement.id
        if type(declared_id) is not str or not declared_id:
            raise InSql  # no usable id: the statement is named by the sha256 of its jsonb text
        verb = statement.verb
        verb_id = _text(verb.get("id")) if type(verb) is dict else None
        if verb_id is not None and not (verb_id.isascii() and verb_id.isprintable()):
            raise InSql
        learner_identifier, learner_identifier_type, identifier_count = self._learner(statement.actor)
        object_type, object_id, course_id, course_name = self._activity(statement.object)
        scaled = raw_score = score_min = score_max = None
        is_success = is_completion = None
        duration_seconds = 0
        result = statement.result
        if type(result) is dict:
            score = result.get("score")
            if type(score) is dict:
                scaled = _number(score.get("scaled"))
                raw_score = _number(score.get("raw"))
                score_min = _number(score.get("min"))
                score_max = _number(score.get("max"))
            is_success = _boolean(result.get("success"))
            is_completion = _boolean(result.get("completion"))
            duration_seconds = _duration_seconds(result.get("duration"))
        occurred_at, stored_at, is_assumed_utc = self._times(statement.timestamp, statement.stored)
        is_id_uuid = _UUID.fullmatch(declared_id) is not None
        is_verb_iri = verb_id is not None and _VERB_IRI.fullmatch(verb_id) is not None
        is_in_future = occurred_at is not None and occurred_at > self.future_limit
        # the LRS sets stored: one ahead of our clock is its clock's error, and would carry the watermark
        is_stored_in_future = stored_at is not None and stored_at > self.future_limit
        if occurred_at is None:
            timestamp_problem = "timestamp is not an ISO 8601 time"
        elif stored_at is None:
            timestamp_problem = "stored is missing or not an ISO 8601 time with a zone"
        else:
            timestamp_problem = None
        if scaled is not None:
            score_normalized = _round6(max(scaled, 0))
        elif (
            score_max is not None
            and score_min is not None
            and score_max > score_min
            and raw_score is not None
        ):
            score_normalized = _round6(Decimal(raw_score - score_min) / Decimal(score_max - score_min))
        else:
            score_normalized = None
        is_scaled_in_range = scaled is None or -1 <= scaled <= 1
        is_score_consistent = (score_min is None or score_max is None or score_min <= score_max) and (
            raw_score is None
            or (
                (score_min is None or raw_score >= score_min)
                and (score_max is None or raw_score <= score_max)
            )
        )
        if (
            is_id_uuid
            and timestamp_problem is None
            and not is_in_future
            and not is_stored_in_future
            and is_verb_iri
            and identifier_count == 1
            and is_scaled_in_range
            and is_score_consistent
        ):
            reject_reason = None
        else:
            reject_reason = _reject_reason(
                is_id_uuid,
                timestamp_problem,
                is_in_future,
                is_stored_in_future,
                is_verb_iri,
                identifier_count,
                is_scaled_in_range,
                raw_score,
                score_min,
                score_max,
            )
        return (
            received_order,
            raw.decode("utf-8"),
            declared_id,
            verb_id,
            object_type,
            object_id,
            occurred_at,
            stored_at,
            is_assumed_utc,
            is_id_uuid,
            is_verb_iri,
            identifier_count,
            is_in_future,
            is_stored_in_future,
            timestamp_problem,
            is_scaled_in_range,
            reject_reason,
            learner_identifier,
            learner_identifier_type,
            self.verb_event_types.get(verb_id, "other") if verb_id is not None else "other",
            course_id,
            course_name,
            score_normalized,
            is_success,
            is_completion,
            duration_seconds,
        )

    @staticmethod
    def _learner(actor: Any) -> tuple[str | None, str | None, int]:
        if actor is None:
            return None, None, 0
        if type(actor) is not dict:
            raise InSql  # `?` on an array or a string matches its elements: SQL decides
        has_account, has_mbox = "account" in actor, "mbox" in actor
        has_sha1, has_openid = "mbox_sha1sum" in actor, "openid" in actor
        count = has_account + has_mbox + has_sha1 + has_openid
        if has_account:
            account = actor["account"]
            home_page = name = None
            if type(account) is dict:
                home_page, name = _text(account.get("homePage")), _text(account.get("name"))
            if home_page is None or name is None:
                return None, "account", count
            return f"account:{home_page}|{name}", "account", count
        if has_mbox:
            mbox = _text(actor["mbox"])
            if mbox is None:
                return None, "mbox", count
            if mbox[:7].isascii() and mbox[:7].lower() == "mailto:":
                mbox = mbox[7:]
            return f"mbox:{mbox}", "mbox", count
        if has_sha1:
            digest = _text(actor["mbox_sha1sum"])
            if digest is None:
                return None, "mbox_sha1sum", count
            if not digest.isascii():
                raise InSql  # lower() beyond ASCII follows the server's locale
            return f"mbox_sha1sum:{digest.lower()}", "mbox_sha1sum", count
        if has_openid:
            openid = _text(actor["openid"])
            return (f"openid:{openid}" if openid is not None else None), "openid", count
        return None, None, 0

    @staticmethod
    def _activity(activity: Any) -> tuple[str | None, str | None, str | None, str | None]:
        if type(activity) is not dict:
            return None, None, None, None  # ->> and #>> of an array or a scalar are null
        object_type, object_id = _text(activity.get("objectType")), _text(activity.get("id"))
        name = None
        definition = activity.get("definition")
        if type(definition) is dict:
            names = definition.get("name")
            if type(names) is dict:
                name = _text(names.get("en-US"))
                if name is None:
                    name = _text(names.get("en"))
        course_id = None
        if object_id is not None:
            # regexp_replace(id, '^.*/courses/', ''): the greedy .* ends at the last "/courses/"
            cut = object_id.rfind("/courses/")
            course_id = object_id[cut + 9 :] if cut >= 0 else object_id
        return object_type, object_id, course_id, name if name is not None else object_id

    @staticmethod
    def _times(timestamp: Any, stored: Any) -> tuple[datetime | None, datetime | None, bool]:
        stored_text = stored if type(stored) is str else None  # ->> of a non-string never parses
        if timestamp is None or timestamp == "":
            occurred_text = stored_text
        elif type(timestamp) is str:
            occurred_text = timestamp
        else:
            occurred_text = None
        stored_at, _ = parse_time(stored_text, True)
        occurred_at, has_zone = parse_time(occurred_text, False)
        return occurred_at, stored_at, occurred_at is not None and not has_zone
