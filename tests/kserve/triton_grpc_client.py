"""tritonclient.grpc against a served model, in its own process; prints what it got as one JSON object.

tritonclient and KServe each register the V2 service's messages (``inference.*``) in protobuf's default pool, so the
two cannot be imported into one process: `test_grpc.py` runs this with the test's interpreter. Run::

    python tests/kserve/triton_grpc_client.py HOST:PORT MODEL_NAME ROWS_JSON
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

FEATURES = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]


def error_of(call: Any) -> str | None:
    try:
        call()
    except InferenceServerException as exc:
        return f"{exc.status()} {exc.message()}"
    return None


def main(address: str, model: str, rows_json: str) -> dict[str, Any]:
    x = np.asarray(json.loads(rows_json), dtype=np.float64)
    client = triton_grpc.InferenceServerClient(address)
    server = client.get_server_metadata()
    metadata = client.get_model_metadata(model)
    out: dict[str, Any] = {
        "live": client.is_server_live(), "ready": client.is_server_ready(), "model_ready": client.is_model_ready(model),
        "server": {"name": server.name, "extensions": list(server.extensions)},
        "inputs": [t.name for t in metadata.inputs],
        "outputs": [[t.name, t.datatype, list(t.shape)] for t in metadata.outputs],
    }
    output_name = metadata.outputs[0].name
    for datatype, dtype in (("FP32", np.float32), ("FP64", np.float64)):
        tensor = triton_grpc.InferInput("features", list(x.shape), datatype)
        tensor.set_data_from_numpy(x.astype(dtype))  # tritonclient sends raw_input_contents
        result = client.infer(model, [tensor], request_id=f"id-{datatype}")
        got = result.as_numpy(output_name)
        out[datatype] = {"shape": list(got.shape), "dtype": str(got.dtype), "data": got.reshape(-1).tolist(),
                         "id": result.get_response().id}
    tensors = []
    for j, name in enumerate(FEATURES):
        tensor = triton_grpc.InferInput(name, [len(x), 1], "FP64")
        tensor.set_data_from_numpy(x[:, j:j + 1].copy())
        tensors.append(tensor)
    out["per_feature"] = client.infer(model, tensors).as_numpy(output_name).reshape(-1).tolist()
    wrong = triton_grpc.InferInput("features", [len(x), 12], "FP64")
    wrong.set_data_from_numpy(x[:, :12].copy())
    out["wrong_shape_error"] = error_of(lambda: client.infer(model, [wrong]))
    out["other_model_error"] = error_of(lambda: client.get_model_metadata("other"))
    client.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
