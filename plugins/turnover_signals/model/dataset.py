"""The training set as a frame, its feature sets and the time-based split.

The split is by reference date only, never by employee, and only over settled dates: those whose
label horizon has fully passed (reference_date + horizon_days <= the HR known-through date the
labels were computed with). A leaver is labelled as soon as the exit is known, a stayer only once
the horizon closes, so a date whose horizon is still open holds mostly leavers: training or
evaluating on it would flatter any model. The last `test_reference_dates` settled dates are the
test window; the last `calibration_reference_dates` before it calibrate the probabilities and
choose the algorithm; the rest fit the models. A row at date d looks `horizon_days` ahead, so
the dates within one horizon before the calibration window and before the test window are
purged (their labels would see into the next window).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
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
        sql.Identifier(f)
        if f in CATEGORICAL_FEATURES
        else sql.SQL("{0}::int::float8 as {0}").format(sql.Identifier(f))
        if f.startswith("is_")
        else sql.SQL("{0}::float8 as {0}").format(sql.Identifier(f))
        for f in features
    )


def load_training_set(
    conn: psycopg.Connection, version: int, horizon_days: int, features: list[str]
) -> pd.DataFrame:
    """Labelled rows of `mart.training_set` for one feature set version and horizon, oldest first.

    Each row carries `hr_known_through`: the least HR known-through date any label of its
    reference date (labelled or not, this horizon) was computed with, null if one has none, so
    that `settled_reference_dates` can tell the dates whose horizon has closed for everyone.
    """
    columns = ["employee_key", "reference_date", "label", "build_id", "hr_known_through", *features]
    query = sql.SQL(
        "select training.employee_key, training.reference_date, training.label, training.build_id,"
        " known.hr_known_through, {} from mart.training_set as training"
        " inner join (select reference_date, case when bool_and(hr_known_through is not null)"
        "   then min(hr_known_through) end as hr_known_through"
        "   from mart.turnover_label where horizon_days = %s group by reference_date) as known"
        " on known.reference_date = training.reference_date"
        " where training.feature_set_version = %s and training.horizon_days = %s"
        " order by training.reference_date, training.employee_key"
    ).format(selected_features(features))
    # Fresh bulk loads leave the planner without statistics, and the view's join then crawls.
    analyze_table(conn, "mart", "employee_features")
    analyze_table(conn, "mart", "turnover_label")
    with conn.cursor() as cur:
        cur.execute(query, (horizon_days, version, horizon_days))
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
    purged_dates: list[date]  # within one horizon before the calibration or the test window
    open_dates: list[date] = field(default_factory=list)  # labelled, but the horizon has not closed

    def window(self, part: str) -> tuple[date, date]:
        dates = getattr(self, f"{part}_dates")
        return dates[0], dates[-1]

    def rows(self, frame: pd.DataFrame, part: str) -> pd.DataFrame:
        return frame[frame["reference_date"].isin(getattr(self, f"{part}_dates"))]

    def used_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of the fit, calibration and test dates: everything a model run sees."""
        return frame[frame["reference_date"].isin(self.fit_dates + self.calibration_dates + self.test_dates)]


def settled_reference_dates(frame: pd.DataFrame, horizon_days: int) -> tuple[list[date], list[date]]:
    """(settled, open): reference dates whose label horizon has passed for every row, and the others.

    A date is settled when every row has a label and date + horizon_days <= its `hr_known_through`.
    Before that, leavers already carry their positive label while stayers have none yet, so the
    date's labelled rows are mostly exits.
    """
    horizon = timedelta(days=int(horizon_days))
    known = pd.to_datetime(frame["hr_known_through"])
    horizon_end = pd.to_datetime(frame["reference_date"]) + horizon
    row_settled = frame["label"].notna() & known.notna() & (horizon_end <= known)
    by_date = row_settled.groupby(frame["reference_date"]).all()
    return sorted(by_date.index[by_date]), sorted(by_date.index[~by_date])


def time_split(frame: pd.DataFrame, config: Mapping[str, Any]) -> TimeSplit:
    """Split the settled reference dates of `frame` in time: fit < (gap) < calibration < (gap) < test.

    `frame` needs `reference_date`, `label` and `hr_known_through` (see `load_training_set`).
    """
    model = config["model"]
    horizon = timedelta(days=int(model["horizon_days"]))
    n_test, n_calibration = int(model["test_reference_dates"]), int(model["calibration_reference_dates"])
    dates, open_dates = settled_reference_dates(frame, horizon.days)
    if len(dates) < n_test + n_calibration + 1:
        raise BadInputError(
            "mart.training_set",
            f"{len(dates)} reference date(s) whose {horizon.days}-day label horizon has passed"
            f" ({len(open_dates)} more still open), the time-based split needs more than "
            f"{n_test + n_calibration} (test {n_test}, calibration {n_calibration}) plus the purge gaps",
            "build more reference dates (turnover_features) or lower model.test_reference_dates",
            RUNBOOK_SECTION,
        )
    test = dates[-n_test:]
    before = [d for d in dates[:-n_test] if d + horizon < test[0]]
    purged = [d for d in dates[:-n_test] if d + horizon >= test[0]]
    calibration = before[-n_calibration:]
    fit = [d for d in before[:-n_calibration] if d + horizon < calibration[0]]
    purged += [d for d in before[:-n_calibration] if d + horizon >= calibration[0]]
    if len(before) < n_calibration + 1 or not fit:
        raise BadInputError(
            "mart.training_set",
            f"no fit date ends its {horizon.days}-day horizon before the calibration window"
            f" ({len(before)} date(s) end it before the test window)",
            "build more reference dates (turnover_features) or lower model.test_reference_dates",
            RUNBOOK_SECTION,
        )
    return TimeSplit(fit, calibration, test, sorted(purged), open_dates)


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the rows a model saw, for the registry's lineage."""
    hashed = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    return hashlib.sha256(np.ascontiguousarray(hashed).tobytes()).hexdigest()
