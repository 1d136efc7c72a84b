"""`mart.integration_kpi` on hand-made audit, core and mart rows: each KPI's value, its alert, and reruns.

The day measured is 4 March 2026, as of its end (5 March 00:00 UTC); rows recorded after it never count.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from turnover_signals.config import load_config
from turnover_signals.kpi.build import record_integration_kpis
from turnover_signals.quality.gate import RunIdentity

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 4)
END = datetime(2026, 3, 5, tzinfo=UTC)  # the end of DAY: what the KPIs of DAY are measured at
RUN = RunIdentity(
    dag_id="turnover_features", run_id="scheduled__2026-03-05", task_id="record_integration_kpis"
)


def at(hours: float) -> datetime:
    """`hours` after the start of DAY (negative: before it; 24 and more: after its end)."""
    return END - timedelta(days=1) + timedelta(hours=hours)


@pytest.fixture
def config() -> dict[str, Any]:
    return copy.deepcopy(load_config(use_variable=False))


def measure(config, dsn, kpi_date=DAY) -> dict[str, Any]:
    return record_integration_kpis(config, RUN, kpi_date=kpi_date, dsn=dsn)


def kpis(dsn, kpi_date=DAY) -> dict[str, tuple[float | None, float | None, str]]:
    """The day's rows: kpi -> (value, target, status)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select kpi, kpi_value, target_value, status from mart.integration_kpi where kpi_date = %s",
            (kpi_date,),
        ).fetchall()
    return {kpi: (value, target, status) for kpi, value, target, status in rows}


def table_contents(dsn) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("select * from mart.integration_kpi order by kpi_date, kpi").fetchall()


# -- hand-made rows ---------------------------------------------------------------------------------------


def reconciliation(
    conn, finished_at, hris=100, canonical=100, match_rate=1.0, statements=100, attributable=100
):
    conn.execute(
        """
        insert into audit.identity_reconciliation (run_id, mode, rule_version, hris_headcount,
            canonical_headcount, employee_keys, lms_users, lms_users_matched, lms_users_unmatched_by_reason,
            lms_users_matched_by_method, active_lms_users, active_corporate_lms_users,
            active_corporate_match_rate, statements, statements_attributable, open_exceptions_by_kind,
            scope_employees, scope_lms_users, scope_learners, success, finished_at)
        values (%s, 'full', 2, %s, %s, %s, 0, 0, '{}', '{}', 0, 0, %s, %s, %s, '{}', 0, 0, 0, true, %s)
        """,
        (str(uuid.uuid4()), hris, canonical, canonical, match_rate, statements, attributable, finished_at),
    )


def identity_exception(conn, first_seen_at, status="open", resolved_at=None):
    conn.execute(
        """
        insert into audit.identity_exception (exception_id, kind, status, hris_employee_ids, lms_user_ids,
            employee_keys, evidence, first_seen_at, resolved_at)
        values (%s, 'shared_email', %s, '{}', '{}', '{}', '{}', %s, %s)
        """,
        (str(uuid.uuid4()), status, first_seen_at, resolved_at),
    )


def manifest(conn, feed, received_at, status="loaded", dag_id="hris_sftp_ingest"):
    conn.execute(
        """
        insert into audit.file_manifest (file_name, sha256, feed, file_date, size_bytes, received_at, status,
            dag_id)
        values (%s, %s, %s, %s, 10, %s, %s, %s)
        """,
        (
            f"{feed}_{uuid.uuid4().hex[:6]}.csv",
            uuid.uuid4().hex,
            feed,
            received_at.date(),
            received_at,
            status,
            dag_id,
        ),
    )


def lms_batch(conn, finished_at, watermark_after, status="published", new=0, source="xapi:lms_api"):
    conn.execute(
        """
        insert into audit.lms_extract_batch (batch_id, source, endpoint, watermark_after, pages,
            statements_received, statements_new, statements_already_loaded, statements_rejected,
            voids_applied, reject_rate, status, dag_id, started_at, finished_at)
        values (%s, %s, 'http://lrs/xapi/statements', %s, 1, %s, %s, 0, 0, 0, 0, %s, 'lms_api_ingest', %s, %s)
        """,
        (str(uuid.uuid4()), source, watermark_after, new, new, status, finished_at, finished_at),
    )


