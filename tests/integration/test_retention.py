"""Retention on the real PostgreSQL: what is purged, what is kept, and that features and reports for
dates still in retention are unchanged after a purge (and after restating them)."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from tests.integration.hris_helpers import csv_bytes
from tests.integration.test_hris_ingest import deliver, five_employees, run_pipeline
from tests.integration.test_hris_ingest import sftp_server as sftp_server  # noqa: F401 - the module's SFTP fixture
from tests.integration.test_identity_resolution import query
from tests.integration.test_turnover_features import AFTER_D, D, enterprise
from turnover_signals.config import load_config
from turnover_signals.features.build import (
    NON_FEATURE_COLUMNS,
    build_features,
    feature_columns,
    training_set_lines,
)
from turnover_signals.identity.report import latest_reconciliation, reconciliation_lines
from turnover_signals.identity.resolve import resolve_identities
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.retention.purge import VOIDED_VERB, apply_retention

RUN = RunIdentity(dag_id="warehouse_retention", run_id="test-run", task_id="apply_retention", try_number=1)


def retention_config(tmp_path, **retention):
    config = load_config({"hris": {"landing_dir": str(tmp_path / "landing"), "download_max_backoff_seconds": 0.2}},
                         use_variable=False)  # fmt: skip
    config["identity"]["min_active_lms_match_rate"] = 0
    config["features"]["initial_backfill_month_ends"] = 0
    config["features"]["max_null_fraction"] = {}
    config["retention"].update(retention)
    return config


def mirror_activity_into_raw(conn):
    """The feature tests write core.lms_activity directly; give each row its raw statement."""
    conn.execute(
        """
        insert into raw.lms_statement (statement_id, stored_at, occurred_at, statement, source, batch_id, loaded_at)
        select statement_id, stored_at, occurred_at, jsonb_build_object('id', statement_id, 'verb',
               jsonb_build_object('id', verb_id)), 'xapi:lms_api', 'b1', stored_at
        from core.lms_activity
        """
    )
    old = datetime(2024, 1, 1, tzinfo=UTC)
    conn.execute(
        "insert into raw.lms_statement (statement_id, stored_at, statement, source, batch_id, loaded_at)"
        " values ('s-void', %s, jsonb_build_object('verb', jsonb_build_object('id', %s::text)), 'x', 'b0', %s)",
        (old, VOIDED_VERB, old),
    )
    conn.execute(
        "insert into raw.lms_statement_rejected values ('sha-old', 'bad', null, '{\"pii\": \"x\"}', 'x', 'b0', %s),"
        " ('sha-new', 'bad', null, '{}', 'x', 'b9', %s)",
        (old, AFTER_D),
    )


def published(conn, version=1):
    # What a restatement legitimately changes (when and by which build) is left out.
    columns = ", ".join(c for c in feature_columns(conn) if c not in NON_FEATURE_COLUMNS or c == "lms_cutoff_date")
    return {
        "features": conn.execute(f"select employee_key, reference_date, {columns} from mart.employee_features"  # noqa: S608
                                 " order by 1, 2").fetchall(),  # fmt: skip
        "labels": conn.execute("select * from mart.turnover_label order by 1, 2, 3").fetchall(),
        "training_set_report": training_set_lines(conn, version),
        "identity_report": reconciliation_lines(latest_reconciliation(conn)),
        "activity": conn.execute("select * from core.lms_activity order by 1").fetchall(),
    }


def test_purge_leaves_features_and_reports_for_dates_in_retention_unchanged(warehouse_dsn, tmp_path):
    config = retention_config(tmp_path, raw_days=300, quarantined_file_days=90)  # on AFTER_D: cutoff 2025-09-13
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        enterprise(conn)
        mirror_activity_into_raw(conn)
    resolve_identities(config, dsn=warehouse_dsn)
    build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    with psycopg.connect(warehouse_dsn) as conn:
        before = published(conn)

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=AFTER_D)

    assert summary["purges"]["raw.lms_statement"] == {"rows": 1, "files": 0}  # s-old, stored 2025-06-01
    assert summary["purges"]["raw.lms_statement_rejected"] == {"rows": 1, "files": 0}
    remaining = {s for (s,) in query(warehouse_dsn, "select statement_id from raw.lms_statement")}
    assert "s-old" not in remaining and "s-void" in remaining  # voids stay: a late copy of a target is still voided
    with psycopg.connect(warehouse_dsn) as conn:
        assert published(conn) == before
    # Restating the date in retention, with the daily aggregate recomputed, gives the same features.
    build_features(config, dsn=warehouse_dsn, reference_dates=[D], restate=True, full_daily_rebuild=True)
    with psycopg.connect(warehouse_dsn) as conn:
        assert published(conn) == before
    audit = query(warehouse_dsn, "select purge_target, rows_purged, mode, cutoff_at, run_id from audit.retention_purge"
                  " where rows_purged > 0 order by 1")  # fmt: skip
    assert audit == [("raw.lms_statement", 1, "purge", AFTER_D - timedelta(days=300), "test-run"),
                     ("raw.lms_statement_rejected", 1, "purge", AFTER_D - timedelta(days=90), "test-run")]  # fmt: skip
    # A rerun finds nothing more to purge, and audit rows are never purged.
    again = apply_retention(config, RUN, dsn=warehouse_dsn, now=AFTER_D)
    assert {target: counts["rows"] + counts["files"] for target, counts in again["purges"].items()} == dict.fromkeys(
        again["purges"], 0
    )
    assert query(warehouse_dsn, "select count(*) from audit.retention_purge") == [(10,)]


def test_superseded_partitions_and_landed_files_go_quarantined_files_stay_longer_history_unchanged(
    sftp_server, warehouse_dsn, tmp_path, monkeypatch
):
    for key, value in sftp_server.airflow_connection_env().items():
        monkeypatch.setenv(key, value)
    hris_dir = sftp_server.root_dir / "outbound" / "hris"
    config = retention_config(tmp_path, raw_days=30, quarantined_file_days=60, mode="archive",
                              archive_dir=str(tmp_path / "archive"))  # fmt: skip
    deliver(sftp_server, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    run_pipeline(config, warehouse_dsn)
    corrected = hris_dir / "employees_20260105.csv"
    corrected.write_bytes(csv_bytes(five_employees(e2={"base_salary": "99000.00"})))
    (hris_dir / "employees_20260105.csv.ctl").unlink()
    later = corrected.stat().st_mtime + 60
    os.utime(corrected, (later, later))
    deliver(sftp_server, hris_dir, "employees_20260112.csv", b"not,a,valid\nfile", control=False)  # quarantined
    sftp_server.sync()
    run_pipeline(config, warehouse_dsn)
    statuses = sorted(s for (s,) in query(warehouse_dsn, "select status from audit.file_manifest"))
    assert statuses == ["loaded", "quarantined", "superseded"]
    # The ingest lands published files only; an operator kept a copy of the quarantined one for the vendor.
    kept_for_vendor = tmp_path / "landing" / "quarantined" / "employees_20260112.csv"
    kept_for_vendor.parent.mkdir(parents=True)
    kept_for_vendor.write_bytes(b"not,a,valid\nfile")
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute("update audit.file_manifest set landed_path = %s where status = 'quarantined'", (str(kept_for_vendor),))
    landed = [Path(p) for (p,) in query(warehouse_dsn, "select landed_path from audit.file_manifest order by status")]
    assert all(path.is_file() for path in landed)
    history = query(warehouse_dsn, "select * from core.employee_history order by 1, 2")

    received = query(warehouse_dsn, "select max(received_at) from audit.file_manifest")[0][0]
    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=received + timedelta(days=45))

    assert summary["purges"]["raw.hris_superseded_partitions"] == {"rows": 5, "files": 0}
    assert summary["purges"]["landed_hris_files"] == {"rows": 0, "files": 2}
    assert summary["purges"]["landed_quarantined_files"] == {"rows": 0, "files": 0}  # 45 < 60 days
    assert [path.is_file() for path in landed] == [False, True, False]  # loaded, quarantined, superseded
    assert query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(5,)]
    archived = sorted(p.name for p in (tmp_path / "archive").rglob("*") if p.is_file())
    assert len(archived) == 3 and any(name.endswith(".csv.gz") for name in archived)
    partition_archive = next((tmp_path / "archive").rglob("hris_employee_snapshot__*.csv.gz"))
    assert gzip.decompress(partition_archive.read_bytes()).decode().count("\n") == 6  # header + 5 rows
    # The history is rebuilt from loaded snapshots only: purging the superseded one changes nothing.
    run_pipeline(config, warehouse_dsn)
    assert query(warehouse_dsn, "select * from core.employee_history order by 1, 2") == history
    assert len(query(warehouse_dsn, "select * from audit.file_manifest")) == 3  # audit rows are kept

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=received + timedelta(days=61))
    assert summary["purges"]["landed_quarantined_files"] == {"rows": 0, "files": 1}
    assert not landed[1].exists()
