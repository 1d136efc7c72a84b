"""Airflow's REST API as the tasks use it, against a real `airflow api-server` on the same metadata DB: a
deferral is written on the DAG run itself (the `turnover_features` DAG through `dag.test()` sets the run's
note, keeping what people wrote), and the KPI task counts the day's DAG run states."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import psycopg
import pytest

from tests.conftest import REPO_ROOT
from tests.databases import DatabaseCopies, as_airflow_warehouse
from tests.integration.airflow_processes import api_server
from tests.integration.test_identity_resolution import CORP, employee, lms_user
from tests.integration.test_turnover_features import hr_known_through, lms_read_through
from turnover_signals.run_note import NOTE_MAX_CHARS, NOTE_PREFIX, merged_note, write_run_note

DAG_ID = "turnover_features"


def test_only_this_packages_lines_are_replaced_and_the_note_stays_within_the_limit():
    person = "Checked with HR: the file is late because of the holiday.\n"
    ours = merged_note(person, ["deferred 2026-12-04"])
    assert ours == person + NOTE_PREFIX + "deferred 2026-12-04"
    assert merged_note(ours, ["deferred 2026-12-05"]) == person + NOTE_PREFIX + "deferred 2026-12-05"
    assert merged_note(ours, []) == person.rstrip("\n")
    assert merged_note(NOTE_PREFIX + "old", []) is None
    long = merged_note(person, ["x" * 5000])
    assert (
        len(long) <= NOTE_MAX_CHARS
        and long.startswith(person)
        and long.endswith("(the full text is in the task log)")
    )


def logged(caplog, capsys) -> str:
    """What was logged, whether through the standard logging (caplog) or Airflow's structlog (stdout)."""
    return caplog.text + capsys.readouterr().out


def test_without_the_connection_nothing_is_sent_and_the_log_says_why(airflow_metadata_db, caplog, capsys):
    with caplog.at_level(logging.INFO):
        assert write_run_note(DAG_ID, "manual__x", ["deferred"], conn_id="no_such_api") == "no connection"
    assert "Airflow connection 'no_such_api' is not defined" in logged(caplog, capsys)


@pytest.fixture(scope="module")
def airflow_api(airflow_metadata_db, tmp_path_factory):
    """One API server for the module's DAG runs (it only reads and writes run notes)."""
    with api_server(
        tmp_path_factory.mktemp("api-server"), {"admin": "ADMIN", "turnover_bot": "USER", "reader": "VIEWER"}
    ) as server:
        yield server


