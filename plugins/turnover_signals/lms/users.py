"""The LMS user directory (SCIM 2.0) into `raw.lms_user`, one row per version of each user.

A version is identified by (SCIM id, meta.lastModified): pulling the same directory twice adds
nothing, and the identity layer can ask what the directory said on any date through
`last_modified_at` <= d < `valid_to`. Incremental with `meta.lastModified gt` when the server
supports filtering, a full pull otherwise.

Some directories serve users without `meta.lastModified`. Those are versioned by content: a pull adds
a version only when the user differs from their latest version (the resource without `meta`, compared
as canonical JSON), and the version's time is when that content was first seen: `meta.created` for a
user's first version when the directory gives it, otherwise the start of the pull that first saw it.
Only `meta.lastModified` moves the watermark, so such users never move it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import great_expectations.expectations as gxe
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from turnover_signals.errors import BadInputError
from turnover_signals.lms.statements import advance_watermark, batch_id_for, read_watermark, retry_policy
from turnover_signals.quality.gate import (
    RunIdentity,
    SuiteDefinition,
    data_docs_location,
    described,
    record_validation,
    run_suite,
)
from turnover_signals.sources.scim import ScimClient
from turnover_signals.sources.xapi import XapiTimestampError, parse_xapi_timestamp
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import sqlalchemy_url, warehouse_connection

log = logging.getLogger(__name__)

USER_COLUMNS = (
    "lms_user_id",
    "last_modified_at",
    "user_name",
    "external_id",
    "work_email",
    "primary_email",
    "emails",
    "is_active",
    "created_at",
    "resource",
)
EMAIL_SHAPE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def _timestamp(value: Any) -> datetime | None:
    try:
        return parse_xapi_timestamp(value)
    except (XapiTimestampError, ValueError):
        return None


def user_row(resource: Mapping[str, Any]) -> tuple:
    """The staging row of one SCIM User; `last_modified_at` is None when the directory gives none (the
    version's time is then decided by content when publishing)."""
    meta = resource.get("meta") or {}
    emails = [e for e in resource.get("emails") or [] if isinstance(e, Mapping) and e.get("value")]
    work = next((e["value"] for e in emails if str(e.get("type", "")).lower() == "work"), None)
    primary = next((e["value"] for e in emails if e.get("primary") is True), None)
    created = _timestamp(meta.get("created"))
    last_modified = _timestamp(meta.get("lastModified"))
    active = resource.get("active")
    return (
        str(resource.get("id") or ""),
        last_modified,
        resource.get("userName"),
        resource.get("externalId"),
        work or primary,
        primary,
        Jsonb(emails),
        active if isinstance(active, bool) else None,
        created,
        Jsonb(dict(resource)),
    )


def users_suite() -> SuiteDefinition:

    return SuiteDefinition(
        name="lms_user_batch",
        version="1",
        expectations=[
            described(gxe.ExpectColumnValuesToNotBeNull(column="lms_user_id"), "every user has a SCIM id"),
            described(
                gxe.ExpectColumnValuesToBeUnique(column="lms_user_id"), "SCIM ids are unique in a pull"
            ),
            described(gxe.ExpectColumnValuesToNotBeNull(column="is_active"), "active is a boolean"),
            described(
                gxe.ExpectColumnValuesToMatchRegex(column="work_email", regex=EMAIL_SHAPE, mostly=0.99),
                "work emails look like email addresses",
            ),
        ],
    )


def pull_description(
    source: str, mode: str, requested_after: datetime | None, newest: datetime | None, batch_id: str
) -> str:
    """What a SCIM pull validated: its lastModified range, from the filter it asked for (a full pull
    starts at the beginning) to the newest version received."""
    since = requested_after.isoformat() if mode == "incremental" and requested_after else "start"
    return (
        f"{source} {mode} pull lastModified {since} .. "
        f"{newest.isoformat() if newest else '?'} batch {batch_id}"
    )


def scim_client(config: Mapping[str, Any]) -> ScimClient:
    lms = config["lms"]
    return ScimClient(
        config["connections"]["lms_directory"],
        timeout=float(lms["request_timeout_seconds"]),
        retry=retry_policy(lms),
    )


def extract_users(
    config: Mapping[str, Any],
    run: RunIdentity | None = None,
    dsn: str | None = None,
    client: ScimClient | None = None,
) -> dict[str, Any]:
    """Pull the directory (incrementally when possible) and add every new user version."""
    run = run or RunIdentity()
    client = client or scim_client(config)
    batch_id = batch_id_for(run)
    staging = sql.Identifier("staging", f"scim_batch_{batch_id}")
    started_at = datetime.now(UTC)
    with client, warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        source = f"scim:{client.conn_id or client.base_url}"
        watermark = read_watermark(conn, source)
        overlap = timedelta(minutes=float(config["lms"]["scim_overlap_minutes"]))
        requested_after = (watermark - overlap) if watermark else None
        listing = client.iter_users(
            last_modified_after=requested_after,
            page_size=int(config["lms"]["scim_page_size"]),
        )
        try:
            with conn.transaction():
                conn.execute(sql.SQL("drop table if exists {}").format(staging))
                conn.execute(
                    sql.SQL(
                        "create unlogged table {} (lms_user_id text, last_modified_at timestamptz, user_name "
                        "text, external_id text, work_email text, primary_email text, emails jsonb, "
                        "is_active boolean, created_at timestamptz, resource jsonb)"
                    ).format(staging)
                )
            received = 0
            copy = sql.SQL("copy {} ({}) from stdin").format(
                staging, sql.SQL(", ").join(map(sql.Identifier, USER_COLUMNS))
            )
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy) as stream:
                for resource in listing:
                    if isinstance(resource, Mapping):
                        stream.write_row(user_row(resource))
                        received += 1
            mode = listing.mode
            outcome = None
            without_last_modified = 0
            if received:
                newest, without_last_modified = conn.execute(
                    sql.SQL(
                        "select max(last_modified_at), count(*) filter (where last_modified_at is null) "
                        "from {}"
                    ).format(staging)
                ).fetchone()
                outcome = run_suite(
                    sqlalchemy_url(config["connections"]["warehouse"], dsn),
                    users_suite(),
                    data_asset="lms_user_batch",
                    batch_identifier=pull_description(source, mode, requested_after, newest, batch_id),
                    table=("staging", f"scim_batch_{batch_id}"),
                    pii_columns=config["quality"]["pii_columns"],
                    data_docs_dir=data_docs_location(config),
                )
            passed = outcome is None or outcome.success
            with conn.transaction():
                new_versions, watermark_after = 0, watermark
                if passed and received:
                    new_versions, watermark_after = _publish(
                        conn, staging, batch_id, source, watermark, first_seen_at=started_at
                    )
                if outcome is not None:
                    record_validation(conn, outcome, run)
                _record_batch(
                    conn,
                    batch_id,
                    source,
                    mode,
                    watermark,
                    watermark_after,
                    received,
                    new_versions,
                    passed,
                    outcome,
                    run,
                    started_at,
                )
        finally:
            with conn.transaction():
                conn.execute(sql.SQL("drop table if exists {}").format(staging))
    summary = {
        "batch_id": batch_id,
        "mode": mode,
        "users_received": received,
        # versioned by content: a new version only when such a user changed; they never move the watermark
        "users_without_last_modified": without_last_modified,
        "versions_new": new_versions,
        "status": "published" if passed else "failed",
    }
    log.info("SCIM pull summary: %s", summary)
    if not passed:
        raise BadInputError(
            f"SCIM pull {batch_id} from {client.base_url}",
            f"the user batch failed validation: {outcome.failure_summary()}",
            "nothing was published and the watermark did not move; fix the directory data at the source, "
            "then clear the task",
            "lms-users-rejected",
        )
    return summary


