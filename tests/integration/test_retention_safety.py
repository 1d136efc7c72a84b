"""Retention deletes only what it can prove is its own (issue 22 point 2), and purges what the pipeline
writes for people by age (point 9): real files, real symbolic links and the real warehouse.

`audit.file_manifest.landed_path` is a pointer the loader login may write: a landed copy goes only when its
path, symbolic links resolved, lies under `hris.landing_dir` and its bytes have the manifest's sha256.
Data Docs pages, steward review samples and the unexpected-value samples of validation runs each have a
retention class, measured from the run's date.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from turnover_signals.config import load_config
from turnover_signals.quality.gate import RunIdentity, ValidationOutcome, record_validation
from turnover_signals.retention.purge import apply_retention, retention_lines

pytestmark = pytest.mark.integration
RUN = RunIdentity(dag_id="warehouse_retention", run_id="safety-run", task_id="apply_retention", try_number=1)
AS_OF = datetime(2026, 11, 1, 5, tzinfo=UTC)  # the run's logical date
OLD = AS_OF - timedelta(days=800)  # past every retention period below
YOUNG = AS_OF - timedelta(days=5)  # within every retention period below
CONTENT = b"employee_id,hire_date\nE000001,2020-01-01\n"


@pytest.fixture
def config(tmp_path):
    """Retention with every folder under this test's own directory."""
    config = load_config(
        {
            "hris": {"landing_dir": str(tmp_path / "landing")},
            "quality": {"data_docs_dir": str(tmp_path / "data_docs")},
            "identity": {"review_sample_dir": str(tmp_path / "identity_review")},
        },
        use_variable=False,
    )
    config["retention"].update(
        raw_days=730, data_docs_days=365, review_sample_days=90, validation_sample_days=365
    )
    return config


