"""The turnover model on real loaded enterprises: the lift of LMS signals, its absence without them, the DAG.

Two synthetic enterprises of 1,000 employees x 24 months go through the real loaders, identity
resolution and feature build: one whose generator plants a learning fade before voluntary exits
(signal strength 4), one with the signal at 0. HR data are the same in both (same seed), so
HR-only models are identical and any lift comes from the LMS features alone. If the pipeline
leaked labels into features, the no-signal run would show a lift too.

Why strength 4 (the demo uses 1 on 2,000 employees): at this size the test window holds about
130 exit rows from about 60 leavers, and the HR-only baseline is close to chance (ROC AUC 0.43 to
0.51 depending on the algorithm the calibration dates' few leavers pick), so the lift's interval
is wide. At strength 2 the honest lift was ROC AUC +0.112 [+0.035, +0.191], PR AUC +0.014
[+0.005, +0.030] with gradient boosting but PR AUC +0.017 [-0.000, +0.033] with logistic
regression: whether the test passed depended on that pick (a2fa9c9 censored the 115 rows of
late-reported exits, the HR-only candidates' PR AUC on the calibration dates tied at 0.030, and
the pick changed). At strength 4 most leavers' learning falls to the generator's floor within the label
horizon, and both picks clear it: ROC AUC +0.199 [+0.133, +0.258], PR AUC +0.032 [+0.012, +0.071]
(logistic regression), +0.176 [+0.085, +0.264] and +0.035 [+0.015, +0.083] (gradient boosting).
The strength changes only the LMS side, so the build takes as long as before; the thresholds
and the no-signal run are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import psycopg
import pytest

from tests.databases import DatabaseCopies, as_airflow_warehouse, database_name
from tests.integration.enterprise import generate, load_hris, load_lms, source_servers
from turnover_signals import storage
from turnover_signals.config import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
ENTERPRISE = {"employees": 1000, "months": 24}
SIGNAL_STRENGTH = 4.0  # see the module docstring: at 2 the lift's interval touched zero at this size


def hris_tree(data_dir: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(data_dir)): path.read_bytes()
        for path in sorted((data_dir / "sftp").rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="session")
def model_enterprises(migrated_template_db, tmp_path_factory):
    """Warehouses with features built: {"signal": name, "no_signal": name}.

    The HRIS side is loaded once: both enterprises have the same HR files (same seed; the signal
    strength changes only the LMS side, checked here), so each warehouse starts as a copy of one
    HR load and gets its own LMS load, identities and features.
    """
    from turnover_signals.features.build import build_features
    from turnover_signals.identity.resolve import resolve_identities

    strengths = {"signal": SIGNAL_STRENGTH, "no_signal": 0.0}
    data_dirs = {
        key: generate(tmp_path_factory.mktemp(key) / "data", signal_strength=strength, **ENTERPRISE)
        for key, strength in strengths.items()
    }
    assert hris_tree(data_dirs["signal"]) == hris_tree(data_dirs["no_signal"])
    config = load_config(use_variable=False)
    config["identity"]["review_sample_dir"] = tempfile.mkdtemp()
    with DatabaseCopies(prefix="ts_model") as databases:
        hr_only = databases.copy(migrated_template_db)
        with source_servers(data_dirs["signal"]):
            load_hris(hr_only, config)
        names = {}
        for key, data_dir in data_dirs.items():
            dsn = databases.copy(database_name(hr_only))
            with source_servers(data_dir):
                load_lms(dsn, config)
            resolve_identities(config, dsn=dsn, full=True)
            build_features(config, dsn=dsn, reference_dates=[date(2026, 10, 31)])
            names[key] = database_name(dsn)
        yield names


@pytest.fixture
def signal_dsn(model_enterprises, database_copy, monkeypatch):
    return as_airflow_warehouse(database_copy(model_enterprises["signal"]), monkeypatch)


@pytest.fixture
def no_signal_dsn(model_enterprises, database_copy, monkeypatch):
    return as_airflow_warehouse(database_copy(model_enterprises["no_signal"]), monkeypatch)


def train(dsn: str, tmp_path: Path) -> dict:
    from turnover_signals.model.pipeline import train_and_register

    config = load_config(use_variable=False)
    config["model"] |= {"artifact_dir": str(tmp_path / "artifacts"), "report_dir": str(tmp_path / "reports")}
    return train_and_register(config, dsn=dsn)


@pytest.mark.timeout(900)
def test_lms_signals_lift_the_model_when_the_generator_plants_them(signal_dsn, tmp_path):
    result = train(signal_dsn, tmp_path)
    lift = result["evaluation"]["lift"]["hr_lms"]
    print("lift with the planted signal:", {m: lift[m] for m in ("roc_auc", "pr_auc")})
    for metric in ("roc_auc", "pr_auc"):
        assert lift[metric]["ci_low"] > 0, (metric, lift[metric])
    assert lift["roc_auc"]["value"] > 0.05


@pytest.mark.timeout(900)
def test_without_the_planted_signal_lms_features_add_nothing(no_signal_dsn, tmp_path):
    result = train(no_signal_dsn, tmp_path)
    lift = result["evaluation"]["lift"]["hr_lms"]
    print("lift without a signal:", {m: lift[m] for m in ("roc_auc", "pr_auc")})
    for metric in ("roc_auc", "pr_auc"):
        assert lift[metric]["ci_low"] <= 0, (metric, lift[metric])


def model_tables(dsn: str) -> dict[str, list[tuple]]:
    """The model layer's tables as a rerun must leave them (the scoring time is the run's own bookkeeping)."""
    queries = {
        "registry": "select * from audit.model_registry order by model_version",
        "promotions": "select * from audit.model_promotion order by decision_id",
        "scores": "select employee_key, reference_date, model_version, score, risk_rank, risk_band, "
        "top_features from mart.turnover_risk_score order by employee_key, reference_date",
    }
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(query).fetchall() for name, query in queries.items()}


# Whichever of the tests below comes first runs the three DAG runs in its set-up, which its timeout covers.
RUNS_THE_MODEL_DAG = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def monthly_model_runs(model_enterprises, airflow_metadata_db):
    """Three monthly runs of `turnover_model` on a copy of the signal enterprise, run once for the tests
    below, which assert on what each left:

    - `first`: the first run (2026-11-02), which registers, promotes a first champion and scores;
    - `same_data`: a second month on the same data (2026-12-02);
    - `other_rows`: a third month after one employee's labels were deleted (2027-01-02), and the champion
      after rolling back the new version if it was promoted.

    Paths of artifacts, reports and cards are returned as recorded; the files stay in the session's data dir.
    """
    from airflow.dag_processing.dagbag import DagBag

    from turnover_signals.model.registry import main as registry_cli

    dag = DagBag(dag_folder=str(DAGS_DIR / "turnover_model.py")).get_dag("turnover_model")
    with DatabaseCopies() as databases, pytest.MonkeyPatch.context() as environment:
        dsn = as_airflow_warehouse(databases.copy(model_enterprises["signal"]), environment)
        first = after_the_first_run(dag.test(logical_date=datetime(2026, 11, 2, 9, 0, tzinfo=UTC)), dsn)

        run = dag.test(logical_date=datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
        same_data = SimpleNamespace(state=run.state, model_tables=model_tables(dsn))

        with psycopg.connect(dsn) as conn:
            conn.execute(
                "delete from mart.turnover_label where employee_key = (select min(employee_key) from "
                "mart.turnover_label)"
            )
        run = dag.test(logical_date=datetime(2027, 1, 2, 9, 0, tzinfo=UTC))
        other_rows = after_a_run_on_other_rows(run, dsn, first_champion=next(iter(first.champion), None))
        if other_rows.decisions[1][0] == "promoted":
            environment.setenv("TURNOVER_WAREHOUSE_URL", dsn)
            registry_cli(["rollback", "--reason", "test: back to the first champion", "--by", "pytest"])
        with psycopg.connect(dsn) as conn:
            other_rows.champion_after_rollback = conn.execute(
                "select model_version from audit.model_registry where status = 'champion'"
            ).fetchone()[0]
            other_rows.scored_by = conn.execute(
                "select distinct model_version from mart.turnover_risk_score"
            ).fetchall()
    return SimpleNamespace(first=first, same_data=same_data, other_rows=other_rows)


def after_the_first_run(run, dsn: str) -> SimpleNamespace:
    """What the first run left: its state, the registry, the scores and the summary."""
    from turnover_signals.model.summary import registry_lines

    with psycopg.connect(dsn) as conn:
        registry = conn.execute(
            "select model_version, feature_set, status, artifact_path, artifact_sha256, report_path, metrics"
            " from audit.model_registry order by feature_set"
        ).fetchall()
        card_paths = conn.execute("select distinct card_path from audit.model_registry").fetchall()
        scores = conn.execute(
            "select reference_date, count(*), count(distinct model_version), min(model_version),"
            " count(*) filter (where risk_band = 'high'), bool_and(jsonb_array_length(top_features) <= 3)"
            " from mart.turnover_risk_score group by 1"
        ).fetchall()
        latest = conn.execute(
            "select max(reference_date), count(*) from mart.employee_features"
            " where reference_date = (select max(reference_date) from mart.employee_features)"
        ).fetchone()
        summary = registry_lines(conn, "pr_auc")
    return SimpleNamespace(
        state=run.state,
        task_states={ti.task_id: ti.state for ti in run.get_task_instances()},
        registry=registry,
        champion=[r[0] for r in registry if r[2] == "champion"],
        card_paths=card_paths,
        scores=scores,
        latest=latest,
        windows=the_windows(dsn),
        bands_and_contributions=the_bands_and_contributions(dsn),
        summary=summary,
        model_tables=model_tables(dsn),
    )


def after_a_run_on_other_rows(run, dsn: str, first_champion: str | None) -> SimpleNamespace:
    """What a run on other training rows left: its state, the versions, the decisions and the first
    champion's recorded artifact."""
    with psycopg.connect(dsn) as conn:
        versions = conn.execute("select model_version from audit.model_registry").fetchall()
        decisions = conn.execute(
            "select decision, reason from audit.model_promotion order by decision_id"
        ).fetchall()
        first_artifact = conn.execute(
            "select artifact_path, artifact_sha256 from audit.model_registry where model_version = %s",
            (first_champion,),
        ).fetchone()
    return SimpleNamespace(
        state=run.state, versions=[r[0] for r in versions], decisions=decisions, first_artifact=first_artifact
    )


