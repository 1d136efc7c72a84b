"""Least privilege and pseudonymized analytics on the real PostgreSQL.

Login users are created in each group role of migration 0013 (unique names: roles are
cluster-wide) and connect to the test warehouse, to show what each role can and cannot read or
write. The analytics views are checked against the HMAC computed in Python, for the absence of
any direct identifier, and for a key rotation that changes every pseudonym.
"""

from __future__ import annotations

import uuid
from datetime import date

import psycopg
import pytest

from tests.integration.test_identity_resolution import query
from tests.integration.test_turnover_features import D, enterprise, inputs_complete_through
from turnover_signals.config import load_config
from turnover_signals.features.build import build_features
from turnover_signals.governance.pseudonyms import (
    hmac_pads,
    install_pseudonym_key,
    key_fingerprint,
    person_pseudonym,
)
from turnover_signals.identity.resolve import resolve_identities

ROLES = (
    "turnover_loader",
    "turnover_transformer",
    "turnover_analyst",
    "turnover_steward",
    "turnover_quality_reader",
)
KEY = "test-pseudonym-key-0123456789abcdef"
ROTATED_KEY = "rotated-pseudonym-key-fedcba9876543210"
ANALYTICS_VIEWS = ("analytics.employee_features", "analytics.turnover_label", "analytics.training_set")


@pytest.fixture
def config():
    config = load_config(use_variable=False)
    config["identity"]["min_active_lms_match_rate"] = 0
    config["features"]["initial_backfill_month_ends"] = 0
    config["features"]["max_null_fraction"] = dict.fromkeys(config["features"]["max_null_fraction"], 1.0)
    return config


@pytest.fixture
def warehouse(warehouse_dsn, config):
    """The small enterprise of the feature tests, resolved and built for D, with salaries and a key."""
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        enterprise(conn)
        conn.execute(
            "update core.employee_history set base_salary = 55000, currency = 'USD' where employee_id = 'E1'"
        )
        conn.execute(
            "update core.employee_history set base_salary = 131000.5, currency = 'USD' where employee_id <> "
            "'E1'"
        )
        inputs_complete_through(conn, D)
    resolve_identities(config, dsn=warehouse_dsn)
    build_features(config, dsn=warehouse_dsn, reference_dates=[D])
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        install_pseudonym_key(conn, KEY)
    return warehouse_dsn


@pytest.fixture
def login_as(warehouse_dsn):
    """Connect as a fresh LOGIN user that is a member of `role`; users are dropped afterwards."""
    created: list[str] = []
    admin = warehouse_dsn  # the test superuser

    def connect(role: str) -> psycopg.Connection:
        user = f"ts_{role.removeprefix('turnover_')}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("create role {} login in role {}").format(
                    psycopg.sql.Identifier(user), psycopg.sql.Identifier(role)
                )
            )
        created.append(user)
        info = psycopg.conninfo.conninfo_to_dict(warehouse_dsn) | {"user": user}
        return psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True)

    yield connect
    with psycopg.connect(admin, autocommit=True) as conn:
        for user in created:
            conn.execute(psycopg.sql.SQL("drop role if exists {}").format(psycopg.sql.Identifier(user)))


