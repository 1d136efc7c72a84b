"""Post-install check: run on a worker after dropping the bundle in (docs/deploy/existing-airflow.md).

    python -m turnover_signals.deploy.check [--connect] [--json]

Prints one line per check, `OK`, `WARN` or `FAIL`, with the next step for anything not OK; exits 1 when a
check FAILs. Without `--connect` it reads the configuration and connections and talks to the warehouse only
(the install is not usable without it); `--connect` also lists the SFTP directory, writes, reads and deletes
one small object under the storage base, and asks the LRS (`about`) and the SCIM directory
(`ServiceProviderConfig`). Connections are read as tasks read them; a CLI sees `AIRFLOW_CONN_*` and secrets
backends, not connections stored only in the metadata DB. No password, token or key is printed: every secret
of a connection read here is masked in the output, whatever error message carries it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from turnover_signals.errors import TurnoverSignalsError, runbook_link

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SECURITY_DOC = "docs/security.md#least-privilege"
ROLES_DOC = "docs/deploy/warehouse-roles.md"
CONNECTIONS_DOC = "docs/reference/connections.md"
# Extras holding credentials, masked wherever they could show up (e.g. an error message quoting a field).
SECRET_EXTRA = re.compile(r"secret|token|password|passphrase|private_key|key_file", re.IGNORECASE)
# PostgreSQL 15 brings MERGE, which the loads use.
MIN_SERVER_VERSION_NUM = 150_000


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: what was checked, OK / WARN / FAIL, what was found, what to do when not OK."""

    check: str
    status: str
    detail: str
    next_step: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.check}: {self.detail}"
        return f"{text}. Next step: {self.next_step}" if self.next_step and self.status != OK else text


def from_error(check: str, exc: TurnoverSignalsError, status: str = FAIL) -> CheckResult:
    """A bundle error as a check result: its problem, and its next step with the runbook entry."""
    return CheckResult(
        check,
        status,
        exc.problem,
        f"{exc.next_step} (runbook: {runbook_link(exc.runbook_section)})",
    )