@RUNS_THE_MODEL_DAG
def test_a_monthly_run_registers_both_feature_sets_with_one_champion(monthly_model_runs):
    first = monthly_model_runs.first
    assert first.state == "success", first.task_states
    assert {r[1] for r in first.registry} == {"hr_only", "hr_lms"}
    assert len(first.champion) == 1


@RUNS_THE_MODEL_DAG
def test_every_registered_model_has_its_stored_artifact_and_metrics(monthly_model_runs):
    for _version, _fs, _status, artifact, sha256, _report, metrics in monthly_model_runs.first.registry:
        assert storage.stored_path({}, artifact).exists() and len(sha256) == 64
        assert {"roc_auc", "pr_auc", "top_decile_precision", "top_decile_recall", "brier"} <= set(metrics)


@RUNS_THE_MODEL_DAG
def test_the_training_report_embeds_its_three_charts(monthly_model_runs):
    html = storage.read_bytes({}, monthly_model_runs.first.registry[0][5]).decode("utf-8")
    assert len(re.findall(r"data:image/png;base64,", html)) == 3


@RUNS_THE_MODEL_DAG
def test_one_model_card_per_run_holds_the_group_comparisons(monthly_model_runs):
    (card,) = monthly_model_runs.first.card_paths
    assert "Group comparisons on the test window" in storage.read_bytes({}, card[0]).decode("utf-8")


