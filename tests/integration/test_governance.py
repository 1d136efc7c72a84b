"""Least privilege and pseudonymized analytics on the real PostgreSQL.

Login users are created in each group role of migration 0013 (unique names: roles are
cluster-wide) and connect to the test warehouse, to show what each role can and cannot read or
write. The analytics views are checked against the HMAC computed in Python, for the absence of
any direct identifier, for a key rotation that changes every pseudonym, and for k-anonymity: on a team
large enough to form groups, every row shown shares its quasi-identifiers with at least k people, and a
person unique in their group is left out.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from types import SimpleNamespace

import psycopg
import pytest

from tests.databases import DatabaseCopies, as_airflow_warehouse
from tests.integration.test_identity_resolution import CORP, employee, query
from tests.integration.test_turnover_features import D, enterprise, hr_known_through, inputs_complete_through
from turnover_signals.config import load_config
from turnover_signals.errors import BadInputError
from turnover_signals.features.build import build_features
from turnover_signals.governance.pseudonyms import (
    hmac_pads,
    install_analytics_policy,
    install_key_from_connection,
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
# What someone who knows a colleague can match a row on (migration 0033); training_set adds its horizon.
QUASI_IDENTIFIERS = (
    "reference_date",
    "feature_set_version",
    "tenure_band",
    "department",
    "location",
    "job_level_band",
    "team_size_band",
    "salary_currency",
)
GROUPS = {
    "analytics.employee_features": QUASI_IDENTIFIERS,
    "analytics.training_set": (*QUASI_IDENTIFIERS, "horizon_days"),
    "analytics.turnover_label": ("exit_month",),  # colleagues know when someone left
}
# Colleagues of E1-E3 under M1 for the k-anonymity tests: five more in Leeds, five in one small site each.
LEEDS = [f"P{n}" for n in range(1, 6)]
SMALL_SITES = {"P6": "Oslo", "P7": "Porto", "P8": "Riga", "P9": "Turin", "P10": "Ghent"}


def small_enterprise_config():
    """The small enterprise's configuration: no match-rate or null-fraction gate, no backfill."""
    config = load_config(use_variable=False)
    config["identity"]["min_active_lms_match_rate"] = 0
    config["features"]["initial_backfill_month_ends"] = 0
    config["features"]["max_null_fraction"] = dict.fromkeys(config["features"]["max_null_fraction"], 1.0)
    return config


@pytest.fixture
def config():
    return small_enterprise_config()


def populate(dsn, config, colleagues=()):
    """The small enterprise of the feature tests plus `colleagues` hired with E1-E3 under M1, resolved and
    built for D, with salaries and a key."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        enterprise(conn)
        for employee_id in colleagues:
            employee(conn, employee_id, email=f"{employee_id.lower()}@{CORP}", hire=date(2022, 3, 1))
        conn.execute(
            "update core.employee_history set manager_id = 'M1', job_level = 2, department = 'Engineering',"
            " location = 'Leeds' where employee_id <> 'M1'"
        )
        conn.execute(
            "update core.employee_history set job_level = 5, department = 'Engineering', location = 'Lisbon'"
            " where employee_id = 'M1'"
        )
        for employee_id, site in SMALL_SITES.items():
            conn.execute(
                "update core.employee_history set location = %s where employee_id = %s", (site, employee_id)
            )
        conn.execute(
            "update core.employee_history set base_salary = 55000, currency = 'USD' where employee_id = 'E1'"
        )
        conn.execute(
            "update core.employee_history set base_salary = 131000.5, currency = 'USD' where employee_id <> "
            "'E1'"
        )
        inputs_complete_through(conn, D)
        hr_known_through(conn, date(2026, 10, 1))  # D's 90-day horizon has passed: its labels are known
    resolve_identities(config, dsn=dsn)
    build_features(config, dsn=dsn, reference_dates=[D])
    with psycopg.connect(dsn, autocommit=True) as conn:
        install_pseudonym_key(conn, KEY)
    return dsn


def four_people_shown_with_k_1(dsn, config):
    """Populate `dsn` as the `warehouse` fixture does; returns `dsn`."""
    populate(dsn, config)
    with psycopg.connect(dsn, autocommit=True) as conn:
        install_analytics_policy(conn, 1)
    return dsn


@pytest.fixture
def warehouse(warehouse_dsn, config):
    """Four people, each alone in some group: shown with k = 1, to check what the views hold."""
    return four_people_shown_with_k_1(warehouse_dsn, config)


@pytest.fixture
def team(warehouse_dsn, config):
    """Fourteen people under the configured k: M1 is alone in their group, the others share one."""
    populate(warehouse_dsn, config, [*LEEDS, *SMALL_SITES])
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        install_analytics_policy(conn, config["analytics"]["min_group_size"])
    return warehouse_dsn


def smallest_group(dsn, view):
    """The fewest people sharing one combination of the view's quasi-identifiers (None: no such group)."""
    columns = ", ".join(GROUPS[view])
    only_shown = "where exit_month is not null" if view == "analytics.turnover_label" else ""
    [(smallest,)] = query(
        dsn,
        f"select min(people) from (select count(distinct person_pseudonym) as people from {view}"  # noqa: S608
        f" {only_shown} group by {columns}) as quasi_identifier_groups",
    )
    return smallest


