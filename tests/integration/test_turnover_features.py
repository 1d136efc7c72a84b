"""Point-in-time features and labels on the real PostgreSQL: windows, "as known at", voids, labels, the gate.

Like the identity tests, these write small histories into the tables the loaders publish
(`core.employee_history`, `core.compensation_event`, `raw.lms_user`, `core.lms_activity`,
`audit.lms_void_applied`), resolve identities with the real resolver, and build features.
"""

from __future__ import annotations

import copy
import csv
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from tests.integration.hris_helpers import insert_pay_changes
from tests.integration.test_identity_resolution import CORP, account_learner, employee, lms_user, query
from turnover_signals.config import load_config
from turnover_signals.errors import BadInputError
from turnover_signals.features.build import (
    FEATURE_COLUMNS,
    NON_FEATURE_COLUMNS,
    build_features,
    deferral_note,
    feature_columns,
    rebuild_matches,
)
from turnover_signals.identity.resolve import resolve_identities
from turnover_signals.paths import INCLUDE_DIR

D = date(2026, 6, 30)
AFTER_D = datetime(2026, 7, 10, 9, tzinfo=UTC)
LATER = date(2026, 7, 31)  # inputs are complete through this date in the built enterprise
FIRST_BUILD = datetime(2026, 7, 1, 1, tzinfo=UTC)


@pytest.fixture
def config(tmp_path):
    config = copy.deepcopy(load_config(use_variable=False))
    config["identity"]["min_active_lms_match_rate"] = 0
    config["features"]["initial_backfill_month_ends"] = 0
    # A handful of people: the null bands are for populations, so every nullable feature may be all null
    # (features without a band must still never be null).
    config["features"]["max_null_fraction"] = dict.fromkeys(config["features"]["max_null_fraction"], 1.0)
    return config


def statement(
    conn,
    statement_id,
    learner,
    occurred,
    *,
    event="completed",
    stored=None,
    course="CMP-101",
    score=None,
    seconds=600,
):
    conn.execute(
        """
        insert into core.lms_activity (statement_id, learner_identifier, learner_identifier_type,
            event_type, verb_id,
            course_id, score_normalized, duration_seconds, occurred_at, is_timestamp_assumed_utc,
                stored_at, is_voided)
        values (%s, %s, %s, %s, 'http://adlnet.gov/expapi/verbs/' || %s, %s, %s, %s, %s, false, %s, false)
        """,
        (
            statement_id,
            learner,
            learner.split(":", 1)[0],
            event,
            event,
            course,
            score,
            seconds,
            occurred,
            stored or occurred,
        ),
    )


def catalog(conn):
    courses(
        conn,
        ("CMP-101", "Code of Conduct", 1, True, 30, ["compliance", "ethics"]),
        ("DEV-201", "Python", 3, False, None, ["python", "data"]),
    )


def courses(conn, *rows, sha256="x", known_from=None):
    """Courses of a catalog version known from `known_from` (None: the first catalog the warehouse loaded),
    kept as load_course_catalog keeps them: the version, and the current catalog."""
    for row in rows:
        conn.execute(
            "insert into core.course_catalog_version values (%s, %s, %s, %s, %s, %s, %s, %s, null)",
            (*row, sha256, known_from),
        )
        conn.execute("delete from core.course_catalog where course_id = %s", (row[0],))
        conn.execute("insert into core.course_catalog values (%s, %s, %s, %s, %s, %s, %s)", (*row, sha256))


def enterprise(conn):
    """Two colleagues under one manager; one leaves voluntarily after D, one involuntarily."""
    catalog(conn)
    employee(conn, "M1", guid="g-m1", email=f"boss@{CORP}", hire=date(2015, 1, 5), first="Bo", last="Ss")
    for employee_id, term in (("E1", date(2026, 8, 14)), ("E2", None), ("E3", date(2026, 7, 20))):
        employee(
            conn,
            employee_id,
            guid=f"g-{employee_id.lower()}",
            email=f"{employee_id.lower()}@{CORP}",
            hire=date(2022, 3, 1),
            term=term,
        )
        lms_user(
            conn,
            f"u-{employee_id.lower()}",
            email=f"{employee_id.lower()}@{CORP}",
            external_id=f"g-{employee_id.lower()}",
            created=datetime(2022, 3, 2, tzinfo=UTC),
        )
    conn.execute(
        "update core.employee_history set manager_id = 'M1', job_level = 2 where employee_id <> 'M1'"
    )
    conn.execute(
        "update core.employee_history set termination_category = 'involuntary' where employee_id = 'E3'"
    )
    insert_pay_changes(
        conn,
        (
            "E1",
            date(2025, 4, 1),
            "merit_increase",
            50000,
            52000,
            "USD",
            4.0,
            "x",
            datetime(2025, 4, 2, tzinfo=UTC),
        ),
        ("E1", date(2026, 1, 1), "pay_freeze", 52000, 52000, "USD", 0, "x", datetime(2026, 1, 2, tzinfo=UTC)),
    )
    learner = account_learner("u-e1")
    statement(
        conn, "s-enrol", learner, datetime(2026, 5, 2, 9, tzinfo=UTC), event="enrolled", course="DEV-201"
    )
    statement(conn, "s-done", learner, datetime(2026, 6, 20, 9, tzinfo=UTC), course="DEV-201", seconds=1800)
    statement(
        conn,
        "s-score",
        learner,
        datetime(2026, 6, 21, 9, tzinfo=UTC),
        event="passed",
        course="DEV-201",
        score=0.8,
    )
    statement(
        conn, "s-mandatory", learner, datetime(2026, 3, 2, 9, tzinfo=UTC), event="enrolled", course="CMP-101"
    )
    statement(conn, "s-old", learner, datetime(2025, 6, 1, 9, tzinfo=UTC), course="DEV-201")


