"""Artefacts on object storage: every file the pipeline writes for later tasks or for people goes under
`storage.base_url` through Airflow's `ObjectStoragePath`, never to the worker's local data directory.

The base here is a `file://` directory that is NOT the local data directory (`TURNOVER_DATA_DIR` points
elsewhere), as on a second worker: each flow must put its objects under the base and nothing locally.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from tests.integration.hris_helpers import csv_bytes
from tests.integration.test_hris_ingest import deliver, five_employees, run_pipeline
from turnover_signals import storage
from turnover_signals.config import load_config
from turnover_signals.errors import BadInputError, StorageNotSharedError, StorageVerificationError
from turnover_signals.quality.gate import RunIdentity

pytestmark = pytest.mark.integration
RUN = RunIdentity(
    dag_id="lms_api_ingest", run_id="scheduled__2026-03-03", task_id="load_course_catalog", try_number=1
)
RETENTION_RUN = RunIdentity(
    dag_id="warehouse_retention", run_id="r-1", task_id="apply_retention", try_number=1
)


@pytest.fixture
def shared(tmp_path, monkeypatch):
    """A `file://` base in one directory, the local data directory in another (which must stay empty)."""
    local = tmp_path / "worker-local-data"
    local.mkdir()
    monkeypatch.setenv("TURNOVER_DATA_DIR", str(local))
    base_dir = tmp_path / "object-store" / "turnover-signals"
    url = base_dir.as_uri()
    # the Variable carries the base, as in a deployment: what the page and fallbacks read too
    monkeypatch.setenv("AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"storage": {"base_url": url}}))
    config = load_config(
        {"storage": {"base_url": url}, "hris": {"download_max_backoff_seconds": 0.2}}, use_variable=False
    )
    return SimpleNamespace(url=url, base_dir=base_dir, local=local, config=config)


def local_files(shared) -> list[Path]:
    return [path for path in shared.local.rglob("*") if path.is_file()]


def query(dsn: str, text: str, params=()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(text, params).fetchall()


def test_a_gate_writes_its_data_docs_page_under_the_base(shared, warehouse_dsn):
    from turnover_signals.lms.catalog import load_course_catalog

    load_course_catalog(shared.config, RUN, warehouse_dsn)
    ((page,),) = query(warehouse_dsn, "select data_docs_path from audit.validation_result")
    assert page.startswith(f"{shared.url}/data_docs/course_catalog/") and page.endswith(".html")
    assert b"Great Expectations" in storage.read_bytes(shared.config, page)
    assert local_files(shared) == []


def test_an_hris_file_s_page_is_published_to_the_base_by_the_task_that_validated_it(
    shared, sftp_drop, hris_dir, warehouse_dsn
):
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    results, errors = run_pipeline(shared.config, warehouse_dsn)
    assert not errors and [r["status"] for r in results] == ["loaded"]
    pages = [p for (p,) in query(warehouse_dsn, "select data_docs_path from audit.validation_result")]
    assert pages and all(p.startswith(f"{shared.url}/data_docs/") for p in pages)
    assert all(storage.stored_path(shared.config, p).exists() for p in pages)
    assert local_files(shared) == []


def test_the_review_sample_goes_under_the_base(shared, warehouse_dsn):
    from turnover_signals.identity.review_sample import export_review_sample

    exported = export_review_sample(shared.config, RUN, warehouse_dsn)
    assert (
        exported["path"] == f"{shared.url}/identity_review/identity_review_sample__scheduled__2026-03-03.csv"
    )
    assert storage.read_bytes(shared.config, exported["path"]).startswith(b"match_method")
    assert local_files(shared) == []


def seeded_model():
    from tests.integration.test_turnover_model import SEEDED_FEATURES, seeded_rows
    from turnover_signals.model.train import fit_feature_set

    return fit_feature_set(
        "hr_only",
        SEEDED_FEATURES,
        seeded_rows(600, 1),
        seeded_rows(600, 2),
        ["logistic_regression"],
        "pr_auc",
    )


def test_a_model_artifact_goes_under_the_base_and_loads_from_its_url_alone(shared):
    from turnover_signals.model.train import load_artifact, save_artifact

    model = seeded_model()
    artifacts = storage.location(shared.config, shared.config["model"]["artifact_dir"])
    url, sha256 = save_artifact(model, artifacts / "tm-x-hr-only.joblib")
    assert url == f"{shared.url}/model_artifacts/tm-x-hr-only.joblib"
    # as on another worker: the registry row's URL and sha256 are all scoring has
    assert load_artifact(url, sha256, shared.config).features == model.features
    with pytest.raises(BadInputError, match="sha256 differs"):
        load_artifact(url, "0" * 64, shared.config)
    assert local_files(shared) == []


def test_an_artifact_recorded_as_a_local_path_before_object_storage_still_loads(shared, tmp_path):
    import joblib

    from turnover_signals.model.train import file_sha256, load_artifact

    model = seeded_model()
    legacy = tmp_path / "old_artifacts" / "tm-old.joblib"
    legacy.parent.mkdir()
    joblib.dump(model, legacy)
    assert load_artifact(str(legacy), file_sha256(legacy), shared.config).features == model.features


def old_statements(dsn: str, count: int) -> datetime:
    stored = datetime(2024, 1, 1, tzinfo=UTC)
    with psycopg.connect(dsn) as conn:
        for n in range(count):
            conn.execute(
                "insert into raw.lms_statement (statement_id, stored_at, statement, source, batch_id, "
                "loaded_at) values (%s, %s, jsonb_build_object('verb', jsonb_build_object('id', 'x')), 'x', "
                "'b0', %s)",
                (f"s-{n}", stored, stored),
            )
    return stored + timedelta(days=800)


def archive_config(shared):
    config = json.loads(json.dumps(shared.config))
    config["retention"].update(mode="archive", raw_days=730)
    return config


def test_archive_mode_writes_a_verified_archive_object_under_the_base(shared, warehouse_dsn):
    from turnover_signals.retention.purge import apply_retention

    now = old_statements(warehouse_dsn, 3)
    summary = apply_retention(archive_config(shared), RETENTION_RUN, dsn=warehouse_dsn, now=now)
    assert summary["purges"]["raw.lms_statement"]["rows"] == 3
    ((url, details),) = query(
        warehouse_dsn,
        "select archive_path, details from audit.retention_purge where purge_target = 'raw.lms_statement'",
    )
    assert url.startswith(f"{shared.url}/retention_archive/lms_statement/lms_statement__") and url.endswith(
        ".gz"
    )
    data = storage.read_bytes(shared.config, url)
    assert details["archive"]["size_bytes"] == len(data)
    assert gzip.decompress(data).decode().count("\n") == 4  # header + 3 rows
    assert query(warehouse_dsn, "select count(*) from raw.lms_statement") == [(0,)]
    assert local_files(shared) == []


def test_an_archive_that_does_not_read_back_as_written_deletes_nothing(shared, warehouse_dsn, monkeypatch):
    from turnover_signals.retention.purge import apply_retention

    now = old_statements(warehouse_dsn, 3)
    # the store hands back other bytes than were written (a truncating proxy, a lifecycle rule, ...)
    monkeypatch.setattr(storage, "object_digest", lambda path: (1, "0" * 64))
    with pytest.raises(StorageVerificationError, match="nothing was deleted"):
        apply_retention(archive_config(shared), RETENTION_RUN, dsn=warehouse_dsn, now=now)
    assert query(warehouse_dsn, "select count(*) from raw.lms_statement") == [(3,)]
    assert query(warehouse_dsn, "select count(*) from audit.retention_purge") == [(0,)]


@pytest.mark.parametrize(
    "executor",
    [
        "CeleryExecutor",
        "LocalExecutor,CeleryExecutor",
        "KubernetesExecutor",
        "my_pods:some.module.PodExecutor",
    ],
)
def test_a_distributed_executor_without_a_base_fails_naming_the_setting(
    executor, tmp_path, monkeypatch, warehouse_dsn
):
    from turnover_signals.identity.review_sample import export_review_sample

    monkeypatch.setenv("TURNOVER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    with pytest.raises(StorageNotSharedError) as raised:
        export_review_sample(load_config(use_variable=False), RUN, warehouse_dsn)
    message = str(raised.value)
    assert message.startswith("storage.base_url: not set") and "set storage.base_url" in message
    assert (
        "shared object store" in message and "runbook: docs/runbook/warehouse.md#runbook-storage" in message
    )
    assert list(tmp_path.iterdir()) == []  # nothing went to this worker's disk


def test_the_local_executor_or_a_configured_base_needs_no_shared_store(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNOVER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    config = load_config(use_variable=False)
    assert storage.object_url(storage.storage_base(config)) == tmp_path.resolve().as_uri()
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    config["storage"]["base_url"] = "file:///srv/shared"
    assert str(storage.location(config, "data_docs")) == "file:///srv/shared/data_docs"
    # the deployment's environment may give the base (the compose file does); the configuration wins
    monkeypatch.setenv(storage.BASE_URL_ENV_VAR, "file:///mnt/from-env")
    assert str(storage.location(config, "data_docs")) == "file:///srv/shared/data_docs"
    config["storage"]["base_url"] = None
    assert str(storage.location(config, "data_docs")) == "file:///mnt/from-env/data_docs"


def test_containment_refuses_other_stores_parents_and_look_alike_prefixes(tmp_path):
    base = storage.location({}, tmp_path / "base")
    inside = storage.stored_path({}, f"{tmp_path.as_uri()}/base/data_docs/page.html")
    assert storage.contained(inside, [base])
    for outside in (
        f"{tmp_path.as_uri()}/base/../elsewhere/page.html",
        f"{tmp_path.as_uri()}/base-2/page.html",
        f"{tmp_path.as_uri()}/base",
        "memory:///base/page.html",
    ):
        assert not storage.contained(storage.stored_path({}, outside), [base]), outside
    bucket = storage.stored_path({}, "s3://bucket/turnover-signals")
    assert storage.contained(
        storage.stored_path({}, "s3://bucket/turnover-signals/data_docs/p.html"), [bucket]
    )
    assert not storage.contained(
        storage.stored_path({}, "s3://other/turnover-signals/data_docs/p.html"), [bucket]
    )
    assert not storage.contained(
        storage.stored_path({}, "s3://bucket/turnover-signals/../x/p.html"), [bucket]
    )


@pytest.fixture
def page_client(airflow_metadata_db, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "auditor:viewer")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    client = TestClient(create_app())  # first: it initializes the auth manager
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="u-viewer", role="viewer"))
    return client, {"Authorization": f"Bearer {token}"}


def test_the_page_serves_a_data_docs_page_from_the_base_and_refuses_one_outside_it(
    shared, warehouse_dsn, page_client, tmp_path
):
    from turnover_signals.lms.catalog import load_course_catalog

    load_course_catalog(shared.config, RUN, warehouse_dsn)
    client, headers = page_client
    ((validation_id, page),) = query(
        warehouse_dsn, "select validation_id, data_docs_path from audit.validation_result"
    )
    served = client.get(f"/data-quality/docs/{validation_id}", headers=headers)
    assert served.status_code == 200 and "Great Expectations" in served.text
    assert served.headers["content-security-policy"].split()[0] == "sandbox"
    assert served.headers["x-content-type-options"] == "nosniff"

    # a row pointing outside the base (tampered, or written by another deployment) is not served
    elsewhere = tmp_path / "elsewhere" / "secret.html"
    elsewhere.parent.mkdir()
    elsewhere.write_text("<html>not a Data Docs page</html>", encoding="utf-8")
    for outside in (
        elsewhere.as_uri(),
        f"{shared.url}/data_docs/../../../elsewhere/secret.html",
        str(elsewhere),
    ):
        with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
            conn.execute("update audit.validation_result set data_docs_path = %s", (outside,))
        refused = client.get(f"/data-quality/docs/{validation_id}", headers=headers)
        assert refused.status_code == 404 and "not a Data Docs page" not in refused.text, outside


def test_the_page_serves_a_page_recorded_as_a_local_path_before_object_storage(
    warehouse_dsn, page_client, tmp_path, monkeypatch
):
    from turnover_signals.lms.catalog import load_course_catalog

    local = tmp_path / "data"
    monkeypatch.setenv("TURNOVER_DATA_DIR", str(local))
    config = load_config(use_variable=False)
    load_course_catalog(config, RUN, warehouse_dsn)
    ((validation_id, page),) = query(
        warehouse_dsn, "select validation_id, data_docs_path from audit.validation_result"
    )
    legacy = storage.stored_path(config, page).path  # the plain local path an older row holds
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute("update audit.validation_result set data_docs_path = %s", (legacy,))
    client, headers = page_client
    assert client.get(f"/data-quality/docs/{validation_id}", headers=headers).status_code == 200


def test_the_page_serves_a_model_report_from_the_base(shared, warehouse_dsn, page_client):
    from tests.integration.test_data_quality_view import register_champion
    from tests.integration.test_turnover_model import SEEDED_FEATURES

    reports = storage.location(shared.config, shared.config["model"]["report_dir"])
    url = storage.write_bytes(
        reports / "turnover_model_report__r1.html", b"<html><body>ROC curves</body></html>"
    )
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        register_champion(conn, url, SEEDED_FEATURES)
    client, headers = page_client
    served = client.get("/data-quality/model-reports/m-1", headers=headers)
    assert served.status_code == 200 and "ROC curves" in served.text
    assert served.headers["content-security-policy"].startswith("sandbox ")
