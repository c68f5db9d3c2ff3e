"""boston_model/card.py with synthetic cards (no TensorFlow): every check a card must pass, with its message.

Expected values are worked out by hand from the card's numbers, never by the code under test.
"""

from __future__ import annotations

import copy
import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from boston_model import card as fmt

NAMES = ["A", "B", "C"]
# prediction = 2a - b + 0.5c + 3
WEIGHTS = [2.0, -1.0, 0.5]
BIAS = 3.0
PROBE = [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.0, 4.0, 2.0]]
PROBE_OUT = [4.5, 3.0, -2.0]  # 2 - 2 + 1.5 + 3; 3; -2 - 4 + 1 + 3


def synthetic_card(**changes: Any) -> dict[str, Any]:
    card = {"format_version": fmt.FORMAT_VERSION, "feature_names": NAMES, "weights": WEIGHTS, "bias": BIAS,
            "probe": {"inputs": PROBE, "savedmodel_outputs": PROBE_OUT}, "feature_means": [1.0, 2.0, 4.0]}
    card = copy.deepcopy(card)
    card.update(changes)
    return card


def test_a_synthetic_card_loads_and_predicts_by_hand(tmp_path: Path) -> None:
    fmt.write_card(tmp_path, synthetic_card())
    model = fmt.load_linear_model(tmp_path)
    assert model.feature_names == ("A", "B", "C") and model.n_features == 3 and model.bias == 3.0
    assert model.predict(np.array(PROBE)).tolist() == PROBE_OUT
    assert model.predict(np.array([[10, 0, 0]])).tolist() == [23.0]  # 20 + 3


def test_predict_names_the_shape_it_wants() -> None:
    model = fmt.linear_model_from_card(synthetic_card())
    with pytest.raises(ValueError, match=r"^expected rows of shape \(n, 3\), got \(3,\)$"):
        model.predict(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"^expected rows of shape \(n, 3\), got \(1, 2\)$"):
        model.predict(np.array([[1.0, 2.0]]))


def test_write_card_is_sorted_indented_json_read_back_unchanged(tmp_path: Path) -> None:
    path = fmt.write_card(tmp_path, {"format_version": 1, "b": 1, "a": [1, 2]})
    assert path == tmp_path / "boston_model.json"
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1,\n  "format_version": 1\n}'
    assert fmt.read_card(tmp_path) == {"format_version": 1, "b": 1, "a": [1, 2]}


@pytest.mark.parametrize(
    ("content", "message"),
    [(" \n\t", r"^boston_model\.json is empty$"),
     ("\n\nnope", r"^boston_model\.json is not valid JSON \(Expecting value at line 3\)$"),
     ("[1]", r"^boston_model\.json has an unknown format \(expected format_version 1\)$"),
     ('{"format_version": 2}', r"^boston_model\.json has an unknown format \(expected format_version 1\)$"),
     ("{}", r"^boston_model\.json has an unknown format \(expected format_version 1\)$")],
    ids=["blank", "garbage", "list", "version-2", "no-version"],
)
def test_unreadable_cards_are_named_exactly(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / fmt.CARD_FILE).write_text(content)
    with pytest.raises(fmt.BadInput, match=message):
        fmt.read_card(tmp_path)


def test_a_missing_card_names_the_model_folder(tmp_path: Path) -> None:
    with pytest.raises(fmt.BadInput, match=r"^model folder 'v7' has no boston_model\.json$"):
        fmt.read_card(tmp_path / "v7")


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"feature_names": None}, r"'NoneType' object is not iterable"),
     ({"weights": "heavy"}, r"could not convert string to float: 'heavy'"),
     ({"bias": "x"}, r"could not convert string to float: 'x'"),
     ({"probe": {"inputs": PROBE}}, r"'savedmodel_outputs'"),
     ({"probe": {"savedmodel_outputs": PROBE_OUT}}, r"'inputs'")],
    ids=["names", "weights", "bias", "no-outputs", "no-inputs"],
)
def test_a_bad_field_is_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(fmt.BadInput, match=r"^boston_model\.json is missing or has a bad field: " + message + "$"):
        fmt.linear_model_from_card(synthetic_card(**changes))


