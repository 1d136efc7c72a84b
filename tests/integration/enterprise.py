"""Load a generated enterprise into a warehouse through the bundle's real ingest paths.

The HRIS files travel from the real sshd through `ingest_file` (GX gate, publish), the SCIM
users and xAPI statements from the sample LMS server through `extract_users` and
`extract_statements`; nothing is written to the warehouse behind the pipeline's back.
Usable from tests and from a shell:

    PYTHONPATH=plugins python -m tests.integration.enterprise DSN OUT_DIR [--snapshot-every-days 28]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from turnover_signals.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
# for the child processes (the generator, the HRIS load): the bundle's package and this test package
CHILD_ENV = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)])}
DEMO_ENTERPRISE = {
    "employees": 2000,
    "months": 24,
    "seed": 7,
    "snapshot_every_days": 28,
    "end_date": "2026-10-31",
}


def generate(out_dir: Path, **overrides: Any) -> Path:
    """Generate the demo enterprise (or a variant) into `out_dir` unless already there."""
    parameters = {**DEMO_ENTERPRISE, **overrides}
    if not (out_dir / "manifest.json").exists():
        command = [sys.executable, "-m", "turnover_demo.synth", "--out", str(out_dir)]
        for name, value in parameters.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        subprocess.run(command, check=True, env=os.environ | CHILD_ENV, stdout=subprocess.DEVNULL)
    os.chmod(out_dir / "sftp", 0o755)  # sshd's chroot refuses a group/world-writable root
    return out_dir


@contextmanager
def source_servers(data_dir: Path):
    """The sample SFTP and LMS servers on `data_dir`, with their Airflow connections in the environment."""
    from turnover_demo.sample_servers.lms_server import LmsSampleServer
    from turnover_demo.sample_servers.sftp_server import SftpSampleServer

    with SftpSampleServer(data_dir / "sftp") as sftp, LmsSampleServer(data_dir) as lms:
        with mock.patch.dict(os.environ, {**sftp.airflow_connection_env(), **lms.airflow_connections_env()}):
            yield sftp, lms


def load_enterprise(dsn: str, data_dir: Path, config: dict | None = None) -> dict[str, Any]:
    """Ingest every HRIS file, the SCIM directory and every statement of `data_dir` into `dsn`.

    The HRIS side loads in a child process while this one loads the LMS side: both clients are
    bound by Python (validation, parsing), and the two sides touch different tables, as the two
    ingest DAGs do when they run at the same time.
    """
    config = config or load_config(use_variable=False)
    with source_servers(data_dir), tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "config.json").write_text(json.dumps(config), encoding="utf-8")
        # Files, not pipes: the child logs a lot, and a full pipe would stall it while this process is busy.
        with (
            open(scratch / "out", "w+", encoding="utf-8") as out,
            open(scratch / "err", "w+", encoding="utf-8") as err,
        ):
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.enterprise",
                    dsn,
                    "--hris-only",
                    str(scratch / "config.json"),
                ],
                cwd=REPO_ROOT,
                env=os.environ | CHILD_ENV,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
            try:
                lms = load_lms(dsn, config)
            finally:
                child.wait()
            out.seek(0), err.seek(0)
            if child.returncode != 0:
                raise RuntimeError(
                    f"the HRIS load of {data_dir} failed (exit {child.returncode}):\n{err.read()[-3000:]}"
                )
            hris = json.loads(out.read().strip().splitlines()[-1])
    return {**hris, **lms}


def load_hris(dsn: str, config: dict) -> dict[str, Any]:
    """Every pending HRIS file from the SFTP server of `source_servers`, then the point-in-time history."""
    from turnover_signals.hris.history import build_employee_history
    from turnover_signals.hris.ingest import ingest_file, list_pending_files

    results = [ingest_file(remote, config, dsn=dsn) for remote in list_pending_files(config, dsn=dsn)]
    return {"hris_files": len(results), "history": build_employee_history(config, dsn=dsn)}


def load_lms(dsn: str, config: dict) -> dict[str, Any]:
    """The course catalog, the SCIM directory and every statement from the LMS of `source_servers`."""
    from turnover_signals.lms.catalog import load_course_catalog
    from turnover_signals.lms.statements import extract_statements
    from turnover_signals.lms.users import extract_users

    load_course_catalog(config, dsn=dsn)
    return {"users": extract_users(config, dsn=dsn), "statements": extract_statements(config, dsn=dsn)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dsn")
    parser.add_argument("out_dir", type=Path, nargs="?")
    parser.add_argument("--snapshot-every-days", type=int, default=DEMO_ENTERPRISE["snapshot_every_days"])
    parser.add_argument(
        "--hris-only",
        metavar="CONFIG_JSON",
        help="(for load_enterprise) load HRIS from the SFTP connection in the environment with the"
        " configuration in this JSON file, and print the result as JSON",
    )
    args = parser.parse_args()
    if args.hris_only:
        config = json.loads(Path(args.hris_only).read_text(encoding="utf-8"))
        print(json.dumps(load_hris(args.dsn, config), default=str))
        return
    generate(args.out_dir, snapshot_every_days=args.snapshot_every_days)
    print(load_enterprise(args.dsn, args.out_dir))


if __name__ == "__main__":
    main()
