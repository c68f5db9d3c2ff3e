"""Evaluate the model on the test rows beside two baselines, and decide whether it may be deployed."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from boston_model.card import (
    EQUALITY_ATOL,
    LinearModel,
    explain_rows,
    feature_means_from_card,
    linear_model_from_card,
    read_card,
)
from components import config
from components.common import report
from components.evaluate.champion import ChampionComparison, ChampionState, ChampionUnavailable


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
    notes: list[str] = field(default_factory=list)  # what the gate could not check, and why

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.checks)

    @property
    def failures(self) -> list[str]:
        return [detail for _, ok, detail in self.checks if not ok]

    def summary(self) -> str:
        notes = "".join(f" ({note})" for note in self.notes)
        if self.passed:
            return "gate passed: " + "; ".join(detail for _, _, detail in self.checks) + notes
        return "gate failed: " + "; ".join(self.failures) + notes


def decide_gate(
    metrics: dict[str, float],
    mean_rmse: float,
    max_rmse: float = config.MAX_RMSE,
    champion_rmse: float | None = None,
    champion_tolerance: float = config.CHAMPION_TOLERANCE,
    champion: ChampionState = None,
) -> GateDecision:
    """Checks the candidate against an absolute bound, the mean baseline and the current champion.

    Every check is evaluated (a failed gate lists all its failures, not the first one).

    Args:
        metrics: The candidate's test metrics (needs ``rmse``).
        mean_rmse: RMSE of the mean predictor on the same rows.
        max_rmse: Largest acceptable RMSE.
        champion_rmse: RMSE recorded for the model being served, if any (used only without ``champion``).
        champion_tolerance: How much worse than the champion is acceptable, relative (0.05 = 5 %).
        champion: The champion re-scored on the candidate's test rows (decides the champion check), or why it
            could not be (the gate then keeps the absolute checks and says so).
    """
    rmse = metrics["rmse"]
    decision = GateDecision()
    decision.checks.append(("max_rmse", rmse <= max_rmse, f"RMSE {rmse:.3f} {'<=' if rmse <= max_rmse else '>'} "
                                                        f"max_rmse {max_rmse:.3f}"))
    beats = rmse < mean_rmse
    decision.checks.append(("beats_mean", beats, f"RMSE {rmse:.3f} {'<' if beats else '>='} mean-baseline RMSE "
                                                 f"{mean_rmse:.3f}"))
    if isinstance(champion, ChampionUnavailable):
        decision.notes.append(f"{champion.reason}: no champion check, the absolute checks decide")
        return decision
    if isinstance(champion, ChampionComparison):
        decision.checks.append(_vs_champion(
            champion.candidate["rmse"], champion.champion["rmse"], champion_tolerance,
            f"on the {champion.rows} test rows champion {champion.version} never trained on: ",
        ))
    elif champion_rmse is not None:
        decision.checks.append(_vs_champion(rmse, champion_rmse, champion_tolerance))
    return decision


def _vs_champion(rmse: float, champion_rmse: float, tolerance: float, rows: str = "") -> tuple[str, bool, str]:
    """The champion check: the candidate may be at most ``tolerance`` (relative) worse than the champion."""
    limit = champion_rmse * (1.0 + tolerance)
    ok = rmse <= limit
    return ("vs_champion", ok, f"{rows}RMSE {rmse:.3f} {'<=' if ok else '>'} champion RMSE {champion_rmse:.3f} + "
                               f"{tolerance:.0%} ({limit:.3f})")


@dataclass
class Evaluation:
    """Everything the evaluate step reports."""

    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    predictions: pd.DataFrame
    savedmodel_max_abs_diff: float | None
    # Global view: mean |w_i * (x_i - mean_i)| per feature over the test rows (None for cards without means).
    importance: dict[str, float] | None = None


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
    card = read_card(Path(model_dir))
    model = linear_model_from_card(card)
    evaluation = evaluate_model(model, train, test)
    if "feature_means" in card:
        explained = explain_rows(model, test[list(model.feature_names)].to_numpy(dtype=np.float64),
                                 feature_means_from_card(card, model))
        magnitude = np.mean(np.abs(explained.contributions), axis=0)
        evaluation.importance = dict(zip(model.feature_names, (float(v) for v in magnitude), strict=True))
    if check_savedmodel:
        rows = test[list(model.feature_names)].to_numpy(dtype=np.float64)
        diff = savedmodel_max_abs_diff(Path(model_dir), model, rows)
        if not diff <= EQUALITY_ATOL:
            raise ValueError(f"served prediction path differs from the SavedModel by {diff:.3g} on the test rows")
        evaluation.savedmodel_max_abs_diff = diff
    return evaluation


def evaluation_report(
    evaluation: Evaluation, decision: GateDecision, target: str = config.TARGET, champion: ChampionState = None
) -> str:
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
    notes = "".join(f"<p>{html.escape(note)}</p>" for note in decision.notes)
    return report.page(
        "Boston Housing: evaluation",
        f"<p>{len(actual)} test rows. Deployment gate <b class='{'pass' if decision.passed else 'fail'}'>"
        f"{verdict}</b>.</p>",
        report.table(["predictor", "MSE", "RMSE", "MAE", "R²"], metrics_rows(flat_metrics(evaluation))),
        "<h2>Gate</h2>", checks, notes, champion_section(champion),
        report.figure_to_img(fig, "predicted vs actual and residuals"),
        importance_section(evaluation.importance),
    )


def champion_rows(state: ChampionState) -> list[tuple[str, int, float, float, float]]:
    """``(model, rows, RMSE, MAE, R²)`` for both models on the same rows (empty without a comparison)."""
    if not isinstance(state, ChampionComparison):
        return []
    return [(label, state.rows, m["rmse"], m["mae"], m["r2"])
            for label, m in (("candidate", state.candidate), (f"champion {state.version}", state.champion))]


def champion_section(state: ChampionState) -> str:
    """The champion beside the candidate on the same rows, or the line saying why it could not be."""
    if state is None:
        return "<h2>Champion</h2><p>No champion yet: this is the first model.</p>"
    if isinstance(state, ChampionUnavailable):
        return f"<h2>Champion</h2><p class='fail'>{html.escape(state.reason)}.</p>"
    recorded = f"{state.recorded_rmse:.3f}" if state.recorded_rmse is not None else "not recorded"
    return (
        f"<h2>Champion on the same rows</h2><p>{state.rows} of the {state.test_rows} test rows were never seen "
        f"by champion {html.escape(state.version)} in training; both models are scored on them (the RMSE the "
        f"champion recorded on its own test rows was {recorded}).</p>"
        + report.table(["model", "rows", "RMSE", "MAE", "R²"], champion_rows(state))
    )


def importance_section(importance: dict[str, float] | None) -> str:
    """Global view: mean |contribution| per feature on the test rows, as a bar chart and a table."""
    if not importance:
        return ""
    import matplotlib.pyplot as plt

    ranked = sorted(importance.items(), key=lambda item: item[1])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.barh([name for name, _ in ranked], [value for _, value in ranked], color="#4878a8")
    ax.set_xlabel("mean |contribution| to the prediction ($1000s)")
    ax.set_title("What moves the price (test rows)")
    return (
        "<h2>Global view</h2><p>Each prediction is the baseline (the prediction at the training rows' mean) plus "
        "one contribution per feature, w·(x − mean). The bars average their size over the test rows.</p>"
        + report.figure_to_img(fig, "mean absolute contribution per feature")
        + report.table(["feature", "mean |contribution|"], list(reversed(ranked)))
    )


def gate_markdown(evaluation: Evaluation, decision: GateDecision, champion: ChampionState = None) -> str:
    """The gate decision as Markdown, for the Kubeflow UI's Markdown visualisation."""
    lines = [f"# Deployment gate: {'PASSED' if decision.passed else 'FAILED'}", "",
             "| check | result | detail |", "|---|---|---|"]
    lines += [f"| {name} | {'pass' if ok else '**FAIL**'} | {detail} |" for name, ok, detail in decision.checks]
    lines += ["", *(f"> {note}" for note in decision.notes)] if decision.notes else []
    if isinstance(champion, ChampionComparison):
        lines += ["", f"Same rows: {champion.rows} of {champion.test_rows} test rows, unseen by both in training.",
                  "", "| model | rows | RMSE | MAE | R² |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {label} | {rows} | {rmse:.3f} | {mae:.3f} | {r2:.3f} |"
                  for label, rows, rmse, mae, r2 in champion_rows(champion)]
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


def champion_metrics(state: ChampionState) -> dict[str, float]:
    """The same-rows comparison as flat scalars for the Metrics artifact (empty without one)."""
    if not isinstance(state, ChampionComparison):
        return {}
    return {"champion_rows_compared": float(state.rows), "champion_same_rows_rmse": state.champion["rmse"],
            "candidate_same_rows_rmse": state.candidate["rmse"]}
