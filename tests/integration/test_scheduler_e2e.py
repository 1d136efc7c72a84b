"""The pipeline under a real scheduler with two Celery workers, driven through the REST API as a user would.

`make stack`'s topology (`airflow_stack`) with a small generated enterprise: unpause the six DAGs,
trigger the two ingest DAGs, let the assets drive identity → features, then clear one mapped HRIS task
and `build_features` and compare the published tables. Nothing runs through `dags test`: every task goes
scheduler → redis → a Celery worker → the API server's execution API, and the workers share no local
data directory.

The figures the issue asks for (stack start, the scheduler-driven run's wall time, task instances per
worker) are printed (`pytest -s`), logged, and written to `<stack>/figures.json`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.integration.airflow_stack import (
    ADMIN_USER,
    PIPELINE_DAGS,
    Enterprise,
    Stack,
    StackApi,
    start,
    stop,
)
from turnover_signals.config import load_config
from turnover_signals.features.dates import as_of_grace, cutoff_of

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

INGEST_DAGS = ("hris_sftp_ingest", "lms_api_ingest")
CHAIN_DAGS = (*INGEST_DAGS, "identity_resolution", "turnover_features")
ENTERPRISE = Enterprise(employees=300, months=3, snapshot_every_days=28)
TERMINAL = {"success", "failed"}
CHAIN_TIMEOUT_SECONDS = 420
RERUN_TIMEOUT_SECONDS = 180
# screenshots of the Data quality page as a person sees it, kept for CI to collect (git-ignored)
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
QUIET_POLLS = 3  # consecutive polls, 5 s apart, with no run queued or running (asset events land late)

_YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)
# A manual HRIS run about a day whose SLO (logical date + 4 h) has already passed: its deadline is missed
# as soon as the run exists, so the triggerer must send the SLO alert while the run goes on.
LATE_HRIS_LOGICAL_DATE = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0)
SLO_ALERT = "SLO missed: the daily HRIS files are loaded and the HR history published"


# -- REST API helpers -----------------------------------------------------------------------------


def dag_runs(api: StackApi) -> list[dict[str, Any]]:
    return _all_pages(api, "api/v2/dags/~/dagRuns", "dag_runs", order_by="run_after")


def task_instances(api: StackApi) -> list[dict[str, Any]]:
    return _all_pages(api, "api/v2/dags/~/dagRuns/~/taskInstances", "task_instances")


def _all_pages(api: StackApi, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = api.get(path, limit=100, offset=len(items), **params)
        items += page[key]
        if not page[key] or len(items) >= page["total_entries"]:
            return items


def describe(api: StackApi, stack: Stack) -> str:
    """Every DAG run with its state, the task instances that did not succeed, and the logs of failed ones."""
    lines = ["dag runs:"]
    for run in dag_runs(api):
        lines.append(f"  {run['dag_id']:<20} {run['dag_run_id']:<70} {run['state']}")
    failed_logs = []
    lines.append("task instances not succeeded:")
    for ti in task_instances(api):
        if ti["state"] != "success":
            index = f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""
            lines.append(
                f"  {ti['dag_id']}.{ti['task_id']}{index} {ti['dag_run_id']}: {ti['state']} "
                f"(try {ti['try_number']}, {ti['hostname'] or 'not run'})"
            )
            if ti["state"] == "failed":
                failed_logs.append(task_log_tail(stack, ti))
    return "\n".join(lines + failed_logs)


def task_log_tail(stack: Stack, ti: dict[str, Any], lines: int = 12) -> str:
    folder = (
        stack.task_log_dir
        / f"dag_id={ti['dag_id']}"
        / f"run_id={ti['dag_run_id']}"
        / f"task_id={ti['task_id']}"
    )
    if ti["map_index"] >= 0:
        folder /= f"map_index={ti['map_index']}"
    path = folder / f"attempt={ti['try_number']}.log"
    if not path.exists():
        return f"----- no log at {path}"
    # the task's warnings and errors (its log is JSON lines), each cut short
    kept = [
        line
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        if _worth_showing(line)
    ]
    return f"----- {path} (warnings and errors)\n" + "\n".join(line[:800] for line in kept[-lines:])


def _worth_showing(line: str) -> bool:
    try:
        return json.loads(line).get("level") in ("warning", "error", "critical")
    except ValueError:
        return True


def wait_until_quiet(
    api: StackApi, stack: Stack, done: Any, timeout: float, what: str
) -> list[dict[str, Any]]:
    """Poll until `done(runs)` holds and no DAG run is queued or running for `QUIET_POLLS` polls in a row;
    fail at once when a run of the chain fails, and at the timeout with every run and task state."""
    deadline, quiet = time.monotonic() + timeout, 0
    while True:
        runs = dag_runs(api)
        failed = [r for r in runs if r["dag_id"] in CHAIN_DAGS and r["state"] == "failed"]
        if failed:
            names = ", ".join(f"{r['dag_id']} {r['dag_run_id']}" for r in failed)
            pytest.fail(f"{what}: DAG run(s) failed: {names}\n{describe(api, stack)}")
        busy = [r for r in runs if r["state"] not in TERMINAL]
        quiet = quiet + 1 if not busy and done(runs) else 0
        if quiet >= QUIET_POLLS:
            return runs
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not done after {timeout:.0f} s\n{describe(api, stack)}")
        time.sleep(5)


# -- the warehouse --------------------------------------------------------------------------------


def published_rows(dsn: str) -> dict[str, Counter]:
    """Every row of every table in core, mart and raw, as a multiset of row hashes per table.

    No column is left out, not even `built_at` / `build_id` (mart.employee_features), `loaded_at`
    (core.lms_activity, raw.lms_statement) or `batch_id` / `extracted_at` (raw.lms_*): a rerun must leave
    the rows it does not need to write alone, not rewrite them with new stamps."""
    rows = {}
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in ('core', 'mart', 'raw') and table_type = 'BASE TABLE' order by 1, 2"
        ).fetchall()
        for schema, table in tables:
            query = sql.SQL("select md5(t::text) from {}.{} as t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            rows[f"{schema}.{table}"] = Counter(row[0] for row in conn.execute(query))
    return rows


def differences(before: dict[str, Counter], after: dict[str, Counter]) -> dict[str, str]:
    return {
        table: f"{sum((before[table] - after[table]).values())} row(s) gone or changed, "
        f"{sum((after[table] - before[table]).values())} new"
        for table in before
        if before[table] != after.get(table)
    }


# -- the scenario ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """The stack, started for this module under pytest's tmp dir; its logs are kept there and printed
    when a test of the module failed."""
    state_dir = tmp_path_factory.mktemp("airflow-stack")
    failed_before = request.session.testsfailed
    started = start(state_dir, ENTERPRISE)
    try:
        yield started
    finally:
        if request.session.testsfailed > failed_before:
            print(f"\nstack logs (all kept in {started.log_dir}):\n{started.log_tails(lines=60)}")
        stop(state_dir)


@pytest.fixture(scope="module")
def scheduler_run(stack: Stack) -> dict[str, Any]:
    """Unpause the six DAGs, trigger the two ingest DAGs, wait for the assets to drive identity and
    features."""
    api = stack.api()
    started = time.monotonic()
    started_at = datetime.now(UTC)
    for dag_id in PIPELINE_DAGS:
        api.patch(f"api/v2/dags/{dag_id}", {"is_paused": False})
    triggered = {
        dag_id: api.post(f"api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})["dag_run_id"]
        for dag_id in INGEST_DAGS
    }
    late_hris = api.post(
        "api/v2/dags/hris_sftp_ingest/dagRuns",
        {"dag_run_id": "late_hris", "logical_date": LATE_HRIS_LOGICAL_DATE.isoformat()},
    )["dag_run_id"]

    def done(runs: list[dict[str, Any]]) -> bool:
        states = {(r["dag_id"], r["dag_run_id"]): r["state"] for r in runs}
        ingested = all(states.get((dag_id, run_id)) == "success" for dag_id, run_id in triggered.items())
        ingested = ingested and states.get(("hris_sftp_ingest", late_hris)) == "success"
        features = any(
            r["dag_id"] == "turnover_features"
            and r["run_type"] == "asset_triggered"
            and r["state"] == "success"
            for r in runs
        )
        return ingested and features and _features_built(stack)

    runs = wait_until_quiet(api, stack, done, CHAIN_TIMEOUT_SECONDS, "the scheduler-driven run")
    ended_at = max(datetime.fromisoformat(r["end_date"]) for r in runs if r["end_date"])
    tis = task_instances(api)
    per_worker = Counter(ti["hostname"] for ti in tis if ti["hostname"])
    figures = {
        "stack_start_seconds": stack.start_seconds,
        "scheduler_run_wall_seconds": round((ended_at - started_at).total_seconds(), 1),
        "scheduler_run_wait_seconds": round(time.monotonic() - started, 1),
        "dag_runs": Counter(f"{r['dag_id']}:{r['state']}" for r in runs),
        "task_instances_run": sum(per_worker.values()),
        "task_instances_per_worker": dict(sorted(per_worker.items())),
        # each mapped batch of HRIS files is a task process paying the imports (Great Expectations) first
        "ingest_hris_files_seconds": sorted(
            round(ti["duration"], 1)
            for ti in tis
            if ti["task_id"] == "ingest_hris_files" and ti["map_index"] >= 0 and ti.get("duration")
        ),
        "enterprise": stack.enterprise,
    }
    record_figures(stack, "scheduler run", figures)
    return {"api": api, "triggered": triggered, "runs": runs, "task_instances": tis, "figures": figures}


def _features_built(stack: Stack) -> bool:
    with psycopg.connect(stack.warehouse_dsn()) as conn:
        return bool(conn.execute("select exists (select from mart.employee_features)").fetchone()[0])


@pytest.fixture(scope="module")
def cleared_rerun(stack: Stack, scheduler_run: dict[str, Any]) -> dict[str, Any]:
    """Clear one mapped HRIS task instance and `build_features` through the REST API; wait for their
    reruns."""
    api = scheduler_run["api"]
    before = published_rows(stack.warehouse_dsn())
    ingests = [ti for ti in scheduler_run["task_instances"] if ti["task_id"] == "ingest_hris_files"]
    ingests = [ti for ti in ingests if ti["map_index"] >= 0 and ti["state"] == "success"]
    assert len(ingests) >= 2, "the HRIS run should have mapped one task per batch of files"
    mapped = sorted(ingests, key=lambda ti: ti["map_index"])[1]
    with psycopg.connect(stack.warehouse_dsn()) as conn:
        (features_run,) = conn.execute("select min(run_id) from audit.feature_build").fetchone()
    # (dag_id, run_id, task_id, map_index) -> the try before the clear
    targets = {
        ("hris_sftp_ingest", mapped["dag_run_id"], "ingest_hris_files", mapped["map_index"]): 0,
        ("turnover_features", features_run, "build_features", -1): 0,
    }
    for target in targets:
        targets[target] = _task_instance(api, *target)["try_number"]
    started = time.monotonic()
    for dag_id, run_id, task_id, map_index in targets:
        task = [task_id, map_index] if map_index >= 0 else task_id
        body = {"dry_run": False, "only_failed": False, "dag_run_id": run_id, "task_ids": [task]}
        cleared = api.post(f"api/v2/dags/{dag_id}/clearTaskInstances", body)["task_instances"]
        assert [(ti["task_id"], ti["map_index"]) for ti in cleared] == [(task_id, map_index)], cleared

    def rerun(runs: list[dict[str, Any]]) -> bool:
        for target, try_before in targets.items():
            ti = _task_instance(api, *target)
            if ti["state"] != "success" or ti["try_number"] <= try_before:
                return False
        return True

    wait_until_quiet(api, stack, rerun, RERUN_TIMEOUT_SECONDS, "the cleared task instances")
    after = published_rows(stack.warehouse_dsn())
    record_figures(stack, "cleared rerun", {"rerun_wait_seconds": round(time.monotonic() - started, 1)})
    return {"before": before, "after": after, "targets": targets}


def _task_instance(api: StackApi, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    path = f"api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
    return api.get(f"{path}/{map_index}" if map_index >= 0 else path)


def record_figures(stack: Stack, what: str, figures: dict[str, Any]) -> None:
    line = f"turnover-signals scheduler e2e, {what}: {json.dumps(figures, default=str)}"
    print(f"\n{line}")
    log.warning(line)
    with open(stack.path / "figures.json", "a", encoding="utf-8") as out:
        out.write(json.dumps({"what": what, **figures}, default=str) + "\n")


# -- the tests ------------------------------------------------------------------------------------


def test_ingest_runs_drive_identity_and_features_to_success(scheduler_run: dict[str, Any]) -> None:
    runs = scheduler_run["runs"]
    states = {(r["dag_id"], r["dag_run_id"]): r["state"] for r in runs}
    for dag_id, run_id in scheduler_run["triggered"].items():
        assert states[(dag_id, run_id)] == "success", f"{dag_id} {run_id}"
    by_trigger = Counter((r["dag_id"], r["run_type"], r["state"]) for r in runs)
    assert by_trigger[("identity_resolution", "asset_triggered", "success")] >= 1, by_trigger
    assert by_trigger[("turnover_features", "asset_triggered", "success")] >= 1, by_trigger
    resolved = {
        ti["dag_run_id"]
        for ti in scheduler_run["task_instances"]
        if (ti["dag_id"], ti["task_id"], ti["state"])
        == ("identity_resolution", "resolve_identities", "success")
    }
    assert resolved, "no identity_resolution run resolved identities (each one skipped)"


def test_no_dag_run_fails_after_unpausing_a_first_install(scheduler_run: dict[str, Any]) -> None:
    failed = sorted(
        f"{r['dag_id']} {r['dag_run_id']}" for r in scheduler_run["runs"] if r["state"] == "failed"
    )
    assert not failed


def test_published_tables_hold_the_enterprise(stack: Stack, scheduler_run: dict[str, Any]) -> None:
    statements = (Path(stack.state_dir) / "enterprise" / "lms" / "statements.jsonl").read_text().count("\n")
    with psycopg.connect(stack.warehouse_dsn()) as conn:
        employees, current, overlapping = conn.execute(
            """
            select count(distinct employee_id), count(*) filter (where is_current),
                   (select count(*) from core.employee_history as a join core.employee_history as b
                    using (employee_id) where a.valid_from < b.valid_from and coalesce(a.valid_to,
                        'infinity') > b.valid_from)
            from core.employee_history
            """
        ).fetchone()
        activity, distinct_statements = conn.execute(
            "select count(*), count(distinct statement_id) from core.lms_activity"
        ).fetchone()
        keyed, hris_ids = conn.execute(
            "select count(distinct employee_key), count(distinct hris_employee_id) "
            "from core.employee_identity"
        ).fetchone()
        unkeyed = conn.execute(
            "select count(distinct employee_id) from core.employee_history"
            " where employee_id not in (select hris_employee_id from core.employee_identity"
            " where hris_employee_id is not null)"
        ).fetchone()[0]
    assert employees >= ENTERPRISE.employees, employees
    assert current == employees, "one current interval per employee"
    assert overlapping == 0, "an employee's history intervals must not overlap"
    assert activity == distinct_statements > 0.9 * statements, (activity, distinct_statements, statements)
    assert unkeyed == 0, "every HRIS employee has an employee_key"
    assert keyed >= employees * 0.95 and hris_ids >= employees, (keyed, hris_ids, employees)


def test_features_are_built_for_the_planned_dates(stack: Stack, scheduler_run: dict[str, Any]) -> None:
    with psycopg.connect(stack.warehouse_dsn()) as conn:
        built = conn.execute(
            """
            select reference_date, count(*), count(distinct employee_key), max(audit.feature_rows),
                   max(audit.active_headcount)
            from mart.employee_features
            join (select reference_date, feature_rows, active_headcount from audit.feature_build) as audit
                using (reference_date)
            group by reference_date order by reference_date
            """
        ).fetchall()
        first_snapshot = conn.execute("select min(valid_from) from core.employee_history").fetchone()[0]
    assert built, "no feature rows"
    for reference_date, rows, keys, recorded, headcount in built:
        assert rows == keys == recorded == headcount > 0.9 * ENTERPRISE.employees, (reference_date, rows)
    month_ends = _month_ends_between(first_snapshot, _YESTERDAY)
    dates = [row[0] for row in built]
    assert set(month_ends) <= set(dates), f"month-ends {month_ends} backfilled, built {dates}"
    # the first build leaves no gap after the newest month-end that a later run (or a rerun) would fill
    since_month_end = [month_ends[-1] + timedelta(days=n) for n in range((_YESTERDAY - month_ends[-1]).days)]
    assert set(since_month_end) <= set(dates), f"days since {month_ends[-1]}: built {dates}"
    # Yesterday is built once its cut-off (the end of the day + features.as_of_grace_hours) has passed, and
    # waits (deferred) before: which one depends on the hour this test runs. Nothing later is ever built.
    yesterday_cutoff = cutoff_of(_YESTERDAY, as_of_grace(load_config(use_variable=False)))
    if yesterday_cutoff <= datetime.fromisoformat(stack.started_at):
        assert max(dates) == _YESTERDAY, "yesterday's cut-off had passed: it is built"
    elif yesterday_cutoff > datetime.now(UTC):
        assert max(dates) < _YESTERDAY, "yesterday waits for its cut-off (deferred), nothing later is built"
    else:  # the cut-off passed while the stack ran: either is right
        assert max(dates) <= _YESTERDAY


def test_a_missed_slo_deadline_alerts_through_the_triggerer(
    stack: Stack, scheduler_run: dict[str, Any]
) -> None:
    """The late HRIS run's deadline passed when it was created: the scheduler marks it missed and the
    triggerer runs the bundle's callback, which sends the standard alert (by default a log line) naming the
    SLO."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        logged = [
            path for path in stack.log_dir.rglob("*.log") if SLO_ALERT in path.read_text(errors="replace")
        ]
        if logged:
            text = logged[0].read_text(errors="replace")
            assert "TURNOVER-SIGNALS ALERT hris_sftp_ingest run late_hris" in text, logged[0]
            return
        time.sleep(5)
    pytest.fail(
        f"no '{SLO_ALERT}' alert in {stack.log_dir}\n{stack.log_tails(lines=30, names=['triggerer'])}"
    )