def _publish(
    conn: psycopg.Connection,
    staging: sql.Identifier,
    batch_id: str,
    source: str,
    watermark: datetime | None,
    *,
    first_seen_at: datetime,
) -> tuple[int, datetime | None]:
    # include/sql/staging/lms_user_new_version.sql decides which users are new versions and when (users
    # without meta.lastModified: by content), over the pull's users bound to the name scim_pull_users.
    insert_new_versions = sql.SQL(read_sql("raw", "lms_user")).format(
        new_versions=sql.SQL(read_sql("staging", "lms_user_new_version"))
    )
    new_versions = conn.execute(
        sql.SQL("with scim_pull_users as (select * from {staging}) {insert}").format(
            staging=staging, insert=insert_new_versions
        ),
        {"batch_id": batch_id, "first_seen_at": first_seen_at},
    ).rowcount
    # Close the previous version of every user that got a new one.
    conn.execute(
        sql.SQL(
            """
            update raw.lms_user as version set valid_to = ordered.next_modified_at
            from (
                select lms_user_id, last_modified_at,
                       lead(last_modified_at) over (partition by lms_user_id order by last_modified_at)
                       as next_modified_at
                from raw.lms_user where lms_user_id in (select lms_user_id from {staging})
            ) as ordered
            where version.lms_user_id = ordered.lms_user_id
                and version.last_modified_at = ordered.last_modified_at
              and version.valid_to is distinct from ordered.next_modified_at
            """
        ).format(staging=staging)
    )
    latest = conn.execute(sql.SQL("select max(last_modified_at) from {}").format(staging)).fetchone()[0]
    if latest is not None and (watermark is None or latest > watermark):
        advance_watermark(conn, source, latest, batch_id)
        watermark = latest
    return new_versions, watermark


def _record_batch(
    conn, batch_id, source, mode, before, after, received, new_versions, passed, outcome, run, started_at
) -> None:
    conn.execute(
        read_sql("audit", "scim_extract_batch"),
        {
            "batch_id": batch_id,
            "source": source,
            "mode": mode,
            "watermark_before": before,
            "watermark_after": after,
            "users_received": received,
            "versions_new": new_versions,
            "status": "published" if passed else "failed",
            "reason": None if passed else outcome.failure_summary(),
            "validation_id": outcome.validation_id if outcome else None,
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "task_id": run.task_id,
            "try_number": run.try_number,
            "started_at": started_at,
        },
    )