def validation(conn, suite, success, validated_at, dag_id="lms_api_ingest"):
    conn.execute(
        """
        insert into audit.validation_result (validation_id, suite_name, suite_version, data_asset,
            batch_identifier, success, evaluated_expectations, failed_expectation_count, statistics,
            failed_expectations, results, dag_id, validated_at)
        values (%s, %s, '1', %s, 'x', %s, 1, %s, '{}', '[]', '[]', %s, %s)
        """,
        (str(uuid.uuid4()), suite, suite, success, 0 if success else 1, dag_id, validated_at),
    )


def rejected_statement(conn, rejected_at):
    conn.execute(
        """
        insert into raw.lms_statement_rejected (payload_sha256, reason, raw, source, batch_id, rejected_at)
        values (%s, 'missing actor', '{}', 'xapi:lms_api', 'b', %s)
        """,
        (uuid.uuid4().hex, rejected_at),
    )


def feature_row(conn, employee_key, reference_date=DAY - timedelta(days=1), job_level=3, built_at=None):
    """A feature row; by default of the day before DAY, built during DAY (as production builds it)."""
    conn.execute(
        """
        insert into mart.employee_features (employee_key, reference_date, feature_set_version,
            hris_employee_id, tenure_days, job_level, built_at, build_id)
        values (%s, %s, 2, %s, 100, %s, %s, 'b')
        """,
        (employee_key, reference_date, f"E{employee_key}", job_level, built_at or at(8)),
    )


def score(conn, employee_key, reference_date, scored_at):
    conn.execute(
        """
        insert into mart.turnover_risk_score (employee_key, reference_date, feature_set_version,
            model_version, score, risk_rank, risk_band, top_features, scored_at)
        values (%s, %s, 2, 'm-1', 0.1, %s, 'low', '[]', %s)
        """,
        (employee_key, reference_date, employee_key, scored_at),
    )


def rows_of(dsn, *writers):
    with psycopg.connect(dsn, autocommit=True) as conn:
        for write in writers:
            write(conn)


# -- each KPI: its value and its alert ----------------------------------------------------------------------


def test_identity_kpis_come_from_the_newest_identity_run_finished_by_the_end_of_the_day(
    config, warehouse_dsn
):
    rows_of(
        warehouse_dsn,
        lambda c: reconciliation(c, at(10), hris=100, canonical=100, match_rate=0.99),
        lambda c: reconciliation(
            c, at(20), hris=100, canonical=98, match_rate=0.9, statements=200, attributable=190
        ),
        lambda c: reconciliation(c, at(25), hris=100, canonical=100, match_rate=1.0),  # after the day
    )
    measure(config, warehouse_dsn)
    day = kpis(warehouse_dsn)
    assert day["hris_headcount_reconciliation"] == (0.98, 1.0, "alert")
    assert day["identity_match_rate"] == (0.9, 0.95, "alert")
    assert day["attributable_statement_share"] == (0.95, 0.9, "ok")


def test_open_identity_exceptions_are_those_open_at_the_end_of_the_day(config, warehouse_dsn):
    rows_of(
        warehouse_dsn,
        *[lambda c: identity_exception(c, at(-48)) for _ in range(3)],
        lambda c: identity_exception(c, at(-48), "resolved", resolved_at=at(12)),  # closed during the day
        lambda c: identity_exception(c, at(-48), "resolved", resolved_at=at(30)),  # still open at its end
        lambda c: identity_exception(c, at(26)),  # first seen the next day
    )
    measure(config, warehouse_dsn)
    assert kpis(warehouse_dsn)["open_identity_exceptions"] == (4.0, 25.0, "ok")
    config["kpi"]["targets"]["open_identity_exceptions"] = 3
    measure(config, warehouse_dsn)
    assert kpis(warehouse_dsn)["open_identity_exceptions"] == (4.0, 3.0, "alert")


