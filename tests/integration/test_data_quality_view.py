"""The "Data quality" Airflow page: served only to authenticated, authorized users, linking to Data Docs.

The real Airflow API server app (`airflow.api_fastapi.app.create_app`) with this bundle's plugin
mounted, the simple auth manager, and real validation runs recorded by the course catalog gate.
"""

from __future__ import annotations

import copy

import pytest
from fastapi.testclient import TestClient

from turnover_signals.config import load_config
from turnover_signals.lms.catalog import load_course_catalog
from turnover_signals.quality.gate import RunIdentity

pytestmark = pytest.mark.integration
RUN = RunIdentity(dag_id="lms_api_ingest", run_id="scheduled__2026-03-03", task_id="load_course_catalog", try_number=1)


@pytest.fixture
def validated(warehouse_dsn, tmp_path):
    config = copy.deepcopy(load_config(use_variable=False))
    config["quality"]["data_docs_dir"] = str(tmp_path / "docs")
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
    assert client.get("/data-quality/", headers={"Authorization": "Bearer not-a-token"}).status_code in (401, 403)


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
    narrowed = client.get("/data-quality/?dag_id=lms_api_ingest&run_id=scheduled__2026-03-03"
                          "&task_id=load_course_catalog&map_index=-1", headers=headers)  # fmt: skip
    assert f'href="docs/{runs[0]["validation_id"]}"' in narrowed.text
    docs = client.get(f"/data-quality/docs/{runs[0]['validation_id']}", headers=headers)
    assert docs.status_code == 200 and "Great Expectations" in docs.text and "course_catalog v1+" in docs.text


def test_a_user_without_dag_access_sees_nothing(api):
    client, manager = api
    headers = {"Authorization": f"Bearer {token(manager, None)}"}
    assert client.get("/data-quality/api/validations", headers=headers).json() == []
    runs = client.get("/data-quality/api/validations",
                      headers={"Authorization": f"Bearer {token(manager, 'viewer')}"}).json()  # fmt: skip
    assert client.get(f"/data-quality/docs/{runs[0]['validation_id']}", headers=headers).status_code == 404


def test_the_plugin_registers_the_page_and_the_task_instance_link():
    from data_quality_plugin import DataQualityPlugin

    destinations = {view["destination"]: view["href"] for view in DataQualityPlugin.external_views}
    assert destinations["nav"] == "data-quality/"
    assert "{DAG_ID}" in destinations["task_instance"] and "{TASK_ID}" in destinations["task_instance"]
    assert DataQualityPlugin.fastapi_apps[0]["url_prefix"] == "/data-quality"


def test_model_reports_are_linked_next_to_the_validation_runs(api, warehouse_dsn, tmp_path):
    import psycopg

    report = tmp_path / "model_report.html"
    report.write_text("<html><body>ROC curves</body></html>", encoding="utf-8")
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            """
            insert into audit.model_registry (model_version, training_run_id, feature_set, feature_set_version,
                algorithm, horizon_days, features, train_from_date, train_to_date, calibration_from_date,
                calibration_to_date, test_from_date, test_to_date, train_rows, calibration_rows, test_rows,
                test_positives, metrics, artifact_path, artifact_sha256, report_path, lineage, status, dag_id,
                run_id, trained_at)
            values ('m-1', 't-1', 'hr_lms', 1, 'logistic_regression', 90, '{tenure_days}', '2025-01-31',
                '2025-12-31', '2026-01-31', '2026-03-31', '2026-04-30', '2026-09-30', 1, 1, 1, 1, '{}', '/x', 'x',
                %s, '{}', 'champion', 'turnover_model', 'r-1', now())
            """,
            (str(report),),
        )
    client, manager = api
    headers = {"Authorization": f"Bearer {token(manager, 'viewer')}"}
    assert 'href="model-reports/m-1"' in client.get("/data-quality/", headers=headers).text
    assert "ROC curves" in client.get("/data-quality/model-reports/m-1", headers=headers).text
    assert client.get("/data-quality/model-reports/m-1").status_code == 401


def test_an_lms_batch_validation_names_the_watermark_range_it_covers(lms_server_factory, warehouse_dsn, monkeypatch):
    import psycopg

    from tests.integration.test_lms_statements import statement
    from turnover_signals.lms.statements import extract_statements

    server = lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 6)], users=[])
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    extract_statements(load_config(use_variable=False), dsn=warehouse_dsn)
    with psycopg.connect(warehouse_dsn) as conn:
        (identifier,), = conn.execute(
            "select batch_identifier from audit.validation_result where suite_name = 'lms_statement_batch'"
        ).fetchall()
        newest = conn.execute("select max(stored_at) from raw.lms_statement").fetchone()[0]
    assert identifier.startswith("xapi:lms_api stored ") and f".. {newest.isoformat()}" in identifier
