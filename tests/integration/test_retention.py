"""Retention on the real PostgreSQL: what is purged, what is kept, and that features and reports for
dates still in retention are unchanged after a purge (and after restating them)."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.databases import admin_execute, dsn_for
from tests.integration.hris_helpers import compensation_bytes, csv_bytes
from tests.integration.test_hris_ingest import deliver, five_employees, run_pipeline
from tests.integration.test_identity_resolution import lms_user, query
from tests.integration.test_turnover_features import (
    AFTER_D,
    D,
    enterprise,
    inputs_complete_through,
    lms_read_through,
)
from turnover_signals.config import load_config
from turnover_signals.features.build import (
    NON_FEATURE_COLUMNS,
    build_features,
    feature_columns,
    rebuild_matches,
    training_set_lines,
)
from turnover_signals.hris.history import build_employee_history
from turnover_signals.identity.report import latest_reconciliation, reconciliation_lines
from turnover_signals.identity.resolve import resolve_identities
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.retention.purge import VOIDED_VERB, apply_retention

RUN = RunIdentity(dag_id="warehouse_retention", run_id="test-run", task_id="apply_retention", try_number=1)


def retention_config(tmp_path, **retention):
    config = load_config(
        {
            "hris": {
                "landing_dir": str(tmp_path / "landing"),
                "download_max_backoff_seconds": 0.2,
                "stable_listing_seconds": 0.2,  # files here come without control files, whole
            }
        },
        use_variable=False,
    )
    config["identity"]["min_active_lms_match_rate"] = 0
    config["features"]["initial_backfill_month_ends"] = 0
    config["features"]["max_null_fraction"] = dict.fromkeys(config["features"]["max_null_fraction"], 1.0)
    config["retention"].update(retention)
    return config


def mirror_activity_into_raw(conn):
    """The feature tests write core.lms_activity directly; give each row its raw statement."""
    conn.execute(
        """
        insert into raw.lms_statement (statement_id, stored_at, occurred_at, statement, source,
            batch_id, loaded_at)
        select statement_id, stored_at, occurred_at, jsonb_build_object('id', statement_id, 'verb',
               jsonb_build_object('id', verb_id)), 'xapi:lms_api', 'b1', stored_at
        from core.lms_activity
        """
    )
    old = datetime(2024, 1, 1, tzinfo=UTC)
    conn.execute(
        "insert into raw.lms_statement (statement_id, stored_at, statement, source, batch_id, loaded_at) "
        "values ('s-void', %s, jsonb_build_object('verb', jsonb_build_object('id', %s::text)), 'x', 'b0', "
        "%s)",
        (old, VOIDED_VERB, old),
    )
    conn.execute(
        "insert into raw.lms_statement_rejected values ('sha-old', 'bad', null, '{\"pii\": \"x\"}', 'x', "
        "'b0', %s), ('sha-new', 'bad', null, '{}', 'x', 'b9', %s)",
        (old, AFTER_D),
    )


def published(conn, version=2):
    # What a restatement legitimately changes (when and by which build) is left out.
    columns = ", ".join(
        c for c in feature_columns(conn) if c not in NON_FEATURE_COLUMNS or c == "lms_cutoff_date"
    )
    return {
        "features": conn.execute(
            f"select employee_key, reference_date, {columns} from mart.employee_features"  # noqa: S608
            " order by 1, 2"
        ).fetchall(),
        "labels": conn.execute("select * from mart.turnover_label order by 1, 2, 3").fetchall(),
        "training_set_report": training_set_lines(conn, version),
        "identity_report": reconciliation_lines(latest_reconciliation(conn)),
        "activity": conn.execute("select * from core.lms_activity order by 1").fetchall(),
    }


def test_purge_leaves_features_and_reports_for_dates_in_retention_unchanged(warehouse_dsn, tmp_path):
    config = retention_config(
        tmp_path, raw_days=300, quarantined_file_days=90
    )  # on AFTER_D: cutoff 2025-09-13
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        enterprise(conn)
        mirror_activity_into_raw(conn)
        inputs_complete_through(conn, D)
    resolve_identities(config, dsn=warehouse_dsn)
    build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    with psycopg.connect(warehouse_dsn) as conn:
        before = published(conn)

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=AFTER_D)

    assert summary["purges"]["raw.lms_statement"] == {"rows": 1, "files": 0}  # s-old, stored 2025-06-01
    assert summary["purges"]["raw.lms_statement_rejected"] == {"rows": 1, "files": 0}
    remaining = {s for (s,) in query(warehouse_dsn, "select statement_id from raw.lms_statement")}
    assert (
        "s-old" not in remaining and "s-void" in remaining
    )  # voids stay: a late copy of a target is still voided
    with psycopg.connect(warehouse_dsn) as conn:
        assert published(conn) == before
    # Rebuilding the date in retention, with the daily aggregate recomputed, gives the same features.
    build_features(config, dsn=warehouse_dsn, reference_dates=[D], full_daily_rebuild=True)
    assert rebuild_matches(config, [D], dsn=warehouse_dsn)["matched"]
    with psycopg.connect(warehouse_dsn) as conn:
        assert published(conn) == before
    audit = query(
        warehouse_dsn,
        "select purge_target, rows_purged, mode, cutoff_at, run_id from audit.retention_purge"
        " where rows_purged > 0 order by 1",
    )
    assert audit == [
        ("raw.lms_statement", 1, "purge", AFTER_D - timedelta(days=300), "test-run"),
        ("raw.lms_statement_rejected", 1, "purge", AFTER_D - timedelta(days=90), "test-run"),
    ]
    # A rerun finds nothing more to purge, and audit rows are never purged.
    again = apply_retention(config, RUN, dsn=warehouse_dsn, now=AFTER_D)
    assert {
        target: counts["rows"] + counts["files"] for target, counts in again["purges"].items()
    } == dict.fromkeys(again["purges"], 0)
    assert query(warehouse_dsn, "select count(*) from audit.retention_purge") == [(20,)]  # 10 steps, twice


def test_superseded_partitions_and_landed_files_go_quarantined_files_stay_longer_history_unchanged(
    sftp_drop, warehouse_dsn, tmp_path, monkeypatch
):
    for key, value in sftp_drop.airflow_connection_env().items():
        monkeypatch.setenv(key, value)
    hris_dir = sftp_drop.root_dir / "outbound" / "hris"
    config = retention_config(
        tmp_path, raw_days=30, quarantined_file_days=60, mode="archive", archive_dir=str(tmp_path / "archive")
    )
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    run_pipeline(config, warehouse_dsn)
    corrected = hris_dir / "employees_20260105.csv"
    corrected.write_bytes(csv_bytes(five_employees(e2={"base_salary": "99000.00"})))
    (hris_dir / "employees_20260105.csv.ctl").unlink()
    later = corrected.stat().st_mtime + 60
    os.utime(corrected, (later, later))
    deliver(sftp_drop, hris_dir, "employees_20260112.csv", b"not,a,valid\nfile", control=False)  # quarantined
    sftp_drop.sync()
    run_pipeline(config, warehouse_dsn)
    statuses = sorted(s for (s,) in query(warehouse_dsn, "select status from audit.file_manifest"))
    assert statuses == ["loaded", "quarantined", "superseded"]
    # The ingest lands published files only; an operator kept a copy of the quarantined one for the vendor.
    kept_for_vendor = tmp_path / "landing" / "quarantined" / "employees_20260112.csv"
    kept_for_vendor.parent.mkdir(parents=True)
    kept_for_vendor.write_bytes(b"not,a,valid\nfile")
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            "update audit.file_manifest set landed_path = %s where status = 'quarantined'",
            (str(kept_for_vendor),),
        )
    landed = [
        Path(p)
        for (p,) in query(warehouse_dsn, "select landed_path from audit.file_manifest order by status")
    ]
    assert all(path.is_file() for path in landed)
    history = query(warehouse_dsn, "select * from core.employee_history order by 1, 2")

    # Someone with USAGE on raw pinned the superseded file's partition: it must not outlive retention.
    superseded_sha = query(
        warehouse_dsn, "select sha256 from audit.file_manifest where status = 'superseded'"
    )[0][0]
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        partition = sql.Identifier("raw", f"hris_employee_snapshot_{superseded_sha[:16]}")
        conn.execute(sql.SQL("create view staging.pin as select * from {}").format(partition))
        conn.execute(sql.SQL("create table staging.pin_array (pinned {}[])").format(partition))

    received = query(warehouse_dsn, "select max(received_at) from audit.file_manifest")[0][0]
    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=received + timedelta(days=45))

    assert summary["purges"]["raw.hris_superseded_partitions"] == {"rows": 5, "files": 0}
    assert query(warehouse_dsn, "select to_regclass('staging.pin')") == [(None,)]
    assert query(
        warehouse_dsn,
        "select count(*) from pg_attribute where attrelid = 'staging.pin_array'::regclass"
        " and attname = 'pinned' and not attisdropped",
    ) == [(0,)]
    pinned = query(
        warehouse_dsn,
        "select details from audit.retention_purge where purge_target = 'raw.hris_superseded_partitions'",
    )
    assert pinned[0][0]["files"][0]["dropped_dependents"] == [
        "column pinned of table staging.pin_array",
        "view staging.pin",
    ]
    assert summary["purges"]["raw.hris_loaded_partitions"] == {"rows": 5, "files": 0}  # sealed into core
    assert summary["purges"]["landed_hris_files"] == {"rows": 0, "files": 2}
    assert summary["purges"]["landed_quarantined_files"] == {"rows": 0, "files": 0}  # 45 < 60 days
    assert [path.is_file() for path in landed] == [False, True, False]  # loaded, quarantined, superseded
    assert query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(0,)]
    archived = sorted(p.name for p in (tmp_path / "archive").rglob("*") if p.is_file())
    assert len(archived) == 4 and sum(name.endswith(".csv.gz") for name in archived) == 2
    for partition_archive in (tmp_path / "archive").rglob("hris_employee_snapshot__*.csv.gz"):
        assert gzip.decompress(partition_archive.read_bytes()).decode().count("\n") == 6  # header + 5 rows
    # The history is rebuilt from the loaded snapshot's baseline: purging both partitions changes nothing.
    run_pipeline(config, warehouse_dsn)
    assert query(warehouse_dsn, "select * from core.employee_history order by 1, 2") == history
    assert len(query(warehouse_dsn, "select * from audit.file_manifest")) == 3  # audit rows are kept

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=received + timedelta(days=61))
    assert summary["purges"]["landed_quarantined_files"] == {"rows": 0, "files": 1}
    assert not landed[1].exists()


# -- sealing loaded HRIS files ------------------------------------------------------------------

SEALING_NOW = datetime(
    2026, 2, 14, 12, tzinfo=UTC
)  # raw_days=30: cutoff 2026-01-15 12:00, after the 01-12 files
IN_RETENTION = date(2026, 1, 19)  # the newest employees file: its inputs are complete
SEAL_TABLES = ("hris_sealed_file", "employee_snapshot_baseline", "compensation_change_baseline")
# Columns that say when or by which run a row was built; a rebuild legitimately changes them.
BUILD_COLUMNS = {"build_id", "built_at"}


def comp_change(employee_id, effective, change_type, before, after):
    return {
        "employee_id": employee_id,
        "effective_date": effective,
        "change_type": change_type,
        "previous_base_salary": before,
        "new_base_salary": after,
        "currency": "GBP",
    }


def _file_date(name):
    """06:00 UTC on the date in a feed file's name."""
    return datetime.strptime(name.split("_")[1][:8], "%Y%m%d").replace(hour=6, tzinfo=UTC)


