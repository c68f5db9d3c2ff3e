"""boston_model/drift.py: the card's training distribution, bin counting and the population stability index.

Pure numpy, no TensorFlow: expected values are worked out by hand or with numpy.quantile, not with the module.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from boston_model import drift
from boston_model.errors import BadInput
from components.load.core import load_table
from components.split.core import split_frame

NAMES = ["A", "B"]


@pytest.fixture(scope="module")
def boston_train() -> tuple[np.ndarray, list[str]]:
    train, _ = split_frame(load_table().frame, test_size=0.2, seed=42)
    names = [c for c in train.columns if c != "MEDV"]
    return train[names].to_numpy(dtype=np.float64), names


def card_for(rows: np.ndarray, names: list[str]) -> dict:
    return {"feature_names": names, drift.DISTRIBUTION_KEY: drift.training_distribution(rows, names)}


def bin_by_hand(value: float, edges: list[float]) -> int:
    """The documented convention, spelled out: bin 0 = (-inf, e1), bin i = [e_i, e_{i+1}), last = [e_k, inf)."""
    bounds = [-math.inf, *edges, math.inf]
    hits = [i for i in range(len(bounds) - 1) if bounds[i] <= value < bounds[i + 1]]
    assert len(hits) == 1
    return hits[0]


def test_a_continuous_feature_is_cut_at_its_deciles():
    values = np.random.default_rng(0).normal(6.3, 0.7, 400)
    edges = drift.feature_edges(values)
    np.testing.assert_allclose(edges, np.quantile(values, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]))
    shares = drift.training_distribution(values.reshape(-1, 1), ["RM"])["features"]["RM"]["shares"]
    assert shares == pytest.approx([0.1] * 10)


def test_a_discrete_feature_gets_one_bin_per_value():
    chas = np.array([0.0] * 93 + [1.0] * 7)
    dist = drift.training_distribution(chas.reshape(-1, 1), ["CHAS"])["features"]["CHAS"]
    assert dist == {"edges": [1.0], "shares": [0.93, 0.07]}


def test_repeated_quantiles_are_merged_and_nothing_is_cut_below_the_minimum():
    # ZN-like: 70 % zeros, then 30 distinct values: deciles 1-7 are all 0.
    values = np.concatenate([np.zeros(70), np.arange(1.0, 31.0)])
    edges = drift.feature_edges(values)
    expected = np.unique(np.quantile(values, np.arange(1, 10) / 10))
    np.testing.assert_allclose(edges, expected[expected > 0])
    assert np.all(np.diff(edges) > 0)
    counts = np.bincount(drift.bin_index(values, edges), minlength=edges.size + 1)
    assert counts[0] == 70 and counts.sum() == 100 and np.all(counts > 0)


def test_every_finite_value_lands_in_exactly_one_bin_by_the_documented_convention():
    rows = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 1.0]] * 30)
    bins = drift.card_bins(card_for(rows, NAMES))
    probe = np.array([[-1e300, -5.0], [0.999, 0.0], [1.0, 0.5], [2.0, 1.0], [2.5, 1.0 - 1e-12], [1e300, 7.0]])
    counts = drift.count_bins(probe, bins)
    for j, edges in enumerate(bins.edges):
        expected = np.zeros(counts.shape[1], dtype=int)
        for value in probe[:, j]:
            expected[bin_by_hand(value, edges.tolist())] += 1
        np.testing.assert_array_equal(counts[j], expected)
        assert counts[j].sum() == len(probe)
        assert not counts[j, bins.n_bins[j]:].any()  # nothing beyond the feature's own bins


def test_count_bins_agrees_with_counting_one_value_at_a_time(boston_train):
    rows, names = boston_train
    bins = drift.card_bins(card_for(rows, names))
    live = rows[:57] + np.random.default_rng(1).normal(0, 0.5, (57, len(names)))
    counts = drift.count_bins(live, bins)
    for j, edges in enumerate(bins.edges):
        by_hand = np.bincount([bin_by_hand(v, edges.tolist()) for v in live[:, j]], minlength=counts.shape[1])
        np.testing.assert_array_equal(counts[j], by_hand)


def test_count_bins_refuses_non_finite_values_and_wrong_shapes():
    bins = drift.card_bins(card_for(np.arange(20.0).reshape(10, 2), NAMES))
    with pytest.raises(BadInput, match="finite"):
        drift.count_bins(np.array([[1.0, np.nan]]), bins)
    with pytest.raises(BadInput, match="shape"):
        drift.count_bins(np.ones((3, 3)), bins)


def test_psi_by_hand():
    # a = (0.75, 0.25) against e = (0.5, 0.5): 0.25 ln 1.5 + (-0.25) ln 0.5 = 0.25 ln 3
    assert drift.psi([0.5, 0.5], [3, 1]) == pytest.approx(0.25 * math.log(3))
    assert drift.psi([0.2, 0.3, 0.5], [20, 30, 50]) == pytest.approx(0.0, abs=1e-15)
    # an empty live bin counts as 1e-4: (1 - 0.5) ln(1 / 0.5) + (1e-4 - 0.5) ln(1e-4 / 0.5)
    assert drift.psi([0.5, 0.5], [4, 0]) == pytest.approx(0.5 * math.log(2) + (1e-4 - 0.5) * math.log(2e-4))
    # an empty training bin likewise
    assert drift.psi([1.0, 0.0], [1, 1]) == pytest.approx((0.5 - 1) * math.log(0.5) + (0.5 - 1e-4) * math.log(5e3))
    assert math.isnan(drift.psi([0.5, 0.5], [0, 0]))


def test_bands():
    assert [drift.band(v) for v in (0.0, 0.0999, 0.1, 0.25, 0.2501, 4.0)] == [
        "stable", "stable", "moderate", "moderate", "drift", "drift"]


def test_identical_rows_read_stable(boston_train):
    rows, names = boston_train
    bins = drift.card_bins(card_for(rows, names))
    report = drift.drift_report(drift.count_bins(rows, bins), bins)
    assert report.rows == len(rows)
    assert report.verdict == "stable"
    assert set(report.bands.values()) == {"stable"}
    assert max(report.psi.values()) == pytest.approx(0.0, abs=1e-12)


def test_rm_shifted_by_one_and_a_half_rooms_reads_drift_for_rm_only(boston_train):
    rows, names = boston_train
    bins = drift.card_bins(card_for(rows, names))
    shifted = rows.copy()
    shifted[:, names.index("RM")] += 1.5
    report = drift.drift_report(drift.count_bins(shifted, bins), bins)
    assert report.verdict == "drift"
    assert report.bands["RM"] == "drift"
    assert {n: b for n, b in report.bands.items() if n != "RM"} == {n: "stable" for n in names if n != "RM"}
    assert report.drifted(0.25) == ["RM"]


def test_counts_as_a_predictor_exposes_them_give_the_same_report(boston_train):
    rows, names = boston_train
    bins = drift.card_bins(card_for(rows, names))
    live = rows[::2] * 1.1
    as_array = drift.drift_report(drift.count_bins(live, bins), bins)
    counts = drift.count_bins(live, bins)
    by_feature = {n: [int(c) for c in counts[j, : bins.n_bins[j]]] for j, n in enumerate(names)}
    assert drift.drift_report(by_feature, bins) == as_array


def test_too_few_rows_is_said_instead_of_guessed(boston_train):
    rows, names = boston_train
    bins = drift.card_bins(card_for(rows, names))
    report = drift.drift_report(drift.count_bins(rows[:99] + 100.0, bins), bins)
    assert report.rows == 99
    assert report.verdict == "too few rows"
    assert set(report.bands.values()) == {"too few rows"}
    assert drift.drift_report(drift.count_bins(rows[:100], bins), bins).verdict != "too few rows"


def test_counts_that_do_not_fit_the_card_are_refused():
    bins = drift.card_bins(card_for(np.arange(40.0).reshape(20, 2), NAMES))
    with pytest.raises(BadInput, match="no counts for feature B"):
        drift.drift_report({"A": [1] * bins.n_bins[0]}, bins)
    with pytest.raises(BadInput, match="bin counts for A"):
        drift.drift_report({"A": [1, 2], "B": [1] * bins.n_bins[1]}, bins)


def test_an_old_card_has_no_reference():
    with pytest.raises(drift.BadInput, match="no training distribution"):
        drift.card_bins({"feature_names": NAMES})
    broken = card_for(np.arange(40.0).reshape(20, 2), NAMES)
    broken[drift.DISTRIBUTION_KEY]["features"]["B"]["shares"] = [1.0]
    with pytest.raises(drift.BadInput, match="malformed"):
        drift.card_bins(broken)


def test_bin_labels_name_the_ranges():
    bins = drift.card_bins(card_for(np.array([[0.0, 1.0], [1.0, 2.0], [0.0, 3.0]] * 5), NAMES))
    assert bins.labels("A") == ["< 1", ">= 1"]
    assert bins.labels("B") == ["< 2", "[2, 3)", ">= 3"]