@RUNS_THE_MODEL_DAG
def test_the_champion_scores_every_employee_of_the_latest_features_date(monthly_model_runs):
    scores, latest, champion = (
        monthly_model_runs.first.scores,
        monthly_model_runs.first.latest,
        monthly_model_runs.first.champion,
    )
    assert len(scores) == 1 and scores[0][0] == latest[0] and scores[0][1] == latest[1]
    assert scores[0][3] == champion[0] and scores[0][4] > 0 and scores[0][5]


def the_windows(dsn: str) -> SimpleNamespace:
    """The registered windows, the labels' known-through date and the test dates' row counts."""
    horizon_days = int(load_config(use_variable=False)["model"]["horizon_days"])
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select feature_set_version, horizon_days, train_from_date, train_to_date, calibration_from_date,"
            " calibration_to_date, test_from_date, test_to_date, test_rows, test_positives, lineage"
            " from audit.model_registry"
        ).fetchall()
        known_through = conn.execute(
            "select max(hr_known_through) from mart.turnover_label where horizon_days = %s", (horizon_days,)
        ).fetchone()[0]
        per_date = dict(
            conn.execute(
                "select reference_date, count(*) from mart.training_set where horizon_days = %s and "
                "reference_date between %s and %s group by 1",
                (horizon_days, rows[0][6], rows[0][7]),
            ).fetchall()
        )
        headcount = conn.execute(
            "select count(*) from mart.employee_features where reference_date = %s", (rows[0][7],)
        ).fetchone()[0]
    return SimpleNamespace(rows=rows, known_through=known_through, per_date=per_date, headcount=headcount)


@RUNS_THE_MODEL_DAG
def test_the_windows_are_settled_and_apart(monthly_model_runs):
    """Registry fields, and no test date whose label horizon is still open (only leavers labelled there)."""
    config = load_config(use_variable=False)
    horizon = timedelta(days=int(config["model"]["horizon_days"]))
    windows = monthly_model_runs.first.windows
    for (
        fsv,
        horizon_days,
        train_from,
        train_to,
        cal_from,
        cal_to,
        test_from,
        test_to,
        n,
        positives,
        lineage,
    ) in windows.rows:
        assert fsv == int(config["features"]["feature_set_version"]) and horizon_days == horizon.days
        assert (
            train_from <= train_to
            and train_to + horizon < cal_from <= cal_to
            and cal_to + horizon < test_from
        )
        assert test_to + horizon <= windows.known_through, (test_to, windows.known_through)
        assert 0.005 < positives / n < 0.15, (positives, n)  # a voluntary exit rate, not a window of leavers
        assert {
            "source",
            "feature_build_ids",
            "rows_fingerprint_sha256",
            "lms_stored_high_water",
            "hris_known_at_high_water",
            "features_built_through",
        } <= set(lineage)
        assert lineage["feature_build_ids"] and re.fullmatch(
            r"[0-9a-f]{64}", lineage["rows_fingerprint_sha256"]
        )
    # every test date holds (nearly) the whole population, stayers included
    assert min(windows.per_date.values()) > 0.8 * windows.headcount, (windows.per_date, windows.headcount)


def the_bands_and_contributions(dsn: str) -> list[tuple]:
    """(risk_band, top_features) of every published score."""
    with psycopg.connect(dsn) as conn:
        return conn.execute("select risk_band, top_features from mart.turnover_risk_score").fetchall()


@RUNS_THE_MODEL_DAG
def test_the_scores_carry_bands_and_contributions(monthly_model_runs):
    bands = load_config(use_variable=False)["model"]["risk_bands"]
    rows = monthly_model_runs.first.bands_and_contributions
    share = {band: sum(r[0] == band for r in rows) / len(rows) for band in ("high", "elevated", "low")}
    assert share["high"] == pytest.approx(bands["high"], abs=0.01)
    assert share["elevated"] == pytest.approx(bands["elevated"], abs=0.01)
    contributions = [entry for _band, top in rows for entry in top]
    assert contributions and any(top for _band, top in rows)
    for entry in contributions:
        assert set(entry) == {"feature", "value", "contribution"} and entry["contribution"] >= 0, entry