def deliver_and_load(server, hris_dir, config, dsn, files, received_at=None):
    """Deliver files (name -> bytes), ingest them through the real path, and rebuild the history with each
    file dated as received at `received_at` (by default 06:00 UTC the day after its file date), so that
    ages and known_at are deterministic."""
    for name, data in files.items():
        deliver(server, hris_dir, name, data)
        # delivered (modified on the server) when received: a correction is known from its delivery
        delivered = (received_at or _file_date(name) + timedelta(days=1)).timestamp()
        for path in (hris_dir / name, hris_dir / f"{name}.ctl"):
            os.utime(path, (delivered, delivered))
        server.sync()
    _results, errors = run_pipeline(config, dsn)
    assert errors == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in files:
            at = received_at or _file_date(name) + timedelta(days=1)
            conn.execute(
                "update audit.file_manifest set received_at = %s where file_name = %s and received_at ="
                " (select max(received_at) from audit.file_manifest where file_name = %s)",
                (at, name, name),
            )
    return build_employee_history(config, dsn)


def lms_directory_with_history(conn):
    """Three LMS users; u-1's first version closed before the cutoff, u-2's after it."""
    versions = [
        ("u-1", "old1@northwind.example", datetime(2025, 11, 1, tzinfo=UTC), 1),
        ("u-1", "person1@northwind.example", datetime(2025, 12, 1, tzinfo=UTC), 1),
        ("u-2", "old2@northwind.example", datetime(2025, 12, 1, tzinfo=UTC), 2),
        ("u-2", "person2@northwind.example", datetime(2026, 2, 1, tzinfo=UTC), 2),
        ("u-3", "person3@northwind.example", datetime(2025, 12, 1, tzinfo=UTC), 3),
    ]
    for user_id, email, modified, n in versions:
        lms_user(
            conn,
            user_id,
            email=email,
            created=modified,
            external_id=f"00000000-0000-4000-8000-{n:012d}",
            extracted_at=modified,
        )
    conn.execute(
        """
        update raw.lms_user as version set valid_to = ordered.next_modified_at
        from (select lms_user_id, last_modified_at,
                     lead(last_modified_at) over (partition by lms_user_id order by last_modified_at) as
                         next_modified_at
              from raw.lms_user) as ordered
        where version.lms_user_id = ordered.lms_user_id
            and version.last_modified_at = ordered.last_modified_at
        """
    )


