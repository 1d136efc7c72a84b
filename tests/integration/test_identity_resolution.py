"""The identity layer on the real PostgreSQL: matching rules, time-aware emails, keys, stewardship, the gate.

The identity layer reads `core.employee_history`, `raw.lms_user` and `core.lms_activity`; these
tests write small, hand-made histories into those tables (the tables the HRIS and LMS loaders
publish) so each rule can be shown on a few rows. The accuracy test further down runs the real
loaders on the generated enterprise instead.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from tests.integration.hris_helpers import query
from tests.integration.test_hris_ingest import config as hris_config  # noqa: F401 - fixture
from turnover_signals import storage
from turnover_signals.config import load_config
from turnover_signals.errors import BadInputError
from turnover_signals.identity.report import latest_reconciliation, reconciliation_lines
from turnover_signals.identity.resolve import reason_to_skip, resolve_identities
from turnover_signals.identity.review_sample import export_review_sample

CORP = "northwind.example"
FILE_SHA = "f" * 64


@pytest.fixture
def config(tmp_path):
    config = copy.deepcopy(load_config(use_variable=False))
    config["identity"]["review_sample_dir"] = str(tmp_path / "review")
    config["identity"]["min_active_lms_match_rate"] = 0.5
    return config


def employee(
    conn,
    employee_id,
    *,
    email,
    hire,
    guid=None,
    term=None,
    known_at=None,
    first="Ann",
    last="Lee",
    intervals=None,
):
    """HR history for one employee: by default one interval from the hire date, closed at termination."""
    intervals = intervals or [(hire, None, email)]
    for number, (valid_from, valid_to, address) in enumerate(intervals):
        conn.execute(
            """
            insert into core.employee_history (
                employee_id, valid_from, valid_to, is_current, closed_by, known_at, source_sha256, sso_guid,
                work_email, first_name, last_name, hire_date, termination_date, termination_category,
                employment_status)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'active')
            """,
            (
                employee_id,
                valid_from,
                valid_to,
                valid_to is None,
                "attribute_change" if valid_to else None,
                known_at or datetime(2026, 1, 1, tzinfo=UTC),
                FILE_SHA,
                guid,
                address,
                first,
                last,
                hire,
                term if number == len(intervals) - 1 else None,
                "voluntary" if term and number == len(intervals) - 1 else None,
            ),
        )


def lms_user(
    conn, user_id, *, email, created, external_id=None, active=True, extracted_at=None, last_modified=None
):
    resource = {
        "id": user_id,
        "userName": email,
        "emails": [{"value": email, "type": "work", "primary": True}],
    }
    if external_id:
        resource["externalId"] = external_id
    conn.execute(
        """
        insert into raw.lms_user (lms_user_id, last_modified_at, user_name, external_id, work_email,
            primary_email,
            emails, is_active, created_at, valid_to, resource, batch_id, extracted_at)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, null, %s, 'test', %s)
        """,
        (
            user_id,
            last_modified or created,
            email,
            external_id,
            email,
            email,
            json.dumps(resource["emails"]),
            active,
            created,
            json.dumps(resource),
            extracted_at or datetime(2026, 1, 1, tzinfo=UTC),
        ),
    )


def activity(conn, statement_id, learner, occurred, stored=None):
    kind = learner.split(":", 1)[0]
    conn.execute(
        """
        insert into core.lms_activity (statement_id, learner_identifier, learner_identifier_type,
            event_type, verb_id,
            occurred_at, is_timestamp_assumed_utc, stored_at, is_voided)
        values (%s, %s, %s, 'completed', 'http://adlnet.gov/expapi/verbs/completed', %s, false, %s, false)
        """,
        (statement_id, learner, kind, occurred, stored or occurred),
    )


def account_learner(user_id):
    return f"account:https://lms.{CORP}|{user_id}"


def matches(dsn):
    return {
        row[0]: row[1:]
        for row in query(
            dsn,
            "select lms_user_id, hris_employee_id, match_method, unmatched_reason "
            "from core.lms_account_match",
        )
    }


def owner_at(dsn, learner, moment):
    """Which HRIS employee a learner identifier belongs to at a moment (the join features use)."""
    rows = query(
        dsn,
        """
        select hris_employee_id from core.employee_identity
        where identifier_type = 'xapi_actor' and identifier_value = %s
          and valid_from <= %s::date and (valid_to is null or %s::date < valid_to)
        """,
        (learner, moment, moment),
    )
    assert len(rows) <= 1, rows
    return rows[0][0] if rows else None


def identity_tables(dsn):
    """Everything the identity layer publishes (audit timestamps aside), for rerun comparisons."""
    tables = {
        "employee_key_registry": "select employee_key, issued_for_hris_employee_id, merged_into_employee_key"
        " from core.employee_key_registry",
        "hris_employee_key": "select hris_employee_id, employee_key, match_method, linked_to_hris_employee_id"
        " from core.hris_employee_key",
        "employee_identity": "select * from core.employee_identity",
        "lms_account_match": "select * from core.lms_account_match",
        "identity_exception": "select exception_id, kind, status, hris_employee_ids, lms_user_ids, "
        "employee_keys, evidence, resolution from audit.identity_exception",
    }
    return {name: sorted(map(repr, query(dsn, sql))) for name, sql in tables.items()}


def steward_decision(
    conn, identifier_type, identifier_value, decision, employee_key=None, reason="test decision"
):
    """A steward's row in audit.identity_override, as the steward UI or a SQL client writes it."""
    conn.execute(
        "insert into audit.identity_override (identifier_type, identifier_value, decision, employee_key,"
        " decided_by, reason) values (%s, %s, %s, %s, 'steward@hr', %s)",
        (identifier_type, identifier_value, decision, employee_key, reason),
    )


def employee_keys(dsn):
    return dict(query(dsn, "select hris_employee_id, employee_key from core.hris_employee_key"))


def assert_a_full_rebuild_changes_nothing(dsn, config):
    """What the runs so far (incremental ones too) published is exactly what a full rebuild writes."""
    published = identity_tables(dsn)
    resolve_identities(config, dsn=dsn, full=True)
    assert identity_tables(dsn) == published


def test_email_normalization_lowercases_and_strips_aliases_only_for_corporate_domains(warehouse_dsn, config):
    cases = {
        "Ann.Lee@Northwind.Example": "ann.lee@northwind.example",
        "mailto:ann.lee+lms@northwind.example": "ann.lee@northwind.example",
        "ANN.LEE+x@NW-CORP.example": "ann.lee@northwind.example",
        # not ours: only the domain is case-insensitive
        "Ann.Lee+x@Partner.example": "Ann.Lee+x@partner.example",
        "not-an-email": None,
        " ": None,
    }
    with psycopg.connect(warehouse_dsn) as conn:
        for raw, expected in cases.items():
            got = conn.execute(
                "select core.normalize_work_email(%s, %s, %s::jsonb, true)",
                (raw, [CORP], json.dumps({"nw-corp.example": CORP})),
            ).fetchone()[0]
            assert got == expected, raw


