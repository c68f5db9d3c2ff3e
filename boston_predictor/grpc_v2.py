"""V2 (Open Inference Protocol) over gRPC: KServe's generated service, answered by the same model and checks as REST.

KServe's own gRPC server binds ``[::]`` with no way to change it, answers a wrong shape with ``INTERNAL`` and logs
every client error with a traceback. This one serves the same service (``inference.GRPCInferenceService``, what
tritonclient.grpc and `kserve.InferenceGRPCClient` speak) on the ``--bind`` address:

* ``ModelInfer`` reads FP32/FP64 (and integer) tensors from ``contents`` or ``raw_input_contents``, as one
  ``[n, k]`` tensor or k per-feature tensors, into the JSON form `rows_from_v2` reads, so every check and limit is
  REST's; it answers one FP64 ``[n, 1]`` output in ``raw_output_contents`` (Triton's form, which both clients read);
* a refused request is ``INVALID_ARGUMENT`` (bad input), ``NOT_FOUND`` (another model or version) or ``UNAVAILABLE``
  (not ready), with REST's one-line message, and nothing is logged; only a bug is ``INTERNAL`` (and logged);
* messages are capped at ``--max_body_bytes`` (gRPC answers ``RESOURCE_EXHAUSTED`` above it), batches at
  ``--max_batch``;
* the model repository RPCs are ``UNIMPLEMENTED`` unless ``--enable_model_repository``.
"""

from __future__ import annotations

import logging
import sys
from concurrent import futures
from typing import TYPE_CHECKING, Any

import numpy as np
from grpc import StatusCode, aio
from kserve.errors import ModelNotFound, ModelNotReady
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from boston_predictor.errors import RequestError
from boston_predictor.protocol import rows_from_v2
from boston_predictor.rows import predict_rows
from boston_predictor.spec import OUTPUT_DATATYPE

if TYPE_CHECKING:
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension

    from boston_predictor.model import BostonHousingModel

log = logging.getLogger("kserve")

DEFAULT_GRPC_PORT = 8081  # KServe's
# Where each V2 datatype's values live in InferTensorContents, and how raw_input_contents encodes them.
CONTENTS_FIELDS = {
    "FP32": "fp32_contents", "FP64": "fp64_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents",
}
RAW_DTYPES = {
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
}
_STATUS_CODES = {404: StatusCode.NOT_FOUND, 503: StatusCode.UNAVAILABLE}  # every other refusal: INVALID_ARGUMENT


