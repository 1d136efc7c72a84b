"""`make stack`: the topology of docker-compose.yaml started natively, for people and for the scheduler test.

    PYTHONPATH=plugins python -m tests.integration.airflow_stack start [--state-dir .stack] [--employees 300]
    PYTHONPATH=plugins python -m tests.integration.airflow_stack status | stop

What `start` runs, each process in its own process group with its log under `STATE/logs/`:

- a redis-server of its own on a free loopback port, data in `STATE/redis` (the Celery broker);
- two fresh databases on the tests' PostgreSQL (`TURNOVER_TEST_ADMIN_DSN`, see tests/postgres_service.py):
  `ts_stack_<id>_airflow` (Airflow's metadata and the Celery result backend) and `ts_stack_<id>_warehouse`
  (migrated, with one login per stage, `ts_stack_<id>_loader` / `_transformer` / `_quality_reader`, as README
  "Least privilege" says);
- the sample SFTP and LMS servers serving a small generated enterprise (`turnover_demo.synth`, ending
  yesterday UTC, so the first HRIS run is fresh and the features build dates that exist);
- Airflow: api-server, scheduler, dag-processor, triggerer and two Celery workers (CeleryExecutor). Every
  component gets the same configuration through the environment (one fernet key, one JWT secret, the
  connections as `AIRFLOW_CONN_*`, DAGs folder `dags/`, plugins folder `plugins/`); the simple auth manager
  has one user, `admin`, whose password is in `STATE/simple_auth_manager_passwords.json`.

Each worker has its own working directory (its `AIRFLOW_HOME`, `STATE/worker-N`) and its own
`TURNOVER_DATA_DIR` (`STATE/worker-N/data`): like workers on two hosts, they share no local data
directory. What the pipeline writes for later tasks and for people (Data Docs, model artifacts, review
samples) goes to the object store `storage.base_url` (turnover_signals/storage.py):
`file://STATE/object-store` stands in for the bucket every worker and the api-server reach in production
(`--storage-base-url` to use another). Each worker has its own Celery node name (`--celery-hostname
stack-worker-N@<host>`), which is also the `hostname` of the task instances it runs (`[core]
hostname_callable` = `worker_hostname` below), so the UI and the REST API show which worker ran what. Task
logs go to one folder, `STATE/logs/airflow`, read by the api-server: the compose file shares its
`airflow-logs` volume the same way (in production, remote logging). DAGs are paused at creation, as in the
compose file: unpause them in the UI or through the REST API.

State (ports, process ids, the admin password) is in `STATE/stack.json`. `stop` ends the processes it
started (by process id), drops the two databases and the stage logins, and keeps the logs.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from tests import postgres_service
from tests.databases import admin_execute, dsn_for
from turnover_demo.demo import PIPELINE_ORDER

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO_ROOT / "dags"
PLUGINS_DIR = REPO_ROOT / "plugins"
DEFAULT_STATE_DIR = REPO_ROOT / ".stack"
STATE_FILE = "stack.json"
ADMIN_USER = "admin"
PIPELINE_DAGS = PIPELINE_ORDER
# what the workers report as their host (see worker_hostname)
WORKER_HOSTNAME_ENV = "TURNOVER_STACK_WORKER_HOSTNAME"
HOSTNAME_CALLABLE = "tests.integration.airflow_stack.worker_hostname"
STAGE_LOGIN_SUFFIXES = {"loader": "loader", "transformer": "transformer", "quality_reader": "quality_reader"}
START_TIMEOUT_SECONDS = 240
# the same lock the test conftest takes: migrations create cluster-wide roles, one process at a time
MIGRATION_LOCK = "turnover-signals tests: migrate a template"

# Processes this interpreter started (the test runs the stack in-process): waited for on stop, no zombies.
_CHILDREN: dict[int, subprocess.Popen] = {}


def worker_hostname() -> str:
    """`[core] hostname_callable` of the stack's workers: the worker's Celery node name.

    Two workers on one machine would otherwise both report the machine's name as the `hostname` of the
    task instances they run; on separate hosts the name differs by itself."""
    return os.environ.get(WORKER_HOSTNAME_ENV) or socket.getfqdn()


# -- state ----------------------------------------------------------------------------------------


@dataclass
class Enterprise:
    employees: int = 300
    months: int = 3
    seed: int = 7
    snapshot_every_days: int = 28
    end_date: str = field(default_factory=lambda: (datetime.now(UTC).date() - timedelta(days=1)).isoformat())


@dataclass
class Stack:
    """A started stack, as recorded in `STATE/stack.json`."""

    state_dir: str
    stack_id: str
    api_url: str = ""
    admin_password: str = ""
    redis_port: int = 0
    metadata_db: str = ""
    warehouse_db: str = ""
    stage_logins: list[str] = field(default_factory=list)
    # name -> [pid, start time]: the leader of its process group, and when it started (a recorded pid
    # that now belongs to another process is never signalled)
    processes: dict[str, list[int]] = field(default_factory=dict)
    workers: dict[str, str] = field(default_factory=dict)  # name -> Celery node name / task hostname
    enterprise: dict[str, Any] = field(default_factory=dict)
    storage_base_url: str = ""
    started_at: str = ""
    start_seconds: float = 0.0

    @property
    def path(self) -> Path:
        return Path(self.state_dir)

    @property
    def log_dir(self) -> Path:
        return self.path / "logs"

    @property
    def task_log_dir(self) -> Path:
        return self.log_dir / "airflow"

    def warehouse_dsn(self) -> str:
        return dsn_for(self.warehouse_db)

    def save(self) -> None:
        path = self.path / STATE_FILE
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, state_dir: Path) -> Stack | None:
        path = Path(state_dir) / STATE_FILE
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def api(self) -> StackApi:
        return StackApi(self.api_url, ADMIN_USER, self.admin_password)

    def running(self) -> dict[str, bool]:
        return {name: _alive(*process) for name, process in self.processes.items()}

    def log_tails(self, lines: int = 40, names: Iterable[str] | None = None) -> str:
        """The last `lines` of each component's log (for a failure message)."""
        parts = []
        for name in names or self.processes:
            path = self.log_dir / f"{name}.log"
            if path.exists():
                tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
                parts.append(f"----- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)


# -- REST API -------------------------------------------------------------------------------------


class StackApi:
    """Airflow's public REST API as the admin: a bearer token from `POST /auth/token`, renewed on 401."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password
        self._token: str | None = None
        self.session = requests.Session()

    def token(self) -> str:
        if self._token is None:
            answer = self.session.post(
                f"{self.base_url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=30,
            )
            answer.raise_for_status()
            self._token = answer.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            answer = self.session.request(
                method,
                f"{self.base_url}/{path.lstrip('/')}",
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=30,
                **kwargs,
            )
            if answer.status_code == 401 and attempt == 1:
                self._token = None
                continue
            if answer.status_code >= 400:
                raise requests.HTTPError(
                    f"{method} {path}: {answer.status_code} {answer.text[:500]}", response=answer
                )
            return answer.json() if answer.content else None
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.request("POST", path, json=dict(body))

    def patch(self, path: str, body: Mapping[str, Any], **params: Any) -> Any:
        return self.request("PATCH", path, json=dict(body), params=params)


# -- helpers --------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: int) -> bool:
    """Whether the process `pid` that started at `started` (clock ticks after boot) still runs."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    stat = _proc_stat(pid)
    # gone, a zombie (exited, not reaped), or the pid now names another process
    return stat is not None and stat[0] != "Z" and int(stat[19]) == started


def _free_port() -> int:
    from turnover_demo.sample_servers.sftp_server import free_loopback_port

    return free_loopback_port()


def _spawn(stack: Stack, name: str, argv: list[str], env: Mapping[str, str], cwd: Path) -> int:
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    with open(stack.log_dir / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop ends it and whatever it started
        )
    _CHILDREN[process.pid] = process
    stack.processes[name] = [process.pid, int((_proc_stat(process.pid) or ["", *["0"] * 19])[19])]
    stack.save()
    return process.pid


def _wait_until(what: str, check: Any, stack: Stack, timeout: float, names: Iterable[str] = ()) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        # db-migrate is meant to exit
        dead = [name for name, alive in stack.running().items() if not alive and name != "db-migrate"]
        if dead:
            raise RuntimeError(
                f"stack: {', '.join(dead)} exited while waiting for {what}\n{stack.log_tails()}"
            )
        try:
            result = check()
        except (requests.RequestException, OSError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"stack: no {what} after {timeout:.0f} s\n{stack.log_tails(names=names or None)}"
            )
        time.sleep(1)


def base_env() -> dict[str, str]:
    """This process's environment without any Airflow or bundle setting (a test sets its own)."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "TURNOVER_", "PYTEST", "GX_")) and key != "PYTHONPATH"
    }


def airflow_env(
    stack: Stack,
    secrets_: Mapping[str, str],
    sources_env: Mapping[str, str],
    config_override: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The configuration every component shares (the compose file's `x-airflow-common` environment);
    `config_override` is merged over the `turnover_signals` Variable this sets."""
    from turnover_signals.config import deep_merge

    metadata = dsn_for(stack.metadata_db).split("://", 1)[1]
    host, port = stack.api_url.removeprefix("http://").split(":")
    airflow_api = {"conn_type": "http", "schema": "http", "host": host, "port": int(port)}
    airflow_api |= {"login": ADMIN_USER, "password": stack.admin_password}
    return base_env() | {
        "AIRFLOW_HOME": str(stack.path / "airflow-home"),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
            stack.path / "simple_auth_manager_passwords.json"
        ),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{metadata}",
        # the PostgreSQL is shared with the test suite (100 connections): small pools
        "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "4",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{stack.redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{metadata}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__CORE__FERNET_KEY": secrets_["fernet_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets_["jwt_secret"],
        "AIRFLOW__API__SECRET_KEY": secrets_["api_secret_key"],
        "AIRFLOW__API__BASE_URL": stack.api_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{stack.api_url}/execution/",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_DIR),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(stack.task_log_dir),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": secrets_["trigger_log_port"],
        "GX_ANALYTICS_ENABLED": "false",
        # the package, and this module for the workers' hostname_callable
        "PYTHONPATH": os.pathsep.join([str(PLUGINS_DIR), str(REPO_ROOT)]),
        **sources_env,
        "AIRFLOW_VAR_TURNOVER_SIGNALS": json.dumps(
            deep_merge(
                {
                    # the sample SFTP server receives no new files: a scheduled run skips at once, not after
                    # 6 h; small batches, so the small enterprise's first load still spreads over several
                    # mapped tasks
                    "hris": {"wait_for_files_minutes": 0, "files_per_task": 3},
                    "storage": {"base_url": stack.storage_base_url},
                },
                config_override or {},
            )
        ),
        # the features build writes a deferred date on its run's note through the REST API (run_note.py)
        "AIRFLOW_CONN_AIRFLOW_API": json.dumps(airflow_api),
    }


# -- the parts ------------------------------------------------------------------------------------


def generate_enterprise(state_dir: Path, enterprise: Enterprise) -> Path:
    """The enterprise under `STATE/enterprise`, generated again only when its parameters change."""
    out_dir = state_dir / "enterprise"
    stamp = out_dir / "stack-parameters.json"
    wanted = asdict(enterprise)
    if not (
        stamp.exists() and json.loads(stamp.read_text()) == wanted and (out_dir / "manifest.json").exists()
    ):
        shutil.rmtree(out_dir, ignore_errors=True)
        command = [sys.executable, "-m", "turnover_demo.synth", "--out", str(out_dir)]
        for name, value in wanted.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        env = base_env() | {"PYTHONPATH": os.pathsep.join([str(PLUGINS_DIR), str(REPO_ROOT)])}
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        stamp.write_text(json.dumps(wanted))
    os.chmod(out_dir / "sftp", 0o755)  # sshd's chroot refuses a group/world-writable root
    return out_dir


def prepare_warehouse(stack: Stack) -> dict[str, str]:
    """Migrate the warehouse and create one login per stage; returns their `AIRFLOW_CONN_*`."""
    import psycopg

    from turnover_signals.deploy.warehouse_logins import STAGES, create_stage_login
    from turnover_signals.warehouse import migrate

    def connection(login: str, password: str = "") -> str:
        host, port = postgres_service.server_address()
        fields = {"conn_type": "postgres", "host": host, "port": port, "schema": stack.warehouse_db}
        return json.dumps(fields | {"login": login, "password": password})

    owner = psycopg.conninfo.conninfo_to_dict(postgres_service.admin_dsn())
    env = {
        "AIRFLOW_CONN_WAREHOUSE_POSTGRES": connection(
            owner.get("user") or "postgres", owner.get("password") or ""
        )
    }
    with (
        psycopg.connect(postgres_service.admin_dsn(), autocommit=True) as lock,
        psycopg.connect(stack.warehouse_dsn(), autocommit=True) as conn,
    ):
        lock.execute("select pg_advisory_lock(hashtext(%s))", (MIGRATION_LOCK,))
        migrate(conn)
        lock.execute("select pg_advisory_unlock(hashtext(%s))", (MIGRATION_LOCK,))
        for stage_name, suffix in STAGE_LOGIN_SUFFIXES.items():
            login, password = f"ts_stack_{stack.stack_id}_{suffix}", secrets.token_urlsafe(18)
            create_stage_login(conn, login, stage_name, password)
            stack.stage_logins.append(login)
            env[f"AIRFLOW_CONN_{STAGES[stage_name].config_key.upper()}"] = connection(login, password)
    env["AIRFLOW_CONN_ANALYTICS_PSEUDONYM"] = json.dumps(
        {"conn_type": "generic", "password": secrets.token_hex(24)}
    )
    return env


def serve_sources(state_dir: Path, data_dir: Path) -> int:
    """(The `sources` process.) The sample SFTP and LMS servers on loopback until SIGTERM; their
    connections go to `STATE/sources.json` (0600)."""
    from turnover_demo.sample_servers.lms_server import LmsSampleServer
    from turnover_demo.sample_servers.sftp_server import SftpSampleServer

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    lms_credentials = ("lrs", secrets.token_urlsafe(18))
    with (
        SftpSampleServer(data_dir / "sftp", state_dir=state_dir / "sftp-state") as sftp,
        LmsSampleServer(
            data_dir, xapi_credentials=lms_credentials, scim_token=secrets.token_urlsafe(18)
        ) as lms,
    ):
        path = state_dir / "sources.json"
        path.touch(mode=0o600, exist_ok=True)
        os.chmod(path, 0o600)
        summary = {"sftp": f"{sftp.backend} on 127.0.0.1:{sftp.port}", "lms": lms.base_url}
        env = {**sftp.airflow_connection_env(), **lms.airflow_connections_env()}
        path.write_text(json.dumps({"summary": summary, "env": env}), encoding="utf-8")
        print(f"sample sources ready: {summary}", flush=True)
        stop.wait()
    return 0


def _redis_answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(16).startswith(b"+PONG")


def _celery_ready(stack: Stack, worker: str) -> bool:
    return " ready." in (stack.log_dir / f"{worker}.log").read_text(encoding="utf-8", errors="replace")


def _components_healthy(api: StackApi) -> bool:
    health = requests.get(f"{api.base_url}/api/v2/monitor/health", timeout=5).json()
    return all(
        (health.get(part) or {}).get("status") == "healthy"
        for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
    )


def _dags_parsed(api: StackApi) -> bool:
    dags = {dag["dag_id"] for dag in api.get("api/v2/dags", limit=100)["dags"]}
    return set(PIPELINE_DAGS) <= dags


# -- statements stored while the stack runs -------------------------------------------------------------

LEARNING_VERBS = ("launched", "completed", "passed", "failed", "scored")


def learning_statement(
    learner: str = "u-1", verb: str = "completed", course: int = 1, statement_id: str | None = None
) -> dict[str, Any]:
    """An xAPI 1.0.3 statement a learner's LMS sends now (no `stored`: the LRS sets it), for tests and
    benchmarks that store statements in a running `LmsSampleServer` (`add_statements`)."""
    home = "https://lms.northwind.example"
    return {
        "id": statement_id or str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "account": {"homePage": home, "name": learner}},
        "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}", "display": {"en-US": verb}},
        "object": {
            "objectType": "Activity",
            "id": f"{home}/courses/C-{course:03d}",
            "definition": {"name": {"en-US": f"Course {course}"}},
        },
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "version": "1.0.3",
    }