def test_sso_guid_wins_then_normalized_email_and_outsiders_stay_unmatched_with_a_reason(
    warehouse_dsn, config
):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", guid="aaaa-1", email=f"ann.lee@{CORP}", hire=date(2020, 1, 6))
        employee(
            conn, "E2", guid="bbbb-2", email=f"bo.ng@{CORP}", hire=date(2021, 3, 1), first="Bo", last="Ng"
        )
        # SSO GUID (any case) beats an email that points at someone else: a conflict for the steward.
        lms_user(
            conn,
            "u-sso",
            email=f"bo.ng@{CORP}",
            external_id="AAAA-1",
            created=datetime(2021, 4, 1, tzinfo=UTC),
        )
        # No GUID: a case / plus / alias-domain variant of the corporate address still matches.
        lms_user(conn, "u-alias", email="Bo.Ng+lms@NW-CORP.example", created=datetime(2021, 4, 1, tzinfo=UTC))
        lms_user(
            conn, "u-contractor", email="cy.do@contractor.example", created=datetime(2021, 4, 1, tzinfo=UTC)
        )
        lms_user(conn, "u-unknown", email=f"nobody@{CORP}", created=datetime(2021, 4, 1, tzinfo=UTC))
    resolve_identities(config, dsn=warehouse_dsn)

    got = matches(warehouse_dsn)
    assert got["u-sso"] == ("E1", "sso_guid", None)
    assert got["u-alias"] == ("E2", "work_email", None)
    assert got["u-contractor"] == (None, None, "no_corporate_identifier")
    assert got["u-unknown"] == (None, None, "email_not_in_hris")
    exceptions = query(warehouse_dsn, "select kind, lms_user_ids, status from audit.identity_exception")
    assert exceptions == [("sso_guid_disagrees_with_email", ["u-sso"], "open")]
    keys = employee_keys(warehouse_dsn)
    assert len(set(keys.values())) == 2


def test_a_recycled_email_attaches_activity_only_to_whoever_held_it_at_the_time(warehouse_dsn, config):
    address = f"sam.roe@{CORP}"
    hashed = hashlib.sha1(f"mailto:{address}".encode(), usedforsecurity=False).hexdigest()
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E-LEAVER", email=address, hire=date(2019, 1, 7), term=date(2024, 3, 29))
        employee(conn, "E-NEW", email=address, hire=date(2024, 6, 3))
        lms_user(conn, "u-old", email=address, created=datetime(2019, 1, 10, tzinfo=UTC), active=False)
        lms_user(conn, "u-new", email=address.upper(), created=datetime(2024, 6, 4, tzinfo=UTC))
        for n, (learner, moment) in enumerate(
            [
                (f"mbox:{address}", "2023-05-02T10:00:00Z"),
                (f"mbox:{address}", "2024-05-02T10:00:00Z"),
                (f"mbox:{address}", "2024-07-02T10:00:00Z"),
                (account_learner("u-old"), "2024-04-15T10:00:00Z"),
                (f"mbox_sha1sum:{hashed}", "2023-06-02T10:00:00Z"),
            ]
        ):
            activity(conn, f"s{n}", learner, moment)
    resolve_identities(config, dsn=warehouse_dsn)

    got = matches(warehouse_dsn)
    assert got["u-old"][:2] == ("E-LEAVER", "work_email")
    assert got["u-new"][:2] == ("E-NEW", "work_email")
    assert owner_at(warehouse_dsn, f"mbox:{address}", "2023-05-02") == "E-LEAVER"
    assert owner_at(warehouse_dsn, f"mbox:{address}", "2024-03-29") == "E-LEAVER"  # the last day still counts
    assert owner_at(warehouse_dsn, f"mbox:{address}", "2024-05-02") is None  # between the two: nobody's
    assert owner_at(warehouse_dsn, f"mbox:{address}", "2024-07-02") == "E-NEW"
    assert owner_at(warehouse_dsn, account_learner("u-old"), "2024-04-15") is None  # after the leave date
    assert owner_at(warehouse_dsn, f"mbox_sha1sum:{hashed}", "2023-06-02") == "E-LEAVER"
    assert latest_reconciliation_row(warehouse_dsn)["statements_attributable"] == 3


def latest_reconciliation_row(dsn):
    with psycopg.connect(dsn) as conn:
        return latest_reconciliation(conn)


def test_a_rehire_keeps_the_key_through_the_sso_guid_and_a_steward_can_link_one_without_it(
    warehouse_dsn, config
):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(
            conn, "E1", guid="gggg-1", email=f"li.wu@{CORP}", hire=date(2018, 2, 5), term=date(2022, 6, 30)
        )
        employee(conn, "E7", guid="gggg-1", email=f"li.wu@{CORP}", hire=date(2023, 9, 4))
        employee(conn, "E8", email=f"jo.kim@{CORP}", hire=date(2024, 1, 8))
        lms_user(
            conn,
            "u-first",
            email=f"li.wu@{CORP}",
            external_id="gggg-1",
            created=datetime(2018, 2, 6, tzinfo=UTC),
            active=False,
        )
        lms_user(
            conn,
            "u-second",
            email=f"li.wu@{CORP}",
            external_id="gggg-1",
            created=datetime(2023, 9, 5, tzinfo=UTC),
        )
    resolve_identities(config, dsn=warehouse_dsn)

    keys = employee_keys(warehouse_dsn)
    assert keys["E1"] == keys["E7"] != keys["E8"]
    got = matches(warehouse_dsn)
    assert got["u-first"][:2] == ("E1", "sso_guid") and got["u-second"][:2] == ("E7", "sso_guid")
    assert query(
        warehouse_dsn,
        "select match_method, linked_to_hris_employee_id from core.hris_employee_key"
        " where hris_employee_id = 'E7'",
    ) == [("sso_guid", "E1")]

    # A steward says E8 is E1 rehired (no GUID in HR to prove it): E8 joins that key and its
    # own key is retired, never to be issued again.
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        steward_decision(conn, "hris_employee_id", "E8", "match", keys["E1"], reason="rehire confirmed")
        employee(
            conn,
            "E9",
            email=f"new.one@{CORP}",
            hire=date(2026, 1, 5),
            known_at=datetime(2026, 2, 1, tzinfo=UTC),
        )
    summary = resolve_identities(config, dsn=warehouse_dsn)
    assert summary["mode"] == "incremental"
    after = employee_keys(warehouse_dsn)
    assert after["E8"] == keys["E1"]
    assert after["E9"] > max(keys.values())  # never a reuse of the retired key
    assert query(
        warehouse_dsn,
        "select merged_into_employee_key from core.employee_key_registry where employee_key = %s",
        (keys["E8"],),
    ) == [(keys["E1"],)]

    # A full rebuild keeps every key and reapplies the steward's decision.
    assert_a_full_rebuild_changes_nothing(warehouse_dsn, config)


