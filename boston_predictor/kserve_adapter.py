"""The one place that touches KServe's private names; `tests/kserve/test_kserve_adapter.py` fails if they move.

kserve 0.21 offers no public seam for three things this server needs, so they are done here and nowhere else:

* binding REST to an address other than the 0.0.0.0 `RESTServer.__init__` hard-codes, and serving an ASGI app of
  our own in front of KServe's (`ModelServer.start` builds its `RESTServer` inline): `PredictorServer.start`
  repeats that method's single-process branch, calling `_register_and_check_atleast_one_model_is_ready`, keeping
  the server in `_rest_server` (where `ModelServer.stop` looks) and running `_serve`;
* leaving out KServe's per-request timing middleware (`RESTServer._add_middlewares`), a third of throughput;
* reaching the FastAPI app, which KServe keeps as the module global `kserve.model_server.app`;
* adding a listening socket to the running uvicorn server (`RESTServer._server`) when a release hands the public
  socket over (`boston_predictor.handover`): uvicorn builds its protocol factory inside ``startup``, so the same
  factory is rebuilt here from the server's public ``config``, ``server_state`` and ``lifespan``.
* serving a gRPC server of our own (KServe's binds ``[::]``): kept in `_grpc_server`, where `ModelServer.stop`
  looks for the gRPC server to stop.

Everything else (flags, the dataplane, the model repository, signal handling) is KServe's public API.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kserve.model_server as kserve_model_server
from fastapi import FastAPI
from kserve.model import Model
from kserve.protocol.rest.server import RESTServer

from boston_predictor.front import ASGIApp
from boston_predictor.handover import Offer, receive_listener

KSERVE_VERSION = "0.21.0"  # the release these names were read from (setup.cfg pins it)

# What `tests/kserve/test_kserve_adapter.py` checks, and what no other module of the package may name.
PRIVATE_NAMES = (
    "_register_and_check_atleast_one_model_is_ready",
    "_rest_server",
    "_serve",
    "_add_middlewares",
    "kserve_model_server.app",
    "_rest_server._server",
    "_grpc_server",
)
log = logging.getLogger("kserve")


def kserve_app() -> FastAPI:
    """KServe's FastAPI application (a module global in kserve 0.21)."""
    return kserve_model_server.app