# -- start / stop ---------------------------------------------------------------------------------


def start(
    state_dir: Path = DEFAULT_STATE_DIR,
    enterprise: Enterprise | None = None,
    workers: int = 2,
    storage_base_url: str | None = None,
    *,
    source_connections: Mapping[str, str] | None = None,
    config_override: Mapping[str, Any] | None = None,
) -> Stack:
    """Start the whole stack under `state_dir` and return once every component is up and the six DAGs are
    parsed. Refuses when a stack recorded there still runs.

    `source_connections` (``AIRFLOW_CONN_*``) replace connections of the sample sources: a test that stores
    statements while the stack runs passes its own `LmsSampleServer.airflow_connections_env()`.
    `config_override` is merged over the `turnover_signals` Variable of every component."""
    started = time.monotonic()
    state_dir = Path(state_dir).resolve()
    previous = Stack.load(state_dir)
    if previous is not None and any(previous.running().values()):
        raise RuntimeError(f"a stack is already running from {state_dir}: stop it first")
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / ".gitignore").write_text("*\n")
    for stale in ("stack.json", "sources.json", "simple_auth_manager_passwords.json"):
        (state_dir / stale).unlink(missing_ok=True)
    enterprise = enterprise or Enterprise()
    stack = Stack(state_dir=str(state_dir), stack_id=secrets.token_hex(3), enterprise=asdict(enterprise))
    stack.metadata_db = f"ts_stack_{stack.stack_id}_airflow"
    stack.warehouse_db = f"ts_stack_{stack.stack_id}_warehouse"
    stack.admin_password = secrets.token_urlsafe(12)
    stack.redis_port = _free_port()
    stack.api_url = f"http://127.0.0.1:{_free_port()}"
    stack.storage_base_url = storage_base_url or (state_dir / "object-store").as_uri()
    stack.started_at = datetime.now(UTC).isoformat(timespec="seconds")
    stack.save()
    try:
        _start_parts(stack, enterprise, workers, source_connections or {}, config_override or {})
    except BaseException:
        stop(state_dir)
        raise
    stack.start_seconds = round(time.monotonic() - started, 1)
    stack.save()
    return stack


