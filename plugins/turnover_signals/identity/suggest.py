"""Ranked suggestions for the steward: candidate employees for LMS accounts the rules leave unmatched.

Runs after `resolve_identities`, in one transaction under the identity lock. For each LMS account that the
deterministic rules leave unmatched for a reason a person could resolve (`identity.suggestion_reasons`, e.g.
`email_not_in_hris`, `no_corporate_identifier`) and that no steward decision covers, the employees that
blocking brings together with it are scored Fellegi–Sunter style in SQL
(`include/sql/staging/identity_suggestion_candidate.sql`): name similarity with term frequencies, edit
distance on the email local part, the domain class (corporate, alias, personal; contractor domains are never
scored) and whether the account was created during the candidate's employment. The best
`identity.suggestion_top_n` candidates per account at or above `identity.suggestion_min_score` land in
`audit.identity_suggestion` (`include/sql/audit/identity_suggestion.sql`), ranked best-first with the
evidence per comparison.

Nothing here links anyone: a suggestion becomes a link only when a steward accepts it
(`turnover_signals.identity.stewardship`), which records a decision in `audit.identity_override` that the next
identity run applies. A rejected pair is never suggested again. Rerunning the stage on unchanged inputs
changes no row; an open suggestion that is no longer produced (the account got matched, a better candidate
appeared) leaves the queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from turnover_signals.identity.resolve import IDENTITY_LOCK_ID, StepTimer, matching_parameters
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)

SUGGESTION_COLUMNS = (
    "lms_user_id",
    "employee_key",
    "hris_employee_id",
    "unmatched_reason",
    "score",
    "match_weight",
    "rank",
    "evidence",
    "status",
    "created_run_id",
)
# what a rerun may change on an open suggestion (created_at and created_run_id stay its first sighting)
RESCORED_COLUMNS = ("hris_employee_id", "unmatched_reason", "score", "match_weight", "rank", "evidence")


def suggestion_parameters(config: Mapping[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """The settings the suggestion SQL reads, from the `identity` section of the config."""
    identity = config["identity"]
    matching = matching_parameters(config)
    return {
        "corporate_domains": matching["corporate_domains"],
        "domain_aliases": matching["domain_aliases"],
        "created_before_hire_grace_days": matching["created_before_hire_grace_days"],
        "contractor_domains": [d.strip().lower() for d in identity["contractor_domains"]],
        "suggestion_reasons": list(identity["suggestion_reasons"]),
        "min_score": float(identity["suggestion_min_score"]),
        "top_n": int(identity["suggestion_top_n"]),
        "run_id": run_id,
    }


def score_candidates(conn: psycopg.Connection, params: Mapping[str, Any]) -> int:
    """Build this run's scored pairs as the temporary `identity_suggestion_candidate`; how many."""
    conn.execute("drop table if exists identity_suggestion_candidate")
    pairs = conn.execute(
        sql.SQL("create temp table identity_suggestion_candidate on commit drop as {}").format(
            sql.SQL(read_sql("staging", "identity_suggestion_candidate"))
        ),
        params,
    ).rowcount
    conn.execute("analyze identity_suggestion_candidate")
    return pairs


def refresh_queue(conn: psycopg.Connection, params: Mapping[str, Any]) -> dict[str, int]:
    """Drop open suggestions no longer produced, add new ones, rescore changed ones; decided rows stay."""
    built = sql.SQL(read_sql("audit", "identity_suggestion"))
    removed = conn.execute(
        sql.SQL(
            """
            delete from audit.identity_suggestion as known
            where known.status = 'open'
              and not exists (select from ({}) as built
                              where built.lms_user_id = known.lms_user_id
                                and built.employee_key = known.employee_key)
            """
        ).format(built),
        params,
    ).rowcount
    columns = sql.SQL(", ").join(map(sql.Identifier, SUGGESTION_COLUMNS))
    written = conn.execute(
        sql.SQL(
            """
            insert into audit.identity_suggestion as known ({columns})
            select {columns} from ({built}) as built
            on conflict on constraint identity_suggestion_pair_key do update set {updates}, scored_at = now()
            where known.status = 'open' and ({known}) is distinct from ({excluded})
            """
        ).format(
            columns=columns,
            built=built,
            updates=sql.SQL(", ").join(
                sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in RESCORED_COLUMNS
            ),
            known=sql.SQL(", ").join(sql.SQL("known.{}").format(sql.Identifier(c)) for c in RESCORED_COLUMNS),
            excluded=sql.SQL(", ").join(
                sql.SQL("excluded.{}").format(sql.Identifier(c)) for c in RESCORED_COLUMNS
            ),
        ),
        params,
    ).rowcount
    return {"suggestions_removed": removed, "suggestions_written": written}


def queue_counts(conn: psycopg.Connection) -> dict[str, int]:
    row = conn.execute(
        """
        select
            count(*) filter (where status = 'open'),
            count(distinct lms_user_id) filter (where status = 'open'),
            count(*) filter (where status = 'accepted'),
            count(*) filter (where status = 'rejected')
        from audit.identity_suggestion
        """
    ).fetchone()
    names = ("suggestions_open", "accounts_in_queue", "suggestions_accepted", "suggestions_rejected")
    return dict(zip(names, row, strict=True))


SCORING_EXTENSIONS = ("fuzzystrmatch", "pg_trgm")


def missing_scoring_extensions(conn: psycopg.Connection) -> list[str]:
    """The contrib extensions scoring needs that this warehouse lacks (migration 0040 creates them where the
    server has them)."""
    installed = {name for (name,) in conn.execute("select extname from pg_extension")}
    return [name for name in SCORING_EXTENSIONS if name not in installed]


def suggest_matches(
    config: Mapping[str, Any], *, dsn: str | None = None, run: RunIdentity | None = None
) -> dict[str, Any]:
    """Score the accounts the rules left unmatched and refresh the steward's queue; a summary with counts and
    seconds per step."""
    started = time.perf_counter()
    params = suggestion_parameters(config, run.run_id if run else None)
    timer = StepTimer()
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn, conn.transaction():
        missing = missing_scoring_extensions(conn)
        if missing:
            # Suggestions are an aid to the steward, not a link: the pipeline goes on without them.
            reason = (
                f"identity suggestions skipped: the warehouse lacks the PostgreSQL extension(s) "
                f"{', '.join(missing)}; next step: install PostgreSQL contrib on the warehouse server, then "
                "run the migrations (python -m turnover_signals.warehouse migrate), which create them"
            )
            log.warning("%s", reason)
            return {"skipped": reason, **queue_counts(conn)}
        # after resolution and never beside it: the stage reads what a run published
        conn.execute("select pg_advisory_xact_lock(%s)", (IDENTITY_LOCK_ID,))
        # the email blocking joins a million one-deletion variants of the held local parts: sorted or hashed
        # in memory rather than spilled to disk (the setting ends with the transaction)
        conn.execute("set local work_mem = '64MB'")
        with timer.step("score"):
            pairs = score_candidates(conn, params)
            accounts = conn.execute(
                "select count(distinct lms_user_id) from identity_suggestion_candidate"
            ).fetchone()[0]
        with timer.step("queue"):
            changes = refresh_queue(conn, params)
        counts = queue_counts(conn)
    timer.seconds["total"] = round(time.perf_counter() - started, 3)
    summary = {
        "accounts_scored": accounts,
        "pairs_scored": pairs,
        **changes,
        **counts,
        "seconds": timer.seconds,
    }
    log.info("identity suggestions: %s", summary)
    return summary