@RUNS_THE_MODEL_DAG
def test_the_summary_shows_both_models_and_the_lift(monthly_model_runs):
    from turnover_signals.model.metrics import METRICS

    lines = monthly_model_runs.first.summary
    print("\n".join(lines))
    header = next(line for line in lines if line.strip().startswith("metric"))
    assert header.index("HR only") < header.index("HR + LMS") < header.index("lift")
    interval = r"[+-]?\d\.\d{3} \[[+-]?\d\.\d{3}, [+-]?\d\.\d{3}\]"
    for metric in METRICS:
        row = next(line for line in lines if line.strip().startswith(metric))
        # HR only, HR + LMS, and the signed lift
        assert re.fullmatch(rf"\s*{metric}( \*)?\s+{interval}\s+{interval}\s+[+-]\d\.\d{{3}} \[.*\]", row), (
            row
        )


@RUNS_THE_MODEL_DAG
def test_a_month_on_the_same_data_retrains_registers_and_publishes_nothing(monthly_model_runs):
    # the same training set, settings and code are the same model versions: nothing is retrained,
    # registered, decided or re-published
    assert monthly_model_runs.same_data.state == "success"
    assert monthly_model_runs.same_data.model_tables == monthly_model_runs.first.model_tables


@RUNS_THE_MODEL_DAG
def test_other_training_rows_are_a_new_version_compared_with_the_champion(monthly_model_runs):
    other_rows, champion = monthly_model_runs.other_rows, monthly_model_runs.first.champion
    assert other_rows.state == "success"
    assert len(other_rows.versions) == 4 and champion[0] in other_rows.versions
    decisions = other_rows.decisions
    assert [d for d, _ in decisions][0] == "first_champion" and len(decisions) == 2
    assert decisions[1][0] in ("promoted", "kept_champion") and "improvement" in decisions[1][1]


@RUNS_THE_MODEL_DAG
def test_a_new_version_leaves_the_first_champions_artifact_as_registered(monthly_model_runs):
    path, sha256 = monthly_model_runs.other_rows.first_artifact
    assert hashlib.sha256(storage.read_bytes({}, path)).hexdigest() == sha256


@RUNS_THE_MODEL_DAG
def test_a_rollback_restores_the_first_champion_and_its_scores(monthly_model_runs):
    # the new version is promoted or kept depending on its improvement; a promoted one was rolled back
    other_rows, champion = monthly_model_runs.other_rows, monthly_model_runs.first.champion
    assert other_rows.champion_after_rollback == champion[0] and other_rows.scored_by == [(champion[0],)]


# Promotion and rollback on a small seeded registry: no enterprise to build, real artifacts and scoring.

SEEDED_FEATURES = ["tenure_days", "performance_rating"]
SEEDED_WINDOW = [date(2026, 5, 31), date(2026, 6, 30), date(2026, 7, 31)]
SEEDED_LATEST = date(2026, 10, 31)


def seeded_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure, rating = rng.integers(30, 4000, n), rng.integers(1, 6, n)
    exit_chance = 1 / (1 + np.exp(2.5 + (tenure - 1500) / 800 + 0.5 * (rating - 3)))
    return pd.DataFrame(
        {"tenure_days": tenure, "performance_rating": rating, "label": rng.random(n) < exit_chance}
    )


def test_calibration_never_turns_the_ranking_around():
    """On calibration dates where the fitted model looks worse than chance, Platt scaling would take a
    decreasing sigmoid and publish the reversed model; it is held flat at their exit rate, order kept."""
    from turnover_signals.model.dataset import as_numeric_frame
    from turnover_signals.model.train import candidate, fit_feature_set

    fit = seeded_rows(3000, 11)
    calibration = seeded_rows(3000, 12)
    # on the calibration dates the long-tenured leave instead: the fitted model ranks them backwards
    reversed_chance = 1 / (1 + np.exp(2.5 - (calibration["tenure_days"] - 1500) / 800))
    calibration["label"] = np.random.default_rng(13).random(len(calibration)) < reversed_chance
    model = fit_feature_set("hr_only", SEEDED_FEATURES, fit, calibration, ["logistic_regression"], "pr_auc")
    test = seeded_rows(2000, 14)
    x_fit, x_test = as_numeric_frame(fit, SEEDED_FEATURES), as_numeric_frame(test, SEEDED_FEATURES)
    raw = (
        candidate("logistic_regression", SEEDED_FEATURES).fit(x_fit, fit["label"]).predict_proba(x_test)[:, 1]
    )
    published = model.predict(test)
    assert (np.argsort(-published, kind="stable") == np.argsort(-raw, kind="stable")).all()
    assert published.mean() == pytest.approx(calibration["label"].mean(), abs=0.005)
    assert published.max() - published.min() < 1e-4


