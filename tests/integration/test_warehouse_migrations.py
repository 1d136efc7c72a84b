import re
import shutil

import psycopg
import pytest

from turnover_signals.warehouse import (
    MIGRATIONS_DIR,
    REPEATABLE_DIR,
    Migration,
    MigrationError,
    RepeatableDefinition,
    discover_migrations,
    discover_repeatables,
    migrate,
    warehouse_connection,
)

pytestmark = pytest.mark.integration

GRANTS = "governance.apply_role_privileges"


def _catalog(dsn):
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """
            select table_schema, table_name, column_name, data_type
            from information_schema.columns
            where table_schema in ('raw', 'core', 'mart', 'audit')
            order by 1, 2, 3
            """
        ).fetchall()
        schemas = conn.execute(
            "select nspname from pg_namespace where nspname in ('raw','core','mart','audit') order by 1"
        ).fetchall()
        migrations = conn.execute(
            "select version, name, sha256 from audit.schema_migration order by 1"
        ).fetchall()
        repeatables = conn.execute(
            "select name, kind, sha256, applied_at from audit.schema_repeatable order by 1"
        ).fetchall()
    return schemas, rows, migrations, repeatables


@pytest.fixture
def sql_dir(tmp_path):
    """A copy of include/sql/ddl and include/sql/repeatable that a test may edit: its ddl folder."""
    shutil.copytree(MIGRATIONS_DIR, tmp_path / "ddl")
    shutil.copytree(REPEATABLE_DIR, tmp_path / "repeatable")
    return tmp_path / "ddl"


def _migrate(dsn, directory=MIGRATIONS_DIR):
    with warehouse_connection(dsn=dsn) as conn:
        return migrate(conn, directory)


def _names(applied):
    return [item.name for item in applied]


def test_migrate_twice_changes_nothing(empty_database_dsn):
    first = _migrate(empty_database_dsn)
    assert [m.version for m in first if isinstance(m, Migration)] == [
        m.version for m in discover_migrations()
    ]
    # each once; a view that reads one sorting after it (a dependency) waits for the next pass
    applied = [d.name for d in first if isinstance(d, RepeatableDefinition)]
    assert sorted(applied) == sorted(d.name for d in discover_repeatables()) and len(set(applied)) == len(
        applied
    )
    before = _catalog(empty_database_dsn)
    assert [s for (s,) in before[0]] == ["audit", "core", "mart", "raw"]

    assert _migrate(empty_database_dsn) == []
    assert _catalog(empty_database_dsn) == before


def test_a_new_version_applies_only_what_is_new_and_then_the_grants(empty_database_dsn, sql_dir):
    _migrate(empty_database_dsn, sql_dir)
    (sql_dir / "9001_create_probe_table.sql").write_text("create table raw.probe (id int);\n")
    # a new table may need an explicit grant: the grants are applied again after anything else
    assert _names(_migrate(empty_database_dsn, sql_dir)) == ["create_probe_table", GRANTS]


def test_an_edited_applied_migration_is_refused(empty_database_dsn, sql_dir):
    _migrate(empty_database_dsn, sql_dir)
    first = sorted(sql_dir.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="new migration"):
        _migrate(empty_database_dsn, sql_dir)


