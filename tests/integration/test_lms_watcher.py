"""The LRS watcher for real: its trigger against the sample LRS over HTTP and PostgreSQL, lms_api_ingest runs
of each type through `dag.test()`, and (slow) the whole stack, where the triggerer runs the watcher and the
scheduler turns its events into runs.

What Airflow 3.3.2 does with asset events, and why the data is safe anyway (README: near-real-time LMS):

- Events while a run is active (apache/airflow#56050): the DAG is deferred at `max_active_runs`, its
  queue row (one per asset and DAG, `on_conflict_do_nothing`) is kept, and one run follows when the
  active one ends; that run consumes only the events up to the first queued one, but it loads every
  statement stored by the time it starts. The watcher also announces again what is still not loaded after
  `lms.watch_refire_minutes`.
- A paused DAG: the scheduler queues no run for its asset events, and the dag-processor removes the
  watcher of an asset only paused DAGs use; on unpause the watcher comes back (next parse) and, its cursor
  being the warehouse watermark, announces what was stored meanwhile; the hourly run also catches up.
- Duplicate events: runs load idempotently by statement id; at most an extra run that finds nothing new.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.integration.airflow_stack import learning_statement
from turnover_signals.config import load_config
from turnover_signals.lms.watch import LmsStatementsStoredTrigger, extract_statements_for_run
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.sources.xapi import XapiClient, parse_xapi_timestamp

pytestmark = pytest.mark.integration
DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
POLL = 0.2  # seconds: the tests watch many polls in a few seconds
FAST_RETRIES = {"initial_backoff_seconds": 0.01, "max_backoff_seconds": 0.05, "max_retry_after_seconds": 1}


# -- helpers --------------------------------------------------------------------------------------


class WatcherRun:
    """The trigger's `run()` as the triggerer drives it: a task on the event loop, its events in a queue."""

    def __init__(self, trigger: LmsStatementsStoredTrigger) -> None:
        self.trigger = trigger
        self.events: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> WatcherRun:
        self.task = asyncio.create_task(self._pump())
        return self

    async def _pump(self) -> None:
        async for event in self.trigger.run():
            await self.events.put(event)

    async def next_event(self, timeout: float) -> Any:
        """The next event within `timeout` seconds, else None."""
        try:
            return await asyncio.wait_for(self.events.get(), timeout)
        except TimeoutError:
            return None

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.task is not None
        if self.task.done():
            self.task.result()  # a watcher that stopped by itself fails the test with its error
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
def watched_lrs(lms_server_factory, warehouse_dsn, monkeypatch):
    """A private sample LRS (the sample statements and users) behind `lms_api`, and the warehouse."""
    server = lms_server_factory()
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"lms": FAST_RETRIES}))
    return server


def load_statements(dsn: str, run_type: str = "asset_triggered", run_id: str | None = None) -> dict:
    """One extraction as a run of `run_type` makes it (the task's body), into the warehouse at `dsn`."""
    config = load_config({"lms": FAST_RETRIES})
    run = RunIdentity(
        "lms_api_ingest", run_id or f"{run_type}__{uuid.uuid4().hex[:8]}", "extract_lms_statements"
    )
    return extract_statements_for_run(config, run, run_type, dsn=dsn, client=XapiClient("lms_api"))


def watcher() -> LmsStatementsStoredTrigger:
    return LmsStatementsStoredTrigger(
        lrs_conn_id="lms_api", warehouse_conn_id="warehouse_postgres", poll_seconds=POLL
    )


def watermark(dsn: str) -> datetime | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select watermark from audit.extract_watermark where source = 'xapi:lms_api'"
        ).fetchone()
    return row[0] if row else None


def lms_tables(dsn: str) -> dict[str, list]:
    """Every published LMS row, every column (load times included)."""
    queries = {
        "statements": "select * from raw.lms_statement order by statement_id",
        "activity": "select * from core.lms_activity order by statement_id",
        "rejected": "select * from raw.lms_statement_rejected order by payload_sha256, reason",
        "voids": "select * from audit.lms_void_applied order by voided_statement_id",
    }
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(query).fetchall() for name, query in queries.items()}


# -- the trigger against the real LRS -------------------------------------------------------------


