"""The steward's suggestion queue on the real PostgreSQL: scoring, ranking, decisions applied on the next run.

Hand-made HR histories and LMS directory rows (the tables the loaders publish), resolved by the rules, then
scored by `suggest_matches`. A few dozen filler employees with distinct names give the scoring a population
(the prior and the name frequencies) closer to a real one than three people would.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, date, datetime

import psycopg
import pytest

from tests.integration.hris_helpers import query
from turnover_signals.config import load_config
from turnover_signals.errors import BadInputError
from turnover_signals.identity.report import report_reconciliation
from turnover_signals.identity.resolve import resolve_identities
from turnover_signals.identity.stewardship import accept_suggestion, open_suggestions, reject_suggestion
from turnover_signals.identity.stewardship import main as stewardship_cli
from turnover_signals.identity.suggest import suggest_matches

pytestmark = pytest.mark.integration

CORP = "northwind.example"
FILE_SHA = "e" * 64
FILLER_NAMES = [
    ("Quinn", "Abara"),
    ("Rosa", "Bekele"),
    ("Sami", "Cortez"),
    ("Tariq", "Dunmore"),
    ("Uma", "Eklund"),
    ("Vera", "Falk"),
    ("Wes", "Gallo"),
    ("Xena", "Horvat"),
    ("Yuri", "Ibsen"),
    ("Zoe", "Jovic"),
    ("Aldo", "Kaur"),
    ("Bea", "Lindqvist"),
    ("Cato", "Mbeki"),
    ("Dina", "Novak"),
    ("Eli", "Okafor"),
    ("Fay", "Pereira"),
    ("Gus", "Quist"),
    ("Hana", "Rossi"),
    ("Ivo", "Sato"),
    ("Jade", "Toivonen"),
]


@pytest.fixture
def config():
    config = copy.deepcopy(load_config(use_variable=False))
    config["identity"]["min_active_lms_match_rate"] = 0  # the hand-made accounts are mostly unmatched
    config["identity"]["contractor_domains"] = ["contractor.example"]
    return config


def employee(conn, employee_id, *, first, last, email, hire, term=None):
    conn.execute(
        """
        insert into core.employee_history (
            employee_id, valid_from, valid_to, is_current, closed_by, known_at, source_sha256, sso_guid,
            work_email, first_name, last_name, hire_date, termination_date, termination_category,
            employment_status)
        values (%s, %s, null, true, null, %s, %s, null, %s, %s, %s, %s, %s, %s, 'active')
        """,
        (
            employee_id,
            hire,
            datetime(2026, 1, 1, tzinfo=UTC),
            FILE_SHA,
            email,
            first,
            last,
            hire,
            term,
            "voluntary" if term else None,
        ),
    )


def lms_user(conn, user_id, *, email, created, first, last):
    resource = {
        "id": user_id,
        "userName": email,
        "name": {"givenName": first, "familyName": last},
        "emails": [{"value": email, "type": "work", "primary": True}],
    }
    conn.execute(
        """
        insert into raw.lms_user (lms_user_id, last_modified_at, user_name, external_id, work_email,
            primary_email, emails, is_active, created_at, valid_to, resource, batch_id, extracted_at)
        values (%s, %s, %s, null, %s, %s, %s, true, %s, null, %s, 'test', %s)
        """,
        (
            user_id,
            created,
            email,
            email,
            email,
            json.dumps(resource["emails"]),
            created,
            json.dumps(resource),
            datetime(2026, 1, 1, tzinfo=UTC),
        ),
    )


def populate(conn):
    """Ann Lee and her namesake, Bob Stone, Cyd Moss, fillers; accounts the rules cannot match."""
    for number, (first, last) in enumerate(FILLER_NAMES):
        address = f"{first}.{last}@{CORP}".lower()
        employee(conn, f"F{number:03d}", first=first, last=last, email=address, hire=date(2024, 6, 1))
        lms_user(
            conn,
            f"u-f{number:03d}",
            email=address,
            created=datetime(2024, 7, 1, tzinfo=UTC),
            first=first,
            last=last,
        )
    employee(conn, "E001", first="Ann", last="Lee", email=f"ann.lee@{CORP}", hire=date(2025, 1, 1))
    employee(conn, "E002", first="Ann", last="Lee", email=f"ann.lee2@{CORP}", hire=date(2025, 2, 1))
    employee(conn, "E003", first="Bob", last="Stone", email=f"bob.stone@{CORP}", hire=date(2025, 1, 1))
    employee(
        conn,
        "E004",
        first="Cyd",
        last="Moss",
        email=f"cyd.moss@{CORP}",
        hire=date(2025, 1, 1),
        term=date(2025, 9, 30),
    )
    created = datetime(2025, 3, 1, tzinfo=UTC)
    # a typo (one edit) in Ann Lee's address: the rules find nobody
    lms_user(conn, "u-typo", email=f"ann.lea@{CORP}", created=created, first="Ann", last="Lee")
    # a contractor whose address shares Bob Stone's local part
    lms_user(
        conn, "u-contractor", email="bob.stone@contractor.example", created=created, first="Bob", last="Stone"
    )
    # the same person on a personal domain: suggested (the control for the contractor)
    lms_user(conn, "u-personal", email="bob.stone@mail.example", created=created, first="Bob", last="Stone")
    # Cyd Moss's address with a typo, once while employed and once a year after leaving
    lms_user(conn, "u-cyd-during", email=f"cyd.mos@{CORP}", created=created, first="Cyd", last="Moss")
    lms_user(
        conn,
        "u-cyd-after",
        email=f"cyd.mos@{CORP}",
        created=datetime(2026, 10, 1, tzinfo=UTC),
        first="Cyd",
        last="Moss",
    )


@pytest.fixture
def resolved(warehouse_dsn, config):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        populate(conn)
    resolve_identities(config, dsn=warehouse_dsn)
    return warehouse_dsn


def key_of(dsn, employee_id):
    return query(
        dsn, "select employee_key from core.hris_employee_key where hris_employee_id = %s", (employee_id,)
    )[0][0]


def suggestions(dsn, lms_user_id, status="open"):
    """(employee_key, rank, score) of an account's suggestions, best first."""
    return query(
        dsn,
        "select employee_key, rank, score, suggestion_id from audit.identity_suggestion "
        "where lms_user_id = %s and status = %s order by rank",
        (lms_user_id, status),
    )