def _month_ends_between(first: date, last: date) -> list[date]:
    ends, month = [], first.replace(day=1)
    while (end := (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)) < last:
        ends.append(end)
        month = end + timedelta(days=1)
    return ends


def test_task_instances_ran_on_both_celery_workers(stack: Stack, scheduler_run: dict[str, Any]) -> None:
    per_worker = scheduler_run["figures"]["task_instances_per_worker"]
    assert set(per_worker) == set(stack.workers.values()), per_worker
    assert all(count > 0 for count in per_worker.values()), per_worker


def test_clearing_leaves_every_published_row_as_it_was(cleared_rerun: dict[str, Any]) -> None:
    gone = {
        table: sum((cleared_rerun["before"][table] - rows).values())
        for table, rows in cleared_rerun["after"].items()
        if cleared_rerun["before"].get(table, Counter()) - rows
    }
    assert not gone, f"rows changed or removed by the reruns of {cleared_rerun['targets']}: {gone}"


def test_clearing_a_mapped_hris_task_and_build_features_changes_nothing(
    cleared_rerun: dict[str, Any],
) -> None:
    changed = differences(cleared_rerun["before"], cleared_rerun["after"])
    assert not changed, f"the reruns of {cleared_rerun['targets']} changed {changed}"


# -- the Data quality page in a real browser ------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(stack: Stack):
    """Headless Chromium (Debian's, with its driver), logged in to the Airflow UI through its login form."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,900")
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options
    )
    try:
        driver.get(f"{stack.api_url}/")
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.NAME, "username"))
        driver.find_element(By.NAME, "username").send_keys(ADMIN_USER)
        driver.find_element(By.NAME, "password").send_keys(stack.admin_password + Keys.ENTER)
        WebDriverWait(driver, 60).until(lambda d: "/auth/login" not in d.current_url)
        yield driver
    finally:
        driver.quit()


def plugin_frame_text(driver: Any, url: str, screenshot: str) -> str:
    """Open `url` of the Airflow UI, wait for the plugin's page in its frame, keep a screenshot, and return
    the frame's text (the driver is left inside the frame)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.switch_to.default_content()
    driver.get(url)
    frame = WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.TAG_NAME, "iframe"))[0]
    driver.switch_to.frame(frame)
    WebDriverWait(driver, 60).until(lambda d: "validation run(s)" in d.find_element(By.TAG_NAME, "body").text)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    driver.switch_to.default_content()
    driver.save_screenshot(str(SCREENSHOT_DIR / screenshot))
    driver.switch_to.frame(frame)
    return driver.find_element(By.TAG_NAME, "body").text


