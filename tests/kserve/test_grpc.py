"""V2 over gRPC: tritonclient.grpc and KServe's own gRPC client against the served model, and its refusals.

The predictor runs with ``--enable_grpc true`` (`grpc_predictor`). Expected predictions are the card's affine map
computed here with numpy, and REST's answers from the same server; gRPC must agree with both within 1e-9.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from kserve import InferenceGRPCClient, InferInput, InferRequest
from tests.kserve.conftest import MAX_BATCH, MODEL_NAME, Predictor
from tests.kserve.test_predictor_lifecycle import listening_addresses

FEATURES = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]
V2 = f"/v2/models/{MODEL_NAME}/infer"


@pytest.fixture(scope="module")
def card(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "boston_model.json").read_text())


def affine(card: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The card's map, computed independently of the server's code."""
    return x @ np.asarray(card["weights"], dtype=np.float64) + float(card["bias"])


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 100.0, (n, 13))


def rest_predictions(server: Predictor, x: np.ndarray, datatype: str) -> np.ndarray:
    body = {"inputs": [{"name": "features", "shape": list(x.shape), "datatype": datatype, "data": x.tolist()}]}
    return np.asarray(server.post(V2, body).json()["outputs"][0]["data"]).reshape(-1)


TRITON_CLIENT = Path(__file__).with_name("triton_grpc_client.py")


@pytest.fixture(scope="module")
def triton(grpc_predictor: Predictor) -> dict[str, Any]:
    """What tritonclient.grpc got from the server (in its own process: see `triton_grpc_client.py`)."""
    done = subprocess.run([sys.executable, str(TRITON_CLIENT), f"127.0.0.1:{grpc_predictor.grpc_port}", MODEL_NAME,
                           json.dumps(rows(5).tolist())], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture()
def stub(grpc_predictor: Predictor) -> Any:
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_predictor.grpc_port}")
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def ipv4(address: str) -> str:
    """An IPv4-mapped IPv6 address from /proc (gRPC listens on 127.0.0.1 through an IPv6 socket) as dotted IPv4."""
    if address.startswith("ipv6:0000000000000000FFFF0000"):
        packed = bytes.fromhex(address[-8:])[::-1]  # /proc prints each 32-bit word in host (little-endian) order
        return ".".join(str(b) for b in packed)
    return address


def test_binds_the_rest_address_only(grpc_predictor: Predictor) -> None:
    found = sorted(((ipv4(a), p) for a, p in listening_addresses(grpc_predictor.process.pid)), key=lambda a: a[1])
    assert found == sorted([("127.0.0.1", grpc_predictor.port), ("127.0.0.1", grpc_predictor.grpc_port)],
                           key=lambda a: a[1])


def test_tritonclient_health_and_metadata(triton: dict[str, Any], card: dict[str, Any]) -> None:
    assert triton["live"] and triton["ready"] and triton["model_ready"]
    assert triton["server"] == {"name": "kserve", "extensions": []}
    assert triton["inputs"] == card["feature_names"]
    assert triton["outputs"] == [[card["target"], "FP64", [-1, 1]]]
    assert triton["other_model_error"].startswith("StatusCode.NOT_FOUND")


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_tritonclient_one_tensor_matches_rest(triton: dict[str, Any], grpc_predictor: Predictor,
                                              card: dict[str, Any], datatype: str) -> None:
    x = rows(5)
    got = triton[datatype]
    assert got["shape"] == [5, 1] and got["dtype"] == "float64" and got["id"] == f"id-{datatype}"
    sent = x.astype(np.float32).astype(np.float64) if datatype == "FP32" else x
    np.testing.assert_allclose(got["data"], rest_predictions(grpc_predictor, x, datatype), rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["data"], affine(card, sent), rtol=0, atol=1e-9)


def test_tritonclient_per_feature_tensors_and_refusal(triton: dict[str, Any], card: dict[str, Any]) -> None:
    np.testing.assert_allclose(triton["per_feature"], affine(card, rows(5)), rtol=0, atol=1e-9)
    assert triton["wrong_shape_error"].startswith("StatusCode.INVALID_ARGUMENT")
    assert "shape must be [n, 13]" in triton["wrong_shape_error"]


