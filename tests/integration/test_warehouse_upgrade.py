"""A warehouse upgraded from a release ends with the schema of a new one.

Migrations 0008–0032 were revised after release (their views and functions moved to include/sql/repeatable):
a warehouse that applied the released files, all of them or the first few, must reach with the revisions and
the repeatable definitions exactly the schema a new warehouse gets from them.
"""

import hashlib
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.databases import DatabaseCopies
from turnover_signals.warehouse import discover_migrations, migrate, warehouse_connection

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]

# The last commit whose migrations 0001–0032 are the files warehouses applied (before any was revised).
RELEASED_COMMIT = "f8ee96b748849fb0c116ab02bb87212bdddfb99b"
# Versions before each revised migration, and the whole release: a warehouse may be at any of them.
UPGRADED_FROM = sorted({m.version - 1 for m in discover_migrations() if m.original_sha256} | {32})

# What a schema is: relations and their columns in order (with their collations), constraints, indexes, views'
# and functions' text, triggers, comments, privileges and default privileges of the project's schemas.
CATALOG_QUERIES = {
    "columns": """
        select
            table_schema, table_name, ordinal_position, column_name, data_type, collation_name, is_nullable,
            column_default
        from information_schema.columns where table_schema = any(%(schemas)s)
    """,
    "constraints": """
        select conrelid::regclass::text, conname, pg_get_constraintdef(oid) from pg_constraint
        where connamespace::regnamespace::text = any(%(schemas)s)
    """,
    "indexes": "select schemaname, indexname, indexdef from pg_indexes where schemaname = any(%(schemas)s)",
    "views": """
        select schemaname, viewname, definition from pg_views where schemaname = any(%(schemas)s)
    """,
    "functions": """
        select oid::regprocedure::text, pg_get_functiondef(oid) from pg_proc
        where pronamespace::regnamespace::text = any(%(schemas)s) and prokind in ('f', 'p')
    """,
    "triggers": """
        select tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) from pg_trigger
        where not tgisinternal and tgrelid::regclass::text like any(%(patterns)s)
    """,
    "comments": """
        select classoid::regclass::text, objoid::regclass::text, objsubid, description from pg_description
        where classoid = 'pg_class'::regclass
          and objoid::regclass::text like any(%(patterns)s)
    """,
    "privileges": """
        select relation.oid::regclass::text, acl.grantee::regrole::text, acl.privilege_type
        from pg_class as relation cross join aclexplode(relation.relacl) as acl
        where relation.relnamespace::regnamespace::text = any(%(schemas)s)
        union all
        select routine.oid::regprocedure::text, acl.grantee::regrole::text, acl.privilege_type
        from pg_proc as routine cross join aclexplode(routine.proacl) as acl
        where routine.pronamespace::regnamespace::text = any(%(schemas)s)
        union all
        select namespace.nspname, acl.grantee::regrole::text, acl.privilege_type
        from pg_namespace as namespace cross join aclexplode(namespace.nspacl) as acl
        where namespace.nspname = any(%(schemas)s)
    """,
    "default_privileges": """
        select
            defaclnamespace::regnamespace::text, defaclobjtype, acl.grantee::regrole::text, acl.privilege_type
        from pg_default_acl cross join aclexplode(defaclacl) as acl
    """,
}
SCHEMAS = ["raw", "core", "mart", "audit", "staging", "governance", "analytics"]


def _schema(dsn):
    params = {"schemas": SCHEMAS, "patterns": [f"{schema}.%" for schema in SCHEMAS]}
    with psycopg.connect(dsn) as conn:
        return {
            name: sorted(conn.execute(query, params).fetchall()) for name, query in CATALOG_QUERIES.items()
        }


def _schema_dump(dsn):
    """pg_dump's schema, line by line in sorted order: an ACL lists its grantees in the order they were
    granted, which differs between a new warehouse and an upgraded one."""
    dumped = subprocess.run(
        ["pg_dump", "--schema-only", "--dbname", dsn], check=True, capture_output=True, text=True
    ).stdout
    return sorted(line for line in dumped.splitlines() if line and not line.startswith(("--", "\\")))


@pytest.fixture(scope="module")
def released_ddl(tmp_path_factory):
    """include/sql/ddl as released (RELEASED_COMMIT): the files warehouses applied."""
    directory = tmp_path_factory.mktemp("released") / "ddl"
    directory.mkdir()
    try:
        names = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "ls-tree", "--name-only", RELEASED_COMMIT, "include/sql/ddl/"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        for name in names:
            shown = subprocess.run(
                ["git", "-C", str(REPO_ROOT), "show", f"{RELEASED_COMMIT}:{name}"],
                check=True,
                capture_output=True,
            )
            (directory / name.rsplit("/", 1)[1]).write_bytes(shown.stdout)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"the released migrations need the git history holding {RELEASED_COMMIT}")
    return directory


@pytest.fixture(scope="module")
def databases():
    with DatabaseCopies(prefix="ts_upgrade") as copies:
        yield copies


@pytest.fixture(scope="module")
def new_warehouse(databases):
    dsn = databases.empty()
    with warehouse_connection(dsn=dsn) as conn:
        migrate(conn)
    return dsn


def _upgraded_from(released_ddl, databases, tmp_path, version):
    release = tmp_path / "ddl"
    release.mkdir()
    for path in sorted(released_ddl.glob("*.sql")):
        if int(path.name[:4]) <= version:
            shutil.copy(path, release / path.name)
    dsn = databases.empty()
    with warehouse_connection(dsn=dsn) as conn:
        assert migrate(conn, release)[-1].version == version
        migrate(conn)
    return dsn


@pytest.mark.parametrize("version", UPGRADED_FROM)
def test_an_upgraded_warehouse_has_the_schema_of_a_new_one(
    released_ddl, databases, new_warehouse, tmp_path, version
):
    upgraded = _upgraded_from(released_ddl, databases, tmp_path, version)
    assert _schema(upgraded) == _schema(new_warehouse)


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="needs pg_dump")
def test_an_upgraded_warehouse_dumps_as_a_new_one(released_ddl, databases, new_warehouse, tmp_path):
    upgraded = _upgraded_from(released_ddl, databases, tmp_path, 32)
    upgraded_dump, new_dump = _schema_dump(upgraded), _schema_dump(new_warehouse)
    assert [line for line in upgraded_dump if line not in new_dump] == []
    assert [line for line in new_dump if line not in upgraded_dump] == []
    assert upgraded_dump == new_dump


def test_every_revision_names_the_released_file(released_ddl):
    for migration in discover_migrations():
        if migration.original_sha256:
            released = (released_ddl / migration.path.name).read_bytes()
            assert hashlib.sha256(released).hexdigest() == migration.original_sha256, migration.path.name
