"""Champion and challenger on the same rows: re-score the serving champion's stored model on the candidate's test rows.

The champion record's RMSE was measured on the champion's own test rows; after a run with another seed or new data
those are other rows, and comparing the two numbers compares two test sets. Instead the champion's stored version
is fetched (its manifest verified), folded from its card (no TensorFlow needed) and scored on the candidate's test
rows, keeping only the rows the champion never trained on (its card lists fingerprints of its training rows), so
neither model is judged on rows it has seen. This is what TFX's Evaluator does with its baseline model.

The same fetch also measures drift between the two training sets: the candidate's training rows counted into the
bins of the champion's training distribution (its card), one population stability index per feature.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from boston_model.card import LinearModel, linear_model_from_card, read_card, row_fingerprints
from boston_model.drift import DriftReport, card_bins, count_bins, drift_report
from boston_model.errors import BadInput
from boston_model.store import KeyNotFound, ObjectStore
from boston_model.versions import fetch_version, read_champion


@dataclass(frozen=True)
class ChampionComparison:
    """Both models scored on the same rows (test rows of the candidate the champion never trained on).

    Attributes:
        version: The champion's version.
        rows: How many rows were compared.
        test_rows: How many test rows the candidate has (``rows`` of them were eligible).
        candidate: The candidate's metrics on those rows.
        champion: The champion's metrics on those rows.
        recorded_rmse: The RMSE the champion record carries (measured on the champion's own test rows).
    """

    version: str
    rows: int
    test_rows: int
    candidate: dict[str, float]
    champion: dict[str, float]
    recorded_rmse: float | None


@dataclass(frozen=True)
class ChampionUnavailable:
    """A champion exists but cannot be compared; ``reason`` is one line naming it and why."""

    version: str
    reason: str


ChampionState = ChampionComparison | ChampionUnavailable | None


@dataclass(frozen=True)
class TrainingDrift:
    """The candidate's training rows against the champion's training distribution.

    Attributes:
        version: The champion's version.
        report: Per-feature index, bands and verdict (``report.rows`` is the candidate's training rows).
        champion_rows: How many rows the champion's distribution was measured on.
    """

    version: str
    report: DriftReport
    champion_rows: int


TrainingDriftState = TrainingDrift | ChampionUnavailable | None


def training_drift(
    train: pd.DataFrame, champion_card: dict[str, Any], version: str
) -> TrainingDrift | ChampionUnavailable:
    """Counts the candidate's training rows into the champion's bins and measures the index per feature.

    Returns:
        The comparison, or why it cannot be made (a card older than the distribution, features the rows lack).
    """
    try:
        bins = card_bins(champion_card)
    except BadInput:
        return ChampionUnavailable(version, f"champion {version} records no training distribution (trained before "
                                            "it was recorded)")
    missing = [n for n in bins.feature_names if n not in train.columns]
    if missing:
        return ChampionUnavailable(version, f"champion {version} trained on features the candidate's rows lack "
                                            f"({', '.join(missing)})")
    rows = train[list(bins.feature_names)].to_numpy(dtype=np.float64)
    return TrainingDrift(version, drift_report(count_bins(rows, bins), bins), bins.training_rows)


def unseen_rows(test: pd.DataFrame, card: dict[str, Any], names: list[str], target: str) -> np.ndarray:
    """A boolean mask of the test rows whose fingerprint is not among the champion's training rows."""
    seen = set(card["train_fingerprints"])
    prints = row_fingerprints(test[[*names, target]].to_numpy(dtype=np.float64))
    return np.asarray([p not in seen for p in prints], dtype=bool)


def compare_on_same_rows(
    candidate: LinearModel,
    champion: LinearModel,
    champion_card: dict[str, Any],
    test: pd.DataFrame,
    target: str,
    version: str,
    recorded_rmse: float | None = None,
) -> ChampionState:
    """Scores both models on the candidate's test rows that the champion never trained on.

    Returns:
        The comparison, or why it cannot be made (other features, no fingerprints, no unseen row).
    """
    from components.evaluate.core import regression_metrics

    names = list(champion.feature_names)
    missing = [n for n in names if n not in test.columns]
    if missing or set(names) != set(candidate.feature_names):
        return ChampionUnavailable(version, f"champion {version} uses other features "
                                            f"({', '.join(names)}) than the candidate")
    if not isinstance(champion_card.get("train_fingerprints"), list):
        return ChampionUnavailable(version, f"champion {version} has no training-row fingerprints in its card "
                                            "(trained before they were recorded)")
    mask = unseen_rows(test, champion_card, names, target)
    if not mask.any():
        return ChampionUnavailable(version, f"champion {version} trained on every one of the {len(test)} test rows")
    rows = test.loc[mask]
    actual = rows[target].to_numpy(dtype=np.float64)
    return ChampionComparison(
        version=version,
        rows=int(mask.sum()),
        test_rows=int(len(test)),
        candidate=regression_metrics(actual, candidate.predict(rows[list(candidate.feature_names)].to_numpy())),
        champion=regression_metrics(actual, champion.predict(rows[names].to_numpy())),
        recorded_rmse=recorded_rmse,
    )


def champion_state(
    store: ObjectStore, bucket: str, model_name: str, candidate: LinearModel, test: pd.DataFrame, target: str
) -> ChampionState:
    """The same-rows comparison alone (see :func:`review_champion`)."""
    return review_champion(store, bucket, model_name, candidate, test, target)[0]


def review_champion(
    store: ObjectStore,
    bucket: str,
    model_name: str,
    candidate: LinearModel,
    test: pd.DataFrame,
    target: str,
    train: pd.DataFrame | None = None,
) -> tuple[ChampionState, TrainingDriftState]:
    """Reads the champion record, fetches and verifies its version once, and compares it with the candidate.

    Args:
        train: The candidate's training rows; when given, the second result is their drift against the
            champion's training rows (else None).

    Returns:
        ``(comparison, training drift)``: both None when there is no champion yet; `ChampionUnavailable` when its
        version cannot be read (missing, corrupt, other features); otherwise the comparisons.

    Raises:
        StoreError: The store itself fails (unreachable, credentials): the step retries, the gate does not guess.
    """
    record = read_champion(store, bucket, model_name)
    if record is None:
        return None, None
    version = str(record.get("version", "?"))
    recorded = (record.get("metrics") or {}).get("rmse")
    with tempfile.TemporaryDirectory(prefix="champion-") as scratch:
        try:
            fetch_version(store, str(record["uri"]), Path(scratch))
            card = read_card(Path(scratch))
            champion = linear_model_from_card(card)
        except (BadInput, KeyNotFound, KeyError, ValueError) as exc:
            unavailable = ChampionUnavailable(version, f"champion {version} cannot be read: {exc}")
            return unavailable, (unavailable if train is not None else None)
    comparison = compare_on_same_rows(candidate, champion, card, test, target, version,
                                      float(recorded) if recorded is not None else None)
    return comparison, (training_drift(train, card, version) if train is not None else None)
