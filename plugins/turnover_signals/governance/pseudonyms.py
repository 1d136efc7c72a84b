"""The key behind `analytics.*`: person pseudonyms are HMAC-SHA256(key, employee_key) in hex.

The key lives only in the Airflow connection `analytics_pseudonym` (its password, or a secrets
backend behind it). A task copies it into `governance.pseudonym_key`, a table in a schema no role
but the pipeline's owner can reach, as the two HMAC pads (key XOR ipad, key XOR opad): the views
then compute the HMAC with PostgreSQL's built-in `sha256()`, without pgcrypto, and no view,
function or file in the repository holds the key. Rotating the key in the connection changes every
pseudonym on the next run; `audit.pseudonym_key_rotation` records each key by fingerprint only.

The same task writes `governance.analytics_policy`: the smallest group of people the views may show
(k-anonymity on their quasi-identifiers, migration 0033), from `analytics.min_group_size`.

The key also keys the PII mask of failed-check samples (`pii_mask_key`): a subkey derived for that one
purpose, so a masked `employee_key` in a quality report never equals an analytics pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any

import psycopg

from turnover_signals.errors import BadInputError
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import DEFAULT_CONN_ID, warehouse_connection

log = logging.getLogger(__name__)

PSEUDONYM_CONN_ID = "analytics_pseudonym"
SHA256_BLOCK_BYTES = 64
MIN_KEY_CHARS = 16
# The fingerprint is an HMAC of this constant: it identifies a key without revealing it.
FINGERPRINT_MESSAGE = b"turnover-signals pseudonym key fingerprint"
# The PII mask's subkey is an HMAC of this constant (domain separation from the pseudonyms).
PII_MASK_MESSAGE = b"turnover-signals pii sample mask"


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """(key XOR ipad, key XOR opad) of HMAC-SHA256 (RFC 2104), the key padded to the block size."""
    if len(key) > SHA256_BLOCK_BYTES:
        key = hashlib.sha256(key).digest()
    key = key.ljust(SHA256_BLOCK_BYTES, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def person_pseudonym(key: str, employee_key: int) -> str:
    """The pseudonym `analytics.*` shows for `employee_key` under `key` (for checks and joins)."""
    return hmac.new(key.encode("utf-8"), str(employee_key).encode("utf-8"), hashlib.sha256).hexdigest()


def key_fingerprint(key: str) -> str:
    """A short, non-reversible identifier of a key, safe to log and to keep in the audit schema."""
    return hmac.new(key.encode("utf-8"), FINGERPRINT_MESSAGE, hashlib.sha256).hexdigest()[:16]


def pii_mask_key(key: str) -> bytes:
    """The key of the PII mask in failed-check samples, derived from the pseudonym key for that use only."""
    return hmac.new(key.encode("utf-8"), PII_MASK_MESSAGE, hashlib.sha256).digest()


def _check_key(key: str | None, conn_id: str) -> str:
    if not key or len(key) < MIN_KEY_CHARS:
        raise BadInputError(
            f"Airflow connection '{conn_id}'",
            f"the pseudonymization key (its password) is missing or shorter than {MIN_KEY_CHARS} characters",
            "put a long random value in the connection's password, e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`",
            "pseudonym-key",
        )
    return key


def install_pseudonym_key(
    conn: psycopg.Connection, key: str, run: RunIdentity | None = None
) -> dict[str, Any]:
    """Store the pads of `key` in `governance.pseudonym_key`; a no-op when that key is installed."""
    run = run or RunIdentity()
    fingerprint = key_fingerprint(key)
    inner_pad, outer_pad = hmac_pads(key.encode("utf-8"))
    with conn.transaction():
        row = conn.execute("select key_fingerprint from governance.pseudonym_key for update").fetchone()
        previous = row[0] if row else None
        if previous == fingerprint:
            return {"installed": False, "key_fingerprint": fingerprint, "rotated": False}
        now = datetime.now(UTC)
        conn.execute(
            read_sql("governance", "pseudonym_key"),
            {
                "inner_pad": inner_pad,
                "outer_pad": outer_pad,
                "key_fingerprint": fingerprint,
                "installed_at": now,
            },
        )
        conn.execute(
            read_sql("audit", "pseudonym_key_rotation"),
            {
                "key_fingerprint": fingerprint,
                "previous_key_fingerprint": previous,
                "installed_at": now,
                "dag_id": run.dag_id,
                "run_id": run.run_id,
            },
        )
    if previous:
        log.warning(
            "pseudonym key rotated (%s -> %s): every analytics pseudonym has changed", previous, fingerprint
        )
    else:
        log.info("pseudonym key %s installed", fingerprint)
    return {"installed": True, "key_fingerprint": fingerprint, "rotated": previous is not None}


def install_analytics_policy(conn: psycopg.Connection, min_group_size: int) -> dict[str, Any]:
    """Write k, the smallest group of people a row of the analytics views may belong to, where the views
    read it (`governance.analytics_policy`); a no-op when it is already that value."""
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, int) or min_group_size < 1:
        raise BadInputError(
            subject="configuration analytics.min_group_size",
            problem=f"must be a whole number of people of at least 1, not {min_group_size!r}",
            next_step="set it to the smallest group analysts may see (5 or more; 1 shows every row)",
            runbook_section="pseudonym-key",
        )
    with conn.transaction():
        row = conn.execute("select min_group_size from governance.analytics_policy for update").fetchone()
        previous = row[0] if row else None
        if previous == min_group_size:
            return {"min_group_size": min_group_size, "changed": False}
        conn.execute(read_sql("governance", "analytics_policy"), {"min_group_size": min_group_size})
    log.info("analytics views: smallest group shown changed from %s to %s people", previous, min_group_size)
    return {"min_group_size": min_group_size, "changed": True}


def read_key_from_connection(conn_id: str = PSEUDONYM_CONN_ID) -> str | None:
    """The key from the Airflow connection (password, else extra `key`); None when there is no such
    connection."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return _check_key(connection.password or connection.extra_dejson.get("key"), conn_id)


def install_key_from_connection(
    conn_id: str = PSEUDONYM_CONN_ID,
    run: RunIdentity | None = None,
    warehouse_conn_id: str = DEFAULT_CONN_ID,
    dsn: str | None = None,
    min_group_size: int | None = None,
) -> dict[str, Any]:
    """Install the key of `conn_id` (and, given, the views' smallest group `min_group_size`); without that
    connection the analytics views stay empty (fail closed)."""
    key = read_key_from_connection(conn_id)
    policy: dict[str, Any] = {}
    if min_group_size is not None:
        with warehouse_connection(warehouse_conn_id, dsn) as conn:
            policy = install_analytics_policy(conn, min_group_size)
    if key is None:
        log.warning(
            "no Airflow connection '%s': the analytics views "
            "show no rows until it holds a pseudonymization key",
            conn_id,
        )
        return {"installed": False, "key_fingerprint": None, "rotated": False, **policy}
    with warehouse_connection(warehouse_conn_id, dsn) as conn:
        return install_pseudonym_key(conn, key, run) | policy


def pii_mask_key_from_connection(conn_id: str = PSEUDONYM_CONN_ID) -> bytes | None:
    """The PII mask's key, from the pseudonym key of `conn_id`; None when there is no usable key (no such
    connection, or a key too short to be one), and then samples of PII columns are withheld."""
    try:
        key = read_key_from_connection(conn_id)
    except BadInputError:
        log.warning("the '%s' connection holds no usable key: PII sample values are withheld", conn_id)
        return None
    return pii_mask_key(key) if key is not None else None
