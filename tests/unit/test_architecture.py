"""What is deployed to Airflow (dags/ and plugins/) never depends on the demo's and tests' tooling."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLING = "turnover_demo"


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def deployed_python_files() -> list[Path]:
    return sorted([*(REPO_ROOT / "dags").rglob("*.py"), *(REPO_ROOT / "plugins").rglob("*.py")])


def test_no_deployed_module_imports_the_tooling():
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(
            module for module in imported_modules(path) if module.split(".")[0] == TOOLING
        )
        for path in deployed_python_files()
    }
    assert len(offenders) > 50
    assert {path: modules for path, modules in offenders.items() if modules} == {}


def test_no_deployed_module_names_the_tooling_in_a_string():
    # `python -m turnover_demo...` or importlib with a string would hide the dependency from the check above.
    naming = [
        str(path.relative_to(REPO_ROOT))
        for path in deployed_python_files()
        if TOOLING in path.read_text(encoding="utf-8")
    ]
    assert naming == []


def test_the_tooling_lives_outside_the_deployed_package():
    package = REPO_ROOT / "plugins" / "turnover_signals"
    assert not any((package / name).exists() for name in ("synth", "sample_servers", "demo.py"))
    assert (REPO_ROOT / TOOLING / "synth").is_dir() and (REPO_ROOT / TOOLING / "sample_servers").is_dir()


def test_the_tooling_imports_the_bundle_and_runs_as_modules():
    modules = imported_modules(REPO_ROOT / TOOLING / "demo.py")
    assert any(module.startswith("turnover_signals") for module in modules)
    assert (REPO_ROOT / TOOLING / "synth" / "__main__.py").exists()
