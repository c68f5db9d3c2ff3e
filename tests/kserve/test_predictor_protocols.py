"""Both protocols against the real server: V1 in every TF-Serving form, V2 infer and metadata, health, metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from boston_model.card import EQUALITY_ATOL, load_linear_model, read_card

V1 = "/v1/models/boston-housing:predict"
V2 = "/v2/models/boston-housing/infer"


def card(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "boston_model.json").read_text())


def probe_rows(model_dir: Path) -> list[list[float]]:
    return card(model_dir)["probe"]["inputs"]


def expected(model_dir: Path, rows: list[list[float]], datatype: str = "FP64") -> np.ndarray:
    """The card's folded map applied by hand (not the server's LinearModel.predict) to ``rows`` read as ``datatype``.

    FP32 data are float32 values, as KServe's dataplane reads them (so both paths give the same numbers).
    """
    array = np.asarray(rows, dtype=np.float32 if datatype == "FP32" else np.float64).astype(np.float64)
    card = read_card(model_dir)
    return array @ np.asarray(card["weights"]) + card["bias"]


def assert_tf_serving_column(values: Any, want: np.ndarray) -> None:
    """TF Serving's answer for an output of shape (None, 1): one single-number list per row."""
    assert isinstance(values, list) and len(values) == len(want)
    assert all(isinstance(v, list) and len(v) == 1 and isinstance(v[0], float) for v in values)
    np.testing.assert_allclose(np.asarray(values).reshape(-1), want, rtol=0, atol=1e-9)


def test_v1_instances_as_lists(predictor: Any, model_dir: Path) -> None:
    rows = probe_rows(model_dir)
    response = predictor.post(V1, {"instances": rows})
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["predictions"]
    assert_tf_serving_column(body["predictions"], expected(model_dir, rows))


def test_v1_instances_keyed_by_feature_name(predictor: Any, model_dir: Path) -> None:
    names = card(model_dir)["feature_names"]
    rows = probe_rows(model_dir)[:3]
    # Keys in reverse order: the server must place values by name, not by position.
    records = [{name: row[i] for i, name in reversed(list(enumerate(names)))} for row in rows]
    body = predictor.post(V1, {"instances": records}).json()
    assert_tf_serving_column(body["predictions"], expected(model_dir, rows))


def test_v1_tf_serving_named_input_rows(predictor: Any, model_dir: Path) -> None:
    rows = probe_rows(model_dir)[:2]
    body = predictor.post(V1, {"instances": [{"features": r} for r in rows], "signature_name": "serving_default"})
    assert body.status == 200
    assert_tf_serving_column(body.json()["predictions"], expected(model_dir, rows))


@pytest.mark.parametrize("form", ["rows", "named", "columns"])
def test_v1_columnar_inputs(predictor: Any, model_dir: Path, form: str) -> None:
    rows = probe_rows(model_dir)[:4]
    names = card(model_dir)["feature_names"]
    inputs: Any = {
        "rows": rows,
        "named": {"features": rows},
        "columns": {name: [r[i] for r in rows] for i, name in enumerate(names)},
    }[form]
    response = predictor.post(V1, {"inputs": inputs})
    assert response.status == 200, response.body
    body = response.json()
    assert list(body) == ["outputs"]  # TF Serving's columnar answer: one output, so its value directly
    assert_tf_serving_column(body["outputs"], expected(model_dir, rows))


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
@pytest.mark.parametrize("nested", [False, True])
def test_v2_infer_one_tensor(predictor: Any, model_dir: Path, datatype: str, nested: bool) -> None:
    rows = probe_rows(model_dir)
    data = rows if nested else [v for r in rows for v in r]
    request = {"id": "req-1", "inputs": [{"name": "features", "shape": [len(rows), 13], "datatype": datatype,
                                          "data": data}]}
    response = predictor.post(V2, request)
    assert response.status == 200, response.body
    body = response.json()
    assert body["model_name"] == "boston-housing"
    assert body["id"] == "req-1"
    (output,) = body["outputs"]
    assert output["name"] == card(model_dir)["target"]
    assert output["shape"] == [len(rows), 1]
    assert output["datatype"] == "FP64"
    np.testing.assert_allclose(output["data"], expected(model_dir, rows, datatype), rtol=0, atol=1e-9)