@pytest.mark.parametrize("binary", [False, True], ids=["contents", "raw"])
def test_kserve_grpc_client_matches_rest(grpc_predictor: Predictor, card: dict[str, Any], binary: bool) -> None:
    x = rows(4, seed=2)

    async def infer() -> tuple[np.ndarray, np.ndarray, bool]:
        client = InferenceGRPCClient(f"127.0.0.1:{grpc_predictor.grpc_port}")
        try:
            one = InferInput("features", [4, 13], "FP64")
            one.set_data_from_numpy(x, binary_data=binary)
            first = await client.infer(InferRequest(model_name=MODEL_NAME, infer_inputs=[one], request_id="a"))
            per_feature = []
            for j, name in enumerate(FEATURES):
                tensor = InferInput(name, [4], "FP32")
                tensor.set_data_from_numpy(x[:, j].astype(np.float32), binary_data=binary)
                per_feature.append(tensor)
            second = await client.infer(InferRequest(model_name=MODEL_NAME, infer_inputs=per_feature,
                                                     request_id="b"))
            ready = await client.is_model_ready(MODEL_NAME)
            return first.outputs[0].as_numpy(), second.outputs[0].as_numpy(), ready
        finally:
            await client.close()

    fp64, fp32, ready = asyncio.run(infer())
    assert ready
    np.testing.assert_allclose(fp64.reshape(-1), rest_predictions(grpc_predictor, x, "FP64"), rtol=0, atol=1e-9)
    np.testing.assert_allclose(fp64.reshape(-1), affine(card, x), rtol=0, atol=1e-9)
    np.testing.assert_allclose(fp32.reshape(-1), rest_predictions(grpc_predictor, x, "FP32"), rtol=0, atol=1e-9)


def tensor(shape: list[int], values: list[float], datatype: str = "FP64", name: str = "features") -> Any:
    contents = {"FP64": {"fp64_contents": values}, "FP32": {"fp32_contents": values}}.get(datatype, {})
    return pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape,
                                                  contents=pb.InferTensorContents(**contents))


ROW = [0.1, 18.0, 2.31, 0.0, 0.5, 6.5, 65.0, 4.0, 1.0, 296.0, 15.0, 396.0, 5.0]
BAD_REQUESTS = {
    "wrong feature count": (pb.ModelInferRequest(model_name=MODEL_NAME, inputs=[tensor([1, 12], ROW[:12])]),
                            "shape must be [n, 13]"),
    "shape and data disagree": (pb.ModelInferRequest(model_name=MODEL_NAME, inputs=[tensor([2, 13], ROW)]),
                                "needs 26"),
    "rank 1": (pb.ModelInferRequest(model_name=MODEL_NAME, inputs=[tensor([13], ROW)]), "shape must be"),
    "negative shape": (pb.ModelInferRequest(model_name=MODEL_NAME, inputs=[tensor([-1, 13], ROW)]), "non-negative"),
    "NaN": (pb.ModelInferRequest(model_name=MODEL_NAME, inputs=[tensor([1, 13], [float("nan"), *ROW[1:]])]),
            "not finite"),
    "BYTES": (pb.ModelInferRequest(model_name=MODEL_NAME, inputs=[tensor([1, 13], [], "BYTES")]),
              "must be a number type"),
    "no inputs": (pb.ModelInferRequest(model_name=MODEL_NAME), "non-empty list"),
    "unknown output": (pb.ModelInferRequest(model_name=MODEL_NAME, inputs=[tensor([1, 13], ROW)],
                                            outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="y")]),
                       "unknown output"),
    "raw bytes not whole values": (pb.ModelInferRequest(
        model_name=MODEL_NAME, inputs=[pb.ModelInferRequest.InferInputTensor(name="f", datatype="FP64",
                                                                             shape=[1, 13])],
        raw_input_contents=[b"\0" * 103]), "not a whole number"),
    "raw count differs from inputs": (pb.ModelInferRequest(
        model_name=MODEL_NAME, inputs=[tensor([1, 13], ROW)], raw_input_contents=[b"", b""]), "raw_input_contents"),
    "raw and contents": (pb.ModelInferRequest(
        model_name=MODEL_NAME, inputs=[tensor([1, 13], ROW)], raw_input_contents=[np.zeros(13).tobytes()]),
        "as well as raw_input_contents"),
    "over the batch limit": (pb.ModelInferRequest(model_name=MODEL_NAME,
                                                  inputs=[tensor([MAX_BATCH + 1, 13], ROW * (MAX_BATCH + 1))]),
                             "over the limit"),
    "prediction overflows": (pb.ModelInferRequest(model_name=MODEL_NAME, inputs=[tensor([1, 13], [1.7e308] * 13)]),
                             "not finite"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_is_invalid_argument_with_a_message(stub: Any, case: str) -> None:
    request, words = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert words in caught.value.details()


def test_other_models_versions_and_the_repository(stub: Any) -> None:
    for call, request, code in (
        (stub.ModelInfer, pb.ModelInferRequest(model_name="other", inputs=[tensor([1, 13], ROW)]), "NOT_FOUND"),
        (stub.ModelInfer, pb.ModelInferRequest(model_name=MODEL_NAME, model_version="9",
                                               inputs=[tensor([1, 13], ROW)]), "NOT_FOUND"),
        (stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name=MODEL_NAME), "UNIMPLEMENTED"),
        (stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name=MODEL_NAME), "UNIMPLEMENTED"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=10)
        assert caught.value.code().name == code, caught.value.details()
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready


