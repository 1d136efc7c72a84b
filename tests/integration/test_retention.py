"""Retention on the real PostgreSQL: what is purged, what is kept, and that features and reports for
dates still in retention are unchanged after a purge (and after restating them)."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from psycopg import sql

from tests.databases import DatabaseCopies, as_airflow_warehouse, database_name
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


@pytest.fixture(scope="module")
def purge_of_the_enterprise(migrated_template_db, tmp_path_factory):
    """A purge on AFTER_D (raw_days 300: cutoff 2025-09-13; rejected statements 90 days) of a warehouse
    with features built for D, then D rebuilt with the daily aggregate recomputed, then the purge again; run
    once for the tests below, which assert on what each step left."""
    config = retention_config(tmp_path_factory.mktemp("purge"), raw_days=300, quarantined_file_days=90)
    with DatabaseCopies() as databases, pytest.MonkeyPatch.context() as environment:
        dsn = as_airflow_warehouse(databases.copy(migrated_template_db), environment)
        with psycopg.connect(dsn, autocommit=True) as conn:
            enterprise(conn)
            mirror_activity_into_raw(conn)
            inputs_complete_through(conn, D)
        resolve_identities(config, dsn=dsn)
        build_features(config, dsn=dsn, reference_dates=[D])
        with psycopg.connect(dsn) as conn:
            before = published(conn)

        summary = apply_retention(config, RUN, dsn=dsn, now=AFTER_D)
        remaining = {s for (s,) in query(dsn, "select statement_id from raw.lms_statement")}
        with psycopg.connect(dsn) as conn:
            after_purge = published(conn)

        build_features(config, dsn=dsn, reference_dates=[D], full_daily_rebuild=True)
        rebuild = rebuild_matches(config, [D], dsn=dsn)
        with psycopg.connect(dsn) as conn:
            after_rebuild = published(conn)
        audit = query(
            dsn,
            "select purge_target, rows_purged, mode, cutoff_at, run_id from audit.retention_purge"
            " where rows_purged > 0 order by 1",
        )

        again = apply_retention(config, RUN, dsn=dsn, now=AFTER_D)
        audit_rows_after_again = query(dsn, "select count(*) from audit.retention_purge")
    return SimpleNamespace(
        before=before,
        summary=summary,
        remaining=remaining,
        after_purge=after_purge,
        rebuild=rebuild,
        after_rebuild=after_rebuild,
        audit=audit,
        again=again,
        audit_rows_after_again=audit_rows_after_again,
    )


def test_a_purge_removes_raw_statements_and_rejects_older_than_their_retention(purge_of_the_enterprise):
    purges = purge_of_the_enterprise.summary["purges"]
    assert purges["raw.lms_statement"] == {"rows": 1, "files": 0}  # s-old, stored 2025-06-01
    assert purges["raw.lms_statement_rejected"] == {"rows": 1, "files": 0}
    assert "s-old" not in purge_of_the_enterprise.remaining


def test_a_purge_keeps_old_voiding_statements(purge_of_the_enterprise):
    # a late copy of a target is still voided
    assert "s-void" in purge_of_the_enterprise.remaining


def test_purge_leaves_features_and_reports_for_dates_in_retention_unchanged(purge_of_the_enterprise):
    assert purge_of_the_enterprise.after_purge == purge_of_the_enterprise.before


def test_a_date_in_retention_rebuilt_after_a_purge_gives_the_same_features(purge_of_the_enterprise):
    assert purge_of_the_enterprise.rebuild["matched"]
    assert purge_of_the_enterprise.after_rebuild == purge_of_the_enterprise.before


def test_a_purge_records_each_target_with_its_cutoff_and_run(purge_of_the_enterprise):
    assert purge_of_the_enterprise.audit == [
        ("raw.lms_statement", 1, "purge", AFTER_D - timedelta(days=300), "test-run"),
        ("raw.lms_statement_rejected", 1, "purge", AFTER_D - timedelta(days=90), "test-run"),
    ]


def test_a_second_purge_finds_nothing_more_and_never_purges_the_audit_rows(purge_of_the_enterprise):
    again = purge_of_the_enterprise.again
    assert {
        target: counts["rows"] + counts["files"] for target, counts in again["purges"].items()
    } == dict.fromkeys(again["purges"], 0)
    assert purge_of_the_enterprise.audit_rows_after_again == [(20,)]  # 10 steps, twice


def emptied_drop_directory(sftp_drop, environment: pytest.MonkeyPatch) -> Path:
    """The drop directory of `sftp_drop`, emptied, with the Airflow connection pointing at it (what the
    `hris_dir` fixture does for one test, here for a module-scoped scenario)."""
    directory = sftp_drop.root_dir / "outbound" / "hris"
    for entry in directory.iterdir():
        entry.unlink()
    for key, value in sftp_drop.airflow_connection_env().items():
        environment.setenv(key, value)
    return directory


@pytest.fixture(scope="module")
def retention_of_superseded_and_quarantined_files(sftp_drop, migrated_template_db, tmp_path_factory):
    """Three employees files (loaded, superseded by a correction, quarantined, in that manifest order) under
    archive-mode retention (raw 30 days, quarantined files 60): a purge 45 days after the last receipt, a run
    of the pipeline after it, and a purge at 61 days; run once for the tests below, which assert on what each
    step left."""
    base = tmp_path_factory.mktemp("superseded")
    config = retention_config(
        base, raw_days=30, quarantined_file_days=60, mode="archive", archive_dir=str(base / "archive")
    )
    with DatabaseCopies() as databases, pytest.MonkeyPatch.context() as environment:
        dsn = as_airflow_warehouse(databases.copy(migrated_template_db), environment)
        hris_dir = emptied_drop_directory(sftp_drop, environment)
        deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
        run_pipeline(config, dsn)
        corrected = hris_dir / "employees_20260105.csv"
        corrected.write_bytes(csv_bytes(five_employees(e2={"base_salary": "99000.00"})))
        (hris_dir / "employees_20260105.csv.ctl").unlink()
        later = corrected.stat().st_mtime + 60
        os.utime(corrected, (later, later))
        bad = b"not,a,valid\nfile"
        deliver(sftp_drop, hris_dir, "employees_20260112.csv", bad, control=False)  # quarantined
        sftp_drop.sync()
        run_pipeline(config, dsn)
        statuses = sorted(s for (s,) in query(dsn, "select status from audit.file_manifest"))
        # The ingest lands published files only; an operator kept a copy of the quarantined one for the
        # vendor.
        kept_for_vendor = base / "landing" / "quarantined" / "employees_20260112.csv"
        kept_for_vendor.parent.mkdir(parents=True)
        kept_for_vendor.write_bytes(bad)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "update audit.file_manifest set landed_path = %s where status = 'quarantined'",
                (str(kept_for_vendor),),
            )
        landed = [
            Path(p) for (p,) in query(dsn, "select landed_path from audit.file_manifest order by status")
        ]
        landed_before = [path.is_file() for path in landed]
        history = query(dsn, "select * from core.employee_history order by 1, 2")

        # Someone with USAGE on raw pinned the superseded file's partition: it must not outlive retention.
        superseded_sha = query(dsn, "select sha256 from audit.file_manifest where status = 'superseded'")[0][
            0
        ]
        with psycopg.connect(dsn, autocommit=True) as conn:
            partition = sql.Identifier("raw", f"hris_employee_snapshot_{superseded_sha[:16]}")
            conn.execute(sql.SQL("create view staging.pin as select * from {}").format(partition))
            conn.execute(sql.SQL("create table staging.pin_array (pinned {}[])").format(partition))

        received = query(dsn, "select max(received_at) from audit.file_manifest")[0][0]
        at_45_days = apply_retention(config, RUN, dsn=dsn, now=received + timedelta(days=45))
        pin_view = query(dsn, "select to_regclass('staging.pin')")
        pin_column = query(
            dsn,
            "select count(*) from pg_attribute where attrelid = 'staging.pin_array'::regclass"
            " and attname = 'pinned' and not attisdropped",
        )
        superseded_purge = query(
            dsn,
            "select details from audit.retention_purge where purge_target = 'raw.hris_superseded_partitions'",
        )
        landed_after_45_days = [path.is_file() for path in landed]
        archive_dir = base / "archive"
        archived_after_45_days = sorted(p.name for p in archive_dir.rglob("*") if p.is_file())
        partition_archive_lines = [
            gzip.decompress(partition_archive.read_bytes()).decode().count("\n")
            for partition_archive in archive_dir.rglob("hris_employee_snapshot__*.csv.gz")
        ]
        raw_snapshot_rows = query(dsn, "select count(*) from raw.hris_employee_snapshot")

        run_pipeline(config, dsn)
        history_after_rerun = query(dsn, "select * from core.employee_history order by 1, 2")
        manifest_rows = len(query(dsn, "select * from audit.file_manifest"))

        at_61_days = apply_retention(config, RUN, dsn=dsn, now=received + timedelta(days=61))
        quarantined_file_exists_after_61_days = landed[1].exists()
    return SimpleNamespace(
        archived_after_45_days=archived_after_45_days,
        partition_archive_lines=partition_archive_lines,
        statuses=statuses,
        landed_before=landed_before,
        history=history,
        at_45_days=at_45_days,
        pin_view=pin_view,
        pin_column=pin_column,
        superseded_purge=superseded_purge,
        landed_after_45_days=landed_after_45_days,
        raw_snapshot_rows=raw_snapshot_rows,
        history_after_rerun=history_after_rerun,
        manifest_rows=manifest_rows,
        at_61_days=at_61_days,
        quarantined_file_exists_after_61_days=quarantined_file_exists_after_61_days,
    )


def test_a_correction_supersedes_its_file_and_a_bad_file_is_quarantined(
    retention_of_superseded_and_quarantined_files,
):
    assert retention_of_superseded_and_quarantined_files.statuses == ["loaded", "quarantined", "superseded"]


def test_a_superseded_partition_is_dropped_with_the_objects_that_pin_it(
    retention_of_superseded_and_quarantined_files,
):
    retention = retention_of_superseded_and_quarantined_files
    assert retention.at_45_days["purges"]["raw.hris_superseded_partitions"] == {"rows": 5, "files": 0}
    assert retention.pin_view == [(None,)]
    assert retention.pin_column == [(0,)]
    assert retention.superseded_purge[0][0]["files"][0]["dropped_dependents"] == [
        "column pinned of table staging.pin_array",
        "view staging.pin",
    ]


def test_a_loaded_partition_past_retention_is_dropped_once_sealed_into_core(
    retention_of_superseded_and_quarantined_files,
):
    retention = retention_of_superseded_and_quarantined_files
    assert retention.at_45_days["purges"]["raw.hris_loaded_partitions"] == {"rows": 5, "files": 0}
    assert retention.raw_snapshot_rows == [(0,)]


def test_landed_files_past_retention_go_while_a_quarantined_file_stays_its_longer_retention(
    retention_of_superseded_and_quarantined_files,
):
    retention = retention_of_superseded_and_quarantined_files
    assert all(retention.landed_before)
    assert retention.at_45_days["purges"]["landed_hris_files"] == {"rows": 0, "files": 2}
    assert retention.at_45_days["purges"]["landed_quarantined_files"] == {"rows": 0, "files": 0}  # 45 < 60
    assert retention.landed_after_45_days == [False, True, False]  # loaded, quarantined, superseded


def test_archive_mode_keeps_a_gzipped_copy_of_each_partition_and_landed_file(
    retention_of_superseded_and_quarantined_files,
):
    retention = retention_of_superseded_and_quarantined_files
    archived = retention.archived_after_45_days
    assert len(archived) == 4 and sum(name.endswith(".csv.gz") for name in archived) == 2
    for lines in retention.partition_archive_lines:
        assert lines == 6  # header + 5 rows


def test_the_history_rebuilt_after_both_partitions_are_purged_is_unchanged(
    retention_of_superseded_and_quarantined_files,
):
    # rebuilt from the loaded snapshot's baseline
    retention = retention_of_superseded_and_quarantined_files
    assert retention.history_after_rerun == retention.history


def test_retention_keeps_the_manifest_rows_of_purged_files(retention_of_superseded_and_quarantined_files):
    assert retention_of_superseded_and_quarantined_files.manifest_rows == 3  # audit rows are kept


def test_a_quarantined_file_goes_once_older_than_its_own_retention(
    retention_of_superseded_and_quarantined_files,
):
    retention = retention_of_superseded_and_quarantined_files
    assert retention.at_61_days["purges"]["landed_quarantined_files"] == {"rows": 0, "files": 1}
    assert not retention.quarantined_file_exists_after_61_days


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


def sealed_tables(dsn):
    return {
        table: query(dsn, f"select * from core.{table} order by 1, 2")  # noqa: S608
        for table in SEAL_TABLES
    }


@pytest.fixture(scope="module")
def sealing_of_loaded_files(sftp_drop, migrated_template_db, tmp_path_factory):
    """Sealing (raw_days 30) of a warehouse that loaded three weeks of HRIS files and built features for
    IN_RETENTION, then: a rebuild from scratch, a second sealing run, new files loaded into it and into a copy
    that never purged, a late correction of a sealed date and a sealing run 60 days on; run once for the tests
    below, which assert on what each step left."""
    config = retention_config(tmp_path_factory.mktemp("sealing"), raw_days=30, quarantined_file_days=30)
    rows = five_employees
    with DatabaseCopies() as databases, pytest.MonkeyPatch.context() as environment:
        dsn = as_airflow_warehouse(databases.copy(migrated_template_db), environment)
        hris_dir = emptied_drop_directory(sftp_drop, environment)
        deliver_and_load(
            sftp_drop,
            hris_dir,
            config,
            dsn,
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
                "employees_20260119.csv": csv_bytes(
                    rows(e3={"job_level": "4"}, e4={"base_salary": "60004.5"})
                ),
                "compensation_20260119.csv": compensation_bytes(
                    [comp_change("E000002", "2026-01-10", "promotion", "50002.00", "56000.00")]
                ),  # replaces a sealed winner
            },
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            lms_directory_with_history(conn)
            lms_read_through(conn, datetime(2026, 1, 21, tzinfo=UTC))
        resolve_identities(config, dsn=dsn, full=True)
        build_features(config, dsn=dsn, reference_dates=[IN_RETENTION])
        before = derived_tables(dsn)
        never_purged = databases.copy(database_name(dsn))

        summary = apply_retention(config, RUN, dsn=dsn, now=SEALING_NOW)
        sealed = SimpleNamespace(
            summary=summary,
            snapshot_dates=query(dsn, "select distinct snapshot_date from raw.hris_employee_snapshot"),
            compensation_rows=query(dsn, "select count(*) from raw.hris_compensation_change"),
            lms_users=query(dsn, "select lms_user_id, work_email from raw.lms_user order by 1, 2"),
            details=query(
                dsn,
                "select details from audit.retention_purge where purge_target = 'raw.hris_loaded_partitions'",
            )[0][0],
            manifest=dict(query(dsn, "select file_name, sha256 from audit.file_manifest")),
        )

        build_employee_history(config, dsn)
        resolve_identities(config, dsn=dsn, full=True)
        build_features(config, dsn=dsn, reference_dates=[IN_RETENTION], full_daily_rebuild=True)
        rebuilt = SimpleNamespace(
            rebuild=rebuild_matches(config, [IN_RETENTION], dsn=dsn), derived=derived_tables(dsn)
        )

        sealed_before_again = sealed_tables(dsn)
        again = apply_retention(config, RUN, dsn=dsn, now=SEALING_NOW)
        sealed_after_again = sealed_tables(dsn)
        build_employee_history(config, dsn)
        second_run = SimpleNamespace(
            summary=again,
            sealed_before=sealed_before_again,
            sealed_after=sealed_after_again,
            derived=derived_tables(dsn),
        )

        # A correction of the 01-19 snapshot (in retention) and the next week's files.
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
        for warehouse in (dsn, never_purged):
            deliver_and_load(sftp_drop, hris_dir, config, warehouse, later)
        new_files = SimpleNamespace(
            statuses=query(
                dsn,
                "select status from audit.file_manifest "
                "where file_name = 'employees_20260119.csv' order by received_at",
            ),
            history=history_tables(dsn),
            never_purged_history=history_tables(never_purged),
        )

        late = {"employees_20260112.csv": csv_bytes(rows(e3={"job_level": "5"})[:4])}
        built = deliver_and_load(sftp_drop, hris_dir, config, dsn, late, SEALING_NOW + timedelta(days=1))
        history_after_late_correction = history_tables(dsn)
        apply_retention(config, RUN, dsn=dsn, now=SEALING_NOW + timedelta(days=60))
        raw_snapshot_rows = query(dsn, "select count(*) from raw.hris_employee_snapshot")
        build_employee_history(config, dsn)
        late_correction = SimpleNamespace(
            built=built,
            history=history_after_late_correction,
            raw_snapshot_rows_after_next_sealing=raw_snapshot_rows,
            history_after_next_sealing=history_tables(dsn),
        )
    return SimpleNamespace(
        before=before,
        sealed=sealed,
        rebuilt=rebuilt,
        second_run=second_run,
        new_files=new_files,
        late_correction=late_correction,
    )


def test_sealing_drops_the_partitions_of_files_received_before_the_cutoff(sealing_of_loaded_files):
    # the 01-19 files were received after the cutoff
    sealed = sealing_of_loaded_files.sealed
    assert sealed.summary["purges"]["raw.hris_loaded_partitions"] == {"rows": 12, "files": 0}  # 5 + 4 + 1 + 2
    assert sealed.snapshot_dates == [(date(2026, 1, 19),)]
    assert sealed.compensation_rows == [(1,)]


def test_sealing_drops_lms_user_versions_closed_before_the_cutoff_only(sealing_of_loaded_files):
    # u-1's old version closed before the cutoff, u-2's after it
    sealed = sealing_of_loaded_files.sealed
    assert sealed.summary["purges"]["raw.lms_user"] == {"rows": 1, "files": 0}
    assert sealed.lms_users == [
        ("u-1", "person1@northwind.example"),
        ("u-2", "old2@northwind.example"),
        ("u-2", "person2@northwind.example"),
        ("u-3", "person3@northwind.example"),
    ]


def test_sealing_records_each_dropped_file_with_its_hash_and_rows_and_the_sealed_through_dates(
    sealing_of_loaded_files,
):
    sealed = sealing_of_loaded_files.sealed
    assert sorted((f["file_name"], f["sha256"], f["rows"]) for f in sealed.details["files"]) == sorted(
        (name, sealed.manifest[name], n)
        for name, n in (
            ("employees_20260105.csv", 5),
            ("employees_20260112.csv", 4),
            ("compensation_20260105.csv", 1),
            ("compensation_20260112.csv", 2),
        )
    )
    assert sealed.details["sealed_through"] == {"employees": "2026-01-12", "compensation": "2026-01-12"}


def test_a_rebuild_from_scratch_after_sealing_changes_nothing_derived(sealing_of_loaded_files):
    # rebuilt from scratch after the purge: history, identity, features and labels
    before, rebuilt = sealing_of_loaded_files.before, sealing_of_loaded_files.rebuilt
    assert len(before["core.employee_history"]) == 8 and len(before["mart.employee_features"]) == 5
    assert rebuilt.rebuild["matched"]
    assert rebuilt.derived == before


def test_a_second_sealing_run_purges_nothing_and_changes_nothing(sealing_of_loaded_files):
    second_run = sealing_of_loaded_files.second_run
    assert all(counts == {"rows": 0, "files": 0} for counts in second_run.summary["purges"].values()), (
        second_run.summary
    )
    assert second_run.sealed_after == second_run.sealed_before
    assert second_run.derived == sealing_of_loaded_files.before


def test_files_loaded_after_sealing_give_the_history_of_a_warehouse_that_never_purged(
    sealing_of_loaded_files,
):
    new_files = sealing_of_loaded_files.new_files
    assert new_files.statuses == [("superseded",), ("loaded",)]
    assert len(new_files.history["employee_history"]) == 12
    assert new_files.history == new_files.never_purged_history


def test_a_late_correction_of_a_sealed_date_loads_but_the_sealed_version_stays(sealing_of_loaded_files):
    late_correction = sealing_of_loaded_files.late_correction
    assert late_correction.built["files_in_sealed_periods_ignored"] == 1  # and says so
    assert late_correction.history == sealing_of_loaded_files.new_files.history


def test_the_next_sealing_run_drops_a_late_corrections_partition_too(sealing_of_loaded_files):
    late_correction = sealing_of_loaded_files.late_correction
    assert late_correction.raw_snapshot_rows_after_next_sealing == [(0,)]
    assert late_correction.history_after_next_sealing == sealing_of_loaded_files.new_files.history


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
