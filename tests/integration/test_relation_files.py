"""Where is table X built: in `include/sql/<schema>/<table>.sql`, or for a view in its repeatable definition.

Every relation of a migrated warehouse must have that file, except those listed in `WITHOUT_A_FILE`: the
relations still written by statements inside Python (issue 21 point 2), each with the module that writes it.
The list only shrinks: a listed relation that gains its file, or is dropped, fails the test until it leaves
the list; a new relation without a file fails it too. And no file under core/, mart/ or audit/ is named after
a relation that does not exist (a report is a query under `queries/`).
"""

from __future__ import annotations

import psycopg
import pytest

from tests.databases import dsn_for
from turnover_signals.paths import SQL_DIR

pytestmark = pytest.mark.integration

# The migration runner's own bookkeeping, created by `migrate` itself before any migration.
RUNNER_TABLES = {"audit.schema_migration", "audit.schema_repeatable"}

# Relation -> where it is written today, from Python strings (or loaded by COPY).
WITHOUT_A_FILE = {
    "analytics.salary_band": "governance/pseudonyms.py",
    "audit.extract_watermark": "lms/statements.py, lms/users.py",
    "audit.feature_build": "features/build.py",
    "audit.file_manifest": "load/manifest.py",
    "audit.file_release": "hris/release.py",
    "audit.identity_exception": "identity/resolve.py",
    "audit.identity_override": "identity/resolve.py (steward CLI)",
    "audit.identity_override_current": "a view in migration 0026",
    "audit.lms_backfill_slice": "lms/backfill.py",
    "audit.lms_extract_batch": "lms/statements.py",
    "audit.lms_void_applied": "lms/statements.py",
    "audit.lrs_conformance": "lms/conformance.py",
    "audit.model_promotion": "model/registry.py",
    "audit.model_registry": "model/registry.py",
    "audit.pseudonym_key_rotation": "governance/pseudonyms.py",
    "audit.retention_purge": "retention/purge.py",
    "audit.scim_extract_batch": "lms/users.py",
    "audit.unknown_course": "lms/catalog.py",
    "audit.validation_result": "quality/gate.py",
    "core.compensation_change_baseline": "retention/seal.py",
    "core.course_catalog": "lms/catalog.py",
    "core.course_catalog_version": "lms/catalog.py",
    "core.employee_key_registry": "identity/resolve.py",
    "core.employee_snapshot_baseline": "retention/seal.py",
    "core.hris_sealed_file": "retention/seal.py",
    "governance.analytics_policy": "governance/pseudonyms.py",
    "governance.person_pseudonym": "a view in migration 0013",
    "governance.pseudonym_key": "governance/pseudonyms.py",
    "governance.role_privilege": "numbered migrations (rows of grants)",
    "mart.employee_features_restated": "features/build.py",
    "mart.learner_daily_activity_state": "features/daily_activity.py",
    "mart.turnover_risk_score": "model/score.py",
    "raw.hris_compensation_change": "hris/ingest.py (COPY, then partition attach)",
    "raw.hris_employee_snapshot": "hris/ingest.py (COPY, then partition attach)",
    "raw.lms_statement": "lms/statements.py",
    "raw.lms_statement_rejected": "lms/statements.py",
    "raw.lms_user": "lms/users.py",
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
    files = [path for layer in ("raw", "core", "mart", "audit") for path in (SQL_DIR / layer).glob("*.sql")]
    assert len(files) > 15
    strays = sorted(
        str(path.relative_to(SQL_DIR)) for path in files if f"{path.parent.name}.{path.stem}" not in relations
    )
    assert strays == [], "a file under a layer builds the relation it is named after; reports go to queries/"