def test_v2_infer_one_tensor_per_feature(predictor: Any, model_dir: Path) -> None:
    rows = probe_rows(model_dir)[:3]
    names = card(model_dir)["feature_names"]
    inputs = [{"name": n, "shape": [3, 1] if i % 2 else [3], "datatype": "FP64", "data": [r[i] for r in rows]}
              for i, n in reversed(list(enumerate(names)))]
    response = predictor.post(V2, {"inputs": inputs, "outputs": [{"name": "MEDV"}]})
    assert response.status == 200, response.body
    body = response.json()
    assert isinstance(body["id"], str) and body["id"]  # generated when the request has none
    np.testing.assert_allclose(body["outputs"][0]["data"], expected(model_dir, rows), rtol=0, atol=1e-9)


def test_v2_metadata_names_the_inputs_from_the_card(predictor: Any, model_dir: Path) -> None:
    body = predictor.get("/v2/models/boston-housing").json()
    assert body["name"] == "boston-housing"
    assert [i["name"] for i in body["inputs"]] == card(model_dir)["feature_names"]
    assert all(i["datatype"] == "FP64" and i["shape"] == [-1, 1] for i in body["inputs"])
    assert body["outputs"] == [{"name": "MEDV", "datatype": "FP64", "shape": [-1, 1]}]


def test_health_readiness_and_model_status(predictor: Any) -> None:
    assert predictor.get("/v2/health/live").json() == {"live": True}
    assert predictor.get("/v2/health/ready").json() == {"ready": True}
    assert predictor.get("/v2/models/boston-housing/ready").json() == {"name": "boston-housing", "ready": True}
    assert predictor.get("/v1/models/boston-housing").json() == {"name": "boston-housing", "ready": True}
    assert predictor.get("/v1/models").json() == {"models": ["boston-housing"]}
    assert predictor.get("/v2").json()["name"] == "kserve"


def test_prometheus_metrics_are_kept(predictor: Any, model_dir: Path) -> None:
    predictor.post(V1, {"instances": probe_rows(model_dir)[:1]})
    predictor.post(V1, {"instances": []})
    text = predictor.get("/metrics").body.decode()
    # KServe's own latency histograms, filled by the fast path too, and our request counter by status code.
    for series in ("request_preprocess_seconds_count", "request_predict_seconds_count",
                   "request_postprocess_seconds_count"):
        match = re.search(rf'^{series}{{model_name="boston-housing"}} (\S+)$', text, re.M)
        assert match and float(match.group(1)) >= 1, series
    assert re.search(r'^predictor_requests_total\{.*code="200".*\} [1-9]', text, re.M)
    assert re.search(r'^predictor_requests_total\{.*code="400".*\} [1-9]', text, re.M)


def test_a_prediction_that_is_not_finite_is_refused_not_null(predictor: Any, model_dir: Path) -> None:
    weights = card(model_dir)["weights"]
    # Every term pushes the same way: the sum overflows float64 although every input is finite.
    row = [1.7e308 if w > 0 else -1.7e308 for w in weights]
    assert sum(abs(w) for w in weights) > 1.1  # so the sum is past float64's 1.8e308
    response = predictor.post(V1, {"instances": [row]})
    assert response.status == 400
    assert "not finite" in response.json()["error"]
    assert b"null" not in response.body


@pytest.mark.slow
def test_equal_to_evaluate_and_the_savedmodel(trained_model: Any, spawn_predictor: Any) -> None:
    """The trained model served: same numbers as the evaluate step (1e-5) and as the SavedModel's probe (1e-4)."""
    from components.evaluate.core import evaluate_model

    model = load_linear_model(trained_model.model_dir)
    evaluation = evaluate_model(model, trained_model.train, trained_model.test)
    names = list(model.feature_names)
    rows = trained_model.test[names].to_numpy(dtype=np.float64).tolist()
    want = evaluation.predictions["prediction"].to_numpy()

    server = spawn_predictor("--model_dir", str(trained_model.model_dir))
    server.wait_ready()
    v1 = np.asarray(server.post(V1, {"instances": rows}).json()["predictions"]).reshape(-1)
    records = [dict(zip(names, r, strict=True)) for r in rows]
    v1_named = np.asarray(server.post(V1, {"instances": records}).json()["predictions"]).reshape(-1)
    v2_request = {"inputs": [{"name": "features", "shape": [len(rows), len(names)], "datatype": "FP32",
                              "data": rows}]}
    v2 = np.asarray(server.post(V2, v2_request).json()["outputs"][0]["data"])
    for got in (v1, v1_named, v2):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)

    probe = card(trained_model.model_dir)["probe"]
    served = np.asarray(server.post(V1, {"instances": probe["inputs"]}).json()["predictions"]).reshape(-1)
    np.testing.assert_allclose(served, probe["savedmodel_outputs"], rtol=0, atol=EQUALITY_ATOL)
    assert server.stop() == 0
