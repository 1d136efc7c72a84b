"""Small helpers shared by the DAG files: default arguments and the run identity of a task."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from turnover_signals.errors import BadInputError
from turnover_signals.quality.gate import RunIdentity

OWNER = "people-analytics-data-eng"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
}


@contextmanager
def bad_input_fails_without_retry() -> Iterator[None]:
    """Turn a `BadInputError` into a failure that Airflow does not retry.

    The input is quarantined and will fail the same way again until it is corrected, so a
    retry only delays the alert; transient faults (servers down) still retry as configured.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except BadInputError as exc:
        raise AirflowFailException(str(exc)) from exc


def current_run_identity() -> RunIdentity:
    """The dag / run / task / map index / try of the running task instance."""
    from airflow.sdk import get_current_context

    return RunIdentity.from_context(get_current_context())
