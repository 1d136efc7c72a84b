"""Where the bundle's own files live, independent of the working directory."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLE_ROOT = PACKAGE_DIR.parent.parent
INCLUDE_DIR = BUNDLE_ROOT / "include"
SQL_DIR = INCLUDE_DIR / "sql"
DEFAULT_CONFIG_FILE = INCLUDE_DIR / "turnover_signals.yaml"