def pseudonym_of(dsn, employee_id):
    (key,) = query(
        dsn, "select employee_key from core.hris_employee_key where hris_employee_id = %s", (employee_id,)
    )
    return person_pseudonym(KEY, key[0])


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


def shown_pseudonyms(dsn) -> set[str]:
    return {p for (p,) in query(dsn, "select distinct person_pseudonym from analytics.turnover_label")}


@pytest.fixture(scope="module")
def key_rotation(migrated_template_db):
    """The `warehouse` of the tests above, its key installed again and then rotated; run once for the tests
    below, which assert on the pseudonyms shown before and after, and on what the rotation stored."""
    with DatabaseCopies() as databases, pytest.MonkeyPatch.context() as environment:
        dsn = four_people_shown_with_k_1(
            as_airflow_warehouse(databases.copy(migrated_template_db), environment), small_enterprise_config()
        )
        keys = dict(query(dsn, "select hris_employee_id, employee_key from core.hris_employee_key"))
        shown_before = shown_pseudonyms(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            same_key = install_pseudonym_key(conn, KEY)
            rotated = install_pseudonym_key(conn, ROTATED_KEY)
        return SimpleNamespace(
            employee_keys=list(keys.values()),
            shown_before=shown_before,
            same_key=same_key,
            rotated=rotated,
            shown_after=shown_pseudonyms(dsn),
            audit=query(
                dsn,
                "select key_fingerprint, previous_key_fingerprint from audit.pseudonym_key_rotation"
                " order by installed_at",
            ),
            stored=query(dsn, "select inner_pad, outer_pad from governance.pseudonym_key"),
        )


def test_pseudonyms_are_the_hmac_of_the_employee_key(key_rotation):
    expected = {person_pseudonym(KEY, key) for key in key_rotation.employee_keys}
    assert key_rotation.shown_before and key_rotation.shown_before <= expected


def test_installing_the_installed_key_again_does_nothing(key_rotation):
    assert key_rotation.same_key["installed"] is False


def test_a_key_rotation_changes_every_pseudonym(key_rotation):
    assert key_rotation.rotated == {
        "installed": True,
        "key_fingerprint": key_fingerprint(ROTATED_KEY),
        "rotated": True,
    }
    before, after = key_rotation.shown_before, key_rotation.shown_after
    assert len(after) == len(before) and not after & before
    assert after <= {person_pseudonym(ROTATED_KEY, key) for key in key_rotation.employee_keys}


def test_a_key_rotation_is_audited_with_the_previous_keys_fingerprint(key_rotation):
    assert key_rotation.audit == [
        (key_fingerprint(KEY), None),
        (key_fingerprint(ROTATED_KEY), key_fingerprint(KEY)),
    ]


def test_only_the_hmac_pads_of_the_rotated_key_are_stored(key_rotation):
    assert key_rotation.stored == [tuple(hmac_pads(ROTATED_KEY.encode()))]
    assert ROTATED_KEY.encode() not in b"".join(bytes(v) for v in key_rotation.stored[0])


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


@pytest.mark.parametrize("view", ANALYTICS_VIEWS)
def test_every_row_shown_shares_its_quasi_identifiers_with_at_least_k_people(team, config, view):
    k = config["analytics"]["min_group_size"]
    assert k >= 5
    smallest = smallest_group(team, view)
    if view == "analytics.turnover_label":
        # E3 and E1 are the only leavers of July and August: their labels shown, their exit months withheld
        assert smallest is None
        assert query(
            team,
            "select count(*) from analytics.turnover_label"
            " where exit_category is not null and exit_month is null",
        ) == [(2,)]
    else:
        assert smallest is not None and smallest >= k, (view, smallest)


def test_a_person_unique_in_their_group_is_left_out(team, config):
    # M1 alone has a 10y+ tenure, a level 5-6 job and a team of their own: anyone who knows that finds them
    manager = pseudonym_of(team, "M1")
    colleagues = {pseudonym_of(team, e) for e in ("E2", *LEEDS, *SMALL_SITES)}
    for view in ANALYTICS_VIEWS:
        shown = {p for (p,) in query(team, f"select distinct person_pseudonym from {view}")}  # noqa: S608
        assert manager not in shown, view
        if view == "analytics.employee_features":
            assert colleagues <= shown
    with psycopg.connect(team, autocommit=True) as conn:
        install_analytics_policy(conn, 1)  # without the suppression, their row is there
    shown = {p for (p,) in query(team, "select person_pseudonym from analytics.employee_features")}
    assert manager in shown


def test_quasi_identifiers_are_shown_as_bands_and_rare_sites_as_other(team):
    with psycopg.connect(team) as conn, conn.cursor() as cur:
        cur.execute("select * from analytics.employee_features")
        columns = {column.name for column in cur.description}
        rows = [dict(zip([c.name for c in cur.description], row, strict=True)) for row in cur.fetchall()]
    exact = {
        "tenure_days",
        "job_level",
        "team_size",
        "time_in_role_days",
        "days_since_last_promotion",
        "manager_tenure_days",
    }
    assert not columns & exact
    by_site = {}
    for row in rows:
        by_site.setdefault(row["location"], set()).add(row["person_pseudonym"])
    # the five people of five one-person sites form one group of five, shown as 'other'
    assert {site: len(people) for site, people in by_site.items()} == {"Leeds": 8, "other": 5}
    assert {(r["tenure_band"], r["job_level_band"], r["team_size_band"]) for r in rows} == {
        ("2-5y", "levels 1-2", "10-19")
    }


def test_without_an_analytics_policy_the_views_are_empty(team):
    with psycopg.connect(team, autocommit=True) as conn:
        conn.execute("delete from governance.analytics_policy")
    for view in ANALYTICS_VIEWS:
        assert query(team, f"select count(*) from {view}") == [(0,)]  # noqa: S608 - fixed names


def test_the_governance_task_writes_the_configured_k(team, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_ANALYTICS_PSEUDONYM", json.dumps({"conn_type": "generic", "password": KEY})
    )
    result = install_key_from_connection(dsn=team, min_group_size=6)
    assert result == {"installed": False, "key_fingerprint": key_fingerprint(KEY), "rotated": False} | {
        "min_group_size": 6,
        "changed": True,
    }
    assert query(team, "select min_group_size from governance.analytics_policy") == [(6,)]
    # the eight of Leeds are shown; the five of the small sites, a group of five, are not any more
    assert smallest_group(team, "analytics.employee_features") == 8
    assert query(team, "select count(*) from analytics.employee_features") == [(8,)]
    with psycopg.connect(team, autocommit=True) as conn, pytest.raises(BadInputError, match="min_group_size"):
        install_analytics_policy(conn, 0)


def test_the_analyst_keeps_reading_the_new_views_but_not_the_policy(team, login_as):
    with login_as("turnover_analyst") as conn:
        for view in ANALYTICS_VIEWS:
            assert allowed(conn, f"select * from {view}"), view  # noqa: S608 - fixed names
        assert not allowed(conn, "select * from governance.analytics_policy")
        assert conn.execute("select count(*) from analytics.employee_features").fetchone()[0] == 13
