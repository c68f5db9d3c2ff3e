"""Exact linear attributions, the card's training-row record, and row fingerprints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from boston_model import card as fmt


def test_contributions_sum_to_prediction_minus_baseline_on_every_test_row(trained, seed_split):
    train, test = seed_split
    card = fmt.read_card(trained[0])
    model = fmt.linear_model_from_card(card)
    rows = test[list(model.feature_names)].to_numpy(dtype=np.float64)
    explained = fmt.explain_rows(model, rows, fmt.feature_means_from_card(card, model))
    assert explained.contributions.shape == (102, 13)
    gap = explained.contributions.sum(axis=1) - (explained.predictions - explained.baseline)
    assert np.max(np.abs(gap)) <= 1e-9
    np.testing.assert_array_equal(explained.predictions, model.predict(rows))  # the one prediction path
    assert explained.baseline == pytest.approx(card["baseline"], abs=1e-12)


def test_card_records_the_training_rows(trained, seed_split):
    import keras

    train, _ = seed_split
    card = fmt.read_card(trained[0])
    names = card["feature_names"]
    np.testing.assert_allclose(card["feature_means"], train[names].mean().to_numpy(), rtol=1e-12)
    # The same means the Normalization layer adapted to (float32 inside the model).
    saved = keras.layers.Normalization(axis=-1)
    saved.adapt(train[names].to_numpy(dtype=np.float32))
    np.testing.assert_allclose(card["feature_means"], np.asarray(saved.mean).reshape(-1), rtol=1e-5)
    assert len(card["train_fingerprints"]) == len(train) == card["train_rows"]
    assert card["training"]["seed"] == 42 and card["training"]["epochs"] >= 1


def test_a_contribution_is_the_weight_times_the_distance_from_the_mean():
    model = fmt.LinearModel(("a", "b"), np.array([2.0, -3.0]), 1.0)
    explained = fmt.explain_rows(model, np.array([[4.0, 1.0]]), [1.0, 2.0])
    np.testing.assert_array_equal(explained.contributions, [[6.0, 3.0]])
    assert explained.baseline == 2.0 * 1 - 3.0 * 2 + 1.0
    with pytest.raises(ValueError, match="expected 2 feature means"):
        fmt.explain_rows(model, np.array([[4.0, 1.0]]), [1.0])


def test_a_card_without_means_cannot_explain(trained):
    card = {**fmt.read_card(trained[0])}
    card.pop("feature_means")
    with pytest.raises(fmt.BadInput, match="no feature_means"):
        fmt.feature_means_from_card(card, fmt.linear_model_from_card(card))


def test_fingerprints_survive_a_csv_round_trip_and_tell_rows_apart(tmp_path, seed_split):
    train, _ = seed_split
    path = tmp_path / "train.csv"
    train.to_csv(path, index=False)
    again = pd.read_csv(path)
    assert fmt.row_fingerprints(again.to_numpy()) == fmt.row_fingerprints(train.to_numpy())
    assert len(set(fmt.row_fingerprints(train.to_numpy()))) == len(train)
    assert fmt.row_fingerprints(np.array([[0.0, 1.0]])) == fmt.row_fingerprints(np.array([[-0.0, 1.0]]))
    assert fmt.row_fingerprints(np.array([[0.0, 1.0]])) != fmt.row_fingerprints(np.array([[0.0, 1.0 + 1e-15]]))