def void(conn, statement_id, batch_id="b-void", stored=AFTER_D):
    """Void a statement the way an xAPI batch publishes it: the flag, the audit row and the batch row, at
    once; the voiding statement was stored by the LRS at `stored`."""
    with conn.transaction():
        conn.execute("update core.lms_activity set is_voided = true where statement_id = %s", (statement_id,))
        conn.execute(
            "insert into audit.lms_void_applied select statement_id, 'void-' || statement_id, occurred_at, "
            "%s, %s from core.lms_activity where statement_id = %s",
            (stored, batch_id, statement_id),
        )
        conn.execute(
            "insert into audit.lms_extract_batch (batch_id, source, endpoint, pages, statements_received, "
            "statements_new, statements_already_loaded, statements_rejected, voids_applied, reject_rate, "
            "status, started_at, finished_at) values (%s, 'xapi:lms_api', '/statements', 1, 1, 1, 0, 0, 1, "
            "0, 'published', now(), now()) on conflict (batch_id) do nothing",
            (batch_id,),
        )


def hr_known_through(conn, file_date, *, in_history=True):
    """A loaded employees file dated `file_date`: HR is known through that day (label horizons close), once
    the HR history build took it in (`in_history`: its row in core.hris_file_knowledge, which that build
    writes with the history)."""
    name, sha256 = f"employees_{file_date:%Y%m%d}.csv", f"{file_date:%Y%m%d}".ljust(64, "0")
    conn.execute(
        "insert into audit.file_manifest (file_name, sha256, feed, file_date, size_bytes, received_at, "
        "status) values (%s, %s, 'employees', %s, 10, now(), 'loaded')",
        (name, sha256, file_date),
    )
    if in_history:
        conn.execute(
            "insert into core.hris_file_knowledge (file_name, sha256, feed, file_date, status, "
            "is_correction, known_at) values (%s, %s, 'employees', %s, 'loaded', false, %s)",
            (
                name,
                sha256,
                file_date,
                datetime.combine(file_date + timedelta(days=1), datetime.min.time(), UTC),
            ),
        )


def lms_read_through(conn, moment, batch_id=None):
    """A published xAPI extraction that started at `moment`: the LRS was read through then."""
    conn.execute(
        "insert into audit.lms_extract_batch (batch_id, source, endpoint, pages, statements_received, "
        "statements_new, statements_already_loaded, statements_rejected, voids_applied, reject_rate, status, "
        "started_at, finished_at) values (%s, 'xapi:lms_api', '/statements', 1, 0, 0, 0, 0, 0, 0, "
        "'published', %s, %s)",
        (batch_id or f"read-{moment:%Y%m%d%H%M%S}", moment, moment),
    )


def inputs_complete_through(conn, reference_date):
    """Every input of `reference_date` complete through its cut-off: its employees file and the LMS read past
    it."""
    hr_known_through(conn, reference_date)
    lms_read_through(
        conn, datetime.combine(reference_date + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    )


def feature_row(dsn, employee_id, reference_date=D, version=2, table="employee_features"):
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            sql.SQL(
                """
                select features.* from {} as features
                join core.hris_employee_key as keys using (employee_key)
                where keys.hris_employee_id = %s and reference_date = %s and feature_set_version = %s
                """
            ).format(sql.Identifier("mart", table)),
            (employee_id, reference_date, version),
        )
        return cur.fetchone()


def mart_tables(dsn):
    return {
        "features": sorted(map(repr, query(dsn, "select * from mart.employee_features"))),
        "labels": sorted(map(repr, query(dsn, "select * from mart.turnover_label"))),
        "daily": sorted(map(repr, query(dsn, "select * from mart.learner_daily_activity"))),
    }


