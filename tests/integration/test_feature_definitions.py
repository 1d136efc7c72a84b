"""Each feature pinned to a value worked out by hand from its definition in include/feature_dictionary.csv.

One warehouse for the module: every case is its own employee with a few hand-made HR intervals,
pay changes or xAPI statements (through the helpers of tests/integration/test_turnover_features.py),
identities are resolved once and reference date D is built once. The tests read the rows kept from
that build; the restatement test, which adds events dated after D, then rebuilds D in place.

Windows follow the dictionary: "N days ending at the reference date" is D-(N-1) .. D inclusive, so
activity 29 days back is in the 30-day window and 30 days back is not; the same holds for the
365-day look-back, the 90 days of team leavers and the year of a pay freeze.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from tests.databases import DatabaseCopies
from tests.integration.hris_helpers import insert_pay_changes
from tests.integration.test_identity_resolution import CORP, account_learner, employee, lms_user
from tests.integration.test_turnover_features import (
    D,
    catalog,
    courses,
    inputs_complete_through,
    statement,
    void,
)
from turnover_signals.config import load_config
from turnover_signals.features.build import NON_FEATURE_COLUMNS, build_features
from turnover_signals.identity.resolve import resolve_identities

pytestmark = pytest.mark.integration

ONE_DAY = timedelta(days=1)
BOSS_A_HIRE = date(2015, 1, 5)
BOSS_B_HIRE = date(2018, 4, 2)
CASE_HIRE = date(2022, 3, 1)


def back(days: int, hour: int = 12, minute: int = 0) -> datetime:
    """A moment `days` days before D (negative: after D), in UTC, the zone activity days are cut in."""
    moment = D - timedelta(days=days)
    return datetime(moment.year, moment.month, moment.day, hour, minute, tzinfo=UTC)


def learner(employee_id: str) -> str:
    return f"mbox:{employee_id.lower()}@{CORP}"


def hired(conn, employee_id, *, hire=CASE_HIRE, term=None, intervals=None, **attributes):
    """Intervals of an employee (matched to their mbox actor by work email), each with `attributes`."""
    email = f"{employee_id.lower()}@{CORP}"
    intervals = intervals or [(hire, None)]
    employee(
        conn,
        employee_id,
        email=email,
        hire=hire,
        term=term,
        intervals=[(start, end, email) for start, end in intervals],
    )
    for start, _ in intervals if attributes else ():
        set_hr(conn, employee_id, start, **attributes)


def set_hr(conn, employee_id, valid_from=None, **attributes):
    """Set HR attributes of one employee's intervals (the one starting at `valid_from`, else all)."""
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in attributes)
    conn.execute(
        sql.SQL(
            "update core.employee_history set {} where employee_id = %s"
            " and (%s::date is null or valid_from = %s::date)"
        ).format(assignments),
        (*attributes.values(), employee_id, valid_from, valid_from),
    )


def learns(conn, employee_id, *activity):
    """Statements of one employee: (days back, event, course, score, seconds[, hour])."""
    for number, (days, event, course, score, seconds, *hour) in enumerate(activity):
        statement(
            conn,
            f"{employee_id}-{number}",
            learner(employee_id),
            back(days, *(hour or [12])),
            event=event,
            course=course,
            score=score,
            seconds=seconds,
        )


