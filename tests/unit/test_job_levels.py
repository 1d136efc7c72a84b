"""hris.job_level_mapping: the configured rules are checked and compiled for core.map_job_level."""

from __future__ import annotations

import re

import pytest

from turnover_signals.config import ConfigError, load_config
from turnover_signals.hris.job_levels import compile_job_level_mapping, job_level_mapping


def test_the_default_mapping_compiles_exact_values_and_anchored_patterns():
    compiled = job_level_mapping(load_config(use_variable=False))
    assert compiled["values"]["senior"] == {"ordinal": 4, "label": "senior"}
    assert compiled["values"]["m2"] == {"ordinal": 6, "label": "senior manager"}
    assert [rule["ordinal"] for rule in compiled["patterns"]] == ["\\1", "\\1"]
    for rule in compiled["patterns"]:
        assert rule["pattern"].startswith("^(?:") and rule["pattern"].endswith(")$")


@pytest.mark.parametrize(
    ("value", "ordinal"),
    [("3", "3"), ("L3", "3"), ("P4", "4"), ("IC4", "4"), ("ic-4", "4"), ("12", "12")],
)
def test_the_default_patterns_match_the_common_shapes_whole(value, ordinal):
    # Python's reading of the compiled patterns, for the shapes the README promises; the warehouse's
    # reading (core.map_job_level) is tested against PostgreSQL in tests/integration/test_job_levels.py.
    patterns = job_level_mapping(load_config(use_variable=False))["patterns"]
    matching = [rule for rule in patterns if re.match(rule["pattern"], value, re.IGNORECASE)]
    assert (
        matching
        and re.sub(matching[0]["pattern"], matching[0]["ordinal"], value, flags=re.IGNORECASE) == ordinal
    )


@pytest.mark.parametrize("value", ["L3a", "xL3", "L", "Wizard", "3.0", "M2"])
def test_the_default_patterns_leave_other_values_to_the_exact_values_or_the_gate(value):
    patterns = job_level_mapping(load_config(use_variable=False))["patterns"]
    assert not [rule for rule in patterns if re.match(rule["pattern"], value, re.IGNORECASE)]


def test_exact_values_are_keyed_trimmed_and_lowercased():
    compiled = compile_job_level_mapping({"values": {" Principal ": {"ordinal": 7}}})
    assert compiled == {"values": {"principal": {"ordinal": 7, "label": None}}, "patterns": []}


def test_a_pattern_ordinal_may_be_a_number_or_a_group_and_its_label_may_use_groups():
    compiled = compile_job_level_mapping(
        {
            "patterns": [
                {"pattern": "Band ([A-D])(\\d)", "ordinal": "\\2", "label": "band \\1"},
                {"pattern": "Exec", "ordinal": 9},
            ]
        }
    )
    assert compiled["patterns"] == [
        {"pattern": "^(?:Band ([A-D])(\\d))$", "ordinal": "\\2", "label": "band \\1"},
        {"pattern": "^(?:Exec)$", "ordinal": "9", "label": None},
    ]


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        (None, "expected a mapping with values and patterns"),
        ({"value": {}}, "unknown key(s) value"),
        ({"values": {"senior": 4}}, "value 'senior': expected a mapping"),
        ({"values": {"senior": {"label": "senior"}}}, "value 'senior': ordinal is missing"),
        ({"values": {"senior": {"ordinal": "4"}}}, "value 'senior': ordinal must be a whole number"),
        ({"values": {"senior": {"ordinal": True}}}, "value 'senior': ordinal must be a whole number"),
        ({"values": {"senior": {"ordinal": 10**9}}}, "at most nine digits"),
        ({"values": {"senior": {"ordinal": 4, "rank": 1}}}, "value 'senior': unknown key(s) rank"),
        ({"values": {"Senior": {"ordinal": 4}, "senior ": {"ordinal": 5}}}, "listed twice"),
        ({"patterns": {"pattern": "L(\\d+)"}}, "patterns must be a list"),
        (
            {"patterns": [{"pattern": "L(\\d+", "ordinal": "\\1"}]},
            "pattern 1: 'L(\\\\d+' is not a regular expression",
        ),
        ({"patterns": [{"pattern": "", "ordinal": 1}]}, "pattern 1: pattern must be a regular expression"),
        (
            {"patterns": [{"pattern": "L(\\d+)", "ordinal": "\\2"}]},
            "ordinal refers to group 2, the pattern has 1",
        ),
        (
            {"patterns": [{"pattern": "L(\\d+)", "ordinal": "level \\1"}]},
            "ordinal must be a whole number or a group",
        ),
        (
            {"patterns": [{"pattern": "L(\\d+)", "ordinal": "\\1", "label": "L\\&"}]},
            "label may hold no backslash",
        ),
        ({"patterns": [{"pattern": "L(\\d+)", "ordinal": "\\1", "label": 3}]}, "label must be text"),
    ],
)
def test_a_mapping_that_cannot_be_applied_is_a_configuration_error_naming_the_rule(mapping, problem):
    with pytest.raises(ConfigError, match="hris.job_level_mapping") as raised:
        compile_job_level_mapping(mapping)
    assert problem in raised.value.problem
    assert "runbook: docs/runbook/warehouse.md#runbook-configuration" in str(raised.value)
