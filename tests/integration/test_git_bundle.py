"""The repository as a versioned Git DAG bundle: each bundle version parses with its own package and SQL.

Two commits of the bundle go into a local bare repository; Airflow's `GitDagBundle` checks out each
version, as the dag-processor and the workers do, and a fresh process parses that version's DAG files.
The package each parse imports must be the one of that version, even with another copy on `PYTHONPATH`
(the worker's own installation): a task cleared on an older bundle version runs the code it was built with.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

PARSE_VERSION = """
import json, sys
from airflow.providers.git.bundles.git import GitDagBundle
from airflow.dag_processing.dagbag import DagBag

bundle = GitDagBundle(name="turnover_signals", tracking_ref="main", subdir="dags", repo_url=sys.argv[1],
                      version=sys.argv[2] or None)
bundle.initialize()
bag = DagBag(dag_folder=str(bundle.path))
import turnover_signals
from turnover_signals.paths import SQL_DIR
print(json.dumps({"version": str(getattr(bundle.get_current_version(), "version",
                                          bundle.get_current_version())),
                  "dags": sorted(bag.dag_ids),
                  "errors": {k: str(v)[:300] for k, v in bag.import_errors.items()},
                  "package": turnover_signals.__file__,
                  "mark": getattr(turnover_signals, "BUNDLE_MARK", None),
                  "sql_dir": str(SQL_DIR)}))
"""


def git(cwd: Path, *args: str) -> str:
    env = os.environ | {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def bundle_repo(tmp_path) -> tuple[str, list[str]]:
    """A bare repository holding two versions of the bundle; returns its URL and the two commits."""
    work = tmp_path / "work"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("dags", "plugins", "include"):
        shutil.copytree(REPO_ROOT / part, work / part, ignore=ignore)
    git(work, "init", "-q", "-b", "main")
    commits = []
    package_init = work / "plugins" / "turnover_signals" / "__init__.py"
    original = package_init.read_text()
    for mark in ("first", "second"):
        package_init.write_text(original + f"\nBUNDLE_MARK = {mark!r}\n")
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", mark)
        commits.append(git(work, "rev-parse", "HEAD"))
    bare = tmp_path / "bundle.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    return f"file://{bare}", commits


def parse_version(tmp_path: Path, repo_url: str, version: str) -> dict:
    env = os.environ | {
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(tmp_path / "bundles"),
        # the worker's own copy of the package comes first on the path: the bundle's must still win
        "PYTHONPATH": str(REPO_ROOT / "plugins"),
    }
    done = subprocess.run(
        [sys.executable, "-c", PARSE_VERSION, repo_url, version], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_each_bundle_version_parses_with_its_own_package_and_sql(bundle_repo, tmp_path):
    repo_url, (first, second) = bundle_repo
    older, newer = parse_version(tmp_path, repo_url, first), parse_version(tmp_path, repo_url, second)
    for parsed, commit, mark in ((older, first, "first"), (newer, second, "second")):
        assert parsed["version"] == commit
        assert parsed["errors"] == {}
        assert parsed["dags"] == sorted(
            [
                "hris_sftp_ingest",
                "identity_resolution",
                "lms_api_ingest",
                "lms_statement_backfill",
                "turnover_features",
                "turnover_model",
                "warehouse_retention",
            ]
        )
        assert parsed["mark"] == mark, parsed["package"]
        assert parsed["package"].startswith(str(tmp_path / "bundles")), parsed["package"]
        assert parsed["sql_dir"].startswith(str(tmp_path / "bundles"))