def pay(conn, employee_id, *changes):
    """Pay changes (effective date, change type, change %)."""
    for effective, change_type, pct in changes:
        # known from the file of its effective date, as a change reported on time is
        known = datetime.combine(effective + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        insert_pay_changes(conn, (employee_id, effective, change_type, 50000, 50000, "USD", pct, "x", known))


# -- the cases ------------------------------------------------------------------------------------

# L-EDGE: one enrolment on each window edge (days back, score, seconds): 0 is D itself at 23:00
# UTC, -1 is midnight UTC after D. Durations double so each window's minutes tell which days
# it took in: 30d = 1+2, 90d = 1+2+4+8, 180d = 1+2+4+8+16+32 minutes.
WINDOW_EDGES = (
    (0, 0.9, 60),
    (29, 0.7, 120),
    (30, 0.5, 240),
    (89, 0.3, 480),
    (90, 0.2, 960),
    (179, 0.1, 1920),
    (180, 1.0, 3840),
    (-1, 0.0, 7680),
)

MANDATORY_CASES = {
    # employee: (statements, overdue at D); CMP-101 is due within 30 days, SEC-301 within 14
    "M-DUE-31": ([(31, "enrolled", "CMP-101")], 1),  # D-31 + 30 = D-1: overdue
    "M-DUE-30": ([(30, "enrolled", "CMP-101")], 0),  # due on D itself: not yet overdue
    "M-DONE": ([(60, "enrolled", "CMP-101"), (50, "completed", "CMP-101")], 0),  # completed since
    "M-SAME-DAY": ([(45, "enrolled", "CMP-101", 9), (45, "completed", "CMP-101", 15)], 0),
    "M-REASSIGNED": (
        [(200, "enrolled", "CMP-101"), (190, "completed", "CMP-101"), (60, "enrolled", "CMP-101")],
        1,
    ),
    "M-DONE-AFTER-D": ([(60, "enrolled", "CMP-101"), (-1, "completed", "CMP-101")], 1),
    "M-OPTIONAL": ([(100, "enrolled", "DEV-201")], 0),  # not mandatory
    "M-TWO": ([(40, "enrolled", "CMP-101"), (15, "enrolled", "SEC-301")], 2),
    "M-LOOKBACK-364": ([(364, "enrolled", "CMP-101")], 1),
    "M-LOOKBACK-365": ([(365, "enrolled", "CMP-101")], 0),  # before the 365-day look-back
}


def learning_cases(conn):
    catalog(
        conn
    )  # CMP-101: difficulty 1, mandatory in 30 days, {compliance, ethics}; DEV-201: 3, {python, data}
    courses(
        conn,
        ("SEC-301", "Security", 5, True, 14, ["security", "compliance"]),
        ("LDR-401", "Leading", 2, False, None, ["leadership"]),
    )
    for case in (
        "L-EDGE",
        "L-TREND",
        "L-QUIET",
        "L-YEAR",
        "L-OLD",
        "S-BREADTH",
        "S-REPEAT",
        *MANDATORY_CASES,
    ):
        hired(conn, case)
    learns(
        conn,
        "L-EDGE",
        *[
            (days, "enrolled", f"EDGE-{days}", score, seconds, {0: 23, -1: 0}.get(days, 12))
            for days, score, seconds in WINDOW_EDGES
        ],
        (2, "passed", "EDGE-29", None, None),
    )  # a second touch of a course already in the window
    # two events in the last 30 days, three in the 90 before (D-119 .. D-30), two older still
    learns(
        conn,
        "L-TREND",
        *[(days, "experienced", "TREND", None, 60) for days in (5, 29, 30, 60, 119, 120, 150)],
    )
    learns(conn, "L-YEAR", (364, "experienced", "DEV-201", None, 60))
    learns(conn, "L-OLD", (365, "experienced", "DEV-201", None, 60))
    for case, (activity, _) in MANDATORY_CASES.items():
        learns(
            conn, case, *[(days, event, course, None, 60, *hour) for days, event, course, *hour in activity]
        )
    learns(
        conn,
        "S-BREADTH",
        (10, "completed", "CMP-101", None, 60),
        (179, "completed", "SEC-301", None, 60),
        (180, "completed", "DEV-201", None, 60),
        (100, "enrolled", "LDR-401", None, 60),
        (5, "completed", "NOT-IN-CATALOG", None, 60),
    )
    learns(
        conn,
        "S-REPEAT",
        (10, "completed", "DEV-201", None, 60, 9),
        (10, "completed", "DEV-201", None, 60, 15),
        (20, "completed", "DEV-201", None, 60),
    )


def hr_cases(conn):
    hired(conn, "MA", hire=BOSS_A_HIRE)
    hired(conn, "MB", hire=BOSS_B_HIRE)
    # MC is in the snapshots from 2026-06-01 but starts only after D (pre-boarding)
    hired(conn, "MC", hire=D + 5 * ONE_DAY, intervals=[(date(2026, 6, 1), None)])
    # H-ATTR: the interval starting on D applies on D; the one starting the day after does not
    hired(
        conn,
        "H-ATTR",
        hire=date(2021, 1, 4),
        manager_id="MB",
        intervals=[(date(2021, 1, 4), D), (D, D + ONE_DAY), (D + ONE_DAY, None)],
    )
    for valid_from, department, location, rating in (
        (date(2021, 1, 4), "Sales", "Oslo", 2),
        (D, "Finance", "Bergen", 4),
        (D + ONE_DAY, "Legal", "Paris", 5),
    ):
        set_hr(
            conn, "H-ATTR", valid_from, department=department, location=location, performance_rating=rating
        )
    # H-ROLE: promoted to Senior Analyst on 2026-03-01; a level change later is no role change,
    # and the role change after D does not count yet
    role_changes = (date(2026, 3, 1), date(2026, 5, 1), date(2026, 8, 1))
    hired(
        conn,
        "H-ROLE",
        hire=date(2020, 1, 6),
        intervals=list(zip((date(2020, 1, 6), *role_changes), (*role_changes, None), strict=True)),
    )
    for valid_from, role, level in zip(
        (date(2020, 1, 6), *role_changes),
        ("Analyst", "Senior Analyst", "Senior Analyst", "Lead"),
        (2, 2, 3, 4),
        strict=True,
    ):
        set_hr(conn, "H-ROLE", valid_from, job_role=role, job_level=level)
    hired(conn, "H-PROMO")
    pay(
        conn,
        "H-PROMO",
        (CASE_HIRE, "hire", None),
        (date(2025, 6, 30), "pay_freeze", 0),  # D-365: over a year ago
        (date(2025, 9, 15), "promotion", 8),
        (date(2026, 3, 1), "merit_increase", 3),
    )
    # The team of MA at D: T1, T2 and T-SCHEDULED (leaves after D). T-PREHIRE is in the snapshot
    # from 2026-06-15 but hired only after D. Leavers in the 90 days D-89 .. D: on D, 89 days
    # back and 20 days back; 90 days back is outside.
    hired(conn, "T1", manager_id="MA")
    hired(conn, "T2", hire=date(2023, 5, 1), manager_id="MA")
    pay(conn, "T2", (date(2023, 5, 1), "hire", None), (date(2026, 1, 15), "merit_increase", 2.5))
    hired(conn, "T-SCHEDULED", hire=date(2021, 9, 1), term=D + 10 * ONE_DAY, manager_id="MA")
    hired(conn, "T-PREHIRE", hire=D + 6 * ONE_DAY, intervals=[(date(2026, 6, 15), None)], manager_id="MA")
    for case, days in (("T-LEFT-ON-D", 0), ("T-LEFT-89", 89), ("T-LEFT-90", 90), ("T-LEFT-20", 20)):
        hired(conn, case, hire=date(2020, 2, 3), term=D - days * ONE_DAY, manager_id="MA")
    hired(conn, "T-NEW-BOSS", hire=date(2024, 1, 8), manager_id="MC")


@pytest.fixture(scope="module")
def features_config():
    config = copy.deepcopy(load_config(use_variable=False))
    config["identity"]["min_active_lms_match_rate"] = 0  # most cases have no LMS account
    config["features"]["initial_backfill_month_ends"] = 0
    # a handful of people: the null bands are for populations, so any feature may be null here
    config["features"]["max_null_fraction"] = dict.fromkeys(config["features"]["max_null_fraction"], 1.0)
    return config


@pytest.fixture(scope="module")
def cases_dsn(migrated_template_db):
    """One warehouse for the module (building D once keeps it fast); the restatement test changes it."""
    with DatabaseCopies() as databases:
        yield databases.copy(migrated_template_db)


def features_of(dsn, reference_date=D, table="employee_features"):
    """hris_employee_id -> the feature columns of its row at the date."""
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL("select * from {} where reference_date = %s").format(sql.Identifier("mart", table)),
            (reference_date,),
        )
        return {
            row["hris_employee_id"]: {k: v for k, v in row.items() if k not in NON_FEATURE_COLUMNS}
            for row in cur.fetchall()
        }


