"""Where each warehouse table comes from: its grain, what builds it, and which stage role may write it.

Generated from a migrated warehouse and the repository, so "where is table X built" is a page, not a grep:

- **grain**: the first line of the relation's SQL file (`include/sql/<schema>/<name>.sql`, house style), else
  the comment right above the `create table` in the migration that made it;
- **built by**: that SQL file, else the package modules whose SQL writes the table (`insert into`, `update`,
  `delete from`, `copy`, `truncate` naming it), else the migration (tables only migrations fill);
- **written by**: the group roles holding INSERT, UPDATE or DELETE on it (the owner writes everything).

    python -m turnover_signals.table_reference --dsn postgresql://…/a_migrated_warehouse   # rewrite the page
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass

import psycopg

from turnover_signals.paths import BUNDLE_ROOT

PAGE = BUNDLE_ROOT / "docs" / "reference" / "table-builders.md"
SQL_DIR = BUNDLE_ROOT / "include" / "sql"
PACKAGE_DIR = BUNDLE_ROOT / "plugins" / "turnover_signals"
SCHEMAS = ("raw", "core", "mart", "audit", "analytics", "governance")
STAGE_ROLES = ("turnover_loader", "turnover_transformer", "turnover_steward")
# Demo and test tooling writes tables too, but is not the pipeline.
NOT_THE_PIPELINE = ("synth", "sample_servers", "demo.py", "table_reference.py")
HEADER = """# Where each table comes from

Generated from a migrated warehouse by `python -m turnover_signals.table_reference --dsn …`; a test fails when
it is stale. **Grain**: the first line of the relation's SQL file, else the comment above its `create table`.
**Built by**: that SQL file, else the modules whose SQL writes it. **Written by**: the stage roles that may
insert, update or delete (the owner, `warehouse_postgres`, may write everything; see
[Security](../security.md#least-privilege)). Columns: [Tables users rely on](tables.md).
"""


@dataclass(frozen=True)
class TableSource:
    table: str
    grain: str
    built_by: str
    written_by: str


def _migration_comment(table: str) -> tuple[str, str]:
    """The comment block right above `create table [if not exists] <table>`, and the migration's file name."""
    pattern = re.compile(
        rf"create (?:unlogged )?table (?:if not exists )?{re.escape(table)}\b", re.IGNORECASE
    )
    for path in sorted((SQL_DIR / "ddl").glob("*.sql")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if pattern.search(line):
                comment: list[str] = []
                for above in reversed(lines[:number]):
                    if not above.startswith("--"):
                        break
                    comment.insert(0, above.lstrip("-").strip())
                return " ".join(comment), path.name
    return "", ""


def _writers_in_package(table: str) -> list[str]:
    """The package modules whose SQL writes `table`."""
    writes = re.compile(
        rf"(insert\s+into|update|delete\s+from|copy|truncate(?:\s+table)?)\s+{re.escape(table)}\b",
        re.IGNORECASE,
    )
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PACKAGE_DIR)
        if any(part in NOT_THE_PIPELINE for part in relative.parts):
            continue
        if writes.search(path.read_text(encoding="utf-8")):
            found.append(f"`{relative.as_posix()}`")
    return found


def table_sources(conn: psycopg.Connection) -> list[TableSource]:
    rows = conn.execute(
        """
        select c.relnamespace::regnamespace::text || '.' || c.relname,
               array(select r from unnest(%(roles)s::text[]) as r where exists (select from pg_roles
                   where rolname = r)
                     and (has_table_privilege(r, c.oid, 'insert') or has_table_privilege(r, c.oid, 'update')
                          or has_table_privilege(r, c.oid, 'delete')))
        from pg_class as c
        where c.relkind in ('r', 'p') and not c.relispartition
          and c.relnamespace::regnamespace::text = any(%(schemas)s)
        order by 1
        """,
        {"roles": list(STAGE_ROLES), "schemas": list(SCHEMAS)},
    ).fetchall()
    sources = []
    for table, writers in rows:
        schema, name = table.split(".")
        sql_file = SQL_DIR / schema / f"{name}.sql"
        comment, migration = _migration_comment(table)
        if sql_file.exists():
            grain = sql_file.read_text(encoding="utf-8").splitlines()[0].lstrip("-").strip()
            built_by = f"`include/sql/{schema}/{name}.sql`"
        else:
            grain = comment
            modules = _writers_in_package(table)
            built_by = ", ".join(modules) if modules else f"migration `{migration}`"
        written = ", ".join(f"`{role}`" for role in writers) or "the owner only"
        sources.append(TableSource(table, grain, built_by, written))
    return sources


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def page(sources: list[TableSource]) -> str:
    lines = [HEADER, "| table | grain | built by | written by |", "|---|---|---|---|"]
    lines += [
        f"| `{s.table}` | {_cell(s.grain) or '—'} | {_cell(s.built_by)} | {_cell(s.written_by)} |"
        for s in sources
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m turnover_signals.table_reference", description=__doc__)
    parser.add_argument("--dsn", required=True, help="a migrated warehouse (any: only its catalogue is read)")
    args = parser.parse_args(argv)
    with psycopg.connect(args.dsn) as conn:
        PAGE.write_text(page(table_sources(conn)), encoding="utf-8")
    print(f"{PAGE}: regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
