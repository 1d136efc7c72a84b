"""turnover_model at parse time: monthly on the 2nd after the month-end features, and on demand with
params."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest
from airflow.sdk.exceptions import ParamValidationError

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "turnover_model.py"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["turnover_model"]


def test_the_schedule_is_monthly_on_the_second_at_nine_utc(dag):
    from airflow.timetables.base import DataInterval, TimeRestriction
    from airflow.timetables.trigger import CronTriggerTimetable

    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.timetable.summary == "0 9 2 * *"
    restriction = TimeRestriction(earliest=None, latest=None, catchup=False)
    runs, last = [], datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    for _ in range(3):
        info = dag.timetable.next_dagrun_info(
            last_automated_data_interval=DataInterval.exact(last), restriction=restriction
        )
        last = info.run_after
        runs.append(last)
    assert runs == [
        datetime(2026, 12, 2, 9, tzinfo=UTC),
        datetime(2027, 1, 2, 9, tzinfo=UTC),
        datetime(2027, 2, 2, 9, tzinfo=UTC),
    ]
    assert dag.catchup is False and dag.max_active_runs == 1


def test_on_demand_runs_are_allowed_and_their_params_default_to_a_normal_run(dag):
    assert dag.allowed_run_types is None or "manual" in dag.allowed_run_types
    assert dict(dag.params.validate()) == {"allow_promotion": True, "force_promotion": False}
    triggered = copy.deepcopy(dag.params)  # a manual run's conf goes over the defaults like this
    triggered.update({"allow_promotion": False, "force_promotion": True})
    assert dict(triggered.validate()) == {"allow_promotion": False, "force_promotion": True}
    with pytest.raises(ParamValidationError, match="allow_promotion|boolean"):
        copy.deepcopy(dag.params).update({"allow_promotion": "maybe"})