def test_hris_file_age_is_measured_per_feed_from_the_newest_good_file(config, warehouse_dsn):
    rows_of(
        warehouse_dsn,
        lambda c: manifest(c, "employees", at(6)),
        lambda c: manifest(c, "employees", at(8), status="quarantined"),  # not a good file
        lambda c: manifest(c, "compensation", at(-36), status="superseded"),  # good when it loaded
        lambda c: manifest(c, "compensation", at(30)),  # after the day
    )
    measure(config, warehouse_dsn)
    day = kpis(warehouse_dsn)
    assert day["hris_file_age_hours:employees"] == (18.0, 30.0, "ok")
    assert day["hris_file_age_hours:compensation"] == (60.0, 30.0, "alert")


def test_lms_watermark_lag_is_measured_per_source_from_published_batches(config, warehouse_dsn):
    rows_of(
        warehouse_dsn,
        lambda c: lms_batch(c, at(23), watermark_after=at(22)),
        lambda c: lms_batch(c, at(23.5), watermark_after=at(23.4), status="failed"),
        lambda c: lms_batch(c, at(12), watermark_after=at(-24), source="xapi:other_lrs"),
    )
    measure(config, warehouse_dsn)
    day = kpis(warehouse_dsn)
    assert day["lms_watermark_lag_hours:xapi:lms_api"] == (2.0, 12.0, "ok")
    assert day["lms_watermark_lag_hours:xapi:other_lrs"] == (48.0, 12.0, "alert")


def test_validation_pass_rate_is_per_suite_over_the_day(config, warehouse_dsn):
    rows_of(
        warehouse_dsn,
        lambda c: validation(c, "hris_employees_file", True, at(1)),
        lambda c: validation(c, "hris_employees_file", True, at(2)),
        lambda c: validation(c, "hris_employees_file", False, at(3)),
        lambda c: validation(c, "lms_statement_batch", True, at(4)),
        lambda c: validation(c, "lms_statement_batch", False, at(25)),  # the next day
    )
    measure(config, warehouse_dsn)
    day = kpis(warehouse_dsn)
    assert day["validation_pass_rate:hris_employees_file"] == (0.666667, 0.9, "alert")
    assert day["validation_pass_rate:lms_statement_batch"] == (1.0, 0.9, "ok")


def test_rejected_statement_rate_is_the_day_s_new_rejects_over_everything_received(config, warehouse_dsn):
    rows_of(
        warehouse_dsn,
        lambda c: rejected_statement(c, at(5)),
        lambda c: rejected_statement(c, at(6)),
        lambda c: rejected_statement(c, at(-5)),  # the day before
        lambda c: lms_batch(c, at(6), watermark_after=at(6), new=98),
    )
    measure(config, warehouse_dsn)
    assert kpis(warehouse_dsn)["rejected_statement_rate"] == (0.02, 0.01, "alert")
    config["kpi"]["targets"]["rejected_statement_rate"] = 0.05
    measure(config, warehouse_dsn)
    assert kpis(warehouse_dsn)["rejected_statement_rate"] == (0.02, 0.05, "ok")


def test_pipeline_success_rate_is_per_dag_from_the_outcomes_its_tasks_recorded(config, warehouse_dsn):
    rows_of(
        warehouse_dsn,
        lambda c: manifest(c, "employees", at(6)),
        lambda c: manifest(c, "employees", at(7), status="quarantined"),
        lambda c: manifest(c, "employees", at(7), status="duplicate"),  # not an outcome
        lambda c: validation(c, "hris_employees_file", True, at(6), dag_id="hris_sftp_ingest"),
        lambda c: validation(c, "hris_employees_file", True, at(7), dag_id="hris_sftp_ingest"),
        lambda c: lms_batch(c, at(3), watermark_after=at(3)),
        lambda c: lms_batch(c, at(4), watermark_after=at(4)),
        lambda c: reconciliation(c, at(5)),
    )
    measure(config, warehouse_dsn)
    day = kpis(warehouse_dsn)
    assert day["pipeline_success_rate:hris_sftp_ingest"] == (0.75, 0.95, "alert")  # 3 of 4
    assert day["pipeline_success_rate:lms_api_ingest"] == (1.0, 0.95, "ok")
    assert day["pipeline_success_rate:identity_resolution"] == (1.0, 0.95, "ok")


