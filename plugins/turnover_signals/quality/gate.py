"""The validation gate: run a Great Expectations suite on warehouse data and record the outcome.

GX's own Python API is used directly (an ephemeral context with a PostgreSQL data source),
so the expectations run as SQL inside the warehouse: a million-row file is never pulled into
Python memory. Every run becomes one row of `audit.validation_result`; unexpected values from
PII columns are replaced by a keyed mask before they are stored or shown (`mask_value`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import hmac
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.pool import NullPool

from turnover_signals import storage
from turnover_signals.errors import GateNotEvaluatedError
from turnover_signals.sqlfiles import read_sql

log = logging.getLogger(__name__)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def expectation_signature(expectation: Any) -> str:
    """What an expectation checks: its type and arguments, as canonical JSON.

    Descriptions are left out (prose, and some quote values of the data, such as the last good
    snapshot's row count); values read at run time are `{"$PARAMETER": name}` arguments, so only
    their names count.
    """
    configuration = expectation.configuration.to_json_dict()
    kwargs = {k: v for k, v in configuration["kwargs"].items() if k != "batch_id"}
    return json.dumps({"type": configuration["type"], "kwargs": kwargs}, sort_keys=True, default=str)


@dataclass(frozen=True)
class SuiteDefinition:
    """A named, versioned list of expectations (as GX expectation objects).

    `definition` is every expectation the suite can hold, when the ones a run holds depend on the
    data (an HRIS file's columns, its control file, a previous snapshot to compare with); the
    fingerprint is of the definition, so one suite has one version whatever file it validates.
    """

    name: str
    version: str
    expectations: list[Any]
    definition: list[Any] | None = None

    def __post_init__(self) -> None:
        if self.definition is not None:
            defined = {expectation_signature(e) for e in self.definition}
            extra = [s for s in map(expectation_signature, self.expectations) if s not in defined]
            if extra:
                raise ValueError(f"suite {self.name} runs expectations outside its definition: {extra}")

    @property
    def fingerprint(self) -> str:
        """A short hash of the definition (types and arguments, in any order): a change to what the
        suite checks changes it, the data it runs on does not."""
        signatures = sorted({expectation_signature(e) for e in self.definition or self.expectations})
        return hashlib.sha256(json.dumps(signatures).encode()).hexdigest()[:12]

    @property
    def version_string(self) -> str:
        """`<version>+<fingerprint>`, as recorded in `audit.validation_result.suite_version`."""
        return f"{self.version}+{self.fingerprint}"


def described(expectation: Any, text: str) -> Any:
    """Give an expectation the plain-language description auditors read in the results."""
    expectation.description = text
    return expectation


@dataclass(frozen=True)
class RunIdentity:
    """Which Airflow task instance did the work (all optional outside Airflow)."""

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | None) -> RunIdentity:
        if not context:
            return cls()
        ti = context.get("ti") or context.get("task_instance")
        if ti is None:
            return cls()
        map_index = getattr(ti, "map_index", None)
        return cls(
            dag_id=getattr(ti, "dag_id", None),
            run_id=getattr(ti, "run_id", None),
            task_id=getattr(ti, "task_id", None),
            map_index=map_index if map_index is not None and map_index >= 0 else None,
            try_number=getattr(ti, "try_number", None),
        )


@dataclass
class ValidationOutcome:
    validation_id: str
    suite_name: str
    suite_version: str
    data_asset: str
    batch_identifier: str
    success: bool
    statistics: dict[str, Any]
    results: list[dict[str, Any]]
    validated_at: datetime
    data_docs_path: str | None = None
    failed: list[dict[str, Any]] = field(default_factory=list)

    def failure_summary(self, limit: int = 5) -> str:
        """One line per failed expectation, for error messages and logs (PII already masked)."""
        lines = []
        for item in self.failed[:limit]:
            detail = shortened_value(str(item.get("exception") or item.get("observed")), 1000)
            lines.append(f"{item['description']} [{item['expectation']}]: {detail}")
        more = len(self.failed) - limit
        if more > 0:
            lines.append(f"... and {more} more")
        return "; ".join(lines)


# What a sample of a PII column shows when no mask key is configured: the value is left out.
PII_WITHHELD = "pii:withheld"


def mask_value(value: Any, mask_key: bytes | None = None) -> str:
    """A stand-in for a PII value: `pii:` + HMAC-SHA256 under `mask_key`, truncated, stable within a key
    (enough to spot repeats, not to read the value); `pii:withheld` without a key.

    An unkeyed hash would not do: salaries and ids are few enough to hash every candidate and look the
    mask up. The key is derived from the pseudonym key (`governance.pseudonyms.pii_mask_key`), which only
    the pipeline holds.
    """
    if mask_key is None:
        return PII_WITHHELD
    return "pii:" + hmac.new(mask_key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()[:10]


def resolve_pii_mask_key() -> bytes | None:
    """The mask key of this run, read at call time from the pseudonym connection named by
    `analytics.pseudonym_connection`; None (values withheld) when there is none."""
    from turnover_signals.governance.pseudonyms import PSEUDONYM_CONN_ID, pii_mask_key_from_connection

    try:
        from turnover_signals.config import load_config

        conn_id = (load_config().get("analytics") or {}).get("pseudonym_connection") or PSEUDONYM_CONN_ID
    except Exception:  # noqa: BLE001 - an unreadable Variable must not stop a validation; the default applies
        log.warning(
            "the configuration could not be read: the PII mask key comes from '%s'", PSEUDONYM_CONN_ID
        )
        conn_id = PSEUDONYM_CONN_ID
    try:
        return pii_mask_key_from_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - a secrets backend that fails costs the samples, not the verdict
        log.warning(
            "PII sample values are withheld: the key of '%s' could not be read (%s)",
            conn_id,
            type(exc).__name__,
        )
        return None


# A value read from the data is shown (error messages, logs, audit rows, Data Docs) up to this many
# characters: one 50 MB field must not make a 50 MB quarantine reason, log line or alert.
SAMPLE_VALUE_CHARS = 200


def shortened_value(value: Any, limit: int = SAMPLE_VALUE_CHARS) -> Any:
    """`value` itself, or a string longer than `limit` cut to its start and its length."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}… ({len(value):,} characters)"
    return value


def _masked_list(values: Iterable[Any], is_pii: bool, mask_key: bytes | None, limit: int = 10) -> list[Any]:
    values = list(values or [])[:limit]
    return [mask_value(v, mask_key) for v in values] if is_pii else [shortened_value(v) for v in values]


def is_pii_result(result: Any, pii_columns: Iterable[str]) -> bool:
    """Whether an expectation result is about a PII column (or one derived from it)."""
    kwargs = result.expectation_config.kwargs
    columns = {
        kwargs.get("column"),
        kwargs.get("column_A"),
        kwargs.get("column_B"),
        *(kwargs.get("column_list") or ()),
    }
    pii = set(pii_columns)
    # Derived columns (`work_email_parsed`, `employee_id_duplicate`, ...) carry their source's values.
    return any(c in pii or any(c.startswith(f"{p}_") for p in pii) for c in columns - {None})


def summarize_expectation_result(
    result: Any, pii_columns: Iterable[str], mask_key: bytes | None = None
) -> dict[str, Any]:
    """A JSON-safe, PII-masked summary of one GX expectation result (`mask_value` under `mask_key`)."""
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}
    is_pii = is_pii_result(result, pii_columns)
    raw = result.result or {}
    observed: Any
    if "unexpected_count" in raw:
        observed = {
            "unexpected_count": raw.get("unexpected_count"),
            "unexpected_percent": raw.get("unexpected_percent"),
            "element_count": raw.get("element_count"),
            "sample": _masked_list(raw.get("partial_unexpected_list"), is_pii, mask_key),
        }
    else:
        observed = {"observed_value": shortened_value(raw.get("observed_value"))}
    exception = (result.exception_info or {}).get("exception_message") if result.exception_info else None
    return {
        "expectation": config.type,
        "description": config.description or config.type,
        "kwargs": json.loads(json.dumps(kwargs, default=str)),
        "success": bool(result.success),
        "observed": json.loads(json.dumps(observed, default=str)),
        "exception": exception,
    }


# Keys of a GX expectation result that hold values read from the data.
VALUE_KEYS = (
    "partial_unexpected_list",
    "unexpected_list",
    "partial_unexpected_index_list",
    "unexpected_index_list",
    "observed_value",
    "details",
)


def mask_validation_result(result: Any, pii_columns: Iterable[str], mask_key: bytes | None = None) -> Any:
    """Replace, in place, every value a PII expectation read from the data by its mask, and cut long values
    of the others (`shortened_value`), for Data Docs."""
    pii = tuple(pii_columns)
    for item in result.results:
        if not item.result:
            continue
        if not is_pii_result(item, pii):
            for key in VALUE_KEYS:
                value = item.result.get(key)
                if isinstance(value, list):
                    item.result[key] = [shortened_value(v) for v in value]
                elif isinstance(value, str):
                    item.result[key] = shortened_value(value)
            for count in item.result.get("partial_unexpected_counts") or []:
                count["value"] = shortened_value(count.get("value"))
            continue
        for key in VALUE_KEYS:
            value = item.result.get(key)
            if isinstance(value, list):
                item.result[key] = [mask_value(v, mask_key) for v in value]
            elif value is not None:
                item.result[key] = mask_value(value, mask_key)
        counts = item.result.get("partial_unexpected_counts")
        if counts:
            item.result["partial_unexpected_counts"] = [
                {"value": mask_value(c.get("value"), mask_key), "count": c.get("count")} for c in counts
            ]
    return result


def data_docs_location(config: Mapping[str, Any]) -> Any:
    """Where the pipeline's Data Docs pages go: `quality.data_docs_dir` under the storage base."""
    return storage.location(config, config["quality"]["data_docs_dir"])


def _data_docs_root(data_docs_dir: Any) -> Any:
    """The folder a page goes to, as an `ObjectStoragePath`. The pipeline's gates pass their task's
    location; a plain folder (a caller outside the pipeline, or one that passes the configured string)
    resolves with the effective configuration (file and Variable) for the base and its connection."""
    from airflow.sdk import ObjectStoragePath

    if isinstance(data_docs_dir, ObjectStoragePath):
        return data_docs_dir
    if data_docs_dir is not None and Path(data_docs_dir).is_absolute() and "://" not in str(data_docs_dir):
        return storage.location({}, data_docs_dir)
    from turnover_signals.config import load_config

    config = load_config()
    return storage.location(
        config, data_docs_dir if data_docs_dir is not None else config["quality"]["data_docs_dir"]
    )


@functools.cache
def _data_docs_page_view() -> Any:
    """One page view per process: each new view builds its own Jinja environment and compiles every
    template again, about 0.1 s per page, as long as validating a small file."""
    from great_expectations.render.view import DefaultJinjaPageView

    return DefaultJinjaPageView()


def write_data_docs(
    result: Any,
    outcome: ValidationOutcome,
    pii_columns: Iterable[str],
    data_docs_dir: Any = None,
    mask_key: bytes | None = None,
) -> str:
    """Render the (PII-masked) validation result as a GX Data Docs page and write it to storage; one new
    object per validation run. Returns the object's URL.

    GX 1.x writes Data Docs only to a local filesystem; its renderer gives the page as text here, which the
    task that validated writes under the storage base itself.
    """
    from great_expectations.render.renderer import ValidationResultsPageRenderer

    document = ValidationResultsPageRenderer().render(mask_validation_result(result, pii_columns, mask_key))
    html = _data_docs_page_view().render(document)
    folder = _data_docs_root(data_docs_dir) / outcome.suite_name / outcome.validated_at.strftime("%Y-%m-%d")
    target = folder / f"{outcome.validated_at:%Y%m%dT%H%M%SZ}__{outcome.validation_id}.html"
    return storage.write_bytes(target, html.encode("utf-8"), overwrite=False)  # a page is never overwritten


def discard_data_docs_page(config: Mapping[str, Any], outcome: ValidationOutcome | None) -> None:
    """Delete the Data Docs page of a validation superseded before it was recorded (a chunk gated again on
    fewer statements): no audit row points to it, and it would show a verdict that decided nothing. Never
    raises: a page left behind (storage that refuses deletes, say) must not fail the publish."""
    if outcome is None or outcome.data_docs_path is None:
        return
    try:
        storage.stored_path(config, outcome.data_docs_path).unlink(missing_ok=True)
    except Exception:  # noqa: BLE001 - the page is clutter, the publish is what matters
        log.warning(
            "could not delete the superseded Data Docs page of validation %s; retention removes it by age",
            outcome.validation_id,
            exc_info=True,
        )


def run_suite(
    sqlalchemy_url: str,
    suite: SuiteDefinition,
    data_asset: str,
    batch_identifier: str,
    query: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    pii_columns: Iterable[str] = (),
    table: tuple[str, str] | None = None,
    data_docs_dir: Any = None,
) -> ValidationOutcome:
    """Validate a warehouse table (`table` = (schema, name)) or the rows of a read-only `query`.

    Prefer `table`: for a query asset GX runs the whole query once just to learn its columns,
    pulling every row into the worker (+660 MiB for a million-row file). Every run also writes
    its Data Docs page under `data_docs_dir` (an `ObjectStoragePath`, a local folder or a configured
    relative one; default: `quality.data_docs_dir` of the effective configuration), recording its URL.
    """
    if (query is None) == (table is None):
        raise ValueError("give exactly one of query and table")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    context = gx.get_context(mode="ephemeral")
    # The generic SQL data source (not add_postgres) accepts every URL SQLAlchemy does, such as
    # a Unix-socket host in the query string; GX reads "$NAME" as a config variable, hence the escape.
    source = context.data_sources.add_sql(
        name="warehouse",
        connection_string=sqlalchemy_url.replace("$", r"\$"),
        # No pool: a validation is a handful of queries, and pooled connections would outlive it.
        kwargs={"poolclass": NullPool},
    )
    try:
        if table is not None:
            asset = source.add_table_asset(name=data_asset, schema_name=table[0], table_name=table[1])
        else:
            asset = source.add_query_asset(name=data_asset, query=query)
        batch_definition = asset.add_batch_definition_whole_table("whole_batch")
        # The name GX shows on the Data Docs page carries the version, so a changed suite is visible there.
        # GX binds an expectation to one suite; copies keep SuiteDefinition reusable. The suite is built
        # whole: add_expectation() stores the whole suite again on every call, which for a suite of 60
        # expectations took longer than validating the rows.
        bound = [copy.copy(expectation) for expectation in suite.expectations]
        for expectation in bound:
            expectation.id = None
        gx_suite = context.suites.add(
            gx.ExpectationSuite(name=f"{suite.name} v{suite.version_string}", expectations=bound)
        )
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(
                name=f"{suite.name}:{batch_identifier}", data=batch_definition, suite=gx_suite
            )
        )
        validated_at = datetime.now(UTC)
        # A passing batch needs only the verdicts; the unexpected-value samples and counts that an
        # auditor needs are computed by a second, fuller run only when something failed.
        # The run name is what was validated (file and sha256, LMS batch, reference dates): Data
        # Docs show it on the page.
        run_id = RunIdentifier(run_name=batch_identifier[:200], run_time=validated_at)
        result = definition.run(
            expectation_parameters=dict(parameters or {}), result_format="BOOLEAN_ONLY", run_id=run_id
        )
        require_evaluated(result, suite.name, data_asset, batch_identifier)
        if not result.success:
            result = definition.run(
                expectation_parameters=dict(parameters or {}), result_format="SUMMARY", run_id=run_id
            )
            require_evaluated(result, suite.name, data_asset, batch_identifier)  # its fuller queries too
    finally:
        # Without this, a process that validates many batches (dag.test, a long-lived worker)
        # runs the warehouse out of connections.
        source.get_execution_engine().close()
        source.get_engine().dispose()
    pii_columns = tuple(pii_columns)
    # Read once per validation, at call time: a rotated key applies from the next validation on.
    mask_key = resolve_pii_mask_key() if pii_columns else None
    summaries = [summarize_expectation_result(r, pii_columns, mask_key) for r in result.results]
    stats = dict(result.statistics)
    outcome = ValidationOutcome(
        validation_id=str(uuid.uuid4()),
        suite_name=suite.name,
        suite_version=suite.version_string,
        data_asset=data_asset,
        batch_identifier=batch_identifier,
        success=bool(result.success),
        statistics=json.loads(json.dumps(stats, default=str)),
        results=summaries,
        validated_at=validated_at,
        failed=[s for s in summaries if not s["success"]],
    )
    outcome.data_docs_path = write_data_docs(result, outcome, pii_columns, data_docs_dir, mask_key)
    log.info(
        "validation %s on %s: %s (%s of %s expectations met); Data Docs: %s",
        suite.name,
        data_asset,
        "passed" if outcome.success else "FAILED",
        stats.get("successful_expectations"),
        stats.get("evaluated_expectations"),
        outcome.data_docs_path,
    )
    return outcome


