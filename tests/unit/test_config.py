import json

import pytest

from turnover_signals.config import ConfigError, deep_merge, load_config, parse_override


def test_file_defaults_are_complete():
    config = load_config(use_variable=False)
    assert config["hris"]["remote_dir"] == "/outbound/hris"
    assert config["connections"]["warehouse"] == "warehouse_postgres"
    assert config["features"]["windows_days"] == [30, 90, 180]


def test_variable_json_is_deep_merged_over_the_file():
    override = json.dumps({"hris": {"remote_dir": "/exports/workday"}, "features": {"windows_days": [7]}})
    config = load_config(override, use_variable=False)
    assert config["hris"]["remote_dir"] == "/exports/workday"
    # a sibling key of the overridden one keeps its default
    assert config["hris"]["control_file_suffix"] == ".ctl"
    # lists replace rather than merge
    assert config["features"]["windows_days"] == [7]


def test_deep_merge_does_not_mutate_its_inputs():
    base = {"a": {"b": 1, "c": 2}}
    merged = deep_merge(base, {"a": {"b": 5}})
    assert merged == {"a": {"b": 5, "c": 2}}
    assert base == {"a": {"b": 1, "c": 2}}


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]"])
def test_bad_variable_names_itself_and_the_fix(raw):
    with pytest.raises(ConfigError, match="turnover_signals"):
        parse_override(raw)


def test_airflow_variable_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"lms": {"statements_page_limit": 50}}))
    assert load_config()["lms"]["statements_page_limit"] == 50
    monkeypatch.delenv("AIRFLOW_VAR_TURNOVER_SIGNALS")
    assert load_config()["lms"]["statements_page_limit"] == 500