def dag_run_count(conn, dag_id, succeeded, failed, unfinished=0, run_day=DAY):
    conn.execute(
        """
        insert into audit.airflow_dag_run_count (run_day, dag_id, succeeded, failed, unfinished,
            first_counted_at, counted_at)
        values (%s, %s, %s, %s, %s, %s, %s)
        """,
        (run_day, dag_id, succeeded, failed, unfinished, at(30), at(30)),
    )


def test_pipeline_success_rate_comes_from_airflow_run_states_where_the_api_was_read(config, warehouse_dsn):
    rows_of(
        warehouse_dsn,
        # the tasks of both DAGs recorded only successes; Airflow saw a failed run of the HRIS DAG
        lambda c: manifest(c, "employees", at(6)),
        lambda c: lms_batch(c, at(3), watermark_after=at(3)),
        lambda c: reconciliation(c, at(5)),
        lambda c: dag_run_count(c, "hris_sftp_ingest", succeeded=3, failed=1),
        lambda c: dag_run_count(c, "lms_api_ingest", succeeded=24, failed=0, unfinished=1),
        lambda c: dag_run_count(c, "turnover_model", succeeded=0, failed=0),  # no run due that day
        lambda c: dag_run_count(c, "identity_resolution", 0, 5, run_day=DAY - timedelta(days=1)),
    )
    measure(config, warehouse_dsn)
    day = kpis(warehouse_dsn)
    assert day["pipeline_success_rate:hris_sftp_ingest"] == (0.75, 0.95, "alert")
    assert day["pipeline_success_rate:lms_api_ingest"] == (1.0, 0.95, "ok")  # finished runs only
    assert "pipeline_success_rate:turnover_model" not in day
    # not counted for this day (the connection was missing then): the identity run's own outcome
    assert day["pipeline_success_rate:identity_resolution"] == (1.0, 0.95, "ok")
    with psycopg.connect(warehouse_dsn) as conn:
        sources = dict(
            conn.execute(
                "select kpi, source from mart.integration_kpi where kpi like 'pipeline_success_rate:%%'"
            ).fetchall()
        )
    assert sources["pipeline_success_rate:hris_sftp_ingest"].startswith("audit.airflow_dag_run_count")
    assert sources["pipeline_success_rate:identity_resolution"].startswith("audit.validation_result")


def test_without_the_api_connection_the_run_states_are_not_read_and_the_log_says_so(
    config, warehouse_dsn, caplog
):
    with caplog.at_level(logging.INFO, logger="turnover_signals.kpi.dag_runs"):
        summary = measure(config, warehouse_dsn)
    assert summary["dag_run_states"] == "no connection"
    assert (
        "Airflow connection 'airflow_api' is not defined, so the DAG run states are not read" in caplog.text
    )


def test_an_api_that_cannot_be_read_is_a_warning_and_the_outcomes_recorded_by_tasks_are_used(
    config, warehouse_dsn, caplog
):
    from turnover_signals.run_note import AirflowApi

    rows_of(warehouse_dsn, lambda c: lms_batch(c, at(3), watermark_after=at(3)))
    closed = AirflowApi("http://127.0.0.1:9", username="turnover_bot", password="secret-password")
    with caplog.at_level(logging.WARNING, logger="turnover_signals.kpi.dag_runs"):
        summary = record_integration_kpis(config, RUN, kpi_date=DAY, dsn=warehouse_dsn, airflow_api=closed)
    assert summary["dag_run_states"] == "failed"
    assert "the DAG run states of 2026-03-04 could not be read through Airflow connection" in caplog.text
    assert "secret-password" not in caplog.text
    assert kpis(warehouse_dsn)["pipeline_success_rate:lms_api_ingest"] == (1.0, 0.95, "ok")


