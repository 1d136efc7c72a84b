"""The PostgreSQL warehouse: connections and versioned, idempotent schema migrations.

Migrations are the files `include/sql/ddl/NNNN_verb_object.sql`, applied in version order,
each in its own transaction together with its row in `audit.schema_migration`. Running
`migrate` twice changes nothing; a new file applies only what is new. An applied file that
was edited afterwards is refused (checksum mismatch): add a new migration instead.

    python -m turnover_signals.warehouse migrate [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from turnover_signals.errors import SourceUnavailableError, TurnoverSignalsError
from turnover_signals.paths import SQL_DIR

log = logging.getLogger(__name__)

# libpq connection parameters an Airflow postgres connection may carry as extras
LIBPQ_EXTRAS = (
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "sslcrl",
    "sslpassword",
    "sslcompression",
    "target_session_attrs",
    "application_name",
    "connect_timeout",
    "options",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "gssencmode",
    "channel_binding",
)

DEFAULT_CONN_ID = "warehouse_postgres"
DSN_ENV_VAR = "TURNOVER_WAREHOUSE_URL"
MIGRATIONS_DIR = SQL_DIR / "ddl"
MIGRATION_FILE_PATTERN = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every migrator of this bundle.
MIGRATION_LOCK_KEY = 74_207_311

BOOTSTRAP_SQL = """
create schema if not exists audit;
create table if not exists audit.schema_migration (
    version integer primary key,
    name text not null,
    sha256 text not null,
    applied_at timestamptz not null default now()
);
"""


class MigrationError(TurnoverSignalsError):
    """The warehouse schema cannot be brought to the bundle's version."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migration files in version order; duplicate versions or stray names are errors."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(
                str(path), "migration files must be named NNNN_verb_object.sql", "rename it", "migrations"
            )
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(
                str(path),
                f"version {version} is also used by {migrations[version].path.name}",
                "give one of the two files the next free number",
                "migrations",
            )
        migrations[version] = Migration(version, match["name"], path)
    return [migrations[v] for v in sorted(migrations)]


def resolve_dsn(dsn: str | None = None) -> str | None:
    """An explicit DSN, else $TURNOVER_WAREHOUSE_URL, else None (use the Airflow connection)."""
    return dsn or os.environ.get(DSN_ENV_VAR) or None


@contextmanager
def warehouse_connection(
    conn_id: str = DEFAULT_CONN_ID, dsn: str | None = None
) -> Iterator[psycopg.Connection]:
    """A psycopg 3 connection to the warehouse, from a DSN or the Airflow connection `conn_id`.

    The connection is in autocommit mode, so that every `with conn.transaction():` block is a
    real transaction (committed at its end) rather than a savepoint inside an implicit one:
    callers group what must be atomic in such blocks.
    """
    resolved = resolve_dsn(dsn)
    try:
        if resolved:
            conn = psycopg.connect(resolved, autocommit=True)
        else:
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
            conn.autocommit = True
    except psycopg.OperationalError as exc:
        raise warehouse_unavailable(conn_id, resolved, exc) from exc
    try:
        yield conn
    finally:
        conn.close()


def warehouse_unavailable(conn_id: str, dsn: str | None, exc: Exception) -> SourceUnavailableError:
    """The error for a warehouse that refused or did not answer a connection: retried as transient.

    It names the Airflow connection id (or the DSN without its password), never a secret.
    """
    if dsn:
        where = f"warehouse {_dsn_without_password(dsn)} ({DSN_ENV_VAR} or --dsn)"
    else:
        where = f"warehouse connection {conn_id}"
    reason = " ".join(str(exc).split()) or type(exc).__name__
    password = _dsn_password(dsn) if dsn else ""
    if password:
        reason = reason.replace(password, "***")
    return SourceUnavailableError(
        where,
        f"could not connect: {reason}",
        "check that the PostgreSQL server is up and reachable from the workers (Airflow retries the task; "
        f"clear it once the server is back); if the message says authentication failed or a role or database "
        f"does not exist, fix {'the URL' if dsn else 'the connection ' + conn_id} instead",
        "warehouse-unavailable",
    )


def _dsn_password(dsn: str) -> str:
    try:
        return psycopg.conninfo.conninfo_to_dict(dsn).get("password") or ""
    except psycopg.Error:
        return ""


def _dsn_without_password(dsn: str) -> str:
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(an unreadable URL)"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"{params.get('user') or ''}@{host}:{port}/{params.get('dbname') or ''}"


