"""Unit tests of components/evaluate/core.py: metrics, baselines, the gate and the reports."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from components.evaluate import core


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
    evaluation = core.evaluate_model_dir(trained[0], *seed_split, check_savedmodel=False)
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
