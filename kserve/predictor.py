"""The Boston Housing predictor: a small `kserve.Model` run by `kserve.ModelServer`, strict and fast.

Run it as a script (locally, and as the custom runtime image's entry point)::

    python kserve/predictor.py --model_name boston-housing --model_dir /mnt/models --http_port 8080 --bind 0.0.0.0
    python kserve/predictor.py --storage_uri s3://models/boston-housing/<version>/       # MINIO_* from the env

What it adds to KServe's Python server, and why:

* Predictions go through `LinearModel.predict`, the path evaluate uses; the folded affine map is proven equal to the
  SavedModel's outputs when the model is saved, again at load (the card's probe rows), and once more through the
  full request path (self-check) before the model reports ready. TensorFlow is never imported here: it would add
  about 2 s of start-up and 500 MB of memory to run a 13-weight dot product.
* V1 ``:predict`` and V2 ``/infer`` are answered by a thin ASGI front placed before KServe's FastAPI app. KServe's
  routing, pydantic models and middleware cost several times more than the model itself; everything else
  (health, readiness, metadata, ``/metrics``) is still KServe's own app with its usual semantics.
* Every bad request is a 4xx with ``{"error": "..."}`` naming the problem; bodies are capped (413 before the body
  is read), batches are capped, non-finite numbers never go in or come out.
* The REST server binds ``--bind`` (default 127.0.0.1), not the 0.0.0.0 KServe 0.21 hard-codes; gRPC is off.
* No log line per request unless ``--log_requests``; KServe's Prometheus histograms are still observed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import logging
import math
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import orjson

# `kserve` below is the site-packages SDK: this folder has no __init__.py, so it cannot shadow it.
if importlib.util.find_spec("components") is None:
    # A plain checkout without `pip install -e .`: the repository root is this file's parent's parent.
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import kserve.model_server as kserve_model_server  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from kserve.errors import InvalidInput, ModelNotReady  # noqa: E402
from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME  # noqa: E402
from kserve.model import Model  # noqa: E402
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse  # noqa: E402
from kserve.protocol.rest.server import RESTServer  # noqa: E402
from prometheus_client import Counter  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402

from components.common.model import (  # noqa: E402
    EQUALITY_ATOL,
    LinearModel,
    ModelLoadError,
    linear_model_from_card,
    read_card,
)
from components.common.versions import MANIFEST, ManifestError, verify_manifest  # noqa: E402

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_BIND = "127.0.0.1"
# 10 000 rows of 13 full-precision floats is about 2.5 MB of JSON; the two limits are set to agree.
DEFAULT_MAX_BATCH = 10_000
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
V2_DATATYPES = frozenset({"FP32", "FP64"})
OUTPUT_DATATYPE = "FP64"  # predictions are computed in float64, whatever the request's datatype

_NUMBER_TYPES = frozenset({int, float})  # exact types: bool is an int subclass and must not pass
_KIND = {str: "a string", bool: "a boolean", type(None): "null", dict: "an object", list: "a list"}
_V1_KEYS = frozenset({"instances", "inputs", "signature_name"})
_V2_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_V2_INPUT_KEYS = frozenset({"name", "shape", "datatype", "data", "parameters"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SMALL_BATCH_VALUES = 4096  # see _all_finite
_JSON_HEADERS = [(b"content-type", b"application/json")]

log = logging.getLogger("kserve")

REQUESTS = Counter(
    "predictor_requests_total", "Predict/infer requests answered by the fast path, by protocol and status code",
    ["model_name", "protocol", "code"],
)


class RequestError(Exception):
    """A request the server refuses; the message names what is wrong and never carries paths or values of the env.

    Attributes:
        status: The HTTP status to answer with.
        message: One line for the client.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class StartupError(RuntimeError):
    """The server cannot start; the message is the one line printed on stderr."""


def _kind(value: Any) -> str:
    """How a JSON value reads in an error message ("a string", "null", ...)."""
    return _KIND.get(type(value), "a number" if type(value) in _NUMBER_TYPES else type(value).__name__)


def _names(items: Any, limit: int = 5) -> str:
    """A short, quoted list of client-supplied names (bounded, so a hostile request cannot inflate the answer)."""
    shown = [json.dumps(str(x)[:40]) for x in sorted(items, key=str)[:limit]]
    more = len(items) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _value_problem(value: Any) -> str | None:
    """Why one value is not an acceptable feature value, or None when it is."""
    kind = type(value)
    if kind is float:
        return None if math.isfinite(value) else "is not finite (NaN or infinity)"
    if kind is int:
        try:
            float(value)
        except OverflowError:
            return "is too large for a float"
        return None
    return f"must be a number, got {_kind(value)}"