def derived_tables(dsn):
    """Full contents of every table in core (but the seal's own) and mart, without build bookkeeping."""
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables where table_schema in ('core', "
            "'mart') and table_type = 'BASE TABLE' and not table_name = any(%s) order by 1, 2",
            (list(SEAL_TABLES),),
        ).fetchall()
        contents = {}
        for schema, table in tables:
            columns = [
                c
                for (c,) in conn.execute(
                    "select column_name from information_schema.columns where table_schema = %s and "
                    "table_name = %s order by ordinal_position",
                    (schema, table),
                ).fetchall()
                if c not in BUILD_COLUMNS
            ]
            select = sql.SQL("select {} from {}").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(schema, table)
            )
            contents[f"{schema}.{table}"] = sorted(map(repr, conn.execute(select).fetchall()))
        return contents


def history_tables(dsn):
    return {
        "employee_history": query(
            dsn, "select * from core.employee_history order by employee_id, valid_from"
        ),
        "compensation_event": query(dsn, "select * from core.compensation_event order by 1, 2, 3"),
    }


@pytest.fixture
def clone_warehouse():
    """Copies a warehouse as it is now (PostgreSQL's template copy); the copies are dropped afterwards."""
    created = []

    def clone(dsn):
        source = dsn.rpartition("/")[2]
        created.append(f"{source}_twin")
        admin_execute(f'create database "{created[-1]}" template "{source}"')
        return dsn_for(created[-1])

    yield clone
    for name in created:
        admin_execute(f'drop database if exists "{name}" with (force)')


