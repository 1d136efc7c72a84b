"""Resolve identities in SQL: stable employee keys, LMS account matches and the identifier map.

One run is one transaction. It rebuilds the normalized inputs (`core.identity_employment`,
`core.identity_work_email`, `core.identity_lms_account`, `core.identity_learner`) for what
changed, assigns keys (`core.employee_key_registry`, `core.hris_employee_key`), matches LMS users
(`core.lms_account_match`), rebuilds `core.employee_identity` and the exceptions
(`audit.identity_exception`), then gates the result with Great Expectations; each relation is built by
its file `include/sql/<schema>/<name>.sql`. Only a passing result is committed; otherwise the previous
identity layer stays served and the task fails naming the top reasons for misses.

A run is incremental when an earlier run succeeded with the same rule version: its scope is
what changed since (HR rows known or closed later, employees gone from the HR history, directory
versions extracted later, new xAPI actors in activity loaded later, every identifier a steward
decision names, active or withdrawn), closed over the SSO GUIDs, emails and keys they share, so
that everything a change can affect is recomputed and nothing else is. `full=True` recomputes all.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from turnover_signals.errors import BadInputError
from turnover_signals.lms.activity import activity_high_water
from turnover_signals.quality.gate import RunIdentity, record_validation, run_suite
from turnover_signals.sqlfiles import insert_from_select, read_sql
from turnover_signals.warehouse import analyze_table, sqlalchemy_url, warehouse_connection

log = logging.getLogger(__name__)

# Serializes identity runs (a second run waits rather than interleaving key issuance).
IDENTITY_LOCK_ID = 7_100_500


@dataclass(frozen=True)
class IdentityScope:
    """What a run recomputes; `None` everywhere means everything (a full run)."""

    employee_ids: list[str] | None
    lms_user_ids: list[str] | None
    learner_identifiers: list[str] | None

    @property
    def is_full(self) -> bool:
        return self.employee_ids is None

    def sizes(self, conn: psycopg.Connection) -> dict[str, int]:
        if not self.is_full:
            return {
                "scope_employees": len(self.employee_ids or []),
                "scope_lms_users": len(self.lms_user_ids or []),
                "scope_learners": len(self.learner_identifiers or []),
            }
        row = conn.execute(
            "select (select count(*) from core.identity_employment), (select count(*) from "
            "core.identity_lms_account), (select count(*) from core.identity_learner)"
        ).fetchone()
        return dict(zip(("scope_employees", "scope_lms_users", "scope_learners"), row, strict=True))


def matching_parameters(config: Mapping[str, Any]) -> dict[str, Any]:
    """The identity settings the SQL reads, from the `identity` section of the config."""
    identity = config["identity"]
    return {
        "corporate_domains": [d.strip().lower() for d in identity["corporate_domains"]],
        "domain_aliases": Jsonb(
            {k.strip().lower(): v.strip().lower() for k, v in identity["domain_aliases"].items()}
        ),
        "strip_plus_aliases": bool(identity["strip_plus_aliases"]),
        "rule_version": int(identity["rule_version"]),
        "created_before_hire_grace_days": int(identity["account_created_before_hire_grace_days"]),
    }


def _scope_parameters(scope: IdentityScope) -> dict[str, Any]:
    return {
        "employee_ids": scope.employee_ids,
        "lms_user_ids": scope.lms_user_ids,
        "learner_identifiers": scope.learner_identifiers,
    }


def _ids(conn: psycopg.Connection, query: str, params: Mapping[str, Any] | None = None) -> set[str]:
    return {row[0] for row in conn.execute(query, params).fetchall() if row[0] is not None}


# -- what a run covers ------------------------------------------------------------------------


def high_water_marks(conn: psycopg.Connection, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """How far the inputs reach now; stored with the run so the next one starts from here.

    New xAPI actors are looked for in the activity loaded after this run's load-time mark, not stored
    after its stored-time mark: the loader re-reads `lms.since_overlap_days` before its watermark (and a
    lowered watermark re-reads a period), so a statement can arrive stored before activity this run saw.
    The mark is exact: a row's `loaded_at` is its publishing transaction's start, and publishing is
    serial (one extraction at a time, chunks one after another), so a chunk not yet committed when the
    mark is read started after every committed one and is above the mark. The activity marks are read
    above `previous` run's (any earlier run, whatever its rules): only what was published since is scanned.
    """
    previous = previous or {}
    stored = activity_high_water(conn, "stored_at", previous.get("lms_activity_stored_high_water"))
    loaded = activity_high_water(conn, "loaded_at", previous.get("lms_activity_loaded_high_water"))
    row = conn.execute(
        """
        select
            (select max(known_at) from core.employee_history),
            (select max(file_date) from audit.file_manifest where feed = 'employees' and status = 'loaded'),
            (select max(extracted_at) from raw.lms_user),
            %(stored)s::timestamptz,
            %(loaded)s::timestamptz,
            -- every decision and whether it is still active: a withdrawal changes no timestamp
            (select md5(coalesce(string_agg(override_id || ':' || is_active, ',' order by override_id), ''))
             from audit.identity_override)
        """,
        {"stored": stored, "loaded": loaded},
    ).fetchone()
    names = (
        "hris_known_at_high_water",
        "hris_snapshot_date_high_water",
        "lms_user_extracted_high_water",
        "lms_activity_stored_high_water",
        "lms_activity_loaded_high_water",
        "override_digest",
    )
    return dict(zip(names, row, strict=True))


def previous_run(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The last successful run, whose high-water marks bound an incremental run."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            """
            select * from audit.identity_reconciliation
            where success order by finished_at desc limit 1
            """
        )
        return cur.fetchone()


def reason_to_skip(config: Mapping[str, Any], dsn: str | None = None, full: bool = False) -> str | None:
    """Why a run would publish nothing worth publishing now (None: run it).

    - No HR history yet: every LMS user would be unmatched and the gate would fail, although that is
      the normal state of a first install whose HRIS backlog is still loading.
    - Nothing it reads changed since the last successful run (the same matching rules, no HR row known
      or closed later, no LMS user extracted since, no steward decision made or withdrawn, no activity
      from a learner not seen before): the published layer would be the same, and skipping keeps the
      hourly LMS runs from re-triggering the features.
    """
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        if not conn.execute("select exists (select from core.employee_history)").fetchone()[0]:
            return (
                "no HR history yet (core.employee_history is empty): the HRIS files are not loaded and built "
                "yet, e.g. a first install's backlog is still loading in hris_sftp_ingest; identity runs "
                "when that run publishes the HR history"
            )
        if full:
            return None
        previous = previous_run(conn)
        params = matching_parameters(config)
        if previous is None or previous["rule_version"] != params["rule_version"]:
            return None
        marks = high_water_marks(conn, previous)
        # statements from learners already known change no link: the activity marks are checked below
        inputs = (
            "hris_known_at_high_water",
            "hris_snapshot_date_high_water",
            "lms_user_extracted_high_water",
            "override_digest",
        )
        if any(marks[name] != previous[name] for name in inputs):
            return None
        new_learner = conn.execute(
            sql.SQL(
                "select exists (select from ({}) as built where not exists (select from "
                "core.identity_learner as known where known.learner_identifier = built.learner_identifier))"
            ).format(sql.SQL(read_sql("core", "identity_learner"))),
            {**params, "loaded_after": previous["lms_activity_loaded_high_water"]},
        ).fetchone()[0]
        if new_learner:
            return None
        return (
            f"nothing identity reads changed since run {previous['run_id']}: no HR row, LMS user or steward "
            "decision, and no activity from a learner not seen before; the published identity layer stands"
        )


def changed_inputs(conn: psycopg.Connection, previous: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """HRIS employees and LMS users a run must recompute: source rows changed since `previous`, plus
    employees gone from the HR history and everything a steward decision names.

    Every identifier with a steward decision, active or withdrawn, is in every run's scope, as are the
    employees holding a key a decision names: a withdrawal changes no timestamp, a decision committed
    while a run was going would fall before the next run's `finished_at`, and the table is small.
    An employee no longer in `core.employee_history` (an HR correction superseded the only file that had
    them) is scoped so that their rows go, as a full rebuild would remove them.
    """
    employees = _ids(
        conn,
        """
        select distinct employee_id from core.employee_history
        where known_at > %(known)s or valid_to > %(snapshot)s
        union
        select employment.hris_employee_id from core.identity_employment as employment
        where not exists (select from core.employee_history as history
                          where history.employee_id = employment.hris_employee_id)
        union
        select identifier_value from audit.identity_override where identifier_type = 'hris_employee_id'
        union
        select holder.hris_employee_id from core.hris_employee_key as holder
        where holder.employee_key in (select employee_key from audit.identity_override)
        """,
        {
            "known": previous["hris_known_at_high_water"] or "-infinity",
            "snapshot": previous["hris_snapshot_date_high_water"] or "-infinity",
        },
    )
    accounts = _ids(
        conn,
        """
        select lms_user_id from raw.lms_user where extracted_at > %(extracted)s
        union
        select identifier_value from audit.identity_override where identifier_type = 'lms_user_id'
        """,
        {"extracted": previous["lms_user_extracted_high_water"] or "-infinity"},
    )
    return employees, accounts


def _identifiers_of(
    conn: psycopg.Connection, employees: set[str], accounts: set[str]
) -> tuple[set[str], set[str]]:
    """The SSO GUIDs and normalized emails the given employees and LMS users hold (as currently derived)."""
    params = {"employees": list(employees), "accounts": list(accounts)}
    guids = _ids(
        conn,
        """
        select sso_guid from core.identity_employment where hris_employee_id = any(%(employees)s)
        union
        select external_id_normalized from core.identity_lms_account where lms_user_id = any(%(accounts)s)
        """,
        params,
    )
    emails = _ids(
        conn,
        """
        select email_normalized from core.identity_work_email where hris_employee_id = any(%(employees)s)
        union
        select email_normalized from core.identity_lms_account where lms_user_id = any(%(accounts)s)
        union
        select primary_email_normalized from core.identity_lms_account where lms_user_id = any(%(accounts)s)
        """,
        params,
    )
    return guids, emails


def close_scope(
    conn: psycopg.Connection,
    changed_employees: set[str],
    changed_accounts: set[str],
    new_learners: set[str],
    identifiers_before: tuple[set[str], set[str]],
) -> IdentityScope:
    """Everything a change can affect: peers sharing a GUID, an email or a key, and their accounts and
    actors."""
    guids_after, emails_after = _identifiers_of(conn, changed_employees, changed_accounts)
    guids = identifiers_before[0] | guids_after
    emails = identifiers_before[1] | emails_after
    params: dict[str, Any] = {
        "employees": list(changed_employees),
        "accounts": list(changed_accounts),
        "guids": list(guids),
        "emails": list(emails),
    }
    employees = changed_employees | _ids(
        conn,
        """
        select hris_employee_id from core.identity_employment where sso_guid = any(%(guids)s)
        union
        select hris_employee_id from core.identity_work_email where email_normalized = any(%(emails)s)
        union
        select peer.hris_employee_id from core.hris_employee_key as peer
        inner join core.hris_employee_key as changed on peer.employee_key = changed.employee_key
        where changed.hris_employee_id = any(%(employees)s)
        union
        select hris_employee_id from core.lms_account_match where lms_user_id = any(%(accounts)s)
        union
        select hris_employee_id from core.identity_employment where lms_user_id = any(%(accounts)s)
        """,
        params,
    )
    params["employees"] = list(employees)
    # Every address the scoped employees hold: their mbox actors are rebuilt with them.
    held_guids, held_emails = _identifiers_of(conn, employees, set())
    guids |= held_guids
    emails |= held_emails
    params["emails"] = list(emails)
    params["guids"] = list(guids)
    accounts = changed_accounts | _ids(
        conn,
        """
        select lms_user_id from core.identity_lms_account where external_id_normalized = any(%(guids)s)
        union
        select lms_user_id from core.identity_lms_account where email_normalized = any(%(emails)s)
        union
        select lms_user_id from core.identity_lms_account where primary_email_normalized = any(%(emails)s)
        union
        select lms_user_id from core.lms_account_match where hris_employee_id = any(%(employees)s)
        union
        select lms_user_id from core.identity_employment where hris_employee_id = any(%(employees)s)
        union
        -- accounts matched to the person (GUID, steward) have rows in each of their employments
        select account_match.lms_user_id from core.lms_account_match as account_match
        inner join core.hris_employee_key as holder on account_match.employee_key = holder.employee_key
        where holder.hris_employee_id = any(%(employees)s)
          and account_match.match_method in ('sso_guid', 'steward_override')
        """,
        params,
    )
    params["accounts"] = list(accounts)
    learners = new_learners | _ids(
        conn,
        """
        select learner_identifier from core.identity_learner where account_name = any(%(accounts)s)
        union
        select learner_identifier from core.identity_learner where email_normalized = any(%(emails)s)
        union
        select learner.learner_identifier from core.identity_learner as learner
        inner join core.identity_work_email as work_email on learner.mbox_sha1sum = work_email.mbox_sha1sum
        where work_email.hris_employee_id = any(%(employees)s)
        union
        select learner_identifier from core.identity_learner where lower(account_name) = any(%(guids)s)
        union
        select identifier_value from core.employee_identity
        where identifier_type = 'xapi_actor'
          and (hris_employee_id = any(%(employees)s) or lms_user_id = any(%(accounts)s))
        """,
        params,
    )
    return IdentityScope(sorted(employees), sorted(accounts), sorted(learners))


# -- building ---------------------------------------------------------------------------------


def _replace_rows(
    conn: psycopg.Connection,
    table: str,
    key_column: str,
    keys: Sequence[str] | None,
    params: Mapping[str, Any],
    source_layer: str = "core",
) -> int:
    """Replace the rows of `core.<table>` whose `key_column` is in `keys` (all when None) with its SQL."""
    target = sql.Identifier("core", table)
    if keys is None:
        conn.execute(sql.SQL("delete from {}").format(target))
    else:
        conn.execute(
            sql.SQL("delete from {} where {} = any(%s)").format(target, sql.Identifier(key_column)), (keys,)
        )
    return insert_from_select(conn, target, read_sql(source_layer, table), params)


def refresh_inputs(
    conn: psycopg.Connection,
    params: Mapping[str, Any],
    employees: Sequence[str] | None,
    accounts: Sequence[str] | None,
    loaded_after: Any,
) -> set[str]:
    """Re-derive the normalized inputs for the given employees and LMS users; returns new xAPI actors.

    Actors are looked for in the activity loaded after `loaded_after` (all activity when None).
    """
    scoped = {**params, "employee_ids": employees, "lms_user_ids": accounts}
    _replace_rows(conn, "identity_employment", "hris_employee_id", employees, scoped)
    _replace_rows(conn, "identity_work_email", "hris_employee_id", employees, scoped)
    fill_mbox_sha1sums(conn)
    _replace_rows(conn, "identity_lms_account", "lms_user_id", accounts, scoped)
    if employees is None:
        conn.execute("delete from core.identity_learner")
    with conn.cursor() as cur:
        cur.execute(
            # Known identifiers are skipped through the primary key: an anti-join against the table
            # being filled was planned as a nested loop over its growing heap (quadratic on a full run).
            sql.SQL(
                "insert into core.identity_learner select * from ({}) as built"
                " on conflict (learner_identifier) do nothing returning learner_identifier"
            ).format(sql.SQL(read_sql("core", "identity_learner"))),
            {**params, "loaded_after": loaded_after},
        )
        return {row[0] for row in cur.fetchall()}


def fill_mbox_sha1sums(conn: psycopg.Connection) -> int:
    """Hash new work emails as xAPI `mbox_sha1sum` does (sha1 of `mailto:<address>`)."""
    addresses = [
        row[0]
        for row in conn.execute(
            "select distinct email_normalized from core.identity_work_email where mbox_sha1sum is null"
        ).fetchall()
    ]
    if not addresses:
        return 0
    conn.execute(
        "create temp table if not exists email_sha1 (email_normalized text, mbox_sha1sum text) on commit drop"
    )
    with conn.cursor() as cur:
        with cur.copy("copy email_sha1 from stdin") as copy:
            for address in addresses:
                digest = hashlib.sha1(f"mailto:{address}".encode(), usedforsecurity=False).hexdigest()
                copy.write_row((address, digest))
        cur.execute(
            """
            update core.identity_work_email as work_email set mbox_sha1sum = hashed.mbox_sha1sum
            from email_sha1 as hashed
            where work_email.email_normalized = hashed.email_normalized and work_email.mbox_sha1sum is null
            """
        )
        updated = cur.rowcount
        cur.execute("truncate email_sha1")
    return updated


def analyze_after_full_rebuild(conn: psycopg.Connection, scope: IdentityScope, *tables: str) -> None:
    """Refresh the planner's statistics of tables a full run just emptied and refilled (in its transaction).

    Plans made on the statistics of the old (at first, empty) contents pick nested loops over
    hundreds of thousands of rows; an incremental run changes too little to need this. The tables
    belong to the owner, so a transformer login analyzes them through `analyze_table`.
    """
    if scope.is_full:
        for table in tables:
            analyze_table(conn, *table.split("."))


def assign_employee_keys(
    conn: psycopg.Connection, params: Mapping[str, Any], run_id: str | None
) -> dict[str, int]:
    """Give every scoped HRIS employee its key: a steward's, its rehire group's, its own, or a new one.

    The run's key plan (`include/sql/staging/identity_key_plan.sql`) decides each key and numbers the new
    ones; the registry gains the new keys, `core.hris_employee_key` the changed assignments, and a key
    nobody holds any more is marked merged, never reissued.
    """
    conn.execute("drop table if exists identity_key_plan")
    conn.execute(
        sql.SQL("create temp table identity_key_plan on commit drop as {}").format(
            sql.SQL(read_sql("staging", "identity_key_plan"))
        ),
        params,
    )
    conn.execute("analyze identity_key_plan")
    unknown = conn.execute(
        """
        select count(*) from identity_key_plan as plan
        where override_employee_key is not null
          and not exists (select from core.employee_key_registry as registry
                          where registry.employee_key = plan.override_employee_key)
        """
    ).fetchone()[0]
    if unknown:
        raise BadInputError(
            subject="audit.identity_override",
            problem=f"{unknown} steward decision(s) name an employee_key that was never issued",
            next_step=(
                "correct the employee_key of those decisions (or deactivate them) "
                "and rerun resolve_identities"
            ),
            runbook_section="identity_resolution",
        )
    issued = insert_from_select(
        conn,
        sql.Identifier("core", "employee_key_registry"),
        read_sql("core", "employee_key_registry"),
        {"run_id": run_id},
    )
    changed = conn.execute(
        sql.SQL(
            """
            insert into core.hris_employee_key as current (
                hris_employee_id, employee_key, match_method, rule_version, linked_to_hris_employee_id,
                assigned_at)
            select hris_employee_id, employee_key, match_method, rule_version, linked_to_hris_employee_id,
                assigned_at
            from ({}) as built
            on conflict (hris_employee_id) do update set
                employee_key = excluded.employee_key,
                match_method = excluded.match_method,
                rule_version = excluded.rule_version,
                linked_to_hris_employee_id = excluded.linked_to_hris_employee_id,
                assigned_at = excluded.assigned_at
            where (current.employee_key, current.match_method, current.rule_version,
                current.linked_to_hris_employee_id)
                is distinct from (excluded.employee_key, excluded.match_method, excluded.rule_version,
                                  excluded.linked_to_hris_employee_id)
            """
        ).format(sql.SQL(read_sql("core", "hris_employee_key"))),
        params,
    ).rowcount
    # Bookkeeping on the registry, which only ever grows: a key its holders left points on to their new one.
    merged = conn.execute(
        """
        update core.employee_key_registry as registry
        set merged_into_employee_key = plan.employee_key, merged_at = now()
        from identity_key_plan as plan
        where plan.existing_employee_key = registry.employee_key
          and plan.employee_key <> plan.existing_employee_key
          and registry.merged_into_employee_key is null
          and not exists (select from core.hris_employee_key as holder
              where holder.employee_key = registry.employee_key)
        """
    ).rowcount
    return {"keys_issued": issued, "key_assignments_changed": changed, "keys_merged": merged}


def rebuild_identity_map(conn: psycopg.Connection, params: Mapping[str, Any], scope: IdentityScope) -> int:
    """Replace the scoped rows of `core.lms_account_match` and `core.employee_identity`."""
    scoped = {**params, **_scope_parameters(scope)}
    _replace_rows(conn, "lms_account_match", "lms_user_id", scope.lms_user_ids, scoped)
    analyze_after_full_rebuild(conn, scope, "core.lms_account_match")
    if scope.is_full:
        conn.execute("delete from core.employee_identity")
    else:
        conn.execute(
            """
            delete from core.employee_identity
            where hris_employee_id = any(%(employee_ids)s) or lms_user_id = any(%(lms_user_ids)s)
               or (identifier_type = 'xapi_actor' and identifier_value = any(%(learner_identifiers)s))
            """,
            scoped,
        )
    return insert_from_select(
        conn, sql.Identifier("core", "employee_identity"), read_sql("core", "employee_identity"), scoped
    )


def refresh_exceptions(conn: psycopg.Connection, scope: IdentityScope, run_id: str | None) -> dict[str, int]:
    """Open newly detected conflicts, keep known ones, and close those in scope no longer detected."""
    conn.execute("drop table if exists identity_exception_detected")
    conn.execute(
        sql.SQL("create temp table identity_exception_detected on commit drop as {}").format(
            sql.SQL(read_sql("staging", "identity_exception_detected"))
        ),
        _scope_parameters(scope),
    )
    opened = conn.execute(
        sql.SQL(
            """
            insert into audit.identity_exception as known (
                exception_id, kind, status, hris_employee_ids, lms_user_ids, employee_keys, evidence,
                first_seen_at, first_seen_run_id)
            select exception_id, kind, status, hris_employee_ids, lms_user_ids, employee_keys, evidence,
                first_seen_at, first_seen_run_id
            from ({}) as built
            on conflict (exception_id) do update set
                evidence = excluded.evidence,
                status = case when known.resolution = 'no longer detected' then 'open' else known.status end,
                resolved_at = case when known.resolution = 'no longer detected' then null
                    else known.resolved_at end,
                resolution = case when known.resolution = 'no longer detected' then null
                    else known.resolution end
            where known.evidence is distinct from excluded.evidence or known.resolution = 'no longer detected'
            """
        ).format(sql.SQL(read_sql("audit", "identity_exception"))),
        {"run_id": run_id},
    ).rowcount
    # Bookkeeping: a conflict in scope that is no longer detected is closed, never deleted.
    closed = conn.execute(
        """
        update audit.identity_exception as known
        set status = 'resolved', resolved_at = now(), resolution = 'no longer detected'
        where known.status = 'open'
          and not exists (select from identity_exception_detected as detected
                          where detected.exception_id = known.exception_id)
          and (%(employee_ids)s::text[] is null
               or known.hris_employee_ids && %(employee_ids)s::text[]
               or known.lms_user_ids && %(lms_user_ids)s::text[])
        """,
        _scope_parameters(scope),
    ).rowcount
    return {"exceptions_opened_or_updated": opened, "exceptions_closed": closed}


# -- checks, gate and reconciliation ------------------------------------------------------------


def reconciliation_metrics(conn: psycopg.Connection, scope: IdentityScope) -> dict[str, Any]:
    """Headcounts, match rates, attributable statements, open exceptions and the gate's invariants."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            sql.SQL("select * from ({}) as metrics").format(
                sql.SQL(read_sql("audit", "identity_reconciliation"))
            ),
            _scope_parameters(scope),
        )
        return dict(cur.fetchone())


