"""Simulated time: days as date ordinals, instants as integer milliseconds since the Unix epoch (UTC).

Integers keep the hot loops cheap and the output exact; formatting is cached per day.
"""

from __future__ import annotations

from datetime import date, timedelta

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

_iso_date_cache: dict[int, str] = {}


def day_start_ms(day_ordinal: int) -> int:
    """The instant 00:00:00.000 UTC of a day."""
    return (day_ordinal - _EPOCH_ORDINAL) * DAY_MS


def day_of_ms(instant_ms: int) -> int:
    """The date ordinal an instant falls on (UTC)."""
    return instant_ms // DAY_MS + _EPOCH_ORDINAL


def iso_date(day_ordinal: int) -> str:
    """`YYYY-MM-DD` for a date ordinal."""
    text = _iso_date_cache.get(day_ordinal)
    if text is None:
        text = date.fromordinal(day_ordinal).isoformat()
        _iso_date_cache[day_ordinal] = text
    return text


_day_prefix_cache: dict[int, str] = {}
# Ten million timestamps are formatted in a large run: look the time of day up in two small tables
# ("HH:MM:" per minute, "SS.mmmZ" per millisecond of a minute; about 4 MB) instead of formatting it.
_MINUTE_TEXT = [f"{minute // 60:02d}:{minute % 60:02d}:" for minute in range(24 * 60)]
_SECOND_MILLIS_TEXT = [f"{millis // 1000:02d}.{millis % 1000:03d}Z" for millis in range(MINUTE_MS)]


def iso_instant(instant_ms: int) -> str:
    """ISO 8601 UTC with millisecond precision and a `Z`: `2025-03-04T09:15:02.123Z`."""
    day_index, within_day = divmod(instant_ms, DAY_MS)
    prefix = _day_prefix_cache.get(day_index)
    if prefix is None:
        prefix = _day_prefix_cache[day_index] = iso_date(day_index + _EPOCH_ORDINAL) + "T"
    minute, millis = divmod(within_day, MINUTE_MS)
    return prefix + _MINUTE_TEXT[minute] + _SECOND_MILLIS_TEXT[millis]


def iso_instant_seconds(instant_ms: int) -> str:
    """ISO 8601 UTC to the second, as SCIM servers usually write `meta` times: `2025-03-04T09:15:02Z`."""
    return iso_instant(instant_ms)[:19] + "Z"


def months_before(end: date, months: int) -> date:
    """The first day of the period of `months` whole months that ends on `end` (inclusive).

    For an end on the last day of a month this is the first day of a month; otherwise it is the
    day after the same day-of-month `months` months earlier (clamped to short months).
    """
    following = end + timedelta(days=1)
    if following.day == 1:
        # `end` is a month end: the period is whole calendar months.
        return _shift_months(following.year, following.month, -months, 1)
    return _shift_months(end.year, end.month, -months, end.day) + timedelta(days=1)


def _shift_months(year: int, month: int, delta: int, day: int) -> date:
    """The date `delta` months from (year, month), with `day` clamped to the month's length."""
    index = year * 12 + (month - 1) + delta
    year, month = divmod(index, 12)
    month += 1
    next_month_start = date(year + month // 12, month % 12 + 1, 1)
    return date(year, month, min(day, (next_month_start - timedelta(days=1)).day))


def iso_duration_minutes(minutes: int) -> str:
    """An ISO 8601 duration such as `PT42M` or `PT1H5M`."""
    hours, minute = divmod(minutes, 60)
    if hours:
        return f"PT{hours}H{minute}M" if minute else f"PT{hours}H"
    return f"PT{minute}M"
