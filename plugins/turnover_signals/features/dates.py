"""Which reference dates a features build computes, their cut-offs, and whether their inputs are complete.

A feature row for reference date D is a pure function of the facts known by `cutoff(D)` = the end of
D (UTC) + `features.as_of_grace_hours`. D is built only once every input is complete through that
cut-off: an employees file dated D or later is loaded and built into the HR history, and the LMS
extraction has read the LRS past it. Until then a run defers D, and the next run builds it; it is never
built from older data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg

from turnover_signals.errors import BadInputError
from turnover_signals.hris.history import delivery_lag

log = logging.getLogger(__name__)


def as_of_grace(config: Mapping[str, Any]) -> timedelta:
    """How long after the end of a reference date its facts may still become known
    (`features.as_of_grace_hours`)."""
    return timedelta(hours=float(config["features"]["as_of_grace_hours"]))


def cutoff_of(reference_date: date, grace: timedelta) -> datetime:
    """The one cut-off of a reference date: the end of the date (UTC) + the grace."""
    return datetime.combine(reference_date + timedelta(days=1), time(), tzinfo=UTC) + grace


def check_knowledge_rules(config: Mapping[str, Any]) -> None:
    """An HRIS file dated D must count for D: its delivery lag may not exceed the grace."""
    if delivery_lag(config) > as_of_grace(config):
        raise BadInputError(
            "configuration hris.delivery_lag_hours",
            f"{config['hris']['delivery_lag_hours']} h exceeds features.as_of_grace_hours "
            f"({config['features']['as_of_grace_hours']} h), so the employees file dated D would never count "
            "for D",
            "lower hris.delivery_lag_hours "
            "or raise features.as_of_grace_hours in the turnover_signals Variable",
            "turnover_features",
        )


def month_ends_before(reference_date: date, count: int) -> list[date]:
    """The last `count` month-ends strictly before the month of `reference_date`, oldest first."""
    ends = []
    month_start = reference_date.replace(day=1)
    for _ in range(count):
        month_end = month_start - timedelta(days=1)
        ends.append(month_end)
        month_start = month_end.replace(day=1)
    return sorted(ends)


def refuse_future_dates(reference_dates: Iterable[date], now: datetime) -> None:
    """A date that has not ended yet has no complete facts: asking for one is a mistake, said at once."""
    unfinished = sorted(d for d in reference_dates if d >= now.astimezone(UTC).date())
    if unfinished:
        raise BadInputError(
            f"feature build of reference date(s) {', '.join(map(str, unfinished))}",
            f"the date has not ended yet (now {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC); a row for D is "
            "built from what was known by the end of D + features.as_of_grace_hours",
            "request only past dates in the run's reference_dates (the default is the day before the run)",
            "turnover_features",
        )


def built_dates(conn: psycopg.Connection, table: str, version: int) -> set[date]:
    """The reference dates `mart.<table>` holds rows of for this version."""
    if table not in ("employee_features", "employee_features_restated"):
        raise ValueError(table)
    # a loose index scan: one index probe per built date instead of reading every feature row
    rows = conn.execute(
        f"""
        with recursive built as (
            select min(reference_date) as reference_date from mart.{table} where feature_set_version = %(v)s
            union all
            select (select min(features.reference_date) from mart.{table} as features
                    where features.feature_set_version = %(v)s
                        and features.reference_date > built.reference_date)
            from built where built.reference_date is not null
        )
        select reference_date from built where reference_date is not null
        """,  # noqa: S608 - the table is one of two fixed names
        {"v": version},
    ).fetchall()
    return {row[0] for row in rows}


@dataclass(frozen=True)
class InputHorizon:
    """How far each input is complete: the newest employees file date, and the LMS extraction's reach."""

    employees_file_date: date | None
    lms_read_through: datetime | None
    first_snapshot_date: date | None

    @classmethod
    def read(cls, conn: psycopg.Connection) -> InputHorizon:
        employees_file_date, first_snapshot_date = conn.execute(
            """
            select
                (select max(manifest.file_date) from audit.file_manifest as manifest
                 -- a duplicate (the same bytes as an earlier day's) delivers its date too: nothing changed
                 where manifest.feed = 'employees'
                   and manifest.status in ('loaded', 'superseded', 'duplicate')
                   -- and the HR history holds its bytes: a file loaded after the last history build, or
                   -- while it failed, is not in what a feature row would read
                   and exists (select from core.hris_file_knowledge as knowledge
                               where knowledge.sha256 = manifest.sha256)),
                (select min(valid_from) from core.employee_history)
            """
        ).fetchone()
        # An extraction that started at T read everything the LRS had stored by then (by its
        # Consistent-Through, when the LRS sends one); the stored watermark counts as well.
        lms_read_through = conn.execute(
            """
            select max(greatest(coalesce(consistent_through, started_at), watermark_after))
            from audit.lms_extract_batch
            where status = 'published' and source like 'xapi:%%'
            """
        ).fetchone()[0]
        return cls(employees_file_date, lms_read_through, first_snapshot_date)

    def missing(self, reference_date: date, grace: timedelta) -> list[str]:
        """What is not complete yet for `reference_date` (empty: it can be built)."""
        cutoff = cutoff_of(reference_date, grace)
        missing = []
        if self.employees_file_date is None or self.employees_file_date < reference_date:
            missing.append(
                f"no employees file dated {reference_date} or later is in the HR history "
                f"(newest: {self.employees_file_date or 'none'})"
            )
        if self.lms_read_through is None or self.lms_read_through < cutoff:
            read = f"{self.lms_read_through:%Y-%m-%d %H:%M} UTC" if self.lms_read_through else "never"
            missing.append(
                f"the LMS extraction has not read past the cut-off {cutoff:%Y-%m-%d %H:%M} UTC "
                f"(read through {read})"
            )
        return missing


