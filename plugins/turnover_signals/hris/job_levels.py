"""Vendor job levels onto one integer scale: the configured `hris.job_level_mapping`, checked.

HRIS exports write job levels as `L3`, `P4`, `IC4`, `M2`, `Senior` or a plain `3`; features need an
ordinal. The mapping has exact `values` (looked up trimmed and ignoring case) and `patterns` tried in
order after them; each pattern must match the whole trimmed value (a PostgreSQL regular expression,
case ignored), and its `ordinal` and `label` may use its groups (`\\1`). The warehouse function
`core.map_job_level` (migration 0023) applies it, in the HRIS gate (a value it does not map fails the
file) and in the history build, which keeps the vendor's text as `job_level_raw` beside the ordinal
`job_level` and the rule's `job_level_label`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import psycopg

from turnover_signals.config import ConfigError

SETTING = "hris.job_level_mapping"
# core.parse_integer_text reads at most nine digits: a larger ordinal would map to nothing.
LARGEST_ORDINAL = 999_999_999
_GROUP_REFERENCE = re.compile(r"\\([1-9])")
_ORDINAL_TEXT = re.compile(r"-?[0-9]{1,9}|\\[1-9]")


def _invalid(problem: str) -> ConfigError:
    return ConfigError(
        subject=SETTING,
        problem=problem,
        next_step="fix the mapping in the turnover_signals Variable (docs/reference/configuration.md) and "
        "rerun the task",
        runbook_section="configuration",
    )


def _ordinal(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > LARGEST_ORDINAL:
        raise _invalid(f"{where}: ordinal must be a whole number of at most nine digits, got {value!r}")
    return value


def _label(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _invalid(f"{where}: label must be text, got {value!r}")
    return value


def _only_keys(rule: Any, allowed: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(rule, Mapping):
        raise _invalid(f"{where}: expected a mapping with {', '.join(sorted(allowed))}, got {rule!r}")
    unknown = sorted(set(rule) - allowed)
    if unknown:
        raise _invalid(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
    if "ordinal" not in rule:
        raise _invalid(f"{where}: ordinal is missing")
    return rule


def _exact_values(values: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(values, Mapping):
        raise _invalid(f"values must map a vendor value to {{ordinal, label}}, got {values!r}")
    compiled: dict[str, dict[str, Any]] = {}
    for vendor_value, rule in values.items():
        where = f"value {vendor_value!r}"
        rule = _only_keys(rule, {"ordinal", "label"}, where)
        key = str(vendor_value).strip().lower()
        if key in compiled:
            raise _invalid(f"{where} is listed twice (values are compared trimmed and ignoring case)")
        compiled[key] = {
            "ordinal": _ordinal(rule["ordinal"], where),
            "label": _label(rule.get("label"), where),
        }
    return compiled


def _template(text: str, groups: int, where: str, what: str) -> None:
    """`\\N` is the only backslash a pattern's ordinal or label may hold, N one of the pattern's groups."""
    for reference in _GROUP_REFERENCE.finditer(text):
        if int(reference[1]) > groups:
            raise _invalid(f"{where}: {what} refers to group {reference[1]}, the pattern has {groups}")
    if "\\" in _GROUP_REFERENCE.sub("", text):
        raise _invalid(f"{where}: {what} may hold no backslash other than a group reference \\1 to \\9")


def _pattern_rule(position: int, rule: Any) -> dict[str, Any]:
    where = f"pattern {position}"
    rule = _only_keys(rule, {"pattern", "ordinal", "label"}, where)
    pattern = rule.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise _invalid(f"{where}: pattern must be a regular expression, got {pattern!r}")
    try:
        groups = re.compile(pattern).groups
    except re.error as exc:
        raise _invalid(f"{where}: {pattern!r} is not a regular expression ({exc})") from exc
    where = f"{where} ({pattern})"
    ordinal = rule["ordinal"]
    if isinstance(ordinal, str):
        ordinal = ordinal.strip()
        if not _ORDINAL_TEXT.fullmatch(ordinal):
            raise _invalid(
                f"{where}: ordinal must be a whole number or a group reference \\1 to \\9, got {ordinal!r}"
            )
        _template(ordinal, groups, where, "ordinal")
    else:
        ordinal = str(_ordinal(ordinal, where))
    label = _label(rule.get("label"), where)
    if label is not None:
        _template(label, groups, where, "label")
    # Anchored here so that a pattern always decides on the whole value, whatever its author wrote.
    return {"pattern": f"^(?:{pattern})$", "ordinal": ordinal, "label": label}


def compile_job_level_mapping(mapping: Any) -> dict[str, Any]:
    """The configured mapping, checked, in the shape `core.map_job_level` reads (JSON).

    Raises ConfigError naming the rule at fault: a mapping that cannot be applied must stop the task,
    not map every level to nothing.
    """
    if not isinstance(mapping, Mapping):
        raise _invalid(f"expected a mapping with values and patterns, got {mapping!r}")
    unknown = sorted(set(mapping) - {"values", "patterns"})
    if unknown:
        raise _invalid(f"unknown key(s) {', '.join(map(str, unknown))}: only values and patterns")
    patterns = mapping.get("patterns") or []
    if not isinstance(patterns, list):
        raise _invalid(f"patterns must be a list of {{pattern, ordinal, label}}, got {patterns!r}")
    return {
        "values": _exact_values(mapping.get("values") or {}),
        "patterns": [_pattern_rule(position, rule) for position, rule in enumerate(patterns, start=1)],
    }


def job_level_mapping(config: Mapping[str, Any]) -> dict[str, Any]:
    """`hris.job_level_mapping` of the configuration, compiled (see compile_job_level_mapping)."""
    return compile_job_level_mapping(config["hris"].get("job_level_mapping"))


def require_mapped_job_levels(conn: psycopg.Connection) -> None:
    """Fail when `core.employee_history` holds a vendor job level without an ordinal.

    The gate lets no file through with such a level, so one here means the mapping changed after the
    file was loaded; a null ordinal would silently drop the worker's level from the features.
    """
    unmapped = [
        value
        for (value,) in conn.execute(
            "select distinct job_level_raw from core.employee_history"
            " where job_level_raw is not null and job_level is null order by 1 limit 10"
        )
    ]
    if unmapped:
        raise ConfigError(
            subject=SETTING,
            problem=f"gives no ordinal to job level(s) {', '.join(map(repr, unmapped))} of loaded HRIS files",
            next_step="map them again in the turnover_signals Variable and rerun build_employee_history "
            "(the history was left as it was)",
            runbook_section="configuration",
        )
