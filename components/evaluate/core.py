"""Evaluate the model on the test rows beside two baselines, and decide whether it may be deployed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components import config
from components.common import report
from components.common.model import EQUALITY_ATOL, LinearModel, load_linear_model


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE and R² of ``predicted`` against ``actual``."""
    actual = np.asarray(actual, dtype=np.float64)
    errors = np.asarray(predicted, dtype=np.float64) - actual
    mse = float(np.mean(errors**2))
    total = float(np.sum((actual - actual.mean()) ** 2))
    r2 = 1.0 - float(np.sum(errors**2)) / total if total > 0 else float("nan")
    return {"mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(errors))), "r2": r2}


def mean_baseline(train_y: np.ndarray, n: int) -> np.ndarray:
    """Predicts the training mean for every row."""
    return np.full(n, float(np.mean(train_y)))


def least_squares_baseline(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """Closed-form ordinary least squares with an intercept (the optimum a linear model can reach)."""
    design = np.column_stack([np.ones(len(train_x)), train_x])
    coef, *_ = np.linalg.lstsq(design, train_y, rcond=None)
    return np.column_stack([np.ones(len(test_x)), test_x]) @ coef


@dataclass
class GateDecision:
    """The deployment gate: passes only when every check passes."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.checks)

    @property
    def failures(self) -> list[str]:
        return [detail for _, ok, detail in self.checks if not ok]

    def summary(self) -> str:
        if self.passed:
            return "gate passed: " + "; ".join(detail for _, _, detail in self.checks)
        return "gate failed: " + "; ".join(self.failures)


def decide_gate(
    metrics: dict[str, float],
    mean_rmse: float,
    max_rmse: float = config.MAX_RMSE,
    champion_rmse: float | None = None,
    champion_tolerance: float = config.CHAMPION_TOLERANCE,
) -> GateDecision:
    """Checks the candidate against an absolute bound, the mean baseline and the current champion.

    Every check is evaluated (a failed gate lists all its failures, not the first one).

    Args:
        metrics: The candidate's test metrics (needs ``rmse``).
        mean_rmse: RMSE of the mean predictor on the same rows.
        max_rmse: Largest acceptable RMSE.
        champion_rmse: RMSE recorded for the model being served, if any.
        champion_tolerance: How much worse than the champion is acceptable, relative (0.05 = 5 %).
    """
    rmse = metrics["rmse"]
    decision = GateDecision()
    decision.checks.append(("max_rmse", rmse <= max_rmse, f"RMSE {rmse:.3f} {'<=' if rmse <= max_rmse else '>'} "
                                                        f"max_rmse {max_rmse:.3f}"))
    beats = rmse < mean_rmse
    decision.checks.append(("beats_mean", beats, f"RMSE {rmse:.3f} {'<' if beats else '>='} mean-baseline RMSE "
                                                 f"{mean_rmse:.3f}"))
    if champion_rmse is not None:
        limit = champion_rmse * (1.0 + champion_tolerance)
        ok = rmse <= limit
        decision.checks.append((
            "vs_champion", ok,
            f"RMSE {rmse:.3f} {'<=' if ok else '>'} champion RMSE {champion_rmse:.3f} + "
            f"{champion_tolerance:.0%} ({limit:.3f})",
        ))
    return decision


@dataclass
class Evaluation:
    """Everything the evaluate step reports."""

    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    predictions: pd.DataFrame
    savedmodel_max_abs_diff: float | None


def evaluate_model(
    model: LinearModel,
    train: pd.DataFrame,
    test: pd.DataFrame,
    target: str = config.TARGET,
) -> Evaluation:
    """Scores ``model`` and both baselines on ``test`` (baselines fit on ``train``)."""
    names = list(model.feature_names)
    test_x = test[names].to_numpy(dtype=np.float64)
    test_y = test[target].to_numpy(dtype=np.float64)
    train_x = train[names].to_numpy(dtype=np.float64)
    train_y = train[target].to_numpy(dtype=np.float64)
    predicted = model.predict(test_x)
    baselines = {
        "mean": regression_metrics(test_y, mean_baseline(train_y, len(test_y))),
        "least_squares": regression_metrics(test_y, least_squares_baseline(train_x, train_y, test_x)),
    }
    frame = test[[*names, target]].copy()
    frame["prediction"] = predicted
    return Evaluation(regression_metrics(test_y, predicted), baselines, frame, None)


def savedmodel_max_abs_diff(model_dir: Path, model: LinearModel, rows: np.ndarray) -> float:
    """Runs the exported SavedModel itself on ``rows`` and returns its largest gap to the folded model."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(Path(model_dir) / "1")).signatures["serving_default"]
    out = serve(tf.constant(np.asarray(rows, dtype=np.float32)))
    saved = np.asarray(next(iter(out.values()))).reshape(-1).astype(np.float64)
    return float(np.max(np.abs(saved - model.predict(rows))))


def evaluate_model_dir(
    model_dir: Path, train: pd.DataFrame, test: pd.DataFrame, check_savedmodel: bool = True
) -> Evaluation:
    """Loads the model folder the way the server does, evaluates it, and proves it equal to the SavedModel.

    Raises:
        ValueError: the SavedModel and the served prediction path disagree on the test rows.
    """
    model = load_linear_model(Path(model_dir))
    evaluation = evaluate_model(model, train, test)
    if check_savedmodel:
        rows = test[list(model.feature_names)].to_numpy(dtype=np.float64)
        diff = savedmodel_max_abs_diff(Path(model_dir), model, rows)
        if not diff <= EQUALITY_ATOL:
            raise ValueError(f"served prediction path differs from the SavedModel by {diff:.3g} on the test rows")
        evaluation.savedmodel_max_abs_diff = diff
    return evaluation


def evaluation_report(evaluation: Evaluation, decision: GateDecision, target: str = config.TARGET) -> str:
    """A self-contained HTML page: metrics beside baselines, the gate, predicted-vs-actual and residual plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    actual = evaluation.predictions[target].to_numpy()
    predicted = evaluation.predictions["prediction"].to_numpy()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.scatter(actual, predicted, s=12, alpha=0.7)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    left.plot([low, high], [low, high], color="grey", linestyle="--", label="perfect")
    left.set_xlabel(f"actual {target} ($1000s)")
    left.set_ylabel("predicted")
    left.set_title("Predicted vs actual (test rows)")
    left.legend()
    right.scatter(predicted, predicted - actual, s=12, alpha=0.7)
    right.axhline(0, color="grey", linestyle="--")
    right.set_xlabel("predicted")
    right.set_ylabel("residual (predicted - actual)")
    right.set_title("Residuals")
    checks = report.table(
        ["check", "result", "detail"],
        [(name, "pass" if ok else "FAIL", detail) for name, ok, detail in decision.checks],
    )
    verdict = "passed" if decision.passed else "failed"
    return report.page(
        "Boston Housing: evaluation",
        f"<p>{len(actual)} test rows. Deployment gate <b class='{'pass' if decision.passed else 'fail'}'>"
        f"{verdict}</b>.</p>",
        report.table(["predictor", "MSE", "RMSE", "MAE", "R²"], metrics_rows(flat_metrics(evaluation))),
        "<h2>Gate</h2>", checks,
        report.figure_to_img(fig, "predicted vs actual and residuals"),
    )


def gate_markdown(evaluation: Evaluation, decision: GateDecision) -> str:
    """The gate decision as Markdown, for the Kubeflow UI's Markdown visualisation."""
    lines = [f"# Deployment gate: {'PASSED' if decision.passed else 'FAILED'}", "",
             "| check | result | detail |", "|---|---|---|"]
    lines += [f"| {name} | {'pass' if ok else '**FAIL**'} | {detail} |" for name, ok, detail in decision.checks]
    lines += ["", "| predictor | MSE | RMSE | MAE | R² |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {label} | {mse:.3f} | {rmse:.3f} | {mae:.3f} | {r2:.3f} |"
              for label, mse, rmse, mae, r2 in metrics_rows(flat_metrics(evaluation))]
    return "\n".join(lines) + "\n"


PREDICTOR_PREFIXES = {"model (test rows)": "", "baseline: least squares": "least_squares_", "baseline: mean": "mean_"}


def metrics_rows(flat: dict[str, Any]) -> list[tuple[str, float, float, float, float]]:
    """``(predictor, MSE, RMSE, MAE, R²)`` rows from :func:`flat_metrics` output (a Metrics artifact's metadata)."""
    return [
        (label, *(float(flat.get(prefix + key, "nan")) for key in ("mse", "rmse", "mae", "r2")))
        for label, prefix in PREDICTOR_PREFIXES.items()
    ]


def flat_metrics(evaluation: Evaluation) -> dict[str, Any]:
    """Metrics as flat scalar keys, for KFP's Metrics artifact and the champion record."""
    flat: dict[str, Any] = dict(evaluation.metrics)
    for name, values in evaluation.baselines.items():
        flat.update({f"{name}_{key}": value for key, value in values.items()})
    flat["test_rows"] = int(len(evaluation.predictions))
    return flat