def table_contents(dsn):
    return query(dsn, "select * from audit.identity_suggestion order by suggestion_id")


def test_accounts_on_a_contractor_domain_are_never_suggested(resolved, config):
    suggest_matches(config, dsn=resolved)
    assert suggestions(resolved, "u-contractor") == []
    # the same name and local part on a domain that is not a contractor's is suggested
    assert [row[0] for row in suggestions(resolved, "u-personal")] == [key_of(resolved, "E003")]


def test_without_the_contrib_extensions_the_stage_says_what_is_missing_and_scores_nothing(
    resolved, config, caplog
):
    with psycopg.connect(resolved, autocommit=True) as conn:
        conn.execute("drop extension fuzzystrmatch cascade")
    with caplog.at_level("WARNING", logger="turnover_signals.identity.suggest"):
        summary = suggest_matches(config, dsn=resolved)
    assert "fuzzystrmatch" in summary["skipped"] and "install PostgreSQL contrib" in summary["skipped"]
    assert summary["suggestions_open"] == 0
    assert table_contents(resolved) == []
    assert any("identity suggestions skipped" in record.getMessage() for record in caplog.records)


def test_a_typo_in_the_email_is_suggested_for_the_right_employee_and_not_for_the_namesake(resolved, config):
    summary = suggest_matches(config, dsn=resolved)
    rows = suggestions(resolved, "u-typo")
    assert [(row[0], row[1]) for row in rows] == [(key_of(resolved, "E001"), 1)]
    assert rows[0][2] > 0.9
    evidence = query(
        resolved, "select evidence from audit.identity_suggestion where suggestion_id = %s", (rows[0][3],)
    )[0][0]
    assert evidence["email_local_part"]["level"] == "one_edit"
    assert evidence["name"]["level"] == "exact" and evidence["name"]["name_holders"] == 2
    assert summary["accounts_in_queue"] >= 3 and set(summary["seconds"]) >= {"score", "queue", "total"}


def test_an_account_created_outside_the_candidates_employment_scores_lower(resolved, config):
    suggest_matches(config, dsn=resolved)
    weights = dict(
        query(
            resolved,
            "select lms_user_id, match_weight from audit.identity_suggestion "
            "where lms_user_id like 'u-cyd-%%' and employee_key = %s",
            (key_of(resolved, "E004"),),
        )
    )
    assert set(weights) == {"u-cyd-during", "u-cyd-after"}  # both suggested, the later one weaker
    assert weights["u-cyd-during"] > weights["u-cyd-after"] + 3


