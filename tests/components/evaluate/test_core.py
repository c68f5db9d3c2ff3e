"""Unit tests of components/evaluate/core.py: metrics, baselines, the gate and the reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from boston_model import drift
from boston_model.card import CARD_FILE
from components.evaluate import core
from components.evaluate.champion import ChampionUnavailable, TrainingDrift


def test_regression_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    actual, predicted = rng.normal(20, 5, 50), rng.normal(20, 5, 50)
    m = core.regression_metrics(actual, predicted)
    assert m["mse"] == pytest.approx(mean_squared_error(actual, predicted))
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(actual, predicted)))
    assert m["mae"] == pytest.approx(mean_absolute_error(actual, predicted))
    assert m["r2"] == pytest.approx(r2_score(actual, predicted))


def test_least_squares_baseline_is_scikit_learns_linear_regression(seed_split):
    train, test = seed_split
    names = [c for c in train.columns if c != "MEDV"]
    ours = core.least_squares_baseline(train[names].to_numpy(), train["MEDV"].to_numpy(), test[names].to_numpy())
    ref = LinearRegression().fit(train[names], train["MEDV"]).predict(test[names])
    np.testing.assert_allclose(ours, ref, rtol=1e-8)
    assert mean_squared_error(test["MEDV"], ours) == pytest.approx(24.29, abs=0.01)


def test_evaluation_puts_the_model_beside_both_baselines(trained, seed_split):
    evaluation = core.evaluate_model_dir(trained[0], *seed_split)
    assert evaluation.metrics["mse"] <= 24.5
    assert evaluation.baselines["least_squares"]["mse"] == pytest.approx(24.29, abs=0.01)
    assert evaluation.baselines["mean"]["mse"] > 60
    assert evaluation.savedmodel_max_abs_diff is not None and evaluation.savedmodel_max_abs_diff < 1e-4
    assert list(evaluation.predictions.columns)[-1] == "prediction"
    assert len(evaluation.predictions) == 102


def test_gate_passes_a_good_model():
    decision = core.decide_gate({"rmse": 4.9}, mean_rmse=8.8, max_rmse=6.0, champion_rmse=5.0)
    assert decision.passed
    assert [name for name, _, _ in decision.checks] == ["max_rmse", "beats_mean", "vs_champion"]


def test_failed_gate_lists_every_failed_check():
    decision = core.decide_gate({"rmse": 9.0}, mean_rmse=8.8, max_rmse=6.0, champion_rmse=5.0,
                                champion_tolerance=0.05)
    assert not decision.passed
    assert len(decision.failures) == 3
    summary = decision.summary()
    assert "max_rmse 6.000" in summary and "mean-baseline" in summary and "champion RMSE 5.000" in summary


def test_champion_tolerance_is_relative():
    assert core.decide_gate({"rmse": 5.2}, 8.8, 6.0, champion_rmse=5.0, champion_tolerance=0.05).passed
    assert not core.decide_gate({"rmse": 5.3}, 8.8, 6.0, champion_rmse=5.0, champion_tolerance=0.05).passed


def test_no_champion_means_no_champion_check():
    decision = core.decide_gate({"rmse": 5.0}, 8.8, 6.0, champion_rmse=None)
    assert [name for name, _, _ in decision.checks] == ["max_rmse", "beats_mean"]


def test_reports_are_self_contained_and_show_the_decision(trained, seed_split):
    evaluation = core.evaluate_model_dir(trained[0], *seed_split)
    decision = core.decide_gate(evaluation.metrics, evaluation.baselines["mean"]["rmse"], max_rmse=1.0)
    page = core.evaluation_report(evaluation, decision)
    # predicted-vs-actual and residuals, and the global view of contributions
    assert page.count("data:image/png;base64,") == 2 and "Global view" in page
    assert "http://" not in page and "https://" not in page
    assert "FAIL" in page and "baseline: least squares" in page
    markdown = core.gate_markdown(evaluation, decision)
    assert markdown.startswith("# Deployment gate: FAILED")
    flat = core.flat_metrics(evaluation)
    assert {"mse", "rmse", "mae", "r2", "mean_rmse", "least_squares_mse", "test_rows"} <= set(flat)


def test_evaluate_reads_trains_savedmodel_proof_and_refuses_a_bad_one(trained, seed_split, tmp_path):
    card = json.loads((trained[0] / CARD_FILE).read_text())
    assert core.evaluate_model_dir(trained[0], *seed_split).savedmodel_max_abs_diff == \
        card["savedmodel_check"]["max_abs_diff"]
    (tmp_path / CARD_FILE).write_text(json.dumps({**card, "savedmodel_check": {"rows": 414, "max_abs_diff": 0.5}}))
    with pytest.raises(ValueError, match="differs from the SavedModel by 0.5 on 414 rows"):
        core.evaluate_model_dir(tmp_path, *seed_split)
    del card["savedmodel_check"]  # a card from before train recorded the proof
    (tmp_path / CARD_FILE).write_text(json.dumps(card))
    assert core.evaluate_model_dir(tmp_path, *seed_split).savedmodel_max_abs_diff is None


def test_evaluate_imports_no_tensorflow(trained, seed_split, tmp_path):
    # The cheaper retraining run: only train needs TensorFlow. Everything evaluate's step does, in a fresh process.
    seed_split[0].to_csv(tmp_path / "train.csv", index=False)
    seed_split[1].to_csv(tmp_path / "test.csv", index=False)
    script = f"""