def _start_parts(
    stack: Stack,
    enterprise: Enterprise,
    workers: int,
    source_connections: Mapping[str, str],
    config_override: Mapping[str, Any],
) -> None:
    from cryptography.fernet import Fernet

    state_dir = stack.path
    secrets_ = {
        "fernet_key": Fernet.generate_key().decode(),
        "jwt_secret": secrets.token_urlsafe(32),
        "api_secret_key": secrets.token_urlsafe(32),
        "trigger_log_port": str(_free_port()),
    }
    passwords = state_dir / "simple_auth_manager_passwords.json"
    passwords.touch(mode=0o600, exist_ok=True)
    passwords.write_text(json.dumps({ADMIN_USER: stack.admin_password}))

    (state_dir / "redis").mkdir(exist_ok=True)
    redis = "redis-server --bind 127.0.0.1 --protected-mode yes --appendonly no --daemonize no".split()
    redis += ["--port", str(stack.redis_port), "--dir", str(state_dir / "redis"), "--save", ""]
    _spawn(stack, "redis", redis, base_env(), state_dir)
    _wait_until("redis", lambda: _redis_answers(stack.redis_port), stack, 30, ["redis"])
    for database in (stack.metadata_db, stack.warehouse_db):
        admin_execute(f'create database "{database}"')

    # Airflow's metadata DB migrates (the slowest step) while the sources and the warehouse get ready.
    common = airflow_env(stack, secrets_, {})
    Path(common["AIRFLOW_HOME"]).mkdir(exist_ok=True)
    _spawn(stack, "db-migrate", [sys.executable, "-m", "airflow", "db", "migrate"], common, state_dir)
    data_dir = generate_enterprise(state_dir, enterprise)
    sources_command = [sys.executable, "-m", "tests.integration.airflow_stack", "serve-sources"]
    sources_env = base_env() | {"PYTHONPATH": common["PYTHONPATH"]}
    _spawn(stack, "sources", [*sources_command, str(state_dir), str(data_dir)], sources_env, REPO_ROOT)
    warehouse_env = prepare_warehouse(stack)
    stack.save()
    sources = state_dir / "sources.json"
    _wait_until(
        "sample sources", lambda: sources.exists() and sources.stat().st_size > 0, stack, 60, ["sources"]
    )
    migrate_pid = stack.processes["db-migrate"][0]
    _wait_until(
        "airflow db migrate", lambda: _CHILDREN[migrate_pid].poll() is not None, stack, 180, ["db-migrate"]
    )
    if (code := _CHILDREN[migrate_pid].returncode) != 0:
        raise RuntimeError(f"airflow db migrate failed ({code})\n{stack.log_tails(names=['db-migrate'])}")
    del stack.processes["db-migrate"]

    env = airflow_env(
        stack,
        secrets_,
        json.loads(sources.read_text())["env"] | dict(source_connections) | warehouse_env,
        config_override,
    )
    port = stack.api_url.rsplit(":", 1)[1]
    airflow = [sys.executable, "-m", "airflow"]
    _spawn(
        stack,
        "api-server",
        [*airflow, "api-server", "--host", "127.0.0.1", "--port", port, "--workers", "1"],
        env,
        state_dir,
    )
    for component in ("scheduler", "dag-processor", "triggerer"):
        _spawn(stack, component, [*airflow, component], env, state_dir)
    host = socket.gethostname()
    for number in range(1, workers + 1):
        name, home = f"worker-{number}", state_dir / f"worker-{number}"
        (home / "data").mkdir(parents=True, exist_ok=True)
        node = f"stack-worker-{number}@{host}"
        stack.workers[name] = node
        worker_env = env | {
            "AIRFLOW_HOME": str(home),
            "TURNOVER_DATA_DIR": str(home / "data"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
            WORKER_HOSTNAME_ENV: node,
        }
        # No log server: the api-server reads the shared task log folder (ports would collide on one host).
        _spawn(
            stack,
            name,
            [*airflow, "celery", "worker", "--celery-hostname", node, "--skip-serve-logs"],
            worker_env,
            home,
        )
    api = stack.api()
    _wait_until(
        "api-server",
        lambda: requests.get(f"{stack.api_url}/api/v2/version", timeout=2).ok,
        stack,
        START_TIMEOUT_SECONDS,
        ["api-server"],
    )
    _wait_until(
        "healthy scheduler, triggerer and dag-processor",
        lambda: _components_healthy(api),
        stack,
        START_TIMEOUT_SECONDS,
        ["scheduler", "triggerer", "dag-processor"],
    )
    for name in stack.workers:
        _wait_until(
            f"{name} ready",
            lambda name=name: _celery_ready(stack, name),
            stack,
            START_TIMEOUT_SECONDS,
            [name],
        )
    _wait_until(
        "the six DAGs parsed", lambda: _dags_parsed(api), stack, START_TIMEOUT_SECONDS, ["dag-processor"]
    )


def _end_process(pid: int, started: int, timeout: float = 30) -> None:
    """SIGTERM to the process (graceful: a Celery worker ends its running tasks), then SIGKILL to its
    group."""
    if _alive(pid, started):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid, started) and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            os.killpg(pid, signal.SIGKILL)  # whatever it started and left behind (the group is its own)
        except (ProcessLookupError, PermissionError):
            pass
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=10)