def identity_suite(config: Mapping[str, Any]):
    """The Great Expectations suite on a run's reconciliation metrics (one row)."""
    import great_expectations.expectations as gxe

    from turnover_signals.quality.gate import SuiteDefinition, described

    threshold = float(config["identity"]["min_active_lms_match_rate"])
    return SuiteDefinition(
        name="identity_resolution",
        version="1",
        expectations=[
            described(
                gxe.ExpectColumnPairValuesToBeEqual(
                    column_A="hris_headcount", column_B="canonical_headcount"
                ),
                "every HRIS employee has exactly one employee_key (headcount reconciles)",
            ),
            described(
                gxe.ExpectColumnValuesToBeBetween(
                    column="employees_with_several_keys", min_value=0, max_value=0
                ),
                "no HRIS employee_id maps to two employee_keys",
            ),
            described(
                gxe.ExpectColumnValuesToBeBetween(
                    column="identifiers_owned_by_two_keys", min_value=0, max_value=0
                ),
                "no identifier is owned by two employee_keys at the same time",
            ),
            described(
                gxe.ExpectColumnValuesToBeBetween(
                    column="active_corporate_match_rate", min_value=threshold, max_value=1
                ),
                f"at least {threshold:.1%} of active LMS users with a corporate identifier are matched",
            ),
        ],
    )