def test_a_day_whose_runs_had_all_finished_is_not_counted_again(config, warehouse_dsn):
    from turnover_signals.run_note import AirflowApi

    rows_of(warehouse_dsn, lambda c: dag_run_count(c, "hris_sftp_ingest", succeeded=3, failed=1))
    never_asked = AirflowApi("http://127.0.0.1:9", token="unused")  # a request would fail the count
    summary = record_integration_kpis(config, RUN, kpi_date=DAY, dsn=warehouse_dsn, airflow_api=never_asked)
    assert summary["dag_run_states"] == "frozen"
    assert kpis(warehouse_dsn)["pipeline_success_rate:hris_sftp_ingest"] == (0.75, 0.95, "alert")


def test_feature_null_rates_are_per_feature_of_the_newest_date_built_by_the_end_of_the_day(
    config, warehouse_dsn
):
    rows_of(
        warehouse_dsn,
        *[lambda c, key=key: feature_row(c, key, job_level=None if key == 1 else 3) for key in range(1, 5)],
        # an older date, and the day itself, built only the next morning: neither is measured
        lambda c: feature_row(c, 9, reference_date=DAY - timedelta(days=2), job_level=None, built_at=at(-16)),
        lambda c: feature_row(c, 9, reference_date=DAY, job_level=None, built_at=at(31.5)),
    )
    measure(config, warehouse_dsn)
    day = kpis(warehouse_dsn)
    assert day["feature_null_rate:job_level"] == (0.25, 0.05, "alert")  # features.max_null_fraction
    assert day["feature_null_rate:tenure_days"] == (0.0, 0.0, "ok")  # the gate allows no null
    assert day["feature_null_rate:team_size"] == (1.0, 0.0, "alert")  # never filled in here
    config["kpi"]["targets"]["feature_null_rate"] = {"job_level": 0.3}
    measure(config, warehouse_dsn)
    assert kpis(warehouse_dsn)["feature_null_rate:job_level"] == (0.25, 0.3, "ok")


def test_scored_headcount_is_held_against_a_share_of_the_employees_with_features(config, warehouse_dsn):
    month_end, built, scored = date(2026, 2, 28), at(-96), at(-72)
    rows_of(
        warehouse_dsn,
        *[
            lambda c, key=key: feature_row(c, key, reference_date=month_end, built_at=built)
            for key in range(1, 51)
        ],
        *[lambda c, key=key: score(c, key, month_end, scored) for key in range(1, 49)],
        lambda c: score(c, 1, date(2026, 3, 31), scored),  # a reference date after the day
        lambda c: score(c, 1, DAY - timedelta(days=1), at(26)),  # scored after the day ended
    )
    measure(config, warehouse_dsn)
    assert kpis(warehouse_dsn)["scored_headcount"] == (48.0, 49.0, "alert")  # ceil(50 × 0.98)
    rows_of(warehouse_dsn, lambda c: score(c, 49, month_end, scored))
    measure(config, warehouse_dsn)
    assert kpis(warehouse_dsn)["scored_headcount"] == (49.0, 49.0, "ok")


def test_a_kpi_without_anything_recorded_to_measure_has_no_data_and_does_not_alert(config, warehouse_dsn):
    summary = measure(config, warehouse_dsn)
    day = kpis(warehouse_dsn)
    assert day["identity_match_rate"] == (None, 0.95, "no_data")
    assert day["hris_file_age_hours:employees"] == (None, 30.0, "no_data")
    assert day["scored_headcount"] == (None, None, "no_data")
    assert day["open_identity_exceptions"] == (0.0, 25.0, "ok")
    assert summary["red"] == [] and summary["alerted"] == 0


# -- reruns and alerts -----------------------------------------------------------------------------------


def some_red_kpis(dsn):
    rows_of(
        dsn,
        lambda c: reconciliation(c, at(20), hris=100, canonical=98, match_rate=0.9),
        lambda c: validation(c, "hris_employees_file", False, at(3)),
        lambda c: manifest(c, "employees", at(6)),
    )


