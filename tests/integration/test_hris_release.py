"""Releasing a quarantined HRIS file after a configuration fix: loaded on the next run, audit trail kept."""

from __future__ import annotations

import pytest

from tests.integration.hris_helpers import csv_bytes, employee_row, query
from tests.integration.test_hris_ingest import config, deliver, run_pipeline  # noqa: F401
from turnover_signals.errors import BadInputError
from turnover_signals.hris.release import release_quarantined_file

pytestmark = pytest.mark.integration
WORKDAY = {
    "Employee_ID": "employee_id",
    "Primary Work Email": "work_email",
    "Hire Date": "hire_date",
    "Termination Date": "termination_date",
    "Termination Category": "termination_type",
    "Worker Status": "employment_status",
}


def test_a_released_file_loads_after_the_fix_and_the_release_is_recorded(
    sftp_drop,  # noqa: F811
    hris_dir,  # noqa: F811
    config,  # noqa: F811
    warehouse_dsn,  # noqa: F811
):
    reverse = {v: k for k, v in WORKDAY.items()}
    rows = [{reverse[k]: v for k, v in employee_row(n).items() if k in reverse} for n in range(1, 4)]
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(rows, list(WORKDAY)))
    _results, errors = run_pipeline(config, warehouse_dsn)
    assert len(errors) == 1  # the vendor's headers are not mapped yet: quarantined
    assert query(warehouse_dsn, "select status from audit.file_manifest") == [("quarantined",)]

    _results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == [] and query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(0,)]

    config["hris"]["column_mapping"]["employees"] = WORKDAY  # the fix, then the release
    release_quarantined_file(
        config, "employees_20260105.csv", "oncall@example", "Workday mapping added", warehouse_dsn
    )
    assert query(warehouse_dsn, "select status from audit.file_manifest") == [("released",)]
    _results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == []
    assert query(warehouse_dsn, "select status, reason from audit.file_manifest") == [("loaded", None)]
    assert query(warehouse_dsn, "select count(*) from core.employee_history") == [(3,)]
    (released,) = query(
        warehouse_dsn, "select released_by, reason, quarantine_reason from audit.file_release"
    )
    assert released[:2] == ("oncall@example", "Workday mapping added") and "employee_id" in released[2]

    with pytest.raises(BadInputError, match="no quarantined delivery to release"):
        release_quarantined_file(config, "employees_20260105.csv", "oncall@example", "again", warehouse_dsn)
