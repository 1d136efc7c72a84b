"""The LRS watcher's decisions, its kwargs, its configuration, and how lms_api_ingest is wired to it.

The watcher against the real sample LRS and PostgreSQL is in tests/integration/test_lms_watcher.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from turnover_signals.config import ConfigError, load_config
from turnover_signals.lms.watch import (
    MAX_BACKOFF_POLLS,
    Announcements,
    LmsStatementsStoredTrigger,
    Probe,
    announce_lms_activity,
    backoff_seconds,
    config_for_run,
    event_run_overlap,
    poll_seconds,
    reason_not_to_announce,
    refire_after,
    watch_settings,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REFIRE = timedelta(minutes=15)


def probe(newest_minutes: float | None, loaded_minutes: float | None = 0) -> Probe:
    at = None if newest_minutes is None else T + timedelta(minutes=newest_minutes)
    loaded = None if loaded_minutes is None else T + timedelta(minutes=loaded_minutes)
    return Probe(loaded_through=loaded, newest_stored=at)


# -- when to fire --------------------------------------------------------------------------------


def test_nothing_stored_after_the_watermark_fires_nothing():
    assert not Announcements().should_fire(probe(None), REFIRE, now=0.0)


def test_the_first_new_statement_fires():
    assert Announcements().should_fire(probe(1), REFIRE, now=0.0)


def test_statements_already_announced_do_not_fire_again_while_a_run_loads_them():
    announced = Announcements()
    announced.record(probe(1), now=0.0)
    assert not announced.should_fire(probe(1), REFIRE, now=60.0)
    assert not announced.should_fire(probe(1), REFIRE, now=REFIRE.total_seconds() - 1)


def test_a_statement_stored_after_the_announced_one_fires_at_once():
    announced = Announcements()
    announced.record(probe(1), now=0.0)
    assert announced.should_fire(probe(2), REFIRE, now=1.0)


def test_announced_statements_still_not_loaded_after_the_refire_time_fire_again():
    """A run that failed, or an event the scheduler never turned into a run, does not strand them."""
    announced = Announcements()
    announced.record(probe(1), now=0.0)
    assert announced.should_fire(probe(1), REFIRE, now=REFIRE.total_seconds())


def test_recording_keeps_the_newest_announced_statement():
    announced = Announcements()
    announced.record(probe(5), now=0.0)
    announced.record(probe(3), now=10.0)  # an LRS that ignores ascending=false answers an older one
    assert announced.newest == T + timedelta(minutes=5) and announced.at == 10.0


def test_failed_polls_back_off_up_to_a_cap_and_never_stop():
    waits = [backoff_seconds(60, failures) for failures in range(1, 8)]
    assert waits[:4] == [60, 120, 240, 480]
    assert max(waits) == waits[-1] == 60 * MAX_BACKOFF_POLLS


# -- kwargs: stored in the metadata DB -------------------------------------------------------------


def test_kwargs_hold_connection_ids_and_the_poll_interval_only():
    classpath, kwargs = LmsStatementsStoredTrigger("lms_api", "warehouse_loader", 30).serialize()
    assert classpath == "turnover_signals.lms.watch.LmsStatementsStoredTrigger"
    assert kwargs == {"lrs_conn_id": "lms_api", "warehouse_conn_id": "warehouse_loader", "poll_seconds": 30}
    assert LmsStatementsStoredTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_the_bundles_watcher_reads_everything_when_it_polls():
    from turnover_signals.assets import LMS_STATEMENTS_STORED

    (watcher,) = LMS_STATEMENTS_STORED.watchers
    assert isinstance(watcher.trigger, LmsStatementsStoredTrigger)
    assert watcher.trigger.serialize()[1] == {
        "lrs_conn_id": None,
        "warehouse_conn_id": None,
        "poll_seconds": None,
    }


# -- configuration -------------------------------------------------------------------------------


def test_the_defaults_poll_every_minute_and_refire_after_five_minutes():
    config = load_config(use_variable=False)
    assert poll_seconds(config) == 60
    assert refire_after(config) == timedelta(minutes=5)
    assert event_run_overlap(config) == timedelta(minutes=10)


@pytest.mark.parametrize("value", [0, -5, "soon", None])
def test_an_unusable_poll_interval_names_the_key_and_the_fix(value):
    config = load_config({"lms": {"watch_poll_seconds": value}}, use_variable=False)
    if value is None:  # null removes the key from the file's defaults: the built-in default applies
        assert poll_seconds(config) == 60
        return
    with pytest.raises(ConfigError, match=r"lms\.watch_poll_seconds.*positive number"):
        poll_seconds(config)


def test_settings_take_explicit_kwargs_over_the_configuration():
    config = load_config({"lms": {"watch_poll_seconds": 20}}, use_variable=False)
    settings = watch_settings(config, "other_lrs", "warehouse_x", None)
    assert (settings.lrs_conn_id, settings.warehouse_conn_id, settings.poll_seconds) == (
        "other_lrs",
        "warehouse_x",
        20,
    )
    assert settings.source == "xapi:other_lrs"  # the key the extraction writes its watermark under


# -- the runs it triggers ------------------------------------------------------------------------


def test_an_event_run_rereads_minutes_before_the_watermark_and_other_runs_keep_the_days():
    config = load_config(use_variable=False)
    event = config_for_run(config, "asset_triggered")
    assert event["lms"]["since_overlap_days"] == pytest.approx(10 / (24 * 60))
    assert (
        config_for_run(config, "scheduled")["lms"]["since_overlap_days"]
        == config["lms"]["since_overlap_days"]
    )
    assert (
        config_for_run(config, "manual")["lms"]["since_overlap_days"] == config["lms"]["since_overlap_days"]
    )


def test_an_event_run_skips_the_announcement_and_other_runs_make_it():
    from airflow.sdk.exceptions import AirflowSkipException
    from airflow.utils.types import DagRunType

    with pytest.raises(AirflowSkipException, match="LRS watcher"):
        announce_lms_activity(DagRunType.ASSET_TRIGGERED)
    for run_type in (DagRunType.SCHEDULED, DagRunType.MANUAL, "scheduled"):
        assert reason_not_to_announce(run_type) is None
        assert announce_lms_activity(run_type) == "announced"


# -- the DAG -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lms_dag(airflow_metadata_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "lms_api_ingest.py"))
    assert bag.import_errors == {}
    return bag.get_dag("lms_api_ingest")


def test_the_dag_runs_on_the_watched_lrs_asset_or_hourly(lms_dag):
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.trigger import CronTriggerTimetable

    from turnover_signals.assets import LMS_STATEMENTS_STORED

    timetable = lms_dag.timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert isinstance(timetable.timetable, CronTriggerTimetable)
    assert timetable.timetable._expression == "10 * * * *"
    # as the DAG is serialized for the scheduler: the asset, its watcher and the trigger's kwargs
    (asset,) = [asset for _, asset in timetable.asset_condition.iter_assets()]
    assert (asset.name, asset.uri) == (LMS_STATEMENTS_STORED.name, LMS_STATEMENTS_STORED.uri)
    (watcher,) = asset.watchers
    assert watcher.name == "lms_statements_watcher"
    assert watcher.trigger == {
        "classpath": "turnover_signals.lms.watch.LmsStatementsStoredTrigger",
        "kwargs": {"lrs_conn_id": None, "warehouse_conn_id": None, "poll_seconds": None},
    }


def test_only_the_announcing_task_emits_lms_activity(lms_dag):
    from turnover_signals.assets import LMS_ACTIVITY

    emitting = {task.task_id for task in lms_dag.tasks if LMS_ACTIVITY in task.outlets}
    assert emitting == {"announce_lms_activity"}
    announce = lms_dag.get_task("announce_lms_activity")
    assert announce.upstream_task_ids == {"extract_lms_statements"}
    assert announce.trigger_rule == "all_success"  # a failed extraction announces nothing


# -- the provisional view ------------------------------------------------------------------------


def test_the_provisional_view_has_one_definition_that_says_its_grain():
    view_file = (
        REPO_ROOT / "include/sql/repeatable/views/mart.lms_activity_today_provisional.sql"
    ).read_text()
    assert view_file.splitlines()[0].startswith("-- one row per learner statement")
    assert "create or replace view mart.lms_activity_today_provisional as" in view_file
    migrations = (REPO_ROOT / "include/sql/ddl").glob("*.sql")
    assert not any("view mart.lms_activity_today_provisional" in path.read_text() for path in migrations)