def test_the_watcher_fires_for_a_statement_stored_after_what_was_loaded_and_not_before(
    watched_lrs, warehouse_dsn
):
    load_statements(warehouse_dsn, "scheduled")
    loaded_through = watermark(warehouse_dsn)
    assert loaded_through is not None

    async def scenario() -> None:
        async with WatcherRun(watcher()) as run:
            assert await run.next_event(1.5) is None, "everything is loaded: no event over several polls"
            (stored,) = watched_lrs.add_statements([learning_statement()])
            event = await run.next_event(10)
            assert event is not None, "a statement stored after the watermark fires an event"
            assert parse_xapi_timestamp(event.payload["newest_stored"]) == parse_xapi_timestamp(
                stored["stored"]
            )
            assert datetime.fromisoformat(event.payload["loaded_through"]) == loaded_through
            assert event.payload["source"] == "xapi:lms_api"
            assert await run.next_event(1.5) is None, "announced once while it waits to be loaded"
            await asyncio.to_thread(load_statements, warehouse_dsn)
            assert await run.next_event(1.0) is None, "loaded: nothing to announce"
            (second,) = watched_lrs.add_statements([learning_statement()])
            event = await run.next_event(10)
            assert event is not None
            assert parse_xapi_timestamp(event.payload["newest_stored"]) == parse_xapi_timestamp(
                second["stored"]
            )

    asyncio.run(scenario())


def test_the_watcher_announces_again_what_stays_unloaded_past_the_refire_time(
    watched_lrs, warehouse_dsn, monkeypatch
):
    """An event the scheduler never turned into a run, or a failed run, does not leave statements unloaded."""
    monkeypatch.setenv(
        "AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"lms": {**FAST_RETRIES, "watch_refire_minutes": 0.02}})
    )
    load_statements(warehouse_dsn, "scheduled")
    watched_lrs.add_statements([learning_statement()])

    async def scenario() -> None:
        async with WatcherRun(watcher()) as run:
            first = await run.next_event(10)
            again = await run.next_event(5)  # 1.2 s refire time
            assert first is not None and again is not None
            assert again.payload["newest_stored"] == first.payload["newest_stored"]

    asyncio.run(scenario())


def test_the_watcher_survives_an_lrs_that_is_down_and_fires_once_it_is_back(
    watched_lrs, warehouse_dsn, caplog
):
    load_statements(warehouse_dsn, "scheduled")
    watched_lrs.stop()
    password = watched_lrs.xapi_credentials[1]

    async def scenario() -> None:
        async with WatcherRun(watcher()) as run:
            assert await run.next_event(4) is None
            assert run.task is not None and not run.task.done(), "the watcher keeps running"
            failures = [r for r in caplog.records if "LRS watcher: poll" in r.getMessage()]
            assert len(failures) >= 2 and all(r.levelno == logging.WARNING for r in failures)
            assert "unavailable" in failures[0].getMessage() or "failed" in failures[0].getMessage()
            watched_lrs.start()  # the same port and data
            watched_lrs.add_statements([learning_statement()])
            assert await run.next_event(20) is not None, "back up: the stored statement is announced"

    with caplog.at_level(logging.INFO, logger="turnover_signals"):
        asyncio.run(scenario())
    assert password not in caplog.text


# -- runs of each type ----------------------------------------------------------------------------


def test_duplicate_events_leave_every_published_row_as_it_was(watched_lrs, warehouse_dsn):
    """Two events for the same statements make two runs: the second loads nothing and stamps nothing."""
    load_statements(warehouse_dsn, "scheduled")
    watched_lrs.add_statements([learning_statement() for _ in range(5)])
    first = load_statements(warehouse_dsn)
    after_first = lms_tables(warehouse_dsn)
    second = load_statements(warehouse_dsn)
    assert first["new"] == 5 and second["new"] == 0
    assert lms_tables(warehouse_dsn) == after_first
    ids = [row[0] for row in after_first["activity"]]
    assert len(ids) == len(set(ids))


