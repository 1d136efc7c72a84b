"""`mart.turnover_label`: whether an employee active at a reference date left voluntarily within the horizon.

Labels keep their own rule, apart from the features' cut-off: the outcome within H days after the
date, known once HR is known through the end of the horizon; involuntary and other exits are censored.
A build refreshes only the labels that may have changed: those of the dates just built, of employees
whose employment outcome changed (`mart.turnover_label_outcome` keeps the one the labels were computed
from) and of dates whose horizon may have closed since the last refresh; all of them on a full daily
rebuild, or when the horizons change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg import sql

from turnover_signals.lms.statements import read_watermark
from turnover_signals.sqlfiles import read_sql


def set_watermark(conn: psycopg.Connection, source: str, value: Any, build_id: str) -> None:
    conn.execute(
        """
        insert into audit.extract_watermark (source, watermark, batch_id, updated_at) values (%s,
            %s, %s, now())
        on conflict (source) do update set watermark = excluded.watermark, batch_id = excluded.batch_id,
            updated_at = excluded.updated_at
        where audit.extract_watermark.watermark is distinct from excluded.watermark
        """,
        (source, value, build_id),
    )


def label_parameters(conn: psycopg.Connection, config: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of include/sql/mart/turnover_label.sql: horizons, and how far HR is known."""
    hr_known_through = conn.execute(
        """
        select coalesce(
            (select max(manifest.file_date) from audit.file_manifest as manifest
             where manifest.feed = 'employees' and manifest.status = 'loaded'
               -- that the HR history holds: a leaver of a file not built into it yet would look employed
               and exists (select from core.hris_file_knowledge as knowledge
                           where knowledge.sha256 = manifest.sha256)),
            (select max(valid_from) from core.employee_history))
        """
    ).fetchone()[0]
    return {
        "horizons": [int(h) for h in config["features"]["label_horizons_days"]],
        "hr_known_through": hr_known_through,
    }


LABEL_HR_WATERMARK = "features:turnover_label:hr_known_through"


def refresh_employment_outcomes(conn: psycopg.Connection) -> int:
    """Bring `mart.turnover_label_outcome` up to date; the changed employees go to temp table
    `outcome_changed`."""
    conn.execute("drop table if exists outcome_now, outcome_changed")
    conn.execute(
        sql.SQL("create temp table outcome_now as {}").format(
            sql.SQL(read_sql("mart", "turnover_label_outcome"))
        )
    )
    changed = conn.execute(
        """
        create temp table outcome_changed as
        select coalesce(now.hris_employee_id, kept.hris_employee_id) as hris_employee_id
        from outcome_now as now
        full join mart.turnover_label_outcome as kept on now.hris_employee_id = kept.hris_employee_id
        where (now.hris_employee_id, now.exit_date, now.exit_category)
            is distinct from (kept.hris_employee_id, kept.exit_date, kept.exit_category)
        """
    ).rowcount
    conn.execute(
        "delete from mart.turnover_label_outcome where hris_employee_id in"
        " (select hris_employee_id from outcome_changed)"
    )
    conn.execute(
        "insert into mart.turnover_label_outcome select * from outcome_now where hris_employee_id in"
        " (select hris_employee_id from outcome_changed)"
    )
    return changed


def label_scope_is_everything(
    conn: psycopg.Connection, params: Mapping[str, Any], kept_through: date | None
) -> bool:
    """Whether every label must be computed again: none kept, other horizons, or HR known less far than
    before."""
    if (
        kept_through is None
        or params["hr_known_through"] is None
        or params["hr_known_through"] < kept_through
    ):
        return True
    kept_horizons = conn.execute(
        "select array_agg(horizon_days order by horizon_days) from mart.turnover_label where (employee_key, "
        "reference_date) = (select employee_key, reference_date from mart.turnover_label limit 1)"
    ).fetchone()[0]  # every (employee, date) carries every horizon, so one of them tells
    return kept_horizons is not None and kept_horizons != sorted(set(params["horizons"]))


