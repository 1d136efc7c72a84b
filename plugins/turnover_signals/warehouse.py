"""The PostgreSQL warehouse: connections and versioned, idempotent schema migrations.

Numbered migrations are the files `include/sql/ddl/NNNN_verb_object.sql`, applied in version
order, each in its own transaction together with its row in `audit.schema_migration`. Running
`migrate` twice changes nothing; a new file applies only what is new. An applied file that
was edited afterwards is refused (checksum mismatch): add a new migration instead.

Views, functions and grants that change are repeatable definitions instead (as Flyway's
repeatable migrations): one current file each, `include/sql/repeatable/<kind>/<schema>.<object>.sql`,
applied after the numbered migrations, each in its own transaction with its row in
`audit.schema_repeatable`. A definition is due when its file's sha256 differs from its row or
its object no longer exists (a numbered migration dropped a view to change the table under it,
or a view whose columns changed dropped the views built on it); the grants are due whenever
anything else was applied, since a re-created view has lost its grants and a new table may need
some. The order: functions, views, grants, by name within a kind; a definition that refers to
a view or function not created yet waits for the next pass, and passes repeat until nothing is
due. Files are idempotent: `create or replace`; a view whose columns change other than by
appending starts with `drop view if exists` (same transaction, so no reader sees it missing).
A numbered migration must not depend on a repeatable object: on a new warehouse none exists
until the numbered migrations have run.

A numbered migration whose view or function moved to a repeatable definition after release is
revised, not renumbered: it starts with `-- original-sha256: <hex>` (the file as released) and
`-- body-sha256: <hex>` (the rest of the revised file). A warehouse that applied the original
accepts the revision; a new warehouse applies the revision; an edit of the body is refused.

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
REVISED_MIGRATION_HEADER = re.compile(
    r"\A-- original-sha256: (?P<original>[0-9a-f]{64})\n-- body-sha256: (?P<body>[0-9a-f]{64})\n"
)
REPEATABLE_DIR = SQL_DIR / "repeatable"
# Views may call functions, and the grants come last: governance.apply_role_privileges() grants on the
# relations that exist when it runs.
REPEATABLE_KINDS = ("functions", "views", "grants")
REPEATABLE_FILE_PATTERN = re.compile(r"^(?P<schema>[a-z][a-z0-9_]*)\.(?P<object>[a-z][a-z0-9_]*)\.sql$")
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
create table if not exists audit.schema_repeatable (
    name text primary key,
    kind text not null,
    sha256 text not null,
    applied_at timestamptz not null default now()
);
"""


class MigrationError(TurnoverSignalsError):
    """The warehouse schema cannot be brought to the bundle's version."""


class SqlFile:
    """A file of SQL the runner applies: its text and the sha256 it records."""

    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Migration(SqlFile):
    version: int
    name: str
    path: Path

    @property
    def original_sha256(self) -> str | None:
        """The sha256 of the file as released, when it was revised since (REVISED_MIGRATION_HEADER)."""
        header = REVISED_MIGRATION_HEADER.match(self.path.read_text(encoding="utf-8"))
        return header["original"] if header else None

    def is_applied_as(self, recorded_sha256: str) -> bool:
        """Whether a warehouse that recorded `recorded_sha256` for this version applied this file: the same
        bytes, or the release this file revises."""
        return recorded_sha256 in (self.sha256, self.original_sha256)


def _check_revision(path: Path) -> None:
    content = path.read_bytes()
    header = REVISED_MIGRATION_HEADER.match(content.decode("utf-8"))
    if header and hashlib.sha256(content[header.end() :]).hexdigest() != header["body"]:
        raise MigrationError(
            subject=path.name,
            problem="was changed after it was revised (its body-sha256 line no longer matches)",
            next_step="revert the edit; change a repeatable definition or add a new migration file instead",
            runbook_section="migrations",
        )


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migration files in version order; duplicate versions, stray names or an edited revision are
    errors."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(
                subject=str(path),
                problem="migration files must be named NNNN_verb_object.sql",
                next_step="rename it",
                runbook_section="migrations",
            )
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(
                subject=str(path),
                problem=f"version {version} is also used by {migrations[version].path.name}",
                next_step="give one of the two files the next free number",
                runbook_section="migrations",
            )
        _check_revision(path)
        migrations[version] = Migration(version, match["name"], path)
    return [migrations[v] for v in sorted(migrations)]


@dataclass(frozen=True)
class RepeatableDefinition(SqlFile):
    """One current definition of a view, function or grant list, named `<schema>.<object>` after the object
    it defines (for grants: the function that applies them)."""

    kind: str
    name: str
    path: Path

    @property
    def version(self) -> None:
        """None: a repeatable definition has no version (for callers listing what `migrate` applied)."""
        return None