def test_sealing_drops_loaded_hris_partitions_and_changes_nothing_derived(
    sftp_drop, hris_dir, warehouse_dsn, tmp_path, clone_warehouse
):
    config = retention_config(tmp_path, raw_days=30, quarantined_file_days=30)
    rows = five_employees
    deliver_and_load(
        sftp_drop,
        hris_dir,
        config,
        warehouse_dsn,
        {
            "employees_20260105.csv": csv_bytes(rows()),
            "compensation_20260105.csv": compensation_bytes(
                [comp_change("E000003", "2026-01-01", "merit", "50003.00", "52000.00")]
            ),
            "employees_20260112.csv": csv_bytes(
                rows(e3={"job_level": "4"})[:4]
            ),  # E5 vanishes inside the sealed period
            "compensation_20260112.csv": compensation_bytes(
                [
                    comp_change(
                        "E000003", "2026-01-01", "merit", "50003.00", "52500.00"
                    ),  # re-sent: replaces 01-05's
                    comp_change("E000002", "2026-01-10", "promotion", "50002.00", "55000.125"),
                ]
            ),
            "employees_20260119.csv": csv_bytes(rows(e3={"job_level": "4"}, e4={"base_salary": "60004.5"})),
            "compensation_20260119.csv": compensation_bytes(
                [comp_change("E000002", "2026-01-10", "promotion", "50002.00", "56000.00")]
            ),  # replaces a sealed winner
        },
    )
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        lms_directory_with_history(conn)
        lms_read_through(conn, datetime(2026, 1, 21, tzinfo=UTC))
    resolve_identities(config, dsn=warehouse_dsn, full=True)
    build_features(config, dsn=warehouse_dsn, reference_dates=[IN_RETENTION])
    before = derived_tables(warehouse_dsn)
    assert len(before["core.employee_history"]) == 8 and len(before["mart.employee_features"]) == 5
    never_purged = clone_warehouse(warehouse_dsn)

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=SEALING_NOW)

    # (a) The partitions of the 01-05 and 01-12 files are gone and recorded, with names and hashes;
    # the 01-19 files (received after the cutoff) and u-2's old version (closed after it) stay.
    assert summary["purges"]["raw.hris_loaded_partitions"] == {"rows": 12, "files": 0}  # 5 + 4 + 1 + 2
    assert summary["purges"]["raw.lms_user"] == {"rows": 1, "files": 0}
    assert query(warehouse_dsn, "select distinct snapshot_date from raw.hris_employee_snapshot") == [
        (date(2026, 1, 19),)
    ]
    assert query(warehouse_dsn, "select count(*) from raw.hris_compensation_change") == [(1,)]
    assert query(warehouse_dsn, "select lms_user_id, work_email from raw.lms_user order by 1, 2") == [
        ("u-1", "person1@northwind.example"),
        ("u-2", "old2@northwind.example"),
        ("u-2", "person2@northwind.example"),
        ("u-3", "person3@northwind.example"),
    ]
    (details,) = query(
        warehouse_dsn,
        "select details from audit.retention_purge where purge_target = 'raw.hris_loaded_partitions'",
    )[0]
    manifest = dict(query(warehouse_dsn, "select file_name, sha256 from audit.file_manifest"))
    assert sorted((f["file_name"], f["sha256"], f["rows"]) for f in details["files"]) == sorted(
        (name, manifest[name], n)
        for name, n in (
            ("employees_20260105.csv", 5),
            ("employees_20260112.csv", 4),
            ("compensation_20260105.csv", 1),
            ("compensation_20260112.csv", 2),
        )
    )
    assert details["sealed_through"] == {"employees": "2026-01-12", "compensation": "2026-01-12"}

    # (b) Rebuilt from scratch after the purge, history, identity, features and labels are unchanged.
    build_employee_history(config, warehouse_dsn)
    resolve_identities(config, dsn=warehouse_dsn, full=True)
    build_features(config, dsn=warehouse_dsn, reference_dates=[IN_RETENTION], full_daily_rebuild=True)
    assert rebuild_matches(config, [IN_RETENTION], dsn=warehouse_dsn)["matched"]
    assert derived_tables(warehouse_dsn) == before

    # (d) A rerun purges nothing and changes nothing.
    sealed = {
        table: query(warehouse_dsn, f"select * from core.{table} order by 1, 2")  # noqa: S608
        for table in SEAL_TABLES
    }
    again = apply_retention(config, RUN, dsn=warehouse_dsn, now=SEALING_NOW)
    assert all(counts == {"rows": 0, "files": 0} for counts in again["purges"].values()), again
    assert {
        table: query(warehouse_dsn, f"select * from core.{table} order by 1, 2")  # noqa: S608
        for table in SEAL_TABLES
    } == sealed
    build_employee_history(config, warehouse_dsn)
    assert derived_tables(warehouse_dsn) == before

    # (c) New files after the purge - a correction of the 01-19 snapshot (in retention) and the next
    # week's files - give the same history as in the warehouse that never purged.
    later = {
        "employees_20260119.csv": csv_bytes(
            rows(e2={"department": "Sales"}, e3={"job_level": "4"}, e4={"base_salary": "60004.5"})
        ),
        "employees_20260126.csv": csv_bytes(
            rows(
                e1={"termination_date": "2026-01-23", "termination_type": "Resignation"},
                e3={"job_level": "4"},
                e4={"base_salary": "60004.50"},
            )[:4]
        ),
        "compensation_20260126.csv": compensation_bytes(
            [comp_change("E000003", "2026-01-01", "merit", "50003.00", "53000.00")]
        ),
    }
    for dsn in (warehouse_dsn, never_purged):
        deliver_and_load(sftp_drop, hris_dir, config, dsn, later)
    statuses = (
        "select status from audit.file_manifest "
        "where file_name = 'employees_20260119.csv' order by received_at"
    )
    assert query(warehouse_dsn, statuses) == [("superseded",), ("loaded",)]
    history = history_tables(warehouse_dsn)
    assert len(history["employee_history"]) == 12
    assert history == history_tables(never_purged)

    # A late correction of a sealed date loads, but the closed period keeps its sealed version (and says so);
    # the next retention run drops its partition too.
    late = {"employees_20260112.csv": csv_bytes(rows(e3={"job_level": "5"})[:4])}
    built = deliver_and_load(
        sftp_drop, hris_dir, config, warehouse_dsn, late, SEALING_NOW + timedelta(days=1)
    )
    assert built["files_in_sealed_periods_ignored"] == 1
    assert history_tables(warehouse_dsn) == history
    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=SEALING_NOW + timedelta(days=60))
    assert query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(0,)]
    build_employee_history(config, warehouse_dsn)
    assert history_tables(warehouse_dsn) == history


