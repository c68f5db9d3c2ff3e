"""Request bodies read into rows (boston_predictor/protocol.py and rows.py), as pure functions: no server.

The HTTP suites in tests/kserve prove the same paths through real servers and clients; these pin every check and
its message in the fast tier. A three-feature model, prediction = 2a - b + 0.5c + 3; expected rows and predictions
are written out by hand.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson
import pytest

from boston_model.card import LinearModel
from boston_predictor import protocol, rows
from boston_predictor.errors import RequestError
from boston_predictor.spec import ModelSpec

MODEL = LinearModel(("A", "B", "C"), np.array([2.0, -1.0, 0.5]), 3.0)


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec("m", MODEL, "MEDV", "inputs", "serving_default", None, max_batch=4)


def refused(message: str, status: int = 400) -> Any:
    """``pytest.raises`` for a RequestError with exactly this message and status."""

    class Refused:
        def __enter__(self) -> None:
            self.raises = pytest.raises(RequestError, match=f"^{re.escape(message)}$")
            self.info = self.raises.__enter__()

        def __exit__(self, *exc: Any) -> bool:
            handled = self.raises.__exit__(*exc)
            assert self.info.value.status == status
            return handled

    return Refused()


def v1(body: Any, spec: ModelSpec) -> tuple[list[list[float]], str]:
    array, key = protocol.rows_from_v1(body, spec)
    return array.tolist(), key


def v2(body: Any, spec: ModelSpec, owned_only: bool = False) -> tuple[list[list[float]], str | None]:
    array, request_id = protocol.rows_from_v2(body, spec, owned_only)
    return array.tolist(), request_id


# --- values and rows (rows.py) --------------------------------------------------------------------------------------


def test_kinds_and_names_in_messages() -> None:
    assert [rows.kind_of(v) for v in ("x", True, None, {}, [], 1, 1.5, (1,))] == [
        "a string", "a boolean", "null", "an object", "a list", "a number", "a number", "tuple"]
    assert rows.quoted_names({"b", "a"}) == '"a", "b"'
    assert rows.quoted_names(["f", "e", "d", "c", "b", "a"], limit=3) == '"a", "b", "c" and 3 more'
    assert rows.quoted_names(["x" * 50]) == '"' + "x" * 40 + '"'
    assert rows.quoted_names({3, 1}) == '"1", "3"'


@pytest.mark.parametrize(("value", "problem"), [
    (1.5, None), (-2, None), (float("nan"), "is not finite (NaN or infinity)"),
    (float("-inf"), "is not finite (NaN or infinity)"), (10**400, "is too large for a float"),
    (True, "must be a number, got a boolean"), ("1", "must be a number, got a string"),
    (None, "must be a number, got null")])
def test_value_problems(value: Any, problem: str | None) -> None:
    assert rows.value_problem(value) == problem


def test_json_bodies() -> None:
    assert rows.parse_json(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    assert rows.parse_json(b'{"a": NaN}')["a"] != rows.parse_json(b'{"a": NaN}')["a"]  # read, to be named later
    assert rows.parse_json(b'{"a": 1e999}') == {"a": float("inf")}
    with refused("request body is not valid JSON: unexpected end of data at position 1"):
        rows.parse_json(b"{")
    with refused("request body is not valid JSON: trailing comma is not allowed at position 2"):
        rows.parse_json(b"[1,]")
    with pytest.raises(RequestError, match=r"^request body is not valid JSON: .* at position \d+$") as deep:
        rows.parse_json(b"[" * 100_000)  # too deep for both parsers: orjson's words, a 400 and not a crash
    assert deep.value.status == 400


def test_batch_limits(spec: ModelSpec) -> None:
    rows.check_batch(4, "instances", spec)  # the limit itself is allowed
    rows.check_batch(0, "instances", spec, allow_empty=True)
    with refused("instances is empty: send at least one row"):
        rows.check_batch(0, "instances", spec)
    with refused("instances has 5 rows, over the limit of 4 rows per request", status=413):
        rows.check_batch(5, "instances", spec)


@pytest.mark.parametrize("size", [3, 64, 65, 400, 401])
def test_all_finite_on_both_sides_of_the_fast_paths(size: int) -> None:
    finite = np.ones(size)
    assert rows.all_finite(finite) and rows.all_finite(finite, finite.tolist())
    for bad in (np.nan, np.inf):
        values = finite.copy()
        values[-1] = bad
        assert not rows.all_finite(values) and not rows.all_finite(values, values.tolist())
    big = np.full(size, 1e308)  # finite values whose sum overflows
    assert rows.all_finite(big) and rows.all_finite(big, big.tolist())


def test_rows_array(spec: ModelSpec) -> None:
    assert rows.rows_array([1, 2.5, 3, 4, 5, 6], 2, spec).tolist() == [[1.0, 2.5, 3.0], [4.0, 5.0, 6.0]]
    assert rows.rows_array([1, 2, True], 1, spec) is None  # a boolean is not a number
    assert rows.rows_array([1, 2, 10**400], 1, spec) is None
    assert rows.rows_array([1, 2, float("nan")], 1, spec) is None


def test_finite_rows_names_the_first_bad_row_or_value(spec: ModelSpec) -> None:
    assert rows.finite_rows([[1, 2, 3], [4, 5, 6.5]], "instances", spec).tolist() == [[1, 2, 3], [4, 5, 6.5]]
    with refused("instances[1] holds lists: each row must be a flat list of 3 numbers (rank 2)"):
        rows.finite_rows([[1, 2, 3], [[1], 2, 3]], "instances", spec)
    with refused("instances[0] has 2 values, expected 3 (A, B, C)"):
        rows.finite_rows([[1, 2], [1, 2, 3]], "instances", spec)
    with refused("instances[1] feature B must be a number, got a string"):
        rows.finite_rows([[1, 2, 3], [1, "2", 3]], "instances", spec)
    with refused("instances[0] feature C is not finite (NaN or infinity)"):
        rows.finite_rows([[1, 2, float("inf")]], "instances", spec)
    with refused("instances[0] feature A is too large for a float"):
        rows.finite_rows([[10**400, 2, 3]], "instances", spec)


def test_records_by_feature_name(spec: ModelSpec) -> None:
    assert rows.row_from_record({"C": 3, "A": 1, "B": 2}, "instances[0]", spec) == [1, 2, 3]
    assert rows.row_from_record({"inputs": [1, 2, 3]}, "instances[0]", spec) == [1, 2, 3]
    with refused('instances[0]: unknown feature name(s) "Z"; missing feature(s) "C"'):
        rows.row_from_record({"A": 1, "B": 2, "Z": 3}, "instances[0]", spec)
    with refused('instances[2]: missing feature(s) "A", "B", "C"'):
        rows.row_from_record({}, "instances[2]", spec)
    with refused('instances[0]: unknown feature name(s) "D"'):
        rows.row_from_record({"A": 1, "B": 2, "C": 3, "D": 4}, "instances[0]", spec)


def test_rows_from_a_list(spec: ModelSpec) -> None:
    assert rows.rows_from_list([[1, 2, 3], {"A": 4, "B": 5, "C": 6}], "instances", spec).tolist() == [
        [1, 2, 3], [4, 5, 6]]
    assert rows.rows_from_list([{"A": 4, "B": 5, "C": 6}], "instances", spec).tolist() == [[4, 5, 6]]
    with refused("instances must be a list of rows, got an object"):
        rows.rows_from_list({"A": 1}, "instances", spec)
    with refused("instances is empty: send at least one row"):
        rows.rows_from_list([], "instances", spec)
    with refused("instances has 5 rows, over the limit of 4 rows per request", status=413):
        rows.rows_from_list([[1, 2, 3]] * 5, "instances", spec)
    with refused("instances[1] must be a list of 3 numbers or an object keyed by feature name, got a number "
                 "(rank 1 input? wrap each row in a list)"):
        rows.rows_from_list([[1, 2, 3], 4, 5], "instances", spec)
    with refused("instances[0] must be a list of 3 numbers or an object keyed by feature name, got a string "
                 "(rank 1 input? wrap each row in a list)"):
        rows.rows_from_list(["1 2 3", {"A": 1, "B": 2, "C": 3}], "instances", spec)
    with refused("instances[1] feature A must be a number, got null"):
        rows.rows_from_list([[1, 2, 3], {"A": None, "B": 2, "C": 3}], "instances", spec)


def test_rows_from_columns(spec: ModelSpec) -> None:
    assert rows.rows_from_columns({"A": [1, 4], "B": [2, 5], "C": [3, 6]}, spec).tolist() == [[1, 2, 3], [4, 5, 6]]
    with refused("inputs.B must be a list with one value per row, got a number"):
        rows.rows_from_columns({"A": [1], "B": 2, "C": [3]}, spec)
    with refused("inputs: the feature columns have different lengths ([1, 2])"):
        rows.rows_from_columns({"A": [1], "B": [2, 5], "C": [3]}, spec)
    with refused("inputs is empty: send at least one row"):
        rows.rows_from_columns({"A": [], "B": [], "C": []}, spec)
    with refused("inputs.C[1] must be a number, got null"):
        rows.rows_from_columns({"A": [1, 4], "B": [2, 5], "C": [3, None]}, spec)
    with refused("inputs (as rows)[0] feature A is not finite (NaN or infinity)"):  # numbers pass the type check
        rows.rows_from_columns({"A": [float("nan")], "B": [2], "C": [3]}, spec)


def test_predictions_by_hand_and_overflow_refused(spec: ModelSpec) -> None:
    assert rows.predict_rows(spec, np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])).tolist() == [4.5, 3.0]
    with np.errstate(over="ignore"), refused("row 1: the prediction is not finite (the input values are too large)"):
        rows.predict_rows(spec, np.array([[1.0, 2.0, 3.0], [1e308, 0.0, 0.0]]))


# --- V1 (protocol.py) ---------------------------------------------------------------------------------------------


def test_v1_forms(spec: ModelSpec) -> None:
    assert v1({"instances": [[1, 2, 3]]}, spec) == ([[1, 2, 3]], "predictions")
    assert v1({"instances": [{"inputs": [1, 2, 3]}], "signature_name": "serving_default"}, spec) == (
        [[1, 2, 3]], "predictions")
    assert v1({"inputs": [[1, 2, 3]], "extra": 1}, spec) == ([[1, 2, 3]], "outputs")  # other keys are ignored
    assert v1({"inputs": {"inputs": [[1, 2, 3]]}}, spec) == ([[1, 2, 3]], "outputs")
    assert v1({"inputs": {"A": [1, 4], "B": [2, 5], "C": [3, 6]}}, spec) == ([[1, 2, 3], [4, 5, 6]], "outputs")


@pytest.mark.parametrize(("body", "message"), [
    ([[1, 2, 3]], 'request body must be a JSON object with "instances" or "inputs", got a list'),
    ("x", 'request body must be a JSON object with "instances" or "inputs", got a string'),
    ({}, 'request body must have "instances" (row format) or "inputs" (columnar)'),
    ({"rows": 1, "data": 2}, 'unknown top-level key(s) "data", "rows": request body must have "instances" (row '
                             'format) or "inputs" (columnar)'),
    ({"instances": [[1, 2, 3]], "signature_name": "other"},
     "unknown signature_name; this model serves 'serving_default'"),
    ({"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]},
     'send either "instances" (row format) or "inputs" (columnar format), not both'),
    ({"inputs": "1,2,3"}, "inputs must be a list of rows or an object keyed by feature name, got a string"),
    ({"inputs": 7}, "inputs must be a list of rows or an object keyed by feature name, got a number"),
    ({"inputs": {"A": [1], "B": [2]}}, 'inputs: missing feature(s) "C"'),
    ({"inputs": {"inputs": [[1, 2, 3]], "A": [1]}}, 'inputs: unknown feature name(s) "inputs"; missing feature(s) '
                                                    '"B", "C"'),
    ({"inputs": {"inputs": "x"}}, "inputs.inputs must be a list of rows, got a string"),
])
def test_v1_refusals(spec: ModelSpec, body: Any, message: str) -> None:
    with refused(message):
        protocol.rows_from_v1(body, spec)


def test_rows_from_request_reads_either_protocol(spec: ModelSpec) -> None:
    body_v1 = orjson.dumps({"instances": [[1, 2, 3]]})
    body_v2 = orjson.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]})
    assert protocol.rows_from_request("v1", body_v1, spec).tolist() == [[1, 2, 3]]
    assert protocol.rows_from_request("v2", body_v2, spec).tolist() == [[1, 2, 3]]
    with refused('request body must be a JSON object with "inputs", got a list'):
        protocol.rows_from_request("v2", b"[]", spec)


# --- V2 -----------------------------------------------------------------------------------------------------------


def tensor(data: Any, shape: list[int], name: str = "x", datatype: str = "FP64", **more: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data, **more}


def test_v2_one_tensor_flat_or_nested(spec: ModelSpec) -> None:
    assert v2({"inputs": [tensor([1, 2, 3, 4, 5, 6], [2, 3])]}, spec) == ([[1, 2, 3], [4, 5, 6]], None)
    assert v2({"id": "r1", "inputs": [tensor([[1, 2, 3], [4, 5, 6]], [2, 3])]}, spec) == (
        [[1, 2, 3], [4, 5, 6]], "r1")
    empty, _ = protocol.rows_from_v2({"inputs": [tensor([], [0, 3])]}, spec)
    assert empty.shape == (0, 3)
    assert v2({"inputs": [tensor([1, 2, 3], [1, 3])], "outputs": [{"name": "MEDV"}], "parameters": {}}, spec)[0] == \
        [[1, 2, 3]]


def test_fp32_data_is_read_as_float32_and_must_fit(spec: ModelSpec) -> None:
    (row,), _ = v2({"inputs": [tensor([0.1, 2, 3], [1, 3], datatype="FP32")]}, spec)
    assert row == [float(np.float32(0.1)), 2.0, 3.0] and row[0] != 0.1
    assert v2({"inputs": [tensor([0.1, 2, 3], [1, 3])]}, spec)[0] == [[0.1, 2, 3]]  # FP64 kept exactly
    limit = float(np.finfo(np.float32).max)
    assert v2({"inputs": [tensor([limit, 0, 0], [1, 3], datatype="FP32")]}, spec)[0] == [[limit, 0, 0]]
    with refused("inputs[0] has a value outside the FP32 range: send FP64"):
        protocol.rows_from_v2({"inputs": [tensor([1, -1e39, 3], [1, 3], datatype="FP32")]}, spec)


@pytest.mark.parametrize(("inputs", "message"), [
    ([tensor([1, 2, 3, 4, 5, 6], [6])], "inputs[0].shape must be [n, 3] (rank 2, 3 features), got [6]"),
    ([tensor([1, 2, 3, 4, 5, 6], [1, 2, 3])], "inputs[0].shape must be [n, 3] (rank 2, 3 features), got [1, 2, 3]"),
    ([tensor([1, 2, 3], [1, -3])], "inputs[0].shape must be a list of non-negative integers"),
    ([tensor([1, 2, 3], "1,3")], "inputs[0].shape must be a list of non-negative integers"),
    ([tensor([1, 2, 3], [1, 3.0])], "inputs[0].shape must be a list of non-negative integers"),
    ([tensor("1,2,3", [1, 3])], "inputs[0].data must be a list, got a string"),
    ([tensor([1, 2, 3, 4, 5], [2, 3])], "inputs[0].data has 5 values, but its shape needs 6"),
    ([tensor([[1, 2], [3, 4, 5, 6]], [2, 3])], "inputs[0].data is nested but does not match its shape [2, 3]"),
    ([tensor([[1, 2, 3]], [2, 3])], "inputs[0].data is nested but does not match its shape [2, 3]"),
    ([tensor([[1, 2, 3], 4], [2, 3])], "inputs[0].data is nested but does not match its shape [2, 3]"),
    ([tensor([1, 2, 3, 4, "5", 6], [2, 3])], "inputs[0] row[1] feature B must be a number, got a string"),
    ([tensor([[1, 2, 3]], [0, 3])], "inputs[0].data is nested but does not match its shape [0, 3]"),
    ([tensor([1, 2, 3], [0, 3])], "inputs[0].data has 3 values, but its shape needs 0"),
    ([tensor([1] * 15, [5, 3])], "inputs[0] has 5 rows, over the limit of 4 rows per request"),
])
def test_v2_one_tensor_refusals(spec: ModelSpec, inputs: list[Any], message: str) -> None:
    with refused(message, status=413 if "over the limit" in message else 400):
        protocol.rows_from_v2({"inputs": inputs}, spec)


def test_v2_one_tensor_per_feature(spec: ModelSpec) -> None:
    columns = [tensor([3, 6], [2], "C"), tensor([1, 4], [2], "A"), tensor([[2], [5]], [2, 1], "B")]
    assert v2({"inputs": columns}, spec) == ([[1, 2, 3], [4, 5, 6]], None)
    fp32 = [tensor([0.1], [1], "A", "FP32"), tensor([0.1], [1], "B"), tensor([0.1], [1], "C", "FP32")]
    (row,), _ = v2({"inputs": fp32}, spec)
    assert row == [float(np.float32(0.1)), 0.1, float(np.float32(0.1))]
    empty, _ = protocol.rows_from_v2({"inputs": [tensor([], [0], n) for n in "ABC"]}, spec)
    assert empty.shape == (0, 3)


@pytest.mark.parametrize(("inputs", "message"), [
    ([tensor([1], [1], "A"), tensor([2], [1], "B")],
     'send one [n, 3] tensor or 3 tensors named by feature: missing input(s) "C"'),
    ([tensor([1], [1], "A"), tensor([2], [1], "B"), tensor([3], [1], "Z")],
     'send one [n, 3] tensor or 3 tensors named by feature: unknown input(s) "Z"; missing input(s) "C"'),
    ([tensor([1], [1], "A"), tensor([2], [1], "B"), tensor([3], [1], "C"), tensor([3], [1], "C")],
     "send one [n, 3] tensor or 3 tensors named by feature: duplicate input names"),
    ([tensor([1], [1], "A"), tensor([2, 3], [1, 2], "B"), tensor([3], [1], "C")],
     "inputs[1] (B).shape must be [n] or [n, 1], got [1, 2]"),
    ([tensor([1], [1], "A"), tensor([2], [1, 1, 1], "B"), tensor([3], [1], "C")],
     "inputs[1] (B).shape must be [n] or [n, 1], got [1, 1, 1]"),
    ([tensor([1], [1], "A"), tensor([2], [1], "B"), tensor([3, 4], [2], "C")],
     "inputs[2] (C) has 2 rows, the other inputs have 1"),
    ([tensor([1], [1], "A"), tensor([1e39], [1], "B", "FP32"), tensor([3], [1], "C")],
     "inputs[1] (B) has a value outside the FP32 range: send FP64"),
    ([tensor([1], [1], "A"), tensor([None], [1], "B"), tensor([3], [1], "C")],
     "inputs (as rows)[0] feature B must be a number, got null"),
    ([tensor([1] * 5, [5], "A"), tensor([1] * 5, [5], "B"), tensor([1] * 5, [5], "C")],
     "inputs[0] has 5 rows, over the limit of 4 rows per request"),
])
def test_v2_per_feature_refusals(spec: ModelSpec, inputs: list[Any], message: str) -> None:
    with refused(message, status=413 if "over the limit" in message else 400):
        protocol.rows_from_v2({"inputs": inputs}, spec)


@pytest.mark.parametrize(("body", "message"), [
    ("x", 'request body must be a JSON object with "inputs", got a string'),
    ({"id": 5, "inputs": [tensor([1, 2, 3], [1, 3])]}, "id must be a string, got a number"),
    ({"parameters": [1], "inputs": [tensor([1, 2, 3], [1, 3])]}, "parameters must be an object"),
    ({"outputs": {"name": "MEDV"}, "inputs": [tensor([1, 2, 3], [1, 3])]},
     'outputs must be a list of objects with a string "name"'),
    ({"outputs": ["MEDV"], "inputs": [tensor([1, 2, 3], [1, 3])]},
     'outputs must be a list of objects with a string "name"'),
    ({"outputs": [{"name": 1}], "inputs": [tensor([1, 2, 3], [1, 3])]},
     'outputs must be a list of objects with a string "name"'),
    ({"outputs": [{"name": "MEDV"}, {"name": "price"}], "inputs": [tensor([1, 2, 3], [1, 3])]},
     "unknown output(s) \"price\"; this model has 'MEDV'"),
    ({}, 'inputs must be a non-empty list of tensors {"name", "shape", "datatype", "data"}'),
    ({"inputs": []}, 'inputs must be a non-empty list of tensors {"name", "shape", "datatype", "data"}'),
    ({"inputs": {"name": "x"}}, 'inputs must be a non-empty list of tensors {"name", "shape", "datatype", "data"}'),
    ({"inputs": [[1, 2, 3]]}, "inputs[0] must be an object, got a list"),
    ({"inputs": [{"name": "x", "datatype": "FP64"}]}, 'inputs[0] is missing "data", "shape"'),
    ({"inputs": [tensor([1, 2, 3], [1, 3], contents={})]}, 'inputs[0] has unknown key(s) "contents"'),
    ({"inputs": [tensor(["a"], [1, 1], datatype="BYTES")]},
     "inputs[0].datatype must be a number type (FP32 or FP64; FP16 and integers too), got 'BYTES'"),
    ({"inputs": [tensor([1], [1, 1], datatype="X" * 30)]},
     f"inputs[0].datatype must be a number type (FP32 or FP64; FP16 and integers too), got '{'X' * 20}'"),
    ({"inputs": [tensor([1], [1, 1], datatype=32)]},
     "inputs[0].datatype must be a number type (FP32 or FP64; FP16 and integers too), got a number"),
    ({"inputs": [tensor([1, 2, 3], [1, 3], name=7)]}, "inputs[0].name must be a string"),
    ({"inputs": [tensor([1, 2, 3], [1, 3]), tensor([1], [1], name=None)]}, "inputs[1].name must be a string"),
])
def test_v2_request_refusals(spec: ModelSpec, body: Any, message: str) -> None:
    with refused(message):
        protocol.rows_from_v2(body, spec)


@pytest.mark.parametrize("body", [
    {"model_name": "m", "inputs": [tensor([1, 2, 3], [1, 3])]},  # KServe's client adds the model's name
    {"parameters": {"binary_data_output": True}, "inputs": [tensor([1, 2, 3], [1, 3])]},
    {"outputs": [{"name": "MEDV", "parameters": {"binary_data": True}}], "inputs": [tensor([1, 2, 3], [1, 3])]},
    {"inputs": [tensor([1, 2, 3], [1, 3], datatype="INT64")]},
    {"inputs": [tensor([1, 2, 3], [1, 3], parameters={"content_type": "np"})]},
])
def test_the_fast_path_hands_what_it_does_not_own_to_kserve(spec: ModelSpec, body: dict[str, Any]) -> None:
    with pytest.raises(protocol.NotOwned):
        protocol.rows_from_v2(body, spec, owned_only=True)
    assert protocol.rows_from_v2(body, spec)[0].tolist() == [[1, 2, 3]]  # KServe's dataplane reads it the same


def test_a_single_feature_model_reads_a_tensor_named_by_its_feature() -> None:
    single = ModelSpec("m", LinearModel(("A",), np.array([2.0]), 1.0), "MEDV", "inputs", "serving_default", None,
                       max_batch=4)
    assert v2({"inputs": [tensor([1, 2], [2, 1], name="A")]}, single) == ([[1], [2]], None)
    with refused("inputs[0].shape must be [n, 1] (rank 2, 1 features), got [2]"):
        protocol.rows_from_v2({"inputs": [tensor([1, 2], [2], name="A")]}, single)


def test_messages_name_where_the_problem_is(spec: ModelSpec) -> None:
    with refused("instances[0] has 2 values, expected 3 (A, B, C)"):
        protocol.rows_from_v1({"instances": [[1, 2]]}, spec)
    with refused("inputs[0] has 2 values, expected 3 (A, B, C)"):
        protocol.rows_from_v1({"inputs": [[1, 2]]}, spec)
    with refused('instances[1]: unknown feature name(s) "Z"; missing feature(s) "C"'):
        rows.rows_from_list([[1, 2, 3], {"A": 1, "B": 2, "Z": 3}], "instances", spec)
    with refused("inputs[1].data is nested but does not match its shape [2]"):  # a [n] tensor is flat
        protocol.rows_from_v2({"inputs": [tensor([1, 2], [2], "A"), tensor([[2], [5]], [2], "B"),
                                          tensor([3, 6], [2], "C")]}, spec)


def test_names_lists_are_bounded_at_five_and_sorted_as_text() -> None:
    assert rows.quoted_names(list("abcdef")) == '"a", "b", "c", "d", "e" and 1 more'
    assert rows.quoted_names(list("abcde")) == '"a", "b", "c", "d", "e"'
    assert rows.quoted_names({10, 9}) == '"10", "9"'
    assert rows.quoted_names({3, "a"}) == '"3", "a"'  # mixed types sort by their text


def test_a_record_missing_many_features_names_them_all() -> None:
    names = tuple("ABCDEFG")
    wide = ModelSpec("m", LinearModel(names, np.ones(7), 0.0), "MEDV", "inputs", "serving_default", None, 4)
    with refused('instances[0]: missing feature(s) "A", "B", "C", "D", "E", "F", "G"'):
        rows.row_from_record({}, "instances[0]", wide)


def test_answered_rows_are_counted_for_drift() -> None:
    class Counts:
        def __init__(self) -> None:
            self.seen: list[list[list[float]]] = []

        def add(self, array: np.ndarray) -> None:
            self.seen.append(array.tolist())

    counts = Counts()
    counted = ModelSpec("m", MODEL, "MEDV", "inputs", "serving_default", None, 4, inputs=counts)  # type: ignore[arg-type]
    rows.predict_rows(counted, np.array([[1.0, 2.0, 3.0]]))
    assert counts.seen == [[[1.0, 2.0, 3.0]]]
    with np.errstate(over="ignore"), pytest.raises(RequestError):
        rows.predict_rows(counted, np.array([[1e308, 0.0, 0.0]]))
    assert len(counts.seen) == 1  # a refused row is not counted


def test_v2_edges_left_by_the_mutation_run(spec: ModelSpec) -> None:
    body = {"inputs": [tensor([1, 2, 3], [1, 3])], "outputs": [{"name": "MEDV"}]}
    assert protocol.rows_from_v2(body, spec, owned_only=True)[0].tolist() == [[1, 2, 3]]  # a bare name is owned
    with refused('send one [n, 3] tensor or 3 tensors named by feature: unknown input(s) "x"; missing input(s) "A"'):
        protocol.rows_from_v2({"inputs": [tensor([1], [1], "x"), tensor([2], [1], "B"), tensor([3], [1], "C")]},
                              spec)
    with refused("inputs[1].shape must be a list of non-negative integers"):
        protocol.rows_from_v2({"inputs": [tensor([1], [1], "A"), tensor([2], "1", "B"), tensor([3], [1], "C")]},
                              spec)
    with refused("inputs[0] row[3] feature A must be a number, got a string"):  # more rows than features
        protocol.rows_from_v2({"inputs": [tensor([1] * 9 + ["x", 1, 1], [4, 3])]}, spec)
    names = tuple("ABCDEFG")
    wide = ModelSpec("m", LinearModel(names, np.ones(7), 0.0), "MEDV", "inputs", "serving_default", None, 4)
    with refused('send one [n, 7] tensor or 7 tensors named by feature: missing input(s) "B", "C", "D", "E", "F", '
                 '"G"; duplicate input names'):
        protocol.rows_from_v2({"inputs": [tensor([1], [1], "A"), tensor([1], [1], "A")]}, wide)
