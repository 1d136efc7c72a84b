"""HRIS facts by their knowledge time, through the real SFTP ingest: a backfill equals the day-by-day replay.

Employees files for five days travel from the real sshd through the ingest and the history build. One
warehouse receives each file on its day and builds that day; the other, like a first install, receives
them all at once and backfills the five days. The files include a correction of an earlier day,
delivered two days late, a compensation file whose raise is back-dated by a month, and a compensation
file corrected two days late (a raise's amount changed, another raise withdrawn): each may count only
from the first date whose cut-off knew it.
"""

from __future__ import annotations

import copy
import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from tests.integration.hris_helpers import compensation_bytes, csv_bytes, employee_row, write_feed_file
from tests.integration.test_turnover_features import lms_read_through
from turnover_demo.sample_servers.sftp_server import SftpSampleServer
from turnover_signals.config import load_config
from turnover_signals.features.build import build_features, rebuild_matches
from turnover_signals.hris.history import build_employee_history
from turnover_signals.hris.ingest import ingest_file, list_pending_files
from turnover_signals.identity.resolve import resolve_identities
from turnover_signals.quality.gate import RunIdentity

pytestmark = pytest.mark.integration
RUN = RunIdentity(dag_id="hris_sftp_ingest", run_id="test-run", task_id="ingest_hris_files", try_number=1)
DAYS = [date(2026, 3, 9) + timedelta(days=n) for n in range(5)]
CORRECTED_DAY = DAYS[1]


