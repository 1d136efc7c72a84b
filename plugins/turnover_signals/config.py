"""Configuration: the defaults file in `include/`, with the Airflow Variable merged over it.

Read inside tasks only (never at DAG parse time): `load_config()` looks the Variable up.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from turnover_signals.errors import TurnoverSignalsError
from turnover_signals.paths import DEFAULT_CONFIG_FILE

VARIABLE_NAME = "turnover_signals"


class ConfigError(TurnoverSignalsError, ValueError):
    """The configuration file or the `turnover_signals` Variable cannot be used."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `override` over `base`: mappings merge key by key, null removes a key, everything else replaces.

    Null is how a Variable takes out a default entry of a mapping (e.g. the demo's domain alias);
    there is no other way to remove a key by merging.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# libyaml's safe loader where PyYAML was built with it: the same documents in a twelfth of the time (tasks
# read the file many times a run, 23 ms each in pure Python)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_config_file(path: Path = DEFAULT_CONFIG_FILE) -> dict[str, Any]:
    """Read the YAML defaults file."""
    with open(path, encoding="utf-8") as handle:
        loaded = yaml.load(handle, Loader=_SAFE_LOADER) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            str(path),
            f"expected a mapping at the top level, got {type(loaded).__name__}",
            "restore the file from the bundle and put overrides in the Variable",
            "configuration",
        )
    return loaded


def parse_override(raw: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Parse the Variable's JSON text (or an already-decoded mapping)."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"Airflow Variable '{VARIABLE_NAME}'",
            f"is not valid JSON ({exc.msg} at line {exc.lineno})",
            "fix it in Admin > Variables or delete it to use the defaults",
            "configuration",
        ) from exc
    if not isinstance(decoded, dict):
        raise ConfigError(
            f"Airflow Variable '{VARIABLE_NAME}'",
            "must hold a JSON object",
            "fix it in Admin > Variables or delete it to use the defaults",
            "configuration",
        )
    return decoded


def read_variable_override() -> dict[str, Any]:
    """The `turnover_signals` Variable as a dict; empty when it is not set."""
    from airflow.sdk import Variable

    return parse_override(Variable.get(VARIABLE_NAME, default=None))


def load_config(
    override: str | Mapping[str, Any] | None = None,
    path: Path = DEFAULT_CONFIG_FILE,
    use_variable: bool = True,
) -> dict[str, Any]:
    """The effective configuration: file defaults, then the Variable, then `override`."""
    config = read_config_file(path)
    if use_variable:
        config = deep_merge(config, read_variable_override())
    return deep_merge(config, parse_override(override))
