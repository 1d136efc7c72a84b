"""SCIM users with history, and the course catalog gate: real sample server, PostgreSQL and GX."""

from __future__ import annotations

import psycopg
import pytest

from turnover_signals.config import load_config
from turnover_signals.errors import BadInputError
from turnover_signals.lms.catalog import load_course_catalog, report_unknown_courses
from turnover_signals.lms.users import extract_users
from turnover_signals.quality.gate import RunIdentity

pytestmark = pytest.mark.integration


def user(n: int, *, email=None, active=True, modified="2026-01-05T10:00:00Z", external_id=None):
    resource = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": f"u-{n:04d}",
        "userName": email or f"person{n}@northwind.example",
        "name": {"givenName": f"First{n}", "familyName": f"Last{n}"},
        "emails": [{"value": email or f"person{n}@northwind.example", "type": "work", "primary": True}],
        "active": active,
        "meta": {"resourceType": "User", "created": "2025-01-01T00:00:00Z", "lastModified": modified},
    }
    if external_id:
        resource["externalId"] = external_id
    return resource


def rows(dsn, query, params=None):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture
def config():
    return load_config(
        {"lms": {"initial_backoff_seconds": 0.01, "max_backoff_seconds": 0.05, "scim_page_size": 2}},
        use_variable=False,
    )


