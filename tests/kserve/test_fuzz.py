"""Property-based fuzzing of the live predictor: no 5xx for any client input, and every 200 true to the V2 spec.

Hypothesis draws V1 and V2 request bodies (each field either well formed or any JSON value), requests to every route
with any method, and well-formed requests in the forms that take the fast path and the ones handed to KServe's
dataplane. Against the shared predictor (a real process, over HTTP):

* no answer is a 5xx; every 4xx is ``{"error": "<one line>"}``;
* every 200 under ``/v2`` validates against the Open Inference Protocol's response schemas
  (`open_inference_rest_v2.yaml`, KServe's published spec) and holds no ``null``;
* the same request answers the same body shape whether the fast path or KServe's dataplane answers it;
* the server logs nothing for any of it (no tracebacks, no ERROR lines).

Bounded and reproducible: ``derandomize=True`` (a fixed seed), a fixed number of examples per test, no example
database. The regression cases below are the ones these tests (and schemathesis, run by hand) found.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kserve.conftest import MODEL_NAME, Predictor

FEATURES = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]
V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"
SPEC = yaml.safe_load((Path(__file__).with_name("open_inference_rest_v2.yaml")).read_text())
FUZZ = settings(max_examples=120, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def schema(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}


RESPONSE_SCHEMAS = {  # 200s under /v2, by what answered
    "server_metadata": schema("metadata_server_response"),
    "model_metadata": schema("metadata_model_response"),
    "infer": schema("inference_response"),
}


def response_kind(path: str) -> str | None:
    if path in ("/v2", "/v2/"):
        return "server_metadata"
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return "infer"
    tail = path.removeprefix("/v2/models/")
    if path.startswith("/v2/models/") and (tail.count("/") == 0 or (tail.count("/") == 2 and "/versions/" in path)):
        return "model_metadata"
    return None


def has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(has_null(v) for v in value)
    return False


def check_answer(method: str, path: str, status: int, body: bytes, headers: dict[str, str]) -> None:
    """The properties every answer has, whatever was asked."""
    where = f"{method} {path} -> {status}: {body[:300]!r}"
    assert status < 500, where
    if method == "HEAD":
        return
    if 400 <= status < 500:
        error = json.loads(body)["error"]
        assert isinstance(error, str) and error and "\n" not in error, where
    if status == 200 and path.startswith("/v2") and headers.get("content-type", "").startswith("application/json"):
        payload = json.loads(body)
        assert not has_null(payload), where
        kind = response_kind(path)
        if kind:
            jsonschema.validate(payload, RESPONSE_SCHEMAS[kind])


@pytest.fixture()
def quiet(predictor: Predictor) -> Any:
    """Fails the test if the shared server logged anything while it ran."""
    before = len(predictor.stderr())
    yield predictor
    logged = predictor.stderr()[before:]
    assert "Traceback" not in logged and " ERROR " not in logged and "Warning" not in logged, logged[-3000:]


def send(server: Predictor, method: str, path: str, body: Any, content_type: str | None = "application/json"):
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    response = server.request(method, path, raw, headers={"Content-Type": content_type})
    check_answer(method, path, response.status, response.body, response.headers)
    return response


# --- strategies ---------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
numbers = st.integers(-1000, 1000) | st.floats(-1e6, 1e6, allow_nan=False)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the well-formed value, sometimes any JSON value (a wrong type, null, a nested object...)."""
    return st.one_of(valid, valid, valid, json_values)


@st.composite
def v2_tensor(draw: st.DrawFn) -> dict[str, Any]:
    rows = draw(st.integers(0, 3))
    per_feature = draw(st.booleans())
    shape = [rows] if per_feature else [rows, 13]
    tensor = {
        "name": draw(maybe(st.sampled_from(["features", "x", *FEATURES]))),
        "shape": draw(maybe(st.just(shape) | st.lists(st.integers(-2, 14), max_size=3))),
        "datatype": draw(maybe(st.sampled_from(["FP32", "FP64", "INT64", "INT32", "UINT8", "BOOL", "BYTES", "FP16"]))),
        "data": draw(maybe(st.lists(numbers, min_size=rows * (1 if per_feature else 13),
                                    max_size=rows * (1 if per_feature else 13) + 1))),
    }
    if draw(st.booleans()):
        tensor["parameters"] = draw(maybe(st.dictionaries(st.sampled_from(["content_type", "x"]), json_values,
                                                          max_size=2)))
    if draw(st.integers(0, 9)) == 0:
        tensor[draw(st.text(max_size=6))] = draw(json_values)
    return tensor


