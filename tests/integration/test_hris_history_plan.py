"""The history build hashes its date lookups: a generated enterprise's HRIS files through the real ingest,
then the plan of include/sql/core/employee_history.sql with the planner's own choice and as the build runs
it."""

from __future__ import annotations

import json
import tempfile

import psycopg
import pytest
from psycopg import sql

from tests.databases import DatabaseCopies
from tests.integration.enterprise import generate, load_hris, source_servers
from turnover_signals.config import load_config
from turnover_signals.hris.history import hash_the_date_lookups, history_parameters
from turnover_signals.sqlfiles import read_sql

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def loaded_dsn(migrated_template_db, tmp_path_factory) -> str:
    """A warehouse holding a small generated enterprise's HRIS files (the tests only read it)."""
    generated = generate(tmp_path_factory.mktemp("enterprise") / "data", employees=60, months=3)
    config = load_config(use_variable=False)
    config["identity"]["review_sample_dir"] = tempfile.mkdtemp()
    databases = DatabaseCopies(prefix="ts_history_plan")
    try:
        dsn = databases.copy(migrated_template_db)
        with source_servers(generated):
            load_hris(dsn, config)
        yield dsn
    finally:
        databases.drop_all()


def plan_nodes(conn: psycopg.Connection) -> list[dict]:
    """Every node of the history build's plan, depth first."""
    query = sql.SQL("explain (format json) select * from ({}) as built").format(
        sql.SQL(read_sql("core", "employee_history"))
    )
    [[plan]] = conn.execute(query, history_parameters(load_config(use_variable=False))).fetchall()
    nodes, pending = [], [plan[0]["Plan"]]
    while pending:
        node = pending.pop()
        nodes.append(node)
        pending.extend(node.get("Plans", []))
    return nodes


def rescans_the_parsed_dates(nodes: list[dict]) -> bool:
    """Whether a nested loop reads the parsed dates once per outer row."""
    return any(
        node["Node Type"] == "Nested Loop"
        and "parsed_dates" in json.dumps(node.get("Plans", []))
        and any(child.get("CTE Name") == "parsed_dates" for child in node.get("Plans", []))
        for node in nodes
    )


def test_the_history_build_hashes_the_parsed_dates_where_the_planner_would_rescan_them(loaded_dsn):
    with psycopg.connect(loaded_dsn, autocommit=True) as conn:
        # the planner's own choice: it cannot estimate the files loaded, guesses a few rows, loops
        assert rescans_the_parsed_dates(plan_nodes(conn))
        with conn.transaction():
            hash_the_date_lookups(conn)
            assert not rescans_the_parsed_dates(plan_nodes(conn))
        # only for the build's transaction
        assert conn.execute("show enable_nestloop").fetchone() == ("on",)


def test_hashed_or_looped_the_history_has_the_same_rows(loaded_dsn):
    query = sql.SQL("select * from ({}) as built order by 1, 2").format(
        sql.SQL(read_sql("core", "employee_history"))
    )
    params = history_parameters(load_config(use_variable=False))
    with psycopg.connect(loaded_dsn, autocommit=True) as conn:
        looped = conn.execute(query, params).fetchall()
        with conn.transaction():
            hash_the_date_lookups(conn)
            hashed = conn.execute(query, params).fetchall()
    assert hashed == looped and len(hashed) > 60