def test_an_edited_revision_is_refused_before_anything_runs(sql_dir):
    revised = next(m for m in discover_migrations(sql_dir) if m.original_sha256)
    revised.path.write_text(revised.path.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was revised"):
        discover_migrations(sql_dir)


def test_a_revision_is_accepted_where_its_original_was_applied(empty_database_dsn, sql_dir):
    _migrate(empty_database_dsn, sql_dir)
    revised = next(m for m in discover_migrations(sql_dir) if m.original_sha256)
    with psycopg.connect(empty_database_dsn, autocommit=True) as conn:
        conn.execute(
            "update audit.schema_migration set sha256 = %s where version = %s",
            (revised.original_sha256, revised.version),
        )
    assert _migrate(empty_database_dsn, sql_dir) == []


def test_an_edited_repeatable_definition_is_applied_again_with_the_grants(empty_database_dsn, sql_dir):
    _migrate(empty_database_dsn, sql_dir)
    view = sql_dir.parent / "repeatable" / "views" / "core.hris_sealed_through.sql"
    view.write_text(view.read_text().replace("select * from final;", "select * from final where true;"))

    assert _names(_migrate(empty_database_dsn, sql_dir)) == ["core.hris_sealed_through", GRANTS]
    with psycopg.connect(empty_database_dsn) as conn:
        definition = conn.execute("select pg_get_viewdef('core.hris_sealed_through'::regclass)").fetchone()[0]
        recorded = conn.execute(
            "select sha256 from audit.schema_repeatable where name = 'core.hris_sealed_through'"
        ).fetchone()[0]
    assert "WHERE true" in definition
    assert recorded == RepeatableDefinition("views", "core.hris_sealed_through", view).sha256
    assert _migrate(empty_database_dsn, sql_dir) == []


def test_a_view_a_migration_dropped_is_created_again(empty_database_dsn, sql_dir):
    _migrate(empty_database_dsn, sql_dir)
    # how a numbered migration changes a table under a view: drop the view, change the table
    (sql_dir / "9001_drop_training_set.sql").write_text("drop view mart.training_set;\n")
    applied = _migrate(empty_database_dsn, sql_dir)
    assert _names(applied) == ["drop_training_set", "mart.training_set", GRANTS]
    with psycopg.connect(empty_database_dsn) as conn:
        assert conn.execute("select to_regclass('mart.training_set') is not null").fetchone() == (True,)


def test_a_definition_waits_for_the_one_it_refers_to(empty_database_dsn, sql_dir):
    views = sql_dir.parent / "repeatable" / "views"
    # by name, core.a_probe comes before core.z_probe, which it reads
    (views / "core.a_probe.sql").write_text(
        "create or replace view core.a_probe as select * from core.z_probe;\n"
    )
    (views / "core.z_probe.sql").write_text("create or replace view core.z_probe as select 1 as probe;\n")
    applied = _names(_migrate(empty_database_dsn, sql_dir))
    assert applied.index("core.z_probe") < applied.index("core.a_probe")
    assert applied[-1] == GRANTS


def test_a_definition_that_cannot_be_applied_says_which(empty_database_dsn, sql_dir):
    views = sql_dir.parent / "repeatable" / "views"
    (views / "core.broken_probe.sql").write_text(
        "create or replace view core.broken_probe as select * from x.y;\n"
    )
    with pytest.raises(MigrationError, match=r"views/core\.broken_probe\.sql: cannot be applied"):
        _migrate(empty_database_dsn, sql_dir)


def test_no_numbered_migration_copies_a_repeatable_definition():
    # 0013 creates a placeholder that grants nothing, so that 0025 and 0029 may call it on a new warehouse
    placeholder = ("0013_create_governance_roles.sql", GRANTS)
    copies = [
        (migration.path.name, definition.name)
        for migration in discover_migrations()
        for definition in discover_repeatables()
        if re.search(
            rf"create\s+(or\s+replace\s+)?(view|function)\s+{re.escape(definition.name)}\b",
            migration.sql,
            re.I,
        )
    ]
    assert copies == [placeholder]


def test_repeatables_apply_functions_then_views_then_grants():
    kinds = [definition.kind for definition in discover_repeatables()]
    assert kinds == sorted(kinds, key=("functions", "views", "grants").index)
    assert kinds[-1] == "grants"


def test_a_stray_repeatable_file_is_refused(tmp_path):
    (tmp_path / "views").mkdir()
    (tmp_path / "views" / "training_set.sql").write_text("select 1;")
    with pytest.raises(MigrationError, match=r"<kind>/<schema>\.<object>\.sql"):
        discover_repeatables(tmp_path)


def test_badly_named_migration_is_refused(tmp_path):
    (tmp_path / "create_things.sql").write_text("select 1;")
    with pytest.raises(MigrationError, match="NNNN_verb_object"):
        discover_migrations(tmp_path)


def test_cli_migrates_from_dsn(empty_database_dsn, capsys):
    from turnover_signals.warehouse import main

    assert main(["migrate", "--dsn", empty_database_dsn]) == 0
    assert "migration(s) applied" in capsys.readouterr().out


def test_a_migrations_warning_reaches_the_operators_log(empty_database_dsn, tmp_path, caplog):
    # e.g. 0013's "role ... does not exist and ... may not create roles: ask a DBA ..."
    migrations_dir = tmp_path / "ddl"
    migrations_dir.mkdir()
    (migrations_dir / "0001_warn_operator.sql").write_text(
        "do $$ begin raise warning 'ask a DBA to create role turnover_probe'; end $$;\n"
    )
    with caplog.at_level("INFO", logger="turnover_signals.warehouse"):
        _migrate(empty_database_dsn, migrations_dir)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("ask a DBA to create role turnover_probe" in message for message in warnings)


# Statement ids and learner identifiers, wherever a table or view holds them (migration 0047)
IDENTIFIER_COLUMNS_SQL = """
    select table_schema || '.' || table_name || '.' || column_name, collation_name
    from information_schema.columns
    where table_schema in ('raw', 'core', 'mart', 'audit', 'analytics')
        and (column_name ~ '(^|_)statement_id$' or column_name = 'learner_identifier')
    order by 1
"""


def test_statement_ids_and_learner_identifiers_compare_bytewise_everywhere(empty_database_dsn):
    """Byte order (collation "C") in every column holding one: the publisher's b-tree descents compare bytes,
    not the locale's rules, and a join between two such columns keeps one collation, so either side's index
    serves it. A new table holding either must declare `collate "C"`."""
    _migrate(empty_database_dsn)
    with psycopg.connect(empty_database_dsn) as conn:
        columns = dict(conn.execute(IDENTIFIER_COLUMNS_SQL).fetchall())
    assert {"raw.lms_statement.statement_id", "core.lms_activity.learner_identifier"} <= set(columns)
    assert {column: collation for column, collation in columns.items() if collation != "C"} == {}


def test_a_warehouse_holding_statements_keeps_them_when_its_identifiers_become_bytewise(
    empty_database_dsn, sql_dir
):
    for later in sorted(sql_dir.glob("*.sql")):
        if int(later.name[:4]) >= 47:
            later.unlink()
    _migrate(empty_database_dsn, sql_dir)
    statement_ids = ["b-1", "B-1", "a-2", "é-3"]  # ids differing only in case stay two statements
    with psycopg.connect(empty_database_dsn) as conn:
        for statement_id in statement_ids:
            conn.execute(
                "insert into raw.lms_statement (statement_id, stored_at, occurred_at, statement, source,"
                " batch_id, loaded_at) values (%s, now(), now(), %s, 'xapi:test', 'batch-1', now())",
                (statement_id, psycopg.types.json.Jsonb({"id": statement_id})),
            )
            conn.execute(
                "insert into core.lms_activity (statement_id, learner_identifier, learner_identifier_type,"
                " event_type, verb_id, occurred_at, is_timestamp_assumed_utc, stored_at, is_voided)"
                " values (%s, 'account:https://lms.example.com|Learner', 'account', 'completion', 'v', now(),"
                " false, now(), false)",
                (statement_id,),
            )
        before = conn.execute("select statement_id from core.lms_activity order by statement_id").fetchall()
        assert conn.execute("select to_regclass('mart.lms_activity_today_provisional')").fetchone() != (None,)

    applied = _migrate(empty_database_dsn)

    assert "compare_lms_identifiers_bytewise" in _names(applied)
    with psycopg.connect(empty_database_dsn) as conn:
        assert conn.execute("select count(*) from raw.lms_statement").fetchone() == (4,)
        assert sorted(conn.execute("select statement_id from core.lms_activity").fetchall()) == sorted(before)
        # byte order: upper case before lower case, and 'é' (0xc3 0xa9) after both
        assert conn.execute(
            "select statement_id from core.lms_activity order by statement_id"
        ).fetchall() == [
            ("B-1",),
            ("a-2",),
            ("b-1",),
            ("é-3",),
        ]
        # the view the migration dropped to change its table is back, with today's rows
        assert conn.execute("select count(*) from mart.lms_activity_today_provisional").fetchone() == (4,)
