"""``POST /v1/models/<name>:explain`` over real HTTP: exact additive attributions, and :predict's strictness.

The additivity tests use the really trained model on all 102 test rows; the strictness tests send every bad V1
body of the predict suite to both routes of the shared server and require the same answer.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from boston_model import card as fmt
from tests.kserve.test_predictor_strictness import CASES, MAX_BATCH, ROW, _chunked_past_the_limit

PREDICT = "/v1/models/boston-housing:predict"
EXPLAIN = "/v1/models/boston-housing:explain"


@pytest.fixture(scope="module")
def trained_server(trained_model, tmp_path_factory) -> Any:
    from tests.kserve.conftest import spawn

    server = spawn(tmp_path_factory.mktemp("explain"), "--model_dir", str(trained_model.model_dir))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _check_additive(trained_model, payload: dict, rows: np.ndarray, explanations: list[dict]) -> None:
    card = fmt.read_card(trained_model.model_dir)
    model = fmt.linear_model_from_card(card)
    assert len(explanations) == len(rows) == 102
    for explanation, row, expected in zip(explanations, rows, model.predict(rows), strict=True):
        assert list(explanation) == ["prediction", "baseline", "contributions"]
        assert list(explanation["contributions"]) == list(model.feature_names)
        total = sum(explanation["contributions"].values())
        assert abs(total - (explanation["prediction"] - explanation["baseline"])) <= 1e-9
        assert explanation["prediction"] == pytest.approx(expected, abs=1e-12)
        assert explanation["baseline"] == pytest.approx(card["baseline"], abs=1e-12)
        # Each contribution is w_i * (x_i - mean_i) in raw units.
        means = dict(zip(card["feature_names"], card["feature_means"], strict=True))
        for i, name in enumerate(model.feature_names):
            assert explanation["contributions"][name] == pytest.approx(
                model.weights[i] * (row[i] - means[name]), abs=1e-12)


@pytest.mark.slow
def test_explanations_add_up_on_every_test_row_v1_rows(trained_server, trained_model):
    names = fmt.read_card(trained_model.model_dir)["feature_names"]
    rows = trained_model.test[names].to_numpy(dtype=np.float64)
    response = trained_server.post(EXPLAIN, {"instances": rows.tolist()})
    assert response.status == 200 and response.headers["content-type"] == "application/json"
    payload = response.json()
    assert list(payload) == ["explanations"]
    _check_additive(trained_model, payload, rows, payload["explanations"])
    predicted = trained_server.post(PREDICT, {"instances": rows.tolist()}).json()["predictions"]
    assert [e["prediction"] for e in payload["explanations"]] == [p[0] for p in predicted]


@pytest.mark.slow
def test_explanations_add_up_on_every_test_row_named_features(trained_server, trained_model):
    names = fmt.read_card(trained_model.model_dir)["feature_names"]
    frame = trained_model.test[names]
    records = [dict(zip(names, map(float, row), strict=True)) for row in frame.to_numpy()]
    response = trained_server.post(EXPLAIN, {"instances": records})
    assert response.status == 200
    _check_additive(trained_model, response.json(), frame.to_numpy(dtype=np.float64),
                    response.json()["explanations"])
    columnar = trained_server.post(EXPLAIN, {"inputs": {n: frame[n].tolist() for n in names}})
    assert columnar.json() == response.json()


V1_CASES = [c for c in CASES if c[1].startswith("/v1/")]


@pytest.mark.parametrize(("path", "body", "status", "words"), [c[1:] for c in V1_CASES],
                         ids=[c[0] for c in V1_CASES])
def test_explain_refuses_what_predict_refuses_with_the_same_answer(predictor, path, body, status, words):
    explain_path = path.replace(":predict", ":explain")
    predicted, explained = predictor.post(path, body), predictor.post(explain_path, body)
    assert explained.status == predicted.status == status
    assert explained.json() == predicted.json() and words in explained.json()["error"]


def test_explain_takes_the_bodies_predict_takes(predictor):
    names = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]
    record = dict(zip(names, ROW, strict=True))
    bodies = [{"instances": [ROW, ROW]}, {"instances": [record]}, {"inputs": [ROW]},
              {"inputs": {"features": [ROW]}}, {"inputs": {n: [v] for n, v in record.items()}},
              {"instances": [{"features": ROW}]}, {"instances": [ROW], "signature_name": "serving_default"}]
    for body in bodies:
        predicted, explained = predictor.post(PREDICT, body), predictor.post(EXPLAIN, body)
        assert predicted.status == explained.status == 200, (body, explained.body)
        values = next(iter(predicted.json().values()))
        assert [e["prediction"] for e in explained.json()["explanations"]] == [v[0] for v in values]


def test_explain_has_the_same_limits(predictor):
    over = {"instances": [ROW] * (MAX_BATCH + 1)}
    assert predictor.post(EXPLAIN, over).status == 413
    assert predictor.post(EXPLAIN, {"instances": [ROW] * MAX_BATCH}).status == 200
    response = _chunked_past_the_limit(predictor.port, EXPLAIN)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    get = predictor.get(EXPLAIN)
    assert get.status == 405 and get.headers["allow"] == "POST"
    assert predictor.post("/v1/models/other:explain", {"instances": [ROW]}).status == 404


def test_a_card_without_training_means_cannot_explain_but_still_predicts(model_copy, spawn_predictor):
    card = json.loads((model_copy / fmt.CARD_FILE).read_text())
    card.pop("feature_means")
    (model_copy / fmt.CARD_FILE).write_text(json.dumps(card))
    server = spawn_predictor("--model_dir", str(model_copy))
    server.wait_ready()
    response = server.post(EXPLAIN, {"instances": [ROW]})
    assert response.status == 501 and "no training feature means" in response.json()["error"]
    assert server.post(EXPLAIN, {"instances": [ROW[:3]]}).status == 400  # a bad body is still a 400 first
    assert server.post(PREDICT, {"instances": [ROW]}).status == 200


@pytest.mark.parametrize("n_rows", [1, 50, 256, 257, 1000])  # one block, its edges and several blocks
def test_the_encoder_writes_what_orjson_writes_for_the_dicts(n_rows):
    import orjson

    from boston_predictor.explain import Explainer, as_dicts, encode_explanations, explanations
    from boston_predictor.spec import ModelSpec

    names = ("a%b", 'q"uote', "plain")  # JSON escaping and the format character survive
    model = fmt.LinearModel(names, np.array([1.5, -2.0, 1e-3]), 4.0)
    spec = ModelSpec("m", model, "y", "features", "serving_default", None, 100)
    card = {"feature_means": [1.0, 2.0, 3.0]}
    explainer = Explainer.from_card(card, spec)
    rows = np.random.default_rng(n_rows).normal(0, 1e3, (n_rows, 3))
    predictions, contributions = explanations(spec, explainer, rows)
    encoded = encode_explanations(explainer, predictions, contributions)
    assert encoded == orjson.dumps(as_dicts(spec, explainer, predictions, contributions))
    assert orjson.loads(encoded)["explanations"][0]["contributions"]["a%b"] == 1.5 * (rows[0, 0] - 1.0)
