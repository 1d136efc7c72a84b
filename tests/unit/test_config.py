import json

import pytest

from turnover_signals.config import ConfigError, deep_merge, load_config, parse_override


def test_file_defaults_are_complete():
    config = load_config(use_variable=False)
    assert config["hris"]["remote_dir"] == "/outbound/hris"
    assert config["connections"]["warehouse"] == "warehouse_postgres"
    assert config["features"]["windows_days"] == [30, 90, 180]


def test_variable_json_is_deep_merged_over_the_file():
    override = json.dumps({"hris": {"remote_dir": "/exports/workday"}, "features": {"windows_days": [7]}})
    config = load_config(override, use_variable=False)
    assert config["hris"]["remote_dir"] == "/exports/workday"
    # a sibling key of the overridden one keeps its default
    assert config["hris"]["control_file_suffix"] == ".ctl"
    # lists replace rather than merge
    assert config["features"]["windows_days"] == [7]


def test_deep_merge_does_not_mutate_its_inputs():
    base = {"a": {"b": 1, "c": 2}}
    merged = deep_merge(base, {"a": {"b": 5}})
    assert merged == {"a": {"b": 5, "c": 2}}
    assert base == {"a": {"b": 1, "c": 2}}


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]"])
def test_bad_variable_names_itself_and_the_fix(raw):
    with pytest.raises(ConfigError, match="turnover_signals"):
        parse_override(raw)


def test_airflow_variable_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"lms": {"statements_page_limit": 50}}))
    assert load_config()["lms"]["statements_page_limit"] == 50
    monkeypatch.delenv("AIRFLOW_VAR_TURNOVER_SIGNALS")
    assert load_config()["lms"]["statements_page_limit"] == 500


def test_null_in_the_variable_removes_a_default_entry(monkeypatch):
    # the only way to drop the demo's domain alias from a real tenant's configuration
    alias = next(iter(load_config(use_variable=False)["identity"]["domain_aliases"]))
    monkeypatch.setenv(
        "AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"identity": {"domain_aliases": {alias: None}}})
    )
    assert alias not in load_config()["identity"]["domain_aliases"]


def test_the_migrate_task_uses_the_configured_owner_connection(monkeypatch):
    from turnover_signals import airflow_tasks, warehouse

    used = []

    class Migrated(Exception):
        pass

    def connection(conn_id="warehouse_postgres", dsn=None):
        used.append(conn_id)
        raise Migrated

    monkeypatch.delenv("TURNOVER_WAREHOUSE_URL", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"connections": {"warehouse": "dwh_owner"}})
    )
    monkeypatch.setattr(warehouse, "warehouse_connection", connection)
    with pytest.raises(Migrated):
        airflow_tasks.migrate_warehouse_task().function()
    assert used == ["dwh_owner"]


def test_the_gates_url_carries_the_connections_tls_settings(monkeypatch):
    from turnover_signals.warehouse import sqlalchemy_url

    monkeypatch.delenv("TURNOVER_WAREHOUSE_URL", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_DWH_TLS",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "db.internal",
                "port": 5432,
                "schema": "turnover",
                "login": "loader",
                "password": "pw",
                "extra": {"sslmode": "verify-full", "sslrootcert": "/etc/ssl/dwh-ca.pem"},
            }
        ),
    )
    url = sqlalchemy_url("dwh_tls")
    assert url.startswith("postgresql+psycopg://loader:pw@db.internal:5432/turnover?")
    assert "sslmode=verify-full" in url and "sslrootcert=%2Fetc%2Fssl%2Fdwh-ca.pem" in url


def test_a_relative_landing_dir_lives_under_the_data_directory(monkeypatch, tmp_path):
    from turnover_signals.hris.ingest import landing_path
    from turnover_signals.sources.sftp_hris import RemoteHrisFile

    monkeypatch.setenv("TURNOVER_DATA_DIR", str(tmp_path))
    remote = RemoteHrisFile(
        "employees_20260105.csv",
        "/outbound/hris/employees_20260105.csv",
        "employees",
        "2026-01-05",
        10,
        None,
        False,
        None,
    )
    path = landing_path({"hris": {"landing_dir": "landing"}}, remote, "ab" * 32)
    assert path == tmp_path / "landing" / "employees" / "2026-01-05" / f"{'ab' * 32}__employees_20260105.csv"