class _Metrics:
    """Prometheus series for one model: KServe's own latency histograms plus a request counter by status.

    KServe's Model.__call__ fills the same histograms, so dashboards built for KServe keep working. The labelled
    children are looked up once: `labels()` takes a lock and builds a key, several microseconds per request.
    """

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.pre = PRE_HIST_TIME.labels(model_name=model_name)
        self.predict = PREDICT_HIST_TIME.labels(model_name=model_name)
        self.post = POST_HIST_TIME.labels(model_name=model_name)
        self._requests: dict[tuple[str, int], Any] = {}

    def observe(self, start: float, parsed: float, predicted: float, encoded: float) -> None:
        self.pre.observe(parsed - start)
        self.predict.observe(predicted - parsed)
        self.post.observe(encoded - predicted)

    def count(self, protocol: str, status: int) -> None:
        child = self._requests.get((protocol, status))
        if child is None:
            child = self._requests[(protocol, status)] = REQUESTS.labels(self.model_name, protocol, str(status))
        child.inc()


@dataclass
class ModelSpec:
    """What the request path needs to know about the model; everything comes from the model card.

    Attributes:
        name: The model name used in URLs.
        model: The folded affine model (the shared prediction path).
        output_name: Name of the single output (the card's target, e.g. ``MEDV``).
        input_name: The SavedModel signature's input name (TF-Serving named-input requests use it).
        signature_name: The SavedModel signature served.
        version: The model version, when known (from the storage URI or manifest).
        max_batch: Most rows accepted in one request.
    """

    name: str
    model: LinearModel
    output_name: str
    input_name: str
    signature_name: str
    version: str | None
    max_batch: int
    features: tuple[str, ...] = field(init=False)
    feature_set: frozenset[str] = field(init=False)
    metrics: _Metrics = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.features = self.model.feature_names
        self.feature_set = frozenset(self.features)
        self.metrics = _Metrics(self.name)

    @property
    def n_features(self) -> int:
        return len(self.features)


# ---------------------------------------------------------------------------------------------------------------
# Request parsing: JSON -> (n, k) float64 rows. The checks that pass on good input run at C speed (set/map over the
# nested lists); only a request that fails them is walked in Python to find and name its first problem.
# ---------------------------------------------------------------------------------------------------------------


def parse_json(body: bytes) -> Any:
    """Decodes a request body.

    orjson refuses ``NaN``/``Infinity`` tokens and overflowing numbers; the standard library accepts them, so a body
    orjson rejects is read again by it only to name the real problem (a non-finite value) instead of "bad JSON".
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise RequestError(400, f"request body is not valid JSON: {exc.msg} at position {exc.pos}") from None


def _check_batch(n: int, where: str, spec: ModelSpec) -> None:
    if n == 0:
        raise RequestError(400, f"{where} is empty: send at least one row")
    if n > spec.max_batch:
        raise RequestError(413, f"{where} has {n} rows, over the limit of {spec.max_batch} rows per request")


def _all_finite(array: np.ndarray, values: list[Any] | None = None) -> bool:
    """Whether every element of ``array`` (given again as ``values``, when at hand as a list) is finite.

    numpy's per-call cost dominates below a few thousand values, where a C-level Python sum is ten times faster:
    a NaN or infinity makes the sum non-finite, and a sum that overflows on its own is checked exactly.
    """
    if array.size <= _SMALL_BATCH_VALUES:
        try:
            if math.isfinite(sum(array.tolist() if values is None else values)):
                return True
        except OverflowError:
            pass
    return bool(np.isfinite(array).all())


def _rows_array(flat: list[Any], n: int, spec: ModelSpec) -> np.ndarray | None:
    """``n`` rows from row-major values when every value is a finite JSON number, else None."""
    if not _NUMBER_TYPES.issuperset(map(type, flat)):
        return None
    try:
        array = np.fromiter(flat, dtype=np.float64, count=len(flat)).reshape(n, spec.n_features)
    except OverflowError:  # an integer beyond float range
        return None
    return array if _all_finite(array, flat) else None


def _finite_rows(rows: list[list[Any]], where: str, spec: ModelSpec) -> np.ndarray:
    """Turns an (n, k) list of lists into float64 rows, or names the first bad row or value."""
    k = spec.n_features
    if set(map(len, rows)) == {k}:
        # Flat, then one C-level pass for the types and one for the conversion: the fastest checked path found.
        array = _rows_array(list(chain.from_iterable(rows)), len(rows), spec)
        if array is not None:
            return array
    for i, row in enumerate(rows):
        if any(type(v) is list for v in row):
            raise RequestError(400, f"{where}[{i}] holds lists: each row must be a flat list of {k} numbers (rank 2)")
        if len(row) != k:
            raise RequestError(400, f"{where}[{i}] has {len(row)} values, expected {k} ({', '.join(spec.features)})")
        for j, value in enumerate(row):
            problem = _value_problem(value)
            if problem:
                raise RequestError(400, f"{where}[{i}] feature {spec.features[j]} {problem}")
    raise AssertionError("unreachable: rows passed every check")  # pragma: no cover


def _row_from_record(record: dict[str, Any], where: str, spec: ModelSpec) -> Any:
    """One row from an object keyed by feature name, or TF-Serving's ``{"<input name>": [k values]}``."""
    if record.keys() == spec.feature_set:
        return [record[name] for name in spec.features]
    if len(record) == 1 and spec.input_name in record:
        return record[spec.input_name]
    unknown = record.keys() - spec.feature_set
    missing = spec.feature_set - record.keys()
    parts = []
    if unknown:
        parts.append(f"unknown feature name(s) {_names(unknown)}")
    if missing:
        parts.append(f"missing feature(s) {_names(missing, limit=spec.n_features)}")
    raise RequestError(400, f"{where}: {'; '.join(parts)}")


