"""Where the tests' DSNs come from (tests/postgres_service.py): one admin DSN, everything derived from it."""

from __future__ import annotations

import pytest

from tests import postgres_service


@pytest.fixture
def admin_dsn_env(monkeypatch: pytest.MonkeyPatch):
    """Sets `TURNOVER_TEST_ADMIN_DSN` for one test."""

    def set_admin_dsn(dsn: str) -> None:
        monkeypatch.setenv(postgres_service.ADMIN_DSN_ENV, dsn)

    return set_admin_dsn


def test_derived_dsns_keep_the_admin_dsns_server_and_login(admin_dsn_env) -> None:
    admin_dsn_env("postgresql://admin:s3cret@db.test:6543/maintenance")

    assert postgres_service.dsn_for("ts_test_1") == "postgresql://admin:s3cret@db.test:6543/ts_test_1"
    assert postgres_service.server_address() == ("db.test", 6543)


def test_derived_dsns_for_another_login_carry_only_its_password(admin_dsn_env) -> None:
    admin_dsn_env("postgresql://admin:s3cret@db.test:6543/maintenance")

    assert postgres_service.dsn_for("w", user="loader") == "postgresql://loader@db.test:6543/w"
    assert (
        postgres_service.dsn_for("w", user="loader", password="p@/")
        == "postgresql://loader:p%40%2F@db.test:6543/w"
    )


def test_a_key_value_admin_dsn_is_honoured_as_a_url(admin_dsn_env) -> None:
    admin_dsn_env("host=/run/postgresql port=5433 user=ci dbname=postgres")

    derived = postgres_service.dsn_for("ts_test_2")

    # the Unix-socket directory is percent-encoded; the database stays what follows the last "/"
    assert derived == "postgresql://ci@%2Frun%2Fpostgresql:5433/ts_test_2"
    assert derived.rsplit("/", 1)[1] == "ts_test_2"


def test_an_admin_dsn_with_settings_a_url_cannot_carry_is_refused(admin_dsn_env) -> None:
    admin_dsn_env("postgresql://postgres@127.0.0.1:5432/postgres?sslmode=require")

    with pytest.raises(ValueError, match="sslmode"):
        postgres_service.admin_dsn()


def test_a_set_admin_dsn_is_used_as_given_without_probing(
    admin_dsn_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin_dsn_env("postgresql://ci:pw@db.test:6543/postgres")
    monkeypatch.setattr(postgres_service, "admin_connection_problem", pytest.fail)

    line, embedded = postgres_service.use_available_server()

    assert embedded is None
    assert line == f"PostgreSQL: {postgres_service.ADMIN_DSN_ENV} (postgresql://ci@db.test:6543/postgres)"
