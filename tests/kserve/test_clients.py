"""The platform's real clients against the served model: KServe's own REST client and tritonclient, JSON and binary.

Each call goes over real HTTP to the shared predictor process; answers are checked against the shared prediction
path (the one evaluate uses), with FP32 data read as float32 values, as every V2 server reads them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from kserve.protocol.infer_type import InferInput, InferRequest

from boston_model.card import load_linear_model
from kserve import InferenceRESTClient, RESTConfig

MODEL = "boston-housing"


def probe(model_dir: Path, n: int = 5) -> np.ndarray:
    """The first ``n`` probe rows of the model card."""
    return np.asarray(json.loads((model_dir / "boston_model.json").read_text())["probe"]["inputs"][:n])


def expected(model_dir: Path, rows: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """The card's folded map applied by hand (not the server's LinearModel.predict) to ``rows`` read as ``dtype``."""
    card = json.loads((model_dir / "boston_model.json").read_text())
    return rows.astype(dtype).astype(np.float64) @ np.asarray(card["weights"]) + card["bias"]


def kserve_call(protocol: str, base_url: str, data: Any) -> Any:
    async def call() -> Any:
        async with InferenceRESTClient(RESTConfig(protocol=protocol, retries=0, timeout=10)) as client:
            return await client.infer(base_url, data, model_name=MODEL)

    return asyncio.run(call())


def test_kserve_client_v1(predictor: Any, model_dir: Path) -> None:
    rows = probe(model_dir)
    answer = kserve_call("v1", predictor.url, {"instances": rows.tolist()})
    np.testing.assert_allclose(np.asarray(answer["predictions"]).reshape(-1), expected(model_dir, rows),
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_kserve_client_v2(predictor: Any, model_dir: Path, binary: bool, datatype: str) -> None:
    rows = probe(model_dir)
    dtype = np.float32 if datatype == "FP32" else np.float64
    tensor = InferInput("features", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows.astype(dtype), binary_data=binary)
    request = InferRequest(MODEL, [tensor], request_id="client-1",
                           parameters={"binary_data_output": True} if binary else None)
    answer = kserve_call("v2", predictor.url, request)
    assert answer.id == "client-1" and answer.model_name == MODEL
    (output,) = answer.outputs
    assert output.name == "MEDV" and output.datatype == "FP64" and list(output.shape) == [len(rows), 1]
    np.testing.assert_allclose(output.as_numpy().reshape(-1), expected(model_dir, rows, dtype), rtol=0, atol=1e-9)


def test_kserve_client_v2_error_is_a_400_naming_the_problem(predictor: Any) -> None:
    tensor = InferInput("features", [1, 12], "FP32")
    tensor.set_data_from_numpy(np.ones((1, 12), dtype=np.float32), binary_data=True)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        kserve_call("v2", predictor.url, InferRequest(MODEL, [tensor]))
    assert caught.value.response.status_code == 400
    assert "must be [n, 13]" in caught.value.response.json()["error"]


@pytest.fixture()
def triton_client(predictor: Any) -> Any:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{predictor.port}", connection_timeout=10,
                                          network_timeout=10)
    yield client
    client.close()


def test_tritonclient_health_and_metadata(triton_client: Any, model_dir: Path) -> None:
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert triton_client.is_model_ready(MODEL)
    metadata = triton_client.get_model_metadata(MODEL)
    assert [i["name"] for i in metadata["inputs"]] == list(load_linear_model(model_dir).feature_names)
    assert [o["name"] for o in metadata["outputs"]] == ["MEDV"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_one_tensor(triton_client: Any, model_dir: Path, binary: bool) -> None:
    rows = probe(model_dir).astype(np.float32)
    tensor = triton.InferInput("features", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    output = triton.InferRequestedOutput("MEDV", binary_data=binary)
    result = triton_client.infer(MODEL, [tensor], outputs=[output], request_id="t-1")
    assert result.get_response()["id"] == "t-1"
    np.testing.assert_allclose(result.as_numpy("MEDV").reshape(-1), expected(model_dir, rows), rtol=0, atol=1e-9)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_inputs_built_from_metadata(triton_client: Any, model_dir: Path, binary: bool) -> None:
    """What a generic V2 client does: one input per metadata entry, its datatype and shape, no outputs named."""
    rows = probe(model_dir)
    metadata = triton_client.get_model_metadata(MODEL)
    inputs = []
    for j, spec in enumerate(metadata["inputs"]):
        tensor = triton.InferInput(spec["name"], [len(rows), 1], spec["datatype"])
        tensor.set_data_from_numpy(rows[:, j:j + 1].astype(np.float64), binary_data=binary)
        inputs.append(tensor)
    result = triton_client.infer(MODEL, inputs)  # tritonclient asks for binary outputs by default
    (output,) = result.get_response()["outputs"]
    np.testing.assert_allclose(result.as_numpy(output["name"]).reshape(-1), expected(model_dir, rows),
                               rtol=0, atol=1e-9)