def rows_from_list(rows: Any, where: str, spec: ModelSpec) -> np.ndarray:
    """Rows from a JSON list whose items are lists of k numbers or objects keyed by feature name."""
    if type(rows) is not list:
        raise RequestError(400, f"{where} must be a list of rows, got {_kind(rows)}")
    _check_batch(len(rows), where, spec)
    row_types = set(map(type, rows))
    if row_types == {list}:
        return _finite_rows(rows, where, spec)
    if row_types <= {list, dict}:
        rows = [_row_from_record(r, f"{where}[{i}]", spec) if type(r) is dict else r for i, r in enumerate(rows)]
        if set(map(type, rows)) == {list}:
            return _finite_rows(rows, where, spec)
    for i, row in enumerate(rows):
        if type(row) is not list:
            raise RequestError(
                400,
                f"{where}[{i}] must be a list of {spec.n_features} numbers or an object keyed by feature name, "
                f"got {_kind(row)} (rank 1 input? wrap each row in a list)",
            )
    raise AssertionError("unreachable: every row is a list")  # pragma: no cover


def _rows_from_columns(columns: dict[str, Any], spec: ModelSpec) -> np.ndarray:
    """Rows from TF-Serving's columnar form keyed by feature name: ``{"CRIM": [n values], ...}``."""
    cols = []
    for name in spec.features:
        col = columns[name]
        if type(col) is not list:
            raise RequestError(400, f"inputs.{name} must be a list with one value per row, got {_kind(col)}")
        cols.append(col)
    lengths = set(map(len, cols))
    if len(lengths) != 1:
        raise RequestError(400, f"inputs: the feature columns have different lengths ({sorted(lengths)})")
    _check_batch(len(cols[0]), "inputs", spec)
    for name, col in zip(spec.features, cols, strict=True):
        if not set(map(type, col)) <= _NUMBER_TYPES:
            for i, value in enumerate(col):
                problem = _value_problem(value)
                if problem:
                    raise RequestError(400, f"inputs.{name}[{i}] {problem}")
    # Transposed once here so every later step sees the same (n, k) rows as the row form.
    return _finite_rows(np.array(cols, dtype=object).T.tolist(), "inputs (as rows)", spec)


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
            400, f'request body must be a JSON object with "instances" or "inputs", got {_kind(payload)}'
        )
    unknown = payload.keys() - _V1_KEYS
    if unknown:
        raise RequestError(400, f'unknown top-level key(s) {_names(unknown)}: expected "instances" or "inputs"')
    signature = payload.get("signature_name", spec.signature_name)
    if signature != spec.signature_name:
        raise RequestError(400, f"unknown signature_name; this model serves {spec.signature_name!r}")
    if "instances" in payload:
        if "inputs" in payload:
            raise RequestError(400, 'send either "instances" (row format) or "inputs" (columnar format), not both')
        return rows_from_list(payload["instances"], "instances", spec), "predictions"
    if "inputs" not in payload:
        raise RequestError(400, 'request body must have "instances" (row format) or "inputs" (columnar format)')
    inputs = payload["inputs"]
    if type(inputs) is list:
        return rows_from_list(inputs, "inputs", spec), "outputs"
    if type(inputs) is dict:
        if inputs.keys() == {spec.input_name}:
            return rows_from_list(inputs[spec.input_name], f"inputs.{spec.input_name}", spec), "outputs"
        if inputs.keys() == spec.feature_set:
            return _rows_from_columns(inputs, spec), "outputs"
        _row_from_record(inputs, "inputs", spec)  # raises, naming unknown and missing keys
    raise RequestError(400, f"inputs must be a list of rows or an object keyed by feature name, got {_kind(inputs)}")


def _v2_shape(tensor: dict[str, Any], where: str) -> list[int]:
    shape = tensor["shape"]
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestError(400, f"{where}.shape must be a list of non-negative integers")
    return shape


