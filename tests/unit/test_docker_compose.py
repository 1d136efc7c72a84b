"""docker-compose.yaml, checked by parsing (no docker engine needed): the official Airflow 3 shape,
the bundle's mounts, connections and profiles, secrets only as variables, and only files that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
BUNDLE_MOUNTS = {
    "./dags": "/opt/airflow/dags",
    "./plugins": "/opt/airflow/plugins",
    "./include": "/opt/airflow/include",
}
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())


def environment(service: dict) -> dict[str, str]:
    return {key: str(value) for key, value in (service.get("environment") or {}).items()}


def test_the_official_airflow_3_services_run_the_bundle_image(compose):
    services = compose["services"]
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command, name
        assert services[name]["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["warehouse"]["image"] == "postgres:15"
    for name, service in services.items():
        assert "image" in service or "build" in service, name
    assert environment(services["airflow-scheduler"])["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_the_image_installs_requirements_on_the_official_image_not_at_start_up(compose):
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}", dockerfile, re.M)
    assert "-r /requirements.txt" in dockerfile and "COPY requirements.txt" in dockerfile
    pinned = re.search(r"^apache-airflow==(\S+)", (REPO_ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert f"ARG AIRFLOW_VERSION={pinned}" in dockerfile
    for service in compose["services"].values():
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in environment(service)


def test_every_airflow_component_mounts_the_bundle_and_shares_one_jwt_secret(compose):
    secrets = set()
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        service = compose["services"][name]
        mounts = dict(volume.split(":")[:2] for volume in service["volumes"])
        assert {source: mounts.get(source) for source in BUNDLE_MOUNTS} == BUNDLE_MOUNTS, name
        env = environment(service)
        secrets.add(env["AIRFLOW__API_AUTH__JWT_SECRET"])
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert secrets == {"${AIRFLOW_JWT_SECRET:?set it in .env}"}


def compose_connections(compose: dict) -> dict[str, str]:
    env = environment(compose["services"]["airflow-worker"])
    return {
        key.removeprefix("AIRFLOW_CONN_").lower(): value
        for key, value in env.items()
        if key.startswith("AIRFLOW_CONN_")
    }


def init_sql() -> str:
    script = (REPO_ROOT / "deploy/warehouse-init/01_create_roles_and_logins.sh").read_text()
    # the init script runs the one copy of the role SQL, mounted beside it
    assert "-f /docker-entrypoint-initdb.d/roles_and_logins.psql" in script
    return (REPO_ROOT / "deploy/warehouse-init/roles_and_logins.psql").read_text()


def test_connections_use_the_contract_names_and_the_pipelines_least_role(compose):
    connections = compose_connections(compose)
    assert set(connections) == {
        "warehouse_postgres",
        "warehouse_loader",
        "warehouse_transformer",
        "warehouse_quality_reader",
        "analytics_pseudonym",
        "airflow_api",
    }
    api = json.loads(VARIABLE.sub("placeholder", connections["airflow_api"]))
    assert (api["host"], api["port"], api["login"]) == ("airflow-apiserver", 8080, "turnover_bot")
    apiserver = environment(compose["services"]["airflow-apiserver"])
    users = dict(user.split(":") for user in apiserver["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(","))
    assert users["turnover_bot"] == "user"  # may edit DAG runs' notes, nothing more
    assert connections["warehouse_postgres"].startswith("postgres://turnover_pipeline:${")
    assert connections["warehouse_postgres"].endswith("@warehouse:5432/turnover")
    pseudonym = json.loads(VARIABLE.sub("placeholder", connections["analytics_pseudonym"]))
    assert pseudonym == {"conn_type": "generic", "password": "placeholder"}
    pipeline_login = next(
        line for line in init_sql().splitlines() if line.startswith("create role turnover_pipeline")
    )
    assert (
        " login " in pipeline_login
        and "superuser" not in pipeline_login
        and "createrole" not in pipeline_login
    )


def test_each_stage_connection_is_a_login_only_in_its_group_role_taking_it_for_its_sessions(compose):
    from turnover_signals.config import load_config
    from turnover_signals.deploy.warehouse_logins import STAGES

    config_ids = load_config(use_variable=False)["connections"]
    connections = compose_connections(compose)
    sql = init_sql()
    for stage_name, stage in STAGES.items():
        url = connections[config_ids[stage.config_key]]
        assert url.endswith("@warehouse:5432/turnover"), stage_name
        if stage.group_role is None:
            continue
        login = re.match(r"postgres://(\w+):\$\{\w+:\?set it in \.env\}@", url).group(1)
        create = next(line for line in sql.splitlines() if line.startswith(f"create role {login} "))
        assert " login " in create and create.endswith(f" in role {stage.group_role};"), create
        assert f"alter role {login} set role = '{stage.group_role}';" in sql
        assert f"create role {stage.group_role} nologin;" in sql
        password = re.search(r"password :'(\w+)'", create).group(1)
        assert f"-v {password}=" in sql


def test_the_stack_defines_every_connection_the_demo_does(compose):
    from turnover_demo.demo import DEMO_STAGE_LOGINS
    from turnover_signals.config import load_config
    from turnover_signals.deploy.warehouse_logins import STAGES

    config_ids = load_config(use_variable=False)["connections"]
    demo_warehouse = {config_ids["warehouse"]} | {config_ids[STAGES[s].config_key] for s in DEMO_STAGE_LOGINS}
    sources = {config_ids[name] for name in ("hris_sftp", "lms_api", "lms_directory")}  # demo-connections
    assert demo_warehouse <= set(compose_connections(compose))
    assert set(config_ids.values()) == demo_warehouse | sources


def test_the_demo_profile_adds_only_the_sample_sources_and_their_connections(compose):
    profiled = {
        name: service["profiles"] for name, service in compose["services"].items() if "profiles" in service
    }
    assert profiled == {"demo-sources": ["demo"], "demo-connections": ["demo"]}
    sources = compose["services"]["demo-sources"]
    assert "turnover_demo.demo_sources" in " ".join(sources["command"])
    assert "airflow connections import" in " ".join(compose["services"]["demo-connections"]["command"])


def test_secrets_are_only_variables_from_env(compose):
    text = (REPO_ROOT / "docker-compose.yaml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET|FERNET_KEY|_KEY)\b[\"']?\s*:", line) and "KEY_" not in line:
            assert "${" in line, line
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    generated = (REPO_ROOT / "scripts/generate_compose_env.py").read_text()
    assert len(required) >= 6 and {name for name in required if f'"{name}"' not in generated} == set()
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


def test_every_file_the_stack_references_exists(compose):
    referenced = [compose["x-airflow-common"]["build"]["dockerfile"], "requirements.txt"]
    for service in compose["services"].values():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("."):
                referenced.append(source)
    for module in re.findall(r"python -m ([\w.]+)", (REPO_ROOT / "docker-compose.yaml").read_text()):
        package_dir = "" if module.startswith("turnover_demo.") else "plugins/"
        referenced.append(package_dir + module.replace(".", "/") + ".py")
    missing = [path for path in referenced if not (REPO_ROOT / path).exists()]
    assert missing == [] and len(referenced) > 5


def test_the_clis_import_the_package_in_every_airflow_container(compose):
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        assert environment(compose["services"][name])["PYTHONPATH"] == "/opt/airflow/plugins", name


def test_the_volumes_the_airflow_user_writes_are_its_own(compose):
    init = compose["services"]["airflow-init"]
    script = " ".join(init["command"])
    mounted = {volume.split(":")[1] for volume in init["volumes"]}
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    for path in ("/opt/airflow/data", "/opt/airflow/config", "/opt/airflow/demo-state"):
        assert path in mounted and path in script.split("chown", 1)[1].split("&&", 1)[0], path
        assert path in dockerfile.split("mkdir -p", 1)[1].split("&&", 1)[0], path
    assert init["user"] == "0:0"
    assert (
        compose["services"]["demo-sources"]["depends_on"]["airflow-init"]["condition"]
        == "service_completed_successfully"
    )


def test_workers_and_the_api_server_share_the_data_volume_at_turnover_data_dir(compose):
    for name in ("airflow-worker", "airflow-apiserver"):
        service = compose["services"][name]
        data_dir = environment(service)["TURNOVER_DATA_DIR"]
        assert f"airflow-data:{data_dir}" in service["volumes"], name
        # Celery workers need a shared object store: the mounted volume
        assert environment(service)["TURNOVER_STORAGE_BASE_URL"] == f"file://{data_dir}", name
        assert environment(service)["GX_ANALYTICS_ENABLED"] == "false"


def test_only_the_demo_sources_service_mounts_the_demo_tooling(compose):
    mounting = {
        name
        for name, service in compose["services"].items()
        if any(volume.startswith("./turnover_demo:") for volume in service.get("volumes") or [])
    }
    assert mounting == {"demo-sources"}
