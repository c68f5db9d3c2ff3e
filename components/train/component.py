"""KFP component: train the Keras model and export a SavedModel."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Model, Output

from components import config


@dsl.component(base_image=config.IMAGE, install_kfp_package=False)
def train_model(
    train: Input[Dataset],
    model: Output[Model],
    curves: Output[HTML],
    epochs: int,
    batch_size: int,
    learning_rate: float,
    validation_split: float,
    patience: int,
    seed: int,
):
    """Trains Normalization -> Dense(1) and writes a SavedModel in KServe's layout (<model>/1/).

    Args:
        train: Training rows.
        model: The model folder: 1/ (TensorFlow SavedModel) and boston_model.json (card).
        curves: HTML report of the loss curves.
        epochs: Maximum epochs.
        batch_size: Rows per gradient step (>= the row count means full-batch).
        learning_rate: Adam learning rate.
        validation_split: Fraction of training rows held out for early stopping (0 = stop on training loss).
        patience: Epochs without improvement before early stopping (0 = off).
        seed: Random seed for weight initialisation and shuffling.
    """
    from pathlib import Path

    import pandas as pd

    from components.common.runtime import fail_with_one_line
    from components.train.core import TrainParams, curves_report
    from components.train.core import train_model as fit

    with fail_with_one_line("train"):
        params = TrainParams(epochs, batch_size, learning_rate, validation_split, patience, seed)
        result = fit(pd.read_csv(train.path), Path(model.path), params, data_sha256=train.metadata.get("data_sha256"))
        Path(curves.path).write_text(curves_report(result.history, result.best_epoch))
        card = result.card
        model.metadata.update({
            "framework": "tensorflow",
            "feature_names": card["feature_names"],
            "tensorflow_version": card["tensorflow_version"],
            "keras_version": card["keras_version"],
            "train_rows": card["train_rows"],
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "final_loss": result.history["loss"][result.best_epoch - 1],
        })