v2_bodies = st.fixed_dictionaries(
    {"inputs": maybe(st.lists(v2_tensor(), min_size=1, max_size=14))},
    optional={
        "id": maybe(st.text(max_size=8)),
        "model_name": maybe(st.sampled_from([MODEL_NAME, "other"])),
        "parameters": maybe(st.dictionaries(st.sampled_from(["binary_data_output", "x"]), json_values, max_size=2)),
        "outputs": maybe(st.lists(st.fixed_dictionaries({"name": maybe(st.sampled_from(["MEDV", "y"]))}),
                                  max_size=2)),
    },
)
v1_rows = st.lists(maybe(st.lists(numbers, min_size=13, max_size=13)), min_size=0, max_size=3)
v1_bodies = st.fixed_dictionaries(
    {},
    optional={
        "instances": maybe(v1_rows),
        "inputs": maybe(v1_rows | st.fixed_dictionaries({name: st.lists(numbers, min_size=1, max_size=1)
                                                         for name in FEATURES})),
        "signature_name": maybe(st.just("serving_default")),
    },
)
segment = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=8)
names = st.sampled_from([MODEL_NAME]) | segment
paths = st.one_of(
    st.sampled_from(["/", "/v2", "/v2/", "/v2/health/live", "/v2/health/ready", "/v2/models", "/v1/models",
                     "/metrics", "/docs", "/openapi.json", "/v2/repository/index"]),
    st.builds("/v2/models/{}".format, names),
    st.builds("/v2/models/{}/ready".format, names),
    st.builds("/v2/models/{}/infer".format, names),
    st.builds("/v2/models/{}/versions/{}".format, names, segment),
    st.builds("/v2/models/{}/versions/{}/ready".format, names, segment),
    st.builds("/v2/models/{}/versions/{}/infer".format, names, segment),
    st.builds("/v2/repository/models/{}/{}".format, names, st.sampled_from(["load", "unload"])),
    st.builds("/v1/models/{}".format, names),
    st.builds("/v1/models/{}:predict".format, names),
    st.builds("/v1/models/{}:explain".format, names),
)


# --- properties ---------------------------------------------------------------------------------------------------


@FUZZ
@given(body=v2_bodies)
def test_v2_infer_never_answers_5xx(quiet: Predictor, body: dict[str, Any]) -> None:
    send(quiet, "POST", V2, body)


@FUZZ
@given(body=v1_bodies, route=st.sampled_from([V1, f"/v1/models/{MODEL_NAME}:explain"]))
def test_v1_never_answers_5xx(quiet: Predictor, body: dict[str, Any], route: str) -> None:
    send(quiet, "POST", route, body)


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]), path=paths,
       body=st.none() | json_values | st.binary(max_size=40),
       content_type=st.sampled_from(["application/json", None, "text/plain", "application/octet-stream"]))
def test_no_route_answers_5xx(quiet: Predictor, method: str, path: str, body: Any, content_type: str | None) -> None:
    if method in ("GET", "HEAD", "OPTIONS", "DELETE"):
        body = None
    send(quiet, method, path, body, content_type)