def delivered(day: date, hour: int = 2) -> float:
    """A delivery time on the SFTP server: `hour` o'clock UTC the day after `day`."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp() + 86400


def snapshot(day: date, corrected: bool = False) -> bytes:
    """Five employees; E3 is promoted to level 4 from the second day on (the second day's first file missed
    it, its correction has it); E5 leaves after the third day (absent from the fourth day's file)."""
    rows = []
    for n in range(1, 6):
        if n == 5 and day >= DAYS[3]:
            continue
        promoted = n == 3 and (day > CORRECTED_DAY or (day == CORRECTED_DAY and corrected))
        rows.append(employee_row(n, job_level="4" if promoted else "3"))
    # rows in another order each day (and in the correction): files with the bytes of another day's file are
    # recorded as duplicates and not loaded
    shift = (day - DAYS[0]).days + (2 if corrected else 0)
    return csv_bytes(rows[shift % len(rows) :] + rows[: shift % len(rows)])


BACKDATED_RAISE = compensation_bytes(
    [
        {
            "employee_id": "E000002",
            "effective_date": "2026-02-10",
            "change_type": "merit_increase",
            "previous_base_salary": "50002.00",
            "new_base_salary": "52000.00",
            "currency": "GBP",
        },
    ]
)
PAY_DAY = DAYS[2]


def raises(corrected: bool = False) -> bytes:
    """E4's raise (4 %, corrected to 6 %) and E1's market adjustment (withdrawn by the correction), both
    effective on the third day."""
    rows = [
        {
            "employee_id": "E000004",
            "effective_date": f"{PAY_DAY:%Y-%m-%d}",
            "change_type": "merit_increase",
            "previous_base_salary": "50000.00",
            "new_base_salary": "53000.00" if corrected else "52000.00",
            "currency": "GBP",
        }
    ]
    if not corrected:
        rows.append(
            {
                "employee_id": "E000001",
                "effective_date": f"{PAY_DAY:%Y-%m-%d}",
                "change_type": "market_adjustment",
                "previous_base_salary": "60000.00",
                "new_base_salary": "61200.00",
                "currency": "GBP",
            }
        )
    return compensation_bytes(rows)


def deliveries() -> list[tuple[date, str, bytes, float]]:
    """(the day it arrives, file name, bytes, SFTP modification time), in order of arrival."""
    files = [(day, f"employees_{day:%Y%m%d}.csv", snapshot(day), delivered(day)) for day in DAYS]
    # the correction of the second day arrives with the fourth day's file, two days late
    files.insert(
        4,
        (
            DAYS[3],
            f"employees_{CORRECTED_DAY:%Y%m%d}.csv",
            snapshot(CORRECTED_DAY, corrected=True),
            delivered(DAYS[3], 1),
        ),
    )
    files.append((DAYS[4], f"compensation_{DAYS[4]:%Y%m%d}.csv", BACKDATED_RAISE, delivered(DAYS[4])))
    files.insert(3, (PAY_DAY, f"compensation_{PAY_DAY:%Y%m%d}.csv", raises(), delivered(PAY_DAY)))
    # the correction of the third day's pay changes arrives with the fifth day's files
    files.append(
        (DAYS[4], f"compensation_{PAY_DAY:%Y%m%d}.csv", raises(corrected=True), delivered(DAYS[4], 1))
    )
    return files


def is_correction(delivery: tuple[date, str, bytes, float]) -> bool:
    """A later delivery of a file name delivered before (the SFTP directory holds one file per name)."""
    earlier = deliveries()[: deliveries().index(delivery)]
    return any(name == delivery[1] for _, name, _, _ in earlier)


@pytest.fixture
def sftp_dir(tmp_path, monkeypatch):
    root = tmp_path / "sftp-root"
    (root / "outbound" / "hris").mkdir(parents=True)
    with SftpSampleServer(root) as server:
        for key, value in server.airflow_connection_env().items():
            monkeypatch.setenv(key, value)
        yield server, root / "outbound" / "hris"


@pytest.fixture
def config():
    config = copy.deepcopy(load_config(use_variable=False))
    config["identity"]["min_active_lms_match_rate"] = 0  # HR only: nobody has an LMS account here
    config["features"]["initial_backfill_month_ends"] = 0
    config["features"]["max_null_fraction"] = dict.fromkeys(config["features"]["max_null_fraction"], 1.0)
    return config


def deliver(server: SftpSampleServer, directory: Path, name: str, data: bytes, mtime: float) -> None:
    path = write_feed_file(directory, name, data)
    for written in (path, directory / (name + ".ctl")):
        os.utime(written, (mtime, mtime))
    server.sync()


def load_pending(config, dsn) -> None:
    for remote in list_pending_files(config, dsn):
        ingest_file(remote, config, RUN, dsn)
    build_employee_history(config, dsn)
    resolve_identities(config, dsn=dsn)


def feature_rows(dsn):
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from mart.employee_features order by reference_date, hris_employee_id")
        return [{k: v for k, v in row.items() if k not in ("built_at", "build_id")} for row in cur]


def lms_read_past(dsn, day):
    with psycopg.connect(dsn, autocommit=True) as conn:
        lms_read_through(conn, datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=2))