def fill_label_scope(
    conn: psycopg.Connection,
    everything: bool,
    dates: Sequence[date] = (),
    settling: tuple[date, date] | None = None,
) -> None:
    """Temp table `label_scope`: every feature row, or the rows whose label may have changed.

    A label depends on its row, the employee's outcome and how far HR is known: so the rows of the
    dates built now, of employees whose outcome changed, and of the dates in `settling` (after,
    through]: those whose horizon may have ended between the last label refresh and now.
    """
    conn.execute("drop table if exists label_scope")
    conn.execute(
        "create temp table label_scope (employee_key bigint, reference_date date, hris_employee_id text)"
    )
    if everything:
        conn.execute(
            "insert into label_scope select employee_key, reference_date, hris_employee_id"
            " from mart.employee_features"
        )
        return
    conn.execute(
        """
        insert into label_scope
        select features.employee_key, features.reference_date, features.hris_employee_id
        from mart.employee_features as features
        where
            features.reference_date = any(%(dates)s::date[])
            or (features.reference_date > %(after)s::date and features.reference_date <= %(through)s::date)
        union
        select features.employee_key, features.reference_date, features.hris_employee_id
        from outcome_changed
        inner join core.hris_employee_key as employee_key
            on outcome_changed.hris_employee_id = employee_key.hris_employee_id
        inner join mart.employee_features as features
            on features.employee_key = employee_key.employee_key
            and features.hris_employee_id = outcome_changed.hris_employee_id
        """,
        {"dates": list(dates), "after": settling[0], "through": settling[1]},
    )
    conn.execute("analyze label_scope")


def refresh_labels(
    conn: psycopg.Connection,
    config: Mapping[str, Any],
    dates: Sequence[date],
    build_id: str,
    full: bool = False,
) -> dict[str, Any]:
    """Recompute the labels that may have changed (outcomes become known as time passes), or all of them.

    Labels never feed features. A label keeps the `hr_known_through` it was last computed with: a
    settled one, the one it was decided with.
    """
    params = label_parameters(conn, config)
    kept = read_watermark(conn, LABEL_HR_WATERMARK)
    kept_through = None if full or kept is None else kept.date()
    changed_outcomes = refresh_employment_outcomes(conn)
    everything = label_scope_is_everything(conn, params, kept_through)
    band = None
    if not everything:
        # (date, horizon) turns from open to settled when HR becomes known through date + horizon
        band = (
            kept_through - timedelta(days=max(params["horizons"], default=0)),
            params["hr_known_through"] - timedelta(days=min(params["horizons"], default=0)),
        )
    fill_label_scope(conn, everything, dates, band)
    if everything:
        conn.execute("delete from mart.turnover_label")
    else:
        conn.execute("delete from mart.turnover_label where reference_date = any(%s::date[])", (list(dates),))
        conn.execute(
            """
            delete from mart.turnover_label as label
            using (select distinct employee_key, reference_date from label_scope) as scope
            where label.employee_key = scope.employee_key and label.reference_date = scope.reference_date
            """
        )
    written = conn.execute(
        sql.SQL("insert into mart.turnover_label ({cols}) select {cols} from ({select}) as built").format(
            cols=sql.SQL(", ").join(map(sql.Identifier, LABEL_COLUMNS)),
            select=sql.SQL(read_sql("mart", "turnover_label")),
        ),
        params,
    ).rowcount
    if params["hr_known_through"] is not None:
        set_watermark(conn, LABEL_HR_WATERMARK, params["hr_known_through"], build_id)
    return {
        "label_mode": "full" if everything else "incremental",
        "labels_written": written,
        "employees_with_changed_outcome": changed_outcomes,
    }


LABEL_COLUMNS = (
    "employee_key",
    "reference_date",
    "horizon_days",
    "hris_employee_id",
    "label",
    "exit_date",
    "exit_category",
    "is_censored",
    "label_status",
    "hr_known_through",
)
