"""Differential conformance: the same requests to our predictor and to stock KServe serving the same linear map.

Stock KServe (`stock_kserve.py`: a `kserve.Model` written as KServe's sklearnserver is, on `kserve.ModelServer`)
is the reference. For every request of the matrix, both real servers answer over real HTTP, and:

* stock answers 2xx -> ours answers 2xx, the same predictions (1e-9) in the same response shape;
* stock answers 4xx -> ours answers a 4xx;
* stock answers 5xx (to bad input) -> ours answers a 4xx with ``{"error": ...}`` naming the problem;
* ours never answers 5xx.

`REFUSED_ON_PURPOSE` lists the requests stock KServe answers 2xx and ours refuses, each with the reason (the
README's serving section repeats them); the test checks that stock really does answer those 2xx, so the list
cannot keep a case that no longer differs.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

V1 = "/v1/models/boston-housing:predict"
V2 = "/v2/models/boston-housing/infer"
ROW = [0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98]
ROWS = [ROW, [v * 1.5 for v in ROW], [v / 3 for v in ROW]]
NAMES = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]
MAX_BATCH = 1000  # the shared predictor's --max_batch (conftest)
NUMPY_TYPES = {"FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "INT32": "<i4", "INT64": "<i8", "BOOL": "?"}
JSON_NAN_ROW = "[0, 18, 2.31, 0, NaN, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98]"
OVERFLOW_ROW = [1.7e308] * 13  # finite inputs, a prediction past float64 (the weights are not all of one sign)


def v2(shape: Any, data: Any, datatype: str = "FP32", name: str = "features", **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}], **extra}


def binary(tensors: list[tuple[str, str, np.ndarray]], header_extra: dict[str, Any] | None = None,
           length: str | None = None) -> tuple[bytes, dict[str, str | None]]:
    """A V2 request with the binary tensor extension, as KServe's client and tritonclient send it."""
    header: dict[str, Any] = {"inputs": [
        {"name": name, "shape": list(array.shape), "datatype": datatype,
         "parameters": {"binary_data_size": array.astype(NUMPY_TYPES[datatype]).nbytes}}
        for name, datatype, array in tensors
    ], **(header_extra or {})}
    head = json.dumps(header).encode()
    raw = b"".join(array.astype(NUMPY_TYPES[datatype]).tobytes() for _, datatype, array in tensors)
    return head + raw, {"Content-Type": "application/octet-stream",
                        "Inference-Header-Content-Length": length or str(len(head))}


def rows(n: int) -> np.ndarray:
    return np.asarray([ROWS[i % len(ROWS)] for i in range(n)], dtype=np.float64)


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    body: Any = None
    headers: dict[str, str | None] | None = None
    v1_key: str = "predictions"  # ours answers the columnar V1 form under "outputs", as TF Serving does
    same_as: Any = None  # a form stock cannot read: ours must answer as stock does to this plain equivalent


BIN_FP32, BIN_FP32_HEADERS = binary([("features", "FP32", rows(3))])
BIN_OUT, BIN_OUT_HEADERS = binary([("features", "FP64", rows(2))], {"parameters": {"binary_data_output": True}})
BIN_FP16, BIN_FP16_HEADERS = binary([("features", "FP16", rows(2))])
BIN_INT, BIN_INT_HEADERS = binary([("features", "INT64", np.rint(rows(2)))])
BIN_BOOL, BIN_BOOL_HEADERS = binary([("features", "BOOL", np.ones((1, 13)))])
BIN_NAN, BIN_NAN_HEADERS = binary([("features", "FP64", np.full((1, 13), np.nan))])
BIN_SHORT, BIN_SHORT_HEADERS = binary([("features", "FP32", rows(2))])
BIN_NO_INPUTS = b'{"outputs": []}'

