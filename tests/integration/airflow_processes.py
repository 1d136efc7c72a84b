"""Airflow's own processes started natively for tests: today the API server, on the test's metadata DB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from turnover_demo.sample_servers.sftp_server import free_loopback_port

START_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class ApiServer:
    base_url: str
    users: Mapping[str, str]  # username -> password
    log_path: Path

    def connection(self, username: str, password: str | None = None) -> str:
        """An `airflow_api` connection (JSON, for `AIRFLOW_CONN_AIRFLOW_API`) logging in as `username`."""
        host, port = self.base_url.removeprefix("http://").split(":")
        password = self.users[username] if password is None else password
        fields = {"conn_type": "http", "schema": "http", "host": host, "port": int(port)}
        return json.dumps(fields | {"login": username, "password": password})

    def token(self, username: str) -> str:
        answer = requests.post(
            f"{self.base_url}/auth/token",
            json={"username": username, "password": self.users[username]},
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json()["access_token"]

    def get(self, path: str, username: str = "admin") -> dict:
        answer = requests.get(
            f"{self.base_url}/{path}", headers={"Authorization": f"Bearer {self.token(username)}"}, timeout=30
        )
        answer.raise_for_status()
        return answer.json()

    def patch(self, path: str, body: dict, username: str = "admin", **params: str) -> dict:
        answer = requests.patch(
            f"{self.base_url}/{path}",
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {self.token(username)}"},
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json()


@contextmanager
def api_server(work_dir: Path, roles: Mapping[str, str]) -> Iterator[ApiServer]:
    """`airflow api-server` on a free loopback port, on the metadata DB this process is configured with,
    with Airflow's simple auth manager and one user per entry of `roles` (username -> ADMIN, OP, USER or
    VIEWER), each with a password of its own."""
    work_dir.mkdir(parents=True, exist_ok=True)
    users = {name: f"{name}-{os.urandom(6).hex()}" for name in roles}
    passwords_file = work_dir / "simple_auth_manager_passwords.json"
    passwords_file.write_text(json.dumps(users))
    port = free_loopback_port()
    env = os.environ | {
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
            f"{name}:{role}" for name, role in roles.items()
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
    }
    log_path = work_dir / "api-server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow",
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ApiServer(f"http://127.0.0.1:{port}", users, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"airflow api-server exited ({process.returncode}): {log_path.read_text()[-3000:]}"
                )
            try:
                if requests.get(f"{server.base_url}/api/v2/version", timeout=2).status_code < 500:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"airflow api-server did not answer in {START_TIMEOUT_SECONDS} s: {log_path}"
                )
            time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