@pytest.fixture
def seeded_registry(migrated_template_db, database_copy, monkeypatch, tmp_path):
    """A warehouse with features on three settled dates and the latest date, labels, and one model
    artifact."""
    from turnover_signals.model.train import fit_feature_set, save_artifact

    dsn = as_airflow_warehouse(database_copy(migrated_template_db), monkeypatch)
    employees = 300
    with psycopg.connect(dsn) as conn:
        for i, day in enumerate([*SEEDED_WINDOW, SEEDED_LATEST]):
            frame = seeded_rows(employees, 100 + i)
            for key, row in frame.iterrows():
                conn.execute(
                    "insert into mart.employee_features (employee_key, reference_date, feature_set_version,"
                    " hris_employee_id, tenure_days, performance_rating, built_at, build_id)"
                    " values (%s, %s, 2, %s, %s, %s, now(), 'seeded')",
                    (key + 1, day, f"E{key + 1}", int(row.tenure_days), int(row.performance_rating)),
                )
                if day != SEEDED_LATEST:
                    conn.execute(
                        "insert into mart.turnover_label (employee_key, reference_date, horizon_days, "
                        "hris_employee_id, label, is_censored, label_status, hr_known_through) values (%s, "
                        "%s, 90, %s, %s, false, %s, %s)",
                        (
                            key + 1,
                            day,
                            f"E{key + 1}",
                            bool(row.label),
                            "positive" if row.label else "negative",
                            SEEDED_LATEST,
                        ),
                    )
    model = fit_feature_set(
        "hr_only",
        SEEDED_FEATURES,
        seeded_rows(3000, 1),
        seeded_rows(3000, 2),
        ["logistic_regression"],
        "pr_auc",
    )
    artifact, sha256 = save_artifact(model, storage.location({}, tmp_path / "seeded.joblib"))
    # a model that learned nothing: fitted on the same rows with their labels shuffled
    shuffled = [seeded_rows(3000, 1), seeded_rows(3000, 2)]
    for frame in shuffled:
        frame["label"] = np.random.default_rng(7).permutation(frame["label"].to_numpy())
    noise = fit_feature_set("hr_only", SEEDED_FEATURES, *shuffled, ["logistic_regression"], "pr_auc")
    noise_artifact, noise_sha256 = save_artifact(noise, storage.location({}, tmp_path / "noise.joblib"))
    config = load_config(use_variable=False)
    return SimpleNamespace(
        dsn=dsn,
        config=config,
        artifact=artifact,
        sha256=sha256,
        artifacts={"signal": (artifact, sha256), "noise": (noise_artifact, noise_sha256)},
    )


def register_run(
    registry, run_id: str, values: dict[str, tuple[float, float]], artifact: str = "signal"
) -> None:
    """Register a training run: per feature set, (pr_auc on the test window, pr_auc on the calibration dates),
    all with the model `artifact` (`signal`: learned the seeded rows; `noise`: learned nothing)."""
    from turnover_signals.sqlfiles import read_sql

    artifact_path, artifact_sha256 = registry.artifacts[artifact]
    with psycopg.connect(registry.dsn) as conn:
        for feature_set, (test_value, calibration_value) in values.items():
            metrics = {
                "pr_auc": {"value": test_value, "ci_low": test_value, "ci_high": test_value},
                "selection_on_calibration": {"logistic_regression": calibration_value},
            }
            conn.execute(
                read_sql("audit", "model_registry"),
                {
                    "model_version": f"tm-{run_id}-{feature_set}",
                    "training_run_id": run_id,
                    "feature_set": feature_set,
                    "feature_set_version": 2,
                    "algorithm": "logistic_regression",
                    "horizon_days": 90,
                    "features": SEEDED_FEATURES,
                    "train_from_date": date(2025, 1, 31),
                    "train_to_date": date(2025, 10, 31),
                    "calibration_from_date": date(2026, 2, 28),
                    "calibration_to_date": date(2026, 2, 28),
                    "test_from_date": SEEDED_WINDOW[0],
                    "test_to_date": SEEDED_WINDOW[-1],
                    "train_rows": 3000,
                    "calibration_rows": 3000,
                    "test_rows": 900,
                    "test_positives": 40,
                    "metrics": json.dumps(metrics),
                    "lift_over_hr_only": None,
                    "artifact_path": str(artifact_path),
                    "artifact_sha256": artifact_sha256,
                    "report_path": None,
                    "card_path": None,
                    "lineage": "{}",
                    "dag_id": None,
                    "run_id": None,
                    "task_id": None,
                    "try_number": None,
                    "trained_at": datetime.now(UTC),
                },
            )


def statuses(registry) -> dict[str, str]:
    with psycopg.connect(registry.dsn) as conn:
        return dict(conn.execute("select model_version, status from audit.model_registry").fetchall())


def promotion_log(registry) -> list[tuple]:
    with psycopg.connect(registry.dsn) as conn:
        return conn.execute(
            "select decision, champion_before, champion_after from audit.model_promotion order by decision_id"
        ).fetchall()


def published_scores(registry) -> list[tuple]:
    with psycopg.connect(registry.dsn) as conn:
        return conn.execute(
            "select employee_key, reference_date, model_version, score, risk_rank, risk_band,"
            " top_features from mart.turnover_risk_score order by employee_key"
        ).fetchall()


def promote(registry, run_id: str, **options) -> dict:
    from turnover_signals.model.registry import promote_challenger

    return promote_challenger(registry.config, run_id, dsn=registry.dsn, **options)


def with_first_champion(registry) -> None:
    register_run(registry, "first", {"hr_only": (0.5, 0.5)})
    assert promote(registry, "first")["decision"] == "first_champion"