def test_message_over_the_body_limit_is_refused_by_grpc(stub: Any) -> None:
    big = pb.ModelInferRequest(model_name=MODEL_NAME, inputs=[pb.ModelInferRequest.InferInputTensor(
        name="f", datatype="FP64", shape=[20000, 13])], raw_input_contents=[np.zeros((20000, 13)).tobytes()])
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(big, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


_values = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5).map(float)


@st.composite
def infer_requests(draw: st.DrawFn) -> Any:
    tensors, raws = [], []
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 14))):
        shape = draw(st.sampled_from([[1, 13], [2, 13], [1], [2], [1, 1], [13], [0, 13]]) |
                     st.lists(st.integers(-3, 20), max_size=3))
        datatype = draw(st.sampled_from(["FP32", "FP64", "INT64", "INT32", "BOOL", "BYTES", "FP16", "X"]))
        name = draw(st.sampled_from(["features", *FEATURES, ""]))
        values = draw(st.lists(_values, max_size=30))
        if raw:
            tensors.append(pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape))
            raws.append(draw(st.binary(max_size=220)) if draw(st.booleans()) else np.asarray(values).tobytes())
        else:
            tensors.append(tensor(shape, values, datatype, name))
    return pb.ModelInferRequest(model_name=MODEL_NAME, id=draw(st.text(max_size=5)), inputs=tensors,
                                raw_input_contents=raws)


@settings(max_examples=150, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=infer_requests())
def test_no_request_is_an_internal_error(stub: Any, request: Any) -> None:
    try:
        response = stub.ModelInfer(request, timeout=10)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
        assert error.details() and "\n" not in error.details()
    else:
        assert len(response.raw_output_contents) == 1 and list(response.outputs[0].shape)[1:] == [1]


def test_errors_are_not_logged_and_sigterm_stops_both(grpc_predictor: Predictor, spawn_predictor: Any,
                                                      model_dir: Path) -> None:
    assert "Traceback" not in grpc_predictor.stderr() and " ERROR " not in grpc_predictor.stderr()
    from components.common.ports import free_port

    server = spawn_predictor("--model_dir", str(model_dir), "--enable_grpc", "true", "--grpc_port", str(free_port()))
    server.wait_ready()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(30) == 0


def test_grpc_port_in_use_is_one_line(predictor_command: list[str], model_dir: Path) -> None:
    import socket

    from components.common.ports import free_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run([*predictor_command, "--model_name", MODEL_NAME, "--model_dir", str(model_dir),
                               "--http_port", str(free_port()), "--enable_grpc", "true", "--grpc_port",
                               str(taken.getsockname()[1])], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "predictor: cannot start: gRPC cannot listen on 127.0.0.1:" in done.stderr