def describe_exception(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


class ConnectionLookup:
    """Airflow connections read as tasks read them, each once; remembers their secrets for masking."""

    def __init__(self) -> None:
        self._found: dict[str, Any] = {}
        self.secrets: set[str] = set()

    def get(self, conn_id: str) -> Any | None:
        """The connection, or None when Airflow does not define it (a secrets backend failure raises)."""
        if conn_id not in self._found:
            from airflow.sdk import Connection
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                conn = Connection.get(conn_id)
            except AirflowNotFoundException:
                conn = None
            if conn is not None:
                self._remember_secrets(conn)
            self._found[conn_id] = conn
        return self._found[conn_id]

    def defined(self, conn_id: str) -> bool:
        """Whether the connection is defined; one that cannot be read counts as not (check_connections
        says why)."""
        try:
            return self.get(conn_id) is not None
        except Exception:
            return False

    def _remember_secrets(self, conn: Any) -> None:
        self.secrets.add(str(conn.password or ""))
        try:
            extra = conn.extra_dejson
        except Exception:  # an unreadable extra is masked whole
            self.secrets.add(str(conn.extra or ""))
            return
        for key, value in extra.items():
            if SECRET_EXTRA.search(key) and isinstance(value, str):
                self.secrets.add(value)
                # a PEM key may be quoted line by line
                self.secrets.update(line for line in value.splitlines() if len(line) >= 16)


# -- configuration and connections ------------------------------------------------------------------


def check_config() -> tuple[CheckResult, dict[str, Any] | None]:
    """The configuration file with the `turnover_signals` Variable merged over it, as tasks load it."""
    from turnover_signals.config import VARIABLE_NAME, load_config, read_variable_override
    from turnover_signals.paths import DEFAULT_CONFIG_FILE

    try:
        config = load_config()
        overridden = sorted(read_variable_override())
    except TurnoverSignalsError as exc:
        return from_error("config", exc), None
    except Exception as exc:  # an unreadable file, a secrets backend failing on the Variable
        return (
            CheckResult(
                "config",
                FAIL,
                f"cannot be loaded ({describe_exception(exc)})",
                f"restore {DEFAULT_CONFIG_FILE.name} from the bundle and check the Variable {VARIABLE_NAME}",
            ),
            None,
        )
    variable = (
        f"Variable {VARIABLE_NAME} overrides {', '.join(overridden)}"
        if overridden
        else f"no Variable {VARIABLE_NAME} (defaults only)"
    )
    return CheckResult("config", OK, f"{DEFAULT_CONFIG_FILE.name} loaded; {variable}"), config


def stage_connection_ids(config: Mapping[str, Any]) -> dict[str, str]:
    """Stage name -> its warehouse connection id (the config key's value, else the key itself)."""
    from turnover_signals.deploy.warehouse_logins import STAGES

    connections = config["connections"]
    return {
        name: connections.get(stage.config_key) or stage.config_key
        for name, stage in STAGES.items()
        if stage.group_role is not None
    }


def required_connections(config: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Connection id -> (status when it is missing, why it is needed)."""
    connections = config["connections"]
    stage_ids = set(stage_connection_ids(config).values())
    needed: dict[str, tuple[str, str]] = {}
    for key, conn_id in connections.items():
        if conn_id in stage_ids and conn_id != connections["warehouse"]:
            continue  # a missing stage login is a WARN of its own (check_stage_login)
        needed[conn_id] = (FAIL, f"connections.{key}")
    analytics = config.get("analytics") or {}
    needed[analytics.get("pseudonym_connection") or "analytics_pseudonym"] = (FAIL, "the pseudonym key")
    storage_conn = (config.get("storage") or {}).get("conn_id")
    if storage_conn:
        needed[storage_conn] = (FAIL, "storage.conn_id")
    # only encrypted HRIS exports need it, which many tenants never get
    needed[(config.get("hris") or {}).get("pgp_conn_id") or "hris_pgp"] = (
        WARN,
        "encrypted HRIS exports only",
    )
    return needed


def check_connections(config: Mapping[str, Any], lookup: ConnectionLookup) -> list[CheckResult]:
    results = []
    for conn_id, (missing_status, why) in required_connections(config).items():
        name = f"connection {conn_id}"
        try:
            conn = lookup.get(conn_id)
        except Exception as exc:
            results.append(
                CheckResult(
                    name,
                    FAIL,
                    f"cannot be read ({describe_exception(exc)})",
                    "check the secrets backend's configuration and this worker's access to it",
                )
            )
            continue
        if conn is None:
            next_step = (
                f"create it (AIRFLOW_CONN_{conn_id.upper()} or the secrets backend; see {CONNECTIONS_DOC})"
            )
            if missing_status == WARN:
                next_step = f"only if the HRIS vendor sends .pgp/.gpg exports: {next_step}"
            results.append(CheckResult(name, missing_status, f"not defined ({why})", next_step))
        else:
            results.append(CheckResult(name, OK, f"defined, type {conn.conn_type or 'unset'} ({why})"))
    return results


# -- warehouse ------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_session(conn_id: str) -> Iterator[Any]:
    """A psycopg connection through the Airflow connection `conn_id` itself.

    Unlike `warehouse.warehouse_connection` this ignores $TURNOVER_WAREHOUSE_URL: the point is to try the
    connection the tasks will use, and the URL (if set) is reported on its own line.
    """
    import psycopg
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from turnover_signals.warehouse import warehouse_unavailable

    try:
        conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    except psycopg.OperationalError as exc:
        raise warehouse_unavailable(conn_id, None, exc) from exc
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def migration_state(conn: Any) -> tuple[list[str], list[str], int | None]:
    """(pending files, applied files whose content changed since, the newest applied version)."""
    import psycopg

    from turnover_signals.warehouse import applied_migrations, discover_migrations

    try:
        applied = applied_migrations(conn)
    except psycopg.errors.UndefinedTable:
        applied = {}
    migrations = discover_migrations()
    pending = [m.path.name for m in migrations if m.version not in applied]
    changed = [
        m.path.name for m in migrations if m.version in applied and not m.is_applied_as(applied[m.version])
    ]
    return pending, changed, max(applied, default=None)


def check_warehouse(config: Mapping[str, Any], lookup: ConnectionLookup) -> tuple[CheckResult, str | None]:
    """The owner's connection reaches PostgreSQL 15+, and how far the schema is migrated; also the owner's
    login."""
    from turnover_signals.warehouse import discover_migrations

    conn_id = config["connections"]["warehouse"]
    name = f"warehouse {conn_id}"
    if not lookup.defined(conn_id):
        return CheckResult(name, FAIL, "not checked: the connection is not defined", "create it"), None
    try:
        with postgres_session(conn_id) as conn:
            login, version_num = conn.execute(
                "select session_user, current_setting('server_version_num')::int"
            ).fetchone()
            pending, changed, applied_version = migration_state(conn)
    except TurnoverSignalsError as exc:
        return from_error(name, exc), None
    newest = discover_migrations()[-1]
    migrate_cmd = "python -m turnover_signals.warehouse migrate"
    if version_num < MIN_SERVER_VERSION_NUM:
        return CheckResult(
            name,
            FAIL,
            f"PostgreSQL {version_num} is older than 15 (the loads use MERGE)",
            "upgrade the server",
        ), login
    if changed:
        return CheckResult(
            name,
            FAIL,
            f"applied migration file(s) changed since: {', '.join(changed)} (migrate refuses to run)",
            "roll out the bundle version that applied them; a new migration file carries any change "
            f"(runbook: {runbook_link('migrations')})",
        ), login
    if applied_version is None:
        return CheckResult(
            name,
            WARN,
            f"reached; not migrated yet (the bundle's newest migration is {newest.path.name})",
            f"the first task of any DAG (migrate_warehouse) migrates it; or run `{migrate_cmd}` now",
        ), login
    if pending:
        return CheckResult(
            name,
            WARN,
            f"reached; schema at migration {applied_version:04d}, behind the bundle's {newest.path.name} "
            f"({len(pending)} pending)",
            f"the next DAG run's migrate_warehouse task applies them; or run `{migrate_cmd}` now",
        ), login
    if applied_version > newest.version:
        return CheckResult(
            name,
            WARN,
            f"reached; schema at migration {applied_version:04d}, "
            f"newer than this bundle's {newest.path.name}",
            "a newer bundle migrated it: roll the same bundle out to every Airflow component",
        ), login
    return CheckResult(
        name, OK, f"reached; schema at migration {applied_version:04d}, the bundle's newest"
    ), login


def check_dsn_override() -> list[CheckResult]:
    from turnover_signals.warehouse import DSN_ENV_VAR

    if not os.environ.get(DSN_ENV_VAR):
        return []
    return [
        CheckResult(
            DSN_ENV_VAR,
            WARN,
            "set in this environment: tasks here would use it instead of every warehouse connection",
            f"unset it on workers (it is meant for the CLIs and tests; {SECURITY_DOC})",
        )
    ]


def check_stage_login(
    stage_name: str,
    conn_id: str,
    config: Mapping[str, Any],
    lookup: ConnectionLookup,
    owner_login: str | None,
) -> CheckResult:
    """The stage's connection logs in and is a member of its group role, which its sessions take."""
    from turnover_signals.deploy.warehouse_logins import stage

    group = stage(stage_name).group_role
    owner_conn_id = config["connections"]["warehouse"]
    name = f"warehouse stage {stage_name} ({conn_id})"
    fallback = f"create a login in {group} and the connection {conn_id} ({ROLES_DOC})"
    if conn_id == owner_conn_id:
        return CheckResult(
            name, WARN, "configured as the owner's connection: tasks run with every privilege", fallback
        )
    if not lookup.defined(conn_id):
        if (config.get("security") or {}).get("allow_owner_fallback") is True:
            return CheckResult(
                name, WARN, f"not defined: the stage's tasks use the owner's {owner_conn_id}", fallback
            )
        # least privilege fails closed: the stage's tasks would fail (runbook-stage-connection)
        problem = "not defined: the stage's tasks fail (security.allow_owner_fallback is false)"
        return CheckResult(name, FAIL, problem, fallback)
    try:
        with postgres_session(conn_id) as conn:
            login, current = conn.execute("select session_user, current_user").fetchone()
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (group,)).fetchone()
            member = (
                exists
                and conn.execute("select pg_has_role(session_user, %s, 'member')", (group,)).fetchone()[0]
            )
    except TurnoverSignalsError as exc:
        return from_error(name, exc)
    if not exists:
        return CheckResult(
            name,
            FAIL,
            f"logs in, but group role {group} does not exist",
            f"migrate the warehouse ({ROLES_DOC})",
        )
    if login == owner_login:
        return CheckResult(
            name, WARN, "logs in as the owner's login: tasks run with every privilege", fallback
        )
    if not member:
        return CheckResult(
            name,
            FAIL,
            f"logs in, but is not a member of {group}",
            f"as a DBA: grant {group} to the login and alter role <login> set role = {group} ({ROLES_DOC})",
        )
    if current != group:
        # What the login creates (raw partitions, staging tables) must belong to the group, or the other
        # logins of the stage and the owner cannot drop it.
        return CheckResult(
            name,
            WARN,
            f"member of {group}, but its sessions do not take the role",
            f"as a DBA: alter role <login> set role = {group} ({ROLES_DOC})",
        )
    return CheckResult(name, OK, f"logs in, member of {group}, sessions take the role")


# -- SFTP ---------------------------------------------------------------------------------------------


def check_sftp_host_key(config: Mapping[str, Any], lookup: ConnectionLookup) -> list[CheckResult]:
    """The hris_sftp connection pins the server's host key (read the way the SSH hook reads it; no
    connecting)."""
    conn_id = config["connections"]["hris_sftp"]
    name = f"sftp host key ({conn_id})"
    if not lookup.defined(conn_id):
        return []  # reported as an undefined connection
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    pin_step = (
        "put the server's public key in the extra host_key as 'ssh-ed25519 AAAA…' "
        "(compare `ssh-keyscan` with "
        "the fingerprint the vendor gives you) and set no_host_key_check and allow_host_key_change to false "
        f"(runbook: {runbook_link('sftp-host-key')})"
    )
    try:
        # The constructor only parses the connection; it connects on first use.
        hook = SFTPHook(ssh_conn_id=conn_id)
    except ValueError as exc:
        return [
            CheckResult(name, FAIL, f"the connection cannot be used ({describe_exception(exc)})", pin_step)
        ]
    if hook.host_key is None:
        return [
            CheckResult(name, FAIL, "no host_key pinned: any server answering there is trusted", pin_step)
        ]
    if hook.no_host_key_check or hook.allow_host_key_change:
        flag = "no_host_key_check" if hook.no_host_key_check else "allow_host_key_change"
        return [CheckResult(name, FAIL, f"host_key is set but {flag} is true, which skips it", pin_step)]
    return [CheckResult(name, OK, f"pinned ({hook.host_key.get_name()} {hook.host_key.fingerprint})")]


def check_sftp_listing(config: Mapping[str, Any], lookup: ConnectionLookup) -> list[CheckResult]:
    from turnover_signals.sources.sftp_hris import HrisSftpSource

    conn_id = config["connections"]["hris_sftp"]
    if not lookup.defined(conn_id):
        return []
    hris = config["hris"]
    source = HrisSftpSource(conn_id, hris["remote_dir"], hris["file_patterns"], attempts=1)
    name = f"sftp listing ({conn_id})"
    try:
        files = source.list_feed_files()
        directory = source.remote_dir()
    except TurnoverSignalsError as exc:
        return [from_error(name, exc)]
    except Exception as exc:
        return [
            CheckResult(
                name, FAIL, describe_exception(exc), "check the connection's host, port, login and key"
            )
        ]
    return [CheckResult(name, OK, f"listed {directory}: {len(files)} feed file(s)")]


# -- object storage ------------------------------------------------------------------------------------


def check_storage_base(config: Mapping[str, Any]) -> tuple[CheckResult, Any | None]:
    """Where task files go, and whether that is shared when tasks run on several hosts."""
    from turnover_signals.errors import StorageNotSharedError
    from turnover_signals.storage import BASE_URL_ENV_VAR, configured_executors, object_url, storage_base

    name = "storage base"
    if (config.get("storage") or {}).get("base_url"):
        source = "storage.base_url"
    elif os.environ.get(BASE_URL_ENV_VAR):
        source = BASE_URL_ENV_VAR
    else:
        source = f"the local data directory (executor {', '.join(configured_executors()) or 'unset'})"
    try:
        base = storage_base(config)
    except StorageNotSharedError as exc:
        return from_error(name, exc), None
    except Exception as exc:  # e.g. no provider installed for the URL's protocol
        return CheckResult(
            name,
            FAIL,
            f"cannot be opened ({describe_exception(exc)})",
            "install the provider of the URL's protocol on every worker and the api-server "
            f"(runbook: {runbook_link('storage')})",
        ), None
    return CheckResult(name, OK, f"{object_url(base)} (from {source})"), base


def check_storage_round_trip(base: Any) -> list[CheckResult]:
    from turnover_signals.storage import object_url, write_bytes

    name = "storage round trip"
    payload = f"turnover-signals post-install check {uuid.uuid4()}\n".encode()
    # directly under the base: no folder is left behind on stores that have folders
    target = base / f".turnover-signals-check-{uuid.uuid4().hex}"
    try:
        write_bytes(target, payload, overwrite=False)
        with target.open("rb") as handle:
            read_back = handle.read()
    except Exception as exc:
        return [
            CheckResult(
                name,
                FAIL,
                f"cannot write and read under {object_url(base)} ({describe_exception(exc)})",
                "check storage.conn_id's credentials: they must allow put, get, list and delete "
                "under the base "
                f"(runbook: {runbook_link('storage')})",
            )
        ]
    finally:
        with contextlib.suppress(Exception):
            target.unlink()
    if read_back != payload:
        return [
            CheckResult(name, FAIL, "the object read back differs from what was written", "check the store")
        ]
    if target.exists():
        return [
            CheckResult(
                name,
                WARN,
                f"wrote and read {object_url(target)} but could not delete it",
                "allow delete under the base",
            )
        ]
    return [CheckResult(name, OK, f"wrote, read back and deleted a {len(payload)}-byte object")]


# -- LMS ----------------------------------------------------------------------------------------------


def _single_attempt(config: Mapping[str, Any]) -> dict[str, Any]:
    from turnover_signals.sources.http_base import RetryPolicy

    # one attempt: the check reports a fault now instead of backing off like a task
    return {"timeout": float(config["lms"]["request_timeout_seconds"]), "retry": RetryPolicy(attempts=1)}


def check_lrs(config: Mapping[str, Any], lookup: ConnectionLookup) -> list[CheckResult]:
    from turnover_signals.sources.xapi import XapiClient

    conn_id = config["connections"]["lms_api"]
    if not lookup.defined(conn_id):
        return []
    name = f"lrs ({conn_id})"
    try:
        with XapiClient(conn_id, **_single_attempt(config)) as client:
            about = client.about()
            # `about` needs no credentials (xAPI 1.0.3): a lookup of a random voided statement does, and
            # reads nothing (404)
            client.voided_statement(str(uuid.uuid4()))
    except TurnoverSignalsError as exc:
        return [from_error(name, exc)]
    versions = about.get("version") or []
    if not versions:
        return [CheckResult(name, WARN, "answered, but lists no xAPI version", "check the extra base_path")]
    return [CheckResult(name, OK, f"answered with the credentials: xAPI {', '.join(map(str, versions))}")]


def check_scim(config: Mapping[str, Any], lookup: ConnectionLookup) -> list[CheckResult]:
    from turnover_signals.sources.scim import ScimClient

    conn_id = config["connections"]["lms_directory"]
    if not lookup.defined(conn_id):
        return []
    name = f"scim directory ({conn_id})"
    try:
        with ScimClient(conn_id, **_single_attempt(config)) as client:
            provider_config = client.service_provider_config()
            # ServiceProviderConfig may answer without credentials (RFC 7644, 4); count=0 asks for the
            # total only, so the token is tried without reading anyone's record
            total = client.get_json(client.users_url, "users", params={"startIndex": 1, "count": 0}).document
    except TurnoverSignalsError as exc:
        return [from_error(name, exc)]
    if provider_config is None:
        return [
            CheckResult(
                name,
                WARN,
                "answered 404: every pull reads the whole directory",
                "check the extra base_path; if it is right, the directory has no ServiceProviderConfig",
            )
        ]
    supported = (provider_config.get("filter") or {}).get("supported") is True
    users = total.get("totalResults", "?") if isinstance(total, dict) else "?"
    filtering = "supported (incremental pulls)" if supported else "not supported (full pulls)"
    return [CheckResult(name, OK, f"answered with the token: {users} user(s); filter {filtering}")]


# -- the whole run ------------------------------------------------------------------------------------


def run_checks(connect: bool = False, lookup: ConnectionLookup | None = None) -> list[CheckResult]:
    """Every check in order; network checks (SFTP listing, storage round trip, LMS) only with `connect`."""
    lookup = lookup or ConnectionLookup()
    config_result, config = check_config()
    if config is None:
        return [config_result]
    results = [config_result, *check_connections(config, lookup), *check_dsn_override()]
    warehouse_result, owner_login = check_warehouse(config, lookup)
    results.append(warehouse_result)
    for stage_name, conn_id in stage_connection_ids(config).items():
        results.append(check_stage_login(stage_name, conn_id, config, lookup, owner_login))
    results += check_sftp_host_key(config, lookup)
    if connect:
        results += check_sftp_listing(config, lookup)
    storage_result, base = check_storage_base(config)
    results.append(storage_result)
    if connect and base is not None:
        results += check_storage_round_trip(base)
    if connect:
        results += check_lrs(config, lookup) + check_scim(config, lookup)
    return results


def masked(results: list[CheckResult], secrets: set[str]) -> list[CheckResult]:
    from turnover_signals.sources.http_base import scrub

    return [
        CheckResult(r.check, r.status, scrub(r.detail, secrets), scrub(r.next_step, secrets)) for r in results
    ]


def summary(results: list[CheckResult], connect: bool) -> str:
    counts = {status: sum(r.status == status for r in results) for status in (OK, WARN, FAIL)}
    text = ", ".join(f"{n} {status}" for status, n in counts.items())
    return text if connect else f"{text}; network checks skipped (run with --connect)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m turnover_signals.deploy.check", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--connect",
        action="store_true",
        help="also list the SFTP directory, try object storage and ask the LMS",
    )
    parser.add_argument("--json", action="store_true", help="print the results as one JSON document")
    args = parser.parse_args(argv)
    lookup = ConnectionLookup()
    # stdout carries the report alone; whatever Airflow and the hooks print on the way goes to stderr
    with contextlib.redirect_stdout(sys.stderr):
        results = masked(run_checks(args.connect, lookup), lookup.secrets)
    failed = any(r.status == FAIL for r in results)
    if args.json:
        print(
            json.dumps(
                {"ok": not failed, "connect": args.connect, "checks": [asdict(r) for r in results]}, indent=2
            )
        )
    else:
        print("\n".join([*(r.line() for r in results), summary(results, args.connect)]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
