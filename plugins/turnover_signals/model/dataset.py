"""The training set as a frame, its feature sets and the time-based split.

The split is by reference date only, never by employee: the last `test_reference_dates`
labelled dates are the test window; training rows must have a label horizon that ends before
the test window starts (a row at date d looks `horizon_days` ahead, so a row closer to the
test window would have seen into it). The last `calibration_reference_dates` of what remains
calibrate the probabilities and choose the algorithm; the rest fit the models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from turnover_signals.errors import BadInputError
from turnover_signals.features.build import LMS_COLUMNS, NON_FEATURE_COLUMNS, feature_columns
from turnover_signals.warehouse import analyze_table

FEATURE_SETS = ("hr_only", "hr_lms")
CATEGORICAL_FEATURES = ("department", "location")
RUNBOOK_SECTION = "turnover_model"


def model_features(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The feature columns of each feature set: HR only, and HR + LMS (same order as the table)."""
    every = [c for c in feature_columns(conn) if c not in NON_FEATURE_COLUMNS]
    return {"hr_only": [c for c in every if c not in LMS_COLUMNS], "hr_lms": every}


def as_numeric_frame(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Features as floats (numeric(…) arrives as Decimal, booleans as bool) and categories as strings."""
    out = pd.DataFrame(index=frame.index)
    for column in features:
        if column in CATEGORICAL_FEATURES:
            out[column] = frame[column].astype("object").where(frame[column].notna(), "unknown").astype(str)
        else:
            out[column] = pd.to_numeric(frame[column].astype("object"), errors="coerce").astype(float)
    return out


def selected_features(features: list[str]) -> sql.Composed:
    """Numeric features as float8 in SQL: Decimal values would cost seconds to convert in Python."""
    return sql.SQL(", ").join(
        sql.Identifier(f) if f in CATEGORICAL_FEATURES else sql.SQL("{0}::int::float8 as {0}").format(sql.Identifier(f))
        if f.startswith("is_") else sql.SQL("{0}::float8 as {0}").format(sql.Identifier(f))
        for f in features
    )


def load_training_set(conn: psycopg.Connection, version: int, horizon_days: int, features: list[str]) -> pd.DataFrame:
    """Labelled rows of `mart.training_set` for one feature set version and horizon, oldest first."""
    columns = ["employee_key", "reference_date", "label", "build_id", *features]
    query = sql.SQL(
        "select employee_key, reference_date, label, build_id, {} from mart.training_set"
        " where feature_set_version = %s and horizon_days = %s order by reference_date, employee_key"
    ).format(selected_features(features))
    # Fresh bulk loads leave the planner without statistics, and the view's join then crawls.
    analyze_table(conn, "mart", "employee_features")
    analyze_table(conn, "mart", "turnover_label")
    with conn.cursor() as cur:
        cur.execute(query, (version, horizon_days))
        frame = pd.DataFrame(cur.fetchall(), columns=columns)
    frame["label"] = frame["label"].astype(bool)
    return frame


def load_scoring_rows(conn: psycopg.Connection, version: int, features: list[str]) -> pd.DataFrame:
    """Every employee's features at the latest built reference date of the feature set version."""
    columns = ["employee_key", "reference_date", *features]
    query = sql.SQL(
        "select employee_key, reference_date, {} from mart.employee_features where feature_set_version = %s"
        " and reference_date = (select max(reference_date) from mart.employee_features"
        " where feature_set_version = %s) order by employee_key"
    ).format(selected_features(features))
    with conn.cursor() as cur:
        cur.execute(query, (version, version))
        return pd.DataFrame(cur.fetchall(), columns=columns)


@dataclass(frozen=True)
class TimeSplit:
    fit_dates: list[date]
    calibration_dates: list[date]
    test_dates: list[date]
    purged_dates: list[date]

    def window(self, part: str) -> tuple[date, date]:
        dates = getattr(self, f"{part}_dates")
        return dates[0], dates[-1]

    def rows(self, frame: pd.DataFrame, part: str) -> pd.DataFrame:
        return frame[frame["reference_date"].isin(getattr(self, f"{part}_dates"))]


def time_split(reference_dates: list[date], config: Mapping[str, Any]) -> TimeSplit:
    """Split labelled reference dates in time: fit < calibration < (purged gap) < test."""
    model = config["model"]
    horizon = timedelta(days=int(model["horizon_days"]))
    n_test, n_calibration = int(model["test_reference_dates"]), int(model["calibration_reference_dates"])
    dates = sorted(set(reference_dates))
    if len(dates) < n_test + n_calibration + 1:
        raise BadInputError(
            "mart.training_set",
            f"{len(dates)} labelled reference date(s), the time-based split needs more than "
            f"{n_test + n_calibration} (test {n_test}, calibration {n_calibration}) plus the purge gap",
            "build more reference dates (turnover_features) or lower model.test_reference_dates",
            RUNBOOK_SECTION,
        )
    test = dates[-n_test:]
    before = [d for d in dates[:-n_test] if d + horizon < test[0]]
    purged = [d for d in dates[:-n_test] if d + horizon >= test[0]]
    if len(before) < n_calibration + 1:
        raise BadInputError(
            "mart.training_set",
            f"only {len(before)} reference date(s) end their {horizon.days}-day horizon before the test window",
            "build more reference dates (turnover_features) or lower model.test_reference_dates",
            RUNBOOK_SECTION,
        )
    return TimeSplit(before[:-n_calibration], before[-n_calibration:], test, purged)


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the rows a model saw, for the registry's lineage."""
    hashed = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    return hashlib.sha256(np.ascontiguousarray(hashed).tobytes()).hexdigest()
