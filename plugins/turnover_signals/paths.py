"""Where the bundle's own files live, independent of the working directory."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLE_ROOT = PACKAGE_DIR.parent.parent
INCLUDE_DIR = BUNDLE_ROOT / "include"
SQL_DIR = INCLUDE_DIR / "sql"
DEFAULT_CONFIG_FILE = INCLUDE_DIR / "turnover_signals.yaml"


def data_path(configured: str | Path) -> Path:
    """Where a configured output path lives: absolute as given; relative under the data directory.

    The data directory is `$TURNOVER_DATA_DIR` when set, else `$AIRFLOW_HOME` (else ~/airflow),
    so outputs land on the volume an Airflow deployment already keeps.
    """
    import os

    path = Path(configured)
    if path.is_absolute():
        return path
    base = os.environ.get("TURNOVER_DATA_DIR") or os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(base) / path
