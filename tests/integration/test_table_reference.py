"""The "where each table comes from" page is the one generated from a migrated warehouse and the
repository."""

from __future__ import annotations

import psycopg
import pytest

from tests.databases import dsn_for
from turnover_signals import table_reference

pytestmark = pytest.mark.integration


def test_the_table_reference_page_is_current(migrated_template_db):
    with psycopg.connect(dsn_for(migrated_template_db)) as conn:
        sources = table_reference.table_sources(conn)
    generated = table_reference.page(sources)
    assert table_reference.PAGE.read_text(encoding="utf-8") == generated, (
        "run: PYTHONPATH=plugins python -m turnover_signals.table_reference --dsn <a migrated warehouse>"
    )
    # every table of the layers is listed, and each has a grain and a builder
    listed = {source.table for source in sources}
    assert {
        "raw.lms_statement",
        "core.lms_activity",
        "mart.employee_features",
        "audit.lrs_conformance",
    } <= listed
    assert all(source.built_by for source in sources)


def test_a_table_built_by_its_sql_file_names_the_file_and_its_grain(migrated_template_db):
    with psycopg.connect(dsn_for(migrated_template_db)) as conn:
        by_table = {source.table: source for source in table_reference.table_sources(conn)}
    activity = by_table["core.lms_activity"]
    assert activity.built_by == "`include/sql/core/lms_activity.sql`"
    assert activity.grain.startswith("one row per accepted learner statement")
    assert "`turnover_loader`" in activity.written_by  # the xAPI publisher writes it with the raw statements