@pytest.fixture(scope="module")
def at_d(cases_dsn, features_config):
    """The rows of D as first built, by HRIS employee id."""
    with psycopg.connect(cases_dsn, autocommit=True) as conn:
        learning_cases(conn)
        hr_cases(conn)
        inputs_complete_through(conn, D)
    resolve_identities(features_config, dsn=cases_dsn)
    assert build_features(features_config, dsn=cases_dsn, reference_dates=[D])["reference_dates_built"] == [
        D.isoformat()
    ]
    return features_of(cases_dsn)


# -- learning windows -----------------------------------------------------------------------------


def test_windows_take_in_the_reference_date_and_n_minus_1_days_before_it(at_d):
    row = at_d["L-EDGE"]
    # 30d: D, D-29; 90d: also D-30, D-89; 180d: also D-90, D-179. D-180 and the day after D never.
    assert (row["enrolments_30d"], row["enrolments_90d"], row["enrolments_180d"]) == (2, 4, 6)
    assert (row["mean_score_30d"], row["mean_score_90d"], row["mean_score_180d"]) == (
        Decimal("0.8"),
        Decimal("0.6"),
        Decimal("0.45"),
    )  # (.9+.7)/2, (+.5+.3)/4, (+.2+.1)/6
    assert (row["learning_minutes_30d"], row["learning_minutes_90d"], row["learning_minutes_180d"]) == (
        3,
        15,
        63,
    )
    # the pass of EDGE-29 two days back touches a course the window already has
    assert (row["distinct_courses_30d"], row["distinct_courses_90d"], row["distinct_courses_180d"]) == (
        2,
        4,
        6,
    )
    assert (row["completions_30d"], row["completion_rate_30d"]) == (0, 0)
    assert (
        row["days_since_last_activity"] == 0
    )  # D itself at 23:00 UTC; the midnight UTC event is the next day


