"""Least privilege through the pipeline: every stage runs as a login only in its own group role.

Stage logins are made as the README says (`create_stage_login`: a LOGIN in the group role, which it
takes for its sessions). The real stage functions run as them against a real sshd and the sample
LMS: HRIS and LMS ingest as a loader login; HR history, the course catalog, identity and features
as a transformer login. Then: what each login may not do; the DAGs picking each task's stage
connection (a trigger records which login wrote what) and falling back to the owner's with a
WARNING when a stage connection is not defined; a non-superuser owner migrating and dropping a
partition a loader published (retention); the owner's functions a stage login needs
(`core.analyze_relation`, `raw.attach_hris_partition`, migration 0018) and what they refuse; the
loader owning nothing in raw at any migration; the demo's logins.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.databases import admin_execute, dsn_for
from tests.integration.hris_helpers import compensation_bytes, csv_bytes, employee_row, query
from tests.integration.test_governance import allowed
from tests.integration.test_lms_statements import statement
from tests.integration.test_lms_users_and_catalog import user
from turnover_signals.airflow_tasks import config_for_stage
from turnover_signals.config import load_config
from turnover_signals.deploy.warehouse_logins import create_stage_login
from turnover_signals.features.build import build_features, training_set_summary
from turnover_signals.hris.history import build_employee_history
from turnover_signals.hris.ingest import ingest_file, list_pending_files
from turnover_signals.identity.report import report_reconciliation
from turnover_signals.identity.resolve import resolve_identities
from turnover_signals.identity.review_sample import export_review_sample
from turnover_signals.lms.catalog import load_course_catalog, report_unknown_courses
from turnover_signals.lms.statements import extract_statements
from turnover_signals.lms.users import extract_users
from turnover_signals.quality.freshness import check_hris_freshness, check_lms_freshness
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.retention.purge import apply_retention
from turnover_signals.warehouse import MIGRATIONS_DIR, migrate

pytestmark = pytest.mark.integration
DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
SNAPSHOT = date(2026, 1, 5)
HRIS_PARTITIONS = """
select pg_get_userbyid(partition.relowner) from pg_inherits as inherits
inner join pg_class as partition on inherits.inhrelid = partition.oid
where inherits.inhparent in ('raw.hris_employee_snapshot'::regclass, 'raw.hris_compensation_change'::regclass)
"""
HRIS_RAW_OWNERS = """
select pg_get_userbyid(relowner) from pg_class
where oid in ('raw.hris_employee_snapshot'::regclass, 'raw.hris_compensation_change'::regclass)
"""
# The tables a full identity run empties and refills, then analyzes (identity/resolve.py).
IDENTITY_TABLES = (
    "lms_account_match",
    "identity_employment",
    "identity_work_email",
    "identity_lms_account",
    "identity_learner",
    "hris_employee_key",
    "employee_key_registry",
    "employee_identity",
)
ANALYZED = "select relname from pg_stat_user_tables where schemaname = %s and last_analyze is not null"


def run(dag_id: str, task_id: str) -> RunIdentity:
    return RunIdentity(dag_id=dag_id, run_id="least-privilege", task_id=task_id, try_number=1)


def settings(tmp_path: Path) -> dict:
    """What differs from the defaults here: local directories and gates sized for five employees."""
    null_fractions = load_config(use_variable=False)["features"]["max_null_fraction"]
    return {
        "hris": {"landing_dir": str(tmp_path / "landing"), "wait_for_files_minutes": 0},
        "quality": {"data_docs_dir": str(tmp_path / "docs")},
        "identity": {"min_active_lms_match_rate": 0, "review_sample_dir": str(tmp_path / "review")},
        "features": {
            "initial_backfill_month_ends": 0,
            "max_null_fraction": dict.fromkeys(null_fractions, 1.0),
        },
    }


@pytest.fixture
def config(tmp_path):
    return load_config(settings(tmp_path), use_variable=False)


def login_url(dsn: str, login: str) -> str:
    """`dsn` (a URL) for another login; no password: the test server trusts local connections."""
    scheme, rest = dsn.split("://", 1)
    return f"{scheme}://{login}@{rest.rpartition('@')[2]}"


def drop_logins(dsn: str, logins: list[str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        for login in logins:
            admin.execute(sql.SQL("drop owned by {}").format(sql.Identifier(login)))
            admin.execute(sql.SQL("drop role {}").format(sql.Identifier(login)))


@pytest.fixture
def stage_logins(warehouse_dsn):
    """stage -> URL of a fresh login made by `create_stage_login` (roles are cluster-wide: unique names)."""
    suffix = uuid.uuid4().hex[:8]
    logins = {name: f"ts_{name}_{suffix}" for name in ("loader", "transformer", "quality_reader")}
    with psycopg.connect(warehouse_dsn, autocommit=True) as admin:
        for stage_name, login in logins.items():
            create_stage_login(admin, login, stage_name)
    yield {stage_name: login_url(warehouse_dsn, login) for stage_name, login in logins.items()}
    drop_logins(warehouse_dsn, list(logins.values()))


def hris_files() -> dict[str, bytes]:
    """An employees and a compensation file dated SNAPSHOT, each with its control file."""
    data = {
        f"employees_{SNAPSHOT:%Y%m%d}.csv": csv_bytes([employee_row(n) for n in range(1, 6)]),
        f"compensation_{SNAPSHOT:%Y%m%d}.csv": compensation_bytes(
            [
                {
                    "employee_id": "E000002",
                    "effective_date": "2025-12-01",
                    "change_type": "merit_increase",
                    "previous_base_salary": "50002.00",
                    "new_base_salary": "52000.00",
                    "currency": "GBP",
                }
            ]
        ),
    }
    files: dict[str, bytes] = {}
    for name, content in data.items():
        control = {"rows": content.count(b"\r\n") - 1, "sha256": hashlib.sha256(content).hexdigest()}
        files[f"/outbound/hris/{name}"] = content
        files[f"/outbound/hris/{name}.ctl"] = json.dumps(control).encode()
    return files


@pytest.fixture
def sources(sftp_server_factory, lms_server_factory, monkeypatch):
    """A private sshd with `hris_files()` and an LMS whose users and statements match its employees."""
    sftp = sftp_server_factory(files=hris_files())
    before_snapshot = -int(timedelta(days=72).total_seconds() // 60)  # statements' T0 is 2026-03-02
    lms = lms_server_factory(
        users=[user(n) for n in range(1, 6)],
        statements=[
            statement(n, learner=f"u-{n % 5 + 1:04d}", minutes=before_snapshot + n) for n in range(1, 13)
        ],
    )
    for name, value in {**sftp.airflow_connection_env(), **lms.airflow_connections_env()}.items():
        monkeypatch.setenv(name, value)
    return sftp, lms


def test_each_stage_runs_as_a_login_in_its_group_role_only(stage_logins, sources, config, warehouse_dsn):
    loader, transformer = stage_logins["loader"], stage_logins["transformer"]
    # hris_sftp_ingest: files as the loader, HR history as the transformer
    pending = list_pending_files(config, loader)
    ingested = [
        ingest_file(remote, config, run("hris_sftp_ingest", "ingest_hris_files"), loader)
        for remote in pending
    ]
    assert sorted(result["status"] for result in ingested) == ["loaded", "loaded"]
    assert build_employee_history(config, transformer)["current_employees"] == 5
    assert check_hris_freshness(config, datetime(2026, 1, 6, 6, tzinfo=UTC), loader)
    # lms_api_ingest: the catalog (core) as the transformer, users and statements as the loader
    assert load_course_catalog(config, run("lms_api_ingest", "load_course_catalog"), transformer)
    assert extract_users(config, run("lms_api_ingest", "extract_lms_users"), loader)["status"] == "published"
    statements = extract_statements(config, run("lms_api_ingest", "extract_lms_statements"), loader)
    assert (statements["status"], statements["new"]) == ("published", 12)
    assert report_unknown_courses(config, transformer)
    assert check_lms_freshness(config, loader)
    # identity_resolution and turnover_features as the transformer
    resolve_identities(config, run("identity_resolution", "resolve_identities"), transformer, full=True)
    # The full rebuild's ANALYZE ran as the owner (a transformer's own only warns and skips the table)
    assert set(IDENTITY_TABLES) <= {name for (name,) in query(warehouse_dsn, ANALYZED, ("core",))}
    export_review_sample(config, run("identity_resolution", "export_identity_review_sample"), transformer)
    assert report_reconciliation(config, transformer)
    build_features(
        config, run("turnover_features", "build_features"), dsn=transformer, reference_dates=[SNAPSHOT]
    )
    assert training_set_summary(config, transformer)

    assert query(warehouse_dsn, "select count(*) from mart.employee_features") == [(5,)]
    assert query(warehouse_dsn, "select count(distinct lms_user_id) from core.employee_identity") == [(5,)]
    # Each file's partition belongs to the owner, like its raw table: the loader can drop or alter neither
    assert query(warehouse_dsn, HRIS_PARTITIONS) == [("postgres",), ("postgres",)]
    assert query(warehouse_dsn, HRIS_RAW_OWNERS) == [("postgres",), ("postgres",)]
    assert query(warehouse_dsn, "select count(*) from pg_tables where schemaname = 'staging'") == [(0,)]


def test_the_loader_writes_no_core_or_mart_and_updates_no_audit_trail(stage_logins):
    with psycopg.connect(stage_logins["loader"], autocommit=True) as conn:
        assert allowed(conn, "update audit.file_manifest set reason = 'x'")
        assert allowed(conn, "update audit.extract_watermark set updated_at = now()")
        # core.lms_activity: appended and voids marked with its raw batch, atomically; nothing else
        assert allowed(conn, "update core.lms_activity set is_voided = true where statement_id = 'x'")
        assert allowed(conn, "insert into core.lms_activity (statement_id) select 'x' where false")
        assert not allowed(conn, "update core.lms_activity set course_id = 'x'")
        assert not allowed(conn, "select learner_identifier from core.lms_activity")
        assert not allowed(conn, "delete from core.lms_activity")
        for table in (
            "audit.validation_result",
            "audit.identity_exception",
            "audit.model_registry",
            "audit.file_release",
            "audit.feature_build",
            "audit.retention_purge",
        ):
            column = conn.execute(
                "select attname from pg_attribute where attrelid = %s::regclass and attnum = 1", (table,)
            ).fetchone()[0]
            assert not allowed(conn, f"update {table} set {column} = default where false"), table  # noqa: S608
        assert not allowed(conn, "delete from audit.file_manifest")
        assert not allowed(conn, "insert into core.employee_history select * from core.employee_history")
        assert not allowed(conn, "delete from core.course_catalog")
        assert not allowed(conn, "insert into core.employee_identity select * from core.employee_identity")
        assert not allowed(conn, "insert into mart.employee_features select * from mart.employee_features")
        assert not allowed(conn, "select * from core.employee_history")
        assert not allowed(conn, "create table core.loader_table (n integer)")
        assert allowed(conn, "create table staging.loader_table (n integer)")
        for statement_text in (
            "drop table raw.hris_employee_snapshot",
            "drop table raw.hris_compensation_change",
            "alter table raw.hris_employee_snapshot add column loader_column text",
            "alter table raw.hris_compensation_change rename to loader_table",
            "create table raw.loader_table (n integer)",
        ):
            assert not allowed(conn, statement_text), statement_text
        assert not allowed(conn, "select * from governance.pseudonym_key")


def test_the_transformer_writes_no_raw_and_deletes_no_audit_trail(stage_logins):
    with psycopg.connect(stage_logins["transformer"], autocommit=True) as conn:
        assert allowed(conn, "select * from raw.hris_employee_snapshot")
        assert allowed(conn, "update audit.identity_exception set status = status")
        assert allowed(conn, "update audit.model_registry set status = status")
        assert allowed(conn, "delete from audit.unknown_course")  # a to-do list: catalogued courses leave it
        for statement_text in (
            "insert into raw.lms_statement select * from raw.lms_statement",
            "update raw.lms_user set is_active = false",
            "delete from raw.lms_statement_rejected",
            "insert into raw.hris_employee_snapshot select * from raw.hris_employee_snapshot",
            "update audit.file_manifest set reason = 'x'",
            "delete from audit.validation_result",
            "delete from audit.identity_exception",
            "alter table raw.hris_employee_snapshot attach partition staging.x for values in ('x')",
        ):
            assert not allowed(conn, statement_text), statement_text
        assert not allowed(conn, "select * from governance.pseudonym_key")


def test_the_quality_reader_reads_validation_runs_and_models_only(stage_logins):
    with psycopg.connect(stage_logins["quality_reader"], autocommit=True) as conn:
        assert allowed(conn, "select * from audit.validation_result")
        assert allowed(conn, "select * from audit.model_registry")
        # the LMS extractions and LRS profiles of the page (migration 0027, through governance.role_privilege)
        assert allowed(conn, "select * from audit.lms_extract_batch")
        assert allowed(conn, "select * from audit.lrs_conformance")
        for table in (
            "audit.file_manifest",
            "raw.lms_statement",
            "core.employee_history",
            "mart.employee_features",
            "analytics.employee_features",
            "governance.pseudonym_key",
        ):
            assert not allowed(conn, f"select * from {table}"), table  # noqa: S608 - fixed names
        assert not allowed(conn, "update audit.validation_result set success = true")
        assert not allowed(conn, "create table staging.reader_table (n integer)")


def test_the_data_quality_page_reads_as_the_quality_reader(stage_logins, warehouse_dsn, config, monkeypatch):
    from turnover_signals.quality.report_app import (
        fetch_lms_extractions,
        fetch_model_reports,
        fetch_validations,
    )

    load_course_catalog(config, run("lms_api_ingest", "load_course_catalog"), warehouse_dsn)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_QUALITY_READER", stage_logins["quality_reader"])
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE_POSTGRES", "postgres://nobody@127.0.0.1:1/unused"
    )  # never reached
    assert [row["suite_name"] for row in fetch_validations({})] == ["course_catalog"]
    assert fetch_model_reports() == []
    with psycopg.connect(stage_logins["quality_reader"]) as conn:
        assert fetch_lms_extractions(conn) == ([], [])


def test_a_stage_uses_its_own_connection_and_falls_back_to_the_owners_with_a_warning(caplog):
    config = load_config(use_variable=False)
    defined = {"warehouse_loader", "warehouse_transformer", "warehouse_quality_reader"}
    chosen = {
        name: config_for_stage(config, name, defined.__contains__)["connections"]["warehouse"]
        for name in ("owner", "loader", "transformer", "quality_reader")
    }
    assert chosen == {
        "owner": "warehouse_postgres",
        "loader": "warehouse_loader",
        "transformer": "warehouse_transformer",
        "quality_reader": "warehouse_quality_reader",
    }
    assert config["connections"]["warehouse"] == "warehouse_postgres"  # the caller's config is not changed
    single_login = {**config, "security": {"allow_owner_fallback": True}}  # else it fails closed
    with caplog.at_level(logging.WARNING):
        fallback = config_for_stage(single_login, "loader", lambda _conn_id: False)
    assert fallback["connections"]["warehouse"] == "warehouse_postgres"
    assert "warehouse connection warehouse_loader (stage loader) is not defined" in caplog.text
    renamed = copy.deepcopy(config)
    renamed["connections"]["warehouse_transformer"] = "dwh_transform"  # the Variable may rename it
    assert (
        config_for_stage(renamed, "transformer", {"dwh_transform"}.__contains__)["connections"]["warehouse"]
        == "dwh_transform"
    )
    with pytest.raises(ValueError, match="unknown warehouse stage"):
        config_for_stage(config, "analyst", defined.__contains__)


WRITER_LOG = """
create table public.writer_log (relation text, login text);
grant insert on public.writer_log to public;
create function public.log_writer() returns trigger language plpgsql as $$
begin
    insert into public.writer_log values (tg_table_schema || '.' || tg_table_name, session_user);
    return null;