def expectation_errors(result: Any) -> list[str]:
    """The messages of the errors that kept GX from evaluating an expectation: GX reports them as a failed
    expectation, in `exception_info` (flat, or keyed by each metric that raised)."""
    info = result.exception_info or {}
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    return [entry.get("exception_message") or "" for entry in entries if entry.get("raised_exception")]


def require_evaluated(result: Any, suite_name: str, data_asset: str, batch_identifier: str) -> None:
    """Raise `GateNotEvaluatedError` when some expectations of a validation run raised, named by their types
    and the errors' classes only, as a message may quote the query and the values it read."""
    results = [r for r in result.results if expectation_errors(r)]
    if not results:
        return
    evaluated = len(result.results)
    kinds = sorted({_error_class(message) for r in results for message in expectation_errors(r)})
    types = sorted({r.expectation_config.type for r in results})
    raise GateNotEvaluatedError(
        subject=f"validation {suite_name} of {data_asset} ({batch_identifier})",
        problem=(
            f"{len(results)} of {evaluated} expectations could not be evaluated ({', '.join(types)}) because "
            f"their queries failed ({', '.join(kinds)}); nothing was judged, quarantined or published"
        ),
        next_step=(
            "the task retries by itself; if it keeps failing, read the traceback in the task log and check "
            "the warehouse (connections, statement_timeout, disk), then clear the task"
        ),
        runbook_section="gate-not-evaluated",
    )