def test_without_activity_counts_are_zero_and_means_null(at_d):
    row = at_d["L-QUIET"]
    assert (row["enrolments_30d"], row["learning_minutes_90d"], row["distinct_courses_180d"]) == (0, 0, 0)
    assert (row["mean_score_30d"], row["completion_rate_30d"], row["days_since_last_activity"]) == (
        None,
        None,
        None,
    )
    assert (row["engagement_trend"], row["skill_tag_breadth_180d"], row["mandatory_courses_overdue"]) == (
        1,
        0,
        0,
    )


def test_engagement_trend_sets_the_last_30_days_against_the_90_before(at_d):
    # last 30 days (D-29 .. D): 5 and 29 days back; prior 90 (D-119 .. D-30): 30, 60 and 119 back;
    # 120 and 150 days back are in neither
    assert at_d["L-TREND"]["engagement_trend"] == Decimal("1.5")  # (2 + 1) / (3 / 3 + 1)
    assert at_d["L-TREND"]["days_since_last_activity"] == 5
    assert at_d["L-YEAR"]["engagement_trend"] == 1  # 364 days back: in neither window


def test_days_since_last_activity_looks_back_365_days(at_d):
    assert at_d["L-YEAR"]["days_since_last_activity"] == 364
    assert at_d["L-YEAR"]["distinct_courses_180d"] == 0
    assert at_d["L-OLD"]["days_since_last_activity"] is None  # 365 days back: more than a year


@pytest.mark.parametrize("case", sorted(MANDATORY_CASES))
def test_mandatory_courses_overdue(at_d, case):
    assert at_d[case]["mandatory_courses_overdue"] == MANDATORY_CASES[case][1]


def test_skill_tag_breadth_and_difficulty_weighted_completions_over_180_days(at_d):
    # touched in D-179 .. D: CMP-101 {compliance, ethics}, SEC-301 {security, compliance}, LDR-401
    # {leadership} (enrolled only) and a course not in the catalog; DEV-201 180 days back is outside
    row = at_d["S-BREADTH"]
    assert row["skill_tag_breadth_180d"] == 4
    assert row["difficulty_weighted_completions_180d"] == 1 + 5  # CMP-101 and SEC-301 completed
    assert (row["completions_180d"], row["distinct_courses_180d"]) == (3, 4)


def test_difficulty_weighted_completions_weigh_every_completion(at_d):
    row = at_d["S-REPEAT"]
    assert row["completions_180d"] == 3
    assert (
        row["difficulty_weighted_completions_180d"] == 3 * 3
    )  # DEV-201 twice 10 days back, once 20 days back


# -- HR as of the date ----------------------------------------------------------------------------


