"""Throwaway databases on the test server that tests/postgres_service.py picked: create, copy, drop; and
the nodes of a statement's plan.

Every test that needs a warehouse of its own takes a copy of a template (`create database … template`),
which costs a fraction of migrating or loading one: the session's migrated template
(`migrated_template_db`), or a loaded one a module builds once. `DatabaseCopies` works at any fixture
scope; the `database_copy` fixture is its per-test form.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from psycopg import sql

from tests import postgres_service


def admin_execute(statement: str | sql.Composable, params: Any = None) -> None:
    """One statement as the test server's administrator (autocommit: `create database` needs it)."""
    import psycopg

    with psycopg.connect(postgres_service.admin_dsn(), autocommit=True) as conn:
        conn.execute(statement, params)


def dsn_for(database: str) -> str:
    return postgres_service.dsn_for(database)


def database_name(dsn: str) -> str:
    return dsn.rsplit("/", 1)[1].split("?", 1)[0]


# The stage connections of the default configuration (docs/security.md#least-privilege).
STAGE_CONNECTION_IDS = ("warehouse_loader", "warehouse_transformer", "warehouse_quality_reader")


def as_airflow_warehouse(dsn: str, monkeypatch: Any) -> str:
    """Point the Airflow connection `warehouse_postgres`, and every stage's, at `dsn` for this test (a pytest
    monkeypatch); returns `dsn`.

    Least privilege fails closed (a task whose stage connection is not defined fails), so a test that runs
    tasks as one login defines every stage's connection with it; tests of the stage logins override them.
    """
    url = dsn.replace("postgresql://", "postgres://", 1)
    for conn_id in ("warehouse_postgres", *STAGE_CONNECTION_IDS):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", url)
    return dsn


def drop_database(name: str) -> None:
    admin_execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


class DatabaseCopies:
    """Databases made for one fixture or test, each new or a copy of a template, all dropped at the end."""

    def __init__(self, prefix: str = "ts_test"):
        self.prefix = prefix
        self.names: list[str] = []

    def _new_name(self) -> str:
        self.names.append(f"{self.prefix}_{uuid.uuid4().hex[:10]}")
        return self.names[-1]

    def copy(self, template: str) -> str:
        """A new database holding what `template` (a database name) holds; its DSN."""
        name = self._new_name()
        admin_execute(
            sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(template))
        )
        return dsn_for(name)

    def empty(self) -> str:
        """A new, empty database; its DSN."""
        name = self._new_name()
        admin_execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return dsn_for(name)

    def drop_all(self) -> None:
        while self.names:
            drop_database(self.names.pop())

    def __enter__(self) -> DatabaseCopies:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.drop_all()


def plan_nodes(
    conn: Any, statement: sql.Composable, params: Any = None, analyze: bool = False
) -> Iterator[dict]:
    """Every node of `statement`'s plan (EXPLAIN ... FORMAT JSON; executed when `analyze`), depth first."""
    explain = sql.SQL("explain (analyze, format json) {}" if analyze else "explain (format json) {}")
    [(plan,)] = conn.execute(explain.format(statement), params).fetchall()
    pending = [plan[0]["Plan"]]
    while pending:
        node = pending.pop()
        yield node
        pending.extend(node.get("Plans", []))