class BoundRESTServer(RESTServer):
    """KServe's REST server, bound to ``bind`` and serving ``front(kserve_app)`` instead of KServe's app alone.

    Args:
        bind: Address to listen on.
        front: Wraps KServe's app in the ASGI app uvicorn serves.
        configure_app: Called with KServe's app once its routes and handlers are in (error handlers go here).
        access_log: Keep KServe's per-request logging (uvicorn's access log and its timing middleware).
    """

    def __init__(self, *args: Any, bind: str, front: Callable[[ASGIApp], ASGIApp],
                 configure_app: Callable[[FastAPI], None], access_log: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # kserve 0.21 hard-codes host="0.0.0.0" in RESTServer.__init__ (kserve/protocol/rest/server.py). uvicorn
        # reads Config.host only when it binds, so replacing it here is the whole override.
        self.config.host = bind
        if not access_log:
            # uvicorn 0.54 logs a line per request whenever "uvicorn.access" has handlers (Config.access_log is
            # applied only in Config.__init__, before KServe configured logging), so drop them as uvicorn would.
            access_logger = logging.getLogger("uvicorn.access")
            access_logger.handlers = []
            access_logger.propagate = False
        self._front = front
        self._configure_app = configure_app
        self._log_requests = access_log

    def _add_middlewares(self, app: FastAPI) -> None:
        # KServe's middlewares only log: a timing line per request (kserve.trace) and the optional asgi-logger.
        if self._log_requests:
            super()._add_middlewares(app)

    def create_application(self) -> None:
        super().create_application()
        app = kserve_app()
        self._configure_app(app)
        # uvicorn loads Config.app when serving starts; an ASGI callable is used as is.
        self.config.app = self._front(app)


class PredictorServer(kserve_model_server.ModelServer):
    """`kserve.ModelServer` with a bind address and an ASGI front; REST and optionally our gRPC server, one process.

    Args:
        bind: Address the REST server listens on.
        front: Wraps KServe's app (see `BoundRESTServer`).
        configure_app: Called with KServe's app before serving.
        log_requests: Keep KServe's per-request logs.
        takeover: Handover path of a seamless local release: on SIGUSR1 the server takes the public listening
            socket offered there, accepts on it too, and offers it there itself (`boston_predictor.handover`).
        grpc_server: Built from this server once it is set up (its dataplane, its repository extension); served
            beside REST and stopped with it: an object with ``async bind()`` (run first), ``async start()`` and
            ``async stop(sig)``. None: REST only.
        **kwargs: `kserve.ModelServer` arguments.
    """

    def __init__(self, *, bind: str, front: Callable[[ASGIApp], ASGIApp], configure_app: Callable[[FastAPI], None],
                 log_requests: bool, takeover: Path | None = None,
                 grpc_server: Callable[[PredictorServer], Any] | None = None, **kwargs: Any) -> None:
        super().__init__(enable_grpc=False, workers=1, enable_latency_logging=log_requests, **kwargs)
        self.grpc_server = grpc_server
        self.bind = bind
        self.front = front
        self.configure_app = configure_app
        self.log_requests = log_requests
        self.takeover = takeover
        self._offer: Offer | None = None
        self._public: asyncio.AbstractServer | None = None

    def start(self, models: list[Model]) -> None:
        """Serves until SIGTERM/SIGINT; in-flight requests finish (uvicorn's graceful shutdown) before it returns."""
        self._register_and_check_atleast_one_model_is_ready(models)
        self._rest_server = BoundRESTServer(
            kserve_model_server.FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            access_log_format=self.access_log_format,
            workers=1,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
            bind=self.bind,
            front=self.front,
            configure_app=self.configure_app,
            access_log=self.log_requests,
        )
        self.servers.append(self._rest_server.start())
        if self.grpc_server is not None:
            self._grpc_server = self.grpc_server(self)  # ModelServer.stop stops it on SIGTERM
            self.servers.append(self._grpc_server.start())
        self.register_signal_handler()
        # Everything imported and loaded so far lives as long as the process; freezing it keeps the collector from
        # walking those ~150 000 objects (kserve pulls in kubernetes, pandas, ...) each time requests allocate enough
        # to trigger a full collection: it halves the mean time of a 10 000-row request and trims the tail.
        # No collection first: start-up leaves under a thousand unreachable objects, and collecting 300 000 to find
        # them costs 0.15 s of cold start.
        gc.freeze()
        gc.enable()  # off during start-up when started by `boston_predictor.__main__.main`
        # ModelServer.start uses asyncio.run, i.e. the default loop, whatever --event-loop says; honour it (uvloop).
        with asyncio.Runner(loop_factory=self._rest_server.config.get_loop_factory()) as runner:
            if self._grpc_server is not None:
                try:
                    runner.run(self._grpc_server.bind())
                except BaseException:
                    for pending in self.servers:  # created, never started
                        pending.close()
                    raise
            runner.run(self._serve_until_stopped())

    async def _serve_until_stopped(self) -> None:
        if self.takeover is not None:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGUSR1, lambda: loop.create_task(self.take_over()))
            loop.add_signal_handler(signal.SIGUSR2, self.hand_off)
        await self._serve()

    def hand_off(self) -> None:
        """Stops accepting on the public socket (SIGUSR2), before a release stops this server.

        Connections this server accepted are answered; new ones wait in the shared accept queue for the server that
        took over. A connection accepted in the instant before SIGTERM would otherwise be closed by uvicorn's
        shutdown before its request was read.
        """
        if self._public is not None:
            self._public.close()
        if self._offer is not None:
            self._offer.close()
        log.info("stopped accepting on the public listener (handed off)")

    async def take_over(self) -> None:
        """Accepts on the public socket offered at ``takeover`` too, then offers it there (SIGUSR1; idempotent)."""
        assert self.takeover is not None
        identity = f"{socket.gethostname()}/{os.getpid()}"  # a container's hostname is its id
        if self._offer is not None:  # already serving it: offer it again (a failed release hands it back)
            self._offer.close()
            self._offer = Offer(self._offer_listener, self.takeover, identity)
            return
        try:
            listener, offered_by = await asyncio.to_thread(receive_listener, self.takeover)
        except OSError as exc:
            log.error("cannot take over the public listener at %s: %s", self.takeover, exc)
            return
        server = self._rest_server._server
        config = server.config

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(config=config, server_state=server.server_state,
                                              app_state=server.lifespan.state)

        self._public = await asyncio.get_running_loop().create_server(protocol, sock=listener, backlog=config.backlog)
        server.servers.append(self._public)
        self._offer_listener = listener
        self._offer = Offer(listener, self.takeover, identity)
        log.info("took over the public listener %s from %s", listener.getsockname()[:2], offered_by)
