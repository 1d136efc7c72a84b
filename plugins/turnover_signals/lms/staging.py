"""The staging tables of xAPI extractions, and the lock that says which extraction holds them.

Every extraction (the hourly task's batch, a backfill slice, the voided statements a backfill recovers)
stages its chunks in `staging.lms_batch_<batch id>_<chunk>__checks`. A batch id is a function of the run
identity (DAG run and task), so a second attempt of the same task instance (a zombie and its retry, a task
cleared while it still runs) names the same tables. So a session holds the extraction's advisory lock
before it creates, reads or drops any of them, and a second attempt waits for it
(`lms.extraction_lock_wait_seconds`), then fails saying who holds it, instead of dropping the first
attempt's tables under it.

An extraction whose session ended before it dropped its tables (a warehouse restart, a killed worker)
leaves them behind: at its start, the hourly extraction drops every such table whose lock nobody holds and
that no staged backfill slice still waits to publish (`drop_orphan_staging_tables`), and counts them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from turnover_signals.errors import SourceUnavailableError

log = logging.getLogger(__name__)

# The first key of the two-key advisory locks (`pg_advisory_lock(int, int)`) taken here; the second is the
# batch id's hash. The two-key form has its own key space: it cannot meet the one-key locks of the
# migrations and of statement publishing.
EXTRACTION_LOCK_SPACE = 74_207_312
DEFAULT_LOCK_WAIT_SECONDS = 300.0
CHECKS_TABLE = re.compile(r"^lms_batch_(?P<batch_id>.+)_(?P<chunk>[0-9]+)__checks$")
RUNBOOK = "lms-extraction-busy"


def checks_table_name(batch_id: str, number: int) -> str:
    """The staging table of chunk `number` of extraction `batch_id` (unique per batch id and chunk)."""
    return f"lms_batch_{batch_id}_{number}__checks"


def try_lock_extraction(conn: psycopg.Connection, batch_id: str) -> bool:
    """Take extraction `batch_id`'s lock for this session if nobody else holds it (re-entrant)."""
    return conn.execute(
        "select pg_try_advisory_lock(%s, hashtext(%s))", (EXTRACTION_LOCK_SPACE, batch_id)
    ).fetchone()[0]


def unlock_extraction(conn: psycopg.Connection, batch_id: str) -> None:
    conn.execute("select pg_advisory_unlock(%s, hashtext(%s))", (EXTRACTION_LOCK_SPACE, batch_id))


def lock_holder(conn: psycopg.Connection, batch_id: str) -> str:
    """Who holds extraction `batch_id`'s lock, as an operator finds it in pg_stat_activity."""
    row = conn.execute(
        """
        select l.pid, a.backend_start, a.application_name
        from pg_locks as l left join pg_stat_activity as a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and l.objsubid = 2
          and l.database = (select oid from pg_database where datname = current_database())
          and l.classid = %s::oid and l.objid = hashtext(%s)::oid
        """,
        (EXTRACTION_LOCK_SPACE, batch_id),
    ).fetchone()
    if row is None:
        return "a session that has just ended"
    pid, since, application = row
    started = f", connected since {since:%Y-%m-%d %H:%M:%S %Z}" if since else ""
    named = f", application {application!r}" if application else ""
    return f"backend pid {pid}{named}{started}"


@contextmanager
def extraction_lock(
    conn: psycopg.Connection, batch_id: str, *, subject: str, wait_seconds: float, rerun: str
) -> Iterator[None]:
    """Hold extraction `batch_id`'s lock on `conn` for the block; wait up to `wait_seconds` for another
    attempt to release it, then raise SourceUnavailableError naming its session (`rerun`: how to run this
    one again)."""
    deadline = time.monotonic() + max(0.0, wait_seconds)
    waited = False
    while not try_lock_extraction(conn, batch_id):
        holder = lock_holder(conn, batch_id)
        if time.monotonic() >= deadline:
            raise SourceUnavailableError(
                subject=subject,
                problem=(
                    f"another attempt with the same run identity is extracting it: {holder} holds its lock "
                    f"(waited {wait_seconds:g} s); this attempt touched nothing"
                ),
                next_step=(
                    f"let that attempt finish, then {rerun}; if it is not running any more (its worker "
                    "died but its warehouse session lingers), end that session with "
                    "select pg_terminate_backend(<pid>) first"
                ),
                runbook_section=RUNBOOK,
            )
        if not waited:
            log.warning(
                "%s: another attempt with the same run identity holds the extraction lock (%s): waiting up "
                "to %g s",
                subject,
                holder,
                wait_seconds,
            )
            waited = True
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
    try:
        yield
    finally:
        # A lost session has released it already (the server ends a session's locks with it); a session left
        # inside a failed transaction by the error being raised cannot run the unlock, and releases the lock
        # when its owner closes it.
        if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            unlock_extraction(conn, batch_id)


def drop_orphan_staging_tables(conn: psycopg.Connection) -> int:
    """Drop the checks tables no live extraction holds and no staged backfill slice waits to publish;
    return how many were dropped.

    An extraction's lock is tried before its tables are looked at, and held while they are dropped: a live
    extraction keeps them, and one starting meanwhile waits for the few milliseconds this takes. A table
    this login may not drop (another login's, after a change of logins) is left with a warning.
    """
    tables: dict[str, list[str]] = {}
    for (name,) in conn.execute(
        "select tablename from pg_tables where schemaname = 'staging' and tablename like %s order by 1",
        ("lms\\_batch\\_%\\_\\_checks",),
    ).fetchall():
        match = CHECKS_TABLE.match(name)
        if match:
            tables.setdefault(match["batch_id"], []).append(name)
    dropped = 0
    for batch_id, names in tables.items():
        if not try_lock_extraction(conn, batch_id):
            continue  # a live extraction's
        try:
            # Read under the lock: a slice records itself staged before its extraction releases the lock.
            waiting = {
                row[0]
                for row in conn.execute(
                    "select unnest(chunk_tables) from audit.lms_backfill_slice where status = 'staged'"
                ).fetchall()
            }
            for name in names:
                if name not in waiting and _drop_table(conn, name):
                    dropped += 1
        finally:
            unlock_extraction(conn, batch_id)
    if dropped:
        log.info("dropped %d staging table(s) left behind by interrupted xAPI extractions", dropped)
    return dropped


def _drop_table(conn: psycopg.Connection, name: str) -> bool:
    try:
        with conn.transaction():
            conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier("staging", name)))
    except psycopg.errors.InsufficientPrivilege:
        log.warning("staging.%s was left by an interrupted extraction, but this login may not drop it", name)
        return False
    return True
