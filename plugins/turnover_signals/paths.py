"""Where the bundle's own files live, independent of the working directory."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLE_ROOT = PACKAGE_DIR.parent.parent
INCLUDE_DIR = BUNDLE_ROOT / "include"
SQL_DIR = INCLUDE_DIR / "sql"
DEFAULT_CONFIG_FILE = INCLUDE_DIR / "turnover_signals.yaml"


def local_data_dir() -> Path:
    """`$TURNOVER_DATA_DIR` when set, else `$AIRFLOW_HOME` (else ~/airflow): the volume an Airflow
    deployment already keeps. Object storage's base when `storage.base_url` is not set."""
    import os

    configured = os.environ.get("TURNOVER_DATA_DIR") or os.environ.get("AIRFLOW_HOME")
    return Path(configured) if configured else Path.home() / "airflow"


def data_path(configured: str | Path) -> Path:
    """Where a configured local path lives (`hris.landing_dir`): absolute as given; relative under the
    local data directory. Files for later tasks or people go through `turnover_signals.storage` instead."""
    path = Path(configured)
    return path if path.is_absolute() else local_data_dir() / path