def discover_repeatables(directory: Path = REPEATABLE_DIR) -> list[RepeatableDefinition]:
    """The repeatable definitions in the order they apply (kind, then name); none without the directory.

    A file outside the kinds' folders, a stray name or an object defined twice is an error."""
    if not directory.is_dir():
        return []
    strays = [path for path in directory.iterdir() if path.name not in REPEATABLE_KINDS]
    strays += [
        path
        for kind in REPEATABLE_KINDS
        if (directory / kind).is_dir()
        for path in (directory / kind).iterdir()
        if not REPEATABLE_FILE_PATTERN.match(path.name)
    ]
    if strays:
        raise MigrationError(
            subject=str(sorted(strays)[0]),
            problem=f"repeatable definitions are files <kind>/<schema>.<object>.sql, kind one of "
            f"{', '.join(REPEATABLE_KINDS)}",
            next_step="move or rename it",
            runbook_section="migrations",
        )
    definitions: dict[str, RepeatableDefinition] = {}
    for kind in REPEATABLE_KINDS:
        for path in sorted((directory / kind).glob("*.sql")):
            name = path.name.removesuffix(".sql")
            if name in definitions:
                raise MigrationError(
                    subject=str(path),
                    problem=f"{name} is also defined by {definitions[name].path}",
                    next_step="keep one current definition",
                    runbook_section="migrations",
                )
            definitions[name] = RepeatableDefinition(kind, name, path)
    return list(definitions.values())


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
    except psycopg.OperationalError as exc:
        # The session ended under the task (a server restart, a terminated backend, a dropped network): as
        # transient as a refused connection, and as clearly said. Callers that know what was interrupted wrap
        # it earlier with their own subject (`warehouse_lost`).
        if not connection_lost(exc, conn):
            raise
        raise warehouse_lost(
            subject=_warehouse_name(conn_id, resolved),
            exc=exc,
            next_step=(
                "rerun the task once the server is back (Airflow retries it): a transaction that was open "
                "was rolled back by the server, and the task's steps are safe to rerun"
            ),
        ) from exc
    finally:
        conn.close()


# SQLSTATEs of a server ending the session: admin_shutdown (a restart, pg_terminate_backend), crash_shutdown,
# cannot_connect_now; class 08 is the connection exceptions.
_SESSION_ENDED_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def connection_lost(exc: BaseException, conn: psycopg.Connection | None = None) -> bool:
    """Whether `exc` says the warehouse session ended under the caller, rather than that its SQL failed.

    psycopg raises `OperationalError` for both a lost server (`AdminShutdown`, `consuming input failed:
    server closed the connection unexpectedly`, `the connection is closed`) and, say, a lock timeout; a lost
    one leaves the connection closed. A SQLAlchemy error (the Great Expectations gates) is read through its
    driver error.
    """
    if getattr(exc, "connection_invalidated", False):
        return True
    exc = getattr(exc, "orig", None) or exc
    if not isinstance(exc, psycopg.OperationalError):
        return False
    if conn is not None and conn.closed:
        return True
    sqlstate = exc.sqlstate or ""
    return sqlstate in _SESSION_ENDED_SQLSTATES or sqlstate.startswith("08")


def warehouse_lost(
    *, subject: str, exc: BaseException, next_step: str, runbook_section: str = ""
) -> SourceUnavailableError:
    """The error for a warehouse session that ended mid-work: retried as transient.

    `subject` names what was interrupted (a batch, a file); the problem quotes the server's or the driver's
    one-line reason, which holds no data and no secret.
    """
    return SourceUnavailableError(
        subject=subject,
        problem=f"lost the warehouse connection mid-transaction ({_first_line(exc)})",
        next_step=next_step,
        runbook_section=runbook_section or "warehouse-unavailable",
    )


def _first_line(exc: BaseException) -> str:
    exc = getattr(exc, "orig", None) or exc
    diag = getattr(exc, "diag", None)
    text = (diag.message_primary if diag is not None else None) or str(exc)
    return (text.strip().splitlines() or [""])[0].strip() or type(exc).__name__


def _warehouse_name(conn_id: str, dsn: str | None) -> str:
    """The warehouse as an error names it: the Airflow connection id, or the DSN without its password."""
    if dsn:
        return f"warehouse {_dsn_without_password(dsn)} ({DSN_ENV_VAR} or --dsn)"
    return f"warehouse connection {conn_id}"


def warehouse_unavailable(conn_id: str, dsn: str | None, exc: Exception) -> SourceUnavailableError:
    """The error for a warehouse that refused or did not answer a connection: retried as transient.

    It names the Airflow connection id (or the DSN without its password), never a secret.
    """
    where = _warehouse_name(conn_id, dsn)
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


def applied_repeatables(conn: psycopg.Connection) -> dict[str, str]:
    """Name -> sha256 of the repeatable definitions as last applied to the warehouse."""
    with conn.cursor() as cur:
        cur.execute("select name, sha256 from audit.schema_repeatable order by name")
        return dict(cur.fetchall())


def _object_exists(conn: psycopg.Connection, name: str) -> bool:
    schema, object_name = name.split(".")
    return conn.execute(
        """
        select exists (
            select from pg_class where relnamespace = to_regnamespace(%(schema)s) and relname = %(object)s
        ) or exists (
            select from pg_proc where pronamespace = to_regnamespace(%(schema)s) and proname = %(object)s
        )
        """,
        {"schema": schema, "object": object_name},
    ).fetchone()[0]