def test_the_data_quality_page_in_the_airflow_ui_as_a_person_sees_it(
    stack: Stack, scheduler_run: dict[str, Any], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # Browse → Data quality: every validation run, readable, failed ones first to the eye, no sideways scroll
    text = plugin_frame_text(browser, f"{stack.api_url}/plugin/data-quality", "data_quality_nav.png")
    shown = int(text.split(" validation run(s)")[0].rsplit("\n", 1)[-1])
    assert shown > 0 and "hris_employees_file" in text and "passed" in text, text[:2000]
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text), "times to the second, UTC"
    assert not re.search(r"[0-9a-f]{40,}", text), "hashes are shortened on the page"
    widths = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"

    # a Data Docs page opens from its row, sandboxed: its scripts run, but cannot reach the viewer's session
    browser.find_element(By.LINK_TEXT, "Data Docs").click()
    WebDriverWait(browser, 60).until(lambda d: "Expectation" in d.find_element(By.TAG_NAME, "body").text)
    reach = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const tried = {origin: window.origin};
        try { tried.cookies = document.cookie; } catch (error) { tried.cookies = "blocked"; }
        try { tried.storage = String(window.localStorage.length); }
        catch (error) { tried.storage = "blocked"; }
        fetch("/api/v2/dags", {credentials: "include"})
            .then((answer) => { tried.api = answer.status; done(tried); })
            .catch(() => { tried.api = "blocked"; done(tried); });
        """
    )
    assert reach == {"origin": "null", "cookies": "blocked", "storage": "blocked", "api": "blocked"}, reach
    browser.switch_to.default_content()
    browser.save_screenshot(str(SCREENSHOT_DIR / "data_docs_page.png"))

    # a mapped HRIS task instance's tab shows that task instance's validation runs only
    ingest = next(
        ti
        for ti in scheduler_run["task_instances"]
        if ti["task_id"] == "ingest_hris_files" and ti["map_index"] >= 0 and ti["state"] == "success"
    )
    tab = (
        f"{stack.api_url}/dags/hris_sftp_ingest/runs/{ingest['dag_run_id']}/tasks/ingest_hris_files"
        f"/mapped/{ingest['map_index']}/plugin/data-quality-task-instance"
    )
    text = plugin_frame_text(browser, tab, "data_quality_task_instance_tab.png")
    rows = [line for line in text.splitlines() if " try " in line]
    assert rows and all(f"ingest_hris_files[{ingest['map_index']}]" in line for line in rows), text[:2000]
