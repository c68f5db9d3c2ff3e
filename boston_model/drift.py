"""Input drift: the training rows' distribution in the card, bin counting, and the population stability index.

Numpy only (the predictor imports it on its hot path). The card's ``training_distribution`` records, per feature,
interior bin *edges* ``e_1 < … < e_k`` and the share of training rows in each of the ``k + 1`` bins. The bin
convention, used everywhere (card, predictor counters, gate, CLI):

- bin 0 is ``(-inf, e_1)``, bin ``i`` is ``[e_i, e_{i+1})``, bin ``k`` is ``[e_k, +inf)``;
- so every finite value lands in exactly one bin: the number of edges ``<= value`` (``np.searchsorted(edges, v,
  side="right")``), and a value equal to an edge counts in the bin above it.

Edges come from the training rows: a feature with at most ``n_bins`` distinct values (CHAS, RAD) gets one bin per
value (edges are its distinct values but the smallest); any other feature gets the interior quantiles
(deciles for ``n_bins = 10``, numpy's default linear interpolation), de-duplicated, without edges at or below the
training minimum (they would only make a bin no training row can fall in).

The population stability index of live (or candidate) counts ``a`` against training shares ``e`` is
``sum_i (a_i - e_i) * ln(a_i / e_i)``, where both are shares and a share below ``EPSILON`` counts as ``EPSILON``
(an empty bin would otherwise make it infinite). Bands: below 0.1 "stable", 0.1 to 0.25 "moderate", above 0.25
"drift"; fewer than ``MIN_ROWS`` rows is "too few rows" instead of a guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from boston_model.errors import BadInput

DISTRIBUTION_KEY = "training_distribution"  # the card's field
# The predictor's Prometheus counter of rows per feature and bin (labels model_name, feature, bin = the bin's index);
# prometheus_client exposes it as METRIC + "_total".
METRIC = "boston_feature_rows"
DEFAULT_BINS = 10  # deciles
EPSILON = 1e-4  # the share an empty bin counts as
MIN_ROWS = 100  # below this many rows the index says nothing reliable
_COMPARE_ROWS = 16  # up to this many rows count_bins compares against every edge at once (measured crossover)
STABLE_BELOW = 0.1
DRIFT_ABOVE = 0.25

STABLE, MODERATE, DRIFT, TOO_FEW_ROWS = "stable", "moderate", "drift", "too few rows"
_SEVERITY = {STABLE: 0, MODERATE: 1, DRIFT: 2}


def feature_edges(values: np.ndarray, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """Interior bin edges for one feature's training values (see the module docstring for the rule).

    Args:
        values: The training rows' values of one feature (finite).
        n_bins: Quantile bins for a continuous feature (10 = deciles); also the most distinct values a feature may
            have to get one bin per value.

    Returns:
        Sorted, strictly increasing float64 edges (possibly empty: one bin holds everything).
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise BadInput("feature values must be a non-empty array of finite numbers")
    distinct = np.unique(values)
    if distinct.size <= n_bins:
        return distinct[1:]
    edges = np.unique(np.quantile(values, np.arange(1, n_bins) / n_bins))
    return edges[edges > distinct[0]]


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value: how many edges are ``<= value`` (0 … ``len(edges)``)."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="right")