def request_as_dict(request: pb.ModelInferRequest) -> dict[str, Any]:
    """A ModelInferRequest in the JSON form `rows_from_v2` reads (data as flat lists of numbers)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise RequestError(400, f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs")
    inputs = []
    for i, tensor in enumerate(request.inputs):
        data: list[Any] = []
        if raw:
            if tensor.HasField("contents"):
                raise RequestError(400, f"inputs[{i}] has contents as well as raw_input_contents: send one")
            dtype = RAW_DTYPES.get(tensor.datatype)
            if dtype is not None:
                itemsize = np.dtype(dtype).itemsize
                if len(raw[i]) % itemsize:
                    raise RequestError(400, f"raw_input_contents[{i}] has {len(raw[i])} bytes, not a whole number "
                                            f"of {tensor.datatype[:10]} values")
                data = np.frombuffer(raw[i], dtype=dtype).tolist()
        else:
            field = CONTENTS_FIELDS.get(tensor.datatype)
            if field is not None:
                data = list(getattr(tensor.contents, field))
        inputs.append({"name": tensor.name, "shape": list(tensor.shape), "datatype": tensor.datatype, "data": data})
    payload: dict[str, Any] = {"inputs": inputs}
    if request.outputs:
        payload["outputs"] = [{"name": output.name} for output in request.outputs]
    return payload


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The V2 gRPC service for one model, on KServe's dataplane (health, metadata) and the model's request path.

    Args:
        model: The served model.
        dataplane: KServe's dataplane (the server's `StrictDataPlane`): readiness and metadata, as REST answers them.
        repository: KServe's model repository extension, or None when it is off.
    """

    def __init__(self, model: BostonHousingModel, dataplane: DataPlane,
                 repository: ModelRepositoryExtension | None) -> None:
        self.model = model
        self.dataplane = dataplane
        self.repository = repository

    async def ServerLive(self, request: pb.ServerLiveRequest, context: aio.ServicerContext) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: aio.ServicerContext) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=await self.dataplane.ready())

    async def ServerMetadata(self, request: pb.ServerMetadataRequest,
                             context: aio.ServicerContext) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**self.dataplane.metadata())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: aio.ServicerContext) -> pb.ModelReadyResponse:
        try:
            await self._check_name(request.name, request.version, context)
            return pb.ModelReadyResponse(ready=await self.dataplane.model_ready(request.name))
        except ModelNotFound as exc:
            await context.abort(StatusCode.NOT_FOUND, str(exc))

    async def ModelMetadata(self, request: pb.ModelMetadataRequest,
                            context: aio.ServicerContext) -> pb.ModelMetadataResponse:
        try:
            await self._check_name(request.name, request.version, context)
            return pb.ModelMetadataResponse(**await self.dataplane.model_metadata(request.name))
        except ModelNotFound as exc:
            await context.abort(StatusCode.NOT_FOUND, str(exc))

    async def ModelInfer(self, request: pb.ModelInferRequest, context: aio.ServicerContext) -> pb.ModelInferResponse:
        model = self.model
        spec = model.spec
        try:
            await self._check_name(request.model_name, request.model_version, context)
            if spec is None or not model.ready:
                raise RequestError(503, f"model {model.name!r} is not ready")
            rows, _ = rows_from_v2(request_as_dict(request), spec)
            predictions = predict_rows(spec, rows)
        except RequestError as exc:
            spec_metrics = spec.metrics if spec is not None else None
            if spec_metrics is not None:
                spec_metrics.count("grpc", exc.status)
            await context.abort(_STATUS_CODES.get(exc.status, StatusCode.INVALID_ARGUMENT), exc.message)
        spec.metrics.count("grpc", 200)
        output = pb.ModelInferResponse.InferOutputTensor(
            name=spec.output_name, datatype=OUTPUT_DATATYPE, shape=[len(predictions), 1]
        )
        return pb.ModelInferResponse(
            model_name=spec.name, model_version=spec.version or "", id=request.id, outputs=[output],
            raw_output_contents=[np.ascontiguousarray(predictions, dtype="<f8").tobytes()],
        )

    async def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest,
                                  context: aio.ServicerContext) -> pb.RepositoryModelLoadResponse:
        await self._check_repository(request.model_name, context)
        assert self.repository is not None
        try:
            await self.repository.load(request.model_name)
        except ModelNotReady as exc:
            await context.abort(StatusCode.UNAVAILABLE, str(exc))
        return pb.RepositoryModelLoadResponse(model_name=request.model_name, isLoaded=True)

    async def RepositoryModelUnload(self, request: pb.RepositoryModelUnloadRequest,
                                    context: aio.ServicerContext) -> pb.RepositoryModelUnloadResponse:
        await self._check_repository(request.model_name, context)
        assert self.repository is not None
        try:
            await self.repository.unload(request.model_name)
        except ModelNotFound as exc:
            await context.abort(StatusCode.NOT_FOUND, str(exc))
        return pb.RepositoryModelUnloadResponse(model_name=request.model_name, isUnloaded=True)

    async def _check_name(self, name: str, version: str, context: aio.ServicerContext) -> None:
        if name != self.model.name:
            await context.abort(StatusCode.NOT_FOUND, f"model {name[:100]!r} is not served here; this server "
                                                      f"serves {self.model.name!r}")
        served = self.model.spec.version if self.model.spec is not None else None
        if version and version != served:
            await context.abort(StatusCode.NOT_FOUND, f"model version {version[:60]!r} is not served here")

    async def _check_repository(self, name: str, context: aio.ServicerContext) -> None:
        if self.repository is None:
            await context.abort(StatusCode.UNIMPLEMENTED, "the model repository extension (load, unload) is off: "
                                                          "start the server with --enable_model_repository")
        if name != self.model.name:
            await context.abort(StatusCode.NOT_FOUND, f"model {name[:100]!r} is not served here")


class GRPCServer:
    """The gRPC server, bound to ``bind:port``; `start` serves until `stop` (what `kserve.ModelServer.stop` calls).

    Args:
        servicer: The service.
        bind: Address to listen on (the REST server's).
        port: Port to listen on.
        max_message_bytes: Largest request (and answer) message.
        grace_period: Seconds in-flight calls get to finish on stop.
    """

    def __init__(self, servicer: InferenceServicer, bind: str, port: int, max_message_bytes: int,
                 grace_period: float = 30) -> None:
        self.servicer = servicer
        self.address = f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}"
        self.max_message_bytes = max_message_bytes
        self.grace_period = grace_period
        self._server: aio.Server | None = None

    async def bind(self) -> None:
        """Listens on the address (before REST starts serving, so a port in use is one line, not a traceback)."""
        # Every handler is a coroutine on the event loop; the executor only runs grpc's own synchronous hooks.
        server = aio.server(futures.ThreadPoolExecutor(max_workers=1), options=[
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", max(self.max_message_bytes, 4 * 1024 * 1024)),
            ("grpc.so_reuseport", 0),  # a second server on the same port is an error, as for REST
        ])
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(self.servicer, server)
        try:
            server.add_insecure_port(self.address)
        except RuntimeError:
            print(f"predictor: cannot start: gRPC cannot listen on {self.address} (in use?)", file=sys.stderr,
                  flush=True)
            raise SystemExit(1) from None
        self._server = server

    async def start(self) -> None:
        if self._server is None:
            await self.bind()
        assert self._server is not None
        await self._server.start()
        log.info("gRPC (V2) listening on %s", self.address)
        await self._server.wait_for_termination()

    async def stop(self, sig: int | None = None) -> None:
        if self._server is not None:
            await self._server.stop(grace=self.grace_period)