def _v2_values(data: Any, shape: list[int], where: str) -> list[Any]:
    """The tensor's values in row-major order; V2 allows them flat, or nested exactly as the shape says."""
    if type(data) is not list:
        raise RequestError(400, f"{where}.data must be a list, got {_kind(data)}")
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


def rows_from_v2(payload: Any, spec: ModelSpec) -> tuple[np.ndarray, str | None]:
    """Reads a V2 (Open Inference Protocol) request.

    Accepted: one FP32/FP64 tensor of shape ``[n, k]`` (any name), or k tensors named by feature, each of shape
    ``[n]`` or ``[n, 1]``. Data may be flat (row-major) or nested.

    Returns:
        The rows and the request ``id`` (None when absent).
    """
    if type(payload) is not dict:
        raise RequestError(400, f'request body must be a JSON object with "inputs", got {_kind(payload)}')
    unknown = payload.keys() - _V2_KEYS
    if unknown:
        raise RequestError(400, f"unknown top-level key(s) {_names(unknown)}: expected {_names(_V2_KEYS)}")
    request_id = payload.get("id")
    if request_id is not None and type(request_id) is not str:
        raise RequestError(400, f"id must be a string, got {_kind(request_id)}")
    if type(payload.get("parameters", {})) is not dict:
        raise RequestError(400, "parameters must be an object")
    outputs = payload.get("outputs")
    if outputs is not None:
        if type(outputs) is not list or not all(type(o) is dict and "name" in o for o in outputs):
            raise RequestError(400, 'outputs must be a list of objects with a "name"')
        unknown = {o["name"] for o in outputs if o["name"] != spec.output_name}
        if unknown:
            raise RequestError(400, f"unknown output(s) {_names(unknown)}; this model has {spec.output_name!r}")
    inputs = payload.get("inputs")
    if type(inputs) is not list or not inputs:
        raise RequestError(400, 'inputs must be a non-empty list of tensors {"name", "shape", "datatype", "data"}')
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}]"
        if type(tensor) is not dict:
            raise RequestError(400, f"{where} must be an object, got {_kind(tensor)}")
        missing = {"name", "shape", "datatype", "data"} - tensor.keys()
        if missing:
            raise RequestError(400, f"{where} is missing {_names(missing)}")
        extra = tensor.keys() - _V2_INPUT_KEYS
        if extra:
            raise RequestError(400, f"{where} has unknown key(s) {_names(extra)}")
        if tensor["datatype"] not in V2_DATATYPES:
            raise RequestError(400, f"{where}.datatype must be FP32 or FP64, got {str(tensor['datatype'])[:20]!r}")
        if type(tensor["name"]) is not str:
            raise RequestError(400, f"{where}.name must be a string")
    k = spec.n_features
    if len(inputs) == 1 and (inputs[0]["name"] not in spec.feature_set or k == 1):
        tensor = inputs[0]
        shape = _v2_shape(tensor, "inputs[0]")
        if len(shape) != 2 or shape[1] != k:
            raise RequestError(
                400, f"inputs[0].shape must be [n, {k}] (rank 2, {k} features), got {shape}"
            )
        _check_batch(shape[0], "inputs[0]", spec)
        values = _v2_values(tensor["data"], shape, "inputs[0]")
        array = _rows_array(values, shape[0], spec)
        if array is None:  # name the first bad value
            array = _finite_rows([values[r * k:(r + 1) * k] for r in range(shape[0])], "inputs[0] row", spec)
        return array, request_id
    names = [t["name"] for t in inputs]
    if len(set(names)) != len(names) or set(names) != spec.feature_set:
        unknown = set(names) - spec.feature_set
        missing = spec.feature_set - set(names)
        parts = [f"unknown input(s) {_names(unknown)}"] if unknown else []
        parts += [f"missing input(s) {_names(missing, limit=k)}"] if missing else []
        parts += ["duplicate input names"] if len(set(names)) != len(names) else []
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
            _check_batch(n, f"inputs[{i}]", spec)
        elif shape[0] != n:
            raise RequestError(400, f"inputs[{i}] ({name}) has {shape[0]} rows, the other inputs have {n}")
        columns.append(_v2_values(tensor["data"], shape, f"inputs[{i}]"))
    return _finite_rows(np.array(columns, dtype=object).T.tolist(), "inputs (as rows)", spec), request_id


def predict_rows(spec: ModelSpec, rows: np.ndarray) -> np.ndarray:
    """Predicts through the shared path and refuses to return a value that is not finite.

    The server turns numpy's floating-point warnings off (`main`): overflow is reported to the client here instead.
    """
    predictions = spec.model.predict(rows)
    if not _all_finite(predictions):
        row = int(np.argmin(np.isfinite(predictions)))
        raise RequestError(400, f"row {row}: the prediction is not finite (the input values are too large)")
    return predictions


