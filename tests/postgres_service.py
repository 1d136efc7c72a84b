"""Where the tests' PostgreSQL comes from: one admin DSN, and every DSN the tests derive from it.

The admin DSN is the superuser connection the fixtures create and drop their databases with. Chosen
once per pytest run, by the controlling process (`use_available_server`, from tests/conftest.py), and
handed to pytest-xdist workers and to every subprocess through `TURNOVER_TEST_ADMIN_DSN`:

1. `TURNOVER_TEST_ADMIN_DSN`, when set, as given: a server you chose that does not answer is an error,
   not a reason to start another one. A URL `postgresql://user[:<password>]@host[:port]/database`, or
   the same as libpq key=value pairs; set anything else (sslmode, ...) through libpq's `PG*` variables.
2. Otherwise `postgresql://postgres@127.0.0.1:5432/postgres`, when it answers without a password.
3. Otherwise an embedded PostgreSQL from the pgserver wheel (the demo's warehouse): initialised in a
   temporary directory, listening on a free loopback port, stopped and deleted when the run ends.

    PYTHONPATH=plugins python -m tests.postgres_service check

prints which of these a test run would use, without starting anything (scripts/ensure_test_services.sh).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

ADMIN_DSN_ENV = "TURNOVER_TEST_ADMIN_DSN"
DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Everything a derived DSN carries over from the admin DSN. Tests take a derived DSN apart as a URL
# (the database is what follows the last "/"), so a query string cannot ride along.
_URL_PARTS = {"host", "port", "user", "password", "dbname"}
# A fresh initdb plus start takes a few seconds on two cores; a loaded machine needs more.
EMBEDDED_START_TIMEOUT_SECONDS = 60
# postgres refuses to run as root; pgserver runs it as this system user then (and creates it).
EMBEDDED_SYSTEM_USER = "pgserver"


def admin_dsn() -> str:
    """The tests' admin DSN, as a URL: `TURNOVER_TEST_ADMIN_DSN` or the default, read at call time."""
    return dsn_for(database=None, dsn=os.environ.get(ADMIN_DSN_ENV) or DEFAULT_ADMIN_DSN)