import sys
from pathlib import Path
import pandas as pd
from components.evaluate import core
from components.evaluate.champion import training_drift
from boston_model.card import read_card
train, test = pd.read_csv({str(tmp_path / "train.csv")!r}), pd.read_csv({str(tmp_path / "test.csv")!r})
evaluation = core.evaluate_model_dir(Path({str(trained[0])!r}), train, test)
state = training_drift(train, read_card(Path({str(trained[0])!r})), "v1")
decision = core.decide_gate(evaluation.metrics, 8.8, training_drift=state, max_training_drift=0.25)
core.evaluation_report(evaluation, decision, training_drift=state)
core.gate_markdown(evaluation, decision, training_drift=state)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _drift(rows: np.ndarray, names: list[str], live: np.ndarray, version: str = "v1") -> TrainingDrift:
    bins = drift.card_bins({"feature_names": names,
                            drift.DISTRIBUTION_KEY: drift.training_distribution(rows, names)})
    return TrainingDrift(version, drift.drift_report(drift.count_bins(live, bins), bins), len(rows))


@pytest.fixture(scope="module")
def rm_shifted(seed_split) -> tuple[TrainingDrift, TrainingDrift]:
    names = [c for c in seed_split[0].columns if c != "MEDV"]
    rows = seed_split[0][names].to_numpy(dtype=np.float64)
    shifted = rows.copy()
    shifted[:, names.index("RM")] += 1.5
    return _drift(rows, names, rows), _drift(rows, names, shifted)


def test_training_drift_is_reported_but_not_checked_unless_the_run_asks(rm_shifted):
    _, shifted = rm_shifted
    decision = core.decide_gate({"rmse": 4.9}, 8.8, training_drift=shifted)
    assert decision.passed and [name for name, _, _ in decision.checks] == ["max_rmse", "beats_mean"]


def test_a_threshold_fails_the_gate_with_one_line_naming_the_features(rm_shifted):
    same, shifted = rm_shifted
    decision = core.decide_gate({"rmse": 4.9}, 8.8, training_drift=shifted, max_training_drift=0.25)
    assert not decision.passed
    (failure,) = decision.failures
    assert failure.startswith("training-set drift against champion v1 above 0.25 in RM (")
    assert "\n" not in failure and failure.count("(") == 1  # RM alone
    passed = core.decide_gate({"rmse": 4.9}, 8.8, training_drift=same, max_training_drift=0.25)
    assert passed.passed and "largest index 0.000" in passed.summary()


def test_a_champion_without_a_distribution_is_a_note_not_a_failure():
    state = ChampionUnavailable("v0", "champion v0 records no training distribution (trained before it was recorded)")
    decision = core.decide_gate({"rmse": 4.9}, 8.8, training_drift=state, max_training_drift=0.25)
    assert decision.passed and "records no training distribution" in decision.summary()


def test_too_few_training_rows_are_not_judged(seed_split):
    names = [c for c in seed_split[0].columns if c != "MEDV"]
    rows = seed_split[0][names].to_numpy(dtype=np.float64)
    state = _drift(rows, names, rows[:50] + 100.0)
    decision = core.decide_gate({"rmse": 4.9}, 8.8, training_drift=state, max_training_drift=0.25)
    assert decision.passed and "only 50 training rows" in decision.summary()


def test_the_report_and_the_summary_show_training_drift(trained, seed_split, rm_shifted):
    _, shifted = rm_shifted
    evaluation = core.evaluate_model_dir(trained[0], *seed_split)
    decision = core.decide_gate(evaluation.metrics, 8.8, training_drift=shifted, max_training_drift=0.25)
    page = core.evaluation_report(evaluation, decision, training_drift=shifted, max_training_drift=0.25)
    assert page.count("data:image/png;base64,") == 3  # plus the drift chart
    assert "Training-set drift against champion v1" in page and "The gate fails above 0.25" in page
    markdown = core.gate_markdown(evaluation, decision, training_drift=shifted)
    table = markdown[markdown.index("| feature | index | band |"):]
    assert table.splitlines()[2].startswith("| RM | ") and table.splitlines()[2].endswith("| drift |")
    assert "Training-set drift against champion v1 (404 candidate rows" in markdown
    assert core.champion_metrics(None, shifted)["training_drift_max_psi"] == shifted.report.psi["RM"]