CASES: list[Case] = [
    # --- V1, accepted by both
    Case("v1 one row", "POST", V1, {"instances": [ROW]}),
    Case("v1 three rows", "POST", V1, {"instances": ROWS}),
    Case("v1 integers", "POST", V1, {"instances": [[int(v) for v in ROW]]}),
    Case("v1 signature_name", "POST", V1, {"instances": [ROW], "signature_name": "serving_default"}),
    Case("v1 extra key", "POST", V1, {"instances": [ROW], "meta": {"a": 1}}),
    Case("v1 columnar rows", "POST", V1, {"inputs": ROWS}, v1_key="outputs"),
    Case("v1 no content type", "POST", V1, {"instances": [ROW]}, {"Content-Type": None}),
    # --- V1, ours accepts more (stock fails with 5xx)
    Case("v1 rows keyed by name", "POST", V1, {"instances": [dict(zip(NAMES, ROW, strict=True))]},
         same_as={"instances": [ROW]}),
    Case("v1 named input rows", "POST", V1, {"instances": [{"features": ROW}]}, same_as={"instances": [ROW]}),
    Case("v1 columns by name", "POST", V1, {"inputs": {n: [v] for n, v in zip(NAMES, ROW, strict=True)}},
         v1_key="outputs", same_as={"instances": [ROW]}),
    # --- V1, bad input
    Case("v1 malformed JSON", "POST", V1, '{"instances": [[1, 2'),
    Case("v1 empty body", "POST", V1, b""),
    Case("v1 body is a list", "POST", V1, [ROW]),
    Case("v1 body is a string", "POST", V1, '"hello"'),
    Case("v1 empty object", "POST", V1, {}),
    Case("v1 no instances", "POST", V1, {"rows": [ROW]}),
    Case("v1 instances not a list", "POST", V1, {"instances": {"a": 1}}),
    Case("v1 too few features", "POST", V1, {"instances": [ROW[:12]]}),
    Case("v1 too many features", "POST", V1, {"instances": [[*ROW, 1.0]]}),
    Case("v1 ragged rows", "POST", V1, {"instances": [ROW, ROW[:5]]}),
    Case("v1 string value", "POST", V1, {"instances": [[*ROW[:5], "6.5", *ROW[6:]]]}),
    Case("v1 null value", "POST", V1, {"instances": [[None, *ROW[1:]]]}),
    Case("v1 NaN", "POST", V1, '{"instances": [' + JSON_NAN_ROW + "]}"),
    Case("v1 overflowing literal", "POST", V1, '{"instances": [[1e999' + ", 1" * 12 + "]]}"),
    Case("v1 empty batch", "POST", V1, {"instances": []}),
    Case("v1 unknown feature name", "POST", V1, {"instances": [{**dict(zip(NAMES, ROW, strict=True)), "X": 1}]}),
    Case("v1 text/plain", "POST", V1, {"instances": [ROW]}, {"Content-Type": "text/plain"}),
    Case("v1 form encoded", "POST", V1, {"instances": [ROW]}, {"Content-Type": "application/x-www-form-urlencoded"}),
    Case("v1 gzip", "POST", V1, gzip.compress(json.dumps({"instances": [ROW]}).encode()),
         {"Content-Encoding": "gzip"}),
    Case("v1 unknown model", "POST", "/v1/models/other:predict", {"instances": [ROW]}),
    Case("v1 GET predict", "GET", V1),
    # --- V1, refused on purpose (see REFUSED_ON_PURPOSE)
    Case("v1 rank 1", "POST", V1, {"instances": ROW}),
    Case("v1 rank 3", "POST", V1, {"instances": [[ROW]]}),
    Case("v1 boolean value", "POST", V1, {"instances": [[*ROW[:3], True, *ROW[4:]]]}),
    Case("v1 unknown signature", "POST", V1, {"instances": [ROW], "signature_name": "other"}),
    Case("v1 instances and inputs", "POST", V1, {"instances": [ROW], "inputs": [ROW]}),
    Case("v1 prediction overflows", "POST", V1, {"instances": [OVERFLOW_ROW]}),
    Case("v1 over the batch limit", "POST", V1, {"instances": [ROW] * (MAX_BATCH + 1)}),
    # --- V2 JSON, accepted by both
    Case("v2 FP32 flat", "POST", V2, v2([3, 13], [v for r in ROWS for v in r])),
    Case("v2 FP32 nested", "POST", V2, v2([3, 13], ROWS)),
    Case("v2 FP64", "POST", V2, v2([3, 13], [v for r in ROWS for v in r], "FP64")),
    Case("v2 with id", "POST", V2, v2([1, 13], ROW, id="req-7")),
    Case("v2 model_name key", "POST", V2, v2([1, 13], ROW, model_name="boston-housing")),
    Case("v2 unknown top-level key", "POST", V2, v2([1, 13], ROW, instances=[ROW])),
    Case("v2 parameters", "POST", V2, v2([1, 13], ROW, parameters={"custom": "x"})),
    Case("v2 INT64", "POST", V2, v2([1, 13], [int(v) for v in ROW], "INT64")),
    Case("v2 INT32", "POST", V2, v2([1, 13], [int(v) for v in ROW], "INT32")),
    Case("v2 empty batch", "POST", V2, v2([0, 13], [])),
    Case("v2 no content type (tritonclient's JSON)", "POST", V2, v2([1, 13], ROW), {"Content-Type": None},
         same_as=v2([1, 13], ROW)),
    Case("v2 JSON charset", "POST", V2, v2([1, 13], ROW), {"Content-Type": "application/json; charset=utf-8"}),
    # --- V2 JSON, ours accepts more
    Case("v2 one tensor per feature", "POST", V2,
         {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in zip(NAMES, ROW,
                                                                                                strict=True)]},
         same_as=v2([1, 13], ROW, "FP64")),
    # --- V2 JSON, bad input
    Case("v2 malformed JSON", "POST", V2, '{"inputs": [{"name"'),
    Case("v2 empty body", "POST", V2, b""),
    Case("v2 body is a list", "POST", V2, [1]),
    Case("v2 no inputs", "POST", V2, {"inputs": []}),
    Case("v2 tensor without data", "POST", V2, {"inputs": [{"name": "x", "shape": [1, 13], "datatype": "FP32"}]}),
    Case("v2 FP16 as JSON", "POST", V2, v2([1, 13], ROW, "FP16")),
    Case("v2 BYTES", "POST", V2, v2([1, 13], [str(v) for v in ROW], "BYTES")),
    Case("v2 unknown datatype", "POST", V2, v2([1, 13], ROW, "FLOAT")),
    Case("v2 rank 3", "POST", V2, v2([1, 13, 1], ROW)),
    Case("v2 wrong feature count", "POST", V2, v2([1, 12], ROW[:12])),
    Case("v2 shape and data disagree", "POST", V2, v2([2, 13], ROW)),
    Case("v2 string in data", "POST", V2, v2([1, 13], [*ROW[:2], "x", *ROW[3:]])),
    Case("v2 null in data", "POST", V2, v2([1, 13], [*ROW[:12], None])),
    Case("v2 id not a string", "POST", V2, v2([1, 13], ROW, id=5)),
    Case("v2 unknown output", "POST", V2, v2([1, 13], ROW, outputs=[{"name": "price"}])),
    Case("v2 unknown feature tensors", "POST", V2,
         {"inputs": [{"name": n.lower(), "shape": [1], "datatype": "FP64", "data": [v]} for n, v in zip(NAMES, ROW,
                                                                                                        strict=True)]}),
    Case("v2 text/plain", "POST", V2, v2([1, 13], ROW), {"Content-Type": "text/plain"}),
    Case("v2 octet-stream without binary header", "POST", V2, v2([1, 13], ROW),
         {"Content-Type": "application/octet-stream"}),
    Case("v2 unknown model", "POST", "/v2/models/other/infer", v2([1, 13], ROW)),
    Case("v2 GET infer", "GET", V2),
    # --- V2 JSON, refused on purpose
    Case("v2 rank 1", "POST", V2, v2([13], ROW)),
    Case("v2 negative shape", "POST", V2, v2([-1, 13], ROW)),
    Case("v2 boolean in data", "POST", V2, v2([1, 13], [*ROW[:3], True, *ROW[4:]])),
    Case("v2 BOOL", "POST", V2, v2([1, 13], [True] * 13, "BOOL")),
    Case("v2 NaN in data", "POST", V2,
         '{"inputs": [{"name": "f", "shape": [1, 13], "datatype": "FP64", "data": ' + JSON_NAN_ROW + "}]}"),
    Case("v2 prediction overflows", "POST", V2, v2([1, 13], OVERFLOW_ROW, "FP64")),
    Case("v2 over the batch limit", "POST", V2, v2([MAX_BATCH + 1, 13], ROW * (MAX_BATCH + 1))),
    # --- V2 binary tensor extension
    Case("v2 binary FP32", "POST", V2, BIN_FP32, BIN_FP32_HEADERS),
    Case("v2 binary in, binary out", "POST", V2, BIN_OUT, BIN_OUT_HEADERS),
    Case("v2 binary FP16", "POST", V2, BIN_FP16, BIN_FP16_HEADERS),
    Case("v2 binary INT64", "POST", V2, BIN_INT, BIN_INT_HEADERS),
    Case("v2 binary data shorter than its shape", "POST", V2, BIN_SHORT[:-8], BIN_SHORT_HEADERS),
    Case("v2 binary header length not a number", "POST", V2, BIN_FP32, {**BIN_FP32_HEADERS,
                                                                         "Inference-Header-Content-Length": "ten"}),
    Case("v2 binary header length past the body", "POST", V2, BIN_FP32, {**BIN_FP32_HEADERS,
                                                                          "Inference-Header-Content-Length": "99999"}),
    Case("v2 binary header without inputs", "POST", V2, BIN_NO_INPUTS,
         {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(BIN_NO_INPUTS))}),
    Case("v2 binary BOOL", "POST", V2, BIN_BOOL, BIN_BOOL_HEADERS),
    Case("v2 binary NaN", "POST", V2, BIN_NAN, BIN_NAN_HEADERS),
    # --- health, readiness, metadata, routes
    Case("server live", "GET", "/v2/health/live"),
    Case("server ready", "GET", "/v2/health/ready"),
    Case("server metadata", "GET", "/v2"),
    Case("model ready", "GET", "/v2/models/boston-housing/ready"),
    Case("model metadata", "GET", "/v2/models/boston-housing"),
    Case("v1 model status", "GET", "/v1/models/boston-housing"),
    Case("v1 model list", "GET", "/v1/models"),
    Case("v2 model list", "GET", "/v2/models"),
    Case("unknown model metadata", "GET", "/v2/models/other"),
    Case("unknown model ready", "GET", "/v2/models/other/ready"),
    Case("unknown v1 model", "GET", "/v1/models/other"),
    Case("unknown route", "GET", "/v3/anything"),
]