@pytest.mark.parametrize("field", ["feature_names", "weights", "bias", "probe"])
def test_a_missing_field_is_named(field: str) -> None:
    card = synthetic_card()
    del card[field]
    with pytest.raises(fmt.BadInput, match=rf"^boston_model\.json is missing or has a bad field: '{field}'$"):
        fmt.linear_model_from_card(card)


@pytest.mark.parametrize(
    "changes",
    [{"weights": [2.0, -1.0]}, {"weights": [2.0, -1.0, 0.5, 1.0]}, {"feature_names": ["A", "B"]},
     {"weights": [[2.0], [-1.0], [0.5]]}, {"weights": [2.0, float("inf"), 0.5]},
     {"weights": [2.0, float("nan"), 0.5]}, {"bias": float("inf")}, {"bias": float("nan")}],
    ids=["too-few", "too-many", "fewer-names", "column", "inf-weight", "nan-weight", "inf-bias", "nan-bias"],
)
def test_weights_must_match_the_feature_names_and_be_finite(changes: dict[str, Any]) -> None:
    n = len(changes.get("feature_names", NAMES))
    with pytest.raises(fmt.BadInput, match=rf"^boston_model\.json: weights do not match the {n} feature names or "
                                           r"are not finite$"):
        fmt.linear_model_from_card(synthetic_card(**changes))


@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [([1.0, 2.0, 3.0], [4.5]),  # one row, not a table
     ([[[1.0, 2.0, 3.0]]], [4.5]),  # a table too many
     (np.empty((0, 3)), np.empty(0)),  # no rows
     (PROBE, PROBE_OUT[:2]),  # fewer outputs than rows
     (PROBE[:2], PROBE_OUT),  # more outputs than rows
     ([[1.0, 2.0], [0.0, 0.0], [-1.0, 4.0]], PROBE_OUT),  # rows of the wrong width
     (PROBE, 4.5),  # one number for three rows
     (PROBE, [[4.5, 0.0], [3.0, 0.0], [-2.0, 0.0]])],  # two outputs per row
    ids=["1-d", "3-d", "empty", "fewer-outputs", "more-outputs", "narrow-rows", "scalar-output", "wide-output"],
)
def test_probe_rows_must_be_a_table_matching_the_outputs(inputs: Any, outputs: Any) -> None:
    card = synthetic_card(probe={"inputs": inputs, "savedmodel_outputs": outputs})
    with pytest.raises(fmt.BadInput, match=r"^boston_model\.json: probe rows are missing or malformed$"):
        fmt.linear_model_from_card(card)


def test_the_folded_map_may_differ_from_the_savedmodel_by_the_tolerance_and_no_more() -> None:
    # bias 0 and a zero row predict exactly 0.0, so the difference is exactly the recorded output
    zero = {"bias": 0.0, "probe": {"inputs": [[0.0, 0.0, 0.0]], "savedmodel_outputs": [1e-4]}}
    assert fmt.EQUALITY_ATOL == 1e-4
    assert fmt.linear_model_from_card(synthetic_card(**zero)).bias == 0.0
    zero["probe"]["savedmodel_outputs"] = [[-1e-4]]  # a column of outputs, as TensorFlow gives them
    assert fmt.linear_model_from_card(synthetic_card(**zero)).bias == 0.0
    column = {"inputs": PROBE[:2], "savedmodel_outputs": [[4.5], [3.0]]}  # two rows as a column: no broadcasting
    assert fmt.linear_model_from_card(synthetic_card(probe=column)).n_features == 3
    zero["probe"]["savedmodel_outputs"] = [2e-4]
    with pytest.raises(fmt.BadInput, match=r"^folded model differs from the SavedModel by 0\.0002 \(> 0\.0001\)$"):
        fmt.linear_model_from_card(synthetic_card(**zero))
    zero["probe"]["savedmodel_outputs"] = [float("nan")]
    with pytest.raises(fmt.BadInput, match=r"^folded model differs from the SavedModel by nan \(> 0\.0001\)$"):
        fmt.linear_model_from_card(synthetic_card(**zero))