def test_a_worse_challenger_is_kept_and_the_champion_keeps_scoring(seeded_registry):
    from turnover_signals.model.score import score_latest_reference_date

    with_first_champion(seeded_registry)
    score_latest_reference_date(seeded_registry.config, dsn=seeded_registry.dsn)
    scores_before = published_scores(seeded_registry)
    assert {r[2] for r in scores_before} == {"tm-first-hr_only"} and len(scores_before) == 300

    register_run(seeded_registry, "worse", {"hr_only": (0.0, 0.2), "hr_lms": (0.01, 0.1)}, artifact="noise")
    decision = promote(seeded_registry, "worse")
    assert decision["decision"] == "kept_champion" and decision["champion"] == "tm-first-hr_only"
    assert (
        decision["challenger"] == "tm-worse-hr_only"
        and decision["champion_value"] > decision["challenger_value"]
    )
    assert statuses(seeded_registry) == {
        "tm-first-hr_only": "champion",
        "tm-worse-hr_only": "challenger_not_promoted",
        "tm-worse-hr_lms": "registered",
    }
    score_latest_reference_date(
        seeded_registry.config, dsn=seeded_registry.dsn
    )  # the DAG scores after deciding
    assert published_scores(seeded_registry) == scores_before


def test_promotion_disabled_registers_but_never_promotes(seeded_registry):
    with_first_champion(seeded_registry)
    register_run(seeded_registry, "better", {"hr_only": (1.0, 0.9)})
    decision = promote(seeded_registry, "better", allow_promotion=False)
    assert decision["decision"] == "promotion_disabled" and decision["champion"] == "tm-first-hr_only"
    assert statuses(seeded_registry) == {
        "tm-first-hr_only": "champion",
        "tm-better-hr_only": "challenger_not_promoted",
    }
    assert promotion_log(seeded_registry)[-1] == (
        "promotion_disabled",
        "tm-first-hr_only",
        "tm-first-hr_only",
    )


def test_force_promotion_promotes_a_worse_challenger_and_records_it(seeded_registry):
    with_first_champion(seeded_registry)
    register_run(seeded_registry, "worse", {"hr_only": (0.0, 0.2)}, artifact="noise")
    decision = promote(seeded_registry, "worse", force=True)
    assert decision["decision"] == "forced" and decision["champion"] == "tm-worse-hr_only"
    assert decision["champion_value"] > decision["challenger_value"]
    assert statuses(seeded_registry) == {"tm-first-hr_only": "retired", "tm-worse-hr_only": "champion"}
    assert promotion_log(seeded_registry)[-1] == ("forced", "tm-first-hr_only", "tm-worse-hr_only")


def test_a_tie_keeps_the_champion(seeded_registry):
    with_first_champion(seeded_registry)
    register_run(seeded_registry, "same", {"hr_only": (0.5, 0.5)})  # the champion's very model, retrained
    decision = promote(seeded_registry, "same")
    assert decision["decision"] == "kept_champion" and decision["champion"] == "tm-first-hr_only"
    assert decision["challenger_value"] == decision["champion_value"]
    assert "improvement +0.0000 [+0.0000, +0.0000] against a margin of +0.0000" in decision["reason"]


def test_a_challenger_is_promoted_when_its_improvement_clears_the_margin_with_confidence(seeded_registry):
    register_run(seeded_registry, "noise", {"hr_only": (0.1, 0.1)}, artifact="noise")
    assert promote(seeded_registry, "noise")["decision"] == "first_champion"
    register_run(seeded_registry, "signal", {"hr_only": (0.3, 0.3)})
    seeded_registry.config["model"]["promotion_margin"] = 0.5  # more than any PR AUC gain here
    assert promote(seeded_registry, "signal")["decision"] == "kept_champion"
    register_run(seeded_registry, "signal2", {"hr_only": (0.3, 0.3)})
    seeded_registry.config["model"]["promotion_margin"] = 0.0
    decision = promote(seeded_registry, "signal2")
    assert decision["decision"] == "promoted" and decision["champion"] == "tm-signal2-hr_only"
    assert decision["challenger_value"] > decision["champion_value"]
    # a decided challenger is not decided again (a cleared task): the log keeps one decision per model
    assert promote(seeded_registry, "signal")["decision"] == "already_decided"
    assert [row[0] for row in promotion_log(seeded_registry)] == [
        "first_champion",
        "kept_champion",
        "promoted",
    ]


def test_the_challenger_is_chosen_on_the_calibration_dates_not_the_test_window(seeded_registry):
    # HR + LMS looks better on the test window, HR only was better where the choice may be made.
    register_run(seeded_registry, "run", {"hr_only": (0.20, 0.30), "hr_lms": (0.30, 0.25)})
    decision = promote(seeded_registry, "run")
    assert decision["challenger"] == "tm-run-hr_only" and decision["decision"] == "first_champion"


def test_two_rollbacks_in_a_row_go_two_champions_back(seeded_registry):
    from turnover_signals.errors import BadInputError
    from turnover_signals.model.registry import rollback

    for run in ("first", "second", "third"):
        register_run(seeded_registry, run, {"hr_only": (1.0, 0.5)})
        promote(seeded_registry, run, force=True)  # the same model each time: a tie is promoted only by force
    assert statuses(seeded_registry)["tm-third-hr_only"] == "champion"

    assert (
        rollback(seeded_registry.config, dsn=seeded_registry.dsn, reason="one")["champion"]
        == "tm-second-hr_only"
    )
    assert (
        rollback(seeded_registry.config, dsn=seeded_registry.dsn, reason="two")["champion"]
        == "tm-first-hr_only"
    )
    assert statuses(seeded_registry) == {
        "tm-first-hr_only": "champion",
        "tm-second-hr_only": "rolled_back",
        "tm-third-hr_only": "rolled_back",
    }
    assert {r[2] for r in published_scores(seeded_registry)} == {"tm-first-hr_only"}
    with pytest.raises(BadInputError, match="no earlier champion"):
        rollback(seeded_registry.config, dsn=seeded_registry.dsn, reason="three")
    assert promotion_log(seeded_registry)[-2:] == [  # and the forced promotions before them
        ("rolled_back", "tm-third-hr_only", "tm-second-hr_only"),
        ("rolled_back", "tm-second-hr_only", "tm-first-hr_only"),
    ]


