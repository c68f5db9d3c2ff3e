"""Server wiring: the loaded model behind the ASGI front on KServe's ModelServer, with the project's error bodies."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from boston_predictor.front import PredictFront
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


def install_error_handlers(app: FastAPI) -> None:
    """Makes KServe's app answer its own errors as ``{"error": ...}`` without exception text or tracebacks."""

    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"invalid request: {where} {first.get('msg', '')}".strip()}, status_code=422)

    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        # KServe's default handler returns the exception's type and text; that can carry paths. Log it instead.
        log.error("unhandled error while serving a request", exc_info=exc)
        return JSONResponse({"error": "internal server error"}, status_code=500)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)


def build_server(model: BostonHousingModel, options: ServeOptions) -> PredictorServer:
    """KServe's ModelServer for a loaded model; ``.start([model])`` serves until SIGTERM (in-flight requests finish).

    Building it configures KServe's logging, so log lines meant for the server's log come after this call.
    """
    return PredictorServer(
        http_port=options.http_port,
        bind=options.bind,
        front=lambda app: PredictFront(app, model, options.max_body_bytes),
        configure_app=install_error_handlers,
        log_requests=options.log_requests,
        enable_docs_url=options.enable_docs_url,
        access_log_format=options.access_log_format,
        event_loop=options.event_loop,
        timeout_keep_alive=options.timeout_keep_alive,
    )
