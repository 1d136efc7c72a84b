"""`mart.learner_daily_activity`: learning activity per actor and day, dated by when it became known.

Each row carries the first reference date whose cut-off knows its statements (`visible_from_date`) and
the first whose cut-off knows their void (`hidden_from_date`), so one aggregate serves every reference
date, past or new, and a date reads exactly what its cut-off knew however late it is built. A refresh
recomputes the (actor, day) groups of the statements and voids published since the last refresh (by
their load time, not their stored time: a statement an LRS exposes late, or a period re-read after
lowering the loader's watermark, is taken in whatever its stored time; one loader publishes at a
time, so nothing committed later carries an earlier load time). Rows published before load times were
kept have none: the first refresh after that rebuilds the aggregate whole. A change of the knowledge
rules (the grace, the import cut-over) rebuilds it whole too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from turnover_signals.features.dates import as_of_grace
from turnover_signals.lms.activity import activity_high_water
from turnover_signals.sqlfiles import read_sql

DAILY_COLUMNS = (
    "learner_identifier",
    "activity_date",
    "visible_from_date",
    "hidden_from_date",
    "events",
    "enrolments",
    "completions",
    "score_sum",
    "score_count",
    "learning_seconds",
    "course_ids",
    "enrolled_course_ids",
    "completed_course_ids",
)


def knowledge_rules(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that decide when a statement counts as known (see learner_daily_activity.sql)."""
    lms = config["lms"]
    cutover = lms.get("import_cutover")
    return {
        "as_of_grace": as_of_grace(config),
        "import_cutover": datetime.fromisoformat(str(cutover).replace("Z", "+00:00")) if cutover else None,
        "import_knowledge_lag": timedelta(hours=float(lms.get("import_knowledge_lag_hours", 24))),
    }


def refresh_learner_daily_activity(
    conn: psycopg.Connection, config: Mapping[str, Any], full: bool = False
) -> dict[str, Any]:
    """Bring the aggregate up to date in one transaction; returns how it was refreshed and how many rows it
    wrote."""
    rules = knowledge_rules(config)
    with conn.transaction():
        state = conn.execute(
            "select as_of_grace, import_cutover, import_knowledge_lag, loaded_watermark"
            " from mart.learner_daily_activity_state"
        ).fetchone()
        loaded_high = conn.execute(
            "select greatest(%s::timestamptz, (select max(loaded_at) from audit.lms_void_applied))",
            (activity_high_water(conn, "loaded_at", state[3] if state else None),),
        ).fetchone()[0]
        same_rules = state is not None and tuple(state[:3]) == (
            rules["as_of_grace"],
            rules["import_cutover"],
            rules["import_knowledge_lag"],
        )
        is_full = full or not same_rules or state[3] is None
        conn.execute(
            "create temp table if not exists learner_daily_refresh "
            "(learner_identifier text, activity_date date)"
        )
        conn.execute("truncate learner_daily_refresh")
        if is_full:
            conn.execute("delete from mart.learner_daily_activity")
        else:
            conn.execute(
                """
                insert into learner_daily_refresh
                select learner_identifier, (occurred_at at time zone 'UTC')::date
                from core.lms_activity where loaded_at > %(since)s
                union
                select activity.learner_identifier, (activity.occurred_at at time zone 'UTC')::date
                from audit.lms_void_applied as void
                inner join core.lms_activity as activity on void.voided_statement_id = activity.statement_id
                where void.loaded_at > %(since)s
                """,
                {"since": state[3]},
            )
            conn.execute(
                "analyze learner_daily_refresh"
            )  # temp tables get no autovacuum: plan with real counts
            conn.execute(
                """
                delete from mart.learner_daily_activity as daily using learner_daily_refresh as refresh_group
                where daily.learner_identifier = refresh_group.learner_identifier
                  and daily.activity_date = refresh_group.activity_date
                """
            )
        columns = sql.SQL(", ").join(map(sql.Identifier, DAILY_COLUMNS))
        rows = conn.execute(
            sql.SQL("insert into mart.learner_daily_activity ({}) select {} from ({}) as built").format(
                columns, columns, sql.SQL(read_sql("mart", "learner_daily_activity"))
            ),
            {**rules, "scope": "full" if is_full else "refresh"},
        ).rowcount
        conn.execute(read_sql("mart", "learner_daily_activity_state"), {**rules, "loaded": loaded_high})
    return {"daily_mode": "full" if is_full else "incremental", "daily_rows_written": rows}