# Stock KServe answers these 2xx; ours refuses them with a 4xx naming the problem, for the reason given.
TF_SERVING = "TensorFlow Serving refuses it, and V1 is its API: a client must get the same answer from either runtime"
NOT_FINITE = "stock answers 200 with null (or NaN) for a prediction: no number is not an answer"
REFUSED_ON_PURPOSE: dict[str, str] = {
    "v1 rank 1": "a flat list is not a batch of rows; stock's numpy broadcasting answers one number. " + TF_SERVING,
    "v1 rank 3": "rows must be flat lists of 13 numbers; stock's numpy answers a rank-3 array. " + TF_SERVING,
    "v1 boolean value": "true is not a number; stock's numpy reads it as 1.0. " + TF_SERVING,
    "v1 unknown signature": "the model has one signature; stock ignores signature_name. " + TF_SERVING,
    "v1 instances and inputs": "two bodies in one; stock silently uses inputs. " + TF_SERVING,
    "v1 prediction overflows": NOT_FINITE,
    "v1 over the batch limit": "a bounded server: --max_batch rows per request (413); stock has no limit",
    "v2 rank 1": "the model takes [n, 13]; stock's numpy broadcasting answers one number for a [13] tensor",
    "v2 negative shape": "a request tensor's shape is its size, never -1; stock lets numpy reshape guess it",
    "v2 boolean in data": "true is not an FP32 number; stock's numpy reads it as 1.0",
    "v2 BOOL": "the features are numbers; stock's numpy multiplies booleans as 0 and 1",
    "v2 NaN in data": NOT_FINITE,
    "v2 null in data": "null is not a number; stock's numpy reads it as NaN. " + NOT_FINITE,
    "v2 prediction overflows": NOT_FINITE,
    "v2 over the batch limit": "a bounded server: --max_batch rows per request (413); stock has no limit",
    "v2 binary BOOL": "the features are numbers; stock's numpy multiplies booleans as 0 and 1",
    "v2 binary NaN": NOT_FINITE,
}
# Bodies compared for these GET routes (metadata differs by design: ours lists the card's inputs, stock none).
SAME_BODY_ROUTES = {"/v2/health/live", "/v2/health/ready", "/v2/models/boston-housing/ready",
                    "/v1/models/boston-housing", "/v1/models", "/v2/models"}