# ---------------------------------------------------------------------------------------------------------------
# The KServe model
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from: a local folder (KServe's storage initializer: /mnt/models) or an S3 version."""

    model_dir: Path | None = None
    storage_uri: str | None = None


class BostonHousingModel(Model):
    """The Boston Housing regression as a `kserve.Model`.

    `load` reads the folded model (no TensorFlow), checks it against the SavedModel's recorded outputs, then runs
    its probe rows through the full V1 and V2 request paths; only then is the model ready. `handle_v1`/`handle_v2`
    serve raw request bodies (the ASGI front calls them); `predict` serves KServe's own dataplane with the same code.
    """

    def __init__(self, name: str | None, source: ModelSource, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        super().__init__(name or "unnamed")
        self._requested_name = name
        self.source = source
        self.max_batch = max_batch
        self.spec: ModelSpec | None = None
        self.ready = False

    # --- loading ---------------------------------------------------------------------------------------------

    def load(self) -> bool:
        """Loads, verifies and self-checks the model; raises `StartupError` with one line when it cannot."""
        version_hint = None
        if self.source.storage_uri:
            with tempfile.TemporaryDirectory(prefix="boston-model-") as tmp:
                version_hint = _fetch_from_s3(self.source.storage_uri, Path(tmp))
                card, model = _load_folder(Path(tmp))
        else:
            card, model = _load_folder(Path(self.source.model_dir or "."))
            version_hint = _manifest_version(Path(self.source.model_dir or "."))
        name = self._requested_name or card.get("model_name") or _name_from_uri(self.source.storage_uri)
        if not name:
            raise StartupError("no model name: pass --model_name (the model card does not carry one)")
        self.name = name
        signature = card.get("signature") if isinstance(card.get("signature"), dict) else {}
        self.spec = ModelSpec(
            name=name,
            model=model,
            output_name=str(card.get("target") or "prediction"),
            input_name=str(signature.get("input") or "features"),
            signature_name=str(signature.get("name") or "serving_default"),
            version=version_hint,
            max_batch=self.max_batch,
        )
        self._self_check(card)
        self.ready = True
        return self.ready

    def _self_check(self, card: dict[str, Any]) -> None:
        """Sends the card's probe rows through the V1 and V2 request paths and compares with the SavedModel."""
        assert self.spec is not None
        probe = card["probe"]["inputs"][: self.max_batch]
        expected = np.asarray(card["probe"]["savedmodel_outputs"], dtype=np.float64).reshape(-1)[: len(probe)]
        v1 = orjson.loads(self.handle_v1(orjson.dumps({"instances": probe})))["predictions"]
        v2_body = {"inputs": [{"name": self.spec.input_name, "shape": [len(probe), self.spec.n_features],
                               "datatype": "FP32", "data": probe}]}
        v2 = orjson.loads(self.handle_v2(orjson.dumps(v2_body)))["outputs"][0]["data"]
        for label, got in (("V1", np.asarray(v1, dtype=np.float64).reshape(-1)), ("V2", np.asarray(v2))):
            diff = float(np.max(np.abs(got - expected)))
            if not diff <= EQUALITY_ATOL:
                raise StartupError(f"self-check failed: {label} answers differ from the SavedModel by {diff:.3g}")

    # --- the request path (shared by the ASGI front, KServe's dataplane and the self-check) -------------------

    def handle_v1(self, body: bytes) -> bytes:
        """Answers a V1 request body exactly as TF Serving shapes it: ``{"predictions": [[v], ...]}``."""
        spec = self._spec()
        start = time.perf_counter()
        rows, key = rows_from_v1(parse_json(body), spec)
        parsed = time.perf_counter()
        predictions = predict_rows(spec, rows)
        predicted = time.perf_counter()
        # Output shape (None, 1): one single-value list per row, as TF Serving answers for this model.
        out = orjson.dumps({key: predictions.reshape(-1, 1)}, option=orjson.OPT_SERIALIZE_NUMPY)
        spec.metrics.observe(start, parsed, predicted, time.perf_counter())
        return out

    def handle_v2(self, body: bytes) -> bytes:
        """Answers a V2 infer request body with one FP64 output of shape ``[n, 1]``."""
        spec = self._spec()
        start = time.perf_counter()
        rows, request_id = rows_from_v2(parse_json(body), spec)
        parsed = time.perf_counter()
        predictions = predict_rows(spec, rows)
        predicted = time.perf_counter()
        response: dict[str, Any] = {"model_name": spec.name, "id": request_id or str(uuid.uuid4())}
        if spec.version:
            response["model_version"] = spec.version
        response["outputs"] = [{"name": spec.output_name, "shape": [len(predictions), 1],
                                "datatype": OUTPUT_DATATYPE, "data": predictions}]
        out = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
        spec.metrics.observe(start, parsed, predicted, time.perf_counter())
        return out

    async def predict(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> Any:
        """KServe's dataplane entry point (used when a request does not come through the ASGI front)."""
        try:
            spec = self._spec()
            if isinstance(payload, InferRequest):
                rows, _ = rows_from_v2(_infer_request_as_dict(payload), spec)
                predictions = predict_rows(spec, rows)
                output = InferOutput(spec.output_name, [len(predictions), 1], OUTPUT_DATATYPE, predictions.tolist())
                return InferResponse(payload.id or str(uuid.uuid4()), spec.name, [output], model_version=spec.version)
            rows, key = rows_from_v1(payload, spec)
            return {key: predict_rows(spec, rows).reshape(-1, 1).tolist()}
        except RequestError as exc:
            raise (ModelNotReady(self.name) if exc.status == 503 else InvalidInput(exc.message)) from None

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata: the model's inputs, one per feature, in the card's order."""
        spec = self._spec()
        return [{"name": name, "datatype": OUTPUT_DATATYPE, "shape": [-1, 1]} for name in spec.features]

    def get_output_types(self) -> list[dict[str, Any]]:
        spec = self._spec()
        return [{"name": spec.output_name, "datatype": OUTPUT_DATATYPE, "shape": [-1, 1]}]

    def _spec(self) -> ModelSpec:
        if self.spec is None:
            raise RequestError(503, f"model {self.name} is not loaded")
        return self.spec


def _infer_request_as_dict(request: InferRequest) -> dict[str, Any]:
    inputs = []
    for tensor in request.inputs:
        data = tensor.data if isinstance(tensor.data, list) else tensor.as_numpy().reshape(-1).tolist()
        inputs.append({"name": tensor.name, "shape": list(tensor.shape), "datatype": tensor.datatype, "data": data})
    out: dict[str, Any] = {"inputs": inputs}
    if request.request_outputs:
        out["outputs"] = [{"name": o.name} for o in request.request_outputs]
    return out


def _load_folder(folder: Path) -> tuple[dict[str, Any], LinearModel]:
    """Checks a model folder (manifest, no empty or missing files) and loads the folded model from its card."""
    if not folder.is_dir():
        raise StartupError("the model folder does not exist or is not a folder")
    manifest_path = folder / MANIFEST
    try:
        if manifest_path.is_file():
            # KServe's storage initializer copies the whole version prefix, manifest included: verify it here too.
            verify_manifest(folder, json.loads(manifest_path.read_text()))
        empty = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
                       and p.stat().st_size == 0)
        if empty:
            raise StartupError(f"the model folder has empty file(s): {', '.join(empty[:5])}")
        saved_model = folder / "1" / "saved_model.pb"
        if not saved_model.is_file():
            raise StartupError("the model folder has no 1/saved_model.pb (an incomplete copy?)")
        card = read_card(folder)
        return card, linear_model_from_card(card)
    except (ModelLoadError, ManifestError) as exc:
        raise StartupError(str(exc)) from None
    except json.JSONDecodeError:
        raise StartupError(f"{MANIFEST} is not valid JSON") from None
    except OSError as exc:
        raise StartupError(f"cannot read the model folder ({exc.strerror or type(exc).__name__})") from None


def _manifest_version(folder: Path) -> str | None:
    try:
        version = json.loads((folder / MANIFEST).read_text()).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return str(version) if version else None


def _name_from_uri(uri: str | None) -> str | None:
    """``s3://bucket/<name>/<version>/`` -> ``<name>``."""
    if not uri:
        return None
    parts = [p for p in uri.partition("://")[2].split("/") if p]
    return parts[1] if len(parts) >= 3 else None


def _fetch_from_s3(uri: str, dest: Path) -> str | None:
    """Downloads and verifies a version by its manifest; returns the version id."""
    from components.common.store import ObjectStore, S3Settings, StoreError
    from components.common.versions import fetch_version

    try:
        settings = S3Settings.from_env()
        if settings is None:
            raise StartupError("--storage_uri needs MINIO_ENDPOINT, MINIO_ACCESS_KEY and MINIO_SECRET_KEY to be set")
        manifest = fetch_version(ObjectStore(settings), uri, dest)
    except (StoreError, ManifestError, ValueError) as exc:
        raise StartupError(str(exc)) from None
    version = manifest.get("version")
    return str(version) if version else None


# ---------------------------------------------------------------------------------------------------------------
# The ASGI front
# ---------------------------------------------------------------------------------------------------------------


class _ClientGone(Exception):
    """The client disconnected before sending its whole body."""


class PredictFront:
    """Answers V1 ``:predict`` and V2 ``/infer`` itself and hands every other request to KServe's app.

    It also enforces the body limit for every request with a body: 413 as soon as ``Content-Length`` or the bytes
    received so far exceed it, without reading the rest.

    Args:
        app: KServe's FastAPI application.
        model: The loaded model.
        max_body_bytes: Largest request body accepted.
    """

    def __init__(self, app: ASGIApp, model: BostonHousingModel, max_body_bytes: int) -> None:
        self.app = app
        self.model = model
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        protocol = None
        if path.startswith("/v1/models/") and path.endswith(":predict"):
            protocol, name = "v1", path[11:-8]
        elif path.startswith("/v2/models/") and path.endswith("/infer") and "/" not in path[11:-6]:
            protocol, name = "v2", path[11:-6]
        if protocol is not None:
            if method == "POST":
                await self._predict(protocol, name, scope, receive, send)
            else:
                await _send_bytes(send, 405, b'{"error":"use POST for predictions"}', extra=[(b"allow", b"POST")])
            return
        if method not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
        except RequestError as exc:
            await _send_json(send, exc.status, {"error": exc.message}, close=True)
            return
        except _ClientGone:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _predict(self, protocol: str, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        model = self.model
        close = False
        try:
            if name != model.name:
                raise RequestError(404, f"model {name[:100]!r} is not served here; this server serves {model.name!r}")
            if not model.ready:
                raise RequestError(503, f"model {model.name!r} is not ready")
            _check_content_type(scope)
            body = await self._read_body(scope, receive)
            status, answer = 200, model.handle_v1(body) if protocol == "v1" else model.handle_v2(body)
        except RequestError as exc:
            # 413 is decided before the body is read: close, so unread bytes are never parsed as a next request.
            close = exc.status == 413
            status, answer = exc.status, orjson.dumps({"error": exc.message})
        except _ClientGone:
            return
        if model.spec is not None:
            model.spec.metrics.count(protocol, status)
        await _send_bytes(send, status, answer, close)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_body_bytes
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise RequestError(400, "Content-Length is not a number") from None
                if declared > limit:
                    raise RequestError(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # chunked (or lying) clients: stop at the limit, do not read the rest
                raise RequestError(413, f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _check_content_type(scope: Scope) -> None:
    """JSON only (or no Content-Type at all, as many clients send); no compressed or binary-tensor bodies."""
    for key, value in scope["headers"]:
        if key == b"content-type" and value != b"application/json":
            media, _, params = value.decode("latin-1").partition(";")
            charset = params.strip().lower().replace(" ", "")
            if media.strip().lower() != "application/json" or charset not in ("", "charset=utf-8"):
                raise RequestError(415, f"unsupported Content-Type {media.strip()[:60]!r}: send application/json")
        elif key == b"content-encoding" and value.lower() != b"identity":
            raise RequestError(415, "compressed request bodies are not supported: send plain JSON")
        elif key == b"inference-header-content-length":
            raise RequestError(415, "the V2 binary tensor extension is not supported: send JSON data")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body to the inner app, then falls back to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_bytes(
    send: Send, status: int, body: bytes, close: bool = False, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *(extra or ())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, payload: Any, close: bool = False) -> None:
    await _send_bytes(send, status, orjson.dumps(payload), close)


def install_error_handlers(app: FastAPI) -> None:
    """Makes KServe's app answer its own errors as ``{"error": ...}`` without exception text or tracebacks."""

    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"invalid request: {where} {first.get('msg', '')}".strip()}, status_code=422)

    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        # KServe's default handler returns the exception's type and text; that can carry paths. Log it instead.
        log.error("unhandled error while serving a request", exc_info=exc)
        return JSONResponse({"error": "internal server error"}, status_code=500)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)


# ---------------------------------------------------------------------------------------------------------------
# Server wiring: kserve.ModelServer with a bind address, the ASGI front and quiet logs
# ---------------------------------------------------------------------------------------------------------------


class _BoundRESTServer(RESTServer):
    """KServe's REST server, bound to ``bind`` and serving the ASGI front before KServe's app."""

    def __init__(self, *args: Any, bind: str, front: Callable[[ASGIApp], ASGIApp], access_log: bool,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # kserve 0.21 hard-codes host="0.0.0.0" in RESTServer.__init__ (kserve/protocol/rest/server.py). uvicorn
        # reads Config.host only when it binds, so replacing it here is the whole override.
        self.config.host = bind
        if not access_log:
            # uvicorn 0.54 logs a line per request whenever "uvicorn.access" has handlers (Config.access_log is
            # applied only in Config.__init__, before KServe configured logging), so drop them as uvicorn would.
            access_logger = logging.getLogger("uvicorn.access")
            access_logger.handlers = []
            access_logger.propagate = False
        self._front = front
        self._log_requests = access_log

    def _add_middlewares(self, app: FastAPI) -> None:
        # KServe's middlewares only log: a timing line per request (kserve.trace) and the optional asgi-logger.
        if self._log_requests:
            super()._add_middlewares(app)

    def create_application(self) -> None:
        super().create_application()
        app = kserve_model_server.app
        install_error_handlers(app)
        # uvicorn loads Config.app when serving starts; an ASGI callable is used as is.
        self.config.app = self._front(app)


class PredictorServer(kserve_model_server.ModelServer):
    """`kserve.ModelServer` with a bind address and the fast front; REST only, one process."""

    def __init__(self, *, bind: str, max_body_bytes: int, log_requests: bool, **kwargs: Any) -> None:
        super().__init__(enable_grpc=False, workers=1, enable_latency_logging=log_requests, **kwargs)
        self.bind = bind
        self.max_body_bytes = max_body_bytes
        self.log_requests = log_requests

    def start(self, models: list[Model]) -> None:
        """Serves until SIGTERM/SIGINT; in-flight requests finish (uvicorn's graceful shutdown) before it returns."""
        self._register_and_check_atleast_one_model_is_ready(models)
        model = models[0]
        assert isinstance(model, BostonHousingModel)
        self._rest_server = _BoundRESTServer(
            kserve_model_server.FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            access_log_format=self.access_log_format,
            workers=1,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
            bind=self.bind,
            front=lambda app: PredictFront(app, model, self.max_body_bytes),
            access_log=self.log_requests,
        )
        self.servers.append(self._rest_server.start())
        self.register_signal_handler()
        # Everything imported and loaded so far lives as long as the process; freezing it keeps the collector from
        # walking those ~150 000 objects (kserve pulls in kubernetes, pandas, ...) each time requests allocate enough
        # to trigger a full collection: it halves the mean time of a 10 000-row request and trims the tail.
        gc.collect()
        gc.freeze()
        # ModelServer.start uses asyncio.run, i.e. the default loop, whatever --event-loop says; honour it (uvloop).
        with asyncio.Runner(loop_factory=self._rest_server.config.get_loop_factory()) as runner:
            runner.run(self._serve())


# ---------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """KServe's ModelServer flags plus ours (``--help`` lists both)."""
    parser = argparse.ArgumentParser(
        description="Serve the Boston Housing model with KServe (REST V1 and V2).",
        parents=[kserve_model_server.parser],
        allow_abbrev=False,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model_dir", type=Path, help="local model folder (KServe's storage initializer: /mnt/models)")
    source.add_argument("--storage_uri", help="s3://bucket/<name>/<version>/, fetched and verified by its manifest "
                                              "with credentials from MINIO_ENDPOINT/MINIO_ACCESS_KEY/MINIO_SECRET_KEY")
    parser.add_argument("--bind", default=DEFAULT_BIND, help="address the REST server listens on (0.0.0.0 in a pod)")
    parser.add_argument("--max_batch", type=int, default=DEFAULT_MAX_BATCH, help="most rows per request")
    parser.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="largest request body")
    parser.add_argument("--log_requests", action="store_true",
                        help="log a line per request (access log and KServe latency log); off by default")
    # Our defaults for KServe's own flags: gRPC off (it would bind [::]), no model name unless given.
    parser.set_defaults(enable_grpc=False, model_name=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Loads the model, then serves until SIGTERM. Returns the process exit code."""
    args = build_parser().parse_args(argv)
    # Overflowing inputs are refused per request (predict_rows); numpy's own warning would be a stderr line per
    # such request, and np.errstate around every prediction costs more than the prediction.
    np.seterr(all="ignore")
    try:
        if args.enable_grpc:
            raise StartupError("gRPC is not served by this predictor (it would bind every interface): use REST")
        if args.workers != 1:
            raise StartupError("--workers must be 1: scale with replicas")
        if args.max_batch < 1 or args.max_body_bytes < 1:
            raise StartupError("--max_batch and --max_body_bytes must be positive")
        model = BostonHousingModel(args.model_name, ModelSource(args.model_dir, args.storage_uri), args.max_batch)
        started = time.perf_counter()
        model.load()
        # Checked for the server process only (tests load the model inside processes that use TensorFlow):
        # a regression worth failing loudly, it costs seconds of start-up and half a GB.
        if "tensorflow" in sys.modules:
            raise StartupError("self-check failed: TensorFlow was imported into the server process")
    except StartupError as exc:
        # One line, no traceback: this is what `kubectl logs` shows for a crash-looping predictor.
        print(f"predictor: cannot start: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 1
    server = PredictorServer(
        http_port=args.http_port,
        bind=args.bind,
        max_body_bytes=args.max_body_bytes,
        log_requests=args.log_requests,
        enable_docs_url=args.enable_docs_url,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
    )
    assert model.spec is not None
    log.info(
        "model %s%s loaded and self-checked in %.0f ms: %d features, max batch %d, max body %d bytes, bind %s:%d",
        model.name, f" (version {model.spec.version})" if model.spec.version else "",
        (time.perf_counter() - started) * 1000, model.spec.n_features, args.max_batch, args.max_body_bytes,
        args.bind, args.http_port,
    )
    server.start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
