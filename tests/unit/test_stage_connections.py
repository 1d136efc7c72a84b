"""Least privilege fails closed (issue 22, point 4): a stage whose warehouse connection is not defined is
refused, naming the connection and the next step, unless `security.allow_owner_fallback` says a single
login is intended."""

from __future__ import annotations

import copy
import logging

import pytest

from turnover_signals.airflow_tasks import config_for_stage
from turnover_signals.config import ConfigError, load_config

DEFINED = {"warehouse_loader", "warehouse_transformer", "warehouse_quality_reader"}


def nothing_defined(_conn_id: str) -> bool:
    return False


@pytest.fixture
def config() -> dict:
    return load_config(use_variable=False)


def with_fallback(config: dict, allowed) -> dict:
    return {**copy.deepcopy(config), "security": {"allow_owner_fallback": allowed}}


def test_the_file_keeps_the_fallback_off(config):
    assert config["security"]["allow_owner_fallback"] is False


def test_each_stage_uses_its_own_connection(config):
    chosen = {
        name: config_for_stage(config, name, DEFINED.__contains__)["connections"]["warehouse"]
        for name in ("owner", "loader", "transformer", "quality_reader")
    }
    assert chosen == {
        "owner": "warehouse_postgres",
        "loader": "warehouse_loader",
        "transformer": "warehouse_transformer",
        "quality_reader": "warehouse_quality_reader",
    }
    assert config["connections"]["warehouse"] == "warehouse_postgres"  # the caller's config is not changed


@pytest.mark.parametrize(
    ("stage_name", "conn_id", "group"),
    [
        ("loader", "warehouse_loader", "turnover_loader"),
        ("transformer", "warehouse_transformer", "turnover_transformer"),
        ("quality_reader", "warehouse_quality_reader", "turnover_quality_reader"),
    ],
)
def test_a_missing_stage_connection_is_refused_naming_it_and_the_next_step(
    config, stage_name, conn_id, group
):
    with pytest.raises(ConfigError) as refused:
        config_for_stage(config, stage_name, nothing_defined)
    message = str(refused.value)
    assert message.startswith(
        f"warehouse connection {conn_id} (stage {stage_name}): is not defined in Airflow"
    )
    assert "the owner's warehouse_postgres is not used in its place" in message
    assert (
        f"Next step: create a login in the stage's group role {group} and the Airflow connection {conn_id}"
        in (message)
    )
    assert "security.allow_owner_fallback: true" in message
    assert "docs/runbook/warehouse.md#runbook-stage-connection" in message


def test_the_explicit_setting_allows_the_owners_connection_with_a_warning(config, caplog):
    with caplog.at_level(logging.WARNING, logger="turnover_signals.airflow_tasks"):
        chosen = config_for_stage(with_fallback(config, True), "loader", nothing_defined)
    assert chosen["connections"]["warehouse"] == "warehouse_postgres"
    assert "warehouse connection warehouse_loader (stage loader) is not defined" in caplog.text


@pytest.mark.parametrize("value", ["true", "yes", 1, None])
def test_a_fallback_setting_that_is_not_a_boolean_is_refused(config, value):
    with pytest.raises(ConfigError, match="security.allow_owner_fallback: must be true or false"):
        config_for_stage(with_fallback(config, value), "loader", nothing_defined)


def test_a_renamed_stage_connection_is_used_when_defined(config):
    renamed = copy.deepcopy(config)
    renamed["connections"]["warehouse_transformer"] = "dwh_transform"  # the Variable may rename it
    chosen = config_for_stage(renamed, "transformer", {"dwh_transform"}.__contains__)
    assert chosen["connections"]["warehouse"] == "dwh_transform"
    with pytest.raises(ConfigError, match="warehouse connection dwh_transform"):
        config_for_stage(renamed, "transformer", DEFINED.__contains__)


def test_an_unknown_stage_is_refused(config):
    with pytest.raises(ValueError, match="unknown warehouse stage"):
        config_for_stage(config, "analyst", DEFINED.__contains__)


def test_the_task_boundary_fails_a_missing_stage_connection_without_retry(monkeypatch):
    """`load_stage_config`, which every task reads its stage through, turns the refusal into
    AirflowFailException (a missing connection does not appear by retrying)."""
    from airflow.sdk.exceptions import AirflowFailException

    from turnover_signals.airflow_tasks import load_stage_config

    monkeypatch.setattr("turnover_signals.config.read_variable_override", lambda: {})
    for conn_id in DEFINED:
        monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)
    with pytest.raises(AirflowFailException, match="warehouse connection warehouse_loader"):
        load_stage_config("loader")


def test_the_deploy_check_fails_a_missing_stage_connection_unless_the_fallback_is_set(config, monkeypatch):
    from turnover_signals.deploy.check import FAIL, WARN, ConnectionLookup, check_stage_login

    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE_LOADER", raising=False)
    closed = check_stage_login("loader", "warehouse_loader", config, ConnectionLookup(), "owner")
    assert closed.status == FAIL and "security.allow_owner_fallback is false" in closed.detail
    single_login = check_stage_login(
        "loader", "warehouse_loader", with_fallback(config, True), ConnectionLookup(), "owner"
    )
    assert single_login.status == WARN