def test_department_location_and_rating_come_from_the_interval_covering_the_date(at_d):
    row = at_d["H-ATTR"]
    assert (row["department"], row["location"], row["performance_rating"]) == ("Finance", "Bergen", 4)
    assert row["manager_tenure_days"] == (D - BOSS_B_HIRE).days


def test_time_in_role_counts_from_the_last_role_change_on_or_before_the_date(at_d):
    row = at_d["H-ROLE"]
    assert row["time_in_role_days"] == (D - date(2026, 3, 1)).days == 121
    assert (row["job_level"], row["tenure_days"]) == (3, (D - date(2020, 1, 6)).days)


def test_promotion_and_pay_changes_as_of_the_date(at_d):
    row = at_d["H-PROMO"]
    assert row["days_since_last_promotion"] == (D - date(2025, 9, 15)).days == 288
    assert row["last_pay_change_pct"] == 3
    assert row["months_since_last_raise"] == 3  # 2026-03-01 .. 2026-06-30: 3 months 29 days
    assert row["is_pay_frozen"] is False  # the freeze was 365 days before D: more than a year ago
    never_promoted = at_d["T2"]  # hired, then a merit increase
    assert (never_promoted["days_since_last_promotion"], never_promoted["last_pay_change_pct"]) == (
        None,
        Decimal("2.5"),
    )
    assert never_promoted["months_since_last_raise"] == 5  # 2026-01-15 .. 2026-06-30: 5 months 15 days
    no_pay_changes = at_d["T1"]
    assert (no_pay_changes["days_since_last_promotion"], no_pay_changes["months_since_last_raise"]) == (
        None,
        None,
    )


def test_team_size_counts_only_colleagues_hired_and_not_yet_gone_at_the_date(at_d):
    # T1, T2 and T-SCHEDULED; not T-PREHIRE (hired after D) nor those who left on or before D
    assert {at_d[case]["team_size"] for case in ("T1", "T2", "T-SCHEDULED")} == {3}
    assert "T-PREHIRE" not in at_d and "T-LEFT-ON-D" not in at_d
    assert at_d["T-NEW-BOSS"]["team_size"] == 1  # the employee alone: their manager starts after D


def test_manager_tenure_needs_a_manager_hired_by_the_date(at_d):
    assert at_d["T1"]["manager_tenure_days"] == (D - BOSS_A_HIRE).days
    assert at_d["T-NEW-BOSS"]["manager_tenure_days"] is None  # MC is listed from 2026-06-01 but hired after D


def test_team_leavers_90d_counts_exits_from_89_days_back_through_the_date(at_d):
    assert at_d["T1"]["team_leavers_90d"] == 3  # on D, 20 and 89 days back; not 90 days back
    assert at_d["H-ATTR"]["team_leavers_90d"] == 0


def test_hr_events_dated_after_the_date_do_not_change_its_restated_features(cases_dsn, features_config, at_d):
    after = D + ONE_DAY
    with psycopg.connect(cases_dsn, autocommit=True) as conn:
        pay(
            conn,
            "H-PROMO",
            (after, "promotion", 12),
            (after, "pay_freeze", 0),
            (D + 10 * ONE_DAY, "merit_increase", 2),
        )
        # T1 moves to MB the day after D
        conn.execute(
            "update core.employee_history set valid_to = %s, is_current = false,"
            " closed_by = 'attribute_change' where employee_id = 'T1'",
            (after,),
        )
        hired(conn, "T1", intervals=[(after, None)], manager_id="MB")
        # T2's exit the day after D is recorded on the interval covering D (a corrected file)
        set_hr(conn, "T2", termination_date=after, termination_category="voluntary")
        # a newcomer joins MA's team after D
        hired(conn, "T-NEWCOMER", hire=D + 3 * ONE_DAY, intervals=[(after, None)], manager_id="MA")
        # HR reassigns a leaver's record to MB after D: the exit 20 days back stays with MA
        conn.execute(
            "update core.employee_history set valid_to = %s, is_current = false,"
            " closed_by = 'attribute_change' where employee_id = 'T-LEFT-20'",
            (D + 2 * ONE_DAY,),
        )
        hired(
            conn,
            "T-LEFT-20",
            hire=date(2020, 2, 3),
            term=D - 20 * ONE_DAY,
            intervals=[(D + 2 * ONE_DAY, None)],
            manager_id="MB",
        )
    resolve_identities(features_config, dsn=cases_dsn, full=True)  # the rows above carry no newer known_at
    summary = build_features(features_config, dsn=cases_dsn, reference_dates=[D], restate=True)
    assert summary["reference_dates_built"] == [D.isoformat()]
    restated = features_of(cases_dsn, table="employee_features_restated")
    changed = {
        case: {k: (v, restated[case][k]) for k, v in row.items() if restated[case][k] != v}
        for case, row in at_d.items()
    }
    assert {case: diff for case, diff in changed.items() if diff} == {}
    assert restated.keys() == at_d.keys()