GATE_COLUMNS = (
    "hris_headcount",
    "canonical_headcount",
    "employees_with_several_keys",
    "identifiers_owned_by_two_keys",
    "active_corporate_match_rate",
)


def gate_metrics(
    config: Mapping[str, Any], metrics: Mapping[str, Any], run_id: str | None, dsn: str | None
) -> Any:
    """Validate the metrics with GX from a committed one-row staging table (GX has its own connection)."""
    conn_id = config["connections"]["warehouse"]
    table = f"identity_checks_{uuid.uuid4().hex[:12]}"
    target = sql.Identifier("staging", table)
    with warehouse_connection(conn_id, dsn) as side:
        side.execute(
            sql.SQL(
                "create table {} (hris_headcount integer, canonical_headcount integer,"
                " employees_with_several_keys integer, identifiers_owned_by_two_keys integer,"
                " active_corporate_match_rate numeric)"
            ).format(target)
        )
        try:
            side.execute(
                sql.SQL("insert into {} values (%s, %s, %s, %s, %s)").format(target),
                [metrics[c] for c in GATE_COLUMNS],
            )
            return run_suite(
                sqlalchemy_url(conn_id, dsn),
                identity_suite(config),
                data_asset="identity_resolution_checks",
                batch_identifier=f"identity:{run_id or 'manual'}",
                table=("staging", table),
                data_docs_dir=config["quality"]["data_docs_dir"],
            )
        finally:
            side.execute(sql.SQL("drop table if exists {}").format(target))


