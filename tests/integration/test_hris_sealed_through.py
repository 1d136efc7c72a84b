"""core.hris_sealed_through: the one place that says how far retention sealed each HRIS feed."""

from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from turnover_signals.hris.history import files_in_sealed_periods
from turnover_signals.retention.seal import files_to_seal

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
# Everything that needs a feed's sealed-through date reads it from the view.
SEALED_THROUGH_USERS = (
    "include/sql/core/employee_history.sql",
    "include/sql/core/compensation_event_version.sql",
    "plugins/turnover_signals/hris/history.py",
    "plugins/turnover_signals/retention/seal.py",
    "plugins/turnover_signals/retention/purge.py",
)
RECEIVED_AT = datetime(2026, 1, 10, tzinfo=UTC)


def _seal(conn, feed, file_date):
    conn.execute(
        """
        insert into core.hris_sealed_file (
            feed, sha256, file_name, file_date, received_at, rows_sealed, sealed_at
        )
        values (%(feed)s, %(sha)s, %(name)s, %(date)s, %(at)s, 1, %(at)s)
        """,
        {
            "feed": feed,
            "sha": f"{feed}-{file_date}",
            "name": f"{feed}_{file_date}.csv",
            "date": file_date,
            "at": RECEIVED_AT,
        },
    )


def _load(conn, feed, file_date, sha=None, status="loaded"):
    conn.execute(
        """
        insert into audit.file_manifest (file_name, sha256, feed, file_date, size_bytes, received_at, status)
        values (%(name)s, %(sha)s, %(feed)s, %(date)s, 1, %(at)s, %(status)s)
        """,
        {
            "name": f"{feed}_{file_date}.csv",
            "sha": sha or f"{feed}-{file_date}",
            "feed": feed,
            "date": file_date,
            "at": RECEIVED_AT,
            "status": status,
        },
    )


@pytest.fixture
def warehouse(warehouse_dsn):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        yield conn


def test_each_feed_is_sealed_through_its_last_sealed_file(warehouse):
    for file_date in (date(2025, 1, 1), date(2025, 1, 3), date(2025, 1, 2)):
        _seal(warehouse, "employees", file_date)
    _seal(warehouse, "compensation", date(2024, 12, 31))

    rows = warehouse.execute("select feed, sealed_through_date from core.hris_sealed_through order by feed")
    assert rows.fetchall() == [("compensation", date(2024, 12, 31)), ("employees", date(2025, 1, 3))]


def test_a_feed_nothing_was_sealed_of_has_no_row(warehouse):
    _seal(warehouse, "employees", date(2025, 1, 1))
    assert warehouse.execute(
        "select count(*) from core.hris_sealed_through where feed = 'compensation'"
    ).fetchone() == (0,)


def test_a_file_loaded_into_a_sealed_period_is_reported(warehouse):
    for file_date in (date(2025, 1, 1), date(2025, 1, 3)):
        _seal(warehouse, "employees", file_date)
        _load(warehouse, "employees", file_date)
    _load(warehouse, "employees", date(2025, 1, 2), sha="a late correction")
    _load(warehouse, "employees", date(2025, 1, 4))

    assert files_in_sealed_periods(warehouse) == ["employees_2025-01-02.csv"]


def test_sealing_goes_on_after_the_sealed_through_date(warehouse):
    _seal(warehouse, "compensation", date(2025, 1, 2))
    for file_date in (date(2025, 1, 1), date(2025, 1, 2), date(2025, 1, 3), date(2025, 1, 4)):
        _load(warehouse, "compensation", file_date)

    files = files_to_seal(warehouse, "compensation", cutoff=datetime(2026, 2, 1, tzinfo=UTC))
    assert [row["file_date"] for row in files] == [date(2025, 1, 3), date(2025, 1, 4)]


@pytest.mark.parametrize("user", SEALED_THROUGH_USERS)
def test_the_sealed_through_date_is_read_from_the_view(user):
    assert "core.hris_sealed_through" in (REPO_ROOT / user).read_text()
