"""The history build's work grows with its input, whatever plan PostgreSQL picks: a generated enterprise's
HRIS files through the real ingest, then include/sql/core/employee_history.sql under EXPLAIN ANALYZE, with
the planner's own choice and with every join forced to a nested loop (the plan it picks when it guesses the
loaded files few; joined as rows, the parsed date texts were then read once per snapshot row)."""

from __future__ import annotations

import tempfile

import psycopg
import pytest
from psycopg import sql

from tests.databases import DatabaseCopies, plan_nodes
from tests.integration.enterprise import generate, load_hris, source_servers
from turnover_signals.config import load_config
from turnover_signals.hris.history import history_parameters
from turnover_signals.sqlfiles import read_sql

pytestmark = pytest.mark.integration

# A node may read each snapshot row a few times (a small lookup such as the job levels rescanned per row);
# reading a whole lookup per row is quadratic, hundreds of times the rows with this enterprise's date texts.
ROWS_READ_PER_SNAPSHOT_ROW = 20
PLANS = {
    "the planner's choice": {},
    "nested loops only": {"enable_hashjoin": "off", "enable_mergejoin": "off"},
}


@pytest.fixture(scope="module")
def loaded_dsn(migrated_template_db, tmp_path_factory) -> str:
    """A warehouse holding a small generated enterprise's HRIS files (the tests only read it)."""
    generated = generate(tmp_path_factory.mktemp("enterprise") / "data", employees=150, months=3)
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


def history_query() -> sql.Composed:
    return sql.SQL("select * from ({}) as built order by employee_id, valid_from").format(
        sql.SQL(read_sql("core", "employee_history"))
    )


@pytest.mark.parametrize("plan", PLANS)
def test_no_node_of_the_history_build_reads_more_than_a_few_rows_per_snapshot_row(loaded_dsn, plan):
    with psycopg.connect(loaded_dsn) as conn:
        [(snapshot_rows,)] = conn.execute("select count(*) from raw.hris_employee_snapshot").fetchall()
        [(date_texts,)] = conn.execute(
            "select count(distinct dates.text) from raw.hris_employee_snapshot,"
            " lateral (values (hire_date), (termination_date)) as dates (text)"
        ).fetchall()
        assert snapshot_rows > 400 and date_texts > 2 * ROWS_READ_PER_SNAPSHOT_ROW  # the shape that told
        for setting, value in PLANS[plan].items():
            conn.execute(sql.SQL("set local {} = {}").format(sql.Identifier(setting), sql.Literal(value)))
        params = history_parameters(load_config(use_variable=False))
        nodes = plan_nodes(conn, history_query(), params, analyze=True)
        heaviest = max(nodes, key=lambda node: node["Actual Rows"] * node["Actual Loops"])
    rows_read = heaviest["Actual Rows"] * heaviest["Actual Loops"]
    assert rows_read <= ROWS_READ_PER_SNAPSHOT_ROW * snapshot_rows, (
        f"{heaviest['Node Type']} {heaviest.get('CTE Name') or heaviest.get('Relation Name') or ''}: "
        f"{rows_read} rows read for {snapshot_rows} snapshot rows"
    )


def test_every_plan_builds_the_same_history(loaded_dsn):
    params = history_parameters(load_config(use_variable=False))
    histories = {}
    with psycopg.connect(loaded_dsn) as conn:
        for plan, settings in PLANS.items():
            with conn.transaction():
                for setting, value in settings.items():
                    conn.execute(
                        sql.SQL("set local {} = {}").format(sql.Identifier(setting), sql.Literal(value))
                    )
                histories[plan] = conn.execute(history_query(), params).fetchall()
    assert histories["nested loops only"] == histories["the planner's choice"]
    assert len(histories["the planner's choice"]) > 150