@dataclass
class DatePlan:
    """The dates a build computes now, and those it defers with the reason."""

    to_build: list[date] = field(default_factory=list)
    deferred: dict[date, list[str]] = field(default_factory=dict)

    def deferral_lines(self) -> list[str]:
        return [
            f"reference date {d} deferred: {'; '.join(reasons)}"
            for d, reasons in sorted(self.deferred.items())
        ]


def plan_dates(
    conn: psycopg.Connection,
    config: Mapping[str, Any],
    requested: Sequence[date],
    now: datetime,
    catch_up: bool,
    restate: bool = False,
) -> DatePlan:
    """The requested dates not built yet whose inputs are complete; the others are deferred.

    The first build of a feature set version also backfills month-ends (the training set exists at
    once). With `catch_up` (scheduled runs) every date after the newest built (or backfilled) one through
    the newest requested one is included too, so a date deferred earlier is built as soon as it is
    complete, and a first build leaves no gap before the requested date that a rerun would fill. A
    restatement takes the requested dates as they are ("as known now" needs no completeness).
    """
    version = int(config["features"]["feature_set_version"])
    grace = as_of_grace(config)
    refuse_future_dates(requested, now)
    horizon = InputHorizon.read(conn)
    wanted = set(requested)
    if restate:
        return DatePlan(sorted(d for d in wanted if _after_first_snapshot(d, horizon)))
    existing = built_dates(conn, "employee_features", version)
    backfill = set()
    if not existing and wanted:
        backfill = set(month_ends_before(max(wanted), int(config["features"]["initial_backfill_month_ends"])))
        wanted |= backfill
    newest = max(existing | backfill, default=None)
    if wanted and catch_up and newest is not None:
        # every day since the newest date built (on a first build: the newest month-end it backfills), so a
        # rerun of this run finds nothing more to build than the run itself did
        wanted |= {newest + timedelta(days=n) for n in range(1, (max(wanted) - newest).days)}
    # Before the first HR snapshot nobody is known to be active: such dates would stay empty.
    plan = DatePlan()
    for reference_date in sorted(wanted - existing):
        if not _after_first_snapshot(reference_date, horizon):
            continue
        missing = horizon.missing(reference_date, grace)
        if missing:
            plan.deferred[reference_date] = missing
        else:
            plan.to_build.append(reference_date)
    fail_on_late_hris_files(config, plan, now)
    return plan


def _after_first_snapshot(reference_date: date, horizon: InputHorizon) -> bool:
    return horizon.first_snapshot_date is not None and reference_date >= horizon.first_snapshot_date


def fail_on_late_hris_files(config: Mapping[str, Any], plan: DatePlan, now: datetime) -> None:
    """A date still waiting for its employees file long after it was due is an incident, not a deferral."""
    lateness = timedelta(hours=float(config["hris"]["max_file_lateness_hours"]))
    lag = delivery_lag(config)
    overdue = sorted(
        d
        for d, reasons in plan.deferred.items()
        if any(reason.startswith("no employees file") for reason in reasons)
        and now > cutoff_of(d, lag) + lateness
    )
    if overdue:
        raise BadInputError(
            f"feature build of reference date(s) {', '.join(map(str, overdue))}",
            f"no employees file dated {overdue[-1]} or later has been loaded, more than "
            f"{config['hris']['max_file_lateness_hours']} h (hris.max_file_lateness_hours) after it was due",
            "check hris_sftp_ingest (did the file land on the SFTP server, was it quarantined?); once it is "
            "loaded, clear build_features",
            "turnover_features",
        )
