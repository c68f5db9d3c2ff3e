"""KServe's model repository extension (load, unload): off by default, and truthful readiness when turned on.

Stock KServe 0.21 serves ``POST /v2/repository/models/NAME/unload`` to anyone who reaches the port, lists the
extension in its server metadata, and keeps answering ready after an unload while every prediction is a 503.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.kserve.conftest import MODEL_NAME, Predictor

V1 = f"/v1/models/{MODEL_NAME}:predict"
ROW = [0.1, 18.0, 2.31, 0.0, 0.5, 6.5, 65.0, 4.0, 1.0, 296.0, 15.0, 396.0, 5.0]
UNLOAD = f"/v2/repository/models/{MODEL_NAME}/unload"
LOAD = f"/v2/repository/models/{MODEL_NAME}/load"


def test_off_by_default(predictor: Predictor) -> None:
    assert "model_repository_extension" not in predictor.get("/v2").json()["extensions"]
    for path in (UNLOAD, LOAD, "/v2/repository/index"):
        response = predictor.post(path, None)
        assert response.status == 404, response.body
        assert "--enable_model_repository" in response.json()["error"]
    assert predictor.get("/v2/health/ready").status == 200
    assert predictor.post(V1, {"instances": [ROW]}).status == 200


def test_on_readiness_follows_unload_and_load(model_dir: Path, spawn_predictor: Callable[..., Predictor]) -> None:
    server = spawn_predictor("--model_dir", str(model_dir), "--enable_model_repository")
    server.wait_ready()
    assert "model_repository_extension" in server.get("/v2").json()["extensions"]
    before = server.post(V1, {"instances": [ROW]}).json()

    assert server.post(UNLOAD, None).status == 200
    assert server.get("/v2/health/ready").status == 503  # stock KServe: 200, while every prediction is a 503
    assert server.get(f"/v2/models/{MODEL_NAME}/ready").status == 404
    assert server.post(V1, {"instances": [ROW]}).status == 503
    assert server.post(UNLOAD, None).status == 404  # already gone
    assert server.post("/v2/repository/models/other/load", None).status == 404  # stock: 503

    assert server.post(LOAD, None).status == 200  # read again from --model_dir and self-checked
    assert server.get("/v2/health/ready").status == 200
    assert server.get(f"/v2/models/{MODEL_NAME}/ready").json() == {"name": MODEL_NAME, "ready": True}
    assert server.post(V1, {"instances": [ROW]}).json() == before
    assert "Traceback" not in server.stderr()
