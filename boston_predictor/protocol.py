"""The two request protocols read into rows: V1 (TF Serving's REST API) and V2 (the Open Inference Protocol)."""

from __future__ import annotations

import math
from itertools import chain
from typing import Any

import numpy as np

from boston_predictor.errors import RequestError
from boston_predictor.rows import (
    check_batch,
    finite_rows,
    kind_of,
    parse_json,
    quoted_names,
    row_from_record,
    rows_array,
    rows_from_columns,
    rows_from_list,
)
from boston_predictor.spec import ModelSpec

FAST_DATATYPES = frozenset({"FP32", "FP64"})  # what the fast path reads itself
# What the model accepts at all: V2's numeric types. KServe decodes the others (FP16 only arrives binary).
NUMERIC_DATATYPES = FAST_DATATYPES | {"FP16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_V2_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_V2_INPUT_KEYS = frozenset({"name", "shape", "datatype", "data", "parameters"})
_FP32_MAX = float(np.finfo(np.float32).max)


class NotOwned(Exception):  # noqa: N818 - a signal, not an error
    """The fast path does not fully own this request: KServe's own dataplane must answer it (the front delegates)."""


def rows_from_request(protocol: str, body: bytes, spec: ModelSpec) -> np.ndarray:
    """The rows of a V1 or V2 JSON request body, read exactly as ``:predict`` and ``/infer`` read them.

    For routes that need a request's rows without predicting through the fast path (e.g. ``:explain``).

    Args:
        protocol: ``"v1"`` or ``"v2"``.
        body: The raw JSON body.
        spec: The served model.

    Raises:
        RequestError: the body is not a valid request for this model (status and one-line message).
    """
    payload = parse_json(body)
    if protocol == "v1":
        return rows_from_v1(payload, spec)[0]
    return rows_from_v2(payload, spec)[0]


def rows_from_v1(payload: Any, spec: ModelSpec) -> tuple[np.ndarray, str]:
    """Reads a V1 (TF-Serving REST) request.

    Accepted: ``{"instances": rows}`` with rows as lists of k numbers, objects keyed by feature name, or
    ``{"<input name>": [k numbers]}``; and the columnar ``{"inputs": ...}`` as rows, ``{"<input name>": rows}`` or
    ``{"<feature>": [n values], ...}``. ``signature_name`` may name the model's own signature.

    Returns:
        The rows and the response key TF Serving would use (``predictions`` or ``outputs``).
    """
    if type(payload) is not dict:
        raise RequestError(
            400, f'request body must be a JSON object with "instances" or "inputs", got {kind_of(payload)}'
        )
    if "instances" not in payload and "inputs" not in payload:
        unknown = f"unknown top-level key(s) {quoted_names(payload.keys())}: " if payload else ""
        raise RequestError(400, f'{unknown}request body must have "instances" (row format) or "inputs" (columnar)')
    # Other keys are ignored, as TF Serving and KServe's V1 dataplane ignore them.
    signature = payload.get("signature_name", spec.signature_name)
    if signature != spec.signature_name:
        raise RequestError(400, f"unknown signature_name; this model serves {spec.signature_name!r}")
    if "instances" in payload:
        if "inputs" in payload:
            raise RequestError(400, 'send either "instances" (row format) or "inputs" (columnar format), not both')
        return rows_from_list(payload["instances"], "instances", spec), "predictions"
    inputs = payload["inputs"]
    if type(inputs) is list:
        return rows_from_list(inputs, "inputs", spec), "outputs"
    if type(inputs) is dict:
        if inputs.keys() == {spec.input_name}:
            return rows_from_list(inputs[spec.input_name], f"inputs.{spec.input_name}", spec), "outputs"
        if inputs.keys() == spec.feature_set:
            return rows_from_columns(inputs, spec), "outputs"
        row_from_record(inputs, "inputs", spec)  # raises, naming unknown and missing keys
    raise RequestError(400, f"inputs must be a list of rows or an object keyed by feature name, got {kind_of(inputs)}")


def _v2_shape(tensor: dict[str, Any], where: str) -> list[int]:
    shape = tensor["shape"]
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestError(400, f"{where}.shape must be a list of non-negative integers")
    return shape


def _v2_values(data: Any, shape: list[int], where: str) -> list[Any]:
    """The tensor's values in row-major order; V2 allows them flat, or nested exactly as the shape says."""
    if type(data) is not list:
        raise RequestError(400, f"{where}.data must be a list, got {kind_of(data)}")
    count = math.prod(shape)
    if data and type(data[0]) is list:
        # Nested rows must each have the shape's row length; flattening first would let a short row and a long
        # one add up to the right total and shift every later value into the wrong feature.
        row_length = count // shape[0] if len(shape) >= 2 and shape[0] else -1
        if len(data) != shape[0] or set(map(type, data)) != {list} or set(map(len, data)) != {row_length}:
            raise RequestError(400, f"{where}.data is nested but does not match its shape {shape}")
        data = list(chain.from_iterable(data))
    if len(data) != count:
        raise RequestError(400, f"{where}.data has {len(data)} values, but its shape needs {count}")
    return data


def _check_v2_request(payload: Any, spec: ModelSpec, owned_only: bool) -> tuple[list[dict[str, Any]], str | None]:
    """The top level of a V2 request: its input tensors (checked one by one) and its id.

    With ``owned_only`` (the fast path) anything beyond plain JSON FP32/FP64 tensors raises `NotOwned`: extra keys
    (KServe's client adds ``model_name``), parameters (binary outputs, content types), other numeric datatypes.
    """
    if type(payload) is not dict:
        raise RequestError(400, f'request body must be a JSON object with "inputs", got {kind_of(payload)}')
    if owned_only and (payload.keys() - _V2_KEYS or payload.get("parameters")):
        raise NotOwned
    request_id = payload.get("id")
    if request_id is not None and type(request_id) is not str:
        raise RequestError(400, f"id must be a string, got {kind_of(request_id)}")
    if type(payload.get("parameters") or {}) is not dict:
        raise RequestError(400, "parameters must be an object")
    outputs = payload.get("outputs")
    if outputs is not None:
        if type(outputs) is not list or not all(type(o) is dict and type(o.get("name")) is str for o in outputs):
            raise RequestError(400, 'outputs must be a list of objects with a string "name"')
        if owned_only and any(o.keys() != {"name"} for o in outputs):
            raise NotOwned
        unknown = {o["name"] for o in outputs if o["name"] != spec.output_name}
        if unknown:
            raise RequestError(400, f"unknown output(s) {quoted_names(unknown)}; this model has {spec.output_name!r}")
    inputs = payload.get("inputs")
    if type(inputs) is not list or not inputs:
        raise RequestError(400, 'inputs must be a non-empty list of tensors {"name", "shape", "datatype", "data"}')
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}]"
        if type(tensor) is not dict:
            raise RequestError(400, f"{where} must be an object, got {kind_of(tensor)}")
        missing = {"name", "shape", "datatype", "data"} - tensor.keys()
        if missing:
            raise RequestError(400, f"{where} is missing {quoted_names(missing)}")
        extra = tensor.keys() - _V2_INPUT_KEYS
        if extra:
            raise RequestError(400, f"{where} has unknown key(s) {quoted_names(extra)}")
        datatype = tensor["datatype"]
        if type(datatype) is not str or datatype not in NUMERIC_DATATYPES:
            got = repr(datatype[:20]) if type(datatype) is str else kind_of(datatype)
            raise RequestError(400, f"{where}.datatype must be a number type (FP32 or FP64; FP16 and integers "
                                    f"too), got {got}")
        if owned_only and (datatype not in FAST_DATATYPES or tensor.get("parameters")):
            raise NotOwned
        if type(tensor["name"]) is not str:
            raise RequestError(400, f"{where}.name must be a string")
    return inputs, request_id