@pytest.fixture
def built(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        enterprise(conn)
        inputs_complete_through(conn, LATER)  # HR files and the LMS extraction reached past the later dates
    resolve_identities(config, dsn=warehouse_dsn)
    summary = build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    return summary


def test_windows_and_hr_attributes_as_of_the_reference_date(warehouse_dsn, config, built):
    assert built["reference_dates_built"] == [D.isoformat()]
    row = feature_row(warehouse_dsn, "E1")
    assert (row["enrolments_90d"], row["enrolments_180d"]) == (1, 2)
    assert (row["completions_30d"], row["completions_90d"], row["completions_180d"]) == (1, 1, 1)
    assert (row["completion_rate_90d"], row["completion_rate_180d"]) == (1, Decimal("0.5"))
    assert row["mean_score_30d"] == Decimal("0.8")
    assert row["learning_minutes_30d"] == 30 + 10  # 1800 s completion + 600 s pass
    assert row["distinct_courses_180d"] == 2 and row["skill_tag_breadth_180d"] == 4
    assert row["difficulty_weighted_completions_180d"] == 3
    assert row["mandatory_courses_overdue"] == 1  # enrolled 2026-03-02, due in 30 days, never completed
    assert row["days_since_last_activity"] == 9
    assert (row["tenure_days"], row["job_level"], row["team_size"], row["manager_tenure_days"]) == (
        (D - date(2022, 3, 1)).days,
        2,
        3,
        (D - date(2015, 1, 5)).days,
    )
    assert row["is_pay_frozen"] is True and row["months_since_last_raise"] == 14
    assert row["last_pay_change_pct"] == 0
    quiet = feature_row(warehouse_dsn, "E2")
    assert quiet["completions_180d"] == 0 and quiet["completion_rate_90d"] is None
    assert quiet["days_since_last_activity"] is None
    assert query(warehouse_dsn, "select count(*) from mart.employee_features") == [(4,)]  # active headcount


def test_labels_count_voluntary_exits_in_the_horizon_and_censor_the_rest(warehouse_dsn, config, built):
    labels = dict(
        (employee_id, (label, status))
        for employee_id, label, status in query(
            warehouse_dsn, "select hris_employee_id, label, label_status from mart.turnover_label"
        )
    )
    assert labels["E1"] == (True, "positive")  # voluntary exit on 2026-08-14, within 90 days
    assert labels["E3"] == (None, "censored_involuntary")
    assert labels["E2"] == (None, "horizon_open")  # HR known only up to its last snapshot
    assert query(warehouse_dsn, "select count(*) from mart.training_set where label") == [(1,)]


def test_later_events_late_statements_and_hr_changes_never_change_a_built_date(warehouse_dsn, config, built):
    before = feature_row(warehouse_dsn, "E1")
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        learner = account_learner("u-e1")
        statement(conn, "s-after", learner, AFTER_D)  # happened after D
        statement(
            conn, "s-late", learner, datetime(2026, 6, 25, 9, tzinfo=UTC), stored=AFTER_D
        )  # stored after
        conn.execute("update core.employee_history set valid_to = '2026-07-05' where employee_id = 'E1'")
        employee(
            conn,
            "E1",
            guid="g-e1",
            email=f"e1@{CORP}",
            hire=date(2022, 3, 1),
            term=date(2026, 8, 14),
            intervals=[(date(2026, 7, 5), None, f"e1@{CORP}")],
            known_at=AFTER_D,
        )
        conn.execute("update core.employee_history set job_level = 5 where valid_from = '2026-07-05'")
    resolve_identities(config, dsn=warehouse_dsn)
    summary = build_features(config, dsn=warehouse_dsn, reference_dates=[date(2026, 7, 10)])
    assert summary["daily_mode"] == "incremental"
    after = feature_row(warehouse_dsn, "E1")
    assert after == before  # as known at: neither the late statement nor the HR change touched D
    later = feature_row(warehouse_dsn, "E1", date(2026, 7, 10))
    assert later["completions_30d"] == 3 and later["job_level"] == 5

    # An explicit restatement takes the late statement in, but still nothing dated after D, and goes to its
    # own table: the as-of row stays as it was.
    build_features(config, dsn=warehouse_dsn, reference_dates=[D], restate=True)
    restated = feature_row(warehouse_dsn, "E1", table="employee_features_restated")
    assert restated["completions_30d"] == 2 and restated["job_level"] == 2
    assert feature_row(warehouse_dsn, "E1") == before
    builds = query(
        warehouse_dsn,
        "select build_kind from audit.feature_build where reference_date = %s order by built_at",
        (D,),
    )
    assert builds == [("as_of",), ("restatement",)]


def test_the_incrementally_refreshed_daily_activity_equals_a_full_rebuild(warehouse_dsn, config, built):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        learner = account_learner("u-e1")
        statement(conn, "s-next", learner, datetime(2026, 7, 2, 9, tzinfo=UTC))  # a new day
        statement(
            conn,
            "s-same-group",
            learner,
            datetime(2026, 6, 21, 10, tzinfo=UTC),
            stored=datetime(2026, 7, 2, 10, tzinfo=UTC),
            event="enrolled",
        )  # a late one into a built day
        statement(
            conn,
            "s-overlap",
            account_learner("u-e2"),
            datetime(2026, 6, 19, 9, tzinfo=UTC),
            stored=datetime(2026, 6, 20, 12, tzinfo=UTC),
        )  # stored before the watermark, exposed late
        # stored weeks before anything the last refresh saw, published only now (a re-read period)
        statement(
            conn,
            "s-far-late",
            account_learner("u-e2"),
            datetime(2026, 5, 3, 9, tzinfo=UTC),
            stored=datetime(2026, 5, 4, 12, tzinfo=UTC),
        )
        void(conn, "s-done")
    build_features(config, dsn=warehouse_dsn, reference_dates=[date(2026, 7, 10)])
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        void(conn, "s-next", batch_id="b-void-2")
    build_features(config, dsn=warehouse_dsn, reference_dates=[date(2026, 7, 11)])
    incremental = mart_tables(warehouse_dsn)["daily"]
    assert (
        build_features(
            config, dsn=warehouse_dsn, reference_dates=[date(2026, 7, 11)], full_daily_rebuild=True
        )["daily_mode"]
        == "full"
    )
    assert mart_tables(warehouse_dsn)["daily"] == incremental


def test_a_leavers_later_activity_and_a_recycled_address_before_the_hire_never_count(warehouse_dsn, config):
    address = f"kim.lee@{CORP}"
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        catalog(conn)
        employee(conn, "E-OLD", email=address, hire=date(2020, 1, 6), term=date(2026, 4, 30))
        employee(conn, "E-NEW", email=address, hire=date(2026, 6, 1))
        for n, day in enumerate((date(2026, 4, 20), date(2026, 5, 15), date(2026, 6, 10))):
            statement(conn, f"s{n}", f"mbox:{address}", datetime(day.year, day.month, day.day, 9, tzinfo=UTC))
        inputs_complete_through(conn, D)
    resolve_identities(config, dsn=warehouse_dsn)
    build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    new_hire = feature_row(warehouse_dsn, "E-NEW")
    assert new_hire["completions_90d"] == 1  # only 2026-06-10; 05-15 belonged to nobody, 04-20 to the leaver
    assert feature_row(warehouse_dsn, "E-OLD") is None  # not active at D


def test_a_rerun_of_a_built_date_builds_nothing_and_changes_no_table(warehouse_dsn, config, built):
    tables = mart_tables(warehouse_dsn)
    assert build_features(config, dsn=warehouse_dsn, reference_dates=[D])["reference_dates_built"] == []
    assert mart_tables(warehouse_dsn) == tables


def test_a_new_feature_set_version_is_built_beside_the_old_one(warehouse_dsn, config, built):
    bumped = copy.deepcopy(config)
    bumped["features"]["feature_set_version"] = 3
    assert build_features(bumped, dsn=warehouse_dsn, reference_dates=[D])["reference_dates_built"] == [
        D.isoformat()
    ]
    versions = query(
        warehouse_dsn,
        "select feature_set_version, count(*) from mart.employee_features group by 1 order by 1",
    )
    assert versions == [(2, 4), (3, 4)]


def test_a_failed_gate_publishes_nothing(warehouse_dsn, config, built):
    strict = copy.deepcopy(config)
    strict["features"]["max_null_fraction"]["days_since_last_activity"] = 0.1  # most have no activity
    tables = mart_tables(warehouse_dsn)
    with pytest.raises(BadInputError) as failure:
        build_features(strict, dsn=warehouse_dsn, reference_dates=[date(2026, 7, 10)])
    assert "days_since_last_activity is null in at most 10% of rows" in str(failure.value)
    assert "nothing was published" in str(failure.value)
    assert {k: v for k, v in mart_tables(warehouse_dsn).items() if k != "daily"} == {
        k: v for k, v in tables.items() if k != "daily"
    }
    assert query(
        warehouse_dsn,
        "select count(*) from audit.validation_result where suite_name = 'employee_features' and not success",
    ) == [(1,)]


GATE_VIOLATIONS = {
    "one row per employee_key, reference_date and feature set version": (
        "insert into {t} select * from {t} limit 1"
    ),
    "the rows of each reference date equal the active HR headcount on that date": (
        "update {t} set date_active_headcount = date_active_headcount + 1"
    ),
    "completion_rate_90d is a rate in 0..1": "update {t} set completion_rate_90d = 1.5",
    "enrolments_30d is not negative": "update {t} set enrolments_30d = -1",
    "days_since_last_promotion is not negative": "update {t} set days_since_last_promotion = -3",
    "months_since_last_raise is not negative": "update {t} set months_since_last_raise = -1",
    "manager_tenure_days is not negative": "update {t} set manager_tenure_days = -5",
    "is_pay_frozen is never null": "update {t} set is_pay_frozen = null",
    "team_leavers_90d is never null": "update {t} set team_leavers_90d = null where hris_employee_id = 'E2'",
    "every row carries the cut-off of its reference date": "update {t} set cutoff_at = null",
}


def test_the_feature_gate_fails_each_broken_invariant(warehouse_dsn, config, built):
    from turnover_signals.features.gate import features_suite
    from turnover_signals.quality.gate import run_suite
    from turnover_signals.warehouse import sqlalchemy_url

    suite = features_suite(config)
    assert "every feature without a band in features.max_null_fraction" in " ".join(
        e.description for e in suite.expectations if "never null" in e.description
    )
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            "create table staging.good_features as select *, 4 as date_feature_rows,"
            " 4 as date_active_headcount from mart.employee_features"
        )
    validate = lambda name: run_suite(  # noqa: E731
        sqlalchemy_url(dsn=warehouse_dsn),
        suite,
        data_asset="employee_features",
        batch_identifier=name,
        table=("staging", name),
        parameters={"expected_rows": 4},
        data_docs_dir=config["quality"]["data_docs_dir"],
    )
    assert validate("good_features").success
    for number, (expectation, mutation) in enumerate(GATE_VIOLATIONS.items()):
        table = f"broken_{number}"
        with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
            target = sql.Identifier("staging", table)
            conn.execute(sql.SQL("create table {} as select * from staging.good_features").format(target))
            conn.execute(sql.SQL(mutation).format(t=target))
        outcome = validate(table)
        assert not outcome.success, expectation
        assert expectation in outcome.failure_summary(limit=20), (
            expectation,
            outcome.failure_summary(limit=20),
        )