def send(server: Any, case: Case) -> Any:
    return server.request(case.method, case.path, case.body, case.headers)


def v2_answer(response: Any) -> tuple[dict[str, Any], list[np.ndarray]]:
    """A V2 response's JSON part and its outputs as arrays, decoding binary outputs."""
    length = response.headers.get("inference-header-content-length")
    head = json.loads(response.body[: int(length)] if length else response.body)
    raw, offset, arrays = response.body[int(length):] if length else b"", 0, []
    for output in head["outputs"]:
        if "data" in output:
            values = [math.nan if v is None else v for v in output["data"]]
            arrays.append(np.asarray(values, dtype=np.float64).reshape(output["shape"]))
        else:
            size = output["parameters"]["binary_data_size"]
            data = np.frombuffer(raw[offset:offset + size], dtype=NUMPY_TYPES[output["datatype"]])
            arrays.append(data.astype(np.float64).reshape(output["shape"]))
            offset += size
    return head, arrays


def assert_same_answer(case: Case, stock: Any, ours: Any) -> None:
    if case.method == "GET":
        if case.path in SAME_BODY_ROUTES:
            assert ours.json() == stock.json()
        return
    if case.path == V1:
        want, got = stock.json(), ours.json()
        assert list(want) == ["predictions"] and list(got) == [case.v1_key]
        want_values, got_values = np.asarray(want["predictions"]), np.asarray(got[case.v1_key])
        assert got_values.shape == want_values.shape
        np.testing.assert_allclose(got_values, want_values, rtol=0, atol=1e-9)
        return
    want_head, want = v2_answer(stock)
    got_head, got = v2_answer(ours)
    # Same keys (stock sends "model_version": null where ours leaves it out), same name and id when given.
    assert {k for k, v in got_head.items() if v is not None} == {k for k, v in want_head.items() if v is not None}
    assert got_head["model_name"] == want_head["model_name"]
    if isinstance(case.body, dict) and "id" in case.body:
        assert got_head["id"] == want_head["id"] == case.body["id"]
    assert ("inference-header-content-length" in ours.headers) == ("inference-header-content-length" in stock.headers)
    assert len(got) == len(want) == 1
    # The output's name is the model's own (ours: the card's target, as metadata says; stock: "output-0").
    for key in ("shape", "datatype"):
        assert got_head["outputs"][0][key] == want_head["outputs"][0][key], key
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-9)