def test_sealed_snapshots_keep_the_vendor_job_level_and_map_it_like_live_ones(
    sftp_drop, hris_dir, warehouse_dsn, tmp_path
):
    config = retention_config(tmp_path, raw_days=30, quarantined_file_days=30)
    files = {
        f"employees_202601{day}.csv": csv_bytes(five_employees(e3={"job_level": "IC4"}))
        for day in ("05", "19")
    }
    deliver_and_load(sftp_drop, hris_dir, config, warehouse_dsn, files)
    before = history_tables(warehouse_dsn)

    apply_retention(config, RUN, dsn=warehouse_dsn, now=SEALING_NOW)
    build_employee_history(config, warehouse_dsn)

    baseline = (
        "select job_level, job_level_raw from core.employee_snapshot_baseline where employee_id = 'E000003'"
    )
    assert query(warehouse_dsn, baseline) == [(4, "IC4")]
    assert history_tables(warehouse_dsn) == before
    history = query(
        warehouse_dsn,
        "select valid_from, valid_to, job_level, job_level_raw, job_level_label from core.employee_history"
        " where employee_id = 'E000003'",
    )
    assert history == [(date(2026, 1, 5), None, 4, "IC4", "individual contributor")]


def test_a_retention_run_purges_as_of_its_own_date_not_the_wall_clock(
    warehouse_dsn, airflow_metadata_db, monkeypatch
):
    """Cleared or run late, a retention run purges as of its logical date (issue: the demo once purged its
    synthetic 2024 as "older than 730 days" of today's clock although its enterprise ends in 2026-10)."""
    import json

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv(
        "AIRFLOW_CONN_ANALYTICS_PSEUDONYM", json.dumps({"conn_type": "generic", "password": "k" * 48})
    )
    logical = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    days = int(load_config(use_variable=False)["retention"]["raw_days"])
    kept_by_the_run = logical - timedelta(days=days) + timedelta(days=10)  # older than that before today
    purged_by_the_run = logical - timedelta(days=days) - timedelta(days=10)
    assert kept_by_the_run < datetime.now(UTC) - timedelta(days=days)  # the wall clock would purge it
    with psycopg.connect(warehouse_dsn) as conn:
        for n, stored in enumerate((kept_by_the_run, purged_by_the_run), start=1):
            conn.execute(
                "insert into raw.lms_statement (statement_id, stored_at, occurred_at, statement, source, "
                "batch_id, loaded_at) values (%s, %s, %s, %s, 'xapi:lms_api', 'b', now())",
                (f"00000000-0000-0000-0000-00000000000{n}", stored, stored, json.dumps({"id": n})),
            )
    dag = DagBag(
        dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / "warehouse_retention.py")
    ).get_dag("warehouse_retention")
    run = dag.test(logical_date=logical)
    assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    with psycopg.connect(warehouse_dsn) as conn:
        left = [r[0] for r in conn.execute("select stored_at from raw.lms_statement").fetchall()]
        cutoffs = {
            r[0]
            for r in conn.execute(
                "select cutoff_at from audit.retention_purge where purge_target = 'raw.lms_statement'"
            ).fetchall()
        }
    assert left == [kept_by_the_run]
    assert cutoffs == {logical - timedelta(days=days)}