def stop(state_dir: Path = DEFAULT_STATE_DIR) -> Stack | None:
    """End the stack's processes (workers first, the sources and the broker last), drop its databases
    and stage logins; the logs stay."""
    stack = Stack.load(Path(state_dir).resolve())
    if stack is None:
        return None
    last = [name for name in ("sources", "redis") if name in stack.processes]
    for batch in ([name for name in stack.processes if name not in last], last):  # each batch in parallel
        threads = [threading.Thread(target=_end_process, args=stack.processes[name]) for name in batch]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    stack.processes = {}
    for database in (stack.metadata_db, stack.warehouse_db):
        if database:
            admin_execute(f'drop database if exists "{database}" with (force)')
    for login in stack.stage_logins:
        admin_execute(f'drop role if exists "{login}"')
    stack.stage_logins = []
    stack.save()
    return stack


def status_lines(stack: Stack) -> list[str]:
    running = stack.running()
    lines = [
        f"Airflow UI: {stack.api_url}   user: {ADMIN_USER}   password: {stack.admin_password}",
        f"  (also in {stack.path / 'simple_auth_manager_passwords.json'})",
        f"warehouse: {stack.warehouse_dsn()}   metadata DB: {stack.metadata_db}   redis: "
        f"127.0.0.1:{stack.redis_port}",
    ]
    sources = stack.path / "sources.json"
    if sources.exists() and sources.stat().st_size:
        summary = json.loads(sources.read_text())["summary"]
        lines.append(f"sample sources: SFTP {summary['sftp']}, LMS {summary['lms']}")
    lines.append(f"enterprise: {stack.enterprise}")
    lines.append(f"object storage (storage.base_url): {stack.storage_base_url}")
    for name, (pid, _) in stack.processes.items():
        extra = f"  (celery node / task hostname {stack.workers[name]})" if name in stack.workers else ""
        lines.append(f"  {name:<14} pid {pid:<8} {'up' if running[name] else 'DOWN'}{extra}")
    lines.append(f"logs: {stack.log_dir}/ (task logs in {stack.task_log_dir}/)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.integration.airflow_stack", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser(
        "start", help="start the stack and print the UI URL and admin password"
    )
    for name, value in asdict(Enterprise(end_date="")).items():
        if name != "end_date":
            start_parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)
    start_parser.add_argument(
        "--end-date", type=date.fromisoformat, default=None, help="default: yesterday (UTC)"
    )
    start_parser.add_argument("--storage-base-url", help="default: file://STATE/object-store")
    for command in (start_parser, commands.add_parser("status"), commands.add_parser("stop")):
        command.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    sources_parser = commands.add_parser("serve-sources", help=argparse.SUPPRESS)
    sources_parser.add_argument("state_dir", type=Path)
    sources_parser.add_argument("data_dir", type=Path)
    args = parser.parse_args(argv)

    if args.command == "serve-sources":
        return serve_sources(args.state_dir, args.data_dir)
    if args.command == "start":
        parameters = {
            name: getattr(args, name) for name in ("employees", "months", "seed", "snapshot_every_days")
        }
        if args.end_date:
            parameters["end_date"] = args.end_date.isoformat()
        stack = start(args.state_dir, Enterprise(**parameters), storage_base_url=args.storage_base_url)
        print(f"stack up in {stack.start_seconds:.0f} s", *status_lines(stack), sep="\n")
        print(f"stop it with: make stack-stop (python -m {__spec__.name} stop --state-dir {args.state_dir})")
        return 0
    stack = Stack.load(args.state_dir.resolve())
    if stack is None:
        print(f"no stack recorded in {args.state_dir}")
        return 1 if args.command == "status" else 0
    if args.command == "status":
        print(*status_lines(stack), sep="\n")
        return 0 if all(stack.running().values()) else 1
    stop(args.state_dir)
    print(
        f"stack {stack.stack_id} stopped; databases and stage logins dropped; logs kept in {stack.log_dir}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