def top_unmatched_reasons(metrics: Mapping[str, Any], limit: int = 3) -> str:
    reasons = sorted((metrics.get("lms_users_unmatched_by_reason") or {}).items(), key=lambda kv: -kv[1])[
        :limit
    ]
    return ", ".join(f"{reason} ({count})" for reason, count in reasons) or "none"


RECONCILIATION_COLUMNS = (
    "run_id",
    "mode",
    "rule_version",
    "hris_headcount",
    "canonical_headcount",
    "employee_keys",
    "lms_users",
    "lms_users_matched",
    "lms_users_unmatched_by_reason",
    "lms_users_matched_by_method",
    "active_lms_users",
    "active_match_rate",
    "active_corporate_lms_users",
    "active_corporate_match_rate",
    "statements",
    "statements_attributable",
    "open_exceptions_by_kind",
    "scope_employees",
    "scope_lms_users",
    "scope_learners",
    "hris_known_at_high_water",
    "hris_snapshot_date_high_water",
    "lms_user_extracted_high_water",
    "lms_activity_stored_high_water",
    "lms_activity_loaded_high_water",
    "override_digest",
    "validation_id",
    "success",
)
JSON_COLUMNS = {"lms_users_unmatched_by_reason", "lms_users_matched_by_method", "open_exceptions_by_kind"}


