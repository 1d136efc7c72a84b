"""deploy/helm/values.yaml, checked by parsing it against docker-compose.yaml (no cluster, no helm binary):
the same executor, components, environment, connections and auth users, and secrets only by reference."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.unit.test_docker_compose import AIRFLOW_SERVICES, compose_connections, environment

REPO_ROOT = Path(__file__).resolve().parents[2]
VALUES_FILE = REPO_ROOT / "deploy/helm/values.yaml"
# compose service -> the chart's section for the same component
CHART_SECTIONS = {
    "airflow-apiserver": "apiServer",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dagProcessor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "workers",
}


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES_FILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())


def chart_env(values: dict) -> dict[str, str]:
    return {item["name"]: str(item["value"]) for item in values.get("env") or []}


def chart_connections(values: dict) -> dict[str, dict]:
    return {
        item["envName"].removeprefix("AIRFLOW_CONN_").lower(): item
        for item in values.get("secret") or []
        if item["envName"].startswith("AIRFLOW_CONN_")
    }


def test_the_executor_is_celery_on_redis_as_in_compose(values, compose):
    compose_env = environment(compose["services"]["airflow-worker"])
    assert values["executor"] == compose_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert values["redis"]["enabled"] is True and compose_env["AIRFLOW__CELERY__BROKER_URL"].startswith(
        "redis://"
    )


def test_every_airflow_component_of_compose_is_enabled_in_the_chart(values, compose):
    assert set(CHART_SECTIONS) == set(AIRFLOW_SERVICES) <= set(compose["services"])
    for section in CHART_SECTIONS.values():
        assert values[section].get("enabled", True) is True, section
    assert values["workers"]["replicas"] >= 1


def test_the_chart_runs_the_airflow_version_the_image_is_built_with(values):
    pinned = re.search(r"^apache-airflow==(\S+)", (REPO_ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert values["airflowVersion"] == values["defaultAirflowTag"] == pinned
    assert values["images"]["airflow"]["tag"].startswith(f"{pinned}-")
    helm_dockerfile = (REPO_ROOT / "deploy/helm/Dockerfile").read_text()
    # built on the repository's image: requirements.txt is installed at build time, nothing at start-up
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", helm_dockerfile, re.M)
    assert "pip install" not in helm_dockerfile
    for folder in ("plugins", "include"):
        assert f"COPY --chown=airflow:0 {folder}/ /opt/airflow/{folder}/" in helm_dockerfile
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in chart_env(values)


def test_the_bundle_reads_the_same_environment_as_in_compose(values, compose):
    env = chart_env(values)
    for service in ("airflow-worker", "airflow-apiserver"):
        compose_env = environment(compose["services"][service])
        for name in ("TURNOVER_STORAGE_BASE_URL", "TURNOVER_DATA_DIR", "GX_ANALYTICS_ENABLED", "PYTHONPATH"):
            assert env[name] == compose_env[name], (service, name)
    # the file:// store is shared: one volume at TURNOVER_DATA_DIR in every Airflow container
    mounts = {mount["mountPath"]: mount["name"] for mount in values["volumeMounts"]}
    volume = mounts[env["TURNOVER_DATA_DIR"]]
    claim = next(v for v in values["volumes"] if v["name"] == volume)["persistentVolumeClaim"]["claimName"]
    assert claim and env["TURNOVER_STORAGE_BASE_URL"] == f"file://{env['TURNOVER_DATA_DIR']}"


def test_the_core_settings_of_compose_are_the_charts(values, compose):
    compose_env = environment(compose["services"]["airflow-apiserver"])
    core = values["config"]["core"]
    for key in ("DAGS_ARE_PAUSED_AT_CREATION", "LOAD_EXAMPLES", "AUTH_MANAGER", "SIMPLE_AUTH_MANAGER_USERS"):
        assert str(core[key.lower()]).lower() == compose_env[f"AIRFLOW__CORE__{key}"].lower(), key
    # the FAB user table the chart's create-user job writes is not where the simple auth manager looks
    assert values["createUserJob"]["enabled"] is False


def test_the_dags_come_from_one_git_source_holding_only_the_dag_files(values, compose):
    env = chart_env(values)
    git_sync = values["dags"]["gitSync"]
    git_bundle = env.get("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST")
    # compose mounts ./dags as the DAGs folder (no bundle list); here exactly one of git-sync or the Git
    # bundle
    assert "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST" not in environment(
        compose["services"]["airflow-worker"]
    )
    assert git_sync["enabled"] != bool(git_bundle)
    if git_sync["enabled"]:
        assert git_sync["subPath"] == "dags"
        assert git_sync["credentialsSecret"] and "password" not in git_sync and "sshKey" not in git_sync
    else:
        (bundle,) = json.loads(git_bundle)
        assert bundle["classpath"] == "airflow.providers.git.bundles.git.GitDagBundle"
        assert bundle["kwargs"]["subdir"] == "dags"


def test_every_connection_of_compose_and_of_the_configuration_is_a_secret_reference(values, compose):
    from turnover_signals.config import load_config

    connections = chart_connections(values)
    config_ids = set(load_config(use_variable=False)["connections"].values())
    assert set(compose_connections(compose)) | config_ids == set(connections)
    for conn_id, item in connections.items():
        assert set(item) == {"envName", "secretName", "secretKey"}, conn_id
        assert item["secretKey"] == conn_id


def test_turnover_bot_is_a_user_of_the_api_server_the_airflow_api_connection_names(values, compose):
    users = dict(user.split(":") for user in values["config"]["core"]["simple_auth_manager_users"].split(","))
    assert users["turnover_bot"] == "user"  # may edit DAG runs' notes, nothing more
    apiserver = values["apiServer"]
    volumes = {volume["name"]: volume for volume in apiserver["extraVolumes"]}
    passwords_file = Path(values["config"]["core"]["simple_auth_manager_passwords_file"])
    mount = next(m for m in apiserver["extraVolumeMounts"] if m["mountPath"] == str(passwords_file.parent))
    assert "emptyDir" in volumes[mount["name"]]  # the auth manager opens the file for writing
    assert any("secret" in volume for volume in volumes.values())
    assert apiserver["replicas"] == 1
    doc = (REPO_ROOT / "docs/deploy/helm.md").read_text()
    assert '"login": "turnover_bot"' in doc and '"host": "turnover-airflow-api-server"' in doc


def test_no_secret_is_written_in_the_values(values):
    text = VALUES_FILE.read_text()
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        assert not re.search(r"(password|token|fernetKey|jwtSecret|apiSecretKey)\s*:\s*\S", line, re.I), line
        assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", line), line
    assert "fernetKey" not in values and "jwtSecret" not in values
    assert values["fernetKeySecretName"] and values["data"]["metadataSecretName"]
    assert "metadataConnection" not in values["data"]
