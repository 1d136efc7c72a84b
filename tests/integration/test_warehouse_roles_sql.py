"""The one copy of the warehouse's role SQL (deploy/warehouse-init/roles_and_logins.psql) runs as the docs and
the compose warehouse run it, on a PostgreSQL cluster of its own (roles are cluster-wide), and gives each
login the roles docs/security.md promises."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.postgres_service import EmbeddedPostgres

pytestmark = pytest.mark.integration
ROLE_SQL = Path(__file__).resolve().parents[2] / "deploy" / "warehouse-init" / "roles_and_logins.psql"
PASSWORDS = ("pipeline", "loader", "transformer", "quality_reader", "analyst")


def test_the_role_sql_creates_the_group_roles_and_one_login_per_stage():
    server = EmbeddedPostgres().start()
    try:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("create database turnover")
        turnover = server.dsn.rsplit("/", 1)[0] + "/turnover"
        variables = [arg for name in PASSWORDS for arg in ("-v", f"{name}_password=secret-{name}")]
        subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *variables, "-d", turnover, "-f", str(ROLE_SQL)],
            check=True,
            capture_output=True,
            text=True,
        )
        with psycopg.connect(turnover) as conn:
            members = dict(
                conn.execute(
                    "select member.rolname, array_agg(grp.rolname::text order by grp.rolname) from "
                    "pg_auth_members as m join pg_roles as grp on grp.oid = m.roleid join pg_roles as member "
                    "on member.oid = m.member where member.rolname !~ %s group by member.rolname",
                    ("^pg_",),
                ).fetchall()
            )
            owner = conn.execute(
                "select pg_get_userbyid(datdba) from pg_database where datname = 'turnover'"
            ).fetchone()
            sessions = dict(
                conn.execute(
                    "select r.rolname, s.setconfig from pg_db_role_setting as s join pg_roles as r on r.oid "
                    "= s.setrole"
                ).fetchall()
            )
        assert members == {
            "turnover_pipeline": ["turnover_loader", "turnover_transformer"],
            "pipeline_loader": ["turnover_loader"],
            "pipeline_transformer": ["turnover_transformer"],
            "quality_reader": ["turnover_quality_reader"],
            "analyst": ["turnover_analyst"],
        }
        assert owner == ("turnover_pipeline",)
        assert sessions == {
            "pipeline_loader": ["role=turnover_loader"],
            "pipeline_transformer": ["role=turnover_transformer"],
            "quality_reader": ["role=turnover_quality_reader"],
        }
        # a stage login takes its group role for its sessions
        with psycopg.connect(
            server.dsn.replace("postgres@", "pipeline_loader:secret-loader@").rsplit("/", 1)[0] + "/turnover"
        ) as conn:
            assert conn.execute("select current_role").fetchone() == ("turnover_loader",)
    finally:
        server.stop()