def test_steward_not_a_match_survives_reruns_and_rebuilds(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", email=f"max.li@{CORP}", hire=date(2020, 1, 6))
        lms_user(conn, "u-shared", email=f"max.li@{CORP}", created=datetime(2020, 2, 1, tzinfo=UTC))
    resolve_identities(config, dsn=warehouse_dsn)
    assert matches(warehouse_dsn)["u-shared"][:2] == ("E1", "work_email")

    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        steward_decision(
            conn, "lms_user_id", "u-shared", "not_a_match", reason="a shared training-room login"
        )
    for full in (False, False, True):
        resolve_identities(config, dsn=warehouse_dsn, full=full)
        assert matches(warehouse_dsn)["u-shared"] == (None, None, "steward_not_a_match")
        assert query(
            warehouse_dsn, "select count(*) from core.employee_identity where lms_user_id = 'u-shared'"
        ) == [(0,)]


def test_keys_survive_an_email_change_and_two_active_accounts_are_an_exception(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", guid="cccc-3", email=f"eva.maier@{CORP}", hire=date(2020, 1, 6))
        lms_user(
            conn,
            "u-main",
            email=f"eva.maier@{CORP}",
            external_id="cccc-3",
            created=datetime(2020, 1, 8, tzinfo=UTC),
        )
    resolve_identities(config, dsn=warehouse_dsn)
    key = query(warehouse_dsn, "select employee_key from core.hris_employee_key")[0][0]

    # She marries and HR changes her address; she also self-registers a second account with it.
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            "update core.employee_history set valid_to = '2025-05-01', is_current = false,"
            " closed_by = 'attribute_change'"
        )
        employee(
            conn,
            "E1",
            guid="cccc-3",
            email=f"eva.berg@{CORP}",
            hire=date(2020, 1, 6),
            intervals=[(date(2025, 5, 1), None, f"eva.berg@{CORP}")],
            known_at=datetime(2026, 3, 1, tzinfo=UTC),
        )
        lms_user(
            conn,
            "u-second",
            email=f"Eva.Berg+learn@{CORP}",
            created=datetime(2025, 6, 1, tzinfo=UTC),
            extracted_at=datetime(2026, 3, 1, tzinfo=UTC),
        )
    summary = resolve_identities(config, dsn=warehouse_dsn)
    assert summary["mode"] == "incremental" and summary["keys_issued"] == 0
    assert query(warehouse_dsn, "select distinct employee_key from core.hris_employee_key") == [(key,)]
    assert sorted(
        query(
            warehouse_dsn,
            "select identifier_value, valid_from, valid_to from core.employee_identity"
            " where identifier_type = 'work_email'",
        )
    ) == [
        (f"eva.berg@{CORP}", date(2025, 5, 1), None),
        (f"eva.maier@{CORP}", date(2020, 1, 6), date(2025, 5, 1)),
    ]
    assert matches(warehouse_dsn)["u-second"][:2] == ("E1", "work_email")
    assert query(warehouse_dsn, "select kind, lms_user_ids, status from audit.identity_exception") == [
        ("employee_two_active_lms_accounts", ["u-main", "u-second"], "open")
    ]

    # The steward deactivates the duplicate account in the LMS: the exception closes by itself.
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            "update raw.lms_user set is_active = false, extracted_at = '2026-04-01'"
            " where lms_user_id = 'u-second'"
        )
    resolve_identities(config, dsn=warehouse_dsn)
    assert query(warehouse_dsn, "select status, resolution from audit.identity_exception") == [
        ("resolved", "no longer detected")
    ]


def test_an_email_two_people_hold_at_once_identifies_neither_and_is_reported(warehouse_dsn, config):
    shared = f"help.desk@{CORP}"
    config["identity"]["min_active_lms_match_rate"] = 0  # the only account is ambiguous here
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", email=shared, hire=date(2020, 1, 6))
        employee(conn, "E2", email=shared, hire=date(2021, 1, 4), first="Al", last="Bo")
        lms_user(conn, "u-desk", email=shared, created=datetime(2021, 2, 1, tzinfo=UTC))
        activity(conn, "s1", f"mbox:{shared}", "2021-03-01T09:00:00Z")
    resolve_identities(config, dsn=warehouse_dsn)
    assert matches(warehouse_dsn)["u-desk"] == (None, None, "ambiguous_work_email")
    assert owner_at(warehouse_dsn, f"mbox:{shared}", "2021-03-01") is None
    kinds = sorted(kind for (kind,) in query(warehouse_dsn, "select kind from audit.identity_exception"))
    assert kinds == ["email_collision", "lms_account_claims_two_employees"]
    assert query(
        warehouse_dsn,
        "select count(*) from core.employee_identity where identifier_type = 'work_email'"
        " and identifier_value = %s",
        (shared,),
    ) == [(0,)]


def populate_mixed_enterprise(conn, offset=0, known_at=None):
    """A few dozen employees and accounts with every rule and mess in play."""
    for n in range(offset, offset + 30):
        guid = f"guid-{n}" if n % 4 else None
        email = f"person.{n}@{CORP}"
        term = date(2024, 6, 28) if n % 7 == 0 else None
        employee(
            conn, f"E{n:03d}", guid=guid, email=email, hire=date(2020, 1, 6), term=term, known_at=known_at
        )
        variant = [email, email.upper(), email.replace("@", "+lms@"), email.replace(CORP, "nw-corp.example")][
            n % 4
        ]
        lms_user(
            conn,
            f"u-{n:03d}",
            email=variant,
            external_id=guid if n % 3 else None,
            created=datetime(2020, 1, 9, tzinfo=UTC),
            extracted_at=known_at,
        )
        activity(conn, f"s-{n}-a", account_learner(f"u-{n:03d}"), "2023-01-10T10:00:00Z", stored=known_at)
        activity(conn, f"s-{n}-m", f"mbox:{variant}", "2025-01-10T10:00:00Z", stored=known_at)
    lms_user(
        conn,
        f"u-ext-{offset}",
        email=f"guest.{offset}@partner.example",
        created=datetime(2022, 1, 1, tzinfo=UTC),
        extracted_at=known_at,
    )