def allowed(conn: psycopg.Connection, statement: str) -> bool:
    """Whether `statement` passes the privilege checks (run in a transaction that is rolled back)."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(statement)
        return True
    except psycopg.errors.InsufficientPrivilege:
        return False


def test_the_migrations_create_the_group_roles_without_login(warehouse_dsn):
    rows = dict(
        query(
            warehouse_dsn, "select rolname, rolcanlogin from pg_roles where rolname = any(%s)", (list(ROLES),)
        )
    )
    assert rows == dict.fromkeys(ROLES, False)


def test_loader_writes_raw_and_audit_only(warehouse, login_as):
    with login_as("turnover_loader") as conn:
        assert allowed(
            conn,
            "insert into raw.lms_statement values ('s', now(), null, '{}', false, null, 'x', 'b', now())",
        )
        assert allowed(conn, "update audit.file_manifest set reason = 'x'")
        assert allowed(conn, "select * from audit.file_manifest")
        assert not allowed(conn, "delete from audit.file_manifest")
        assert not allowed(conn, "select * from core.employee_history")
        assert not allowed(conn, "insert into mart.turnover_label select * from mart.turnover_label")
        assert not allowed(conn, "select * from governance.pseudonym_key")
        assert not allowed(conn, "select * from analytics.employee_features")


def test_transformer_reads_raw_and_writes_core_and_mart(warehouse, login_as):
    with login_as("turnover_transformer") as conn:
        assert allowed(conn, "select * from raw.lms_statement")
        assert allowed(conn, "update core.employee_history set job_level = 3")
        assert allowed(conn, "delete from mart.employee_features")
        assert allowed(conn, "insert into audit.feature_build select * from audit.feature_build where false")
        assert not allowed(conn, "insert into raw.lms_statement select * from raw.lms_statement")
        assert not allowed(conn, "delete from audit.feature_build")
        assert not allowed(conn, "select * from governance.pseudonym_key")


def test_steward_manages_identity_decisions_but_sees_no_hr_record(warehouse, login_as):
    with login_as("turnover_steward") as conn:
        assert allowed(conn, "select * from core.employee_identity")
        assert allowed(conn, "select * from audit.identity_override_current")
        assert allowed(
            conn,
            "insert into audit.identity_override (identifier_type, identifier_value, decision, decided_by, "
            "reason) values ('lms_user_id', 'u-e1', 'not_a_match', 'steward', 'checked with HR')",
        )
        assert allowed(conn, "update audit.identity_exception set status = 'resolved', resolution = 'x'")
        assert not allowed(conn, "update audit.identity_exception set evidence = '{}'")
        assert not allowed(conn, "delete from audit.identity_override")
        assert not allowed(conn, "select * from core.employee_history")
        assert not allowed(conn, "select * from core.compensation_event")
        assert not allowed(conn, "select * from raw.lms_user")


def test_analyst_reads_only_the_pseudonymized_views_and_no_email_name_or_salary(warehouse, login_as):
    people = query(
        warehouse,
        "select employee_id, work_email, first_name, last_name, base_salary::text from core.employee_history",
    )
    identifiers = {str(value) for row in people for value in row if value is not None}
    with login_as("turnover_analyst") as conn:
        for table in (
            "core.employee_history",
            "core.compensation_event",
            "core.employee_identity",
            "raw.lms_user",
            "raw.hris_employee_snapshot",
            "core.lms_activity",
            "mart.employee_features",
            "mart.training_set",
            "audit.file_manifest",
            "governance.pseudonym_key",
            "governance.person_pseudonym",
        ):
            assert not allowed(conn, f"select * from {table}"), table  # noqa: S608 - fixed names
        assert not allowed(conn, "insert into analytics.salary_band values ('x', 1, 2)")
        seen = 0
        for view in ANALYTICS_VIEWS:
            with conn.cursor() as cur:
                cur.execute(f"select * from {view}")  # noqa: S608 - fixed names
                columns = [column.name for column in cur.description]
                rows = cur.fetchall()
            seen += len(rows)
            assert not [
                c
                for c in columns
                if any(w in c for w in ("email", "name", "employee", "guid", "salary_amount"))
            ]
            assert "base_salary" not in columns
            values = {str(value) for row in rows for value in row if value is not None}
            assert not values & identifiers, view
        assert seen > 0
        bands = dict(
            conn.execute(
                "select salary_band, count(*) from analytics.employee_features group by 1"
            ).fetchall()
        )
        assert bands == {"40k-60k": 1, "130k-170k": 3}  # E1 at 55,000; E2, E3 and M1 at 131,000.50


def test_default_privileges_cover_tables_created_later(warehouse, login_as):
    with psycopg.connect(warehouse, autocommit=True) as owner:
        owner.execute("create table core.later_table (n integer)")
        owner.execute(
            "create view analytics.later_view as select reference_date from analytics.employee_features"
        )
    with login_as("turnover_transformer") as conn:
        assert allowed(conn, "insert into core.later_table values (1)")
    with login_as("turnover_analyst") as conn:
        assert allowed(conn, "select * from analytics.later_view")
        assert not allowed(conn, "select * from core.later_table")


def test_pseudonyms_are_the_hmac_of_the_employee_key_and_rotation_changes_every_one(warehouse):
    keys = dict(query(warehouse, "select hris_employee_id, employee_key from core.hris_employee_key"))
    expected = {person_pseudonym(KEY, key) for key in keys.values()}
    shown = {p for (p,) in query(warehouse, "select distinct person_pseudonym from analytics.turnover_label")}
    assert shown and shown <= expected
    with psycopg.connect(warehouse, autocommit=True) as conn:
        assert install_pseudonym_key(conn, KEY)["installed"] is False  # same key: nothing to do
        rotated = install_pseudonym_key(conn, ROTATED_KEY)
    assert rotated == {"installed": True, "key_fingerprint": key_fingerprint(ROTATED_KEY), "rotated": True}
    after = {p for (p,) in query(warehouse, "select distinct person_pseudonym from analytics.turnover_label")}
    assert len(after) == len(shown) and not after & shown
    assert after <= {person_pseudonym(ROTATED_KEY, key) for key in keys.values()}
    audit = query(
        warehouse,
        "select key_fingerprint, previous_key_fingerprint from audit.pseudonym_key_rotation"
        " order by installed_at",
    )
    assert audit == [(key_fingerprint(KEY), None), (key_fingerprint(ROTATED_KEY), key_fingerprint(KEY))]
    stored = query(warehouse, "select inner_pad, outer_pad from governance.pseudonym_key")
    assert stored == [tuple(hmac_pads(ROTATED_KEY.encode()))]
    assert ROTATED_KEY.encode() not in b"".join(bytes(v) for v in stored[0])


def test_without_a_key_the_analytics_views_are_empty(warehouse):
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("delete from governance.pseudonym_key")
    for view in ANALYTICS_VIEWS:
        assert query(warehouse, f"select count(*) from {view}") == [(0,)]  # noqa: S608 - fixed names


def test_label_exits_are_shown_to_the_month(warehouse):
    exits = query(
        warehouse, "select exit_month from analytics.turnover_label where exit_month is not null order by 1"
    )
    assert exits == [(date(2026, 7, 1),), (date(2026, 8, 1),)]  # E3 left on 2026-07-20, E1 on 2026-08-14