def assert_clear_refusal(ours: Any) -> None:
    assert 400 <= ours.status < 500, (ours.status, ours.body[:300])
    assert ours.headers["content-type"].startswith("application/json")
    message = ours.json()["error"]
    assert isinstance(message, str) and message and "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_answers_no_worse_than_stock_kserve(case: Case, predictor: Any, stock_kserve: Any) -> None:
    stock = send(stock_kserve, case)
    ours = send(predictor, case)
    assert ours.status < 500, (ours.status, ours.body[:300])
    if case.same_as is not None:  # stock cannot read this form; ours answers it as stock answers the plain one
        assert stock.status >= 400, f"stock now reads {case.id!r}: compare it directly"
        plain = Case(case.id, case.method, case.path, case.same_as)
        stock = send(stock_kserve, plain)
        assert 200 <= stock.status < 300 and 200 <= ours.status < 300, (stock.status, ours.status, ours.body[:300])
        assert_same_answer(case, stock, ours)
    elif case.id in REFUSED_ON_PURPOSE:
        assert 200 <= stock.status < 300, f"stock now answers {stock.status}: drop {case.id!r} from the list"
        assert_clear_refusal(ours)
    elif 200 <= stock.status < 300:
        assert 200 <= ours.status < 300, (ours.status, ours.body[:300])
        assert_same_answer(case, stock, ours)
    else:
        assert_clear_refusal(ours)