def _error_class(message: str) -> str:
    """`psycopg.errors.QueryCanceled` of SQLAlchemy's "(psycopg.errors.QueryCanceled) canceling ..."."""
    match = re.match(r"\(([\w.]+)\)", message)
    return match[1] if match else "an error"


def record_validation(conn: psycopg.Connection, outcome: ValidationOutcome, run: RunIdentity) -> None:
    """Insert the outcome into `audit.validation_result` (inside the caller's transaction; the statement is
    include/sql/audit/validation_result.sql)."""
    conn.execute(
        read_sql("audit", "validation_result"),
        {
            "validation_id": outcome.validation_id,
            "suite_name": outcome.suite_name,
            "suite_version": outcome.suite_version,
            "data_asset": outcome.data_asset,
            "batch_identifier": outcome.batch_identifier,
            "success": outcome.success,
            "evaluated": int(outcome.statistics.get("evaluated_expectations") or 0),
            "failed_count": len(outcome.failed),
            "statistics": Jsonb(outcome.statistics),
            "failed": Jsonb(outcome.failed),
            "results": Jsonb(outcome.results),
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "task_id": run.task_id,
            "map_index": run.map_index,
            "try_number": run.try_number,
            "data_docs_path": outcome.data_docs_path,
            "validated_at": outcome.validated_at,
        },
    )
