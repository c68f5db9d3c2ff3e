"""The ASGI front: answers V1 ``:predict`` and V2 ``/infer`` itself, before KServe's FastAPI app.

KServe's routing, pydantic models and middleware cost several times more than the model itself; everything else
(health, readiness, metadata, ``/metrics``) is still KServe's own app with its usual semantics. The front also
enforces the body limit for every request with a body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson

from boston_predictor.errors import RequestError

if TYPE_CHECKING:
    from boston_predictor.model import BostonHousingModel

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _ClientGone(Exception):
    """The client disconnected before sending its whole body."""


class PredictFront:
    """Answers V1 ``:predict`` and ``:explain`` and V2 ``/infer`` itself; hands every other request to KServe's app.

    It also enforces the body limit for every request with a body: 413 as soon as ``Content-Length`` or the bytes
    received so far exceed it, without reading the rest.

    Args:
        app: KServe's FastAPI application.
        model: The loaded model.
        max_body_bytes: Largest request body accepted.
    """

    def __init__(self, app: ASGIApp, model: BostonHousingModel, max_body_bytes: int) -> None:
        self.app = app
        self.model = model
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        protocol = None
        if path.startswith("/v1/models/") and path.endswith(":predict"):
            protocol, name = "v1", path[11:-8]
        elif path.startswith("/v1/models/") and path.endswith(":explain"):
            protocol, name = "explain", path[11:-8]
        elif path.startswith("/v2/models/") and path.endswith("/infer") and "/" not in path[11:-6]:
            protocol, name = "v2", path[11:-6]
        if protocol is not None:
            if method == "POST":
                await self._predict(protocol, name, scope, receive, send)
            else:
                await _send_bytes(send, 405, b'{"error":"use POST for predictions"}', extra=[(b"allow", b"POST")])
            return
        if method not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
        except RequestError as exc:
            await _send_json(send, exc.status, {"error": exc.message}, close=True)
            return
        except _ClientGone:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _predict(self, protocol: str, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        model = self.model
        close = False
        try:
            if name != model.name:
                raise RequestError(404, f"model {name[:100]!r} is not served here; this server serves {model.name!r}")
            if not model.ready:
                raise RequestError(503, f"model {model.name!r} is not ready")
            _check_content_type(scope)
            body = await self._read_body(scope, receive)
            handle = {"v1": model.handle_v1, "v2": model.handle_v2, "explain": model.handle_explain}[protocol]
            status, answer = 200, handle(body)
        except RequestError as exc:
            # 413 is decided before the body is read: close, so unread bytes are never parsed as a next request.
            close = exc.status == 413
            status, answer = exc.status, orjson.dumps({"error": exc.message})
        except _ClientGone:
            return
        if model.spec is not None:
            model.spec.metrics.count(protocol, status)
        await _send_bytes(send, status, answer, close)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_body_bytes
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise RequestError(400, "Content-Length is not a number") from None
                if declared > limit:
                    raise RequestError(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # chunked (or lying) clients: stop at the limit, do not read the rest
                raise RequestError(413, f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _check_content_type(scope: Scope) -> None:
    """JSON only (or no Content-Type at all, as many clients send); no compressed or binary-tensor bodies."""
    for key, value in scope["headers"]:
        if key == b"content-type" and value != b"application/json":
            media, _, params = value.decode("latin-1").partition(";")
            charset = params.strip().lower().replace(" ", "")
            if media.strip().lower() != "application/json" or charset not in ("", "charset=utf-8"):
                raise RequestError(415, f"unsupported Content-Type {media.strip()[:60]!r}: send application/json")
        elif key == b"content-encoding" and value.lower() != b"identity":
            raise RequestError(415, "compressed request bodies are not supported: send plain JSON")
        elif key == b"inference-header-content-length":
            raise RequestError(415, "the V2 binary tensor extension is not supported: send JSON data")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body to the inner app, then falls back to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_bytes(
    send: Send, status: int, body: bytes, close: bool = False, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *(extra or ())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, payload: Any, close: bool = False) -> None:
    await _send_bytes(send, status, orjson.dumps(payload), close)
