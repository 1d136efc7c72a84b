"""Reading the SQL files of `include/sql` and rebuilding a relation from one of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from turnover_signals.paths import SQL_DIR


def read_sql(layer: str, relation: str) -> str:
    """The statement in `include/sql/<layer>/<relation>.sql`: the SELECT that builds `<layer>.<relation>`, or
    the INSERT that writes its rows; under `queries/`, a report that builds nothing."""
    return (SQL_DIR / layer / f"{relation}.sql").read_text(encoding="utf-8").rstrip().rstrip(";")


def rebuild_relation(
    conn: psycopg.Connection, schema: str, table: str, params: Mapping[str, Any] | None = None
) -> int:
    """Replace every row of `schema.table` with the result of its SQL file, in one transaction.

    Readers see either the old rows or the new ones, never a half-built table.
    """
    select = read_sql(schema, table)
    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    with conn.transaction():
        conn.execute(sql.SQL("delete from {}").format(target))
        return insert_from_select(conn, target, select, params)


def insert_from_select(
    conn: psycopg.Connection, target: sql.Composable, select: str, params: Mapping[str, Any] | None = None
) -> int:
    """Insert the rows of `select` into `target`, matching columns by the names the query gives them."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("select * from ({}) as built limit 0").format(sql.SQL(select)), params)
        columns = sql.SQL(", ").join(sql.Identifier(d.name) for d in cur.description)
        cur.execute(
            sql.SQL("insert into {} ({}) select {} from ({}) as built").format(
                target, columns, columns, sql.SQL(select)
            ),
            params,
        )
        return cur.rowcount
