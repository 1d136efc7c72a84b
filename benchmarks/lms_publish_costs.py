"""What publishing a chunk of xAPI statements costs PostgreSQL, table by table (issue 18 point 5).

    PYTHONPATH=plugins:. .venv/bin/python benchmarks/lms_publish_costs.py [--published 500000]
        [--chunk 100000] [--repeats 3] [--readme] [--json-out FILE]

`benchmarks/lms_load.py` shows that, end to end, the publisher's two `insert ... select` (into
`raw.lms_statement` and `core.lms_activity`) are its largest phases. This measures, on a freshly migrated
warehouse already holding `--published` statements, what one chunk of `--chunk` statements costs each way a
publisher could write it, so a redesign is chosen on figures:

- raw, probing ("today" in the JSON): binary COPY of the statements (jsonb as received) into an unlogged
  chunk table, then `insert ... select ... where not exists` into `raw.lms_statement` probing its primary key
  (`probing_published_statements_by_index`), as `lms.statements` does for a chunk holding statements
  stored at or before the watermark;
- raw, direct: binary COPY straight into `raw.lms_statement` (what a publisher that gates the check columns
  first and then streams the accepted statements again would pay);
- core, as migrated: `insert ... select ... where not exists` of the chunk's normalised rows into
  `core.lms_activity` with every index the migrations create;
- core, primary key only: the same into a copy of the warehouse whose `core.lms_activity` keeps only its
  primary key (what the secondary indexes cost);
- core, b-trees on the times: the same into a copy whose loaded, stored and occurred times have the b-trees
  they had before migration 0046 instead of its block-range indexes (what that migration saves);
- raw and core, uuid ids: the probing raw and core steps on a copy whose `statement_id` columns of both
  tables are `uuid` instead of `text` (16-byte keys compared bytewise, no collation; its views are dropped):
  what the text primary keys cost the publisher;
- raw and core, unprobed: the same inserts without their `not exists` probe, the primary key alone meeting
  each id (what `lms.statements` pays for a chunk stored after the watermark: it falls back to probing only
  when the key refuses an id);
- raw and core, the database's collation: the probing steps on a copy whose text keys (`statement_id` of both
  tables and core's `learner_identifier`) compare by the database's collation instead of byte by byte
  (collation "C", migration 0047): what that migration saves (`--key-collation` names another collation
  for them, as a warehouse created under a language's locale has).

Each variant writes to a database of its own (a copy of one warehouse holding `--published` statements), so
each table grows by one chunk a round whatever the variant, and every copy has its two tables' indexes rebuilt
before the first round (a change of column type rebuilds them compact, which alone makes inserts cheaper).
Each variant runs `--repeats` times after a warm-up round that is not counted, alternating, each after a
checkpoint (so full-page images are paid as in a long load); the figure is the median wall time of the
statement(s) on one session (PostgreSQL's work: the client only streams rows), and the WAL its transaction
wrote (the chunk tables are unlogged). `--variants` runs only the named ones. Statements are shaped like
`lms_load.py`'s (~670 bytes, uuid ids). Drops its databases; the server is the one of `LMS_BENCH_ADMIN_DSN`
(default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _harness import (
    Warehouse,
    code_version,
    json_default,
    machine_description,
    markdown_table,
    on_path,
    write_readme_section,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
on_path(REPO_ROOT / "plugins", REPO_ROOT)

WAREHOUSE = Warehouse("LMS_BENCH_ADMIN_DSN")
BEFORE_0046_BTREES = ("loaded", "stored", "occurred")
README_TITLE = "LMS publish costs (issue 18)"
# compared by the database's collation in the db_collation variants, byte by byte (collation "C", migration
# 0047) in the others: the two tables' text keys
DB_COLLATED_COLUMNS = (
    ("raw.lms_statement", "statement_id"),
    ("core.lms_activity", "statement_id"),
    ("core.lms_activity", "learner_identifier"),
)


def statements(count: int, start: datetime, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    """(id, stored, occurred, JSON text, learner, course) of `count` statements stored a second apart."""
    for n in range(count):
        statement_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        stored = start + timedelta(seconds=n)
        occurred = stored - timedelta(minutes=rng.randint(0, 3000))
        learner = f"https://lms.example.com::{rng.randint(1, 20000)}"
        course = f"https://lms.example.com/courses/{rng.randint(1, 400)}"
        statement = {
            "id": statement_id,
            "actor": {
                "objectType": "Agent",
                "account": {"homePage": "https://lms.example.com", "name": learner},
            },
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
            "object": {
                "objectType": "Activity",
                "id": course,
                "definition": {
                    "name": {"en-US": "Course"},
                    "type": "http://adlnet.gov/expapi/activities/course",
                },
            },
            "result": {"score": {"scaled": 0.8}, "success": True, "completion": True, "duration": "PT42M"},
            "context": {"registration": str(uuid.UUID(int=rng.getrandbits(128), version=4))},
            "timestamp": occurred.isoformat().replace("+00:00", "Z"),
            "stored": stored.isoformat().replace("+00:00", "Z"),
            "version": "1.0.3",
        }
        yield statement_id, stored, occurred, json.dumps(statement), learner, course


def copy_statements(
    conn: Any, table: str, rows: list[tuple[Any, ...]], published: bool, id_type: str = "text"
) -> None:
    """Binary COPY of (id, stored, occurred, jsonb as the text received) rows, with raw's bookkeeping when
    `published`; ids as `id_type` (text or uuid)."""
    from psycopg import postgres, pq
    from psycopg.adapt import Dumper

    class JsonText(Dumper):
        format = pq.Format.BINARY
        oid = postgres.types["jsonb"].oid

        def dump(self, obj: str) -> bytes:
            return b"\x01" + obj.encode("utf-8")

    extra = ", source, batch_id, loaded_at" if published else ""
    types = [id_type, "timestamptz", "timestamptz", "jsonb"] + (
        ["text", "text", "timestamptz"] if published else []
    )
    now = datetime.now(UTC)
    with conn.cursor() as cursor:
        cursor.adapters.register_dumper(None, JsonText)
        columns = f"statement_id, stored_at, occurred_at, statement{extra}"
        with cursor.copy(f"copy {table} ({columns}) from stdin (format binary)") as copy:
            copy.set_types(types)
            for statement_id, stored, occurred, text, _, _ in rows:
                copy.write_row(
                    (
                        uuid.UUID(statement_id) if id_type == "uuid" else statement_id,
                        stored,
                        occurred,
                        text,
                        *(("xapi:bench", "bench", now) if published else ()),
                    )
                )


def copy_activity(conn: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
    from turnover_signals.lms.statements import LMS_ACTIVITY_COLUMNS

    with conn.cursor().copy(f"copy {table} ({', '.join(LMS_ACTIVITY_COLUMNS)}) from stdin") as copy:
        for statement_id, stored, occurred, _, learner, course in rows:
            copy.write_row(
                (statement_id, learner, "account", "completion", "http://adlnet.gov/expapi/verbs/completed")
                + (course, "Course", 0.8, True, True, 2520, occurred, False, stored, False)
            )


def insert_new(conn: Any, target: str, source: str, columns: str, values: str, probe: bool = True) -> None:
    """Insert the chunk's rows, leaving out (`probe`) those whose id the target has already."""
    from turnover_signals.lms.statements import probing_published_statements_by_index

    with probing_published_statements_by_index(conn):
        # the benchmark's own table and column names: nothing from outside goes into the text
        query = f"insert into {target} ({columns}) select {values} from {source} as c"  # noqa: S608
        if probe:
            query += f" where not exists (select from {target} as p where p.statement_id = c.statement_id)"
        conn.execute(query)


