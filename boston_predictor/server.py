"""Server wiring: the loaded model behind the ASGI front on KServe's ModelServer, with the project's error bodies."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from starlette.exceptions import HTTPException as StarletteHTTPException

from boston_model.errors import BadInput
from boston_predictor.front import PredictFront
from boston_predictor.grpc_v2 import GRPCServer, InferenceServicer
from boston_predictor.kserve_adapter import PredictorServer
from boston_predictor.model import BostonHousingModel

log = logging.getLogger("kserve")


@dataclass(frozen=True)
class ServeOptions:
    """How the REST server runs (the CLI's flags, KServe's and ours)."""

    http_port: int
    bind: str
    max_body_bytes: int
    log_requests: bool = False
    enable_docs_url: bool = False
    access_log_format: str | None = None
    event_loop: str = "auto"
    timeout_keep_alive: int = 65
    takeover: Path | None = None
    model_repository: bool = False
    grpc_port: int | None = None  # None: no gRPC


class ServedModels(ModelRepository):
    """KServe's model registry holding the one served model; ``load`` (the repository extension) loads it again.

    Stock KServe's registry cannot load a model it did not start with, so after an unload its ``load`` answers 503
    for good; here it re-reads the model from where it came from (and self-checks it) before it is ready again.
    """

    def __init__(self, model: BostonHousingModel) -> None:
        super().__init__()
        self.served = model

    def load(self, name: str) -> bool:
        if name != self.served.name:
            raise ModelNotFound(name)
        if self.get_model(name) is None:
            try:
                self.served.load()
            except BadInput as exc:
                raise ModelNotReady(name, str(exc)) from None
            self.update(self.served)
        return self.served.ready


class StrictDataPlane(DataPlane):
    """KServe's dataplane, with a 400 for every request it cannot decode, and metadata and readiness that tell the
    truth.

    Stock KServe answers some malformed requests with a 500 and the raw exception (a binary body whose JSON header
    lacks ``inputs``, a non-numeric ``Inference-Header-Content-Length``, binary data shorter than its shape). Those
    are the client's errors: here they are `InvalidInput`, KServe's own 400, with one line naming the problem.
    Stock server metadata always lists ``model_repository_extension``, and server readiness is always true, even
    after the model was unloaded; here the extension is listed only when served, and the server is ready only while
    every registered model is (and there is one).

    Args:
        model_registry: The registry (`ServedModels`).
        repository: Whether the model repository extension is served.
    """

    def __init__(self, model_registry: ModelRepository, repository: bool) -> None:
        super().__init__(model_registry=model_registry)
        self.repository = repository

    def metadata(self) -> dict[str, Any]:
        metadata = super().metadata()
        if not self.repository:
            metadata["extensions"] = [e for e in metadata["extensions"] if e != "model_repository_extension"]
        return metadata

    async def ready(self) -> bool:
        models = self.model_registry.get_models()
        if not models:
            return False
        for name in models:
            if not await self.model_registry.is_model_ready(name):
                return False
        return await super().ready()

    async def model_metadata(self, model_name: str) -> dict[str, Any]:
        metadata = await super().model_metadata(model_name)
        model = self.get_model_from_registry(model_name)
        version = getattr(getattr(model, "spec", None), "version", None)
        if version:
            metadata["versions"] = [version]
        return metadata

    def decode(self, body: Any, headers: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().decode(body, headers, *args, **kwargs)
        except (InvalidInput, HTTPException):
            raise
        except KeyError as exc:
            raise InvalidInput(f"the request has no {str(exc.args[0])[:40]!r} field") from None
        except (ValueError, TypeError, IndexError, OverflowError) as exc:
            detail = " ".join(str(exc).split())[:160]
            raise InvalidInput(f"the request cannot be decoded: {detail or type(exc).__name__}") from None


def install_error_handlers(app: FastAPI) -> None:
    """Makes KServe's app answer its own errors as ``{"error": ...}`` without exception text or tracebacks."""

    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"invalid request: {where} {first.get('msg', '')}".strip()}, status_code=422)

    def kserve_error(status: int) -> Any:
        # KServe's handlers log every client error at ERROR with a traceback; these answer the same status, silently.
        async def handler(_: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"error": " ".join(str(exc).split())[:300]}, status_code=status)
        return handler

    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        # KServe's default handler returns the exception's type and text; that can carry paths. Log it instead.
        log.error("unhandled error while serving a request", exc_info=exc)
        return JSONResponse({"error": "internal server error"}, status_code=500)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    for error, status in ((InvalidInput, 400), (UnsupportedProtocol, 400), (ModelNotFound, 404),
                          (ModelNotReady, 503), (ServerNotReady, 503), (ServerNotLive, 503)):
        app.add_exception_handler(error, kserve_error(status))
    # InferenceError (the model failed) and NotImplementedError stay 5xx; they go through internal_error's log line.
    app.add_exception_handler(InferenceError, internal_error)
    app.add_exception_handler(Exception, internal_error)


def build_server(model: BostonHousingModel, options: ServeOptions) -> PredictorServer:
    """KServe's ModelServer for a loaded model; ``.start([model])`` serves until SIGTERM (in-flight requests finish).

    Building it configures KServe's logging, so log lines meant for the server's log come after this call.
    """
    server = PredictorServer(
        http_port=options.http_port,
        bind=options.bind,
        front=lambda app: PredictFront(app, model, options.max_body_bytes, options.model_repository),
        configure_app=install_error_handlers,
        log_requests=options.log_requests,
        enable_docs_url=options.enable_docs_url,
        access_log_format=options.access_log_format,
        event_loop=options.event_loop,
        timeout_keep_alive=options.timeout_keep_alive,
        takeover=options.takeover,
        registered_models=ServedModels(model),
        grpc_server=None if options.grpc_port is None else lambda built: GRPCServer(
            InferenceServicer(model, built.dataplane, built.model_repository_extension if options.model_repository
                              else None),
            options.bind, options.grpc_port, options.max_body_bytes, built.grace_period,
        ),
    )
    # A public attribute: ModelServer builds its REST server (and so the routes) from it when it starts.
    server.dataplane = StrictDataPlane(server.registered_models, options.model_repository)
    return server
