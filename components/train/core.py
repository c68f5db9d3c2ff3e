"""Train the Keras linear regression and export it as a TensorFlow SavedModel KServe can serve."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from boston_model import card as model_format
from boston_model import drift
from boston_model.errors import BadInput
from components import config
from components.common import report

PROBE_ROWS = 8


@dataclass(frozen=True)
class TrainParams:
    """Training hyper-parameters (defaults from :mod:`components.config`)."""

    epochs: int = config.EPOCHS
    batch_size: int = config.BATCH_SIZE
    learning_rate: float = config.LEARNING_RATE
    validation_split: float = config.VALIDATION_SPLIT
    patience: int = config.PATIENCE
    seed: int = config.SEED

    def check(self) -> None:
        """Raises BadInput naming the first out-of-range parameter."""
        if self.epochs < 1:
            raise BadInput(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise BadInput(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise BadInput(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.validation_split < 1.0:
            raise BadInput(f"validation_split must be in [0, 1), got {self.validation_split}")
        if self.patience < 0:
            raise BadInput(f"patience must be >= 0, got {self.patience}")


@dataclass
class TrainResult:
    """What training produced, besides the files."""

    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    card: dict[str, Any] = field(default_factory=dict)


def build_model(train_features: np.ndarray, learning_rate: float, feature_names: list[str]) -> Any:
    """``Input(n) -> Normalization (adapted on the training rows) -> Dense(1)``, compiled with Adam and MSE."""
    import keras

    inputs = keras.Input(shape=(train_features.shape[1],), name="features", dtype="float32")
    normalize = keras.layers.Normalization(axis=-1, name="normalize")
    normalize.adapt(train_features.astype(np.float32))
    outputs = keras.layers.Dense(1, name="price")(normalize(inputs))
    model = keras.Model(inputs, outputs, name="boston_linear")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse", metrics=["mae"])
    return model


def _progress_callback(log: Callable[[str], None], every: int) -> Any:
    import keras

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            if epoch == 0 or (epoch + 1) % every == 0:
                val = f" val_loss={logs['val_loss']:.3f}" if "val_loss" in logs else ""
                log(f"epoch {epoch + 1}: loss={logs.get('loss', float('nan')):.3f}{val}")

    return Progress()


def export_model(
    model: Any, model_dir: Path, feature_names: list[str], probe: np.ndarray, check_rows: np.ndarray | None = None
) -> dict[str, Any]:
    """Exports ``model`` to ``model_dir/1`` (SavedModel) and writes the folded model card beside it.

    The card's probe outputs come from the *reloaded SavedModel*, so loading the card later proves the folded map
    answers like the exported file, not like the in-memory Keras object. The reloaded SavedModel is also run on
    ``check_rows`` (the training rows) and compared with the folded map; the card's ``savedmodel_check`` records the
    largest gap, so evaluate and the servers need no TensorFlow to know the two agree. Two affine maps that agree
    on rows spanning the feature space agree everywhere, so this is the same proof evaluate used to make on its test
    rows.

    Raises:
        BadInput: The folded map differs from the SavedModel by more than ``EQUALITY_ATOL``.
    """
    import keras
    import tensorflow as tf

    model_dir = Path(model_dir)
    saved = model_dir / model_format.SAVEDMODEL_DIR
    if saved.exists():
        shutil.rmtree(saved)
    model_dir.mkdir(parents=True, exist_ok=True)
    model.export(str(saved), format="tf_saved_model", verbose=False)

    serve = tf.saved_model.load(str(saved)).signatures["serving_default"]

    def run_savedmodel(rows: np.ndarray) -> np.ndarray:
        out = serve(tf.constant(np.asarray(rows, dtype=np.float32)))
        return np.asarray(next(iter(out.values()))).reshape(-1).astype(np.float64)

    savedmodel_outputs = run_savedmodel(probe)

    normalize = model.get_layer("normalize")
    dense = model.get_layer("price")
    mean = np.asarray(normalize.mean).reshape(-1)
    variance = np.asarray(normalize.variance).reshape(-1)
    kernel, bias = (np.asarray(w) for w in dense.get_weights())
    weights, folded_bias = model_format.fold_normalization(mean, variance, kernel.reshape(-1), float(bias[0]))
    card = {
        "format_version": model_format.FORMAT_VERSION,
        "feature_names": list(feature_names),
        "target": config.TARGET,
        "weights": weights.tolist(),
        "bias": folded_bias,
        "probe": {"inputs": probe.tolist(), "savedmodel_outputs": savedmodel_outputs.tolist()},
        "signature": {"name": "serving_default", "input": "features", "input_shape": [None, len(feature_names)]},
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }
    # Proves the fold before anything is written that claims it (raises BadInput otherwise).
    linear = model_format.linear_model_from_card(card)
    rows = np.vstack([probe, np.asarray(check_rows, dtype=np.float32)]) if check_rows is not None else probe
    rows = rows.astype(np.float32).astype(np.float64)  # the values the SavedModel sees
    diff = float(np.max(np.abs(run_savedmodel(rows) - linear.predict(rows))))
    if not diff <= model_format.EQUALITY_ATOL:
        raise BadInput(f"folded model differs from the exported SavedModel by {diff:.3g} on "
                                          f"{len(rows)} rows (> {model_format.EQUALITY_ATOL})")
    card["savedmodel_check"] = {"rows": int(len(rows)), "max_abs_diff": diff, "atol": model_format.EQUALITY_ATOL}
    model_format.write_card(model_dir, card)
    return card


def train_model(
    train: pd.DataFrame,
    model_dir: Path,
    params: TrainParams = TrainParams(),
    target: str = config.TARGET,
    log: Callable[[str], None] = print,
    data_sha256: str | None = None,
) -> TrainResult:
    """Trains on ``train`` and writes the SavedModel plus model card to ``model_dir``.

    Args:
        train: Validated training rows (features + target).
        model_dir: Output folder; receives ``1/`` (SavedModel) and ``boston_model.json``.
        params: Hyper-parameters.
        target: Target column.
        log: Receives progress lines (every few epochs).
        data_sha256: sha256 of the whole data set the rows came from (recorded in the card).
    """
    params.check()
    import keras

    feature_names = [c for c in train.columns if c != target]
    x = train[feature_names].to_numpy(dtype=np.float32)
    y = train[target].to_numpy(dtype=np.float32)
    keras.utils.set_random_seed(params.seed)
    model = build_model(x, params.learning_rate, feature_names)
    callbacks: list[Any] = [_progress_callback(log, every=max(1, params.epochs // 10))]
    monitor = "val_loss" if params.validation_split > 0 else "loss"
    if params.patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor=monitor, patience=params.patience, restore_best_weights=True)
        )
    fit = model.fit(
        x, y, epochs=params.epochs, batch_size=params.batch_size, validation_split=params.validation_split,
        shuffle=True, verbose=0, callbacks=callbacks,
    )
    history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
    best_epoch = int(np.argmin(history[monitor])) + 1
    best = min(history[monitor])
    log(f"stopped after {len(history['loss'])} epochs; best {monitor}={best:.3f} at epoch {best_epoch}")
    probe = np.vstack([x[:PROBE_ROWS], x.min(axis=0), x.max(axis=0)]).astype(np.float64)
    card = export_model(model, Path(model_dir), feature_names, probe, check_rows=x)
    card.update(train_rows=int(len(train)), epochs_run=len(history["loss"]), best_epoch=best_epoch)
    card.update(training_card(train, feature_names, target, card, params, data_sha256))
    model_format.write_card(Path(model_dir), card)
    return TrainResult(history=history, epochs_run=len(history["loss"]), best_epoch=best_epoch, card=card)


def training_card(
    train: pd.DataFrame,
    feature_names: list[str],
    target: str,
    card: dict[str, Any],
    params: TrainParams,
    data_sha256: str | None,
) -> dict[str, Any]:
    """What the card records about the training rows, for explanations, the champion re-score and the registry.

    ``feature_means`` are the float64 means of the training rows: what the Normalization layer adapted to (in
    float32), and the reference of every explanation; ``baseline`` is the model's prediction there.
    ``train_fingerprints`` let evaluate score a champion only on rows it never trained on.
    ``training_distribution`` (bin edges and shares per feature, :mod:`boston_model.drift`) is the reference of
    every drift measure: live inputs on the predictor, and the next candidate's training rows in the gate.
    """
    linear = model_format.linear_model_from_card(card)
    features = train[feature_names].to_numpy(dtype=np.float64)
    means = features.mean(axis=0)
    rows = train[[*feature_names, target]].to_numpy(dtype=np.float64)
    return {
        "feature_means": means.tolist(),
        "baseline": float(linear.predict(means.reshape(1, -1))[0]),
        "train_fingerprints": sorted(set(model_format.row_fingerprints(rows))),
        drift.DISTRIBUTION_KEY: drift.training_distribution(features, feature_names),
        "training": asdict(params),
        "data_sha256": data_sha256,
    }


def curves_report(history: dict[str, list[float]], best_epoch: int) -> str:
    """A self-contained HTML page with the training and validation loss curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("loss", "training MSE"), ("val_loss", "validation MSE")):
        if key in history:
            ax.plot(range(1, len(history[key]) + 1), history[key], label=label)
    ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch ({best_epoch})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (log scale)")
    ax.legend()
    last = {k: v[best_epoch - 1] for k, v in history.items()}
    rows = [(k, float(v)) for k, v in sorted(last.items())]
    return report.page(
        "Training curves", report.figure_to_img(fig, "loss per epoch"),
        f"<h2>At the best epoch ({best_epoch})</h2>", report.table(["metric", "value"], rows),
    )
