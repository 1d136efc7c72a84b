"""Whether a model run can train at all: a first install has no settled training dates for months.

The monthly schedule starts a run as soon as the DAG is unpaused. Until the training set holds enough
reference dates whose label horizon has closed for everyone (`dataset.time_split`), training cannot
split it in time; that is the normal state of a new install, not an incident, so the run skips with the
reason instead of failing and paging on-call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnover_signals.errors import BadInputError
from turnover_signals.model.dataset import load_training_set, model_features, time_split
from turnover_signals.warehouse import warehouse_connection


def reason_to_skip_training(config: Mapping[str, Any], dsn: str | None = None) -> str | None:
    """Why training would have nothing to train on now (None: train)."""
    version = int(config["features"]["feature_set_version"])
    horizon = int(config["model"]["horizon_days"])
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        one_feature = model_features(conn)["hr_only"][
            :1
        ]  # the split needs labels and dates, not the features
        frame = load_training_set(conn, version, horizon, one_feature)
    try:
        time_split(frame, config)
    except BadInputError as not_enough:
        return (
            f"not enough settled training dates yet ({not_enough.problem}); a new install has none until the "
            f"label horizon ({horizon} days) has passed for enough built reference dates. Next step: none on "
            "a new install; otherwise check that turnover_features builds its dates (runbook-turnover_model)"
        )
    return None