def _log_server_notice(diagnostic: psycopg.errors.Diagnostic) -> None:
    # A migration's RAISE WARNING (e.g. "role ... does not exist and ... may not create roles: ask a
    # DBA ...") is addressed to the operator: the server sends it as a notice, which psycopg drops
    # unless a handler passes it on.
    severity = (diagnostic.severity_nonlocalized or diagnostic.severity or "").upper()
    level = logging.WARNING if severity == "WARNING" else logging.INFO
    log.log(level, "warehouse migration %s: %s", severity.lower() or "notice", diagnostic.message_primary)


def migrate(
    conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR, repeatable_directory: Path | None = None
) -> list[Migration | RepeatableDefinition]:
    """Apply every numbered migration not yet applied, then every repeatable definition that is due; return
    what this call applied, numbered migrations first.

    `repeatable_directory` defaults to the folder `repeatable` beside `directory` (none if it does not
    exist). The server's warnings and notices during the migration are logged (WARNING / INFO).
    """
    if repeatable_directory is None:
        repeatable_directory = directory.parent / "repeatable"
    conn.add_notice_handler(_log_server_notice)
    try:
        applied = _migrate(conn, discover_migrations(directory))
        return applied + _apply_repeatables(
            conn, discover_repeatables(repeatable_directory), is_anything_applied=bool(applied)
        )
    finally:
        conn.remove_notice_handler(_log_server_notice)


def _migrate(conn: psycopg.Connection, migrations: list[Migration]) -> list[Migration | RepeatableDefinition]:
    conn.autocommit = True
    with conn.transaction():
        # Serialises concurrent migrators (two DAGs starting at once); released at commit.
        conn.execute("select pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        conn.execute(BOOTSTRAP_SQL)
    applied_now: list[Migration | RepeatableDefinition] = []
    for migration in migrations:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            recorded = applied_migrations(conn)
            if migration.version in recorded:
                if not migration.is_applied_as(recorded[migration.version]):
                    raise MigrationError(
                        subject=migration.path.name,
                        problem="was changed after it was applied to this warehouse (sha256 differs)",
                        next_step="revert the edit and add a new migration file instead",
                        runbook_section="migrations",
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


# A definition that refers to a view or function a definition later in order creates waits for the next pass.
_NOT_YET_DEFINED = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedFunction,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.UndefinedObject,
)


def _apply_repeatables(
    conn: psycopg.Connection, definitions: list[RepeatableDefinition], is_anything_applied: bool
) -> list[Migration | RepeatableDefinition]:
    """Apply the due definitions in order, in passes until none is due: a definition may drop another's
    object (a view whose columns change drops the views on it), which is then due again."""
    applied_now: list[Migration | RepeatableDefinition] = []
    are_grants_due = is_anything_applied
    for _ in range(len(definitions) + 1):
        waiting: list[tuple[RepeatableDefinition, psycopg.Error]] = []
        applied_in_pass = 0
        for definition in definitions:
            is_grants = definition.kind == "grants"
            if is_grants and waiting:
                continue  # the grants come after everything else, in a later pass
            try:
                with conn.transaction():
                    conn.execute("select pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
                    if not (_is_changed_or_missing(conn, definition) or (is_grants and are_grants_due)):
                        continue
                    conn.execute(definition.sql)
                    _record_repeatable(conn, definition)
            except _NOT_YET_DEFINED as exc:
                waiting.append((definition, exc))
                continue
            applied_now.append(definition)
            applied_in_pass += 1
            are_grants_due = not is_grants
            log.info("applied repeatable definition %s/%s", definition.kind, definition.path.name)
        if waiting and not applied_in_pass:
            definition, exc = waiting[0]
            raise MigrationError(
                subject=f"{definition.kind}/{definition.path.name}",
                problem=f"cannot be applied: {exc.diag.message_primary or exc}",
                next_step="fix it, or the numbered migration that should create what it refers to",
                runbook_section="migrations",
            ) from exc
        if not waiting and not applied_in_pass:
            return applied_now
    raise MigrationError(
        subject="include/sql/repeatable",
        problem="the definitions kept dropping each other's objects",
        next_step="make a view's definition drop only the views built on it, which come later in order",
        runbook_section="migrations",
    )


def _is_changed_or_missing(conn: psycopg.Connection, definition: RepeatableDefinition) -> bool:
    recorded = applied_repeatables(conn).get(definition.name)
    return recorded != definition.sha256 or not _object_exists(conn, definition.name)


def _record_repeatable(conn: psycopg.Connection, definition: RepeatableDefinition) -> None:
    conn.execute(
        """
        insert into audit.schema_repeatable (name, kind, sha256) values (%s, %s, %s)
        on conflict (name) do update
        set kind = excluded.kind, sha256 = excluded.sha256, applied_at = excluded.applied_at
        """,
        (definition.name, definition.kind, definition.sha256),
    )


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
    numbered = sum(1 for item in applied if isinstance(item, Migration))
    print(
        f"warehouse migrated: {numbered} migration(s) applied, "
        f"{len(applied) - numbered} repeatable definition(s) applied"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
