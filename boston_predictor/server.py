"""Server wiring: the loaded model behind the ASGI front on KServe's ModelServer, with the project's error bodies."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import InvalidInput
from kserve.protocol.dataplane import DataPlane
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
    takeover: Path | None = None


class StrictDataPlane(DataPlane):
    """KServe's dataplane, with a 400 for every request it cannot decode.

    Stock KServe answers some malformed requests with a 500 and the raw exception (a binary body whose JSON header
    lacks ``inputs``, a non-numeric ``Inference-Header-Content-Length``, binary data shorter than its shape). Those
    are the client's errors: here they are `InvalidInput`, KServe's own 400, with one line naming the problem.
    """

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
    server = PredictorServer(
        http_port=options.http_port,
        bind=options.bind,
        front=lambda app: PredictFront(app, model, options.max_body_bytes),
        configure_app=install_error_handlers,
        log_requests=options.log_requests,
        enable_docs_url=options.enable_docs_url,
        access_log_format=options.access_log_format,
        event_loop=options.event_loop,
        timeout_keep_alive=options.timeout_keep_alive,
        takeover=options.takeover,
    )
    # A public attribute: ModelServer builds its REST server (and so the routes) from it when it starts.
    server.dataplane = StrictDataPlane(model_registry=server.registered_models)
    return server
