"""components/evaluate/core.py at its edges, with synthetic numbers and cards (no TensorFlow).

Each gate check is tried at its limit and just past it; every expected number is worked out by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boston_model import card as fmt
from boston_model import drift
from components.evaluate import core
from components.evaluate.champion import ChampionComparison, ChampionUnavailable, TrainingDrift

# --- metrics and baselines -----------------------------------------------------------------------------------------


def test_metrics_by_hand() -> None:
    # errors 1, 0, -1, -2: MSE 6/4, MAE 4/4; total sum of squares around the mean 2.5 is 5, so R² = 1 - 6/5
    m = core.regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 2.0, 2.0]))
    assert m == {"mse": 1.5, "rmse": math.sqrt(1.5), "mae": 1.0, "r2": pytest.approx(-0.2, abs=1e-15)}


def test_r2_of_a_constant_target_is_undefined_not_a_division_error() -> None:
    m = core.regression_metrics([3, 3, 3], [2, 3, 4])  # integers are read as floats
    assert m["mse"] == pytest.approx(2 / 3) and m["mae"] == pytest.approx(2 / 3)
    assert math.isnan(m["r2"])


def test_the_mean_baseline_predicts_the_training_mean_everywhere() -> None:
    assert core.mean_baseline(np.array([1.0, 2.0, 6.0]), 2).tolist() == [3.0, 3.0]


def test_the_least_squares_baseline_fits_an_exact_line_exactly() -> None:
    x = np.array([[0.0], [1.0], [2.0]])
    assert core.least_squares_baseline(x, 2 * x[:, 0] + 1, np.array([[10.0]])) == pytest.approx([21.0])


# --- the gate at its limits ----------------------------------------------------------------------------------------


def checks(decision: core.GateDecision) -> list[tuple[str, bool, str]]:
    return [(name, ok, detail) for name, ok, detail in decision.checks]


def test_max_rmse_is_inclusive() -> None:
    at = core.decide_gate({"rmse": 6.0}, mean_rmse=9.0, max_rmse=6.0)
    assert checks(at)[0] == ("max_rmse", True, "RMSE 6.000 <= max_rmse 6.000")
    past = core.decide_gate({"rmse": 6.0001}, mean_rmse=9.0, max_rmse=6.0)
    assert checks(past)[0] == ("max_rmse", False, "RMSE 6.000 > max_rmse 6.000")


def test_beating_the_mean_baseline_is_strict() -> None:
    tie = core.decide_gate({"rmse": 5.0}, mean_rmse=5.0, max_rmse=9.0)
    assert checks(tie)[1] == ("beats_mean", False, "RMSE 5.000 >= mean-baseline RMSE 5.000")
    under = core.decide_gate({"rmse": 4.9999}, mean_rmse=5.0, max_rmse=9.0)
    assert checks(under)[1] == ("beats_mean", True, "RMSE 5.000 < mean-baseline RMSE 5.000")


def test_champion_tolerance_is_inclusive_and_relative() -> None:
    # champion 4.0 with 25 %: the limit is exactly 5.0
    at = core.decide_gate({"rmse": 5.0}, 9.0, 9.0, champion_rmse=4.0, champion_tolerance=0.25)
    assert checks(at)[2] == ("vs_champion", True, "RMSE 5.000 <= champion RMSE 4.000 + 25% (5.000)")
    past = core.decide_gate({"rmse": 5.0001}, 9.0, 9.0, champion_rmse=4.0, champion_tolerance=0.25)
    assert checks(past)[2] == ("vs_champion", False, "RMSE 5.000 > champion RMSE 4.000 + 25% (5.000)")
    zero = core.decide_gate({"rmse": 4.0}, 9.0, 9.0, champion_rmse=4.0, champion_tolerance=0.0)
    assert zero.passed and checks(zero)[2][2] == "RMSE 4.000 <= champion RMSE 4.000 + 0% (4.000)"


def test_the_default_limits_come_from_the_config() -> None:
    from components import config

    decision = core.decide_gate({"rmse": config.MAX_RMSE}, mean_rmse=config.MAX_RMSE + 1, champion_rmse=1.0)
    assert checks(decision)[0][2] == f"RMSE {config.MAX_RMSE:.3f} <= max_rmse {config.MAX_RMSE:.3f}"
    limit = 1.0 * (1 + config.CHAMPION_TOLERANCE)
    assert checks(decision)[2][2].endswith(f"+ {config.CHAMPION_TOLERANCE:.0%} ({limit:.3f})")
    assert config.MAX_TRAINING_DRIFT == 0  # reported only unless a run asks


def comparison(candidate_rmse: float, champion_rmse: float) -> ChampionComparison:
    return ChampionComparison(version="v3", rows=40, test_rows=102, candidate={"rmse": candidate_rmse, "mae": 1.0,
                              "r2": 0.5}, champion={"rmse": champion_rmse, "mae": 2.0, "r2": 0.25},
                              recorded_rmse=3.5)


def test_a_champion_rescored_on_the_same_rows_decides_over_the_recorded_rmse() -> None:
    # the candidate's own RMSE (4.5) would fail against the recorded 3.0; on the same rows it is 4.0 against 4.0
    decision = core.decide_gate({"rmse": 4.5}, 9.0, 9.0, champion_rmse=3.0, champion_tolerance=0.0,
                                champion=comparison(4.0, 4.0))
    assert checks(decision)[2] == ("vs_champion", True, "on the 40 test rows champion v3 never trained on: "
                                                        "RMSE 4.000 <= champion RMSE 4.000 + 0% (4.000)")
    assert decision.passed and decision.notes == []


def test_an_unavailable_champion_leaves_the_absolute_checks_and_says_so() -> None:
    decision = core.decide_gate({"rmse": 4.5}, 9.0, 9.0, champion_rmse=1.0,
                                champion=ChampionUnavailable("v2", "champion v2's card is unreadable"))
    assert [name for name, _, _ in decision.checks] == ["max_rmse", "beats_mean"]
    assert decision.notes == ["champion v2's card is unreadable: no champion check, the absolute checks decide"]
    assert decision.summary() == ("gate passed: RMSE 4.500 <= max_rmse 9.000; RMSE 4.500 < mean-baseline RMSE "
                                  "9.000 (champion v2's card is unreadable: no champion check, the absolute checks "
                                  "decide)")


def test_a_failed_gate_summary_lists_only_the_failures() -> None:
    decision = core.decide_gate({"rmse": 7.0}, mean_rmse=8.0, max_rmse=6.0)
    assert not decision.passed
    assert decision.failures == ["RMSE 7.000 > max_rmse 6.000"]
    assert decision.summary() == "gate failed: RMSE 7.000 > max_rmse 6.000"


# --- training-set drift in the gate --------------------------------------------------------------------------------

NAMES = ["A", "B"]


def drift_state(shift_b: float, rows: int = 200) -> TrainingDrift:
    base = np.column_stack([np.arange(rows, dtype=np.float64), np.arange(rows, dtype=np.float64) % 17])
    bins = drift.card_bins({"feature_names": NAMES, drift.DISTRIBUTION_KEY: drift.training_distribution(base, NAMES)})
    live = base.copy()
    live[:, 1] += shift_b
    return TrainingDrift("v1", drift.drift_report(drift.count_bins(live, bins), bins), rows)


def test_training_drift_below_the_threshold_names_the_largest_index() -> None:
    state = drift_state(0.0)
    decision = core.decide_gate({"rmse": 4.0}, 9.0, 9.0, training_drift=state, max_training_drift=0.1)
    name, ok, detail = checks(decision)[2]
    top = max(state.report.psi, key=state.report.psi.__getitem__)
    assert (name, ok) == ("training_drift", True)
    assert detail == (f"training-set drift against champion v1: largest index {state.report.psi[top]:.3f} ({top}) "
                      "<= 0.10")


def test_training_drift_above_the_threshold_names_each_feature_over_it() -> None:
    state = drift_state(100.0)
    psi_b = state.report.psi["B"]
    assert psi_b > 1 and state.report.psi["A"] < 0.01
    decision = core.decide_gate({"rmse": 4.0}, 9.0, 9.0, training_drift=state, max_training_drift=0.5)
    assert checks(decision)[2] == ("training_drift", False,
                                   f"training-set drift against champion v1 above 0.50 in B ({psi_b:.2f})")
    assert not decision.passed


def test_training_drift_with_too_few_rows_or_no_champion_is_a_note_not_a_check() -> None:
    few = core.decide_gate({"rmse": 4.0}, 9.0, 9.0, training_drift=drift_state(100.0, rows=99),
                           max_training_drift=0.5)
    assert [n for n, _, _ in few.checks] == ["max_rmse", "beats_mean"]
    assert few.notes == ["only 99 training rows: too few for a training-drift check"]
    gone = core.decide_gate({"rmse": 4.0}, 9.0, 9.0, training_drift=ChampionUnavailable("v1", "no card"),
                            max_training_drift=0.5)
    assert gone.notes == ["no card: no training-drift check"] and gone.passed
    first = core.decide_gate({"rmse": 4.0}, 9.0, 9.0, training_drift=None, max_training_drift=0.5)
    assert first.notes == [] and len(first.checks) == 2


# --- evaluating a synthetic model ----------------------------------------------------------------------------------

# prediction = 2a - b + 1; the card records its SavedModel outputs for two probe rows (by hand: 1, 2)
CARD = {"format_version": 1, "feature_names": NAMES, "weights": [2.0, -1.0], "bias": 1.0,
        "probe": {"inputs": [[0.0, 0.0], [1.0, 1.0]], "savedmodel_outputs": [1.0, 2.0]}}
TRAIN = pd.DataFrame({"A": [0.0, 1.0, 2.0, 3.0], "B": [0.0, 0.0, 1.0, 1.0], "MEDV": [1.0, 3.0, 4.0, 8.0]})
TEST = pd.DataFrame({"A": [1.0, 2.0], "B": [1.0, 0.0], "MEDV": [3.0, 5.0]})  # predictions 2 and 5


def test_evaluate_model_scores_the_model_and_both_baselines_by_hand() -> None:
    evaluation = core.evaluate_model(fmt.linear_model_from_card(CARD), TRAIN, TEST)
    # model errors -1, 0: MSE 0.5, MAE 0.5; test mean 4, total 2, R² = 1 - 1/2
    assert evaluation.metrics == {"mse": 0.5, "rmse": math.sqrt(0.5), "mae": 0.5, "r2": 0.5}
    # mean baseline predicts 4 (training mean): errors 1, -1
    assert evaluation.baselines["mean"] == {"mse": 1.0, "rmse": 1.0, "mae": 1.0, "r2": 0.0}
    assert evaluation.predictions.columns.tolist() == ["A", "B", "MEDV", "prediction"]
    assert evaluation.predictions["prediction"].tolist() == [2.0, 5.0]
    assert evaluation.savedmodel_max_abs_diff is None and evaluation.importance is None


def test_evaluate_model_dir_reads_means_and_the_savedmodel_proof(tmp_path: Path) -> None:
    fmt.write_card(tmp_path, {**CARD, "feature_means": [1.5, 0.5],
                              "savedmodel_check": {"max_abs_diff": 1e-4, "rows": 4}})
    evaluation = core.evaluate_model_dir(tmp_path, TRAIN, TEST)
    # contributions 2 * (a - 1.5) and -1 * (b - 0.5): rows (-1, -0.5) and (1, 0.5); mean magnitudes 1 and 0.5
    assert evaluation.importance == {"A": 1.0, "B": 0.5}
    assert evaluation.savedmodel_max_abs_diff == 1e-4


@pytest.mark.parametrize(
    ("check", "message"),
    [({"max_abs_diff": 2e-4, "rows": 4}, r"^served prediction path differs from the SavedModel by 0\.0002 on 4 rows$"),
     ({"max_abs_diff": "nan", "rows": 4}, r"^served prediction path differs from the SavedModel by nan on 4 rows$"),
     ({"rows": 4}, r"^boston_model\.json: savedmodel_check is malformed$"),
     ({"max_abs_diff": 1e-5}, r"^boston_model\.json: savedmodel_check is malformed$"),
     ({"max_abs_diff": "big", "rows": 4}, r"^boston_model\.json: savedmodel_check is malformed$"),
     ({"max_abs_diff": 1e-5, "rows": None}, r"^boston_model\.json: savedmodel_check is malformed$"),
     ([1e-5, 4], r"^boston_model\.json: savedmodel_check is malformed$")],
    ids=["above", "nan", "no-diff", "no-rows", "text", "none", "list"],
)
def test_a_bad_savedmodel_proof_is_refused(check: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        core.savedmodel_check({"savedmodel_check": check})


def test_a_card_without_means_has_no_importance(tmp_path: Path) -> None:
    fmt.write_card(tmp_path, CARD)
    assert core.evaluate_model_dir(tmp_path, TRAIN, TEST).importance is None


# --- what the step reports -----------------------------------------------------------------------------------------


def test_flat_metrics_and_the_markdown_table(tmp_path: Path) -> None:
    evaluation = core.evaluate_model(fmt.linear_model_from_card(CARD), TRAIN, TEST)
    flat = core.flat_metrics(evaluation)
    assert flat["test_rows"] == 2 and flat["mean_mse"] == 1.0 and flat["mse"] == 0.5
    rows = core.metrics_rows(flat)
    assert [label for label, *_ in rows] == ["model (test rows)", "baseline: least squares", "baseline: mean"]
    assert rows[0] == ("model (test rows)", 0.5, math.sqrt(0.5), 0.5, 0.5)
    assert rows[2] == ("baseline: mean", 1.0, 1.0, 1.0, 0.0)
    assert all(math.isnan(v) for v in core.metrics_rows({})[0][1:])
    decision = core.decide_gate(evaluation.metrics, 1.0, max_rmse=6.0, champion=comparison(0.7, 0.8))
    markdown = core.gate_markdown(evaluation, decision, champion=comparison(0.7, 0.8))
    lines = markdown.splitlines()
    assert lines[:6] == ["# Deployment gate: PASSED", "", "| check | result | detail |", "|---|---|---|",
                         "| max_rmse | pass | RMSE 0.707 <= max_rmse 6.000 |",
                         "| beats_mean | pass | RMSE 0.707 < mean-baseline RMSE 1.000 |"]
    assert "Same rows: 40 of 102 test rows, unseen by both in training." in lines
    assert "| candidate | 40 | 0.700 | 1.000 | 0.500 |" in lines
    assert "| champion v3 | 40 | 0.800 | 2.000 | 0.250 |" in lines
    assert lines[-1] == "| baseline: mean | 1.000 | 1.000 | 1.000 | 0.000 |"
    assert markdown.endswith("\n")


def test_a_failed_gate_in_markdown_bolds_the_failure_and_quotes_the_notes() -> None:
    evaluation = core.evaluate_model(fmt.linear_model_from_card(CARD), TRAIN, TEST)
    decision = core.decide_gate(evaluation.metrics, 0.5, max_rmse=6.0, champion=ChampionUnavailable("v2", "gone"))
    lines = core.gate_markdown(evaluation, decision, training_drift=ChampionUnavailable("v2", "no card")).splitlines()
    assert lines[0] == "# Deployment gate: FAILED"
    assert "| beats_mean | **FAIL** | RMSE 0.707 >= mean-baseline RMSE 0.500 |" in lines
    assert "> gone: no champion check, the absolute checks decide" in lines
    at = lines.index("Training-set drift: no card.")
    assert lines[at - 1] == ""


def test_champion_and_drift_scalars() -> None:
    assert core.champion_metrics(None) == {}
    assert core.champion_metrics(comparison(0.7, 0.8)) == {"champion_rows_compared": 40.0,
                                                           "champion_same_rows_rmse": 0.8,
                                                           "candidate_same_rows_rmse": 0.7}
    state = drift_state(100.0)
    assert core.champion_metrics(None, state) == {"training_drift_max_psi": max(state.report.psi.values())}
    assert core.champion_rows(ChampionUnavailable("v1", "x")) == []
    assert core.training_drift_rows(None) == []
    ranked = core.training_drift_rows(state)
    assert [name for name, _, _ in ranked] == ["B", "A"] and ranked[0][2] == "drift"


def test_html_sections_say_what_they_could_not_show() -> None:
    assert core.champion_section(None) == "<h2>Champion</h2><p>No champion yet: this is the first model.</p>"
    assert core.champion_section(ChampionUnavailable("v1", "a <bad> card")) == \
        "<h2>Champion</h2><p class='fail'>a &lt;bad&gt; card.</p>"
    assert core.training_drift_section(None) == ""
    assert core.training_drift_section(ChampionUnavailable("v1", "no <card>")) == \
        "<h2>Training-set drift</h2><p>no &lt;card&gt;.</p>"
    assert core.importance_section(None) == "" and core.importance_section({}) == ""
    section = core.champion_section(comparison(0.7, 0.8))
    assert "40 of the 102 test rows were never seen by champion v3" in section
    assert "recorded on its own test rows was 3.500" in section
    unrecorded = ChampionComparison("v3", 40, 102, {"rmse": 1.0, "mae": 1.0, "r2": 0.0},
                                    {"rmse": 1.0, "mae": 1.0, "r2": 0.0}, None)
    assert "was not recorded" in core.champion_section(unrecorded)


def test_the_html_report_of_a_synthetic_model(tmp_path: Path) -> None:
    fmt.write_card(tmp_path, {**CARD, "feature_means": [1.5, 0.5]})
    evaluation = core.evaluate_model_dir(tmp_path, TRAIN, TEST)
    decision = core.decide_gate(evaluation.metrics, 1.0, max_rmse=0.5, training_drift=drift_state(100.0),
                                max_training_drift=0.5)
    page = core.evaluation_report(evaluation, decision, training_drift=drift_state(100.0), max_training_drift=0.5)
    assert "<p>2 test rows. Deployment gate <b class='fail'>failed</b>.</p>" in page
    assert page.count("data:image/png;base64,") == 3  # predictions, drift, global view
    assert "The gate fails above 0.5." in page and "Overall: <b>drift</b>" in page
    assert "Global view" in page
    reported = core.training_drift_section(drift_state(0.0), threshold=0)
    assert "</b>. Reported only: the run sets no threshold (max_training_drift = 0).</p>" in reported


# --- what the figures show -----------------------------------------------------------------------------------------


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """What each figure the reports embed shows: per axes its title, labels, legend, points, lines and bars."""
    from components.common import report

    shown: list[dict] = []
    render = report.figure_to_img

    def capture(figure, alt: str) -> str:
        axes = []
        for ax in figure.axes:
            legend = ax.get_legend()
            axes.append({
                "title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
                "points": [c.get_offsets().tolist() for c in ax.collections],
                "lines": [(list(line.get_xdata()), list(line.get_ydata()), line.get_label()) for line in ax.lines],
                "bars": [(p.get_width(), tuple(round(c, 3) for c in p.get_facecolor()[:3])) for p in ax.patches],
                "ticks": [t.get_text() for t in ax.get_yticklabels()],
            })
        shown.append({"alt": alt, "size": tuple(figure.get_size_inches()), "axes": axes})
        return render(figure, alt)

    monkeypatch.setattr(report, "figure_to_img", capture)
    return shown


def test_the_prediction_figures_plot_actual_predicted_and_residuals(figures: list[dict]) -> None:
    evaluation = core.evaluate_model(fmt.linear_model_from_card(CARD), TRAIN, TEST)
    core.evaluation_report(evaluation, core.decide_gate(evaluation.metrics, 1.0))
    assert figures[0]["alt"] == "predicted vs actual and residuals" and len(figures) == 1
    left, right = figures[0]["axes"]
    assert (left["title"], left["xlabel"], left["ylabel"]) == ("Predicted vs actual (test rows)",
                                                               "actual MEDV ($1000s)", "predicted")
    assert left["points"] == [[[3.0, 2.0], [5.0, 5.0]]]  # (actual, predicted)
    assert left["lines"] == [([2.0, 5.0], [2.0, 5.0], "perfect")] and left["legend"] == ["perfect"]
    assert (right["title"], right["xlabel"], right["ylabel"]) == ("Residuals", "predicted",
                                                                  "residual (predicted - actual)")
    assert right["points"] == [[[2.0, -1.0], [5.0, 0.0]]]  # (predicted, predicted - actual)
    assert [ys for _, ys, _ in right["lines"]] == [[0, 0]]  # the zero line


def test_the_importance_figure_ranks_the_features(figures: list[dict]) -> None:
    html = core.importance_section({"A": 1.0, "B": 0.5, "C": 2.0})
    (ax,) = figures[0]["axes"]
    assert figures[0]["alt"] == "mean absolute contribution per feature"
    assert ax["ticks"] == ["B", "A", "C"] and [w for w, _ in ax["bars"]] == [0.5, 1.0, 2.0]  # largest on top
    assert (ax["xlabel"], ax["title"]) == ("mean |contribution| to the prediction ($1000s)",
                                           "What moves the price (test rows)")
    assert html.index("<td>C</td>") < html.index("<td>A</td>") < html.index("<td>B</td>")  # the table: largest first


def test_the_drift_figure_colours_each_band_and_marks_the_limits(figures: list[dict]) -> None:
    state = drift_state(100.0)
    html = core.training_drift_section(state, threshold=0.5)
    (ax,) = figures[0]["axes"]
    assert figures[0]["alt"] == "population stability index per feature"
    assert ax["ticks"] == ["A", "B"]  # lowest index at the bottom
    assert [w for w, _ in ax["bars"]] == [state.report.psi["A"], state.report.psi["B"]]
    blue, red = (0.282, 0.471, 0.659), (0.753, 0.251, 0.251)  # #4878a8 (stable), #c04040 (drift)
    assert [c for _, c in ax["bars"]] == [blue, red]
    assert [(xs[0], label) for xs, _, label in ax["lines"]] == [
        (drift.STABLE_BELOW, f"moderate from {drift.STABLE_BELOW}"),
        (drift.DRIFT_ABOVE, f"drift above {drift.DRIFT_ABOVE}"), (0.5, "gate threshold 0.5")]
    assert ax["xlabel"] == "population stability index against the champion's training rows"
    assert ax["title"] == "Training-set drift: candidate vs champion v1"
    assert "The candidate's 200 training rows counted into the bins of champion v1's 200 training rows" in html
    assert html.index("<td>B</td>") < html.index("<td>A</td>")
    core.training_drift_section(state, threshold=0)
    assert [label for _, _, label in figures[1]["axes"][0]["lines"]] == [f"moderate from {drift.STABLE_BELOW}",
                                                                          f"drift above {drift.DRIFT_ABOVE}"]


# --- the words and tables of the reports ---------------------------------------------------------------------------


def test_gate_markdown_in_full() -> None:
    evaluation = core.evaluate_model(fmt.linear_model_from_card(CARD), TRAIN, TEST)
    state = drift_state(100.0)
    psi_a, psi_b = state.report.psi["A"], state.report.psi["B"]
    decision = core.decide_gate(evaluation.metrics, 0.5, max_rmse=0.5, champion=comparison(0.7, 0.8),
                                champion_tolerance=0.25, training_drift=state, max_training_drift=0.5)
    decision.notes.append("a note")
    ls_mse = evaluation.baselines["least_squares"]["mse"]
    ls = f"{ls_mse:.3f} | {math.sqrt(ls_mse):.3f} | {evaluation.baselines['least_squares']['mae']:.3f} | " \
         f"{evaluation.baselines['least_squares']['r2']:.3f}"
    assert core.gate_markdown(evaluation, decision, champion=comparison(0.7, 0.8), training_drift=state) == "\n".join([
        "# Deployment gate: FAILED", "", "| check | result | detail |", "|---|---|---|",
        "| max_rmse | **FAIL** | RMSE 0.707 > max_rmse 0.500 |",
        "| beats_mean | **FAIL** | RMSE 0.707 >= mean-baseline RMSE 0.500 |",
        f"| training_drift | **FAIL** | training-set drift against champion v1 above 0.50 in B ({psi_b:.2f}) |",
        "| vs_champion | pass | on the 40 test rows champion v3 never trained on: RMSE 0.700 <= champion RMSE 0.800 "
        "+ 25% (1.000) |",
        "", "> a note",
        "", "Same rows: 40 of 102 test rows, unseen by both in training.",
        "", "| model | rows | RMSE | MAE | R² |", "|---|---:|---:|---:|---:|",
        "| candidate | 40 | 0.700 | 1.000 | 0.500 |", "| champion v3 | 40 | 0.800 | 2.000 | 0.250 |",
        "", "Training-set drift against champion v1 (200 candidate rows in the champion's bins): **drift**.",
        "", "| feature | index | band |", "|---|---:|---|",
        f"| B | {psi_b:.3f} | drift |", f"| A | {psi_a:.3f} | stable |",
        "", "| predictor | MSE | RMSE | MAE | R² |", "|---|---:|---:|---:|---:|",
        "| model (test rows) | 0.500 | 0.707 | 0.500 | 0.500 |",
        f"| baseline: least squares | {ls} |",
        "| baseline: mean | 1.000 | 1.000 | 1.000 | 0.000 |"]) + "\n"


def test_a_first_model_markdown_has_no_notes_and_no_comparisons() -> None:
    evaluation = core.evaluate_model(fmt.linear_model_from_card(CARD), TRAIN, TEST)
    lines = core.gate_markdown(evaluation, core.decide_gate(evaluation.metrics, 1.0, max_rmse=1.0)).splitlines()
    assert lines[:7] == ["# Deployment gate: PASSED", "", "| check | result | detail |", "|---|---|---|",
                         "| max_rmse | pass | RMSE 0.707 <= max_rmse 1.000 |",
                         "| beats_mean | pass | RMSE 0.707 < mean-baseline RMSE 1.000 |", ""]
    assert lines[7] == "| predictor | MSE | RMSE | MAE | R² |" and len(lines) == 12


def test_summaries_join_every_failure_and_note() -> None:
    decision = core.decide_gate({"rmse": 7.0}, mean_rmse=6.0, max_rmse=6.0)
    decision.notes += ["one", "two"]
    assert decision.summary() == ("gate failed: RMSE 7.000 > max_rmse 6.000; RMSE 7.000 >= mean-baseline RMSE "
                                  "6.000 (one) (two)")


def test_the_html_tables_say_what_they_hold(tmp_path: Path) -> None:
    fmt.write_card(tmp_path, {**CARD, "feature_means": [1.5, 0.5]})
    evaluation = core.evaluate_model_dir(tmp_path, TRAIN, TEST)
    decision = core.decide_gate(evaluation.metrics, 0.5, max_rmse=1.0)
    decision.notes += ["a <note>", "another"]
    page = core.evaluation_report(evaluation, decision, champion=comparison(0.7, 0.8))
    assert "<title>Boston Housing: evaluation</title>" in page
    assert "<p>2 test rows. Deployment gate <b class='fail'>failed</b>.</p>" in page
    assert ("<table><tr><th>predictor</th><th>MSE</th><th>RMSE</th><th>MAE</th><th>R²</th></tr>"
            "<tr><td>model (test rows)</td><td>0.5000</td><td>0.7071</td><td>0.5000</td><td>0.5000</td></tr>") in page
    assert ("<h2>Gate</h2><table><tr><th>check</th><th>result</th><th>detail</th></tr>"
            "<tr><td>max_rmse</td><td>pass</td><td>RMSE 0.707 &lt;= max_rmse 1.000</td></tr>"
            "<tr><td>beats_mean</td><td>FAIL</td><td>RMSE 0.707 &gt;= mean-baseline RMSE 0.500</td></tr></table>"
            "<p>a &lt;note&gt;</p><p>another</p><h2>Champion on the same rows</h2>") in page
    assert ("<table><tr><th>model</th><th>rows</th><th>RMSE</th><th>MAE</th><th>R²</th></tr>"
            "<tr><td>candidate</td><td>40</td><td>0.7000</td><td>1.0000</td><td>0.5000</td></tr>"
            "<tr><td>champion v3</td><td>40</td><td>0.8000</td><td>2.0000</td><td>0.2500</td></tr></table>") in page
    assert ("<table><tr><th>feature</th><th>mean |contribution|</th></tr><tr><td>A</td><td>1.0000</td></tr>"
            "<tr><td>B</td><td>0.5000</td></tr></table>") in page
    assert ("<h2>Global view</h2><p>Each prediction is the baseline (the prediction at the training rows' mean) "
            "plus one contribution per feature, w·(x − mean). The bars average their size over the test rows.</p>"
            "<img") in page
    passed = core.evaluation_report(evaluation, core.decide_gate(evaluation.metrics, 1.0, max_rmse=1.0))
    assert "Deployment gate <b class='pass'>passed</b>" in passed and "No champion yet" in passed


def test_the_drift_section_table_and_colours_of_every_band(figures: list[dict]) -> None:
    from types import SimpleNamespace

    report = SimpleNamespace(rows=150, verdict="moderate", psi={"A": 0.05, "B": 0.2, "C": 0.4, "D": 0.0},
                             bands={"A": "stable", "B": "moderate", "C": "drift", "D": "no rows"})
    html = core.training_drift_section(TrainingDrift("v9", report, 300), threshold=0.3)
    assert ("<table><tr><th>feature</th><th>index</th><th>band</th></tr><tr><td>C</td><td>0.4000</td><td>drift</td>"
            "</tr><tr><td>B</td><td>0.2000</td><td>moderate</td></tr>") in html
    assert "Overall: <b>moderate</b>. The gate fails above 0.3.</p>" in html
    colours = dict(zip(figures[0]["axes"][0]["ticks"], (c for _, c in figures[0]["axes"][0]["bars"]), strict=True))
    hexed = {name: "#" + "".join(f"{round(v * 255):02x}" for v in rgb) for name, rgb in colours.items()}
    assert hexed == {"A": "#4878a8", "B": "#e0a030", "C": "#c04040", "D": "#888888"}
    assert core.training_drift_rows(TrainingDrift("v9", report, 300))[0] == ("C", 0.4, "drift")


def test_r2_is_defined_for_any_spread_in_the_target() -> None:
    assert core.regression_metrics([0.0, 1.0], [0.0, 1.0])["r2"] == 1.0  # total sum of squares 0.5
    assert core.regression_metrics([0.0, 1.0], [0.5, 0.5])["r2"] == 0.0


def test_the_least_squares_baseline_of_an_exactly_linear_target_is_exact() -> None:
    train = pd.DataFrame({"A": [0.0, 1.0, 2.0, 3.0], "B": [0.0, 1.0, 0.0, 2.0]})
    train["MEDV"] = 2 * train["A"] - train["B"] + 1
    test = pd.DataFrame({"A": [5.0, -1.0], "B": [1.0, 3.0], "MEDV": [10.0, -4.0]})
    baseline = core.evaluate_model(fmt.linear_model_from_card(CARD), train, test).baselines["least_squares"]
    assert baseline["mse"] == pytest.approx(0.0, abs=1e-20) and baseline["r2"] == pytest.approx(1.0)


def test_every_feature_over_the_threshold_is_named() -> None:
    report = drift.DriftReport(200, {"A": 0.6, "B": 0.7, "C": 0.1}, {"A": "drift", "B": "drift", "C": "stable"},
                               "drift")
    decision = core.decide_gate({"rmse": 4.0}, 9.0, 9.0, training_drift=TrainingDrift("v1", report, 200),
                                max_training_drift=0.5)
    # highest first
    assert decision.failures == ["training-set drift against champion v1 above 0.50 in B (0.70), A (0.60)"]
    no_features = drift.DriftReport(200, {}, {}, "stable")
    assert core.champion_metrics(None, TrainingDrift("v1", no_features, 200)) == {"training_drift_max_psi": 0.0}
