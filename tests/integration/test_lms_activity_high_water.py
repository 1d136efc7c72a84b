"""The times of core.lms_activity (and raw.lms_statement's stored time) have block-range indexes: the
high-water marks identity and the feature build read are the true latest times, and reading them above the
previous mark, or the rows published since it, touches only the page ranges published since (not the whole
table, as a maximum over a block-range index would)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from tests.databases import plan_nodes
from turnover_signals.lms.activity import activity_high_water, high_water_query

PUBLISHES = 40
ROWS_PER_PUBLISH = 2_000
FIRST_LOAD = datetime(2026, 3, 2, 6, tzinfo=UTC)
FIRST_STORED = datetime(2026, 3, 1, tzinfo=UTC)
PAGES_PER_RANGE = 128  # PostgreSQL's default for a block-range index


def loaded_at(publish: int) -> datetime:
    return FIRST_LOAD + timedelta(hours=publish)


def stored_at(publish: int, row: int) -> datetime:
    return FIRST_STORED + timedelta(hours=publish, seconds=row)


@pytest.fixture
def published_activity(warehouse_dsn: str) -> str:
    """`PUBLISHES` chunks of activity appended as the publisher appends them: one load time per chunk, stored
    times rising, occurred times a little before them (one in fifty a week late)."""
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        for publish in range(PUBLISHES):
            conn.execute(
                """
                insert into core.lms_activity (
                    statement_id, learner_identifier, learner_identifier_type, event_type, verb_id,
                    occurred_at, is_timestamp_assumed_utc, stored_at, is_voided, loaded_at
                )
                select
                    format('%%s-%%s', %(publish)s, n), format('learner-%%s', n %% 500), 'account',
                    'completion',
                    'http://adlnet.gov/expapi/verbs/completed',
                    %(first_stored)s::timestamptz + n * interval '1 second'
                        - case when n %% 50 = 0 then interval '7 days' else interval '5 minutes' end,
                    false, %(first_stored)s::timestamptz + n * interval '1 second', false, %(loaded)s
                from generate_series(0, %(rows)s - 1) as n
                """,
                {
                    "publish": publish,
                    "first_stored": stored_at(publish, 0),
                    "loaded": loaded_at(publish),
                    "rows": ROWS_PER_PUBLISH,
                },
            )
        # what autosummarize does shortly after a publish, and the statistics the planner reads
        conn.execute("vacuum analyze core.lms_activity")
    return warehouse_dsn


def heap_pages_read(
    conn: psycopg.Connection, statement: sql.Composable, params: dict
) -> tuple[set[str], int]:
    """The index(es) the executed plan scanned, and the table pages its bitmap heap scans visited."""
    nodes = list(plan_nodes(conn, statement, params, analyze=True))
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], nodes
    indexes = {n["Index Name"] for n in nodes if n["Node Type"] == "Bitmap Index Scan"}
    pages = sum(
        n.get("Exact Heap Blocks", 0) + n.get("Lossy Heap Blocks", 0)
        for n in nodes
        if n["Node Type"] == "Bitmap Heap Scan"
    )
    return indexes, pages


def table_pages(conn: psycopg.Connection) -> int:
    return conn.execute(
        "select pg_relation_size('core.lms_activity') / current_setting('block_size')::int"
    ).fetchone()[0]


def test_the_times_of_the_lms_tables_have_block_range_indexes_and_no_b_tree(warehouse_dsn: str) -> None:
    with psycopg.connect(warehouse_dsn) as conn:
        indexes = dict(
            conn.execute(
                "select schemaname || '.' || indexname, indexdef from pg_indexes"
                " where (schemaname, tablename) in (('core', 'lms_activity'), ('raw', 'lms_statement'))"
            ).fetchall()
        )
    assert {name: ("using brin" in definition.lower()) for name, definition in indexes.items()} == {
        "core.lms_activity_pkey": False,
        "core.lms_activity_learner_idx": False,
        "core.lms_activity_loaded_brin": True,
        "core.lms_activity_stored_brin": True,
        "core.lms_activity_occurred_brin": True,
        "raw.lms_statement_pkey": False,
        "raw.lms_statement_void_target_idx": False,
        "raw.lms_statement_stored_brin": True,
    }


@pytest.mark.parametrize("time_column", ["loaded_at", "stored_at"])
def test_a_high_water_mark_is_the_latest_time_and_reads_only_what_was_published_above_the_previous_one(
    published_activity: str, time_column: str
) -> None:
    last = PUBLISHES - 1
    latest = loaded_at(last) if time_column == "loaded_at" else stored_at(last, ROWS_PER_PUBLISH - 1)
    previous = (
        loaded_at(last - 1) if time_column == "loaded_at" else stored_at(last - 1, ROWS_PER_PUBLISH - 1)
    )
    with psycopg.connect(published_activity) as conn:
        assert activity_high_water(conn, time_column, None) == latest  # no mark yet: every row is read
        assert activity_high_water(conn, time_column, previous) == latest
        assert activity_high_water(conn, time_column, latest) == latest
        # a mark above every row (the rows that set it were deleted since) does not move back
        assert activity_high_water(conn, time_column, latest + timedelta(days=1)) == latest + timedelta(
            days=1
        )

        indexes, pages = heap_pages_read(conn, high_water_query(time_column), {"above": previous})
        assert indexes == {f"lms_activity_{time_column.removesuffix('_at')}_brin"}
        # the last publish's pages and the range it shares with the one before, of about 40 times as many
        assert pages <= 2 * PAGES_PER_RANGE < table_pages(conn) / 4


def test_activity_loaded_since_a_mark_and_todays_activity_are_found_through_the_block_range_indexes(
    published_activity: str,
) -> None:
    last = PUBLISHES - 1
    with psycopg.connect(published_activity) as conn:
        loaded_since = sql.SQL("select count(*) from core.lms_activity where loaded_at > %(since)s")
        indexes, pages = heap_pages_read(conn, loaded_since, {"since": loaded_at(last - 1)})
        assert indexes == {"lms_activity_loaded_brin"}
        assert pages <= 2 * PAGES_PER_RANGE < table_pages(conn) / 4
        assert conn.execute(loaded_since, {"since": loaded_at(last - 1)}).fetchone() == (ROWS_PER_PUBLISH,)

        # the provisional "today" view's filter: occurred on the last publish's day
        day_start = stored_at(last, 0).replace(hour=0, minute=0, second=0)
        occurred_on = sql.SQL(
            "select count(*) from core.lms_activity where occurred_at >= %(start)s and occurred_at < %(end)s"
        )
        window = {"start": stored_at(last, 0), "end": day_start + timedelta(days=1)}
        indexes, pages = heap_pages_read(conn, occurred_on, window)
        assert indexes == {"lms_activity_occurred_brin"}
        assert pages <= 2 * PAGES_PER_RANGE < table_pages(conn) / 4