def land(path, data=CONTENT):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def manifest_row(dsn, name, landed_path, sha256=None, received_at=OLD):
    """A manifest row of a superseded (so landed, not sealed) employees file received `received_at`."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "insert into audit.file_manifest (file_name, sha256, feed, file_date, size_bytes, received_at,"
            " status, landed_path) values (%s, %s, 'employees', %s, %s, %s, 'superseded', %s)",
            (
                name,
                sha256 or hashlib.sha256(CONTENT).hexdigest(),
                received_at.date(),
                len(CONTENT),
                received_at,
                str(landed_path),
            ),
        )


def purge_record(dsn, target):
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select rows_purged, files_purged, details, cutoff_at from audit.retention_purge"
            " where purge_target = %s",
            (target,),
        ).fetchone()


# -- point 2: landed HRIS files -----------------------------------------------------------------


def test_a_landed_file_under_the_landing_dir_with_the_manifest_sha256_is_purged(
    config, warehouse_dsn, tmp_path
):
    landed = land(tmp_path / "landing" / "employees" / "2024-09-01" / "abc__employees_20240901.csv")
    manifest_row(warehouse_dsn, "employees_20240901.csv", landed)

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=AS_OF)

    assert not landed.exists()
    assert summary["purges"]["landed_hris_files"] == {"rows": 0, "files": 1}
    assert summary["files_kept"] == {}
    rows, files, details, _cutoff = purge_record(warehouse_dsn, "landed_hris_files")
    assert files == 1 and "kept" not in details


@pytest.mark.parametrize("how", ["elsewhere", "climbing_out"])
def test_a_manifest_row_pointing_outside_the_landing_dir_leaves_that_file_alone(
    how, config, warehouse_dsn, tmp_path, caplog
):
    outside = land(
        tmp_path / "elsewhere" / "payroll_export.csv"
    )  # same bytes: the sha256 alone won't stop it
    (tmp_path / "landing" / "employees").mkdir(parents=True)
    recorded = (
        outside
        if how == "elsewhere"
        else tmp_path / "landing" / "employees" / ".." / ".." / outside.relative_to(tmp_path)
    )
    manifest_row(warehouse_dsn, "employees_20240901.csv", recorded)

    with caplog.at_level(logging.WARNING, logger="turnover_signals.retention.purge"):
        summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=AS_OF)

    assert outside.read_bytes() == CONTENT
    assert summary["purges"]["landed_hris_files"] == {"rows": 0, "files": 0}
    assert summary["files_kept"] == {"landed_hris_files": 1}
    _rows, _files, details, _cutoff = purge_record(warehouse_dsn, "landed_hris_files")
    [kept] = details["kept"]
    assert kept["file_name"] == "employees_20240901.csv" and "outside hris.landing_dir" in kept["reason"]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "employees_20240901.csv" in warning and "outside hris.landing_dir" in warning
    assert str(tmp_path) not in warning  # names and hashes, no path
    with psycopg.connect(warehouse_dsn) as conn:
        [line] = [line for line in retention_lines(conn) if "landed_hris_files" in line]
    assert "1 KEPT, failing the safety checks" in line


def test_a_symlink_inside_the_landing_dir_leading_out_leaves_its_target_and_itself_alone(
    config, warehouse_dsn, tmp_path
):
    target = land(tmp_path / "elsewhere" / "payroll_export.csv")
    link = tmp_path / "landing" / "employees" / "2024-09-01" / "abc__employees_20240901.csv"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    folder_link = tmp_path / "landing" / "compensation"
    folder_link.symlink_to(target.parent, target_is_directory=True)  # a linked folder leading out, too
    manifest_row(warehouse_dsn, "employees_20240901.csv", link)
    manifest_row(warehouse_dsn, "compensation_20240901.csv", folder_link / target.name)

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=AS_OF)

    assert target.read_bytes() == CONTENT and link.is_symlink() and folder_link.is_symlink()
    assert summary["purges"]["landed_hris_files"]["files"] == 0
    assert summary["files_kept"] == {"landed_hris_files": 2}
    reasons = {
        k["file_name"]: k["reason"] for k in purge_record(warehouse_dsn, "landed_hris_files")[2]["kept"]
    }
    assert all("outside hris.landing_dir" in reason for reason in reasons.values()), reasons


def test_a_symlink_between_landed_files_is_kept_and_so_is_its_target(config, warehouse_dsn, tmp_path):
    target = land(tmp_path / "landing" / "employees" / "2026-10-30" / "abc__employees_20261030.csv")
    link = tmp_path / "landing" / "employees" / "2024-09-01" / "abc__employees_20240901.csv"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    manifest_row(warehouse_dsn, "employees_20240901.csv", link)

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=AS_OF)

    assert target.read_bytes() == CONTENT and link.is_symlink()
    assert summary["files_kept"] == {"landed_hris_files": 1}
    [kept] = purge_record(warehouse_dsn, "landed_hris_files")[2]["kept"]
    assert kept["reason"] == "the recorded path is a symbolic link"


def test_a_landed_file_whose_content_no_longer_has_the_manifest_sha256_is_kept(
    config, warehouse_dsn, tmp_path
):
    landed = land(tmp_path / "landing" / "employees" / "2024-09-01" / "abc__employees_20240901.csv")
    manifest_row(warehouse_dsn, "employees_20240901.csv", landed)
    landed.write_bytes(CONTENT + b"E000002,2021-01-01\n")  # someone put other bytes at the landed path

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=AS_OF)

    assert landed.exists()
    assert summary["files_kept"] == {"landed_hris_files": 1}
    [kept] = purge_record(warehouse_dsn, "landed_hris_files")[2]["kept"]
    assert kept["reason"].startswith("its content changed")


# -- point 9: what the pipeline writes for people -----------------------------------------------------


def written_at(path, when):
    os.utime(path, (when.timestamp(), when.timestamp()), follow_symlinks=False)
    return path


def test_data_docs_pages_are_purged_when_old_and_kept_when_young(config, warehouse_dsn, tmp_path):
    docs = tmp_path / "data_docs" / "course_catalog"
    old = written_at(land(docs / "2024-08-01" / "20240801T060000Z__v-old.html", b"<html>old</html>"), OLD)
    young = written_at(
        land(docs / "2026-10-27" / "20261027T060000Z__v-young.html", b"<html>new</html>"), YOUNG
    )

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=AS_OF)

    assert not old.exists() and young.exists()
    assert summary["purges"]["data_docs_pages"] == {"rows": 0, "files": 1}
    _rows, files, details, cutoff = purge_record(warehouse_dsn, "data_docs_pages")
    assert files == 1 and details["files"] == ["course_catalog/2024-08-01/20240801T060000Z__v-old.html"]
    assert cutoff == AS_OF - timedelta(days=365)  # as of the run's date, not the wall clock


def test_review_samples_are_purged_when_old_and_kept_when_young(config, warehouse_dsn, tmp_path):
    samples = tmp_path / "identity_review"
    old = written_at(
        land(samples / "identity_review_sample__scheduled__2026-07-01.csv", b"a\n"),
        AS_OF - timedelta(days=91),
    )
    young = written_at(
        land(samples / "identity_review_sample__scheduled__2026-10-01.csv", b"a\n"),
        AS_OF - timedelta(days=89),
    )

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=AS_OF)

    assert not old.exists() and young.exists()
    assert summary["purges"]["identity_review_samples"] == {"rows": 0, "files": 1}
    assert purge_record(warehouse_dsn, "identity_review_samples")[2]["files"] == [old.name]


def test_a_data_docs_page_linked_from_outside_its_folder_is_kept_and_its_target_untouched(
    config, warehouse_dsn, tmp_path
):
    target = written_at(land(tmp_path / "elsewhere" / "report.html", b"<html>not ours</html>"), OLD)
    link = tmp_path / "data_docs" / "course_catalog" / "2024-08-01" / "page.html"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    written_at(link, OLD)

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=AS_OF)

    assert target.exists() and link.is_symlink()
    assert summary["files_kept"] == {"data_docs_pages": 1}
    [kept] = purge_record(warehouse_dsn, "data_docs_pages")[2]["kept"]
    assert kept["object"] == "course_catalog/2024-08-01/page.html" and "leads out of" in kept["reason"]


def test_archive_mode_keeps_a_verified_copy_of_a_purged_page(config, warehouse_dsn, tmp_path):
    config["retention"].update(mode="archive", archive_dir=str(tmp_path / "archive"))
    page = written_at(land(tmp_path / "data_docs" / "s" / "2024-08-01" / "p.html", b"<html>old</html>"), OLD)

    apply_retention(config, RUN, dsn=warehouse_dsn, now=AS_OF)

    assert not page.exists()
    assert (tmp_path / "archive" / "data_docs_pages" / "s" / "2024-08-01" / "p.html").read_bytes() == (
        b"<html>old</html>"
    )


def validation(dsn, validated_at, sample):
    """A failed validation run, recorded as a gate records one, with an unexpected-value sample."""
    failed = [
        {
            "expectation": "expect_column_values_to_be_in_set",
            "description": "known departments",
            "success": False,
            "kwargs": {"column": "department"},
            "observed": {"unexpected_count": 1, "element_count": 5, "sample": sample},
            "exception": None,
        }
    ]
    outcome = ValidationOutcome(
        validation_id=str(uuid.uuid4()),
        suite_name="hris_employees_file",
        suite_version="1",
        data_asset="hris_employees_file",
        batch_identifier="employees_20240901.csv@abc",
        success=False,
        statistics={"evaluated_expectations": 3},
        results=failed,
        validated_at=validated_at,
        failed=failed,
    )
    with psycopg.connect(dsn) as conn:
        record_validation(conn, outcome, RUN)
    return outcome.validation_id


def test_validation_samples_are_cut_out_when_old_and_kept_when_young(config, warehouse_dsn):
    old = validation(warehouse_dsn, OLD, ["Secret Skunkworks"])
    young = validation(warehouse_dsn, YOUNG, ["Mergers Team"])

    summary = apply_retention(config, RUN, dsn=warehouse_dsn, now=AS_OF)

    with psycopg.connect(warehouse_dsn) as conn:
        stored = dict(
            conn.execute(
                "select validation_id, jsonb_build_array(failed_expectations, results)"
                " from audit.validation_result"
            ).fetchall()
        )
    assert "Secret Skunkworks" not in json.dumps(stored[old])
    for column in stored[old]:  # the row, its verdict and counts stay
        assert column[0]["observed"] == {"unexpected_count": 1, "element_count": 5}
    assert [column[0]["observed"]["sample"] for column in stored[young]] == [["Mergers Team"]] * 2
    assert summary["purges"]["audit.validation_result.samples"] == {"rows": 1, "files": 0}
    rows, _files, details, cutoff = purge_record(warehouse_dsn, "audit.validation_result.samples")
    assert rows == 1 and details["validations"] == [old] and cutoff == AS_OF - timedelta(days=365)