def test_a_registered_model_and_its_artifact_never_change(seeded_registry):
    from turnover_signals.errors import StorageVerificationError
    from turnover_signals.model.train import fit_feature_set, save_artifact

    register_run(seeded_registry, "first", {"hr_only": (0.5, 0.5)})
    with psycopg.connect(seeded_registry.dsn, autocommit=True) as conn:
        registered = conn.execute("select * from audit.model_registry").fetchall()
        with pytest.raises(
            psycopg.errors.CheckViolation, match="training facts of a registered model never change"
        ):
            conn.execute("update audit.model_registry set artifact_sha256 = 'other', train_rows = 1")
        conn.execute(
            "update audit.model_registry set status = 'retired', retired_at = now()"
        )  # promotion moves
        conn.execute("update audit.model_registry set status = 'registered', retired_at = null")
    # registering the same version again (a cleared task) changes nothing, whatever it carries
    register_run(seeded_registry, "first", {"hr_only": (0.9, 0.9)}, artifact="noise")
    with psycopg.connect(seeded_registry.dsn) as conn:
        assert conn.execute("select * from audit.model_registry").fetchall() == registered

    model = fit_feature_set(
        "hr_only",
        SEEDED_FEATURES,
        seeded_rows(500, 3),
        seeded_rows(500, 4),
        ["logistic_regression"],
        "pr_auc",
    )
    other = fit_feature_set(
        "hr_only",
        SEEDED_FEATURES,
        seeded_rows(500, 5),
        seeded_rows(500, 6),
        ["logistic_regression"],
        "pr_auc",
    )
    target = (
        storage.stored_path(seeded_registry.config, seeded_registry.artifacts["signal"][0]).parent
        / "once.joblib"
    )
    signal_path, signal_sha256 = save_artifact(model, target)
    assert save_artifact(model, target) == (
        signal_path,
        signal_sha256,
    )  # the same bytes again (a cleared task)
    with pytest.raises(StorageVerificationError, match="exists with other bytes"):
        save_artifact(other, target)
    assert hashlib.sha256(storage.read_bytes({}, signal_path)).hexdigest() == signal_sha256


# Model cards and withheld contributions: small seeded warehouses, the real training, scoring and storage.

CARD_DEPARTMENTS = {
    "Legal": 8,
    "Sales": 150,
    "Operations": 142,
}  # Legal: fewer than model.card_min_group_size


def seeded_departments(employees: int) -> list[str]:
    """Department of employee_key 1..employees: the first 8 in Legal, then Sales, then Operations."""
    names = [name for name, size in CARD_DEPARTMENTS.items() for _ in range(size)]
    assert len(names) == employees
    return names


@pytest.fixture
def small_training_warehouse(migrated_template_db, database_copy, monkeypatch, tmp_path):
    """Thirteen settled month-ends of 300 employees with department, location, job level and tenure, labelled;
    the split shortened to match (test 2 dates, calibration 1): a whole training run in seconds."""
    dsn = as_airflow_warehouse(database_copy(migrated_template_db), monkeypatch)
    dates = [(pd.Timestamp("2025-07-31") + pd.offsets.MonthEnd(i)).date() for i in range(13)]
    departments = seeded_departments(300)
    features, labels = [], []
    for i, day in enumerate(dates):
        frame = seeded_rows(300, 200 + i)
        for key, row in frame.iterrows():
            level = 2 + key % 4
            location = "Lyon" if key % 3 else "Oslo"
            features.append(
                (key + 1, day, f"E{key + 1}", int(row.tenure_days), int(row.performance_rating), level)
                + (departments[key], location)
            )
            labels.append(
                (key + 1, day, f"E{key + 1}", bool(row.label), "positive" if row.label else "negative")
            )
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "insert into mart.employee_features (employee_key, reference_date, feature_set_version, "
            "hris_employee_id, tenure_days, performance_rating, job_level, department, location, built_at, "
            "build_id) values (%s, %s, 2, %s, %s, %s, %s, %s, %s, now(), 'seeded')",
            features,
        )
        cur.executemany(
            "insert into mart.turnover_label (employee_key, reference_date, horizon_days, hris_employee_id, "
            "label, is_censored, label_status, hr_known_through) values (%s, %s, 90, %s, %s, false, %s, "
            "'2026-12-31')",
            labels,
        )
    config = load_config(use_variable=False)
    config["model"] |= {
        "test_reference_dates": 2,
        "calibration_reference_dates": 1,
        "bootstrap_iterations": 100,
        "artifact_dir": str(tmp_path / "artifacts"),
        "report_dir": str(tmp_path / "reports"),
    }
    return SimpleNamespace(dsn=dsn, config=config)