def record_reconciliation(conn: psycopg.Connection, row: Mapping[str, Any]) -> None:
    values = [Jsonb(row[c]) if c in JSON_COLUMNS else row[c] for c in RECONCILIATION_COLUMNS]
    columns = sql.SQL(", ").join(map(sql.Identifier, RECONCILIATION_COLUMNS))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c))
        for c in RECONCILIATION_COLUMNS
        if c != "run_id"
    )
    conn.execute(
        sql.SQL(
            "insert into audit.identity_reconciliation ({}, finished_at) values ({}, now())"
            " on conflict (run_id) do update set {}, finished_at = excluded.finished_at"
        ).format(columns, sql.SQL(", ").join(sql.Placeholder() * len(values)), updates),
        values,
    )


class StepTimer:
    """Seconds per step of a run, for the log, the task result and the benchmark."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 3)


# -- the task ---------------------------------------------------------------------------------


def resolve_identities(
    config: Mapping[str, Any], run: RunIdentity | None = None, dsn: str | None = None, full: bool = False
) -> dict[str, Any]:
    """Resolve identities (incrementally when possible), gate the result and publish it atomically."""
    run = run or RunIdentity()
    run_id = run.run_id or f"manual__{uuid.uuid4().hex[:12]}"
    params = matching_parameters(config)
    conn_id = config["connections"]["warehouse"]
    with warehouse_connection(conn_id, dsn) as conn:
        try:
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(%s)", (IDENTITY_LOCK_ID,))
                timer = StepTimer()
                last_run = previous_run(conn)
                marks = high_water_marks(conn, last_run)
                previous = None if full else last_run
                if previous is not None and previous["rule_version"] != params["rule_version"]:
                    previous = None  # new matching rules: everything is matched again
                with timer.step("inputs"):
                    if previous is None:
                        refresh_inputs(conn, params, None, None, None)
                        scope = IdentityScope(None, None, None)
                    else:
                        employees, accounts = changed_inputs(conn, previous)
                        before = _identifiers_of(conn, employees, accounts)
                        new_learners = refresh_inputs(
                            conn,
                            params,
                            employees=sorted(employees),
                            accounts=sorted(accounts),
                            loaded_after=previous["lms_activity_loaded_high_water"],
                        )
                        scope = close_scope(conn, employees, accounts, new_learners, before)
                    analyze_after_full_rebuild(
                        conn,
                        scope,
                        "core.identity_employment",
                        "core.identity_work_email",
                        "core.identity_lms_account",
                        "core.identity_learner",
                    )
                # Keys first for the whole scope (a GUID peer may need relinking), then the map.
                with timer.step("keys"):
                    keys = assign_employee_keys(conn, {**params, "employee_ids": scope.employee_ids}, run_id)
                    analyze_after_full_rebuild(
                        conn, scope, "core.hris_employee_key", "core.employee_key_registry"
                    )
                with timer.step("identity_map"):
                    identity_rows = rebuild_identity_map(conn, params, scope)
                    analyze_after_full_rebuild(conn, scope, "core.employee_identity")
                with timer.step("exceptions"):
                    exceptions = refresh_exceptions(conn, scope, run_id)
                with timer.step("reconciliation"):
                    metrics = reconciliation_metrics(conn, scope)
                with timer.step("gate"):
                    outcome = gate_metrics(config, metrics, run_id, dsn)
                row = {
                    **metrics,
                    **marks,
                    **scope.sizes(conn),
                    "run_id": run_id,
                    "mode": "full" if scope.is_full else "incremental",
                    "rule_version": params["rule_version"],
                    "validation_id": outcome.validation_id,
                    "success": outcome.success,
                }
                if not outcome.success:
                    raise _GateFailed(outcome, row)
                record_validation(conn, outcome, run)
                record_reconciliation(conn, row)
        except _GateFailed as failed:
            # The transaction rolled back: the last good identity layer stays served. Record why.
            with conn.transaction():
                record_validation(conn, failed.outcome, run)
                record_reconciliation(conn, failed.row)
            raise BadInputError(
                subject=f"identity resolution run {run_id}",
                problem=(
                    f"the identity gate failed ({failed.outcome.failure_summary()}); top reasons for "
                    f"unmatched LMS users: {top_unmatched_reasons(failed.row)}; nothing was published"
                ),
                next_step=(
                    "review audit.identity_exception and core.lms_account_match for those reasons, fix the "
                    "source data or record steward decisions in audit.identity_override, then clear "
                    "resolve_identities"
                ),
                runbook_section="identity_resolution",
            ) from None
    summary = {
        "mode": row["mode"],
        **keys,
        "identity_rows_written": identity_rows,
        **exceptions,
        "seconds": timer.seconds,
        **{
            k: row[k]
            for k in (
                "scope_employees",
                "scope_lms_users",
                "scope_learners",
                "hris_headcount",
                "canonical_headcount",
                "lms_users",
                "lms_users_matched",
                "active_match_rate",
                "active_corporate_match_rate",
                "statements",
                "statements_attributable",
            )
        },
    }
    log.info(
        "identity resolved: %s", {k: (float(v) if hasattr(v, "is_finite") else v) for k, v in summary.items()}
    )
    return summary


class _GateFailed(Exception):
    def __init__(self, outcome: Any, row: Mapping[str, Any]) -> None:
        super().__init__(outcome.suite_name)
        self.outcome = outcome
        self.row = row