def training_distribution(
    rows: np.ndarray, feature_names: Sequence[str], n_bins: int = DEFAULT_BINS
) -> dict[str, Any]:
    """The card's ``training_distribution`` field: per feature, bin edges and the share of rows in each bin.

    Args:
        rows: ``(n, n_features)`` training rows, raw feature values.
        feature_names: The columns of ``rows``, in order.
        n_bins: See :func:`feature_edges`.

    Returns:
        ``{"rows": n, "n_bins": n_bins, "features": {name: {"edges": [...], "shares": [...]}}}``, JSON-ready.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != len(feature_names) or rows.shape[0] == 0:
        raise BadInput(f"expected rows of shape (n > 0, {len(feature_names)}), got {rows.shape}")
    features = {}
    for j, name in enumerate(feature_names):
        edges = feature_edges(rows[:, j], n_bins)
        counts = np.bincount(bin_index(rows[:, j], edges), minlength=edges.size + 1)
        features[str(name)] = {"edges": edges.tolist(), "shares": (counts / rows.shape[0]).tolist()}
    return {"rows": int(rows.shape[0]), "n_bins": int(n_bins), "features": features}


@dataclass(frozen=True)
class CardBins:
    """A card's training distribution, ready for counting.

    Attributes:
        feature_names: The features, in the model's column order (the columns of the rows to count).
        edges: Per feature, its interior edges.
        shares: Per feature, the share of training rows in each bin (``len(edges) + 1`` values).
        training_rows: How many training rows the shares were measured on.
    """

    feature_names: tuple[str, ...]
    edges: tuple[np.ndarray, ...]
    shares: tuple[np.ndarray, ...]
    training_rows: int
    # (n_features, max_edges) edges padded with +inf, which no finite value reaches: one comparison counts them all.
    _padded: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        width = max((e.size for e in self.edges), default=0)
        padded = np.full((len(self.edges), width), np.inf)
        for j, e in enumerate(self.edges):
            padded[j, : e.size] = e
        object.__setattr__(self, "_padded", padded)

    @property
    def n_bins(self) -> tuple[int, ...]:
        """Bins per feature (``len(edges) + 1``)."""
        return tuple(e.size + 1 for e in self.edges)

    def labels(self, feature: str) -> list[str]:
        """Readable bin ranges of one feature, e.g. ``["< 6.2", "[6.2, 6.5)", …, ">= 7.5"]``."""
        edges = self.edges[self.feature_names.index(feature)]
        if edges.size == 0:
            return ["all"]
        inner = [f"[{lo:.4g}, {hi:.4g})" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        return [f"< {edges[0]:.4g}", *inner, f">= {edges[-1]:.4g}"]


def card_bins(card: Mapping[str, Any]) -> CardBins:
    """Reads the training distribution from a model card.

    Raises:
        BadInput: The card has none (an older card) or it does not match the card's feature names.
    """
    dist = card.get(DISTRIBUTION_KEY)
    if not isinstance(dist, Mapping):
        raise BadInput("the model card records no training distribution (trained before drift was recorded): "
                          "retrain the model to measure drift against it")
    try:
        names = tuple(str(n) for n in card["feature_names"])
        features = dist["features"]
        edges = tuple(np.asarray(features[n]["edges"], dtype=np.float64).reshape(-1) for n in names)
        shares = tuple(np.asarray(features[n]["shares"], dtype=np.float64).reshape(-1) for n in names)
        rows = int(dist["rows"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"the model card's training distribution is malformed: {exc!r}") from None
    for name, e, s in zip(names, edges, shares, strict=True):
        if s.size != e.size + 1 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
            raise BadInput(f"the model card's training distribution is malformed for feature {name}")
    return CardBins(names, edges, shares, rows)


def count_bins(rows: np.ndarray, bins: CardBins) -> np.ndarray:
    """Counts each row's features into the card's bins, vectorised (for the predictor's hot path).

    Args:
        rows: ``(n, n_features)`` finite feature values, columns in ``bins.feature_names`` order.
        bins: From :func:`card_bins`.

    Returns:
        int64 array ``(n_features, max bins)``: ``counts[j, i]`` rows whose feature ``j`` falls in bin ``i``; a
        feature with fewer bins has zeros beyond its own (``bins.n_bins[j]``).

    Raises:
        BadInput: Wrong shape or a non-finite value (it would belong to no bin).
    """
    rows = np.asarray(rows, dtype=np.float64)
    n_features, width = bins._padded.shape
    if rows.ndim != 2 or rows.shape[1] != n_features:
        raise BadInput(f"expected rows of shape (n, {n_features}), got {rows.shape}")
    if not np.isfinite(rows).all():
        raise BadInput("rows must be finite to be counted")
    if rows.shape[0] <= _COMPARE_ROWS:  # one broadcast comparison: cheapest for the one-row requests of live traffic
        index = (rows[:, :, None] >= bins._padded[None, :, :]).sum(axis=2)  # (n, n_features): bin of each value
    else:  # a binary search per feature: O(n log bins) instead of n x bins comparisons
        index = np.empty(rows.shape, dtype=np.intp)
        for j, edges in enumerate(bins.edges):
            index[:, j] = np.searchsorted(edges, rows[:, j], side="right")
    flat = index + np.arange(n_features) * (width + 1)
    return np.bincount(flat.reshape(-1), minlength=n_features * (width + 1)).reshape(n_features, width + 1)


def psi(expected_shares: Sequence[float] | np.ndarray, actual_counts: Sequence[float] | np.ndarray) -> float:
    """Population stability index of ``actual_counts`` against ``expected_shares`` (same bins).

    Both sides are taken as shares and floored at ``EPSILON``; no actual row at all gives ``nan``.
    """
    expected = np.maximum(np.asarray(expected_shares, dtype=np.float64), EPSILON)
    counts = np.asarray(actual_counts, dtype=np.float64)
    if expected.shape != counts.shape:
        raise BadInput(f"{counts.size} counts for {expected.size} bins")
    total = counts.sum()
    if total <= 0:
        return float("nan")
    actual = np.maximum(counts / total, EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def band(index: float) -> str:
    """ "stable" below 0.1, "moderate" from 0.1 to 0.25, "drift" above 0.25."""
    if index < STABLE_BELOW:
        return STABLE
    return MODERATE if index <= DRIFT_ABOVE else DRIFT


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift against the training distribution.

    Attributes:
        rows: Rows seen (the smallest per-feature total, should counters be read mid-update).
        psi: Per feature, its index (``nan`` when no row was seen).
        bands: Per feature, its band, or "too few rows".
        verdict: The worst band over the features, or "too few rows" when ``rows < min_rows``.
    """

    rows: int
    psi: dict[str, float]
    bands: dict[str, str]
    verdict: str

    def drifted(self, threshold: float) -> list[str]:
        """Features whose index is above ``threshold``, highest first."""
        over = [(v, n) for n, v in self.psi.items() if v > threshold]
        return [n for _, n in sorted(over, reverse=True)]


def drift_report(
    counts: Mapping[str, Sequence[float]] | np.ndarray, bins: CardBins, min_rows: int = MIN_ROWS
) -> DriftReport:
    """The index per feature of observed bin counts against the card's training shares, and a verdict.

    Args:
        counts: Per feature, its count per bin (as a predictor's counters expose them, bin ``i`` at index ``i``),
            or the array :func:`count_bins` returns.
        bins: The card's bins (:func:`card_bins`).
        min_rows: Below this many rows the verdict is "too few rows".

    Raises:
        BadInput: A feature of the card has no counts, or its number of bins differs (counts for another card).
    """
    indices: dict[str, float] = {}
    totals: list[int] = []
    for j, name in enumerate(bins.feature_names):
        n_bins = bins.shares[j].size
        if isinstance(counts, np.ndarray):
            observed = np.asarray(counts[j], dtype=np.float64)
            if observed[n_bins:].any():
                raise BadInput(f"counts for {name} fall beyond its {n_bins} bins")
            observed = observed[:n_bins]
        elif name in counts:
            observed = np.asarray(counts[name], dtype=np.float64)
        else:
            raise BadInput(f"no counts for feature {name}")
        if observed.size != n_bins:
            raise BadInput(f"{observed.size} bin counts for {name}, the card has {n_bins} bins")
        indices[name] = psi(bins.shares[j], observed)
        totals.append(int(observed.sum()))
    rows = min(totals, default=0)
    if rows < min_rows:
        return DriftReport(rows, indices, {n: TOO_FEW_ROWS for n in indices}, TOO_FEW_ROWS)
    bands = {n: band(v) for n, v in indices.items()}
    verdict = max(bands.values(), key=_SEVERITY.__getitem__, default=STABLE)
    return DriftReport(rows, indices, bands, verdict)