def test_a_backfill_of_hris_files_equals_their_day_by_day_replay(
    sftp_dir, config, warehouse_dsn, make_warehouse
):
    server, directory = sftp_dir
    replay, backfill = warehouse_dsn, make_warehouse()
    for day in DAYS:
        for _, name, data, mtime in (d for d in deliveries() if d[0] == day):
            deliver(server, directory, name, data, mtime)
        load_pending(config, replay)
        lms_read_past(replay, day)
        assert build_features(config, dsn=replay, reference_dates=[day])["reference_dates_built"] == [
            day.isoformat()
        ]

    for entry in directory.iterdir():
        entry.unlink()
    # a first install: every file as the SFTP server holds it, the originals (as the vendor's archive keeps
    # them) before their corrections
    for _, name, data, mtime in (d for d in deliveries() if not is_correction(d)):
        deliver(server, directory, name, data, mtime)
    load_pending(config, backfill)
    for _, name, data, mtime in (d for d in deliveries() if is_correction(d)):
        deliver(server, directory, name, data, mtime)
    load_pending(config, backfill)
    correction = next(d for d in deliveries() if is_correction(d) and d[1].startswith("employees_"))
    lms_read_past(backfill, DAYS[-1])
    built = build_features(config, dsn=backfill, reference_dates=DAYS)
    assert built["reference_dates_built"] == [day.isoformat() for day in DAYS]

    rows = feature_rows(backfill)
    assert rows == feature_rows(replay)

    def values(employee_id, column):
        return [row[column] for row in rows if row["hris_employee_id"] == employee_id]

    # the correction of the second day counts from the fourth day's cut-off on; the third day's own file
    # already showed the promotion
    assert values("E000003", "job_level") == [3, 3, 4, 4, 4]
    # the raise back-dated to February counts from the date of the file that first showed it
    assert values("E000002", "months_since_last_raise") == [None, None, None, None, 1]
    assert len(values("E000005", "tenure_days")) == 3  # gone from the fourth day's file on
    # the corrected pay file changes E4's raise and withdraws E1's from the fifth day's cut-off on only
    assert values("E000004", "last_pay_change_pct") == [None, None, Decimal("4"), Decimal("4"), Decimal("6")]
    assert values("E000001", "months_since_last_raise") == [None, None, 0, 0, None]
    # the correction is kept as what became known later: E3's history before it is a revision
    with psycopg.connect(backfill) as conn:
        revisions = conn.execute(
            "select valid_from, job_level, known_until from core.employee_history_revision"
            " where employee_id = 'E000003' order by valid_from"
        ).fetchall()
        current = conn.execute(
            "select valid_from, job_level from core.employee_history where employee_id = 'E000003' order by "
            "valid_from"
        ).fetchall()
    corrected_at = datetime.fromtimestamp(correction[3], UTC)
    assert revisions == [(DAYS[0], 3, corrected_at), (DAYS[2], 4, corrected_at)]
    assert current == [(DAYS[0], 3), (CORRECTED_DAY, 4)]
    # and rebuilding any date gives the same rows
    assert rebuild_matches(config, DAYS, dsn=backfill)["matched"]


HISTORY_TABLES = (
    ("core", "hris_file_knowledge"),
    ("core", "employee_history"),
    ("core", "employee_history_revision"),
    ("core", "compensation_event_version"),
    ("core", "compensation_event"),
)


def history_contents(dsn) -> dict[str, tuple[int, str]]:
    """Each history table's row count and an order-independent digest of its rows."""
    query = "select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {} as t"
    with psycopg.connect(dsn) as conn:
        return {
            name: conn.execute(sql.SQL(query).format(sql.Identifier(schema, name))).fetchone()
            for schema, name in HISTORY_TABLES
        }


def test_a_history_rebuild_that_fails_part_way_leaves_every_history_table_as_it_was(
    sftp_dir, config, warehouse_dsn
):
    """A correction's history committed without its revisions would show corrected data to cut-offs before
    the correction was known: the rebuild is one transaction."""
    server, directory = sftp_dir
    for _, name, data, mtime in deliveries()[:3]:  # the employees files of the first three days
        deliver(server, directory, name, data, mtime)
    load_pending(config, warehouse_dsn)
    before = history_contents(warehouse_dsn)
    correction = next(d for d in deliveries() if is_correction(d) and d[1].startswith("employees_"))
    deliver(server, directory, *correction[1:])
    for remote in list_pending_files(config, warehouse_dsn):
        ingest_file(remote, config, RUN, warehouse_dsn)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        # the last step fails (a lost session, a timeout, a full disk would), after the history was rebuilt
        conn.execute(
            "create function pg_temp_fail() returns trigger language plpgsql as "
            "$$ begin raise exception 'injected fault'; end $$"
        )
        conn.execute(
            "create trigger fail_compensation before insert on core.compensation_event "
            "for each statement execute function pg_temp_fail()"
        )
    with pytest.raises(psycopg.errors.RaiseException, match="injected fault"):
        build_employee_history(config, warehouse_dsn)
    assert history_contents(warehouse_dsn) == before
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute("drop trigger fail_compensation on core.compensation_event")
        conn.execute("drop function pg_temp_fail()")
    build_employee_history(config, warehouse_dsn)
    after = history_contents(warehouse_dsn)
    assert after["employee_history"] != before["employee_history"]
    assert after["employee_history_revision"][0] > 0  # the correction's revisions, with its history
