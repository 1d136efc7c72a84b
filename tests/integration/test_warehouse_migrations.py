import shutil

import psycopg
import pytest

from turnover_signals.warehouse import (
    MIGRATIONS_DIR,
    MigrationError,
    discover_migrations,
    migrate,
    warehouse_connection,
)

pytestmark = pytest.mark.integration


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
    return schemas, rows, migrations


def test_migrate_twice_changes_nothing(empty_database_dsn):
    with warehouse_connection(dsn=empty_database_dsn) as conn:
        first = migrate(conn)
    assert [m.version for m in first] == [m.version for m in discover_migrations()]
    before = _catalog(empty_database_dsn)
    assert [s for (s,) in before[0]] == ["audit", "core", "mart", "raw"]

    with warehouse_connection(dsn=empty_database_dsn) as conn:
        second = migrate(conn)
    assert second == []
    assert _catalog(empty_database_dsn) == before


def test_a_new_version_applies_only_what_is_new(empty_database_dsn, tmp_path):
    migrations_dir = tmp_path / "ddl"
    shutil.copytree(MIGRATIONS_DIR, migrations_dir)
    with warehouse_connection(dsn=empty_database_dsn) as conn:
        migrate(conn, migrations_dir)
    (migrations_dir / "9001_create_probe_table.sql").write_text("create table raw.probe (id int);\n")
    with warehouse_connection(dsn=empty_database_dsn) as conn:
        applied = migrate(conn, migrations_dir)
    assert [m.name for m in applied] == ["create_probe_table"]


def test_an_edited_applied_migration_is_refused(empty_database_dsn, tmp_path):
    migrations_dir = tmp_path / "ddl"
    shutil.copytree(MIGRATIONS_DIR, migrations_dir)
    with warehouse_connection(dsn=empty_database_dsn) as conn:
        migrate(conn, migrations_dir)
    first = sorted(migrations_dir.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with (
        warehouse_connection(dsn=empty_database_dsn) as conn,
        pytest.raises(MigrationError, match="new migration"),
    ):
        migrate(conn, migrations_dir)


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
    with (
        caplog.at_level("INFO", logger="turnover_signals.warehouse"),
        warehouse_connection(dsn=empty_database_dsn) as conn,
    ):
        migrate(conn, migrations_dir)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("ask a DBA to create role turnover_probe" in message for message in warnings)
