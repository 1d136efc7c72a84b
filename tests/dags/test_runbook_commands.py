"""The runbook's Airflow commands do what it says, for runs at the DAGs' real cron times.

Each command is read from the runbook's pages, docs/runbook/*.md (so the documentation and this test cannot
drift apart), parsed by Airflow's own CLI parser and run in-process against the throwaway SQLite metadata DB
of tests/conftest.py, with the bundle's DAGs serialized into it as the dag processor would.
"""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = ROOT / "dags"
RUN_OF_2_MARCH = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # hris_sftp_ingest runs daily at 06:00 UTC


def runbook_text() -> str:
    pages = sorted((ROOT / "docs" / "runbook").glob("*.md"))
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def runbook_airflow_commands() -> list[str]:
    """Every `airflow …` command in code spans of the runbook, joined across line breaks."""
    spans = re.findall(r"`(airflow [^`]+)`", runbook_text())
    return [" ".join(span.split()) for span in spans if not span.rstrip().endswith("…")]


def documented(prefix: str, containing: str = "") -> list[str]:
    commands = [c for c in runbook_airflow_commands() if c.startswith(prefix) and containing in c]
    assert commands, f"the runbook has no command starting {prefix!r} containing {containing!r}"
    return commands


def parse(command: str):
    from airflow.cli.cli_parser import get_parser

    argv = shlex.split(command)
    assert argv[0] == "airflow", command
    return get_parser().parse_args(argv[1:])


@pytest.fixture(scope="module")
def serialized_dags(airflow_metadata_db):
    """The bundle's DAGs in the metadata DB, which `airflow tasks clear` and `backfill create` read."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(DAGS_DIR))
    assert bag.import_errors == {}
    sync_bag_to_db(bag, "dags-folder", None)
    return bag


@pytest.fixture
def finished_hris_run(serialized_dags):
    """A successful hris_sftp_ingest run at its cron time on 2 March 2026, removed afterwards."""
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import delete

    def remove_runs():
        with create_session() as session:
            session.execute(
                delete(DagRun).where(
                    DagRun.dag_id == "hris_sftp_ingest", DagRun.logical_date == RUN_OF_2_MARCH
                )
            )

    remove_runs()
    with create_session() as session:
        dag = SerializedDagModel.get_dag("hris_sftp_ingest", session=session)
        run = dag.create_dagrun(
            run_id="scheduled__2026-03-02T06:00:00+00:00",
            logical_date=RUN_OF_2_MARCH,
            data_interval=(RUN_OF_2_MARCH, RUN_OF_2_MARCH),
            run_after=RUN_OF_2_MARCH,
            run_type=DagRunType.SCHEDULED,
            triggered_by=DagRunTriggeredByType.TIMETABLE,
            state=DagRunState.SUCCESS,
            session=session,
        )
        run_id = run.run_id
    mark_succeeded(run_id)
    yield run_id
    remove_runs()


def mark_succeeded(run_id: str) -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import update

    with create_session() as session:
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.dag_id == "hris_sftp_ingest", TaskInstance.run_id == run_id)
            .values(state=TaskInstanceState.SUCCESS)
        )


def task_states(run_id: str) -> dict[str, str | None]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(
                TaskInstance.dag_id == "hris_sftp_ingest", TaskInstance.run_id == run_id
            )
        ).all()
    return {task_id: (str(state) if state else None) for task_id, state in rows}


def test_the_runbooks_clear_one_date_command_clears_the_run_at_its_cron_time(finished_hris_run):
    commands = documented("airflow tasks clear hris_sftp_ingest -s 2026-03-02", containing="--yes")
    for command in sorted(set(commands)):
        mark_succeeded(finished_hris_run)
        args = parse(command)
        args.func(args)
        states = task_states(finished_hris_run)
        assert states and set(states.values()) == {None}, f"{command!r} left {states}"


def test_the_runbooks_step_5_clears_the_file_sensor_and_its_downstream_tasks_only(finished_hris_run):
    (command,) = documented("airflow tasks clear hris_sftp_ingest -t wait_for_hris_files -d")
    args = parse(command)
    args.func(args)
    states = task_states(finished_hris_run)
    assert states.pop("migrate_warehouse") == "success"
    assert {
        "wait_for_hris_files",
        "ingest_hris_files",
        "build_employee_history",
        "check_hris_freshness",
    } <= set(states)
    assert set(states.values()) == {None}, f"{command!r} left {states}"


def test_the_runbooks_backfill_builds_every_reference_date_of_2025_including_the_month_end(
    serialized_dags, capsys
):
    from turnover_signals.features.build import reference_dates_for_run

    (command,) = documented("airflow backfill create --dag-id turnover_features")
    args = parse(command + " --dry-run")
    capsys.readouterr()
    args.func(args)
    listed = re.findall(
        r"^\| (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00) ", capsys.readouterr().out, re.MULTILINE
    )
    built = [
        d
        for moment in listed
        for d in reference_dates_for_run({"logical_date": datetime.fromisoformat(moment)})
    ]
    every_day_of_2025 = [date(2025, 1, 1) + timedelta(days=n) for n in range(365)]
    assert built == every_day_of_2025


def test_every_airflow_command_in_the_runbook_is_valid_for_this_airflow(serialized_dags):
    commands = runbook_airflow_commands()
    assert len(commands) >= 5
    for command in commands:
        args = parse(command)  # argparse exits on an unknown command or flag
        if getattr(args, "conf", None):
            assert isinstance(json.loads(args.conf), dict), command
        if getattr(args, "dag_id", None) and not getattr(args, "dag_regex", False):
            assert args.dag_id in serialized_dags.dags, command
        if getattr(args, "task_regex", None):
            # Airflow 3.3 matches -t as a substring of the task id (apache/airflow#72941), not as a regex
            task_ids = serialized_dags.dags[args.dag_id].task_ids
            assert any(args.task_regex in task_id for task_id in task_ids), f"{command}: -t matches no task"
        for bound in ("start_date", "end_date", "to_date"):
            moment = getattr(args, bound, None)
            if bound != "start_date" and moment is not None:
                # a bare date is midnight: with the DAGs' cron times it cuts off the day it names
                assert (moment.hour, moment.minute) != (0, 0), f"{command}: {bound} is a midnight cut-off"