def _dsn_parts(dsn: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    parts = {key: str(value) for key, value in conninfo_to_dict(dsn).items() if value is not None}
    unsupported = sorted(set(parts) - _URL_PARTS)
    if unsupported:
        raise ValueError(
            f"{ADMIN_DSN_ENV}: {', '.join(unsupported)} cannot be carried into the per-test databases' URLs; "
            "keep host, port, user, password and database in it and set the rest as libpq PG* variables"
        )
    return parts


def dsn_for(
    database: str | None, *, user: str | None = None, password: str | None = None, dsn: str | None = None
) -> str:
    """A URL for `database` (None: the admin DSN's own) on the tests' server, as the admin or as `user`.

    `dsn` is the server to use (default: `admin_dsn()`). A `user` given without `password` connects
    without one, as the trust-auth servers of the tests allow.
    """
    parts = _dsn_parts(dsn or admin_dsn())
    login = user or parts.get("user", "")
    secret = password if user else parts.get("password")
    userinfo = quote(login, safe="") + (f":{quote(secret, safe='')}" if secret else "")
    # A Unix-socket directory is a host too; percent-encoded, libpq reads it back as a path.
    host = quote(parts.get("host", ""), safe="")
    port = f":{parts['port']}" if parts.get("port") else ""
    name = database if database is not None else parts.get("dbname", "postgres")
    return f"postgresql://{userinfo + '@' if userinfo else ''}{host}{port}/{quote(name, safe='')}"


def server_address() -> tuple[str, int]:
    """Host and port of the tests' server, for connections given as fields (Airflow JSON)."""
    parts = _dsn_parts(admin_dsn())
    return parts.get("host", "127.0.0.1"), int(parts.get("port", 5432))


def admin_connection_problem(dsn: str, timeout_seconds: int = 3) -> str | None:
    """Why `dsn` does not accept a connection without prompting (None when it does)."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=timeout_seconds, autocommit=True) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def _pgserver():
    import warnings

    # Importing pgserver looks up a per-user runtime directory it never uses here, and warns on
    # machines without XDG_RUNTIME_DIR (CI, containers).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class EmbeddedPostgres:
    """A throwaway PostgreSQL from the pgserver wheel's binaries, on a loopback TCP port.

    Not `pgserver.get_server`: that server listens on a Unix socket only, and the tests hand their
    DSNs to Airflow connections and to code that takes URLs apart by host and port.
    """

    def __init__(self, base_dir: str | os.PathLike[str] | None = None) -> None:
        self.base_dir = Path(tempfile.mkdtemp(prefix="turnover-signals-pg-", dir=base_dir))
        self.data_dir = self.base_dir / "pgdata"
        self.log_file = self.base_dir / "postgres.log"
        self.port = 0
        self._system_user: str | None = None

    @property
    def dsn(self) -> str:
        """The superuser's URL for the `postgres` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> EmbeddedPostgres:
        pgserver = _pgserver()
        self.data_dir.mkdir()
        if os.geteuid() == 0:
            self._hand_over_to_system_user()
        run_as = {"user": self._system_user} if self._system_user else {}
        pgserver.initdb(
            ["--auth=trust", "--encoding=utf8", "--username=postgres"],
            pgdata=self.data_dir,
            timeout=EMBEDDED_START_TIMEOUT_SECONDS,
            **run_as,
        )
        self.port = _free_loopback_port()
        # Durability is worthless for a server deleted at the end of the run, and fsync is most of
        # what creating a database from a template costs.
        # No Unix socket: its path would have to fit in 107 bytes, and every DSN here names a TCP port.
        options = f'-h 127.0.0.1 -p {self.port} -k "" -c fsync=off -c full_page_writes=off'
        pgserver.pg_ctl(
            [
                "-w",
                "-t",
                str(EMBEDDED_START_TIMEOUT_SECONDS),
                "-o",
                options,
                "-l",
                str(self.log_file),
                "start",
            ],
            pgdata=self.data_dir,
            timeout=EMBEDDED_START_TIMEOUT_SECONDS + 5,
            **run_as,
        )
        return self

    def _hand_over_to_system_user(self) -> None:
        _pgserver()
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        self._system_user = EMBEDDED_SYSTEM_USER
        entry = ensure_user_exists(EMBEDDED_SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        for path in (self.base_dir, self.data_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def stop(self) -> None:
        """Stop the server (if it started) and delete its directory."""
        import subprocess

        pgserver = _pgserver()
        if (self.data_dir / "postmaster.pid").exists():
            run_as = {"user": self._system_user} if self._system_user else {}
            try:
                pgserver.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.data_dir, timeout=60, **run_as)
            except subprocess.CalledProcessError:
                pass  # already gone; the directory still has to go
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def use_available_server(
    base_dir: str | os.PathLike[str] | None = None,
) -> tuple[str, EmbeddedPostgres | None]:
    """Pick the run's server (see the module docstring) and export its admin DSN in the environment.

    Returns a line saying which server and why, and the embedded server when one was started (the
    caller stops it). Called once by the process that spawns the others.
    """
    if os.environ.get(ADMIN_DSN_ENV):
        return f"PostgreSQL: {ADMIN_DSN_ENV} ({_without_password(admin_dsn())})", None
    problem = admin_connection_problem(DEFAULT_ADMIN_DSN)
    if problem is None:
        os.environ[ADMIN_DSN_ENV] = DEFAULT_ADMIN_DSN
        return f"PostgreSQL: {DEFAULT_ADMIN_DSN}", None
    embedded = EmbeddedPostgres(base_dir).start()
    os.environ[ADMIN_DSN_ENV] = embedded.dsn
    return (
        f"PostgreSQL: embedded (pgserver) at {embedded.dsn}, in {embedded.base_dir}, deleted after the run: "
        f"{DEFAULT_ADMIN_DSN} refused a password-less connection ({problem}); set {ADMIN_DSN_ENV} to use "
        "your own server"
    ), embedded


def _without_password(dsn: str) -> str:
    parts = _dsn_parts(dsn)
    return dsn_for(parts.get("dbname"), user=parts.get("user", ""), dsn=dsn) if "password" in parts else dsn


def main(argv: list[str]) -> int:
    """`check`: say which server a test run would use; exit 1 only when a chosen one does not answer."""
    if argv != ["check"]:
        print(__doc__, file=sys.stderr)
        return 2
    if os.environ.get(ADMIN_DSN_ENV):
        problem = admin_connection_problem(admin_dsn())
        if problem:
            print(f"PostgreSQL: {ADMIN_DSN_ENV} does not accept a connection: {problem}", file=sys.stderr)
            return 1
        print(f"PostgreSQL: {ADMIN_DSN_ENV} ({_without_password(admin_dsn())})")
        return 0
    problem = admin_connection_problem(DEFAULT_ADMIN_DSN)
    if problem is None:
        print(f"PostgreSQL: {DEFAULT_ADMIN_DSN}")
    else:
        print(
            f"PostgreSQL: {DEFAULT_ADMIN_DSN} refused a password-less connection ({problem}); the tests will "
            "start an embedded PostgreSQL (the pgserver wheel) in a temporary directory. Set "
            f"{ADMIN_DSN_ENV} to use your own server"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
