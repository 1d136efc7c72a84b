"""The compose `demo` profile's sources: a generated enterprise behind the sample SFTP and LMS servers.

    python -m turnover_demo.demo_sources --state-dir DIR

Generates the enterprise once (`DEMO_EMPLOYEES`, default 2000), makes up the LMS credentials once
(kept in DIR, mode 0600), starts both servers on all interfaces (SFTP 2222 with a generated,
pinned host key; LMS 8000), writes the Airflow connections for them to `DIR/connections.json`
(0600; the `demo-connections` service imports it) and touches `DIR/ready`. Nothing secret is
printed. Serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

SFTP_PORT = 2222
LMS_PORT = 8000


def write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    os.chmod(path, 0o600)
    path.write_text(text, encoding="utf-8")


def ensure_enterprise(data_dir: Path, employees: int) -> None:
    if (data_dir / "manifest.json").exists():
        return
    subprocess.run(
        [
            sys.executable,
            "-m",
            "turnover_demo.synth",
            "--out",
            str(data_dir),
            "--employees",
            str(employees),
        ],
        check=True,
    )
    os.chmod(data_dir / "sftp", 0o755)


def ensure_credentials(state_dir: Path) -> dict[str, str]:
    path = state_dir / "lms_credentials.json"
    if not path.exists():
        write_private(
            path,
            json.dumps({"xapi_password": secrets.token_urlsafe(24), "scim_token": secrets.token_urlsafe(24)}),
        )
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m turnover_demo.demo_sources")
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    from turnover_demo.sample_servers.lms_server import LmsSampleServer
    from turnover_demo.sample_servers.sftp_server import SftpSampleServer

    state_dir: Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "ready").unlink(missing_ok=True)
    data_dir = state_dir / "data"
    ensure_enterprise(data_dir, int(os.environ.get("DEMO_EMPLOYEES", "2000")))
    credentials = ensure_credentials(state_dir)
    advertised_host = os.environ.get("DEMO_SOURCES_HOST", "demo-sources")

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sftp = SftpSampleServer(
        data_dir / "sftp",
        host="0.0.0.0",
        port=SFTP_PORT,
        state_dir=state_dir / "sftp",  # noqa: S104
        backend="asyncssh",
    )
    lms = LmsSampleServer(
        data_dir,
        host="0.0.0.0",
        port=LMS_PORT,  # noqa: S104 - reached from other containers
        xapi_credentials=("lrs", credentials["xapi_password"]),
        scim_token=credentials["scim_token"],
    )
    with sftp, lms:
        connections = {"hris_sftp": sftp.airflow_connection(), **lms.airflow_connections()}
        for connection in connections.values():
            connection["host"] = advertised_host
        write_private(state_dir / "connections.json", json.dumps(connections))
        (state_dir / "ready").touch()
        print(
            f"demo sources ready: SFTP {advertised_host}:{SFTP_PORT}, LMS http://{advertised_host}:{LMS_PORT}",
            flush=True,
        )
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