def test_a_rerun_for_the_same_day_leaves_the_same_rows_and_does_not_alert_again(
    config, warehouse_dsn, caplog
):
    some_red_kpis(warehouse_dsn)
    first = measure(config, warehouse_dsn)
    before = table_contents(warehouse_dsn)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="turnover_signals.notify"):
        second = measure(config, warehouse_dsn)
    assert table_contents(warehouse_dsn) == before  # computed_at included
    assert first["alerted"] == 4 and first["changed"] == first["kpis"]
    assert second["alerted"] == 0 and second["changed"] == 0 and second["red"] == first["red"]
    assert "TURNOVER-SIGNALS ALERT" not in caplog.text


def test_a_red_kpi_raises_the_standard_alert_with_its_next_step_and_runbook_entry(
    config, warehouse_dsn, caplog
):
    some_red_kpis(warehouse_dsn)
    with caplog.at_level(logging.ERROR, logger="turnover_signals.notify"):
        measure(config, warehouse_dsn)
    [alert] = [r.getMessage() for r in caplog.records if "TURNOVER-SIGNALS ALERT" in r.getMessage()]
    assert alert.startswith(
        "TURNOVER-SIGNALS ALERT turnover_features.record_integration_kpis run scheduled__2026-03-05: "
        "4 KPI(s) red on 2026-03-04"
    )
    assert "identity_match_rate on 2026-03-04 is 0.9 share, below its minimum 0.95. Next step: " in alert
    assert "(runbook: docs/runbook/kpis.md#runbook-kpi-identity-match-rate)" in alert
    assert "(runbook: docs/runbook/kpis.md#runbook-kpi-validation-pass-rate)" in alert
    assert "hris_file_age_hours" not in alert  # green


def test_the_alert_links_through_the_configured_runbook_url(config, warehouse_dsn, caplog):
    some_red_kpis(warehouse_dsn)
    config["alerts"]["runbook_url"] = "https://docs.example.com/ts/runbook/{page}/#{anchor}"
    with caplog.at_level(logging.ERROR, logger="turnover_signals.notify"):
        measure(config, warehouse_dsn)
    assert (
        "https://docs.example.com/ts/runbook/kpis/#runbook-kpi-hris-headcount-reconciliation" in caplog.text
    )


def test_what_changed_about_a_day_updates_its_rows_and_alerts_only_for_those(config, warehouse_dsn, caplog):
    some_red_kpis(warehouse_dsn)
    measure(config, warehouse_dsn)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute("delete from audit.validation_result")  # the suite's run turns out not to be of that day
        reconciliation(conn, at(21), hris=100, canonical=97, match_rate=0.9)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="turnover_signals.notify"):
        summary = measure(config, warehouse_dsn)
    day = kpis(warehouse_dsn)
    assert "validation_pass_rate:hris_employees_file" not in day  # no longer measured that day: removed
    assert day["hris_headcount_reconciliation"] == (0.97, 1.0, "alert")
    assert summary["alerted"] == 1 and "1 KPI(s) red" in caplog.text  # the match rate did not change


def test_each_day_keeps_its_own_rows(config, warehouse_dsn):
    rows_of(warehouse_dsn, lambda c: manifest(c, "employees", at(6)))
    measure(config, warehouse_dsn)
    measure(config, warehouse_dsn, kpi_date=DAY + timedelta(days=1))
    with psycopg.connect(warehouse_dsn) as conn:
        ages = dict(
            conn.execute(
                "select kpi_date, kpi_value from mart.integration_kpi"
                " where kpi = 'hris_file_age_hours:employees'"
            ).fetchall()
        )
    assert ages == {DAY: 18.0, DAY + timedelta(days=1): 42.0}


# -- the KPI page --------------------------------------------------------------------------------------------