def test_the_matrix_covers_every_kind_of_request() -> None:
    ids = " ".join(c.id for c in CASES)
    for word in ("v1", "v2", "binary", "live", "ready", "metadata", "unknown model", "shape", "datatype", "NaN",
                 "empty", "content type", "batch limit", "model_name", "id", "parameters"):
        assert word.lower() in ids.lower(), word
    assert set(REFUSED_ON_PURPOSE) <= {c.id for c in CASES}


# --- V2 over gRPC: the same rules, against stock KServe's gRPC server (KServe's InferenceServicer) -----------------


def grpc_tensor(shape: list[int], values: Any = None, datatype: str = "FP64", name: str = "features") -> Any:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    field = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT64": "int64_contents",
             "BYTES": "bytes_contents", "BOOL": "bool_contents"}[datatype]
    contents = pb.InferTensorContents(**{field: values}) if values is not None else None
    return pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape, contents=contents)


def grpc_infer(*inputs: Any, raw: list[bytes] | None = None, model: str = "boston-housing", **extra: Any) -> Any:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    return pb.ModelInferRequest(model_name=model, inputs=list(inputs), raw_input_contents=raw or [], **extra)


def grpc_cases() -> dict[str, tuple[str, Any, Any]]:
    """id -> (method, request, same_as): the ModelInfer matrix and the health/metadata calls."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    flat = [v for r in ROWS for v in r]
    fp32 = np.asarray(ROWS, dtype="<f4")
    plain = grpc_infer(grpc_tensor([1, 13], ROW))
    return {
        "grpc FP64 contents": ("ModelInfer", grpc_infer(grpc_tensor([3, 13], flat)), None),
        "grpc FP32 contents": ("ModelInfer", grpc_infer(grpc_tensor([3, 13], flat, "FP32")), None),
        "grpc FP32 raw (tritonclient's form)": ("ModelInfer", grpc_infer(grpc_tensor([3, 13], datatype="FP32"),
                                                                         raw=[fp32.tobytes()]), None),
        "grpc FP64 raw": ("ModelInfer", grpc_infer(grpc_tensor([3, 13]), raw=[np.asarray(ROWS).tobytes()]), None),
        "grpc INT64 contents": ("ModelInfer", grpc_infer(grpc_tensor([1, 13], [int(v) for v in ROW], "INT64")), None),
        "grpc with id": ("ModelInfer", grpc_infer(grpc_tensor([1, 13], ROW), id="req-9"), None),
        "grpc one tensor per feature": ("ModelInfer", grpc_infer(*[grpc_tensor([1], [v], name=n) for n, v in zip(
            NAMES, ROW, strict=True)]), plain),
        "grpc wrong feature count": ("ModelInfer", grpc_infer(grpc_tensor([1, 12], ROW[:12])), None),
        "grpc shape and data disagree": ("ModelInfer", grpc_infer(grpc_tensor([2, 13], ROW)), None),
        "grpc rank 1": ("ModelInfer", grpc_infer(grpc_tensor([13], ROW)), None),
        "grpc NaN": ("ModelInfer", grpc_infer(grpc_tensor([1, 13], [math.nan, *ROW[1:]])), None),
        "grpc BYTES": ("ModelInfer", grpc_infer(grpc_tensor([1, 13], [b"1"] * 13, "BYTES")), None),
        "grpc BOOL": ("ModelInfer", grpc_infer(grpc_tensor([1, 13], [True] * 13, "BOOL")), None),
        "grpc no inputs": ("ModelInfer", grpc_infer(), None),
        "grpc raw count differs": ("ModelInfer", grpc_infer(grpc_tensor([1, 13]), raw=[b"", b""]), None),
        "grpc raw bytes short": ("ModelInfer", grpc_infer(grpc_tensor([1, 13]), raw=[b"\0" * 100]), None),
        "grpc prediction overflows": ("ModelInfer", grpc_infer(grpc_tensor([1, 13], OVERFLOW_ROW)), None),
        "grpc over the batch limit": ("ModelInfer", grpc_infer(grpc_tensor([MAX_BATCH + 1, 13],
                                                                           ROW * (MAX_BATCH + 1))), None),
        "grpc unknown model": ("ModelInfer", grpc_infer(grpc_tensor([1, 13], ROW), model="other"), None),
        "grpc server live": ("ServerLive", pb.ServerLiveRequest(), None),
        "grpc server ready": ("ServerReady", pb.ServerReadyRequest(), None),
        "grpc server metadata": ("ServerMetadata", pb.ServerMetadataRequest(), None),
        "grpc model ready": ("ModelReady", pb.ModelReadyRequest(name="boston-housing"), None),
        "grpc model metadata": ("ModelMetadata", pb.ModelMetadataRequest(name="boston-housing"), None),
        "grpc unknown model metadata": ("ModelMetadata", pb.ModelMetadataRequest(name="other"), None),
    }


GRPC_REFUSED_ON_PURPOSE: dict[str, str] = {
    "grpc rank 1": "the model takes [n, 13]; stock's numpy broadcasting answers one number for a [13] tensor",
    "grpc NaN": NOT_FINITE,
    "grpc BOOL": "the features are numbers; stock's numpy multiplies booleans as 0 and 1",
    "grpc prediction overflows": NOT_FINITE,
    "grpc over the batch limit": "a bounded server: --max_batch rows per request; stock has no limit",
}
GRPC_CLIENT_ERRORS = {"INVALID_ARGUMENT", "NOT_FOUND", "UNAVAILABLE", "UNIMPLEMENTED", "RESOURCE_EXHAUSTED"}


def grpc_call(port: int, method: str, request: Any) -> tuple[str, Any]:
    """(status code name, response or error details) of one call."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return "OK", getattr(pb_grpc.GRPCInferenceServiceStub(channel), method)(request, timeout=30)
        except grpc.RpcError as error:
            return error.code().name, error.details()