def run_dag_as(monkeypatch: pytest.MonkeyPatch, run_type: str) -> Any:
    """`dag.test()` of lms_api_ingest with a run of `run_type`, as the scheduler creates it.

    dag.test() always creates a manual run; this makes it create the run the scheduler would (an
    asset-triggered run has no logical date), and everything else (the tasks, the execution API, the asset
    events in the metadata DB) is dag.test()'s own."""
    import airflow.models.dagrun as dagrun_module
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    kind = DagRunType(run_type)

    def create_run_of_type(
        *, dag, run_id, logical_date, data_interval, run_after, conf, start_date, session, **_
    ):
        return dag.create_dagrun(
            run_id=dagrun_module.DagRun.generate_run_id(
                run_type=kind, logical_date=logical_date, run_after=run_after
            ),
            logical_date=logical_date,
            data_interval=data_interval,
            run_after=run_after,
            conf=conf,
            run_type=kind,
            state=DagRunState.RUNNING,
            triggered_by=DagRunTriggeredByType.ASSET
            if kind == DagRunType.ASSET_TRIGGERED
            else DagRunTriggeredByType.TIMETABLE,
            start_date=start_date,
            session=session,
        )

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", create_run_of_type)
    dag = DagBag(dag_folder=str(DAGS_DIR / "lms_api_ingest.py")).get_dag("lms_api_ingest")
    if kind == DagRunType.ASSET_TRIGGERED:
        return dag.test(logical_date=None)
    return dag.test(logical_date=datetime.now(UTC).replace(minute=10, second=0, microsecond=0))


def lms_activity_events(run_id: str) -> int:
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import func, select

    from turnover_signals.assets import LMS_ACTIVITY

    with settings.Session() as session:
        return session.scalar(
            select(func.count())
            .select_from(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == LMS_ACTIVITY.name, AssetEvent.source_run_id == run_id)
        )


@pytest.mark.slow
def test_an_event_run_loads_activity_without_announcing_it_and_a_scheduled_run_announces(
    airflow_metadata_db, watched_lrs, warehouse_dsn, monkeypatch
):
    watched_lrs.add_statements([learning_statement() for _ in range(3)])
    event_run = run_dag_as(monkeypatch, "asset_triggered")
    states = {ti.task_id: ti.state for ti in event_run.get_task_instances()}
    assert event_run.run_type == "asset_triggered" and event_run.logical_date is None
    assert states.pop("announce_lms_activity") == "skipped", states
    assert set(states.values()) == {"success"}, states
    assert lms_activity_events(event_run.run_id) == 0, "identity and features are not scheduled by event runs"
    with psycopg.connect(warehouse_dsn) as conn:
        loaded = conn.execute("select count(*) from core.lms_activity").fetchone()[0]
    assert loaded >= 3

    scheduled_run = run_dag_as(monkeypatch, "scheduled")
    states = {ti.task_id: ti.state for ti in scheduled_run.get_task_instances()}
    assert scheduled_run.run_type == "scheduled"
    assert set(states.values()) == {"success"}, states
    assert lms_activity_events(scheduled_run.run_id) == 1, "the hourly run announces what event runs loaded"


# -- under the real triggerer and scheduler (the stack) --------------------------------------------

STACK_POLL_SECONDS = 5
LOAD_TIMEOUT_SECONDS = 300


@pytest.fixture(scope="module")
def live_lrs(tmp_path_factory: pytest.TempPathFactory):
    """A sample LRS in this process, so the test can store statements while the stack reads it over HTTP."""
    from turnover_demo.sample_servers.lms_server import LmsSampleServer
    from turnover_demo.sample_servers.sample_data import write_lms_data

    with LmsSampleServer(write_lms_data(tmp_path_factory.mktemp("live-lrs"))) as server:
        yield server