def test_users_keep_history_and_pulls_are_idempotent(lms_server_factory, monkeypatch, warehouse_dsn, config):
    server = lms_server_factory(users=[user(n, external_id=f"guid-{n}") for n in range(1, 6)])
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    first = extract_users(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (first["users_received"], first["versions_new"]) == (5, 5)
    # the leaver is deactivated and someone's email changes
    server.add_or_update_users([user(2, active=False), user(3, email="p3.new@northwind.example")])
    second = extract_users(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert second["mode"] == "incremental" and second["versions_new"] == 2
    history = rows(
        warehouse_dsn,
        """
        select lms_user_id, work_email, is_active, valid_to is null, external_id
        from raw.lms_user where lms_user_id = 'u-0003' order by last_modified_at""",
    )
    assert history == [
        ("u-0003", "person3@northwind.example", True, False, "guid-3"),
        ("u-0003", "p3.new@northwind.example", True, True, None),
    ]
    before = rows(
        warehouse_dsn,
        "select lms_user_id, last_modified_at, valid_to, resource from raw.lms_user order by 1, 2",
    )
    extract_users(config, RunIdentity("d", "r2", "t"), warehouse_dsn)  # cleared and rerun
    assert (
        rows(
            warehouse_dsn,
            "select lms_user_id, last_modified_at, valid_to, resource from raw.lms_user order by 1, 2",
        )
        == before
    )


def test_users_without_modification_times_are_versioned_by_content_and_leave_the_watermark(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    # a directory that serves neither meta.created nor meta.lastModified (its own times stay inside it)
    users = [{key: value for key, value in user(n).items() if key != "meta"} for n in range(1, 4)]
    server = lms_server_factory(users=users, deviations=["scim_no_meta_times"])
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    first = extract_users(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    second = extract_users(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert rows(warehouse_dsn, "select lms_user_id, count(*) from raw.lms_user group by 1 order by 1") == [
        ("u-0001", 1),
        ("u-0002", 1),
        ("u-0003", 1),
    ]
    assert (first["versions_new"], second["versions_new"]) == (3, 0)
    assert (second["mode"], second["users_without_last_modified"]) == ("full", 3)  # no watermark yet

    server.add_or_update_users([user(3, email="p3.new@northwind.example")])
    assert extract_users(config, RunIdentity("d", "r3", "t"), warehouse_dsn)["versions_new"] == 1
    # each version is timed when its content was first seen: the start of the pull that first saw it
    assert rows(
        warehouse_dsn,
        """
        select version.work_email, version.last_modified_at = batch.started_at, version.valid_to
        from raw.lms_user as version
        inner join audit.scim_extract_batch as batch on version.batch_id = batch.batch_id
        where version.lms_user_id = 'u-0003' order by version.last_modified_at""",
    ) == [
        (
            "person3@northwind.example",
            True,
            rows(warehouse_dsn, "select max(last_modified_at) from raw.lms_user")[0][0],
        ),
        ("p3.new@northwind.example", True, None),
    ]
    assert rows(warehouse_dsn, "select count(*) from raw.lms_user") == [(4,)]
    assert rows(
        warehouse_dsn, "select count(*) from audit.scim_extract_batch where watermark_after is not null"
    ) == [(0,)]


def test_the_catalog_loads_once_and_unknown_courses_are_reported(warehouse_dsn, config):
    first = load_course_catalog(config, dsn=warehouse_dsn)
    assert first["changed"] and first["courses"] >= 30
    assert load_course_catalog(config, dsn=warehouse_dsn)["changed"] is False
    mandatory = rows(
        warehouse_dsn, "select count(*) from core.course_catalog where is_mandatory and due_within_days > 0"
    )
    assert mandatory[0][0] > 0
    with psycopg.connect(warehouse_dsn) as conn:
        conn.execute(
            """insert into core.lms_activity (statement_id, learner_identifier, learner_identifier_type,
               event_type, verb_id, course_id, occurred_at, is_timestamp_assumed_utc, stored_at, is_voided)
               values ('s1', 'account:x|u', 'account', 'completed', 'v', 'NOT-IN-CATALOG', now(), false,
               now(), false)"""
        )
    assert report_unknown_courses(config, warehouse_dsn) == [{"course_id": "NOT-IN-CATALOG", "statements": 1}]


def test_a_broken_catalog_is_refused_and_the_previous_one_stays(warehouse_dsn, config, tmp_path):
    load_course_catalog(config, dsn=warehouse_dsn)
    before = rows(warehouse_dsn, "select * from core.course_catalog order by 1")
    broken = tmp_path / "catalog.csv"
    broken.write_text(
        "course_id,title,difficulty,is_mandatory,due_within_days,skill_tags\n"
        "C-1,Intro,9,maybe,,x\nC-1,Dup,2,false,,y\n"
    )
    config["lms"]["course_catalog_file"] = str(broken)
    with pytest.raises(BadInputError, match="course ids are unique.*Next step"):
        load_course_catalog(config, dsn=warehouse_dsn)
    assert rows(warehouse_dsn, "select * from core.course_catalog order by 1") == before


def test_each_catalog_version_is_kept_with_when_it_was_known(warehouse_dsn, config, tmp_path):
    load_course_catalog(config, dsn=warehouse_dsn)
    changed = tmp_path / "catalog.csv"
    changed.write_text(
        "course_id,title,difficulty,is_mandatory,due_within_days,skill_tags\nC-1,Intro,2,false,,basics;intro\n"
    )
    config["lms"]["course_catalog_file"] = str(changed)
    assert load_course_catalog(config, dsn=warehouse_dsn)["changed"] is True
    versions = rows(
        warehouse_dsn,
        "select catalog_sha256, count(*), bool_and(known_from is null), bool_and(known_until is null),"
        " min(known_from), max(known_until) from core.course_catalog_version group by 1 order by 3 desc",
    )
    first, second = versions
    # the first catalog counts for every earlier date, until the second became known
    assert (first[2], first[3], second[1]) == (True, False, 1)
    assert first[5] == second[4] and second[3] is True
    assert rows(warehouse_dsn, "select course_id, skill_tags from core.course_catalog") == [
        ("C-1", ["basics", "intro"])
    ]
    assert load_course_catalog(config, dsn=warehouse_dsn)["changed"] is False  # unchanged: no new version
    assert rows(warehouse_dsn, "select count(distinct catalog_sha256) from core.course_catalog_version") == [
        (2,)
    ]