def _as_datatype(array: np.ndarray, datatype: str, where: str) -> np.ndarray:
    """The values as the tensor's datatype says they are: FP32 data is rounded to float32, as KServe reads it."""
    if datatype != "FP32":
        return array
    if float(np.max(np.abs(array), initial=0.0)) > _FP32_MAX:
        raise RequestError(400, f"{where} has a value outside the FP32 range: send FP64")
    return array.astype(np.float32).astype(np.float64)


def rows_from_v2(payload: Any, spec: ModelSpec, owned_only: bool = False) -> tuple[np.ndarray, str | None]:
    """Reads a V2 (Open Inference Protocol) request.

    Accepted: one numeric tensor of shape ``[n, k]`` (any name), or k tensors named by feature, each of shape
    ``[n]`` or ``[n, 1]``. Data may be flat (row-major) or nested. Keys the model does not use are ignored, as
    KServe ignores them.

    Args:
        payload: The decoded JSON body (or KServe's decoded `InferRequest` as a dict).
        spec: The served model.
        owned_only: Raise `NotOwned` for what only KServe's dataplane handles (the fast path's mode).

    Returns:
        The rows and the request ``id`` (None when absent).
    """
    inputs, request_id = _check_v2_request(payload, spec, owned_only)
    k = spec.n_features
    if len(inputs) == 1 and (inputs[0]["name"] not in spec.feature_set or k == 1):
        tensor = inputs[0]
        shape = _v2_shape(tensor, "inputs[0]")
        if len(shape) != 2 or shape[1] != k:
            raise RequestError(
                400, f"inputs[0].shape must be [n, {k}] (rank 2, {k} features), got {shape}"
            )
        check_batch(shape[0], "inputs[0]", spec, allow_empty=True)  # [0, k] answers [0, 1], as KServe does
        if shape[0] == 0:
            _v2_values(tensor["data"], shape, "inputs[0]")
            return np.empty((0, k)), request_id
        values = _v2_values(tensor["data"], shape, "inputs[0]")
        array = rows_array(values, shape[0], spec)
        if array is None:  # name the first bad value
            array = finite_rows([values[r * k:(r + 1) * k] for r in range(shape[0])], "inputs[0] row", spec)
        return _as_datatype(array, tensor["datatype"], "inputs[0]"), request_id
    tensor_names = [t["name"] for t in inputs]
    if len(set(tensor_names)) != len(tensor_names) or set(tensor_names) != spec.feature_set:
        unknown = set(tensor_names) - spec.feature_set
        missing = spec.feature_set - set(tensor_names)
        parts = [f"unknown input(s) {quoted_names(unknown)}"] if unknown else []
        parts += [f"missing input(s) {quoted_names(missing, limit=k)}"] if missing else []
        parts += ["duplicate input names"] if len(set(tensor_names)) != len(tensor_names) else []
        raise RequestError(
            400, f"send one [n, {k}] tensor or {k} tensors named by feature: {'; '.join(parts)}"
        )
    by_name = {t["name"]: (i, t) for i, t in enumerate(inputs)}
    columns = []
    n = None
    for name in spec.features:
        i, tensor = by_name[name]
        shape = _v2_shape(tensor, f"inputs[{i}]")
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise RequestError(400, f"inputs[{i}] ({name}).shape must be [n] or [n, 1], got {shape}")
        if n is None:
            n = shape[0]
            check_batch(n, f"inputs[{i}]", spec, allow_empty=True)
        elif shape[0] != n:
            raise RequestError(400, f"inputs[{i}] ({name}) has {shape[0]} rows, the other inputs have {n}")
        columns.append(_v2_values(tensor["data"], shape, f"inputs[{i}]"))
    if n == 0:  # k tensors of shape [0] answer [0, 1], as one [0, k] tensor does
        return np.empty((0, k)), request_id
    array = finite_rows(np.array(columns, dtype=object).T.tolist(), "inputs (as rows)", spec)
    for j, name in enumerate(spec.features):
        i, tensor = by_name[name]
        array[:, j] = _as_datatype(array[:, j], tensor["datatype"], f"inputs[{i}] ({name})")
    return array, request_id