def test_incremental_runs_converge_to_a_full_rebuild_and_reruns_change_nothing(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        populate_mixed_enterprise(conn)
    assert resolve_identities(config, dsn=warehouse_dsn)["mode"] == "full"
    first = identity_tables(warehouse_dsn)
    assert resolve_identities(config, dsn=warehouse_dsn)["scope_employees"] == 0
    assert identity_tables(warehouse_dsn) == first

    later = datetime(2026, 5, 1, tzinfo=UTC)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        populate_mixed_enterprise(conn, offset=100, known_at=later)  # new hires, accounts and activity
        # an account re-pointed at someone else
        conn.execute(
            "update raw.lms_user set work_email = %(email)s, primary_email = %(email)s, extracted_at = %(at)s"
            " where lms_user_id = 'u-003'",
            {"email": f"person.5@{CORP}", "at": later},
        )
    summary = resolve_identities(config, dsn=warehouse_dsn)
    assert summary["mode"] == "incremental"
    assert 30 <= summary["scope_employees"] < 40
    assert_a_full_rebuild_changes_nothing(warehouse_dsn, config)
    assert matches(warehouse_dsn)["u-003"][:2] == ("E005", "work_email")


def test_a_failed_gate_publishes_nothing_and_names_the_top_reasons_for_misses(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        populate_mixed_enterprise(conn)
    resolve_identities(config, dsn=warehouse_dsn)
    before = identity_tables(warehouse_dsn)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        for n in range(20):  # a directory import full of addresses HR has never heard of
            lms_user(
                conn,
                f"u-stray-{n}",
                email=f"stray.{n}@{CORP}",
                created=datetime(2025, 1, 1, tzinfo=UTC),
                extracted_at=datetime(2026, 6, 1, tzinfo=UTC),
            )
    strict = copy.deepcopy(config)
    strict["identity"]["min_active_lms_match_rate"] = 0.9

    with pytest.raises(BadInputError) as failure:
        resolve_identities(strict, dsn=warehouse_dsn)
    message = str(failure.value)
    assert "email_not_in_hris (20)" in message and "nothing was published" in message
    assert "runbook-identity_resolution" in message
    assert identity_tables(warehouse_dsn) == before
    row = latest_reconciliation_row(warehouse_dsn)
    assert row["success"] is False and row["lms_users_unmatched_by_reason"]["email_not_in_hris"] == 20
    assert query(
        warehouse_dsn,
        "select success from audit.validation_result where validation_id = %s",
        (row["validation_id"],),
    ) == [(False,)]
    lines = reconciliation_lines(row)
    assert "FAILED" in lines[0] and "email_not_in_hris 20" in lines[2]


def test_review_sample_holds_n_per_method_without_pii_and_a_rerun_writes_the_same_file(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        populate_mixed_enterprise(conn)
    resolve_identities(config, dsn=warehouse_dsn)
    first = export_review_sample(config, dsn=warehouse_dsn, seed="run-1", per_method=5)
    content = storage.read_bytes(config, first["path"]).decode("utf-8")
    assert (
        export_review_sample(config, dsn=warehouse_dsn, seed="run-1", per_method=5)["path"] == first["path"]
    )
    assert storage.read_bytes(config, first["path"]).decode("utf-8") == content
    rows = list(csv.DictReader(content.splitlines()))
    assert first["per_group"] == {"sso_guid": 5, "work_email": 5, "unmatched:no_corporate_identifier": 1}
    assert "person." not in content and "guest." not in content  # emails masked to first letter + domain
    assert {row["account_email_masked"][:5] for row in rows} <= {"p***@", "g***@"}


def test_an_incremental_run_reports_the_same_reconciliation_as_a_full_rebuild(warehouse_dsn, config):
    """The KPIs and gate checks an incremental run computes over its scope and global counts match a full
    rebuild's."""
    kpis = (
        "hris_headcount",
        "canonical_headcount",
        "employee_keys",
        "lms_users",
        "lms_users_matched",
        "lms_users_unmatched_by_reason",
        "lms_users_matched_by_method",
        "active_lms_users",
        "active_match_rate",
        "active_corporate_lms_users",
        "active_corporate_match_rate",
        "statements",
        "statements_attributable",
        "open_exceptions_by_kind",
    )
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        populate_mixed_enterprise(conn)
    resolve_identities(config, dsn=warehouse_dsn)
    later = datetime(2026, 5, 1, tzinfo=UTC)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        populate_mixed_enterprise(conn, offset=100, known_at=later)
        activity(conn, "s-late", account_learner("u-001"), "2025-02-01T10:00:00Z", stored=later)
    assert resolve_identities(config, dsn=warehouse_dsn)["mode"] == "incremental"
    incremental = latest_reconciliation_row(warehouse_dsn)
    resolve_identities(config, dsn=warehouse_dsn, full=True)
    rebuilt = latest_reconciliation_row(warehouse_dsn)
    assert {k: incremental[k] for k in kpis} == {k: rebuilt[k] for k in kpis}
    assert incremental["scope_employees"] < rebuilt["scope_employees"]
    assert incremental["statements_attributable"] > 0


@pytest.mark.parametrize(
    "stored_earlier_by",
    [timedelta(days=1), timedelta(days=30)],
    ids=["inside_the_loader_overlap", "from_a_period_re_read_by_lowering_the_watermark"],
)
def test_a_new_learner_in_a_statement_stored_before_the_last_run_but_loaded_after_it_is_linked(
    warehouse_dsn, config, stored_earlier_by
):
    created = datetime(2022, 3, 2, tzinfo=UTC)
    newest_stored = datetime(2026, 5, 10, 9, tzinfo=UTC)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", guid="hhhh-1", email=f"eva.ma@{CORP}", hire=date(2021, 3, 1))
        employee(conn, "E2", guid="hhhh-2", email=f"ray.oh@{CORP}", hire=date(2022, 3, 1), first="Ray")
        lms_user(conn, "u-eva", email=f"eva.ma@{CORP}", external_id="hhhh-1", created=created)
        lms_user(conn, "u-ray", email=f"ray.oh@{CORP}", external_id="hhhh-2", created=created)
        activity(conn, "s-eva", account_learner("u-eva"), "2026-05-10T08:00:00Z", stored=newest_stored)
    assert resolve_identities(config, dsn=warehouse_dsn)["mode"] == "full"

    # Only now the loader publishes a statement stored before the newest one that run saw: the LRS
    # exposed it late (it comes in the loader's overlap), or an operator lowered the watermark to
    # re-read a period. It is the first statement of Ray's account: a new learner.
    late_learner = account_learner("u-ray")
    late_stored = newest_stored - stored_earlier_by
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        activity(conn, "s-ray", late_learner, late_stored - timedelta(hours=1), stored=late_stored)
    assert resolve_identities(config, dsn=warehouse_dsn)["mode"] == "incremental"

    learners = query(warehouse_dsn, "select learner_identifier from core.identity_learner order by 1")
    assert learners == [(account_learner("u-eva"),), (late_learner,)]
    assert owner_at(warehouse_dsn, late_learner, late_stored.date()) == "E2"
    assert_a_full_rebuild_changes_nothing(warehouse_dsn, config)


def test_the_first_run_after_load_times_are_kept_reads_all_activity_for_new_learners(warehouse_dsn, config):
    """Activity published before migration 0022 has no load time, nor has the run before it a mark: the
    next run reads all activity, so it also links a learner the earlier stored-time rule had missed."""
    created = datetime(2022, 3, 2, tzinfo=UTC)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", guid="iiii-1", email=f"ida.fo@{CORP}", hire=date(2021, 3, 1))
        employee(conn, "E2", guid="iiii-2", email=f"max.ot@{CORP}", hire=date(2022, 3, 1), first="Max")
        lms_user(conn, "u-ida", email=f"ida.fo@{CORP}", external_id="iiii-1", created=created)
        lms_user(conn, "u-max", email=f"max.ot@{CORP}", external_id="iiii-2", created=created)
        activity(conn, "s-ida", account_learner("u-ida"), "2026-05-10T08:00:00Z")
    resolve_identities(config, dsn=warehouse_dsn)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        activity(conn, "s-max", account_learner("u-max"), "2026-05-09T08:00:00Z")  # stored before s-ida
        conn.execute("update core.lms_activity set loaded_at = null")
        conn.execute("update audit.identity_reconciliation set lms_activity_loaded_high_water = null")
    assert resolve_identities(config, dsn=warehouse_dsn)["mode"] == "incremental"

    assert owner_at(warehouse_dsn, account_learner("u-max"), "2026-05-09") == "E2"
    assert_a_full_rebuild_changes_nothing(warehouse_dsn, config)


def test_an_lms_id_recorded_in_the_hris_matches_when_no_guid_does(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", email=f"pat.kay@{CORP}", hire=date(2021, 2, 1))
        employee(conn, "E2", guid="gggg-2", email=f"lou.ray@{CORP}", hire=date(2021, 2, 1))
        conn.execute("update core.employee_history set lms_user_id = 'u-legacy-7' where employee_id = 'E1'")
        conn.execute("update core.employee_history set lms_user_id = 'u-other' where employee_id = 'E2'")
        # an address nobody in HR has: only the HRIS-recorded id can link it
        lms_user(conn, "u-legacy-7", email="pkay@old-lms.example", created=datetime(2021, 2, 3, tzinfo=UTC))
        # the GUID outranks a recorded id that points elsewhere
        lms_user(
            conn,
            "u-other",
            email="lou@old-lms.example",
            external_id="gggg-2",
            created=datetime(2021, 2, 3, tzinfo=UTC),
        )
    resolve_identities(config, dsn=warehouse_dsn)
    got = matches(warehouse_dsn)
    assert got["u-legacy-7"] == ("E1", "hris_lms_user_id", None)
    assert got["u-other"] == ("E2", "sso_guid", None)


def test_the_hris_lms_user_id_column_travels_from_the_file_into_the_history(
    sftp_drop,  # noqa: F811
    hris_dir,  # noqa: F811
    hris_config,  # noqa: F811
    warehouse_dsn,  # noqa: F811
):
    from tests.integration.hris_helpers import csv_bytes, employee_row, write_feed_file
    from tests.integration.test_hris_ingest import run_pipeline
    from turnover_signals.hris.contract import EMPLOYEE_COLUMNS

    rows = [employee_row(n, lms_user_id=f"u-{n}" if n % 2 else "") for n in range(1, 5)]
    write_feed_file(hris_dir, "employees_20260105.csv", csv_bytes(rows, columns=EMPLOYEE_COLUMNS))
    sftp_drop.sync()
    results, errors = run_pipeline(hris_config, warehouse_dsn)
    assert errors == []
    assert query(warehouse_dsn, "select employee_id, lms_user_id from core.employee_history order by 1") == [
        ("E000001", "u-1"),
        ("E000002", None),
        ("E000003", "u-3"),
        ("E000004", None),
    ]


def test_a_steward_not_a_match_splits_a_rehire_linked_by_guid(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(
            conn, "E1", guid="gggg-9", email=f"al.x@{CORP}", hire=date(2018, 2, 5), term=date(2022, 6, 30)
        )
        employee(conn, "E7", guid="gggg-9", email=f"al.y@{CORP}", hire=date(2023, 9, 4))
    resolve_identities(config, dsn=warehouse_dsn)
    keys = employee_keys(warehouse_dsn)
    assert keys["E1"] == keys["E7"]
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        steward_decision(
            conn, "hris_employee_id", "E7", "not_a_match", reason="IdP reused the GUID for a namesake"
        )
    resolve_identities(config, dsn=warehouse_dsn)
    after = employee_keys(warehouse_dsn)
    assert after["E1"] == keys["E1"] and after["E7"] > keys["E1"]
    assert query(
        warehouse_dsn,
        "select issued_for_hris_employee_id from core.employee_key_registry where employee_key = %s",
        (after["E7"],),
    ) == [("E7",)]
    assert_a_full_rebuild_changes_nothing(warehouse_dsn, config)  # stable: the split is not undone or redone


def test_withdrawing_a_steward_decision_applies_on_the_next_incremental_run(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", email=f"max.li@{CORP}", hire=date(2020, 1, 6))
        employee(conn, "E2", email=f"ida.fox@{CORP}", hire=date(2020, 1, 6), first="Ida", last="Fox")
        employee(
            conn, "E5", guid="gggg-5", email=f"al.x@{CORP}", hire=date(2018, 2, 5), term=date(2022, 6, 30)
        )
        employee(conn, "E6", guid="gggg-5", email=f"al.y@{CORP}", hire=date(2023, 9, 4))
        lms_user(conn, "u-shared", email=f"max.li@{CORP}", created=datetime(2020, 2, 1, tzinfo=UTC))
        lms_user(conn, "u-legacy", email="ifox@old-lms.example", created=datetime(2020, 2, 1, tzinfo=UTC))
    resolve_identities(config, dsn=warehouse_dsn)
    keys = employee_keys(warehouse_dsn)
    assert keys["E5"] == keys["E6"]
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        steward_decision(conn, "lms_user_id", "u-shared", "not_a_match")
        steward_decision(conn, "lms_user_id", "u-legacy", "match", keys["E2"])
        steward_decision(conn, "hris_employee_id", "E6", "not_a_match")
    resolve_identities(config, dsn=warehouse_dsn)
    got = matches(warehouse_dsn)
    assert got["u-shared"] == (None, None, "steward_not_a_match")
    assert got["u-legacy"] == ("E2", "steward_override", None)
    assert employee_keys(warehouse_dsn)["E6"] != keys["E5"]

    # The steward withdraws all three: each identifier is back to what the rules say.
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute("update audit.identity_override set is_active = false")
    assert resolve_identities(config, dsn=warehouse_dsn)["mode"] == "incremental"
    got = matches(warehouse_dsn)
    assert got["u-shared"] == ("E1", "work_email", None)
    assert got["u-legacy"] == (None, None, "no_corporate_identifier")
    assert employee_keys(warehouse_dsn)["E6"] == keys["E5"]  # the GUID links the rehire again
    assert_a_full_rebuild_changes_nothing(warehouse_dsn, config)


def test_a_rehire_keeps_the_activity_of_the_lms_account_he_kept_through_the_sso_guid_or_a_steward(
    warehouse_dsn, config
):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(
            conn, "E1", guid="gggg-1", email=f"li.wu@{CORP}", hire=date(2018, 2, 5), term=date(2022, 6, 30)
        )
        lms_user(
            conn,
            "u-li",
            email=f"li.wu@{CORP}",
            external_id="gggg-1",
            created=datetime(2018, 2, 6, tzinfo=UTC),
        )
        employee(
            conn, "E3", guid="gggg-3", email=f"jo.kim@{CORP}", hire=date(2017, 1, 2), term=date(2021, 5, 31)
        )
        lms_user(
            conn,
            "u-jo",
            email=f"jo.kim@{CORP}",
            external_id="gggg-3",
            created=datetime(2017, 1, 5, tzinfo=UTC),
        )
        lms_user(
            conn,
            "u-jo-old",
            email="jkim@old-lms.example",
            created=datetime(2017, 1, 5, tzinfo=UTC),
            active=False,
        )
        # matched by email only: an address can be reissued, so the account stays with its employment
        employee(
            conn, "E5", guid="gggg-5", email=f"pat.ode@{CORP}", hire=date(2018, 2, 5), term=date(2022, 6, 30)
        )
        lms_user(conn, "u-pat", email=f"pat.ode@{CORP}", created=datetime(2018, 2, 6, tzinfo=UTC))
        for user_id in ("u-li", "u-jo", "u-jo-old", "u-pat"):
            for moment in ("2019-05-02T10:00:00Z", "2023-01-10T10:00:00Z", "2024-01-10T10:00:00Z"):
                activity(conn, f"{user_id}-{moment[:10]}", account_learner(user_id), moment)
    resolve_identities(config, dsn=warehouse_dsn)
    key = employee_keys(warehouse_dsn)["E3"]

    # Rehired under new employee ids: E7 carries E1's GUID, E4 (no GUID) is linked to E3 by a steward who
    # also matches E3's old account to that key, E6 carries E5's GUID.
    later = datetime(2026, 3, 1, tzinfo=UTC)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E7", guid="gggg-1", email=f"wu.li@{CORP}", hire=date(2023, 9, 4), known_at=later)
        employee(conn, "E4", email=f"jo.kim2@{CORP}", hire=date(2023, 9, 4), known_at=later)
        employee(conn, "E6", guid="gggg-5", email=f"pat.ode@{CORP}", hire=date(2023, 9, 4), known_at=later)
        steward_decision(conn, "hris_employee_id", "E4", "match", key)
        steward_decision(conn, "lms_user_id", "u-jo-old", "match", key)
    assert resolve_identities(config, dsn=warehouse_dsn)["mode"] == "incremental"
    keys = employee_keys(warehouse_dsn)
    assert keys["E7"] == keys["E1"] and keys["E4"] == keys["E3"] and keys["E6"] == keys["E5"]

    assert matches(warehouse_dsn)["u-jo-old"][:2] == ("E3", "steward_override")
    for user_id, first, rehired in (("u-li", "E1", "E7"), ("u-jo", "E3", "E4"), ("u-jo-old", "E3", "E4")):
        learner = account_learner(user_id)
        assert owner_at(warehouse_dsn, learner, "2019-05-02") == first
        assert owner_at(warehouse_dsn, learner, "2023-01-10") is None  # between the leave and the rehire
        assert owner_at(warehouse_dsn, learner, "2024-01-10") == rehired
    assert owner_at(warehouse_dsn, account_learner("u-pat"), "2019-05-02") == "E5"
    assert owner_at(warehouse_dsn, account_learner("u-pat"), "2024-01-10") is None
    assert query(
        warehouse_dsn,
        "select hris_employee_id, valid_from, valid_to from core.employee_identity"
        " where identifier_type = 'lms_user_id' and identifier_value = 'u-li'"
        " order by valid_from",
    ) == [("E1", date(2018, 2, 5), date(2022, 7, 1)), ("E7", date(2023, 9, 4), None)]
    assert_a_full_rebuild_changes_nothing(warehouse_dsn, config)

    # The IdP issues E7 a new GUID (the key stays), then a new LMS account with E7's address brings E7
    # alone into a run's scope: u-li's rows in E7's employment must be rebuilt with it.
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            "update core.employee_history set sso_guid = 'gggg-7', known_at = '2026-04-01'"
            " where employee_id = 'E7'"
        )
    resolve_identities(config, dsn=warehouse_dsn)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        lms_user(
            conn,
            "u-li-2",
            email=f"wu.li@{CORP}",
            created=datetime(2026, 4, 2, tzinfo=UTC),
            extracted_at=datetime(2026, 5, 1, tzinfo=UTC),
        )
    resolve_identities(config, dsn=warehouse_dsn)
    assert owner_at(warehouse_dsn, account_learner("u-li"), "2024-01-10") == "E7"
    assert_a_full_rebuild_changes_nothing(warehouse_dsn, config)

    # Existing warehouses re-match everything once when the rule version changes (either way).
    earlier_rules = copy.deepcopy(config)
    earlier_rules["identity"]["rule_version"] = config["identity"]["rule_version"] - 1
    assert resolve_identities(earlier_rules, dsn=warehouse_dsn)["mode"] == "full"
    assert resolve_identities(config, dsn=warehouse_dsn)["mode"] == "full"
    assert resolve_identities(config, dsn=warehouse_dsn)["mode"] == "incremental"


def test_an_employee_removed_from_the_hr_history_leaves_the_identity_layer_on_the_next_incremental_run(
    warehouse_dsn, config
):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        populate_mixed_enterprise(conn)
    resolve_identities(config, dsn=warehouse_dsn)
    key = employee_keys(warehouse_dsn)["E005"]

    # An HR correction supersedes the only file that had E005: its history rows are gone.
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute("delete from core.employee_history where employee_id = 'E005'")
    summary = resolve_identities(config, dsn=warehouse_dsn)
    assert summary["mode"] == "incremental"
    assert summary["hris_headcount"] == summary["canonical_headcount"] == 29
    assert latest_reconciliation_row(warehouse_dsn)["employee_keys"] == 29  # the keys people in HR hold
    assert query(
        warehouse_dsn, "select count(*) from core.employee_identity where hris_employee_id = 'E005'"
    ) == [(0,)]
    assert matches(warehouse_dsn)["u-005"] == (None, None, "identifiers_not_in_hris")
    assert_a_full_rebuild_changes_nothing(warehouse_dsn, config)

    # Its key stays reserved for it (never reissued): should HR restore the employee, it comes back.
    assert employee_keys(warehouse_dsn)["E005"] == key
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(
            conn,
            "E005",
            guid="guid-5",
            email=f"person.5@{CORP}",
            hire=date(2020, 1, 6),
            known_at=datetime(2026, 5, 1, tzinfo=UTC),
        )
    assert resolve_identities(config, dsn=warehouse_dsn)["mode"] == "incremental"
    assert employee_keys(warehouse_dsn)["E005"] == key
    assert matches(warehouse_dsn)["u-005"][:2] == ("E005", "sso_guid")
    assert_a_full_rebuild_changes_nothing(warehouse_dsn, config)


PASSING_GATE_METRICS = {
    "hris_headcount": 30,
    "canonical_headcount": 30,
    "employees_with_several_keys": 0,
    "identifiers_owned_by_two_keys": 0,
    "active_corporate_match_rate": 0.97,
}


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        (
            {"canonical_headcount": 29},
            "every HRIS employee has exactly one employee_key (headcount reconciles)",
        ),
        ({"employees_with_several_keys": 1}, "no HRIS employee_id maps to two employee_keys"),
        (
            {"identifiers_owned_by_two_keys": 2},
            "no identifier is owned by two employee_keys at the same time",
        ),
    ],
    ids=["headcount_mismatch", "employee_with_two_keys", "identifier_owned_by_two_keys"],
)
def test_the_identity_gate_fails_on_each_broken_invariant_and_names_it(warehouse_dsn, config, broken, named):
    from turnover_signals.identity.resolve import gate_metrics

    assert gate_metrics(config, PASSING_GATE_METRICS, "gate-pass", warehouse_dsn).success
    outcome = gate_metrics(config, {**PASSING_GATE_METRICS, **broken}, "gate-fail", warehouse_dsn)
    assert not outcome.success
    assert [item["description"] for item in outcome.failed] == [named]
    assert outcome.failure_summary().startswith(named)


def test_an_xapi_account_actor_named_by_the_sso_guid_attributes_to_the_employee(warehouse_dsn, config):
    learner = "account:https://idp.northwind.example|DDDD-4"  # an LMS that keys learners by the IdP subject
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", guid="dddd-4", email=f"kai.orr@{CORP}", hire=date(2021, 3, 1))
        activity(conn, "s-during", learner, "2022-05-03T09:00:00Z")
        activity(conn, "s-before", learner, "2021-02-01T09:00:00Z")
    resolve_identities(config, dsn=warehouse_dsn)
    assert owner_at(warehouse_dsn, learner, "2022-05-03") == "E1"
    assert owner_at(warehouse_dsn, learner, "2021-02-01") is None  # before the hire date
    assert query(
        warehouse_dsn,
        "select match_method from core.employee_identity where identifier_value = %s",
        (learner,),
    ) == [("sso_guid",)]


def test_one_sso_guid_on_two_overlapping_employments_is_reported_and_never_merged(warehouse_dsn, config):
    config["identity"]["min_active_lms_match_rate"] = 0  # the only account is ambiguous here
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", guid="eeee-5", email=f"ana.pe@{CORP}", hire=date(2020, 1, 6))
        employee(
            conn, "E2", guid="EEEE-5", email=f"bo.ru@{CORP}", hire=date(2021, 1, 4), first="Bo", last="Ru"
        )
        lms_user(
            conn,
            "u-guid",
            email="x@partner.example",
            external_id="eeee-5",
            created=datetime(2021, 2, 1, tzinfo=UTC),
        )
    for full in (False, True):
        resolve_identities(config, dsn=warehouse_dsn, full=full)
        keys = employee_keys(warehouse_dsn)
        assert keys["E1"] != keys["E2"]
        assert query(
            warehouse_dsn,
            "select kind, hris_employee_ids, lms_user_ids, status from audit.identity_exception"
            " order by kind",
        ) == [
            ("lms_account_claims_two_employees", [], ["u-guid"], "open"),
            ("sso_guid_collision", ["E1", "E2"], [], "open"),
        ]
        assert matches(warehouse_dsn)["u-guid"] == (None, None, "ambiguous_sso_guid")
        # the GUID identifies neither of them
        assert query(
            warehouse_dsn, "select count(*) from core.employee_identity where identifier_type = 'sso_guid'"
        ) == [(0,)]


def test_a_steward_match_links_an_lms_account_no_rule_can_link(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", email=f"rae.sun@{CORP}", hire=date(2020, 1, 6))
        lms_user(conn, "u-private", email="rae.sun@home.example", created=datetime(2020, 3, 2, tzinfo=UTC))
        activity(conn, "s1", account_learner("u-private"), "2021-04-01T09:00:00Z")
    resolve_identities(config, dsn=warehouse_dsn)
    assert matches(warehouse_dsn)["u-private"] == (None, None, "no_corporate_identifier")
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        steward_decision(conn, "lms_user_id", "u-private", "match", employee_keys(warehouse_dsn)["E1"])
    resolve_identities(config, dsn=warehouse_dsn)
    assert matches(warehouse_dsn)["u-private"] == ("E1", "steward_override", None)
    assert owner_at(warehouse_dsn, account_learner("u-private"), "2021-04-01") == "E1"
    assert_a_full_rebuild_changes_nothing(warehouse_dsn, config)


def test_an_account_created_within_the_grace_days_before_the_hire_matches_by_email(warehouse_dsn, config):
    assert config["identity"]["account_created_before_hire_grace_days"] == 30
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", email=f"ola.bay@{CORP}", hire=date(2022, 3, 1))
        employee(conn, "E2", email=f"uma.ek@{CORP}", hire=date(2022, 3, 1), first="Uma", last="Ek")
        lms_user(conn, "u-preboarding", email=f"ola.bay@{CORP}", created=datetime(2022, 2, 19, tzinfo=UTC))
        lms_user(conn, "u-too-early", email=f"uma.ek@{CORP}", created=datetime(2021, 12, 31, tzinfo=UTC))
    resolve_identities(config, dsn=warehouse_dsn)
    got = matches(warehouse_dsn)
    assert got["u-preboarding"] == ("E1", "work_email", None)  # 10 days before the hire date
    assert got["u-too-early"] == (None, None, "email_holder_not_employed_when_account_created")  # 60 days


def test_an_account_whose_identifiers_hr_does_not_know_is_unmatched_with_the_reason(warehouse_dsn, config):
    config["identity"]["min_active_lms_match_rate"] = 0
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", guid="ffff-6", email=f"ivy.lo@{CORP}", hire=date(2020, 1, 6))
        lms_user(
            conn,
            "u-guid-only",
            email="ivy@partner.example",
            external_id="zzzz-9",
            created=datetime(2021, 1, 4, tzinfo=UTC),
        )
        lms_user(
            conn,
            "u-both",
            email=f"gone.person@{CORP}",
            external_id="zzzz-8",
            created=datetime(2021, 1, 4, tzinfo=UTC),
        )
    resolve_identities(config, dsn=warehouse_dsn)
    got = matches(warehouse_dsn)
    assert got["u-guid-only"] == (None, None, "sso_guid_not_in_hris")
    assert got["u-both"] == (None, None, "identifiers_not_in_hris")


def test_an_exception_a_steward_resolved_by_hand_stays_resolved_on_later_runs(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", guid="aaaa-1", email=f"ann.lee@{CORP}", hire=date(2020, 1, 6))
        employee(conn, "E2", email=f"bo.ng@{CORP}", hire=date(2021, 3, 1), first="Bo", last="Ng")
        lms_user(
            conn,
            "u-sso",
            email=f"bo.ng@{CORP}",
            external_id="aaaa-1",
            created=datetime(2021, 4, 1, tzinfo=UTC),
        )
    resolve_identities(config, dsn=warehouse_dsn)
    assert query(warehouse_dsn, "select kind, status from audit.identity_exception") == [
        ("sso_guid_disagrees_with_email", "open")
    ]
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            "update audit.identity_exception set status = 'resolved', resolved_at = now(),"
            " resolution = 'steward: the GUID is right, HR fixes the address'"
        )
        # the account is extracted again: the same conflict is detected again on the next run
        conn.execute("update raw.lms_user set extracted_at = '2026-04-01'")
    for full in (False, True):
        resolve_identities(config, dsn=warehouse_dsn, full=full)
        assert query(warehouse_dsn, "select kind, status, resolution from audit.identity_exception") == [
            ("sso_guid_disagrees_with_email", "resolved", "steward: the GUID is right, HR fixes the address")
        ]


def test_the_work_email_keeps_its_raw_value_beside_the_normalized_one(warehouse_dsn, config):
    raw = "Ann.Lee+HR@NW-Corp.Example"
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", email=raw, hire=date(2020, 1, 6))
    resolve_identities(config, dsn=warehouse_dsn)
    assert query(warehouse_dsn, "select email_normalized, work_email_raw from core.identity_work_email") == [
        (f"ann.lee@{CORP}", raw)
    ]


def test_the_demo_prints_the_identity_reconciliation_summary_after_a_run(warehouse_dsn, config):
    from turnover_demo.demo import summarize_identity

    with psycopg.connect(warehouse_dsn) as conn:
        assert summarize_identity(conn) == [
            "Identity resolution (identity_resolution):",
            "  identity: no resolution run recorded yet",
        ]
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        populate_mixed_enterprise(conn)
    resolve_identities(config, dsn=warehouse_dsn)
    with psycopg.connect(warehouse_dsn) as conn:
        lines = summarize_identity(conn)
    assert lines[0] == "Identity resolution (identity_resolution):"
    assert lines[1].startswith("  identity run manual__") and lines[1].endswith(
        f"(full, rule v{config['identity']['rule_version']}): passed the gate"
    )
    assert lines[2].startswith("  HRIS headcount 30 vs canonical 30: reconciles (")
    assert any(line.startswith("  LMS users 31: matched 30 (") for line in lines)
    assert lines[-1].startswith("  suggestions for the steward: ")


def test_a_run_with_no_hr_history_or_nothing_changed_is_skipped_with_the_reason(warehouse_dsn, config):
    created = datetime(2022, 3, 2, tzinfo=UTC)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        # a first install: the LMS landed, the HRIS backlog is still loading
        lms_user(conn, "u-eva", email=f"eva.ma@{CORP}", external_id="hhhh-1", created=created)
        activity(conn, "s-eva", account_learner("u-eva"), "2026-05-10T08:00:00Z")
    assert reason_to_skip(config, warehouse_dsn).startswith(
        "no HR history yet (core.employee_history is empty)"
    )

    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        employee(conn, "E1", guid="hhhh-1", email=f"eva.ma@{CORP}", hire=date(2021, 3, 1))
    assert reason_to_skip(config, warehouse_dsn) is None
    resolve_identities(config, dsn=warehouse_dsn)
    assert "nothing identity reads changed since run" in reason_to_skip(config, warehouse_dsn)
    assert reason_to_skip(config, warehouse_dsn, full=True) is None

    # statements of a known learner change no link; each other input does
    later = datetime(2026, 2, 1, tzinfo=UTC)  # the loaders' times, after the helpers' default
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        activity(conn, "s-eva-2", account_learner("u-eva"), "2026-05-11T08:00:00Z")
    assert reason_to_skip(config, warehouse_dsn) is not None
    changes = [
        lambda conn: activity(conn, "s-new", account_learner("u-new"), "2026-05-11T09:00:00Z"),
        lambda conn: lms_user(conn, "u-ray", email=f"ray.oh@{CORP}", created=created, extracted_at=later),
        lambda conn: employee(
            conn, "E2", email=f"ray.oh@{CORP}", hire=date(2022, 3, 1), first="Ray", known_at=later
        ),
        lambda conn: steward_decision(conn, "lms_user_id", "u-ray", "not_a_match"),
        lambda conn: conn.execute("update audit.identity_override set is_active = false"),  # a withdrawal
    ]
    for change in changes:
        with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
            change(conn)
        assert reason_to_skip(config, warehouse_dsn) is None
        resolve_identities(config, dsn=warehouse_dsn)
        assert reason_to_skip(config, warehouse_dsn) is not None
