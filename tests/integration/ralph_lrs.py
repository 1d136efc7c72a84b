"""Ralph (ralph-malph 5.1.0), the open-source LRS, started natively on a loopback port for the LMS tests.

Ralph runs from its own venv (`.venv-ralph`, made by `make ralph`; `RALPH_BIN` overrides the path) with the
file-system backend: statements live in one JSON-lines file. Its fs backend creates that file on the first
POST and refuses every later one (a second POST answers 500), so `post` is for the first load and
`append_stored` adds later arrivals the way the backend writes them: one statement per line, `stored` set
by the LRS at arrival (now) and an `authority` of the posting user.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
RALPH_BIN = Path(os.environ.get("RALPH_BIN", REPO / ".venv-ralph" / "bin" / "ralph"))
LOGIN, PASSWORD = "probe", "probe-secret"
AGENT = {"mbox": "mailto:probe@example.com", "objectType": "Agent"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RalphLrs:
    """One Ralph server over a private data directory."""

    def __init__(self, workdir: Path):
        if not RALPH_BIN.exists():
            raise RuntimeError(f"Ralph is not installed at {RALPH_BIN}: run `make ralph` (make test does it)")
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/xAPI"
        self._env = {
            **os.environ,
            "RALPH_APP_DIR": str(workdir / "app"),
            "RALPH_AUTH_FILE": str(workdir / "auth.json"),
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def lrs_file(self) -> Path:
        return self.data_dir / "fs_lrs.jsonl"

    def start(self) -> RalphLrs:
        subprocess.run(
            [str(RALPH_BIN), "auth", "-u", LOGIN, "-p", PASSWORD, "-s", "all", "-M", AGENT["mbox"], "-w"],
            env=self._env,
            check=True,
            capture_output=True,
        )
        self._log = open(self.workdir / "ralph.log", "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [
                str(RALPH_BIN),
                "runserver",
                "-b",
                "fs",
                "--fs-default-directory-path",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"Ralph exited at start: {(self.workdir / 'ralph.log').read_text()[-2000:]}"
                )
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/whoami", auth=(LOGIN, PASSWORD), timeout=5).ok:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or still importing its first request's handlers on a busy machine
            time.sleep(0.2)
        raise RuntimeError("Ralph did not answer within 60 s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._log.close()
            self._process = None

    def post(self, statements: list[dict[str, Any]]) -> None:
        """The first load, through the API (Ralph sets `stored`)."""
        response = requests.post(
            f"{self.base_url}/statements",
            json=statements,
            auth=(LOGIN, PASSWORD),
            headers={"X-Experience-API-Version": "1.0.3"},
            timeout=30,
        )
        response.raise_for_status()

    def append_stored(self, statements: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Later arrivals, stored now as Ralph's fs backend stores a POST (see the module docstring)."""
        stored = []
        with open(self.lrs_file, "a", encoding="utf-8") as handle:
            for statement in statements:
                body = {**statement, "stored": datetime.now(UTC).isoformat(), "authority": AGENT}
                handle.write(json.dumps(body) + "\n")
                stored.append(body)
                time.sleep(0.001)  # distinct stored times, as arrivals have
        return stored

    def airflow_connections_env(self) -> dict[str, str]:
        connection = {
            "conn_type": "http",
            "host": "127.0.0.1",
            "port": self.port,
            "schema": "http",
            "login": LOGIN,
            "password": PASSWORD,
            "extra": {"base_path": "/xAPI"},
        }
        return {"AIRFLOW_CONN_LMS_API": json.dumps(connection)}