def raw_today(conn: Any, rows: list[tuple[Any, ...]], id_type: str = "text", probe: bool = True) -> None:
    conn.execute(
        f"create unlogged table staging.bench_chunk (statement_id {id_type}, stored_at timestamptz,"
        " occurred_at timestamptz, statement jsonb)"
    )
    copy_statements(conn, "staging.bench_chunk", rows, published=False, id_type=id_type)
    conn.execute("analyze staging.bench_chunk (statement_id)")
    insert_new(
        conn,
        "raw.lms_statement",
        "staging.bench_chunk",
        "statement_id, stored_at, occurred_at, statement, source, batch_id, loaded_at",
        "statement_id, stored_at, occurred_at, statement, 'xapi:bench', 'bench', now()",
        probe,
    )
    conn.execute("drop table staging.bench_chunk")


def raw_direct(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    copy_statements(conn, "raw.lms_statement", rows, published=True)


def core_insert(conn: Any, rows: list[tuple[Any, ...]], probe: bool = True) -> float:
    """The seconds of the insert alone (the rows' COPY into the chunk table is the fetching thread's)."""
    from turnover_signals.lms.statements import LMS_ACTIVITY_COLUMNS

    columns = ", ".join(LMS_ACTIVITY_COLUMNS)
    conn.execute("create unlogged table staging.bench_rows (like core.lms_activity including defaults)")
    copy_activity(conn, "staging.bench_rows", rows)
    conn.execute("analyze staging.bench_rows (statement_id)")
    started = time.perf_counter()
    insert_new(conn, "core.lms_activity", "staging.bench_rows", columns, columns, probe)
    seconds = time.perf_counter() - started
    conn.execute("drop table staging.bench_rows")
    return seconds


def drop_dependent_views(conn: Any) -> None:
    """Drop the views over raw.lms_statement and core.lms_activity (a column's type cannot change under
    them)."""
    dependent_views = conn.execute(
        "select distinct view.oid::regclass::text from pg_depend as d"
        " join pg_rewrite as r on r.oid = d.objid join pg_class as view on view.oid = r.ev_class"
        " where d.refobjid in"
        " ('raw.lms_statement'::regclass, 'core.lms_activity'::regclass) and view.oid <> d.refobjid"
    ).fetchall()
    for (view,) in dependent_views:  # names read from the catalogue, already quoted by regclass
        conn.execute(f"drop view if exists {view} cascade")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg
    from psycopg import sql

    from turnover_signals.warehouse import migrate

    rng = random.Random(18)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    dsn = WAREHOUSE.create("bench_publish_costs")
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
        for first in range(0, args.published, args.chunk):
            rows = list(
                statements(min(args.chunk, args.published - first), base + timedelta(days=first), rng)
            )
            with conn.transaction():
                copy_statements(conn, "raw.lms_statement", rows, published=True)
                copy_activity(conn, "core.lms_activity", rows)
        conn.execute("vacuum analyze raw.lms_statement")
        conn.execute("vacuum analyze core.lms_activity")
    pk_only_dsn = WAREHOUSE.create("bench_publish_costs_pk", template="bench_publish_costs")
    with psycopg.connect(pk_only_dsn, autocommit=True) as conn:
        secondary = conn.execute(
            "select indexname from pg_indexes where schemaname = 'core' and tablename = 'lms_activity'"
            " and indexname <> 'lms_activity_pkey'"
        ).fetchall()
        for (name,) in secondary:
            conn.execute(f'drop index core."{name}"')
    indexes = sorted(name for (name,) in secondary)
    btree_dsn = WAREHOUSE.create("bench_publish_costs_btree", template="bench_publish_costs")
    with psycopg.connect(btree_dsn, autocommit=True) as conn:
        for column in BEFORE_0046_BTREES:
            conn.execute(f"drop index core.lms_activity_{column}_brin")
            conn.execute(f"create index lms_activity_{column}_idx on core.lms_activity ({column}_at)")
    uuid_dsn = WAREHOUSE.create("bench_publish_costs_uuid", template="bench_publish_costs")
    with psycopg.connect(uuid_dsn, autocommit=True) as conn:
        drop_dependent_views(conn)
        for table in ("raw.lms_statement", "core.lms_activity"):
            conn.execute(f"alter table {table} alter column statement_id type uuid using statement_id::uuid")
    db_collation_dsn = WAREHOUSE.create("bench_publish_costs_db_collation", template="bench_publish_costs")
    with psycopg.connect(db_collation_dsn, autocommit=True) as conn:
        drop_dependent_views(conn)
        started = time.perf_counter()
        for table, column in DB_COLLATED_COLUMNS:
            conn.execute(
                sql.SQL("alter table {} alter column {} type text collate {}").format(
                    sql.Identifier(*table.split(".")),
                    sql.Identifier(column),
                    sql.Identifier(args.key_collation),
                )
            )
        # what migration 0047 costs a warehouse of this size, in reverse: the indexes on these columns rebuilt
        collation_change_seconds = time.perf_counter() - started
    # Variants writing the same table go to databases of their own, so each table grows by one chunk a round
    unprobed_dsn = WAREHOUSE.create("bench_publish_costs_unprobed", template="bench_publish_costs")
    direct_dsn = WAREHOUSE.create("bench_publish_costs_direct", template="bench_publish_costs")
    # Every copy starts from freshly built indexes: a change of column type rebuilds them compact, which alone
    # makes later inserts cheaper (a smaller tree, fewer pages touched) and would be credited to the type.
    for variant_dsn in (dsn, pk_only_dsn, btree_dsn, uuid_dsn, db_collation_dsn, unprobed_dsn, direct_dsn):
        with psycopg.connect(variant_dsn, autocommit=True) as conn:
            for table in ("raw.lms_statement", "core.lms_activity"):
                conn.execute(f"reindex table {table}")
                conn.execute(f"vacuum analyze {table}")
    timings: dict[str, list[float]] = {
        "raw_today": [],
        "raw_direct": [],
        "core_all_indexes": [],
        "core_pk_only": [],
        "core_time_btrees": [],
        "raw_uuid_ids": [],
        "core_uuid_ids": [],
        "raw_unprobed": [],
        "core_unprobed": [],
        "raw_db_collation": [],
        "core_db_collation": [],
    }
    if args.variants:
        timings = {variant: timings[variant] for variant in args.variants}
    # WAL written by the variant's transaction (the chunk tables are unlogged: none of theirs)
    wal: dict[str, list[int]] = {variant: [] for variant in timings}
    day = 1000
    try:
        for repeat in range(args.repeats + 1):  # the first round warms the caches up and is not counted
            for variant in timings:
                day += 1
                rows = list(statements(args.chunk, base + timedelta(days=day), rng))
                target = {
                    "core_pk_only": pk_only_dsn,
                    "core_time_btrees": btree_dsn,
                    "raw_uuid_ids": uuid_dsn,
                    "core_uuid_ids": uuid_dsn,
                    "raw_db_collation": db_collation_dsn,
                    "raw_unprobed": unprobed_dsn,
                    "core_unprobed": unprobed_dsn,
                    "raw_direct": direct_dsn,
                    "core_db_collation": db_collation_dsn,
                }.get(variant, dsn)
                with psycopg.connect(target, autocommit=True) as conn:
                    conn.execute("checkpoint")
                    (wal_before,) = conn.execute("select pg_current_wal_insert_lsn()").fetchone()
                    started = time.perf_counter()
                    with conn.transaction():
                        if variant == "raw_today":
                            raw_today(conn, rows)
                        elif variant == "raw_uuid_ids":
                            raw_today(conn, rows, id_type="uuid")
                        elif variant == "raw_db_collation":
                            raw_today(conn, rows)
                        elif variant == "raw_unprobed":
                            raw_today(conn, rows, probe=False)
                        elif variant == "raw_direct":
                            raw_direct(conn, rows)
                        else:
                            insert_seconds = core_insert(conn, rows, probe=variant != "core_unprobed")
                    elapsed = insert_seconds if variant.startswith("core") else time.perf_counter() - started
                    (wal_bytes,) = conn.execute(
                        "select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", (wal_before,)
                    ).fetchone()
                if repeat:
                    timings[variant].append(elapsed)
                    wal[variant].append(int(wal_bytes))
                print(f"{variant}: {elapsed:.2f} s", file=sys.stderr, flush=True)
    finally:
        WAREHOUSE.drop("bench_publish_costs_direct")
        WAREHOUSE.drop("bench_publish_costs_unprobed")
        WAREHOUSE.drop("bench_publish_costs_db_collation")
        WAREHOUSE.drop("bench_publish_costs_uuid")
        WAREHOUSE.drop("bench_publish_costs_btree")
        WAREHOUSE.drop("bench_publish_costs_pk")
        WAREHOUSE.drop("bench_publish_costs")
    return {
        "code": code_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": machine_description(WAREHOUSE.admin_dsn),
        "published": args.published,
        "chunk": args.chunk,
        "repeats": args.repeats,
        "secondary_indexes_of_core": indexes,
        "collation_change_seconds": collation_change_seconds,
        "key_collation": args.key_collation,
        "timings": timings,
        "wal_bytes": wal,
    }


def render(result: dict[str, Any]) -> str:
    chunk = result["chunk"]
    medians = {variant: statistics.median(values) for variant, values in result["timings"].items()}
    key_collation = (
        f"the collation {result['key_collation']}"
        if result.get("key_collation", "default") != "default"
        else "the database's collation (before 0047)"
    )
    labels = {
        "raw_today": "raw: COPY into the chunk table, then insert ... where not exists (the probing insert)",
        "raw_direct": "raw: COPY straight into raw.lms_statement",
        "core_all_indexes": "core: insert ... where not exists, every index of the migrations",
        "core_pk_only": "core: the same, primary key only",
        "core_time_btrees": "core: the same, b-trees on the times, not block-range indexes (before 0046)",
        "raw_uuid_ids": "raw: the probing insert, with uuid statement ids instead of text",
        "core_uuid_ids": "core: the probing insert, with uuid statement ids instead of text",
        "raw_unprobed": "raw: the same without the probe (the loader's when stored after the watermark)",
        "core_unprobed": "core: the same without the probe (the loader's when stored after the watermark)",
        "raw_db_collation": f"raw: the probing insert, statement ids compared by {key_collation}",
        "core_db_collation": f"core: the probing insert, ids and learners compared by {key_collation}",
    }
    labels = {variant: label for variant, label in labels.items() if variant in medians}  # older runs: 4
    rows = [
        (
            labels[variant],
            f"{medians[variant]:.2f}",
            ", ".join(f"{value:.2f}" for value in result["timings"][variant]),
            f"{medians[variant] / chunk * 1e6:.1f}",
            (
                f"{statistics.median(result['wal_bytes'][variant]) / chunk:,.0f}"
                if result.get("wal_bytes")
                else "–"
            ),
        )
        for variant in labels
    ]
    machine = result["machine"]

    def per_statement(*terms: tuple[int, str]) -> float | None:
        """µs a statement of a signed sum of variants' medians; None where a variant was not run."""
        if any(variant not in medians for _, variant in terms):
            return None
        return sum(sign * medians[variant] for sign, variant in terms) / chunk * 1e6

    findings = [
        (
            "writing raw directly saves {:.1f} µs a statement",
            per_statement((1, "raw_today"), (-1, "raw_direct")),
        ),
        (
            "the secondary indexes of core cost {:.1f} µs a statement",
            per_statement((1, "core_all_indexes"), (-1, "core_pk_only")),
        ),
        (
            "b-trees on the loaded, stored and occurred times would cost {:.1f} µs a statement more than "
            "their block-range indexes",
            per_statement((1, "core_time_btrees"), (-1, "core_all_indexes")),
        ),
        (
            "statement ids as uuid instead of text would save {:.1f} µs a statement (raw and core together)",
            per_statement(
                (1, "raw_today"), (-1, "raw_uuid_ids"), (1, "core_all_indexes"), (-1, "core_uuid_ids")
            ),
        ),
        (
            "leaving out the `not exists` probes would save {:.1f} µs a statement (raw and core together)",
            per_statement(
                (1, "raw_today"), (-1, "raw_unprobed"), (1, "core_all_indexes"), (-1, "core_unprobed")
            ),
        ),
        (
            'comparing the text keys byte by byte (collation "C", migration 0047) saves {:.1f} µs a '
            "statement (raw and core together) against "
            + (
                f"the collation {result['key_collation']}"
                if result.get("key_collation", "default") != "default"
                else f"the database's collation, {machine['postgres'].get('lc_collate', '?')}"
            ),
            per_statement(
                (1, "raw_db_collation"),
                (-1, "raw_today"),
                (1, "core_db_collation"),
                (-1, "core_all_indexes"),
            ),
        ),
    ]
    summary = "; ".join(text.format(value) for text, value in findings if value is not None)
    return "\n".join(
        [
            "What one chunk costs PostgreSQL, per table and way of writing it "
            "(`benchmarks/lms_publish_costs.py`; the method is in its docstring).",
            "",
            f"Measured {result['measured_at']} on `{result['code']}`: {machine['nproc']} cores, "
            f"{machine['cpu']}, PostgreSQL settings {machine['postgres']}; {result['published']:,} "
            f"statements published before, chunks of {chunk:,}, {result['repeats']} runs each (median).",
            "",
            markdown_table(
                ("variant", "median s", "runs s", "µs per statement", "WAL bytes per statement"),
                rows,
                "lrrrr",
            ),
            "",
            f"Secondary indexes of `core.lms_activity`: {', '.join(result['secondary_indexes_of_core'])}. "
            + (summary[0].upper() + summary[1:] + "." if summary else "")
            + (
                f" Changing the collation of those text keys on the {result['published']:,} statements (the "
                "indexes on them rebuilt, as migration 0047 does) took "
                f"{result['collation_change_seconds']:.1f} s."
                if "collation_change_seconds" in result
                else ""
            ),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--published", type=int, default=500_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", help="only these variants (default: all)")
    parser.add_argument(
        "--key-collation",
        default="default",
        help="the collation of the text keys in the db_collation variants (default: the database's; "
        "en-US-x-icu, say, for a warehouse created under a language's rules)",
    )
    parser.add_argument("--readme", action="store_true")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    result = measure(args)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2, default=json_default), encoding="utf-8")
    body = render(result)
    print(body)
    if args.readme:
        write_readme_section(README_TITLE, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