@pytest.fixture(scope="module")
def watched_stack(tmp_path_factory: pytest.TempPathFactory, live_lrs, request: pytest.FixtureRequest):
    """The stack (one Celery worker) reading `live_lrs`, the watcher polling every 5 s; only lms_api_ingest is
    unpaused, and its first (scheduled) run has loaded the sample statements."""
    from tests.integration.airflow_stack import Enterprise, start, stop

    state_dir = tmp_path_factory.mktemp("watcher-stack")
    failed_before = request.session.testsfailed
    stack = start(
        state_dir,
        Enterprise(employees=50, months=2),
        workers=1,
        source_connections=live_lrs.airflow_connections_env(),
        config_override={"lms": {"watch_poll_seconds": STACK_POLL_SECONDS}},
    )
    try:
        api = stack.api()
        api.patch("api/v2/dags/lms_api_ingest", {"is_paused": False})
        # catchup off: unpausing creates the run of the latest hourly tick at once
        wait_for(
            lambda: any(r["state"] == "success" for r in lms_runs(api)), 300, "the first hourly run", stack
        )
        yield stack
    finally:
        if request.session.testsfailed > failed_before:
            print(f"\nstack logs (kept in {stack.log_dir}):\n{stack.log_tails(lines=60)}")
        stop(state_dir)


def lms_runs(api: Any) -> list[dict[str, Any]]:
    return api.get("api/v2/dags/lms_api_ingest/dagRuns", limit=100, order_by="run_after")["dag_runs"]