def test_the_largest_difference_over_the_probe_rows_decides() -> None:
    outputs = [4.5, 3.0 + 0.5, -2.0 - 0.25]
    with pytest.raises(fmt.BadInput, match=r"differs from the SavedModel by 0\.5 "):
        fmt.linear_model_from_card(synthetic_card(probe={"inputs": PROBE, "savedmodel_outputs": outputs}))


def test_fold_normalization_by_hand_with_a_constant_feature() -> None:
    # Keras divides by max(sqrt(variance), float32 eps): a constant feature (variance 0) is divided by eps
    eps = 2.0**-23
    weights, bias = fmt.fold_normalization([1.0, 2.0], [0.0, 4.0], [3e-7, 2.0], 1.0)
    assert weights.tolist() == [3e-7 / eps, 1.0]
    assert bias == 1.0 - (1.0 * 3e-7 / eps + 2.0 * 1.0)
    weights, bias = fmt.fold_normalization([[0.5], [1.0]], [[1.0], [0.25]], [[1.0], [1.0]], 0.0)  # column shapes
    assert weights.tolist() == [1.0, 2.0] and bias == -(0.5 + 2.0)


def test_feature_means_must_be_one_finite_number_per_feature() -> None:
    model = fmt.linear_model_from_card(synthetic_card())
    assert fmt.feature_means_from_card(synthetic_card(), model).tolist() == [1.0, 2.0, 4.0]
    assert fmt.feature_means_from_card(synthetic_card(feature_means=[1, 2, 4]), model).dtype == np.float64
    absent = r"^boston_model\.json has no feature_means for 3 features: retrain the model to explain its predictions$"
    for means in (None, [1.0, 2.0], [1.0, 2.0, 3.0, 4.0], {"A": 1.0, "B": 2.0, "C": 3.0}, "1 2 3"):
        with pytest.raises(fmt.BadInput, match=absent):
            fmt.feature_means_from_card(synthetic_card(feature_means=means), model)
    for means in ([1.0, float("nan"), 4.0], [float("inf"), 2.0, 4.0], [1.0, 2.0, -float("inf")]):
        with pytest.raises(fmt.BadInput, match=r"^boston_model\.json: feature_means are not finite$"):
            fmt.feature_means_from_card(synthetic_card(feature_means=means), model)


def test_explanations_by_hand() -> None:
    model = fmt.linear_model_from_card(synthetic_card())
    explained = fmt.explain_rows(model, np.array([[1.0, 2.0, 3.0], [3.0, 0.0, 4.0]]), [1.0, 2.0, 4.0])
    # baseline: 2*1 - 2 + 0.5*4 + 3 = 5; contributions w * (x - mean)
    assert explained.baseline == 5.0
    assert explained.predictions.tolist() == [4.5, 11.0]
    assert explained.contributions.tolist() == [[0.0, 0.0, -0.5], [4.0, 2.0, 0.0]]
    with pytest.raises(ValueError, match=r"^expected 3 feature means, got 2$"):
        fmt.explain_rows(model, np.array(PROBE), [1.0, 2.0])


def test_row_fingerprints_hash_the_float64_bytes_and_fold_negative_zero() -> None:
    import hashlib

    by_hand = hashlib.sha256(struct.pack("<2d", 1.5, 0.0)).hexdigest()[:16]
    assert fmt.row_fingerprints(np.array([[1.5, -0.0], [1.5, 0.0]])) == [by_hand, by_hand]
    assert fmt.row_fingerprints([[1, 2]]) == [hashlib.sha256(struct.pack("<2d", 1.0, 2.0)).hexdigest()[:16]]
    with pytest.raises(ValueError, match=r"^expected a 2-D array of rows, got shape \(2,\)$"):
        fmt.row_fingerprints(np.array([1.0, 2.0]))


def test_a_card_written_and_read_keeps_nan_out_of_the_json(tmp_path: Path) -> None:
    # json writes NaN as a bare token that read_card accepts; the means check is what refuses it
    fmt.write_card(tmp_path, synthetic_card(feature_means=[1.0, math.nan, 4.0]))
    card = fmt.read_card(tmp_path)
    assert "NaN" in json.dumps(card)
    with pytest.raises(fmt.BadInput, match="feature_means are not finite"):
        fmt.feature_means_from_card(card, fmt.linear_model_from_card(card))
