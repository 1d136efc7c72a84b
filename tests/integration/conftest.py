"""Fixtures that start the sample source servers for integration tests.

Servers (session-scoped, shared by every integration test; start lazily on first use):

- `sftp_server`: `SftpSampleServer` on a temporary root built by `build_sftp_root` with the
  default `sample_hris_files()` (employees and compensation snapshots for 20240131 with `.ctl`
  sidecars under /outbound/hris). Real OpenSSH sshd when running as root, asyncssh otherwise.
  `sftp_server.root_dir` is live for the "direct"/"bind" strategies; with "mirror" call
  `sftp_server.sync()` after changing it.
- `lms_server`: `LmsSampleServer` on a temporary data dir holding `sample_statements()` (120
  statements, three sharing each stored time, plus 3 voiding statements) and `sample_users()` (25).

Shared servers must stay as the next test expects them: a test that adds data, arms faults or
stops/pauses a server should use the factories instead (`sftp_server_factory`,
`lms_server_factory`), whose servers are private and closed after the test.

Connections: `hris_sftp_connection` / `lms_connections` put `AIRFLOW_CONN_HRIS_SFTP`,
`AIRFLOW_CONN_LMS_API` and `AIRFLOW_CONN_LMS_DIRECTORY` into the environment (monkeypatch, so
undone after the test) and return the connection dicts.

Airflow reads its home at import: a throwaway AIRFLOW_HOME is set here unless the root conftest
(or the caller) already set one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from turnover_demo.sample_servers.lms_server import LmsSampleServer
from turnover_demo.sample_servers.sample_data import build_sftp_root, sample_hris_files, write_lms_data
from turnover_demo.sample_servers.sftp_server import SftpSampleServer

# Before any test module imports airflow (nothing above does).
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@pytest.fixture(scope="session", autouse=True)
def _roles_before_any_migration(migrated_template_db: str) -> None:
    """Every integration test starts after this process migrated its template, under the lock that
    keeps test processes from creating the cluster-wide roles at once; a test that migrates a database
    of its own then finds them."""


@pytest.fixture(scope="session")
def make_sftp_root(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``make_sftp_root(files=None, name="sftp-root") -> Path``.

    `files` maps remote paths ("/outbound/hris/x.csv") to bytes or text; None means
    `sample_hris_files()`. Returns a new directory laid out as the vendor's SFTP tree.
    """

    def make(files: Mapping[str, bytes | str] | None = None, name: str = "sftp-root") -> Path:
        return build_sftp_root(tmp_path_factory.mktemp(name), files)

    return make


@pytest.fixture(scope="session")
def sftp_sample_files() -> dict[str, bytes]:
    """Remote path -> content of the files the shared `sftp_server` serves."""
    return sample_hris_files()


@pytest.fixture(scope="session")
def sftp_server(
    make_sftp_root: Callable[..., Path], sftp_sample_files: dict[str, bytes]
) -> Iterator[SftpSampleServer]:
    """The shared sample SFTP server (backend "auto"); do not stop, pause or change it."""
    with SftpSampleServer(make_sftp_root(sftp_sample_files)) as server:
        yield server


@pytest.fixture(scope="module")
def sftp_drop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpSampleServer]:
    """A sample SFTP server whose HRIS drop directory starts empty (the tests deliver their own files)."""
    root = tmp_path_factory.mktemp("sftp-root")
    (root / "outbound" / "hris").mkdir(parents=True)
    with SftpSampleServer(root) as server:
        yield server


@pytest.fixture
def hris_dir(sftp_drop: SftpSampleServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The drop directory of `sftp_drop`, emptied, with the Airflow connection pointing at it."""
    directory = sftp_drop.root_dir / "outbound" / "hris"
    for entry in directory.iterdir():
        entry.unlink()
    for key, value in sftp_drop.airflow_connection_env().items():
        monkeypatch.setenv(key, value)
    return directory


@pytest.fixture
def sftp_server_factory(make_sftp_root: Callable[..., Path]) -> Iterator[Callable[..., SftpSampleServer]]:
    """Factory for private, started SFTP servers: ``factory(files=None, backend="auto", root_dir=None)``."""
    servers: list[SftpSampleServer] = []

    def start(
        files: Mapping[str, bytes | str] | None = None,
        backend: str = "auto",
        root_dir: str | os.PathLike[str] | None = None,
    ) -> SftpSampleServer:
        server = SftpSampleServer(root_dir or make_sftp_root(files), backend=backend)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def hris_sftp_connection(monkeypatch: pytest.MonkeyPatch, sftp_server: SftpSampleServer) -> dict[str, Any]:
    """Point the `hris_sftp` Airflow connection at the shared SFTP server (host key pinned)."""
    for name, value in sftp_server.airflow_connection_env().items():
        monkeypatch.setenv(name, value)
    return sftp_server.airflow_connection()


@pytest.fixture(scope="session")
def lms_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the default sample statements and users (``lms/*.jsonl``)."""
    return write_lms_data(tmp_path_factory.mktemp("lms-data"))


@pytest.fixture(scope="session")
def lms_server(lms_data_dir: Path) -> Iterator[LmsSampleServer]:
    """The shared sample LMS (xAPI + SCIM); do not add data or arm faults on it."""
    with LmsSampleServer(lms_data_dir) as server:
        yield server


@pytest.fixture
def lms_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LmsSampleServer]]:
    """Factory for private, started LMS servers.

    ``factory(statements=None, users=None, data_dir=None, **server_kwargs)``: writes the given
    (default: sample) statements and users to a new data dir unless `data_dir` is given.
    """
    servers: list[LmsSampleServer] = []

    def start(
        statements: list[dict[str, Any]] | None = None,
        users: list[dict[str, Any]] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        **server_kwargs: Any,
    ) -> LmsSampleServer:
        if data_dir is None:
            data_dir = write_lms_data(tmp_path_factory.mktemp("lms-data"), statements, users)
        server = LmsSampleServer(data_dir, **server_kwargs)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def lms_connections(
    monkeypatch: pytest.MonkeyPatch, lms_server: LmsSampleServer
) -> dict[str, dict[str, Any]]:
    """Point the `lms_api` and `lms_directory` Airflow connections at the shared LMS."""
    for name, value in lms_server.airflow_connections_env().items():
        monkeypatch.setenv(name, value)
    return lms_server.airflow_connections()
