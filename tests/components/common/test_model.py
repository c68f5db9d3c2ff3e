"""Unit tests of boston_model/card.py: folding, the card, and the equality proof at load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from boston_model import card as fmt


def test_fold_normalization_equals_normalize_then_dense():
    rng = np.random.default_rng(1)
    mean, variance = rng.normal(size=4), rng.uniform(0.5, 3, size=4)
    kernel, bias = rng.normal(size=4), 1.5
    x = rng.normal(size=(10, 4))
    expected = ((x - mean) / np.sqrt(variance)) @ kernel + bias
    weights, folded = fmt.fold_normalization(mean, variance, kernel, bias)
    np.testing.assert_allclose(x @ weights + folded, expected, rtol=1e-12)


def test_card_round_trip_and_predict_shape(trained):
    model = fmt.load_linear_model(trained[0])
    assert model.n_features == 13
    assert model.predict(np.zeros((3, 13))).shape == (3,)
    with pytest.raises(ValueError, match=r"\(n, 13\)"):
        model.predict(np.zeros((3, 12)))


def _card(trained) -> dict:
    return json.loads((trained[0] / fmt.CARD_FILE).read_text())


def test_a_card_that_disagrees_with_its_savedmodel_is_refused(trained, tmp_path):
    card = _card(trained)
    card["bias"] += 0.01
    fmt.write_card(tmp_path, card)
    with pytest.raises(fmt.BadInput, match="differs from the SavedModel"):
        fmt.load_linear_model(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "has no boston_model.json"), ("", "is empty"), ("{nope", "not valid JSON"),
     ('{"format_version": 99}', "unknown format")],
)
def test_unreadable_cards_fail_with_one_line(tmp_path, content, message):
    if content is not None:
        (tmp_path / fmt.CARD_FILE).write_text(content)
    with pytest.raises(fmt.BadInput, match=message) as info:
        fmt.load_linear_model(tmp_path)
    assert "\n" not in str(info.value)


def test_non_finite_weights_are_refused(trained, tmp_path):
    card = _card(trained)
    card["weights"][0] = float("nan")
    fmt.write_card(tmp_path, card)
    with pytest.raises(fmt.BadInput, match="not finite"):
        fmt.load_linear_model(tmp_path)