@pytest.fixture(scope="module")
def deferred_run(airflow_api, migrated_template_db):
    """A `turnover_features` run whose reference date (two days ago) waits for its employees file, run once
    for the tests below: its state, the API path of the run and the note the run wrote. The tests that write
    the note again first set it to what they start from."""
    from airflow.dag_processing.dagbag import DagBag

    today = datetime.now(UTC).date()
    reference_date = today - timedelta(days=2)  # ended, its file not late yet (lateness 48 h after its end)
    with DatabaseCopies() as databases, pytest.MonkeyPatch.context() as environment:
        dsn = as_airflow_warehouse(databases.copy(migrated_template_db), environment)
        with psycopg.connect(dsn, autocommit=True) as conn:
            employee(conn, "E1", guid="g-e1", email=f"e1@{CORP}", hire=date(2022, 3, 1))
            hr_known_through(conn, reference_date - timedelta(days=1))
            lms_read_through(conn, datetime.now(UTC) - timedelta(minutes=5))
        environment.setenv(
            "AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"features": {"initial_backfill_month_ends": 0}})
        )
        environment.setenv("AIRFLOW_CONN_AIRFLOW_API", airflow_api.connection("turnover_bot"))

        dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / f"{DAG_ID}.py")).get_dag(DAG_ID)
        logical_date = datetime.combine(reference_date + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        run = dag.test(logical_date=logical_date.replace(hour=7, minute=30))
        with psycopg.connect(dsn) as conn:
            dag_run_counts = conn.execute(
                "select run_day, dag_id from audit.airflow_dag_run_count order by dag_id"
            ).fetchall()
    path = f"api/v2/dags/{DAG_ID}/dagRuns/{run.run_id}"
    return SimpleNamespace(
        state=run.state,
        run_id=run.run_id,
        path=path,
        reference_date=reference_date,
        note=airflow_api.get(path, "reader")["note"],
        dag_run_counts=dag_run_counts,
    )


PERSON = "on-call: HR says the file comes tomorrow"


def set_note(airflow_api, run, note: str) -> None:
    airflow_api.patch(run.path, {"note": note}, "admin", update_mask="note")


@pytest.mark.slow
def test_a_deferred_date_is_written_on_the_run(deferred_run):
    assert deferred_run.state == "success"
    assert deferred_run.note.startswith(NOTE_PREFIX + "deferred (inputs not complete through the cut-off): ")
    assert (
        f"no employees file dated {deferred_run.reference_date} or later is in the HR history"
        in deferred_run.note
    )


@pytest.mark.slow
def test_a_rerun_writing_the_same_lines_sends_nothing_and_keeps_peoples_lines(
    airflow_api, deferred_run, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", airflow_api.connection("turnover_bot"))
    note = deferred_run.note
    set_note(airflow_api, deferred_run, PERSON + "\n" + note)
    assert write_run_note(DAG_ID, deferred_run.run_id, [note.removeprefix(NOTE_PREFIX)]) == "unchanged"
    assert airflow_api.get(deferred_run.path, "reader")["note"] == PERSON + "\n" + note


@pytest.mark.slow
def test_once_the_date_is_built_its_deferral_line_goes_and_peoples_lines_stay(
    airflow_api, deferred_run, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", airflow_api.connection("turnover_bot"))
    set_note(airflow_api, deferred_run, PERSON + "\n" + deferred_run.note)
    assert write_run_note(DAG_ID, deferred_run.run_id, []) == "written"
    assert airflow_api.get(deferred_run.path, "reader")["note"] == PERSON
    assert write_run_note(DAG_ID, deferred_run.run_id, []) == "unchanged"


@pytest.mark.slow
def test_a_user_who_may_only_read_runs_gets_a_warning_naming_the_refusal_not_a_failed_task(
    airflow_api, deferred_run, monkeypatch, caplog, capsys
):
    capsys.readouterr()
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", airflow_api.connection("reader"))
    with caplog.at_level(logging.WARNING):
        assert write_run_note(DAG_ID, deferred_run.run_id, ["deferred"]) == "failed"
    text = logged(caplog, capsys)
    assert "could not be written through Airflow connection 'airflow_api'" in text and "HTTP 403" in text


@pytest.mark.slow
def test_a_wrong_password_gets_a_warning_that_never_shows_a_password_and_leaves_the_note(
    airflow_api, deferred_run, monkeypatch, caplog, capsys
):
    set_note(airflow_api, deferred_run, PERSON)
    capsys.readouterr()
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", airflow_api.connection("reader", "wrong-password"))
    with caplog.at_level(logging.WARNING):
        assert write_run_note(DAG_ID, deferred_run.run_id, ["deferred"]) == "failed"
    text = logged(caplog, capsys)
    assert "login of user 'reader' answered HTTP 401" in text
    assert "wrong-password" not in text and airflow_api.users["reader"] not in text
    assert airflow_api.get(deferred_run.path, "reader")["note"] == PERSON


@pytest.mark.slow
def test_identity_waits_for_the_hr_history_without_failing_or_triggering_the_features(
    airflow_api, warehouse_dsn, monkeypatch
):
    """A first install under a scheduler: the LMS lands before the HRIS backlog is loaded and built."""
    from airflow.dag_processing.dagbag import DagBag

    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        lms_user(
            conn,
            "u-eva",
            email=f"eva.ma@{CORP}",
            external_id="hhhh-1",
            created=datetime(2022, 3, 2, tzinfo=UTC),
        )
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", airflow_api.connection("turnover_bot"))
    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "identity_resolution.py")).get_dag("identity_resolution")
    run = dag.test(logical_date=datetime(2026, 12, 1, 7, tzinfo=UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success" and states["resolve_identities"] == "skipped", states
    note = airflow_api.get(f"api/v2/dags/identity_resolution/dagRuns/{run.run_id}", "reader")["note"]
    assert note.startswith(NOTE_PREFIX + "skipped: no HR history yet (core.employee_history is empty)")
    # no asset event: the features DAG is not triggered, and nothing was recorded as a failed gate
    events = airflow_api.get(
        f"api/v2/assets/events?source_dag_id=identity_resolution&source_run_id={run.run_id}", "reader"
    )
    assert events["total_entries"] == 0
    with psycopg.connect(warehouse_dsn) as conn:
        assert conn.execute("select count(*) from audit.identity_reconciliation").fetchone() == (0,)


@pytest.mark.slow
def test_a_new_installs_model_run_skips_training_with_the_reason_instead_of_failing(
    airflow_api, warehouse_dsn, monkeypatch
):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", airflow_api.connection("turnover_bot"))
    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "turnover_model.py")).get_dag("turnover_model")
    run = dag.test(logical_date=datetime(2026, 12, 2, 9, tzinfo=UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert {
        task: states[task] for task in ("train_models", "promote_champion", "score_employees")
    } == dict.fromkeys(("train_models", "promote_champion", "score_employees"), "skipped")
    note = airflow_api.get(f"api/v2/dags/turnover_model/dagRuns/{run.run_id}", "reader")["note"]
    assert note.startswith(
        NOTE_PREFIX + "skipped: not enough settled training dates yet (0 reference date(s)"
    )


# -- the DAG run states of the pipeline success rate KPI ----------------------------------------------------

COUNTED_DAY = date(2026, 1, 10)


def add_dag_run(dag_id: str, run_id: str, run_after: datetime, state: str) -> None:
    """A run in the metadata DB the API server reads, as the scheduler would have left it."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    with create_session() as session:
        session.add(
            DagRun(
                dag_id=dag_id,
                run_id=run_id,
                run_after=run_after,
                state=state,
                run_type=DagRunType.MANUAL,
                triggered_by=DagRunTriggeredByType.TEST,
            )
        )


def counted_runs(conn) -> dict[str, tuple[int, int, int]]:
    rows = conn.execute(
        "select dag_id, succeeded, failed, unfinished from audit.airflow_dag_run_count where run_day = %s",
        (COUNTED_DAY,),
    ).fetchall()
    return {dag_id: (succeeded, failed, unfinished) for dag_id, succeeded, failed, unfinished in rows}


@pytest.mark.slow
def test_the_features_run_reads_the_days_run_states_of_the_bundles_dags_through_the_api(deferred_run):
    # the run measured the day before its data time: every DAG tagged turnover-signals was counted
    assert (deferred_run.reference_date, DAG_ID) in deferred_run.dag_run_counts


@pytest.mark.slow
def test_the_days_runs_are_counted_through_the_api_until_they_finish_then_frozen(
    airflow_api, deferred_run, warehouse_dsn, monkeypatch
):
    from turnover_signals.config import load_config
    from turnover_signals.kpi.build import write_kpis
    from turnover_signals.kpi.dag_runs import record_dag_run_counts

    start = datetime.combine(COUNTED_DAY, datetime.min.time(), tzinfo=UTC)
    for n, state in enumerate(["success", "success", "success", "failed", "running"]):
        add_dag_run(DAG_ID, f"kpi_count_{n}", start + timedelta(hours=2 * n, minutes=30), state)
    add_dag_run(DAG_ID, "kpi_count_day_before", start - timedelta(seconds=1), "failed")
    add_dag_run(DAG_ID, "kpi_count_day_after", start + timedelta(days=1), "failed")
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", airflow_api.connection("turnover_bot"))
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        assert record_dag_run_counts(conn, COUNTED_DAY) == "recorded"
        counts = counted_runs(conn)
        assert counts[DAG_ID] == (3, 1, 1)
        assert all(other == (0, 0, 0) for dag_id, other in counts.items() if dag_id != DAG_ID)

        airflow_api.patch(f"api/v2/dags/{DAG_ID}/dagRuns/kpi_count_4", {"state": "success"})
        assert record_dag_run_counts(conn, COUNTED_DAY) == "recorded"
        assert counted_runs(conn)[DAG_ID] == (4, 1, 0)

        # cleared the week after and rerun with success: the day's rate stays as it was
        airflow_api.patch(f"api/v2/dags/{DAG_ID}/dagRuns/kpi_count_3", {"state": "success"})
        assert record_dag_run_counts(conn, COUNTED_DAY) == "frozen"
        assert counted_runs(conn)[DAG_ID] == (4, 1, 0)

        write_kpis(conn, load_config(use_variable=False), COUNTED_DAY)
        rate = conn.execute(
            "select kpi_value, status, source from mart.integration_kpi where kpi_date = %s and kpi = %s",
            (COUNTED_DAY, f"pipeline_success_rate:{DAG_ID}"),
        ).fetchone()
    assert rate == (0.8, "alert", "audit.airflow_dag_run_count (Airflow REST API: DAG run states)")