def wait_for(check: Any, timeout: float, what: str, stack: Any, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    runs = "\n".join(f"  {r['dag_run_id']} {r['run_type']} {r['state']}" for r in lms_runs(stack.api()))
    pytest.fail(
        f"no {what} after {timeout:.0f} s; lms_api_ingest runs:\n{runs}\n{stack.log_tails(30, ['triggerer'])}"
    )


def loading_run(stack: Any, statement_id: str) -> str | None:
    """The DAG run whose extraction published the statement (None while it is not in core.lms_activity)."""
    with psycopg.connect(stack.warehouse_dsn()) as conn:
        row = conn.execute(
            "select batch.run_id from core.lms_activity as activity"
            " join raw.lms_statement as raw using (statement_id)"
            " join audit.lms_extract_batch as batch on batch.batch_id = raw.batch_id"
            " where activity.statement_id = %s",
            (statement_id,),
        ).fetchone()
    return row[0] if row else None


HOURLY_TICK_SECOND = 10 * 60  # lms_api_ingest's safety net runs at :10 past each hour


def clear_of_the_hourly_run(stack: Any) -> None:
    """Wait until the hourly run is neither due within two minutes nor about to be created or running, so the
    run that loads a statement is the watcher's. Waits about three minutes at worst, and only near :10."""
    api = stack.api()

    def clear() -> bool:
        now = datetime.now(UTC)
        since_tick = (now.minute * 60 + now.second - HOURLY_TICK_SECOND) % 3600
        if since_tick < 60 or since_tick > 3600 - 120:
            return False
        return not any(
            r["run_type"] == "scheduled" and r["state"] in ("queued", "running") for r in lms_runs(api)
        )

    wait_for(clear, 600, "moment clear of the hourly run", stack, interval=5)


def catch_an_event_run_after_its_extraction(stack: Any, stored: dict[str, Any]) -> dict[str, Any] | None:
    """The event run loading `stored`, caught after its extraction while it still runs (None: it ended
    first)."""
    api = stack.api()

    def extracted_and_still_running() -> dict[str, Any] | None:
        for run in lms_runs(api):
            if run["run_type"] != "asset_triggered" or run["state"] != "running":
                continue
            path = (
                f"api/v2/dags/lms_api_ingest/dagRuns/{run['dag_run_id']}/taskInstances/extract_lms_statements"
            )
            if api.get(path)["state"] == "success":
                return run
        return None

    found = wait_for(
        lambda: extracted_and_still_running() or loading_run(stack, stored["id"]),
        LOAD_TIMEOUT_SECONDS,
        "event run",
        stack,
        interval=0.3,
    )
    return found if isinstance(found, dict) else None


def watcher_starts(stack: Any) -> int:
    return (stack.log_dir / "triggerer.log").read_text(errors="replace").count("LRS watcher started")


def watchers_running(stack: Any) -> list[str]:
    """The triggerer's periodic "N watchers currently running" counts, in order, repeats collapsed."""
    counts = re.findall(r"(\d+) watchers currently running", (stack.log_dir / "triggerer.log").read_text())
    return [count for index, count in enumerate(counts) if index == 0 or counts[index - 1] != count]


def store(live_lrs: Any) -> dict[str, Any]:
    (stored,) = live_lrs.add_statements([learning_statement()])
    return stored


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_under_the_triggerer_a_stored_statement_is_loaded_by_an_event_run_that_announces_nothing(
    watched_stack, live_lrs
):
    api = watched_stack.api()
    clear_of_the_hourly_run(watched_stack)
    stored = store(live_lrs)
    started = time.monotonic()
    run_id = wait_for(
        lambda: loading_run(watched_stack, stored["id"]), LOAD_TIMEOUT_SECONDS, "row", watched_stack
    )
    print(f"\nstored -> core.lms_activity in {time.monotonic() - started:.0f} s by {run_id}")
    assert run_id.startswith("asset_triggered__"), run_id
    events = api.get("api/v2/assets/events", source_dag_id="lms_api_ingest", limit=100)["asset_events"]
    announcing = {event["source_run_id"] for event in events}
    by_type = {run["dag_run_id"]: run["run_type"] for run in lms_runs(api)}
    assert run_id not in announcing
    assert {by_type[run] for run in announcing} == {"scheduled"}, "only the hourly run announced LMS_ACTIVITY"
    triggered = api.get("api/v2/assets/events", name_pattern="lms_statements_stored", limit=100)[
        "asset_events"
    ]
    assert triggered and all(event["extra"]["from_trigger"] for event in triggered), triggered


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_under_the_triggerer_a_statement_stored_while_a_run_is_active_is_loaded_by_the_next_run(
    watched_stack, live_lrs
):
    """apache/airflow#56050's situation: an event while the only allowed run is active."""
    api = watched_stack.api()
    clear_of_the_hourly_run(watched_stack)
    active, during, stored_while_running = None, None, False
    for _attempt in range(3):  # the moment between an event run's extraction and its end lasts seconds
        active = catch_an_event_run_after_its_extraction(watched_stack, store(live_lrs))
        if active is None:
            continue
        during = store(
            live_lrs
        )  # the active run has listed its statements already: a later run must load this
        runs = {r["dag_run_id"]: r["state"] for r in lms_runs(api)}
        if runs[active["dag_run_id"]] == "running":
            stored_while_running = True
            break
    assert stored_while_running, (
        "no statement stored between an event run's extraction and its end in 3 tries"
    )
    run_id = wait_for(
        lambda: loading_run(watched_stack, during["id"]), LOAD_TIMEOUT_SECONDS, "row", watched_stack
    )
    assert run_id != active["dag_run_id"] and run_id.startswith("asset_triggered__"), (run_id, active)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_under_the_triggerer_a_paused_dag_loads_what_was_stored_meanwhile_once_unpaused(
    watched_stack, live_lrs
):
    api = watched_stack.api()
    wait_for(
        lambda: all(r["state"] in ("success", "failed") for r in lms_runs(api)),
        300,
        "idle DAG",
        watched_stack,
    )
    api.patch("api/v2/dags/lms_api_ingest", {"is_paused": True})
    runs_before = {r["dag_run_id"] for r in lms_runs(api)}
    starts_before = watcher_starts(watched_stack)
    stored = store(live_lrs)
    # several polls, and a parse of the DAG file (the dag-processor drops the watcher of a paused DAG's asset)
    time.sleep(45)
    assert {r["dag_run_id"] for r in lms_runs(api)} == runs_before, "a paused DAG runs nothing"
    assert loading_run(watched_stack, stored["id"]) is None
    api.patch("api/v2/dags/lms_api_ingest", {"is_paused": False})
    started = time.monotonic()
    run_id = wait_for(
        lambda: loading_run(watched_stack, stored["id"]), LOAD_TIMEOUT_SECONDS, "row", watched_stack
    )
    # What Airflow 3.3.2 did with the watcher meanwhile (the evidence quoted in the README): the dag-processor
    # drops the trigger of an asset only paused DAGs use, and creates it again once the DAG is unpaused.
    print(
        f"\nunpaused -> loaded in {time.monotonic() - started:.0f} s by {run_id}; the watcher started "
        f"{starts_before} time(s) before the pause and {watcher_starts(watched_stack) - starts_before} "
        f"since; watchers running as logged by the triggerer: {watchers_running(watched_stack)}"
    )
    assert run_id not in runs_before