def grpc_predictions(response: Any) -> np.ndarray:
    from kserve.protocol.infer_type import InferResponse

    return InferResponse.from_grpc(response).outputs[0].as_numpy().astype(np.float64)


@pytest.mark.parametrize("case_id", list(grpc_cases()))
def test_grpc_answers_no_worse_than_stock_kserve(case_id: str, grpc_predictor: Any, stock_kserve: Any) -> None:
    method, request, same_as = grpc_cases()[case_id]
    stock_code, stock = grpc_call(stock_kserve.grpc_port, method, request)
    code, ours = grpc_call(grpc_predictor.grpc_port, method, request)
    assert code in GRPC_CLIENT_ERRORS | {"OK"}, (code, ours)  # never INTERNAL or UNKNOWN
    if same_as is not None:
        assert stock_code != "OK", f"stock now reads {case_id!r}: compare it directly"
        stock_code, stock = grpc_call(stock_kserve.grpc_port, method, same_as)
    if case_id in GRPC_REFUSED_ON_PURPOSE:
        assert stock_code == "OK", f"stock now answers {stock_code}: drop {case_id!r} from the list"
        assert code == "INVALID_ARGUMENT" and ours and "\n" not in ours, (code, ours)
    elif stock_code == "OK":
        assert code == "OK", (code, ours)
        if method == "ModelInfer":
            assert ours.model_name == stock.model_name and ours.id == request.id
            np.testing.assert_allclose(grpc_predictions(ours).reshape(-1), grpc_predictions(stock).reshape(-1),
                                       rtol=0, atol=1e-9)
        elif method in ("ServerLive", "ServerReady", "ModelReady"):
            assert ours == stock
        elif method == "ServerMetadata":  # ours lists no extension: the repository is off (stock: always listed)
            assert (ours.name, ours.version) == (stock.name, stock.version)
    else:
        assert code in GRPC_CLIENT_ERRORS and ours and "\n" not in ours, (code, ours)
