"""Where is table X built: in `include/sql/<schema>/<table>.sql`, or for a view in its repeatable definition.

Every relation of a migrated warehouse must have that file, except those listed in `WITHOUT_A_FILE`, which no
statement of the pipeline builds (seeded by migrations, written by a person, copied from the source file as
received), each with who writes it. A listed relation that gains its file, or is dropped, fails the test
until it leaves the list; a new relation without a file fails it too. And no file under a layer is named
after a relation that does not exist (a report is a query under `queries/`).
"""

from __future__ import annotations

import psycopg
import pytest

from tests.databases import dsn_for
from turnover_signals.paths import SQL_DIR

pytestmark = pytest.mark.integration

# The migration runner's own bookkeeping, created by `migrate` itself before any migration.
RUNNER_TABLES = {"audit.schema_migration", "audit.schema_repeatable"}

# Relations no SQL statement of the pipeline builds, each with who writes it instead.
WITHOUT_A_FILE = {
    # rows of the contract, seeded and changed by numbered migrations only
    "analytics.salary_band": "seeded by migration 0013",
    "governance.role_privilege": "rows added by the numbered migrations that create tables",
    # people's decisions, written with a SQL client (docs/concepts/identity.md)
    "audit.identity_override": "the identity steward",
    # the source files as received: COPY into a staged partition, attached after the gate
    "raw.hris_compensation_change": "hris/ingest.py (COPY, then raw.attach_hris_partition)",
    "raw.hris_employee_snapshot": "hris/ingest.py (COPY, then raw.attach_hris_partition)",
}


def warehouse_relations(database: str) -> set[str]:
    """Tables, views and materialized views of the pipeline's schemas (partitions are their parent's)."""
    with psycopg.connect(dsn_for(database)) as conn:
        rows = conn.execute(
            """
            select n.nspname || '.' || c.relname
            from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p', 'v', 'm') and not c.relispartition
              and n.nspname in ('raw', 'core', 'mart', 'audit', 'staging', 'governance', 'analytics')
            """
        ).fetchall()
    return {name for (name,) in rows}


def has_a_file(relation: str) -> bool:
    schema, name = relation.split(".")
    return (SQL_DIR / schema / f"{name}.sql").is_file() or (
        SQL_DIR / "repeatable" / "views" / f"{relation}.sql"
    ).is_file()


def test_every_relation_of_the_warehouse_has_the_file_that_builds_it(migrated_template_db):
    relations = warehouse_relations(migrated_template_db) - RUNNER_TABLES
    assert len(relations) > 50
    missing = sorted(r for r in relations if not has_a_file(r) and r not in WITHOUT_A_FILE)
    assert missing == [], "give each its file include/sql/<schema>/<name>.sql (or a repeatable view)"


def test_the_list_of_relations_without_a_file_only_shrinks(migrated_template_db):
    relations = warehouse_relations(migrated_template_db)
    stale = sorted(r for r in WITHOUT_A_FILE if r not in relations or has_a_file(r))
    assert stale == [], "these have their file now (or are gone): take them off WITHOUT_A_FILE"


def test_no_file_is_named_after_a_relation_that_does_not_exist(migrated_template_db):
    relations = warehouse_relations(migrated_template_db)
    layers = ("raw", "core", "mart", "audit", "governance")
    files = [path for layer in layers for path in (SQL_DIR / layer).glob("*.sql")]
    assert len(files) > 15
    strays = sorted(
        str(path.relative_to(SQL_DIR)) for path in files if f"{path.parent.name}.{path.stem}" not in relations
    )
    assert strays == [], "a file under a layer builds the relation it is named after; reports go to queries/"