def add_account_and_resolve(dsn, config, user_id, *, email, created, first, last):
    with psycopg.connect(dsn, autocommit=True) as conn:
        lms_user(conn, user_id, email=email, created=created, first=first, last=last)
    resolve_identities(config, dsn=dsn, full=True)


def test_a_personal_address_goes_to_the_namesake_hired_when_the_account_was_opened(resolved, config):
    # `ann.lee` is E001's corporate local part, but on a personal domain it only repeats the name: the
    # account opened two days after E002's hire is hers
    add_account_and_resolve(
        resolved,
        config,
        "u-ann-personal",
        email="ann.lee@mail.example",
        created=datetime(2025, 2, 3, tzinfo=UTC),
        first="Ann",
        last="Lee",
    )
    suggest_matches(config, dsn=resolved)
    rows = suggestions(resolved, "u-ann-personal")
    assert [(row[0], row[1]) for row in rows] == [(key_of(resolved, "E002"), 1)]
    evidence = query(
        resolved, "select evidence from audit.identity_suggestion where suggestion_id = %s", (rows[0][3],)
    )[0][0]
    assert evidence["employment"]["level"] == "created_at_hire"
    assert evidence["email_local_part"]["weight"] < 3


def test_a_typo_in_the_family_name_is_reached_through_the_email(resolved, config):
    # neither the family name nor its sound meets Stone's; the address is one edit from his
    add_account_and_resolve(
        resolved,
        config,
        "u-stome",
        email=f"bob.stome@{CORP}",
        created=datetime(2025, 3, 1, tzinfo=UTC),
        first="Bob",
        last="Stome",
    )
    summary = suggest_matches(config, dsn=resolved)
    rows = suggestions(resolved, "u-stome")
    assert [(row[0], row[1]) for row in rows] == [(key_of(resolved, "E003"), 1)]
    # blocking compares each account with a few employees, not with everyone
    assert summary["pairs_scored"] < 3 * summary["accounts_scored"]


def test_an_accepted_suggestion_is_applied_by_the_next_run_and_audited(resolved, config):
    suggest_matches(config, dsn=resolved)
    suggestion_id = suggestions(resolved, "u-typo")[0][3]
    with psycopg.connect(resolved, autocommit=True) as conn:
        accepted = accept_suggestion(conn, suggestion_id, decided_by="jane@hr", reason="ticket HR-7")
        with pytest.raises(BadInputError, match="already accepted"):
            reject_suggestion(conn, suggestion_id, decided_by="jane@hr", reason="changed my mind")
    resolve_identities(config, dsn=resolved)
    assert query(
        resolved,
        "select hris_employee_id, match_method from core.lms_account_match where lms_user_id = 'u-typo'",
    ) == [("E001", "steward_override")]
    override = query(
        resolved,
        "select identifier_value, decision, employee_key, decided_by, reason from audit.identity_override "
        "where override_id = %s",
        (accepted["override_id"],),
    )
    assert override == [
        (
            "u-typo",
            "match",
            key_of(resolved, "E001"),
            "jane@hr",
            f"accepted identity suggestion {suggestion_id}: ticket HR-7",
        )
    ]
    decided = query(
        resolved,
        "select status, decided_by, decided_at is not null, override_id from audit.identity_suggestion "
        "where suggestion_id = %s",
        (suggestion_id,),
    )
    assert decided == [("accepted", "jane@hr", True, accepted["override_id"])]
    suggest_matches(config, dsn=resolved)  # the account is matched now: no open suggestion is left for it
    assert suggestions(resolved, "u-typo") == []
    assert len(suggestions(resolved, "u-typo", status="accepted")) == 1