@st.composite
def good_v2(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request: one [n, 13] tensor or 13 per-feature tensors; FP32, FP64 or integers."""
    n = draw(st.integers(1, 4))
    datatype = draw(st.sampled_from(["FP32", "FP64", "INT64"]))
    value = st.integers(0, 500) if datatype == "INT64" else st.floats(0, 500)
    rows = draw(st.lists(st.lists(value, min_size=13, max_size=13), min_size=n, max_size=n))
    if draw(st.booleans()):
        inputs = [{"name": "features", "shape": [n, 13], "datatype": datatype, "data": rows}]
    else:
        inputs = [{"name": f, "shape": [n], "datatype": datatype, "data": [r[j] for r in rows]}
                  for j, f in enumerate(FEATURES)]
    return {"id": draw(st.text(string.ascii_letters, min_size=1, max_size=8)), "inputs": inputs}


@settings(FUZZ, max_examples=60)
@given(body=good_v2())
def test_same_answer_whichever_path_answers(quiet: Predictor, body: dict[str, Any]) -> None:
    """The fast path, and KServe's dataplane (reached by the ``model_name`` key KServe's client adds), agree."""
    fast = send(quiet, "POST", V2, body)
    delegated = send(quiet, "POST", V2, {**body, "model_name": MODEL_NAME})
    assert fast.status == delegated.status == 200, (fast.body, delegated.body)
    assert fast.json() == delegated.json()


# --- regression cases ---------------------------------------------------------------------------------------------

ROW = [0.1, 18.0, 2.31, 0.0, 0.5, 6.5, 65.0, 4.0, 1.0, 296.0, 15.0, 396.0, 5.0]


def tensor(**overrides: Any) -> dict[str, Any]:
    return {"name": "features", "shape": [1, 13], "datatype": "FP32", "data": ROW, **overrides}


@pytest.mark.parametrize(("body", "status"), [
    ({"inputs": [tensor(datatype={})]}, 400),  # was a plain-text 500 (unhashable dict)
    ({"inputs": [tensor()], "outputs": [{"name": {}}]}, 400),  # was a plain-text 500
    ({"inputs": [tensor()], "outputs": [{"name": ["MEDV"]}]}, 400),
    ({"inputs": [tensor(name={"a": 1})]}, 400),
    ({"inputs": [tensor()], "id": {}}, 400),
    ({"inputs": [tensor()], "model_name": MODEL_NAME, "id": 3}, 422),  # KServe's pydantic refuses it (delegated)
    ({"inputs": [tensor(datatype="INT64", data=[{}] * 13)], "model_name": MODEL_NAME}, 400),
], ids=["datatype-object", "output-name-object", "output-name-list", "name-object", "id-object",
        "delegated-id-number", "delegated-int64-objects"])
def test_regressions_wrong_json_types(quiet: Predictor, body: dict[str, Any], status: int) -> None:
    response = send(quiet, "POST", V2, body)
    assert response.status == status, response.body


def test_delegated_answers_leave_absent_keys_out(quiet: Predictor) -> None:
    """KServe's client sends ``model_name``: the dataplane answers, without ``"model_version": null`` and co."""
    for body in ({"inputs": [tensor()], "model_name": MODEL_NAME, "id": "a"},
                 {"inputs": [tensor()], "parameters": {"x": 1}, "id": "a"},
                 {"inputs": [tensor(datatype="INT64", data=[int(v) for v in ROW])], "id": "a"}):
        answer = send(quiet, "POST", V2, body).json()
        assert set(answer) == {"model_name", "id", "outputs"}, answer
        assert set(answer["outputs"][0]) == {"name", "shape", "datatype", "data"}, answer
    metadata = send(quiet, "GET", f"/v2/models/{MODEL_NAME}", None).json()
    assert "versions" not in metadata  # this model folder has no version


def test_versioned_paths(quiet: Predictor) -> None:
    """Versioned V2 paths: 404 naming what is served (stock KServe answers infer with a 500, NotImplementedError)."""
    for path in (f"/v2/models/{MODEL_NAME}/versions/1", f"/v2/models/{MODEL_NAME}/versions/1/ready"):
        assert send(quiet, "GET", path, None).status == 404
    response = send(quiet, "POST", f"/v2/models/{MODEL_NAME}/versions/1/infer", {"inputs": [tensor()]})
    assert response.status == 404 and "version '1' is not served" in response.json()["error"]
