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
    CARD_FILE,
    EQUALITY_ATOL,
    LinearModel,
    explain_rows,
    feature_means_from_card,
    linear_model_from_card,
    read_card,
)
from boston_model.drift import DRIFT, DRIFT_ABOVE, MODERATE, STABLE, STABLE_BELOW, TOO_FEW_ROWS
from components import config
from components.common import report
from components.evaluate.champion import (
    ChampionComparison,
    ChampionState,
    ChampionUnavailable,
    TrainingDrift,
    TrainingDriftState,
)

# How the figures look, apart from what they show: excluded from mutation testing (docs/contributing.md), since no
# test should tell one shade of grey or marker size from another. What they plot is tested.
_POINTS = {"s": 12, "alpha": 0.7}  # pragma: no mutate
_GUIDE = {"color": "grey", "linestyle": "--"}  # pragma: no mutate
_FAINT_GUIDE = {"color": "grey", "linestyle": ":"}  # pragma: no mutate
_BAR = "#4878a8"  # pragma: no mutate
BAND_COLOURS = {STABLE: _BAR, MODERATE: "#e0a030", DRIFT: "#c04040"}  # what the drift figure's bars say
OTHER_BAND_COLOUR = "#888888"


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
    training_drift: TrainingDriftState = None,
    max_training_drift: float = config.MAX_TRAINING_DRIFT,
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
        training_drift: The candidate's training rows against the champion's training distribution.
        max_training_drift: Largest acceptable population stability index of any feature between the two training
            sets; 0 (the default) checks nothing: the drift is only reported.
    """
    rmse = metrics["rmse"]
    decision = GateDecision()
    decision.checks.append(("max_rmse", rmse <= max_rmse, f"RMSE {rmse:.3f} {'<=' if rmse <= max_rmse else '>'} "
                                                        f"max_rmse {max_rmse:.3f}"))
    beats = rmse < mean_rmse
    decision.checks.append(("beats_mean", beats, f"RMSE {rmse:.3f} {'<' if beats else '>='} mean-baseline RMSE "
                                                 f"{mean_rmse:.3f}"))
    if max_training_drift > 0:
        _check_training_drift(decision, training_drift, max_training_drift)
    if isinstance(champion, ChampionUnavailable):
        decision.notes.append(f"{champion.reason}: no champion check, the absolute checks decide")
    elif isinstance(champion, ChampionComparison):
        decision.checks.append(_vs_champion(
            champion.candidate["rmse"], champion.champion["rmse"], champion_tolerance,
            f"on the {champion.rows} test rows champion {champion.version} never trained on: ",
        ))
    elif champion_rmse is not None:
        decision.checks.append(_vs_champion(rmse, champion_rmse, champion_tolerance))
    return decision


def _check_training_drift(decision: GateDecision, state: TrainingDriftState, threshold: float) -> None:
    """Adds the training-set drift check, or a note saying why it cannot be made (nothing for a first model)."""
    if isinstance(state, ChampionUnavailable):
        decision.notes.append(f"{state.reason}: no training-drift check")
    elif isinstance(state, TrainingDrift):
        report = state.report
        if report.verdict == TOO_FEW_ROWS:
            decision.notes.append(f"only {report.rows} training rows: too few for a training-drift check")
            return
        over = report.drifted(threshold)
        if over:
            named = ", ".join(f"{name} ({report.psi[name]:.2f})" for name in over)
            detail = f"training-set drift against champion {state.version} above {threshold:.2f} in {named}"
        else:
            name = max(report.psi, key=report.psi.__getitem__)
            detail = (f"training-set drift against champion {state.version}: largest index {report.psi[name]:.3f} "
                      f"({name}) <= {threshold:.2f}")
        decision.checks.append(("training_drift", not over, detail))


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


def savedmodel_check(card: dict[str, Any]) -> float | None:
    """The largest gap between the SavedModel and the folded map that train measured from disk (None: not recorded).

    Train runs the exported SavedModel on the training rows and records the gap in the card, so evaluate proves the
    served prediction path equal to the SavedModel without importing TensorFlow (the card's probe rows are
    re-checked on every load as well).

    Raises:
        ValueError: The recorded gap is above ``EQUALITY_ATOL`` or malformed.
    """
    check = card.get("savedmodel_check")
    if check is None:
        return None
    try:
        diff, rows = float(check["max_abs_diff"]), int(check["rows"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{CARD_FILE}: savedmodel_check is malformed") from None
    if not diff <= EQUALITY_ATOL:
        raise ValueError(f"served prediction path differs from the SavedModel by {diff:.3g} on {rows} rows")
    return diff


def evaluate_model_dir(model_dir: Path, train: pd.DataFrame, test: pd.DataFrame) -> Evaluation:
    """Loads the model folder the way the server does, evaluates it, and reads train's proof of SavedModel equality.

    Raises:
        ValueError: train recorded that the SavedModel and the served prediction path disagree.
    """
    card = read_card(Path(model_dir))
    model = linear_model_from_card(card)
    evaluation = evaluate_model(model, train, test)
    if "feature_means" in card:
        explained = explain_rows(model, test[list(model.feature_names)].to_numpy(dtype=np.float64),
                                 feature_means_from_card(card, model))
        magnitude = np.mean(np.abs(explained.contributions), axis=0)
        evaluation.importance = dict(zip(model.feature_names, (float(v) for v in magnitude), strict=True))
    evaluation.savedmodel_max_abs_diff = savedmodel_check(card)
    return evaluation


def evaluation_report(
    evaluation: Evaluation,
    decision: GateDecision,
    target: str = config.TARGET,
    champion: ChampionState = None,
    training_drift: TrainingDriftState = None,
    max_training_drift: float = config.MAX_TRAINING_DRIFT,
) -> str:
    """A self-contained HTML page: metrics beside baselines, the gate, predicted-vs-actual and residual plots."""
    import matplotlib

    matplotlib.use("Agg")  # pragma: no mutate  (backend names are case-insensitive: "agg" is the same backend)
    import matplotlib.pyplot as plt

    actual = evaluation.predictions[target].to_numpy()
    predicted = evaluation.predictions["prediction"].to_numpy()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))  # pragma: no mutate
    left.scatter(actual, predicted, **_POINTS)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    left.plot([low, high], [low, high], label="perfect", **_GUIDE)
    left.set_xlabel(f"actual {target} ($1000s)")
    left.set_ylabel("predicted")
    left.set_title("Predicted vs actual (test rows)")
    left.legend()
    right.scatter(predicted, predicted - actual, **_POINTS)
    right.axhline(0, **_GUIDE)
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
        training_drift_section(training_drift, max_training_drift),
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


def training_drift_rows(state: TrainingDriftState) -> list[tuple[str, float, str]]:
    """``(feature, index, band)`` per feature, highest index first (empty without a comparison)."""
    if not isinstance(state, TrainingDrift):
        return []
    report = state.report
    return [(name, report.psi[name], report.bands[name])
            for name in sorted(report.psi, key=report.psi.__getitem__, reverse=True)]


def training_drift_section(state: TrainingDriftState, threshold: float = config.MAX_TRAINING_DRIFT) -> str:
    """The candidate's training rows against the champion's: a bar per feature with the bands, and a table."""
    if state is None:
        return ""
    if isinstance(state, ChampionUnavailable):
        return f"<h2>Training-set drift</h2><p>{html.escape(state.reason)}.</p>"
    import matplotlib.pyplot as plt

    rows = training_drift_rows(state)
    ranked = list(reversed(rows))
    fig, ax = plt.subplots(figsize=(7, 4.5))  # pragma: no mutate
    ax.barh([name for name, _, _ in ranked], [value for _, value, _ in ranked],
            color=[BAND_COLOURS.get(b, OTHER_BAND_COLOUR) for _, _, b in ranked])
    ax.axvline(STABLE_BELOW, label=f"moderate from {STABLE_BELOW}", **_FAINT_GUIDE)
    ax.axvline(DRIFT_ABOVE, label=f"drift above {DRIFT_ABOVE}", **_GUIDE)
    if threshold > 0:
        ax.axvline(threshold, color=BAND_COLOURS[DRIFT], label=f"gate threshold {threshold}")
    ax.set_xlabel("population stability index against the champion's training rows")
    ax.set_title(f"Training-set drift: candidate vs champion {state.version}")
    ax.legend(loc="lower right")  # pragma: no mutate
    gate = (f"The gate fails above {threshold}." if threshold > 0
            else "Reported only: the run sets no threshold (max_training_drift = 0).")
    return (
        f"<h2>Training-set drift against champion {html.escape(state.version)}</h2><p>The candidate's "
        f"{state.report.rows} training rows counted into the bins of champion {html.escape(state.version)}'s "
        f"{state.champion_rows} training rows (its card), one index per feature: below {STABLE_BELOW} stable, up to "
        f"{DRIFT_ABOVE} moderate, above it drift. Overall: <b>{html.escape(state.report.verdict)}</b>. {gate}</p>"
        + report.figure_to_img(fig, "population stability index per feature")
        + report.table(["feature", "index", "band"], rows)
    )


def importance_section(importance: dict[str, float] | None) -> str:
    """Global view: mean |contribution| per feature on the test rows, as a bar chart and a table."""
    if not importance:
        return ""
    import matplotlib.pyplot as plt

    ranked = sorted(importance.items(), key=lambda item: item[1])
    fig, ax = plt.subplots(figsize=(7, 4.5))  # pragma: no mutate
    ax.barh([name for name, _ in ranked], [value for _, value in ranked], color=_BAR)
    ax.set_xlabel("mean |contribution| to the prediction ($1000s)")
    ax.set_title("What moves the price (test rows)")
    return (
        "<h2>Global view</h2><p>Each prediction is the baseline (the prediction at the training rows' mean) plus "
        "one contribution per feature, w·(x − mean). The bars average their size over the test rows.</p>"
        + report.figure_to_img(fig, "mean absolute contribution per feature")
        + report.table(["feature", "mean |contribution|"], list(reversed(ranked)))
    )


def gate_markdown(
    evaluation: Evaluation,
    decision: GateDecision,
    champion: ChampionState = None,
    training_drift: TrainingDriftState = None,
) -> str:
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
    if isinstance(training_drift, TrainingDrift):
        lines += ["", f"Training-set drift against champion {training_drift.version} "
                      f"({training_drift.report.rows} candidate rows in the champion's bins): "
                      f"**{training_drift.report.verdict}**.", "", "| feature | index | band |", "|---|---:|---|"]
        lines += [f"| {name} | {value:.3f} | {band} |" for name, value, band in training_drift_rows(training_drift)]
    elif isinstance(training_drift, ChampionUnavailable):
        lines += ["", f"Training-set drift: {training_drift.reason}."]
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


def champion_metrics(state: ChampionState, training_drift: TrainingDriftState = None) -> dict[str, float]:
    """The same-rows comparison and the largest training-set index as flat scalars (empty without them)."""
    flat: dict[str, float] = {}
    if isinstance(state, ChampionComparison):
        flat.update(champion_rows_compared=float(state.rows), champion_same_rows_rmse=state.champion["rmse"],
                    candidate_same_rows_rmse=state.candidate["rmse"])
    if isinstance(training_drift, TrainingDrift):
        flat["training_drift_max_psi"] = max(training_drift.report.psi.values(), default=0.0)
    return flat