def test_a_rejected_pair_is_not_suggested_again(resolved, config):
    suggest_matches(config, dsn=resolved)
    bob = key_of(resolved, "E003")
    suggestion_id = suggestions(resolved, "u-personal")[0][3]
    with psycopg.connect(resolved, autocommit=True) as conn:
        rejected = reject_suggestion(conn, suggestion_id, decided_by="jane@hr", reason="his brother")
    assert rejected["status"] == "rejected"
    resolve_identities(config, dsn=resolved, full=True)
    suggest_matches(config, dsn=resolved)
    assert bob not in [row[0] for row in suggestions(resolved, "u-personal")]
    assert query(
        resolved,
        "select status, decided_by, decision_reason from audit.identity_suggestion where suggestion_id = %s",
        (suggestion_id,),
    ) == [("rejected", "jane@hr", "his brother")]
    assert query(
        resolved,
        "select count(*) from core.lms_account_match where employee_key is not null "
        "and lms_user_id = 'u-personal'",
    ) == [(0,)]


def test_rerunning_the_stage_changes_nothing(resolved, config):
    first = suggest_matches(config, dsn=resolved)
    before = table_contents(resolved)
    second = suggest_matches(config, dsn=resolved)
    assert table_contents(resolved) == before
    assert second["suggestions_written"] == 0 and second["suggestions_removed"] == 0
    assert first["suggestions_open"] == second["suggestions_open"] > 0


def test_the_open_queue_lists_accounts_best_first(resolved, config):
    suggest_matches(config, dsn=resolved)
    with psycopg.connect(resolved) as conn:
        queue = open_suggestions(conn)
    best = {}
    for row in queue:
        best.setdefault(row["lms_user_id"], row["score"])
    assert list(best.values()) == sorted(best.values(), reverse=True)
    assert "u-contractor" not in best
    summary = report_reconciliation(config, dsn=resolved)[-1]
    assert (
        summary
        == f"  suggestions for the steward: {len(queue)} open for {len(best)} unmatched LMS account(s)"
    )


@pytest.fixture
def airflow_api(airflow_metadata_db, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "steward:viewer,visitor:none")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from fastapi.testclient import TestClient

    return TestClient(create_app()), get_auth_manager()


def bearer(manager, role):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    token = manager.generate_jwt(SimpleAuthManagerUser(username=f"u-{role}", role=role))
    return {"Authorization": f"Bearer {token}"}


def test_the_steward_page_shows_the_queue_best_first_to_readers_of_the_identity_dag_only(
    resolved, config, airflow_api
):
    suggest_matches(config, dsn=resolved)
    client, manager = airflow_api
    assert client.get("/data-quality/identity-suggestions").status_code == 401
    assert client.get("/data-quality/identity-suggestions", headers=bearer(manager, None)).status_code == 404
    page = client.get("/data-quality/identity-suggestions", headers=bearer(manager, "viewer"))
    assert page.status_code == 200 and "u-typo" in page.text and "u-contractor" not in page.text
    queue = client.get("/data-quality/api/identity-suggestions", headers=bearer(manager, "viewer")).json()
    scores = [row["score"] for row in queue if row["rank"] == 1]
    assert scores == sorted(scores, key=float, reverse=True) and len(scores) >= 3


@pytest.fixture
def steward_dsn(resolved):
    """A login in the turnover_steward role (the roles are cluster-wide; the login is dropped after)."""
    from tests.databases import admin_execute

    login = f"ts_steward_{uuid.uuid4().hex[:8]}"
    admin_execute(f'create role "{login}" login in role turnover_steward')
    scheme, rest = resolved.split("://", 1)
    yield f"{scheme}://{login}@{rest.rpartition('@')[2]}"
    with psycopg.connect(resolved, autocommit=True) as admin:
        admin.execute(f'drop owned by "{login}"')
    admin_execute(f'drop role "{login}"')


def test_a_steward_login_lists_accepts_and_rejects_with_the_cli(resolved, config, steward_dsn, capsys):
    suggest_matches(config, dsn=resolved)
    assert stewardship_cli(["list", "--dsn", steward_dsn]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    typo = next(row for row in listed if row["lms_user_id"] == "u-typo")
    personal = next(row for row in listed if row["lms_user_id"] == "u-personal")
    args = ["--by", "jane@hr", "--reason", "ticket HR-9", "--dsn", steward_dsn]
    assert stewardship_cli(["accept", str(typo["suggestion_id"]), *args]) == 0
    assert stewardship_cli(["reject", str(personal["suggestion_id"]), *args]) == 0
    statuses = query(
        resolved,
        "select lms_user_id, status, decided_by from audit.identity_suggestion where status <> 'open' "
        "order by lms_user_id",
    )
    assert statuses == [("u-personal", "rejected", "jane@hr"), ("u-typo", "accepted", "jane@hr")]