def test_a_reference_date_whose_active_employees_have_no_rows_fails_the_gate(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        enterprise(conn)  # HR has four active people at D, but identity never ran: no employee keys, no rows
        inputs_complete_through(conn, D)
    with pytest.raises(BadInputError) as failure:
        build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    assert "every active employee of every reference date has a row" in str(failure.value)
    assert query(warehouse_dsn, "select count(*) from audit.feature_build") == [(0,)]


def test_every_feature_is_documented_once_in_the_dictionary(warehouse_dsn):
    with open(INCLUDE_DIR / "feature_dictionary.csv", encoding="utf-8") as handle:
        documented = [row["name"] for row in csv.DictReader(handle) if row["meaning"] and row["source"]]
    with psycopg.connect(warehouse_dsn) as conn:
        columns = [c for c in feature_columns(conn) if c not in NON_FEATURE_COLUMNS]
    assert len(documented) == len(set(documented))
    assert set(documented) == set(columns)
    assert sorted(FEATURE_COLUMNS) == sorted(columns)  # the gate's list of features


def label_rows(dsn):
    """The labels without hr_known_through (a label keeps the one it was last computed with)."""
    return sorted(
        query(
            dsn,
            "select employee_key, reference_date, horizon_days, hris_employee_id, label, exit_date,"
            " exit_category, is_censored, label_status from mart.turnover_label",
        )
    )


def test_a_daily_run_recomputes_only_labels_that_can_change_and_matches_a_full_rebuild(
    warehouse_dsn, config, built
):
    assert built["label_mode"] == "full"
    rerun = build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    assert (rerun["label_mode"], rerun["labels_written"], rerun["employees_with_changed_outcome"]) == (
        "incremental",
        0,
        0,
    )  # nothing new: no label is computed again
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        # E2 resigns on 2026-08-01 (a later file); a snapshot on 2026-10-01 settles the horizon of D
        conn.execute(
            "update core.employee_history set valid_to = '2026-08-01', is_current = false,"
            " closed_by = 'attribute_change' where employee_id = 'E2'"
        )
        employee(
            conn,
            "E2",
            guid="g-e2",
            email=f"e2@{CORP}",
            hire=date(2022, 3, 1),
            term=date(2026, 8, 1),
            intervals=[(date(2026, 8, 1), None, f"e2@{CORP}")],
            known_at=AFTER_D,
        )
        conn.execute(
            "update core.employee_history set valid_to = '2026-10-01', is_current = false,"
            " closed_by = 'attribute_change' where employee_id = 'M1'"
        )
        employee(
            conn,
            "M1",
            guid="g-m1",
            email=f"boss@{CORP}",
            hire=date(2015, 1, 5),
            first="Bo",
            last="Ss",
            intervals=[(date(2026, 10, 1), None, f"boss@{CORP}")],
            known_at=AFTER_D,
        )
        inputs_complete_through(conn, date(2026, 10, 1))
    resolve_identities(config, dsn=warehouse_dsn)
    daily = build_features(config, dsn=warehouse_dsn, reference_dates=[date(2026, 10, 1)])
    assert (daily["label_mode"], daily["employees_with_changed_outcome"]) == ("incremental", 1)
    labels = dict((row[3], row[8]) for row in label_rows(warehouse_dsn) if row[1] == D)
    assert labels["E2"] == "positive"  # the resignation falls within 90 days of D
    incremental = label_rows(warehouse_dsn)
    rebuilt = build_features(
        config, dsn=warehouse_dsn, reference_dates=[date(2026, 10, 1)], full_daily_rebuild=True
    )
    assert rebuilt["label_mode"] == "full"
    assert label_rows(warehouse_dsn) == incremental


def labels_by_employee(dsn, reference_date=D):
    rows = query(
        dsn,
        "select hris_employee_id, horizon_days, label, label_status from mart.turnover_label"
        " where reference_date = %s",
        (reference_date,),
    )
    return {(employee_id, horizon): (label, status) for employee_id, horizon, label, status in rows}


def test_a_resignation_reported_late_on_or_before_the_reference_date_is_censored_not_a_stayer(
    warehouse_dsn, config, built
):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        # E2 left on 2026-06-15; the 2026-07-05 file is the first to say so (D was built with E2 active)
        conn.execute(
            "update core.employee_history set valid_to = '2026-07-05', is_current = false,"
            " closed_by = 'attribute_change' where employee_id = 'E2'"
        )
        employee(
            conn,
            "E2",
            guid="g-e2",
            email=f"e2@{CORP}",
            hire=date(2022, 3, 1),
            term=date(2026, 6, 15),
            intervals=[(date(2026, 7, 5), None, f"e2@{CORP}")],
            known_at=AFTER_D,
        )
        hr_known_through(conn, date(2026, 10, 1))  # D's horizon has passed
    resolve_identities(config, dsn=warehouse_dsn)
    build_features(config, dsn=warehouse_dsn, reference_dates=[date(2026, 7, 10)])
    assert feature_row(warehouse_dsn, "E2") is not None  # as known at D, E2 was active
    assert labels_by_employee(warehouse_dsn)[("E2", 90)] == (None, "censored_exit_before_reference")
    assert query(
        warehouse_dsn, "select exit_date, is_censored from mart.turnover_label where hris_employee_id = 'E2'"
    ) == [(date(2026, 6, 15), True)]
    assert labels_by_employee(warehouse_dsn)[("M1", 90)] == (False, "negative")
    assert query(warehouse_dsn, "select count(*) from mart.training_set where hris_employee_id = 'E2'") == [
        (0,)
    ]


def test_a_30_day_horizon_then_30_and_90_days_at_once_relabel_everything(warehouse_dsn, config):
    config["features"]["label_horizons_days"] = [30]
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        enterprise(conn)
        hr_known_through(conn, date(2026, 10, 1))
        lms_read_through(conn, datetime(2026, 10, 2, tzinfo=UTC))
    resolve_identities(config, dsn=warehouse_dsn)
    build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    thirty = {
        ("E1", 30): (False, "negative"),  # resigns 45 days after D: a stayer for 30 days
        ("E2", 30): (False, "negative"),
        ("E3", 30): (None, "censored_involuntary"),  # dismissed 20 days after D
        ("M1", 30): (False, "negative"),
    }
    assert labels_by_employee(warehouse_dsn) == thirty
    config["features"]["label_horizons_days"] = [30, 90]
    summary = build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    assert summary["label_mode"] == "full"  # other horizons: every label is computed again
    assert labels_by_employee(warehouse_dsn) == thirty | {
        ("E1", 90): (True, "positive"),
        ("E2", 90): (False, "negative"),
        ("E3", 90): (None, "censored_involuntary"),
        ("M1", 90): (False, "negative"),
    }


def test_an_exit_on_the_last_day_of_the_horizon_is_inside_it(warehouse_dsn, config):
    config["features"]["label_horizons_days"] = [30]
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        catalog(conn)
        for employee_id, term in (
            ("E-LAST", date(2026, 7, 30)),
            ("E-AFTER", date(2026, 7, 31)),
            ("E-STAY", None),
        ):
            employee(
                conn, employee_id, email=f"{employee_id.lower()}@{CORP}", hire=date(2022, 3, 1), term=term
            )
        hr_known_through(conn, date(2026, 8, 1))
        lms_read_through(conn, datetime(2026, 8, 2, tzinfo=UTC))
    resolve_identities(config, dsn=warehouse_dsn)
    build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    assert labels_by_employee(warehouse_dsn) == {
        ("E-LAST", 30): (True, "positive"),  # D + 30: the horizon (D, D + H] includes its last day
        ("E-AFTER", 30): (False, "negative"),
        ("E-STAY", 30): (False, "negative"),
    }


def test_manager_changes_count_even_when_the_hris_sends_no_job_role(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        catalog(conn)
        employee(
            conn,
            "E1",
            guid="g-1",
            email=f"e1@{CORP}",
            hire=date(2022, 3, 1),
            intervals=[
                (date(2025, 1, 4), date(2026, 2, 7), f"e1@{CORP}"),
                (date(2026, 2, 7), None, f"e1@{CORP}"),
            ],
        )
        conn.execute(
            "update core.employee_history set job_role = null,"
            " manager_id = case when valid_from = '2026-02-07' then 'M2' else 'M1' end"
        )
        inputs_complete_through(conn, D)
    resolve_identities(config, dsn=warehouse_dsn)
    build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    row = feature_row(warehouse_dsn, "E1")
    assert row["manager_changes_12m"] == 1
    assert row["time_in_role_days"] == row["tenure_days"]  # no role was ever reported, so it never changed


def test_lineage_names_the_file_a_row_was_built_from_even_after_a_correction(warehouse_dsn, config):
    from tests.integration.test_identity_resolution import FILE_SHA
    from turnover_signals.quality.lineage import trace_feature_row

    manifest = (
        "insert into audit.file_manifest (file_name, sha256, feed, file_date, size_bytes, received_at, "
        "status) values ('employees_20260101.csv', %s, 'employees', '2026-01-01', 10, %s, 'loaded')"
    )
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        enterprise(conn)
        conn.execute(manifest, (FILE_SHA, datetime(2026, 1, 2, tzinfo=UTC)))
        inputs_complete_through(conn, D)
    resolve_identities(config, dsn=warehouse_dsn)
    build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    key = query(
        warehouse_dsn, "select employee_key from core.hris_employee_key where hris_employee_id = 'E1'"
    )[0][0]
    before = [
        r for r in trace_feature_row(config, key, D, dsn=warehouse_dsn) if r["source_kind"] == "hris_file"
    ]
    assert [(r["source_name"], r["source_sha256"]) for r in before] == [("employees_20260101.csv", FILE_SHA)]

    corrected = "e" * 64  # HR sends a corrected file for the same date, known after D's cut-off
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            "update audit.file_manifest set status = 'superseded', superseded_by_sha256 = %s"
            " where sha256 = %s",
            (corrected, FILE_SHA),
        )
        conn.execute(manifest, (corrected, AFTER_D))
        # what the history build keeps: today's history from the correction, the version before it as a
        # revision
        conn.execute(
            "insert into core.employee_history_revision select *, null, %s from core.employee_history",
            (AFTER_D,),
        )
        conn.execute("update core.employee_history set source_sha256 = %s", (corrected,))
    after = [
        r for r in trace_feature_row(config, key, D, dsn=warehouse_dsn) if r["source_kind"] == "hris_file"
    ]
    assert [r["source_sha256"] for r in after] == [FILE_SHA]  # the row's cut-off knew the first file only
    assert "superseded after this row's cut-off by a correction (eeeeeeeeeeee)" in after[0]["detail"]


# -- when a date is built -------------------------------------------------------------------------


def test_a_date_waits_for_its_employees_file_and_the_lms_extraction_and_says_so(
    warehouse_dsn, config, caplog
):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        enterprise(conn)
        hr_known_through(conn, D - timedelta(days=1))  # the file of D has not arrived
        lms_read_through(conn, datetime(2026, 7, 1, 9, tzinfo=UTC))  # before D's cut-off, 2026-07-01 12:00
    resolve_identities(config, dsn=warehouse_dsn)
    just_after = datetime(2026, 7, 1, 13, tzinfo=UTC)
    summary = build_features(config, dsn=warehouse_dsn, reference_dates=[D], now=just_after)
    assert summary["reference_dates_built"] == []
    reasons = summary["reference_dates_deferred"][D.isoformat()]
    assert reasons == [
        "no employees file dated 2026-06-30 or later is in the HR history (newest: 2026-06-29)",
        "the LMS extraction has not read past the cut-off "
        "2026-07-01 12:00 UTC (read through 2026-07-01 09:00 UTC)",
    ]
    assert "reference date 2026-06-30 deferred: no employees file dated 2026-06-30" in caplog.text
    assert deferral_note(summary).startswith(
        "deferred (inputs not complete through the cut-off): 2026-06-30: "
    )
    assert query(warehouse_dsn, "select count(*) from mart.employee_features") == [(0,)]

    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        # D's file is loaded, but the HR history build has not taken it in (still running, or failed)
        hr_known_through(conn, D, in_history=False)
    assert build_features(config, dsn=warehouse_dsn, reference_dates=[D], now=just_after)[
        "reference_dates_deferred"
    ] == {D.isoformat(): reasons}
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute("delete from audit.file_manifest where file_date = %s", (D,))
        hr_known_through(conn, D)
    assert build_features(config, dsn=warehouse_dsn, reference_dates=[D], now=just_after)[
        "reference_dates_deferred"
    ] == {D.isoformat(): reasons[1:]}
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        lms_read_through(conn, datetime(2026, 7, 1, 12, 30, tzinfo=UTC))
    summary = build_features(config, dsn=warehouse_dsn, reference_dates=[D], now=just_after)
    assert (summary["reference_dates_built"], summary["reference_dates_deferred"]) == ([D.isoformat()], {})
    assert deferral_note(summary) is None


def test_a_scheduled_run_builds_the_dates_deferred_before_once_they_are_complete(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        enterprise(conn)
        inputs_complete_through(conn, D)
    resolve_identities(config, dsn=warehouse_dsn)
    build_features(config, dsn=warehouse_dsn, reference_dates=[D], catch_up=True)
    # two runs, each the morning after its date, find it incomplete (no employees file since D)
    for day in (D + timedelta(days=1), D + timedelta(days=2)):
        morning = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(
            hours=8
        )
        summary = build_features(config, dsn=warehouse_dsn, reference_dates=[day], catch_up=True, now=morning)
        assert summary["reference_dates_built"] == []
        assert sorted(summary["reference_dates_deferred"]) == [
            (D + timedelta(days=n)).isoformat() for n in range(1, (day - D).days + 1)
        ]
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        inputs_complete_through(conn, D + timedelta(days=3))
    summary = build_features(
        config,
        dsn=warehouse_dsn,
        reference_dates=[D + timedelta(days=3)],
        catch_up=True,
        now=datetime(2026, 7, 4, 8, tzinfo=UTC),
    )
    assert summary["reference_dates_built"] == [(D + timedelta(days=n)).isoformat() for n in range(1, 4)]


def test_a_first_scheduled_build_leaves_no_gap_a_rerun_would_fill(warehouse_dsn, config):
    config["features"]["initial_backfill_month_ends"] = 2
    requested = D + timedelta(days=3)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        enterprise(conn)
        inputs_complete_through(conn, requested)
    resolve_identities(config, dsn=warehouse_dsn)
    morning = datetime(2026, 7, 4, 8, tzinfo=UTC)
    first = build_features(config, dsn=warehouse_dsn, reference_dates=[requested], catch_up=True, now=morning)
    # the month-ends, then every day from the newest one through the requested date
    assert first["reference_dates_built"] == [
        "2026-05-31",
        "2026-06-30",
        "2026-07-01",
        "2026-07-02",
        "2026-07-03",
    ]
    rerun = build_features(config, dsn=warehouse_dsn, reference_dates=[requested], catch_up=True, now=morning)
    assert rerun["reference_dates_built"] == []


def test_an_employees_file_missing_past_its_lateness_fails_with_the_date_named(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        enterprise(conn)
        hr_known_through(conn, D - timedelta(days=1))
        lms_read_through(conn, datetime(2026, 7, 5, tzinfo=UTC))
    resolve_identities(config, dsn=warehouse_dsn)
    due = datetime(2026, 7, 1, 6, tzinfo=UTC)  # end of D + hris.delivery_lag_hours
    lateness = timedelta(hours=config["hris"]["max_file_lateness_hours"])
    within = build_features(config, dsn=warehouse_dsn, reference_dates=[D], now=due + lateness)
    assert list(within["reference_dates_deferred"]) == [D.isoformat()]
    with pytest.raises(BadInputError) as failure:
        build_features(
            config, dsn=warehouse_dsn, reference_dates=[D], now=due + lateness + timedelta(minutes=1)
        )
    message = str(failure.value)
    assert message.startswith(
        "feature build of reference date(s) 2026-06-30: no employees file dated 2026-06-30"
    )
    assert "hris.max_file_lateness_hours" in message and "clear build_features" in message


def test_reference_dates_that_have_not_ended_are_refused(warehouse_dsn, config):
    now = datetime(2026, 7, 1, 9, tzinfo=UTC)
    with pytest.raises(BadInputError) as failure:
        build_features(
            config, dsn=warehouse_dsn, reference_dates=[D, date(2026, 7, 1), date(2026, 7, 2)], now=now
        )
    assert str(failure.value).startswith(
        "feature build of reference date(s) 2026-07-01, 2026-07-02: the date has not"
    )
    assert query(warehouse_dsn, "select count(*) from audit.feature_build") == [(0,)]


def test_a_delivery_lag_longer_than_the_grace_is_refused(warehouse_dsn, config):
    config["hris"]["delivery_lag_hours"] = config["features"]["as_of_grace_hours"] + 1
    with pytest.raises(BadInputError) as failure:
        build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    assert "would never count for D" in str(failure.value)


# -- reruns, rebuilds, one build at a time --------------------------------------------------------


def test_a_rebuilt_date_equals_the_published_rows_and_a_changed_row_is_found(warehouse_dsn, config, built):
    later = date(2026, 7, 10)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        statement(
            conn, "s-late", account_learner("u-e1"), datetime(2026, 6, 25, 9, tzinfo=UTC), stored=AFTER_D
        )
        void(conn, "s-done")
    build_features(config, dsn=warehouse_dsn, reference_dates=[later])
    # later data exists now for D (a late statement, a void), yet rebuilding D gives its row again
    assert rebuild_matches(config, [D, later], dsn=warehouse_dsn) == {
        "reference_dates": [D.isoformat(), later.isoformat()],
        "rows": 8,
        "rows_differing": 0,
        "matched": True,
    }
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            "update mart.employee_features set completions_30d = 9 where reference_date = %s"
            " and hris_employee_id = 'E1'",
            (D,),
        )
    assert rebuild_matches(config, [D], dsn=warehouse_dsn)["rows_differing"] == 2


def test_a_build_waits_for_the_build_before_it(warehouse_dsn, config):
    from turnover_signals.features.build import FEATURES_LOCK_ID

    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        enterprise(conn)
        inputs_complete_through(conn, D)
    resolve_identities(config, dsn=warehouse_dsn)
    results = {}
    with psycopg.connect(warehouse_dsn, autocommit=True) as other_build:
        other_build.execute("select pg_advisory_lock(%s)", (FEATURES_LOCK_ID,))
        worker = threading.Thread(
            target=lambda: results.update(build_features(config, dsn=warehouse_dsn, reference_dates=[D]))
        )
        worker.start()
        worker.join(timeout=3)
        assert worker.is_alive() and results == {}  # waiting, not interleaving
        assert query(
            warehouse_dsn, "select count(*) from pg_locks where locktype = 'advisory' and not granted"
        ) == [(1,)]
        other_build.execute("select pg_advisory_unlock(%s)", (FEATURES_LOCK_ID,))
    worker.join(timeout=120)
    assert results["reference_dates_built"] == [D.isoformat()]


def test_labels_know_hr_only_through_the_files_the_hr_history_holds(warehouse_dsn, config):
    from turnover_signals.features.labels import label_parameters

    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        hr_known_through(conn, D - timedelta(days=1))
        # loaded, but the history build has not taken it in: a leaver of that file would still look employed
        hr_known_through(conn, D, in_history=False)
        assert label_parameters(conn, config)["hr_known_through"] == D - timedelta(days=1)
