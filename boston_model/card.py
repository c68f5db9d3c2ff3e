"""The one prediction path: evaluate, the local server and the KServe predictor all predict through here.

The trained network is `Normalization -> Dense(1)`, an affine map. Training folds it into one weight vector and a
bias and records them in ``boston_model.json`` beside the TensorFlow SavedModel, together with probe rows and the
SavedModel's own outputs for them. Loading re-checks the folded map against those recorded outputs, so a server can
prove it answers like the SavedModel without importing TensorFlow (2 s and 500 MB it does not need).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from boston_model.errors import BadInput

CARD_FILE = "boston_model.json"
SAVEDMODEL_DIR = "1"  # KServe's TensorFlow runtime (TF Serving) wants <model>/<version>/saved_model.pb
FORMAT_VERSION = 1
# float32 SavedModel against the float64 folded map: outputs are ~10-50, float32 keeps ~7 digits.
EQUALITY_ATOL = 1e-4


@dataclass(frozen=True)
class LinearModel:
    """A folded affine model: ``prediction = rows @ weights + bias``.

    Attributes:
        feature_names: Input columns, in the order the weights expect them.
        weights: One float64 weight per feature.
        bias: The intercept.
    """

    feature_names: tuple[str, ...]
    weights: np.ndarray
    bias: float

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Predicts one value per row.

        Args:
            rows: Array of shape ``(n, n_features)``, raw (unnormalised) feature values.

        Returns:
            Float64 array of shape ``(n,)``.
        """
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"expected rows of shape (n, {self.n_features}), got {rows.shape}")
        return rows @ self.weights + self.bias


def fold_normalization(
    mean: Sequence[float], variance: Sequence[float], kernel: Sequence[float], bias: float
) -> tuple[np.ndarray, float]:
    """Folds ``Dense(Normalization(x))`` into one affine map.

    Keras' Normalization computes ``(x - mean) / max(sqrt(variance), eps)``; the Dense layer then applies
    ``kernel`` and ``bias``.
    """
    mean_a = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.maximum(np.sqrt(np.asarray(variance, dtype=np.float64).reshape(-1)), np.finfo(np.float32).eps)
    kernel_a = np.asarray(kernel, dtype=np.float64).reshape(-1)
    weights = kernel_a / std
    return weights, float(bias) - float(mean_a @ weights)


def write_card(model_dir: Path, card: dict[str, Any]) -> Path:
    """Writes the model card JSON (folded weights, probe rows, training metadata) into ``model_dir``."""
    path = Path(model_dir) / CARD_FILE
    path.write_text(json.dumps(card, indent=2, sort_keys=True))
    return path


def read_card(model_dir: Path) -> dict[str, Any]:
    """Reads the model card, with a one-line error when it is missing or not JSON."""
    path = Path(model_dir) / CARD_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BadInput(f"model folder {Path(model_dir).name!r} has no {CARD_FILE}") from None
    if not text.strip():
        raise BadInput(f"{CARD_FILE} is empty")
    try:
        card = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{CARD_FILE} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(card, dict) or card.get("format_version") != FORMAT_VERSION:
        raise BadInput(f"{CARD_FILE} has an unknown format (expected format_version {FORMAT_VERSION})")
    return card


def linear_model_from_card(card: dict[str, Any]) -> LinearModel:
    """Builds the folded model from a card and proves it equal to the SavedModel's recorded outputs."""
    try:
        names = tuple(str(n) for n in card["feature_names"])
        weights = np.asarray(card["weights"], dtype=np.float64)
        bias = float(card["bias"])
        probe_x = np.asarray(card["probe"]["inputs"], dtype=np.float64)
        probe_y = np.asarray(card["probe"]["savedmodel_outputs"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"{CARD_FILE} is missing or has a bad field: {exc}") from None
    if weights.shape != (len(names),) or not np.all(np.isfinite(weights)) or not math.isfinite(bias):
        raise BadInput(f"{CARD_FILE}: weights do not match the {len(names)} feature names or are not finite")
    model = LinearModel(names, weights, bias)
    if (probe_x.ndim != 2 or probe_x.shape[0] == 0 or probe_x.shape[1] != len(names)
            or probe_y.size != probe_x.shape[0]):
        raise BadInput(f"{CARD_FILE}: probe rows are missing or malformed")
    diff = float(np.max(np.abs(model.predict(probe_x) - probe_y.reshape(-1))))
    if not diff <= EQUALITY_ATOL:
        raise BadInput(f"folded model differs from the SavedModel by {diff:.3g} (> {EQUALITY_ATOL})")
    return model


def load_linear_model(model_dir: Path) -> LinearModel:
    """Loads the folded model from a model folder and checks it against the SavedModel's recorded outputs."""
    return linear_model_from_card(read_card(Path(model_dir)))


@dataclass(frozen=True)
class Explanation:
    """Exact additive attributions of a linear model's predictions.

    Attributes:
        predictions: One prediction per row.
        baseline: The model's prediction at the training rows' feature means.
        contributions: ``(n, n_features)``: ``w_i * (x_i - mean_i)``; each row sums to ``prediction - baseline``.
    """

    predictions: np.ndarray
    baseline: float
    contributions: np.ndarray


def explain_rows(model: LinearModel, rows: np.ndarray, feature_means: Sequence[float]) -> Explanation:
    """Attributes each prediction to the features: ``w_i * (x_i - mean_i)`` in raw feature units.

    For an affine model these are exact (they are also its Shapley values with the training mean as reference),
    so no sampling explainer is needed. The predictions come from :meth:`LinearModel.predict`, the one path.

    Args:
        model: The folded model.
        rows: ``(n, n_features)`` raw feature values.
        feature_means: The training rows' mean of each feature (the card's ``feature_means``).
    """
    means = np.asarray(feature_means, dtype=np.float64).reshape(-1)
    if means.shape != (model.n_features,):
        raise ValueError(f"expected {model.n_features} feature means, got {means.shape[0]}")
    predictions = model.predict(rows)
    baseline = float(model.predict(means.reshape(1, -1))[0])
    contributions = (np.asarray(rows, dtype=np.float64) - means) * model.weights
    return Explanation(predictions, baseline, contributions)


def feature_means_from_card(card: dict[str, Any], model: LinearModel) -> np.ndarray:
    """The training rows' feature means recorded at training time (cards older than explanations have none)."""
    means = card.get("feature_means")
    if not isinstance(means, list) or len(means) != model.n_features:
        raise BadInput(f"{CARD_FILE} has no feature_means for {model.n_features} features: retrain the model "
                             "to explain its predictions")
    values = np.asarray(means, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise BadInput(f"{CARD_FILE}: feature_means are not finite")
    return values


FINGERPRINT_CHARS = 16  # 64 bits per row: collisions among a few thousand rows are out of reach


def row_fingerprints(rows: np.ndarray) -> list[str]:
    """A short hash per row of float64 values (features then target), identical wherever the row is read.

    CSV round trips through pandas keep float64 values exactly, so the split's train rows, evaluate's test rows and
    the card's record agree bit for bit; ``+ 0.0`` folds -0.0 into 0.0.
    """
    array = np.ascontiguousarray(np.asarray(rows, dtype=np.float64) + 0.0)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array of rows, got shape {array.shape}")
    return [hashlib.sha256(row.tobytes()).hexdigest()[:FINGERPRINT_CHARS] for row in array]
