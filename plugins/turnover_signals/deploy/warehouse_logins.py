"""The warehouse login of each pipeline stage: its connection and the group role its login is in.

| stage            | config key (`connections:`)  | default connection id      | login is in               |
|------------------|------------------------------|----------------------------|---------------------------|
| `owner`          | `warehouse`                  | `warehouse_postgres`       | owns the bundle's schemas |
| `loader`         | `warehouse_loader`           | `warehouse_loader`         | `turnover_loader`         |
| `transformer`    | `warehouse_transformer`      | `warehouse_transformer`    | `turnover_transformer`    |
| `quality_reader` | `warehouse_quality_reader`   | `warehouse_quality_reader` | `turnover_quality_reader` |

A stage login takes its group role for the whole session (`alter role ... set role`), so what it
creates (an HRIS file's raw partition, staging tables) belongs to the group: another login of the
stage, and the owner (a member of the loader and transformer roles), can drop or alter it.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Stage:
    config_key: str
    group_role: str | None  # None: the owner, in no group role of its own


STAGES: dict[str, Stage] = {
    "owner": Stage("warehouse", None),
    "loader": Stage("warehouse_loader", "turnover_loader"),
    "transformer": Stage("warehouse_transformer", "turnover_transformer"),
    "quality_reader": Stage("warehouse_quality_reader", "turnover_quality_reader"),
}


def stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(f"unknown warehouse stage {name!r}; one of {sorted(STAGES)}") from None


def create_stage_login(
    conn: psycopg.Connection, login: str, stage_name: str, password: str | None = None
) -> None:
    """Create (or update) LOGIN `login` in the stage's group role, taking that role for its sessions.

    Needs a connection that may create roles (superuser or CREATEROLE with admin of the group).
    """
    group = stage(stage_name).group_role
    if group is None:
        raise ValueError("the owner is the login that ran the migrations; it has no stage role")
    login_id, group_id = sql.Identifier(login), sql.Identifier(group)
    exists = conn.execute("select 1 from pg_roles where rolname = %s", (login,)).fetchone()
    if not exists:
        conn.execute(sql.SQL("create role {} login").format(login_id))
    if password is not None:
        conn.execute(sql.SQL("alter role {} password {}").format(login_id, sql.Literal(password)))
    conn.execute(sql.SQL("grant {} to {}").format(group_id, login_id))
    conn.execute(sql.SQL("alter role {} set role = {}").format(login_id, sql.Literal(group)))