end
$$;
"""
LOGGED_TABLES = (
    "audit.file_manifest",
    "core.employee_history",
    "core.course_catalog",
    "raw.lms_user",
    "raw.lms_statement",
    "core.lms_activity",
    "audit.unknown_course",
    "core.employee_identity",
    "audit.identity_reconciliation",
    "mart.employee_features",
    "audit.feature_build",
)


def run_dag(dag_id: str, logical_date: datetime):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS_DIR / f"{dag_id}.py")).get_dag(dag_id)
    dag_run = dag.test(logical_date=logical_date)
    assert dag_run.state == "success", {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


@pytest.mark.slow
def test_the_dags_run_each_task_as_its_stage_login(
    airflow_metadata_db, warehouse_dsn, stage_logins, sources, monkeypatch, tmp_path
):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(WRITER_LOG)
        for table in LOGGED_TABLES:
            conn.execute(
                sql.SQL(
                    "create trigger log_writer after insert or update or delete on {}"
                    " for each statement execute function public.log_writer()"
                ).format(sql.Identifier(*table.split(".")))
            )
    for stage_name, url in stage_logins.items():
        monkeypatch.setenv(
            f"AIRFLOW_CONN_WAREHOUSE_{stage_name.upper()}", url.replace("postgresql://", "postgres://", 1)
        )
    monkeypatch.setenv("AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps(settings(tmp_path)))

    run_dag("hris_sftp_ingest", datetime(2026, 1, 6, 6, tzinfo=UTC))
    run_dag("lms_api_ingest", datetime(2026, 1, 6, 6, 10, tzinfo=UTC))
    run_dag("identity_resolution", datetime(2026, 1, 6, 7, tzinfo=UTC))
    run_dag("turnover_features", datetime(2026, 1, 6, 7, 30, tzinfo=UTC))  # builds 2026-01-05

    logins = {
        stage_name: url.rpartition("://")[2].partition("@")[0] for stage_name, url in stage_logins.items()
    }
    writers = {
        relation: {
            login
            for (login,) in query(
                warehouse_dsn, "select distinct login from public.writer_log where relation = %s", (relation,)
            )
        }
        for relation in LOGGED_TABLES
    }
    loader, transformer = {logins["loader"]}, {logins["transformer"]}
    assert writers == {
        "audit.file_manifest": loader,
        "raw.lms_user": loader,
        "raw.lms_statement": loader,
        "core.lms_activity": loader,
        "core.employee_history": transformer,
        "core.course_catalog": transformer,
        "audit.unknown_course": transformer,
        "core.employee_identity": transformer,
        "audit.identity_reconciliation": transformer,
        "mart.employee_features": transformer,
        "audit.feature_build": transformer,
    }
    assert query(warehouse_dsn, "select count(*) from mart.employee_features") == [(5,)]


@pytest.mark.slow
def test_without_stage_connections_the_dags_use_the_owners_and_warn(
    airflow_metadata_db, warehouse_dsn, sources, monkeypatch, tmp_path, caplog
):
    for stage_name in ("loader", "transformer", "quality_reader"):
        monkeypatch.delenv(f"AIRFLOW_CONN_WAREHOUSE_{stage_name.upper()}")
    # a single-login install says so: without the setting the tasks fail closed
    single_login = {**settings(tmp_path), "security": {"allow_owner_fallback": True}}
    monkeypatch.setenv("AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps(single_login))
    with caplog.at_level(logging.WARNING):
        run_dag("hris_sftp_ingest", datetime(2026, 1, 6, 6, tzinfo=UTC))
    assert query(warehouse_dsn, "select count(*) from audit.file_manifest where status = 'loaded'") == [(2,)]
    assert query(warehouse_dsn, HRIS_PARTITIONS) == [("postgres",), ("postgres",)]
    assert "warehouse connection warehouse_loader (stage loader) is not defined" in caplog.text


@pytest.fixture
def owner_warehouse():
    """A database owned and migrated by a non-superuser owner login in the loader and transformer roles (the
    compose stack's `turnover_pipeline`); yields (owner URL, loader login URL)."""
    suffix = uuid.uuid4().hex[:8]
    owner, loader, name = f"ts_owner_{suffix}", f"ts_loader_{suffix}", f"ts_owned_{suffix}"
    admin_execute(f'create role "{owner}" login in role turnover_loader, turnover_transformer')
    admin_execute(f'create database "{name}" owner "{owner}"')
    owner_url = login_url(dsn_for(name), owner)
    with psycopg.connect(dsn_for(name), autocommit=True) as admin:
        admin.execute(sql.SQL("alter schema public owner to {}").format(sql.Identifier(owner)))
        create_stage_login(admin, loader, "loader")
    try:
        yield owner_url, login_url(dsn_for(name), loader)
    finally:
        admin_execute(f'drop database if exists "{name}" with (force)')
        admin_execute(f'drop role if exists "{loader}"')
        admin_execute(f'drop role if exists "{owner}"')


def test_a_non_superuser_owner_migrates_and_drops_a_loaders_partition(owner_warehouse, sources, config):
    owner_url, loader_url = owner_warehouse
    owner = owner_url.rpartition("://")[2].partition("@")[0]
    with psycopg.connect(owner_url, autocommit=True) as conn:
        assert len(migrate(conn)) > 15
        assert conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone() == (
            False,
        )
    for remote in list_pending_files(config, loader_url):
        assert (
            ingest_file(remote, config, run("hris_sftp_ingest", "ingest_hris_files"), loader_url)["status"]
            == "loaded"
        )
    assert query(owner_url, HRIS_PARTITIONS) == [(owner,), (owner,)]
    # Retention, as the owner, seals both loaded files and drops their partitions
    received = query(owner_url, "select max(received_at) from audit.file_manifest")[0][0]
    config["retention"]["raw_days"] = 30
    summary = apply_retention(
        config, run("warehouse_retention", "apply_retention"), owner_url, now=received + timedelta(days=45)
    )
    assert summary["purges"]["raw.hris_loaded_partitions"] == {"rows": 6, "files": 0}
    assert query(owner_url, HRIS_PARTITIONS) == []
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(
            "alter table raw.hris_employee_snapshot add column later_column text"
        )  # a later migration
        assert migrate(conn) == []


def stage_hris_table(
    conn: psycopg.Connection, raw_table: str, sha256: str, check_sha256: str | None = None
) -> str:
    """A staging table as `load/csv_stage.py` makes one for the file `sha256` (with the CHECK of
    `check_sha256`, by default the same); returns its name."""
    name = f"staging.{raw_table}_{sha256[:16]}"
    conn.execute(f"create table {name} (like raw.{raw_table})")
    conn.execute(f"alter table {name} add check (source_sha256 = '{check_sha256 or sha256}')")
    return name


def test_the_loader_publishes_an_hris_file_only_through_the_owners_function(stage_logins, warehouse_dsn):
    sha, other_sha = (hashlib.sha256(text).hexdigest() for text in (b"a compensation file", b"another file"))
    name = f"staging.hris_compensation_change_{sha[:16]}"
    with psycopg.connect(stage_logins["transformer"], autocommit=True) as conn:
        transformers = stage_hris_table(conn, "hris_employee_snapshot", sha)
    with psycopg.connect(stage_logins["loader"], autocommit=True) as conn:

        def attach(raw_table: str, relation: str, sha256: str) -> str:
            return conn.execute(
                "select raw.attach_hris_partition(%s, %s::regclass, %s)::text", (raw_table, relation, sha256)
            ).fetchone()[0]

        stage_hris_table(conn, "hris_compensation_change", sha, check_sha256=other_sha)
        refused = {
            (
                "hris_compensation_change",
                "raw.hris_employee_snapshot",
                sha,
            ): "must be staging.hris_compensation",
            ("hris_compensation_change", "audit.file_manifest", sha): "must be staging.hris_compensation",
            (
                "hris_compensation_change",
                name,
                other_sha,
            ): f"must be staging.hris_compensation_change_{other_sha[:16]}",
            ("lms_statement", name, sha): "is not an HRIS raw table",
            ("hris_compensation_change", name, sha.upper()): "is not a sha256",
            ("hris_employee_snapshot", transformers, sha): "belongs to turnover_transformer, not to",
            (
                "hris_compensation_change",
                name,
                sha,
            ): "not a plain staged file",  # its CHECK names another file
        }
        for (raw_table, relation, sha256), message in refused.items():
            with pytest.raises(psycopg.Error, match=message):
                attach(raw_table, relation, sha256)
        conn.execute(f"alter table {name} drop constraint {name.split('.')[1]}_source_sha256_check")
        conn.execute(f"alter table {name} add check (source_sha256 = '{sha}')")
        conn.execute(
            "create function staging.loader_code() returns trigger language plpgsql"
            " as $$ begin return null; end $$"
        )
        conn.execute(
            f"create trigger run_as_the_owner after delete on {name} execute function staging.loader_code()"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not a plain staged file"):
            attach("hris_compensation_change", name, sha)
        conn.execute(f"drop trigger run_as_the_owner on {name}")

        partition = attach("hris_compensation_change", name, sha)
        assert partition == f"raw.hris_compensation_change_{sha[:16]}"
        assert allowed(conn, f"select * from {partition}")  # noqa: S608 - the raw table's grants
        assert not allowed(conn, f"drop table {partition}")
        assert not allowed(
            conn, f"alter table {partition} add constraint loader_check check (false) not valid"
        )
    assert query(warehouse_dsn, HRIS_PARTITIONS) == [("postgres",)]
    assert query(
        warehouse_dsn, "select count(*) from pg_tables where schemaname = 'raw' and tableowner <> 'postgres'"
    ) == [(0,)]


def test_the_loader_cannot_pin_a_staged_file_against_retention(stage_logins, warehouse_dsn):
    """A view, a table of its row type or a sequence owned by its column would survive the attach and make
    retention's `drop table` of the partition fail ("other objects depend on it"): the attach refuses."""
    sha = hashlib.sha256(b"an employees file").hexdigest()
    with psycopg.connect(stage_logins["loader"], autocommit=True) as conn:
        name = stage_hris_table(conn, "hris_employee_snapshot", sha)
        pins = {
            f"create view staging.pin as select * from {name}": "drop view staging.pin",  # noqa: S608
            f"create table staging.pinned_row (file_row {name})": "drop table staging.pinned_row",
            f"create table staging.pinned_rows (file_rows {name}[])": "drop table staging.pinned_rows",
            f"create sequence staging.pin owned by {name}.employee_id": "drop sequence staging.pin",
            f"create function staging.pin(file_row {name}) returns text language sql"
            " as $$ select file_row.employee_id $$": f"drop function staging.pin({name})",
        }
        for pin, unpin in pins.items():
            conn.execute(pin)
            with pytest.raises(psycopg.errors.DependentObjectsStillExist, match="other objects depend on it"):
                conn.execute(
                    "select raw.attach_hris_partition(%s, %s::regclass, %s)",
                    ("hris_employee_snapshot", name, sha),
                )
            conn.execute(unpin)
        partition = conn.execute(
            "select raw.attach_hris_partition(%s, %s::regclass, %s)::text",
            ("hris_employee_snapshot", name, sha),
        ).fetchone()[0]
    with psycopg.connect(warehouse_dsn, autocommit=True) as owner:
        owner.execute(f"drop table {partition}")  # retention
    assert query(warehouse_dsn, HRIS_PARTITIONS) == []


def last_analyze(dsn: str, table: str) -> datetime | None:
    return query(dsn, "select last_analyze from pg_stat_user_tables where relid = %s::regclass", (table,))[0][
        0
    ]


def test_stage_logins_analyze_bundle_tables_through_the_owners_function(stage_logins, warehouse_dsn):
    with psycopg.connect(stage_logins["transformer"], autocommit=True) as conn:
        conn.execute("analyze core.employee_identity")  # not the owner: PostgreSQL warns and skips it
        assert last_analyze(warehouse_dsn, "core.employee_identity") is None
        conn.execute("select core.analyze_relation('core.employee_identity')")
        assert last_analyze(warehouse_dsn, "core.employee_identity") is not None
        for relation in ("audit.file_manifest", "pg_catalog.pg_authid", "audit.identity_override_current"):
            with pytest.raises(
                psycopg.errors.InsufficientPrivilege, match="only tables in the schemas core, mart"
            ):
                conn.execute("select core.analyze_relation(%s::regclass)", (relation,))
        conn.execute("select core.analyze_relation('mart.employee_features')")
        assert last_analyze(warehouse_dsn, "mart.employee_features") is not None
    mart_table = query(warehouse_dsn, "select 'mart.turnover_label'::regclass::oid")[0][0]
    with psycopg.connect(stage_logins["loader"], autocommit=True) as conn:
        conn.execute("select core.analyze_relation('raw.lms_statement')")
        assert last_analyze(warehouse_dsn, "raw.lms_statement") is not None
        # Only what the caller may read itself: the loader reaches no mart (not even by oid) and no HR history
        for relation in (mart_table, "core.employee_history"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not read it"):
                conn.execute("select core.analyze_relation(%s::regclass)", (relation,))
    assert last_analyze(warehouse_dsn, "mart.turnover_label") is None
    assert last_analyze(warehouse_dsn, "core.employee_history") is None
    executors = """
        select distinct pg_get_userbyid(acl.grantee) from pg_proc, aclexplode(proacl) as acl
        where pg_proc.oid = %s::regprocedure
    """
    assert {name for (name,) in query(warehouse_dsn, executors, ("core.analyze_relation(regclass)",))} == {
        "postgres",
        "turnover_loader",
        "turnover_transformer",
    }
    assert {
        name
        for (name,) in query(warehouse_dsn, executors, ("raw.attach_hris_partition(text, regclass, text)",))
    } == {"postgres", "turnover_loader"}


def test_the_loader_owns_nothing_in_raw_and_may_create_nothing_there(owner_warehouse, tmp_path):
    """Neither 0018 nor 0019 gives the loader a raw table or CREATE on raw: the owner keeps the HRIS raw
    parents (a file is published through `raw.attach_hris_partition`), so there is nothing to take back."""
    owner_url, loader_url = owner_warehouse
    owner = owner_url.rpartition("://")[2].partition("@")[0]
    loader = loader_url.rpartition("://")[2].partition("@")[0]
    loaders_raw = """
        select
            (select count(*) from pg_class
             where relnamespace = 'raw'::regnamespace and pg_has_role(%(login)s, relowner, 'USAGE')),
            has_schema_privilege(%(login)s, 'raw', 'CREATE'),
            has_schema_privilege('turnover_loader', 'raw', 'CREATE')
    """
    until_0018 = tmp_path / "ddl"
    until_0018.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql"))[:18]:
        (until_0018 / path.name).write_bytes(path.read_bytes())
    with psycopg.connect(owner_url, autocommit=True) as conn:
        assert migrate(conn, until_0018)[-1].version == 18
        assert query(owner_url, loaders_raw, {"login": loader}) == [(0, False, False)]
        assert [migration.version for migration in migrate(conn)][:1] == [19]  # then any later ones
        assert query(owner_url, loaders_raw, {"login": loader}) == [(0, False, False)]
        conn.execute("select governance.apply_role_privileges()")  # idempotent: still nothing for the loader
    assert query(owner_url, loaders_raw, {"login": loader}) == [(0, False, False)]
    assert query(owner_url, HRIS_RAW_OWNERS) == [(owner,), (owner,)]
    with psycopg.connect(loader_url, autocommit=True) as conn:
        assert allowed(conn, "select * from raw.hris_compensation_change")
        for statement_text in (
            "drop table raw.hris_compensation_change",
            "create table raw.loader_table (n integer)",
            "alter table raw.hris_employee_snapshot add column loader_column text",
            "alter table raw.hris_compensation_change attach partition staging.x for values in ('x')",
        ):
            assert not allowed(conn, statement_text), statement_text


def test_the_demo_makes_a_login_per_stage_and_their_connections(warehouse_dsn):
    from turnover_demo.demo import DEMO_STAGE_LOGINS, stage_connections

    try:
        env = stage_connections(warehouse_dsn)
        assert set(env) == {
            "AIRFLOW_CONN_WAREHOUSE_LOADER",
            "AIRFLOW_CONN_WAREHOUSE_TRANSFORMER",
            "AIRFLOW_CONN_WAREHOUSE_QUALITY_READER",
        }
        for stage_name, login in DEMO_STAGE_LOGINS.items():
            connection = json.loads(env[f"AIRFLOW_CONN_WAREHOUSE_{stage_name.upper()}"])
            assert connection["login"] == login and len(connection["password"]) > 16
            with psycopg.connect(login_url(warehouse_dsn, login)) as conn:
                group = conn.execute("select current_user").fetchone()[0]
            assert group == f"turnover_{stage_name}"
    finally:
        drop_logins(warehouse_dsn, list(DEMO_STAGE_LOGINS.values()))