@pytest.fixture
def api(airflow_metadata_db, warehouse_dsn, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "auditor:viewer,visitor:none")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    monkeypatch.setenv("AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({}))
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from fastapi.testclient import TestClient

    return TestClient(create_app()), get_auth_manager()


def token(manager, role):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return manager.generate_jwt(SimpleAuthManagerUser(username=f"u-{role}", role=role))


def kpi_history(config, dsn, days=5):
    """Five days of KPIs, the last one with red KPIs."""
    for offset in range(days, 0, -1):
        day = DAY - timedelta(days=offset - 1)
        rows_of(
            dsn,
            lambda c, day=day: manifest(
                c, "employees", datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
            ),
        )
        rows_of(
            dsn, lambda c, day=day: lms_batch(c, datetime(day.year, day.month, day.day, 23, tzinfo=UTC), day)
        )
    some_red_kpis(dsn)
    for offset in range(days, 0, -1):
        measure(config, dsn, kpi_date=DAY - timedelta(days=offset - 1))


MONITORING_TABLE = """
create table mart.model_monitoring (
    model_version text, reference_date date, metric text, value double precision, lower double precision,
    upper double precision, threshold double precision, status text, computed_at timestamptz,
    primary key (model_version, reference_date, metric)
)
"""


def monitoring_rows(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("select to_regclass('mart.model_monitoring') is null").fetchone()[0]:
            conn.execute(MONITORING_TABLE)  # the model monitoring migration's table, if it has not run here
        for month in range(1, 7):
            reference_date = date(2026, month, 1)
            for metric, value, threshold, status in (
                ("roc_auc", 0.74 - 0.01 * month, 0.65, "ok"),
                ("psi_score", 0.05 * month, 0.2, "alert" if 0.05 * month > 0.2 else "ok"),
            ):
                conn.execute(
                    "insert into mart.model_monitoring (model_version, reference_date, metric, value, lower,"
                    " upper, threshold, status, computed_at)"
                    " values ('m-1', %s, %s, %s, %s, %s, %s, %s, now())",
                    (reference_date, metric, value, value - 0.03, value + 0.03, threshold, status),
                )


def test_the_kpi_page_shows_latest_values_red_first_then_a_plot_per_kpi_with_runbook_links(
    config, api, warehouse_dsn
):
    kpi_history(config, warehouse_dsn)
    client, manager = api
    page = client.get("/data-quality/kpis", headers={"Authorization": f"Bearer {token(manager, 'viewer')}"})
    assert page.status_code == 200, page.text
    latest = page.text.split('<table id="kpi-latest">', 1)[1].split("</table>", 1)[0]
    rows = latest.split("<tr class=")[1:]
    assert rows[0].startswith("alert>") and "RED" in rows[0]
    assert [row.split(">", 1)[0] for row in rows] == sorted(
        (row.split(">", 1)[0] for row in rows), key=["alert", "no_data", "ok"].index
    )
    assert '<a href="runbook/kpis#runbook-kpi-identity-match-rate">runbook</a>' in latest
    plots = page.text.split('<div class=plots id="kpi-history">', 1)[1]
    assert plots.count('<img class=kpi-plot alt="') == len(rows) and 'src="data:image/png;base64,' in plots
    assert "Model monitoring" not in page.text  # no mart.model_monitoring here
    runbook = client.get(
        "/data-quality/runbook/kpis", headers={"Authorization": f"Bearer {token(manager, 'viewer')}"}
    )
    assert runbook.status_code == 200 and '<a id="runbook-kpi-identity-match-rate"></a>' in runbook.text


def test_the_kpi_page_plots_model_monitoring_once_its_table_has_rows(config, api, warehouse_dsn):
    kpi_history(config, warehouse_dsn, days=2)
    monitoring_rows(warehouse_dsn)
    client, manager = api
    page = client.get(
        "/data-quality/kpis", headers={"Authorization": f"Bearer {token(manager, 'viewer')}"}
    ).text
    section = page.split('<div class=plots id="model-monitoring">', 1)[1]
    assert section.count("<img class=monitoring-plot") == 2
    assert 'id="monitoring-psi_score"' in section and 'id="monitoring-roc_auc"' in section


def test_the_kpi_page_is_served_only_to_authenticated_readers_of_the_kpi_dag(config, api, warehouse_dsn):
    kpi_history(config, warehouse_dsn, days=1)
    client, manager = api
    assert client.get("/data-quality/kpis").status_code == 401
    assert client.get("/data-quality/runbook/kpis").status_code == 401
    outsider = client.get("/data-quality/kpis", headers={"Authorization": f"Bearer {token(manager, None)}"})
    assert (
        outsider.status_code == 200
        and "kpi-plot" not in outsider.text
        and "identity_match_rate" not in outsider.text
    )
    viewer = {"Authorization": f"Bearer {token(manager, 'viewer')}"}
    assert client.get("/data-quality/runbook/..%2F..%2Fetc%2Fpasswd", headers=viewer).status_code == 404
    assert client.get("/data-quality/runbook/not-a-page", headers=viewer).status_code == 404
    assert 'href="kpis"' in client.get("/data-quality/", headers=viewer).text  # beside the Data quality page


def test_the_plugin_lists_the_kpi_page_in_the_browse_menu_beside_the_data_quality_page():
    from data_quality_plugin import URL_PREFIX, DataQualityPlugin

    menu = {view["name"]: view for view in DataQualityPlugin.external_views if view["destination"] == "nav"}
    assert menu["KPIs"]["href"] == "data-quality/kpis" and menu["Data quality"]["href"] == "data-quality/"
    assert menu["KPIs"]["category"] == menu["Data quality"]["category"] == "browse"
    assert URL_PREFIX == "/data-quality"


# -- the KPI page in a real browser ---------------------------------------------------------------------

# screenshots of the page as a person sees it, kept for CI to collect (git-ignored), as the scheduler test's
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture
def served_api(api):
    """The Airflow API server app with the plugin, served over HTTP on a free local port."""
    import socket
    import threading
    import time

    import uvicorn

    client, manager = api
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}", manager
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def chromium():
    """Headless Chromium (Debian's, with its driver), as the scheduler end-to-end test drives it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,900")
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options
    )
    try:
        yield driver
    finally:
        driver.quit()


def test_the_kpi_page_renders_its_plots_in_headless_chromium(config, served_api, chromium, warehouse_dsn):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    kpi_history(config, warehouse_dsn)
    monitoring_rows(warehouse_dsn)
    base, manager = served_api
    chromium.get(f"{base}/data-quality/kpis")  # 401: sets the origin for the session cookie
    assert "Not authenticated" in chromium.find_element(By.TAG_NAME, "body").text
    chromium.add_cookie({"name": "_token", "value": token(manager, "viewer"), "path": "/"})
    chromium.get(f"{base}/data-quality/kpis")
    WebDriverWait(chromium, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#kpi-latest tbody tr"))
    loaded = """return Array.from(document.querySelectorAll(arguments[0])).map(
        (img) => [img.complete, img.naturalWidth, img.naturalHeight, img.getBoundingClientRect().width])"""
    kpi_images = chromium.execute_script(loaded, "img.kpi-plot")
    rows = chromium.find_elements(By.CSS_SELECTOR, "#kpi-latest tbody tr")
    assert len(kpi_images) == len(rows) > 10
    assert all(
        complete and width > 300 and height > 100 and shown > 200
        for complete, width, height, shown in kpi_images
    )
    monitoring_images = chromium.execute_script(loaded, "img.monitoring-plot")
    assert len(monitoring_images) == 2 and all(image[0] and image[1] > 300 for image in monitoring_images)
    # the latest values come first, red ones on top, each linking to its runbook entry
    assert rows[0].get_attribute("class") == "alert" and "RED" in rows[0].text
    widths = chromium.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    chromium.set_window_size(1400, chromium.execute_script("return document.body.scrollHeight") + 100)
    chromium.save_screenshot(str(SCREENSHOT_DIR / "kpi_page.png"))
    rows[0].find_element(By.LINK_TEXT, "runbook").click()
    WebDriverWait(chromium, 30).until(lambda d: "/data-quality/runbook/kpis" in d.current_url)
    anchor = chromium.current_url.split("#", 1)[1]
    assert chromium.find_element(By.ID, anchor).get_attribute("id").startswith("runbook-kpi-")
    assert "Steps" in chromium.find_element(By.TAG_NAME, "body").text
