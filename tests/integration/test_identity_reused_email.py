"""A work email reissued to a new hire while its leaver is still listed: only the shared days are ambiguous.

A worker leaves on 2026-03-06 and a new hire starting on 2026-03-09 gets the same address. The HRIS
snapshot of 2026-03-05 lists both (the leaver with the termination date, the new hire before the hire
date), so the new hire's address is held from that snapshot and the two intervals share 2026-03-05 and
2026-03-06. The HR rows go through the real SFTP server, loader and history build; the LMS users and
activity are written where the LMS loaders publish them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg
import pytest

from tests.integration.hris_helpers import csv_bytes, employee_row, query
from tests.integration.test_hris_ingest import config as hris_config  # noqa: F401 - fixture
from tests.integration.test_hris_ingest import deliver, run_pipeline
from tests.integration.test_identity_resolution import (  # noqa: F401 - config is a fixture
    CORP,
    account_learner,
    activity,
    assert_a_full_rebuild_changes_nothing,
    config,
    lms_user,
    matches,
    owner_at,
)
from turnover_signals.identity.resolve import resolve_identities

pytestmark = pytest.mark.integration

ADDRESS = f"kim.ray@{CORP}"
LEAVER, NEW_HIRE = "E000002", "E000009"


@pytest.fixture
def reissued_address(sftp_drop, hris_dir, hris_config, warehouse_dsn, config):  # noqa: F811
    """The HR snapshots of 2026-03-02 and 2026-03-05, each resolved (the second run incremental), with
    three LMS accounts on the address and mbox activity around the handover."""
    config["identity"]["min_active_lms_match_rate"] = 0  # the account of the shared days is ambiguous
    staff = [employee_row(n) for n in range(1, 5)]
    staff[1]["work_email"] = ADDRESS
    deliver(sftp_drop, hris_dir, "employees_20260302.csv", csv_bytes(staff))
    assert run_pipeline(hris_config, warehouse_dsn)[1] == []
    resolve_identities(config, dsn=warehouse_dsn)  # the run before the handover; the next is incremental
    staff[1].update(
        termination_date="2026-03-06", termination_type="resignation", employment_status="Terminated"
    )
    new_hire = employee_row(9, work_email=ADDRESS, hire_date="2026-03-09")
    deliver(sftp_drop, hris_dir, "employees_20260305.csv", csv_bytes([*staff, new_hire]))
    assert run_pipeline(hris_config, warehouse_dsn)[1] == []
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        # only the address links these accounts: no GUID, no LMS id in the HRIS
        lms_user(conn, "u-before-leave", email=ADDRESS, created=datetime(2026, 2, 20, 9, tzinfo=UTC))
        lms_user(conn, "u-shared-days", email=ADDRESS, created=datetime(2026, 3, 6, 9, tzinfo=UTC))
        lms_user(conn, "u-after-hire", email=ADDRESS, created=datetime(2026, 3, 10, 9, tzinfo=UTC))
        for n, moment in enumerate(["2026-02-25T10:00:00Z", "2026-03-06T10:00:00Z", "2026-03-12T10:00:00Z"]):
            activity(conn, f"s-mbox-{n}", f"mbox:{ADDRESS}", moment)
        activity(conn, "s-account-old", account_learner("u-before-leave"), "2026-03-02T10:00:00Z")
        activity(conn, "s-account-new", account_learner("u-after-hire"), "2026-03-12T10:00:00Z")
    assert resolve_identities(config, dsn=warehouse_dsn)["mode"] == "incremental"
    return warehouse_dsn


def test_both_holders_keep_the_address_outside_the_days_they_share_it(reissued_address):
    assert query(
        reissued_address,
        "select hris_employee_id, valid_from, valid_to from core.employee_identity"
        " where identifier_type = 'work_email' and identifier_value = %s order by valid_from",
        (ADDRESS,),
    ) == [(LEAVER, date(2020, 1, 6), date(2026, 3, 5)), (NEW_HIRE, date(2026, 3, 7), None)]
    # an mbox actor belongs to whoever alone held the address at the time
    assert owner_at(reissued_address, f"mbox:{ADDRESS}", "2026-02-25") == LEAVER
    assert owner_at(reissued_address, f"mbox:{ADDRESS}", "2026-03-06") is None
    assert owner_at(reissued_address, f"mbox:{ADDRESS}", "2026-03-12") == NEW_HIRE


def test_an_account_matched_only_by_the_address_goes_to_whoever_held_it_when_it_was_created(
    reissued_address,
):
    got = matches(reissued_address)
    assert got["u-before-leave"] == (LEAVER, "work_email", None)
    assert got["u-after-hire"] == (NEW_HIRE, "work_email", None)
    assert got["u-shared-days"] == (None, None, "ambiguous_work_email")
    assert owner_at(reissued_address, account_learner("u-before-leave"), "2026-03-02") == LEAVER
    assert owner_at(reissued_address, account_learner("u-after-hire"), "2026-03-12") == NEW_HIRE


def test_the_shared_days_are_reported_to_the_steward(reissued_address):
    exceptions = query(
        reissued_address,
        "select kind, status, hris_employee_ids, evidence from audit.identity_exception"
        " where kind like 'email%%'",
    )
    assert len(exceptions) == 1
    kind, status, employees, evidence = exceptions[0]
    assert (kind, status, employees) == ("email_handover_overlap", "open", [LEAVER, NEW_HIRE])
    assert (evidence["overlap_from"], evidence["overlap_to"], evidence["ambiguous_days"]) == (
        "2026-03-05",
        "2026-03-07",
        2,
    )
    assert ADDRESS not in str(evidence)


def test_an_incremental_run_after_the_handover_equals_a_full_rebuild(reissued_address, config):  # noqa: F811
    assert_a_full_rebuild_changes_nothing(reissued_address, config)