def sqlalchemy_url(conn_id: str = DEFAULT_CONN_ID, dsn: str | None = None) -> str:
    """A SQLAlchemy URL (psycopg 3 driver) for tools that need one, such as Great Expectations."""
    resolved = resolve_dsn(dsn)
    if resolved:
        if "://" not in resolved:
            raise ValueError(
                "a key=value DSN cannot be turned into a SQLAlchemy URL; use a postgresql:// URL"
            )
        scheme, rest = resolved.split("://", 1)
        if scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise ValueError(f"unsupported warehouse URL scheme {scheme!r}")
        return f"postgresql+psycopg://{rest}"
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=conn_id)
    url = hook.sqlalchemy_url.set(drivername="postgresql+psycopg")
    extra = hook.connection.extra_dejson
    socket_dir = extra.get("host")
    if socket_dir:
        # A Unix-socket directory given as the extra `host` (the hook hands it to psycopg).
        url = url.set(host=None, port=None).update_query_dict({"host": socket_dir})
    # The hook's URL carries only the `sqlalchemy_query` extra; the libpq settings psycopg gets from the
    # same connection (TLS above all) must reach the Great Expectations gates too.
    libpq = {key: str(extra[key]) for key in LIBPQ_EXTRAS if key in extra and key not in url.query}
    if libpq:
        url = url.update_query_dict(libpq)
    return url.render_as_string(hide_password=False)


def analyze_table(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Refresh the planner's statistics of `schema.table`, also when the caller does not own it.

    PostgreSQL lets only a table's owner ANALYZE it: a stage login's plain ANALYZE only warns and
    skips the table. `core.analyze_relation` (migration 0018) runs it as the warehouse owner, for
    tables of core, mart, staging and raw. A session's own temp tables are analyzed directly.
    """
    conn.execute(
        "select core.analyze_relation(format('%%I.%%I', %s::text, %s::text)::regclass)", (schema, table)
    )


def applied_migrations(conn: psycopg.Connection) -> dict[int, str]:
    """Version -> sha256 of the migrations recorded in the warehouse."""
    with conn.cursor() as cur:
        cur.execute("select version, sha256 from audit.schema_migration order by version")
        return dict(cur.fetchall())


def _log_server_notice(diagnostic: psycopg.errors.Diagnostic) -> None:
    # A migration's RAISE WARNING (e.g. "role ... does not exist and ... may not create roles: ask a
    # DBA ...") is addressed to the operator: the server sends it as a notice, which psycopg drops
    # unless a handler passes it on.
    severity = (diagnostic.severity_nonlocalized or diagnostic.severity or "").upper()
    level = logging.WARNING if severity == "WARNING" else logging.INFO
    log.log(level, "warehouse migration %s: %s", severity.lower() or "notice", diagnostic.message_primary)


def migrate(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every migration not yet applied; return the ones applied by this call.

    The server's warnings and notices during the migration are logged (WARNING / INFO).
    """
    conn.add_notice_handler(_log_server_notice)
    try:
        return _migrate(conn, directory)
    finally:
        conn.remove_notice_handler(_log_server_notice)


def _migrate(conn: psycopg.Connection, directory: Path) -> list[Migration]:
    migrations = discover_migrations(directory)
    conn.autocommit = True
    with conn.transaction():
        # Serialises concurrent migrators (two DAGs starting at once); released at commit.
        conn.execute("select pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        conn.execute(BOOTSTRAP_SQL)
    applied_now: list[Migration] = []
    for migration in migrations:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            recorded = applied_migrations(conn)
            if migration.version in recorded:
                if recorded[migration.version] != migration.sha256:
                    raise MigrationError(
                        migration.path.name,
                        "was changed after it was applied to this warehouse (sha256 differs)",
                        "revert the edit and add a new migration file instead",
                        "migrations",
                    )
                continue
            conn.execute(migration.sql)
            conn.execute(
                "insert into audit.schema_migration (version, name, sha256) values (%s, %s, %s)",
                (migration.version, migration.name, migration.sha256),
            )
            applied_now.append(migration)
            log.info("applied warehouse migration %s", migration.path.name)
    return applied_now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m turnover_signals.warehouse")
    sub = parser.add_subparsers(dest="command", required=True)
    migrate_cmd = sub.add_parser("migrate", help="apply pending schema migrations")
    migrate_cmd.add_argument(
        "--dsn", help=f"PostgreSQL URL; default ${DSN_ENV_VAR} or the Airflow connection"
    )
    migrate_cmd.add_argument("--conn-id", default=DEFAULT_CONN_ID)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with warehouse_connection(args.conn_id, args.dsn) as conn:
        applied = migrate(conn)
    print(f"warehouse migrated: {len(applied)} migration(s) applied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