# -- backfill equals a day-by-day replay ----------------------------------------------------------

BOOKKEEPING = ("built_at", "build_id")
ACCOUNT_CREATED = datetime(
    2022, 3, 2, tzinfo=UTC
)  # which build wrote a row; everything else is what the row says


def published_rows(dsn):
    """Every feature row (bar the build's id and time), sorted: what two warehouses must agree on."""
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from mart.employee_features order by reference_date, employee_key")
        return [{k: v for k, v in row.items() if k not in BOOKKEEPING} for row in cur]


def at(day, hour=14):
    """A moment on `day`, after the cut-off of the day before (its noon) and before its own."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def arrivals():
    """What becomes known on which day, each at 14:00 UTC of that day: (day, change)."""
    return [
        # a statement dated 40 days back that the LRS stores only now
        (
            D - 2 * ONE_DAY,
            lambda conn: statement(
                conn, "late-year", learner("L-YEAR"), back(40), course="DEV-201", stored=at(D - 2 * ONE_DAY)
            ),
        ),
        # voids of a statement 20 days back and of one 29 days back
        (
            D - ONE_DAY,
            lambda conn: void(conn, "S-REPEAT-2", batch_id="b-void-repeat", stored=at(D - ONE_DAY)),
        ),
        (D, lambda conn: void(conn, "L-TREND-1", batch_id="b-void-trend", stored=at(D))),
        # a raise effective 20 days back, first shown by the file of D + 1
        (
            D + ONE_DAY,
            lambda conn: insert_pay_changes(
                conn,
                (
                    "T1",
                    D - 20 * ONE_DAY,
                    "merit_increase",
                    50000,
                    52000,
                    "USD",
                    4,
                    "x",
                    at(D + 2 * ONE_DAY, 6),
                ),
            ),
        ),
        # the file of D + 2 records T2's exit 10 days back on a new interval (reported late)
        (
            D + 2 * ONE_DAY,
            lambda conn: (
                conn.execute(
                    "update core.employee_history set valid_to = %s, is_current = false,"
                    " closed_by = 'attribute_change' where employee_id = 'T2'",
                    (D + 2 * ONE_DAY,),
                ),
                employee(
                    conn,
                    "T2",
                    email=f"t2@{CORP}",
                    hire=date(2023, 5, 1),
                    term=D - 10 * ONE_DAY,
                    intervals=[(D + 2 * ONE_DAY, None, f"t2@{CORP}")],
                    known_at=at(D + 3 * ONE_DAY, 6),
                ),
                set_hr(conn, "T2", D + 2 * ONE_DAY, manager_id="MA"),
            ),
        ),
        # the account of earlier statements is given L-OLD's address in the LMS directory: linked from now on
        (
            D + 2 * ONE_DAY,
            lambda conn: (
                conn.execute(
                    "update raw.lms_user set valid_to = %s where lms_user_id = 'u-l-old'",
                    (at(D + 2 * ONE_DAY),),
                ),
                lms_user(
                    conn,
                    "u-l-old",
                    email=f"l-old@{CORP}",
                    created=ACCOUNT_CREATED,
                    last_modified=at(D + 2 * ONE_DAY),
                    extracted_at=datetime.now(UTC),
                ),
            ),
        ),
        # the catalog is republished with DEV-201 harder (3 -> 5): dates whose cut-off knew it weigh it more
        (
            D + ONE_DAY,
            lambda conn: (
                conn.execute(
                    "update core.course_catalog_version set known_until = %s where known_until is null",
                    (at(D + ONE_DAY),),
                ),
                courses(
                    conn,
                    ("CMP-101", "Code of Conduct", 1, True, 30, ["compliance", "ethics"]),
                    ("DEV-201", "Python", 5, False, None, ["python", "data"]),
                    ("SEC-301", "Security", 5, True, 14, ["security", "compliance"]),
                    ("LDR-401", "Leading", 2, False, None, ["leadership"]),
                    sha256="v2",
                    known_from=at(D + ONE_DAY),
                ),
            ),
        ),
        # a statement stored 45 days after it happened
        (
            D + 3 * ONE_DAY,
            lambda conn: statement(
                conn,
                "exposed-late",
                learner("S-BREADTH"),
                back(45),
                course="DEV-201",
                stored=at(D + 3 * ONE_DAY),
            ),
        ),
    ]


def base_cases(conn):
    learning_cases(conn)
    hr_cases(conn)
    hired(conn, "C-PRIOR")  # its only activity leaves the trend's prior window on D + 2
    learns(conn, "C-PRIOR", (118, "experienced", "TREND", None, 60))
    # statements of an LMS account with a private address, nobody's yet (see D + 2); both warehouses know
    # the directory's earlier version, as a SCIM extraction running since then would have kept it
    lms_user(conn, "u-l-old", email="lee.old@private.example", created=ACCOUNT_CREATED)
    statement(conn, "account-early", account_learner("u-l-old"), back(50), course="DEV-201")


def test_a_backfill_equals_the_day_by_day_replay_of_production(
    migrated_template_db, database_copy, features_config
):
    """Production is replayed: each day, what became known that day arrives (late statements, voids, a
    back-dated raise, an exit reported late, a new account link), then the day is built. A second warehouse
    gets everything at once, as a first install would, and backfills the same dates in one build. Every
    feature row must be the same, and later arrivals must show up only from the first date that knew them."""
    days = [D + n * ONE_DAY for n in range(-4, 5)]
    dsns = {key: database_copy(migrated_template_db) for key in ("replay", "backfill")}
    with psycopg.connect(dsns["replay"], autocommit=True) as conn:
        base_cases(conn)
    for day in days:
        with psycopg.connect(dsns["replay"], autocommit=True) as conn:
            for _, arrive in (change for change in arrivals() if change[0] == day):
                arrive(conn)
            inputs_complete_through(conn, day)
        resolve_identities(features_config, dsn=dsns["replay"])
        built = build_features(features_config, dsn=dsns["replay"], reference_dates=[day])
        assert built["reference_dates_built"] == [day.isoformat()]

    with psycopg.connect(dsns["backfill"], autocommit=True) as conn:
        base_cases(conn)
        for _, arrive in arrivals():
            arrive(conn)
        inputs_complete_through(conn, days[-1])
    resolve_identities(features_config, dsn=dsns["backfill"])
    backfill = build_features(features_config, dsn=dsns["backfill"], reference_dates=days)
    assert backfill["reference_dates_built"] == [day.isoformat() for day in days]

    replayed, backfilled = published_rows(dsns["replay"]), published_rows(dsns["backfill"])
    assert len(backfilled) > 9 * 25
    assert backfilled == replayed

    def values(case, column):
        return [row[column] for row in backfilled if row["hris_employee_id"] == case]

    # each arrival counts from the first date whose cut-off knew it, never before
    assert values("L-YEAR", "completions_90d") == [0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert values("S-REPEAT", "completions_30d") == [3, 3, 3, 2, 2, 2, 2, 2, 2]
    assert values("T1", "months_since_last_raise") == [None] * 5 + [0] * 4
    # exits 90, 89 and 20 days before D; then on D; T-LEFT-89 leaves the window; T2's late-reported exit
    assert values("T1", "team_leavers_90d") == [3, 3, 3, 3, 3, 2, 3, 3, 3]
    assert values("L-OLD", "completions_90d") == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert values("S-BREADTH", "completions_90d")[-3:] == [2, 3, 3]
    # completions of DEV-201 at 10 and 20 days back (the second voided from D - 1): 3 each, then 5 each
    assert values("S-REPEAT", "difficulty_weighted_completions_180d") == [9, 9, 9, 6, 6, 10, 10, 10, 10]
