"""A load generator for V2 ``ModelInfer`` over gRPC (wrk speaks HTTP/1.1 only): the gRPC rows of the serving bench.

``connections`` channels (one TCP connection each), each with one call in flight at a time, for ``seconds``; the
request is serialized once and answers are not decoded, so the generator spends its time on the transport, as wrk
does. The request is what tritonclient sends: one ``[rows, 13]`` FP32 tensor in ``raw_input_contents``. Prints one
JSON object: calls, errors, seconds and every call's latency in ms. Run::

    python bench/serving/grpc_load.py 127.0.0.1:8081 boston-housing --connections 16 --seconds 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import grpc
import numpy as np
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

METHOD = "/inference.GRPCInferenceService/ModelInfer"
ROW = [0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98]


def request_bytes(model: str, rows: int) -> bytes:
    tensor = pb.ModelInferRequest.InferInputTensor(name="features", datatype="FP32", shape=[rows, len(ROW)])
    data = np.asarray([ROW] * rows, dtype="<f4").tobytes()
    return pb.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=[data]).SerializeToString()


async def connection(address: str, payload: bytes, deadline: float, latencies: list[float], errors: list[int]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD)  # bytes in, bytes out
        await asyncio.wait_for(channel.channel_ready(), 30)  # a server that never answers fails the run
        while (began := time.perf_counter()) < deadline:
            try:
                answer = await call(payload, timeout=10)
                if not answer:
                    errors[0] += 1
            except grpc.aio.AioRpcError:
                errors[0] += 1
            latencies.append((time.perf_counter() - began) * 1000)


async def run(address: str, model: str, connections: int, seconds: float, rows: int) -> dict[str, object]:
    payload = request_bytes(model, rows)
    latencies: list[float] = []
    errors = [0]
    began = time.perf_counter()
    deadline = began + seconds
    await asyncio.gather(*(connection(address, payload, deadline, latencies, errors) for _ in range(connections)))
    return {"calls": len(latencies), "errors": errors[0], "seconds": time.perf_counter() - began,
            "latencies_ms": [round(v, 4) for v in latencies]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address")
    parser.add_argument("model")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rows", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.address, args.model, args.connections, args.seconds, args.rows))))


if __name__ == "__main__":
    main()