@pytest.mark.timeout(300)
def test_a_training_run_writes_its_model_card_beside_the_report_and_registers_it(small_training_warehouse):
    from turnover_signals.model.pipeline import train_and_register

    warehouse = small_training_warehouse
    trained = train_and_register(warehouse.config, dsn=warehouse.dsn)
    card = storage.stored_path({}, trained["card_path"])
    assert card.parent == storage.stored_path({}, trained["report_path"]).parent
    assert card.name == f"turnover_model_card__{trained['training_run_id']}.html"
    page = card.read_text(encoding="utf-8")
    print(re.sub(r"<tr", "\n<tr", page[page.index("<h2>Group comparisons") :]))
    assert "Not for decisions about an individual" in page
    assert page.count('<td>department</td><td>Legal</td><td colspan="8">suppressed (&lt; 20)</td>') == 2
    assert "<td>job level</td><td>level 5</td>" in page and "<td>location</td><td>Oslo</td>" in page
    assert not re.search(r"\bE\d+\b", page)  # no HRIS employee id
    with psycopg.connect(warehouse.dsn) as conn:
        recorded = conn.execute("select feature_set, card_path from audit.model_registry").fetchall()
    assert sorted(recorded) == [("hr_lms", trained["card_path"]), ("hr_only", trained["card_path"])]
    # the same inputs again are the same models: nothing is trained or written, the card is the registered one
    again = train_and_register(warehouse.config, dsn=warehouse.dsn)
    assert again["reused"] and again["card_path"] == trained["card_path"]
    assert card.read_text(encoding="utf-8") == page


def test_a_model_card_is_written_once(seeded_registry, tmp_path):
    from turnover_signals.errors import StorageVerificationError
    from turnover_signals.model.card import write_model_card
    from turnover_signals.model.dataset import TimeSplit
    from turnover_signals.model.metrics import evaluate_with_intervals
    from turnover_signals.model.train import load_artifact

    model = load_artifact(seeded_registry.artifact, seeded_registry.sha256, seeded_registry.config)
    test = seeded_rows(300, 21).assign(employee_key=range(1, 301), department=seeded_departments(300))
    scores = model.predict(test)
    card = {
        "run_key": "seeded",
        "versions": {"hr_only": "tm-seeded-hr_only"},
        "models": {"hr_only": model},
        "predictions": {"hr_only": scores},
        "test": test,
        "evaluation": evaluate_with_intervals(
            {"hr_only": scores}, test["label"].to_numpy(), test["employee_key"].to_numpy(), 50
        ),
        "split": TimeSplit(SEEDED_WINDOW[:1], SEEDED_WINDOW[1:2], SEEDED_WINDOW[2:], []),
        "metric": "pr_auc",
        "config": seeded_registry.config,
    }
    target = storage.location({}, tmp_path / "reports") / "turnover_model_card__seeded.html"
    url = write_model_card(target, **card)
    assert write_model_card(target, **card) == url  # a cleared task renders the same bytes
    written = storage.read_bytes({}, url)
    card["config"]["model"]["card_min_group_size"] = 5  # Legal would now be shown: another page
    with pytest.raises(StorageVerificationError, match="exists with other bytes"):
        write_model_card(target, **card)
    assert storage.read_bytes({}, url) == written


def test_employees_of_a_department_below_the_suppression_size_get_no_contributions(seeded_registry):
    from turnover_signals.model.score import score_latest_reference_date

    # Legal: the 8 shortest-tenured employees at the scored date, whose scores the model explains most
    with psycopg.connect(seeded_registry.dsn) as conn:
        conn.execute(
            "update mart.employee_features set department = case when employee_key in (select employee_key"
            " from mart.employee_features where reference_date = %(day)s order by tenure_days, employee_key"
            " limit 8) then 'Legal' else 'Operations' end where reference_date = %(day)s",
            {"day": SEEDED_LATEST},
        )
    with_first_champion(seeded_registry)
    scored = score_latest_reference_date(seeded_registry.config, dsn=seeded_registry.dsn)
    assert scored["top_features_withheld"] == 8
    legal, others = scores_by_department(seeded_registry)
    assert len(legal) == 8 and len(others) == 292
    assert all(top == [] and reason == "department below 20 scored employees" for top, reason in legal)
    assert all(reason is None for _, reason in others) and any(top for top, _ in others)
    # with a suppression size Legal reaches, the same employees are explained: the size is what withheld it
    seeded_registry.config["model"]["card_min_group_size"] = 8
    assert (
        score_latest_reference_date(seeded_registry.config, dsn=seeded_registry.dsn)["top_features_withheld"]
        == 0
    )
    legal, _others = scores_by_department(seeded_registry)
    assert all(reason is None for _, reason in legal) and any(top for top, _ in legal)


def scores_by_department(registry) -> tuple[list[tuple], list[tuple]]:
    """(top_features, top_features_withheld_reason) of the published scores: Legal's, everyone else's."""
    with psycopg.connect(registry.dsn) as conn:
        rows = conn.execute(
            "select features.department, score.top_features, score.top_features_withheld_reason from "
            "mart.turnover_risk_score as score inner join mart.employee_features as features on "
            "features.employee_key = score.employee_key and features.reference_date = score.reference_date"
        ).fetchall()
    return [r[1:] for r in rows if r[0] == "Legal"], [r[1:] for r in rows if r[0] != "Legal"]
