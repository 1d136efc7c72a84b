"""The "Data quality" Airflow page: served only to authenticated, authorized users, linking to Data Docs.

The real Airflow API server app (`airflow.api_fastapi.app.create_app`) with this bundle's plugin
mounted, the simple auth manager, and real validation runs recorded by the course catalog gate.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from turnover_signals.config import load_config
from turnover_signals.lms.catalog import load_course_catalog
from turnover_signals.quality.gate import RunIdentity, ValidationOutcome, record_validation

pytestmark = pytest.mark.integration
RUN = RunIdentity(
    dag_id="lms_api_ingest", run_id="scheduled__2026-03-03", task_id="load_course_catalog", try_number=1
)


@pytest.fixture
def validated(warehouse_dsn, tmp_path, monkeypatch):
    config = copy.deepcopy(load_config(use_variable=False))
    config["quality"]["data_docs_dir"] = str(tmp_path / "docs")
    # the page serves pages only from the folders the Variable configures, as the tasks that wrote them do
    monkeypatch.setenv(
        "AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"quality": {"data_docs_dir": str(tmp_path / "docs")}})
    )
    load_course_catalog(config, RUN, warehouse_dsn)
    return config


@pytest.fixture
def api(airflow_metadata_db, validated, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "auditor:viewer,visitor:none")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    from airflow.api_fastapi.app import create_app, get_auth_manager

    client = TestClient(create_app())
    return client, get_auth_manager()


def token(manager, role):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return manager.generate_jwt(SimpleAuthManagerUser(username=f"u-{role}", role=role))


def test_anonymous_requests_are_refused(api):
    client, _manager = api
    for path in ("/data-quality/", "/data-quality/api/validations", "/data-quality/docs/anything"):
        assert client.get(path).status_code == 401, path
    assert client.get("/data-quality/", headers={"Authorization": "Bearer not-a-token"}).status_code in (
        401,
        403,
    )


def test_an_authenticated_auditor_sees_runs_filters_them_and_opens_the_data_docs(api):
    client, manager = api
    headers = {"Authorization": f"Bearer {token(manager, 'viewer')}"}
    page = client.get("/data-quality/", headers=headers)
    assert page.status_code == 200
    assert "course_catalog" in page.text and "passed" in page.text and "scheduled__2026-03-03" in page.text
    runs = client.get("/data-quality/api/validations", headers=headers).json()
    assert len(runs) == 1 and runs[0]["dag_id"] == "lms_api_ingest"
    assert client.get("/data-quality/api/validations?status=failed", headers=headers).json() == []
    # the task instance link of the plugin narrows the page to that task's own results
    narrowed = client.get(
        "/data-quality/?dag_id=lms_api_ingest&run_id=scheduled__2026-03-03"
        "&task_id=load_course_catalog&map_index=-1",
        headers=headers,
    )
    assert f'href="docs/{runs[0]["validation_id"]}"' in narrowed.text
    docs = client.get(f"/data-quality/docs/{runs[0]['validation_id']}", headers=headers)
    assert docs.status_code == 200 and "Great Expectations" in docs.text and "course_catalog v1+" in docs.text
    # its third-party scripts run in an opaque origin: they cannot call the Airflow API as the viewer
    policy = docs.headers["content-security-policy"].split()
    assert policy[0] == "sandbox" and "allow-same-origin" not in policy
    assert docs.headers["x-content-type-options"] == "nosniff"


def test_a_user_without_dag_access_sees_nothing(api):
    client, manager = api
    headers = {"Authorization": f"Bearer {token(manager, None)}"}
    assert client.get("/data-quality/api/validations", headers=headers).json() == []
    runs = client.get(
        "/data-quality/api/validations", headers={"Authorization": f"Bearer {token(manager, 'viewer')}"}
    ).json()
    assert client.get(f"/data-quality/docs/{runs[0]['validation_id']}", headers=headers).status_code == 404


def test_the_plugin_registers_the_page_and_the_task_instance_link():
    from data_quality_plugin import DataQualityPlugin

    destinations = {view["destination"]: view["href"] for view in DataQualityPlugin.external_views}
    assert destinations["nav"] == "data-quality/"
    assert "{DAG_ID}" in destinations["task_instance"] and "{TASK_ID}" in destinations["task_instance"]
    assert DataQualityPlugin.fastapi_apps[0]["url_prefix"] == "/data-quality"


def test_model_reports_are_linked_next_to_the_validation_runs(api, warehouse_dsn, tmp_path):
    import psycopg

    from turnover_signals.paths import local_data_dir

    # with no storage.base_url, reports live under the local data directory's model_reports folder
    report = local_data_dir() / "model_reports" / f"model_report_{uuid.uuid4().hex[:8]}.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("<html><body>ROC curves</body></html>", encoding="utf-8")
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        register_champion(conn, str(report))
    client, manager = api
    headers = {"Authorization": f"Bearer {token(manager, 'viewer')}"}
    assert 'href="model-reports/m-1"' in client.get("/data-quality/", headers=headers).text
    report_page = client.get("/data-quality/model-reports/m-1", headers=headers)
    assert "ROC curves" in report_page.text
    assert report_page.headers["content-security-policy"].startswith("sandbox ")
    assert client.get("/data-quality/model-reports/m-1").status_code == 401


def test_model_cards_are_linked_beside_the_reports_and_served_only_to_readers_of_the_dag(
    api, warehouse_dsn, tmp_path
):
    from turnover_signals.paths import local_data_dir

    folder = local_data_dir() / "model_reports"
    folder.mkdir(parents=True, exist_ok=True)
    report, card = (folder / f"{kind}_{uuid.uuid4().hex[:8]}.html" for kind in ("model_report", "model_card"))
    report.write_text("<html><body>ROC curves</body></html>", encoding="utf-8")
    card.write_text("<html><body>Intended use: team-level retention planning</body></html>", encoding="utf-8")
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        register_champion(conn, str(report), card_path=str(card))
    client, manager = api
    headers = {"Authorization": f"Bearer {token(manager, 'viewer')}"}
    page = client.get("/data-quality/", headers=headers).text
    assert 'href="model-reports/m-1">report</a>' in page and 'href="model-cards/m-1">model card</a>' in page
    served = client.get("/data-quality/model-cards/m-1", headers=headers)
    assert served.status_code == 200 and "team-level retention planning" in served.text
    assert served.headers["content-security-policy"].startswith("sandbox ")
    assert client.get("/data-quality/model-cards/m-1").status_code == 401
    outsider = {"Authorization": f"Bearer {token(manager, None)}"}
    assert client.get("/data-quality/model-cards/m-1", headers=outsider).status_code == 404
    assert client.get("/data-quality/model-cards/no-such-model", headers=headers).status_code == 404


def test_an_lms_batch_validation_names_the_watermark_range_it_covers(
    lms_server_factory, warehouse_dsn, monkeypatch
):
    import psycopg

    from tests.integration.test_lms_statements import statement
    from turnover_signals.lms.statements import extract_statements

    server = lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 6)], users=[])
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    extract_statements(load_config(use_variable=False), dsn=warehouse_dsn)
    with psycopg.connect(warehouse_dsn) as conn:
        ((identifier,),) = conn.execute(
            "select batch_identifier from audit.validation_result where suite_name = 'lms_statement_batch'"
        ).fetchall()
        newest = conn.execute("select max(stored_at) from raw.lms_statement").fetchone()[0]
    assert identifier.startswith("xapi:lms_api stored ") and f".. {newest.isoformat()}" in identifier


def test_lms_extractions_show_what_they_found_late_beside_what_the_lrs_does(
    api, lms_server_factory, warehouse_dsn, monkeypatch
):
    from datetime import UTC, datetime, timedelta

    from tests.integration.test_lrs_conformance import history, xapi_statement
    from turnover_signals.lms.statements import extract_statements

    now = datetime.now(UTC)
    server = lms_server_factory(statements=history(now), users=[], deviations=("since_on_timestamp",))
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    config = load_config(use_variable=False)
    lms_run = RunIdentity(dag_id="lms_api_ingest", run_id="manual__late", task_id="extract_lms_statements")
    extract_statements(
        config, RunIdentity(dag_id="lms_api_ingest", run_id="manual__first", task_id="x"), warehouse_dsn
    )
    server.add_statements([xapi_statement(now - timedelta(days=3))])  # an offline sync of 3 days ago
    extract_statements(config, lms_run, warehouse_dsn)

    client, manager = api
    page = client.get("/data-quality/", headers={"Authorization": f"Bearer {token(manager, 'viewer')}"}).text
    profiles = page.split('<table id="lrs-profiles">', 1)[1].split("</table>", 1)[0]
    assert "xapi:lms_api" in profiles and "<td>timestamp</td><td>timestamp_lookback</td>" in profiles
    extractions = page.split('<table id="lms-extractions">', 1)[1].split("</table>", 1)[0]
    [late_row] = [row for row in extractions.split("<tr")[1:] if "manual__late" in row]
    assert "<td class=late-count>1</td>" in late_row and "class=late" in late_row
    # nobody without read access to the LMS DAG sees its extractions or its LRS
    hidden = client.get("/data-quality/", headers={"Authorization": f"Bearer {token(manager, None)}"}).text
    assert "xapi:lms_api" not in hidden and "manual__late" not in hidden


HRIS_RUN = "scheduled__2026-03-04"
FIRST, SECOND, SCIM = (
    "employees_20260302.csv@aaa111",
    "employees_20260303.csv@bbb222",
    "scim:lms_directory full pull",
)


def record(dsn, docs, suite, what, success, run, minutes):
    """One validation run recorded as a gate does (record_validation), with a Data Docs page on disk."""
    validation_id = str(uuid.uuid4())
    page = docs / f"{validation_id}.html"
    page.write_text(f"<html><body>{what}</body></html>", encoding="utf-8")
    failed = (
        []
        if success
        else [
            {
                "expectation": "expect_column_values_to_be_unique",
                "description": "ids are unique",
                "success": False,
                "observed": {},
                "exception": None,
            }
        ]
    )
    outcome = ValidationOutcome(
        validation_id=validation_id,
        suite_name=suite,
        suite_version="1+0123456789ab",
        data_asset=suite,
        batch_identifier=what,
        success=success,
        statistics={"evaluated_expectations": 3},
        results=failed,
        validated_at=datetime(2026, 3, 4, 6, tzinfo=UTC) + timedelta(minutes=minutes),
        data_docs_path=str(page),
        failed=failed,
    )
    with psycopg.connect(dsn) as conn:
        record_validation(conn, outcome, run)


@pytest.fixture
def seeded(api, warehouse_dsn, tmp_path):
    """Beside the catalog run: two mapped HRIS file validations of one task (one failed) and a SCIM pull."""
    docs = tmp_path / "seeded"
    docs.mkdir()
    hris = {"dag_id": "hris_sftp_ingest", "run_id": HRIS_RUN, "task_id": "ingest_hris_files", "try_number": 1}
    record(warehouse_dsn, docs, "hris_employees_file", FIRST, True, RunIdentity(map_index=0, **hris), 1)
    record(warehouse_dsn, docs, "hris_employees_file", SECOND, False, RunIdentity(map_index=1, **hris), 2)
    record(
        warehouse_dsn,
        docs,
        "lms_user_batch",
        f"{SCIM} batch s1",
        True,
        RunIdentity("lms_api_ingest", HRIS_RUN, "extract_lms_users", None, 2),
        3,
    )
    with psycopg.connect(warehouse_dsn) as conn:
        (catalog,) = conn.execute(
            "select batch_identifier from audit.validation_result where suite_name = 'course_catalog'"
        ).fetchone()
    client, manager = api
    return client, manager, catalog


def listed(client, catalog, headers=None, **params):
    """Which runs the page lists (from the validation table's rows only, not the echoed filter form)."""
    page = client.get("/data-quality/", params=params, headers=headers)
    assert page.status_code == 200, page.text
    table = page.text.split('<table id="validation-runs">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr class=\w+><td>.*?</tr>", table, flags=re.S)
    # a shortened hash carries the full one in its title
    rows = [re.sub(r'<abbr title="([0-9a-f]+)">[^<]*</abbr>', r"\1", row) for row in rows]
    shown = {name for name in (FIRST, SECOND, SCIM, catalog) if any(name in row for row in rows)}
    assert len(rows) == len(shown), rows
    assert f"<p>{len(rows)} validation run(s)</p>" in page.text
    return shown


def test_the_page_filters_by_suite_status_source_dag_and_run(seeded):
    client, manager, catalog_run = seeded
    headers = {"Authorization": f"Bearer {token(manager, 'viewer')}"}

    def shown(**params):
        return listed(client, catalog_run, headers, **params)

    hris_files, scim, catalog = {FIRST, SECOND}, {SCIM}, {catalog_run}
    assert shown() == hris_files | scim | catalog
    assert shown(suite_name="hris_employees_file") == hris_files
    assert shown(suite_name="lms_user_batch") == scim
    assert shown(status="failed") == {SECOND}
    assert shown(status="passed") == {FIRST} | scim | catalog
    assert shown(suite_name="hris_employees_file", status="passed") == {FIRST}
    assert shown(dag_id="lms_api_ingest") == scim | catalog
    assert shown(run_id=HRIS_RUN) == hris_files | scim
    assert shown(dag_id="lms_api_ingest", run_id=HRIS_RUN) == scim
    assert shown(since="2026-03-05") == catalog  # the catalog was validated today
    # the source: a validated data asset, or part of what was validated (a file name, a sha256)
    assert shown(source="hris_employees_file") == hris_files
    assert shown(source="employees_20260303.csv") == {SECOND}
    assert shown(source="BBB222") == {SECOND}
    assert shown(source="employees%") == set()  # LIKE wildcards are plain text
    page = client.get("/data-quality/", headers=headers).text
    assert "<th>source</th>" in page and 'href="?source=lms_user_batch">lms_user_batch</a>' in page
    assert '<option value="hris_employees_file">' in page  # suite and source choices
    runs = client.get(
        "/data-quality/api/validations", params={"source": "lms_user_batch"}, headers=headers
    ).json()
    assert [run["batch_identifier"] for run in runs] == [f"{SCIM} batch s1"]


def test_a_task_instance_link_shows_only_that_task_instance_s_runs(seeded):
    from data_quality_plugin import DataQualityPlugin

    client, manager, catalog = seeded
    headers = {"Authorization": f"Bearer {token(manager, 'viewer')}"}
    link = next(v["href"] for v in DataQualityPlugin.external_views if v["destination"] == "task_instance")

    def task_instance(dag_id, run_id, task_id, map_index):
        # the link as the UI fills it in for one task instance
        url = (
            link.replace("{DAG_ID}", dag_id)
            .replace("{RUN_ID}", run_id)
            .replace("{TASK_ID}", task_id)
            .replace("{MAP_INDEX}", map_index)
        )
        return listed(client, catalog, headers, **dict(re.findall(r"(\w+)=([^&]*)", url)))

    assert task_instance("hris_sftp_ingest", HRIS_RUN, "ingest_hris_files", "0") == {FIRST}
    assert task_instance("hris_sftp_ingest", HRIS_RUN, "ingest_hris_files", "1") == {SECOND}
    assert (
        task_instance("hris_sftp_ingest", HRIS_RUN, "ingest_hris_files", "-1") == set()
    )  # mapped: no unmapped run
    assert task_instance("lms_api_ingest", HRIS_RUN, "extract_lms_users", "-1") == {SCIM}
    assert task_instance("lms_api_ingest", "scheduled__2026-03-03", "extract_lms_users", "-1") == set()
    assert task_instance("lms_api_ingest", "scheduled__2026-03-03", "load_course_catalog", "-1") == {catalog}
    # the UI leaves {MAP_INDEX} as it is when it has none: the task's runs, not an error
    assert task_instance("hris_sftp_ingest", HRIS_RUN, "ingest_hris_files", "{MAP_INDEX}") == {FIRST, SECOND}


def test_the_embedded_page_is_served_on_the_ui_session_cookie_alone(seeded):
    # The UI embeds the page in an iframe: the browser sends the `_token` session cookie, no header.
    client, manager, _catalog = seeded
    client.cookies.set("_token", token(manager, "viewer"))
    page = client.get("/data-quality/?status=failed")
    assert page.status_code == 200 and SECOND in page.text
    assert client.get("/data-quality/api/validations").status_code == 200
    client.cookies.set("_token", token(manager, None))  # authenticated, but may read no DAG
    assert client.get("/data-quality/api/validations").json() == []
    client.cookies.set("_token", "forged")
    assert client.get("/data-quality/").status_code in (401, 403)
    client.cookies.clear()
    assert client.get("/data-quality/").status_code == 401


def test_the_page_reads_at_a_glance_short_hashes_readable_times_failed_runs_highlighted():
    from turnover_signals.quality.report_app import render_page

    digest = "ab" * 32
    row = {
        "validation_id": "v-1",
        "validated_at": datetime(2026, 12, 6, 5, 10, 11, 123456, tzinfo=UTC),
        "suite_name": "hris_employees",
        "suite_version": "2",
        "data_asset": "employees",
        "batch_identifier": f"employees_20261205.csv@{digest}",
        "success": False,
        "failed_expectation_count": 2,
        "evaluated_expectations": 30,
        "dag_id": "hris_sftp_ingest",
        "run_id": "scheduled__x",
        "task_id": "t",
        "map_index": None,
        "try_number": 1,
        "data_docs_path": "file:///x.html",
    }
    page = render_page([row], {}, ["hris_employees"])
    assert "<tr class=failed><td>2026-12-06 05:10:11</td>" in page
    assert f'employees_20261205.csv@<abbr title="{digest}">{digest[:12]}…</abbr>' in page
    assert (
        "table-layout:fixed" in page and "overflow-wrap:anywhere" in page
    )  # long values wrap, no sideways scroll
    assert "tr.failed{background" in page


def register_champion(
    conn, report_path: str, features: list[str] | None = None, card_path: str | None = None
) -> None:
    """A champion `m-1` in audit.model_registry whose report is at `report_path` (and model card at
    `card_path`)."""
    conn.execute(
        """
        insert into audit.model_registry (model_version, training_run_id, feature_set, feature_set_version,
            algorithm, horizon_days, features, train_from_date, train_to_date, calibration_from_date,
            calibration_to_date, test_from_date, test_to_date, train_rows, calibration_rows, test_rows,
            test_positives, metrics, artifact_path, artifact_sha256, report_path, card_path, lineage, status,
            dag_id, run_id, trained_at)
        values ('m-1', 't-1', 'hr_only', 2, 'logistic_regression', 90, %s, '2025-01-31', '2025-12-31',
            '2026-01-31', '2026-03-31', '2026-04-30', '2026-09-30', 1, 1, 1, 1, '{}', 'x', 'x', %s, %s, '{}',
            'champion', 'turnover_model', 'r-1', now())
        """,
        (features or ["tenure_days"], report_path, card_path),
    )


def point_data_docs_at(dsn, recorded):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("update audit.validation_result set data_docs_path = %s", (recorded,))


def test_the_page_refuses_a_path_traversal_request(api, validated, warehouse_dsn, tmp_path):
    """Real requests: a traversal in the URL, and a recorded path climbing with `..` (even one that would
    land back in the Data Docs folder), are refused without reading the file."""
    client, manager = api
    headers = {"Authorization": f"Bearer {token(manager, 'viewer')}"}
    for path in (
        "/data-quality/docs/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/data-quality/docs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/data-quality/model-reports/..%2F..%2Fetc%2Fpasswd",
    ):
        refused = client.get(path, headers=headers)
        assert refused.status_code == 404 and "root:" not in refused.text, path
    ((validation_id, page),) = query_rows(warehouse_dsn)
    assert client.get(f"/data-quality/docs/{validation_id}", headers=headers).status_code == 200
    local = validated_page_path(page)
    for recorded in (
        f"{local.parent}/../{local.parent.name}/{local.name}",
        (local.parent / ".." / local.parent.name / local.name).as_uri(),
        f"{local.parent}/%2e%2e/{local.parent.name}/{local.name}",
    ):
        point_data_docs_at(warehouse_dsn, recorded)
        refused = client.get(f"/data-quality/docs/{validation_id}", headers=headers)
        assert refused.status_code == 404 and "Great Expectations" not in refused.text, recorded


def test_the_page_refuses_a_data_docs_symlink_leading_out_of_storage(api, validated, warehouse_dsn, tmp_path):
    client, manager = api
    headers = {"Authorization": f"Bearer {token(manager, 'viewer')}"}
    secret = tmp_path / "elsewhere" / "secret.html"
    secret.parent.mkdir()
    secret.write_text("<html>not a Data Docs page</html>", encoding="utf-8")
    other_kind = tmp_path / "docs" / "course_catalog" / "samples.csv"  # inside, but not a page
    other_kind.write_text("employee_id\nE000001\n", encoding="utf-8")
    ((validation_id, _page),) = query_rows(warehouse_dsn)
    for target in (secret, other_kind):
        link = tmp_path / "docs" / f"link_to_{target.stem}.html"
        link.symlink_to(target)
        point_data_docs_at(warehouse_dsn, str(link))
        refused = client.get(f"/data-quality/docs/{validation_id}", headers=headers)
        assert refused.status_code == 404, target
        assert "not a Data Docs page" not in refused.text and "E000001" not in refused.text


def query_rows(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute("select validation_id, data_docs_path from audit.validation_result").fetchall()


def validated_page_path(recorded):
    from pathlib import Path

    from turnover_signals import storage

    return Path(storage.stored_path({}, recorded).path)
