"""The ASGI front: answers V1 ``:predict`` and V2 ``/infer`` itself, before KServe's FastAPI app.

KServe's routing, pydantic models and middleware cost several times more than the model itself, so the common
requests (JSON V1, JSON V2 with FP32/FP64 tensors) never reach them. Every request the fast path does not fully own
(the V2 binary tensor extension, extra keys such as the ``model_name`` KServe's client sends, parameters, other
numeric datatypes) is handed, body and all, to KServe's app, whose dataplane decodes it, calls
`BostonHousingModel.predict` and encodes the answer as stock KServe does. Everything else (health, readiness,
metadata, ``/metrics``) is KServe's app too. The front enforces the body limit for every request with a body, and
makes sure the client reads the 413 (see `PredictFront._refuse`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson

from boston_predictor.errors import RequestError
from boston_predictor.protocol import NotOwned

if TYPE_CHECKING:
    from boston_predictor.model import BostonHousingModel

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("kserve")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JSON_HEADERS = [(b"content-type", b"application/json")]
# After a 413 the rest of the body is read and thrown away, so the kernel never resets a connection that still
# holds unread bytes (a client still writing would see ECONNRESET instead of the answer). Bounded: at most this many
# bytes, this long in all, and no longer than the idle time between two chunks; past a bound the connection closes.
DRAIN_MAX_BYTES = 256 * 1024 * 1024
DRAIN_MAX_S = 60.0
DRAIN_IDLE_S = 2.0


class _ClientGone(Exception):
    """The client disconnected before sending its whole body."""


class PredictFront:
    """Answers V1 ``:predict`` and ``:explain`` and V2 ``/infer`` itself, delegates what it does not own, and caps
    every body.

    Args:
        app: KServe's FastAPI application.
        model: The loaded model.
        max_body_bytes: Largest request body accepted.
        repository: Serve KServe's model repository extension (``/v2/repository/...``: load, unload); off, its
            routes answer 404.
    """

    def __init__(self, app: ASGIApp, model: BostonHousingModel, max_body_bytes: int, repository: bool = False) -> None:
        self.app = app
        self.model = model
        self.max_body_bytes = max_body_bytes
        self.repository = repository

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        refusal = self._refusal(path)
        if refusal is not None:
            # Read (and cap) the body first, as for any route: a client still writing must read the answer.
            if method in _BODY_METHODS:
                try:
                    await self._read_body(scope, receive)
                except RequestError as exc:
                    if exc.status == 413:
                        await self._refuse(exc, receive, send)
                        return
                    refusal = (exc.status, exc.message)
                except _ClientGone:
                    return
            await _send_json(send, refusal[0], {"error": refusal[1]})
            return
        if path.startswith("/v2/models/") and "/versions/" in path:
            path = self._unversioned(path) or path
            scope = {**scope, "path": path, "raw_path": path.encode()}
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
        if path.startswith("/v2/"):
            send = _without_nulls(send)  # KServe's pydantic answers carry null for absent optional keys
        if method not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
        except RequestError as exc:
            if exc.status == 413:
                await self._refuse(exc, receive, send)
            else:
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
            binary = _check_content_type(scope, "v2" if protocol == "v2" else "v1")  # :explain takes V1 bodies
            try:
                body = await self._read_body(scope, receive)
            except RequestError as exc:
                if exc.status != 413:
                    raise
                if model.spec is not None:  # over the body limit: refused while the client may still be writing
                    model.spec.metrics.count(protocol, 413)
                await self._refuse(exc, receive, send)
                return
            if binary:
                raise NotOwned
            handle = {"v1": model.handle_v1, "v2": model.handle_v2, "explain": model.handle_explain}[protocol]
            status, answer = 200, handle(body)
        except NotOwned:
            # KServe's dataplane, then BostonHousingModel.predict; a JSON body without Content-Type is labelled so.
            delegated = scope if binary else _labelled_json(scope)
            await self.app(delegated, _replay(body, receive), _without_nulls(send) if protocol == "v2" else send)
            return
        except RequestError as exc:
            # A 413 for too many rows comes after the whole body was read; close anyway, as for every 413.
            close = exc.status == 413
            status, answer = exc.status, orjson.dumps({"error": exc.message})
        except _ClientGone:
            return
        except Exception:
            # A bug, not the client's doing: one JSON 500 (never plain text), the traceback in the log.
            log.exception("unhandled error while answering %s %s", method_of(scope), scope["path"][:200])
            status, answer, close = 500, b'{"error":"internal server error"}', True
        if model.spec is not None:
            model.spec.metrics.count(protocol, status)
        await _send_bytes(send, status, answer, close)

    def _refusal(self, path: str) -> tuple[int, str] | None:
        """The 404 for a route that is not served here (a version other than the served one, the repository
        extension when it is off, another model's load/unload), else None."""
        if path.startswith("/v2/models/") and "/versions/" in path and self._unversioned(path) is None:
            version = path.partition("/versions/")[2].partition("/")[0]
            spec = self.model.spec
            served = f"version {spec.version!r}" if spec is not None and spec.version else "no numbered version"
            return 404, f"model version {version[:60]!r} is not served here; this server serves {served}"
        if path.startswith("/v2/repository"):
            if not self.repository:
                return 404, ("the model repository extension (load, unload) is off: start the server with "
                             "--enable_model_repository to serve it")
            name = path.removeprefix("/v2/repository/models/").rpartition("/")[0]
            if path.startswith("/v2/repository/models/") and name != self.model.name:
                # KServe's registry answers an unknown name's load with a 503 ("not ready"): it is the client's 404.
                return 404, f"model {name[:100]!r} is not served here; this server serves {self.model.name!r}"
        return None

    def _unversioned(self, path: str) -> str | None:
        """``/v2/models/NAME/versions/V[/rest]`` as ``/v2/models/NAME[/rest]`` when V is the served version."""
        head, _, tail = path.partition("/versions/")
        version, _, rest = tail.partition("/")
        spec = self.model.spec
        if spec is None or not spec.version or version != spec.version:
            return None
        return head + (f"/{rest}" if rest else "")

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_body_bytes
        declared = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise RequestError(400, "Content-Length is not a number") from None
                if declared > limit:
                    raise RequestError(413, f"request body of {declared} bytes is over the limit of {limit} bytes",
                                       declared)
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # chunked (or lying) clients: stop keeping the body at the limit
                raise RequestError(413, f"request body is over the limit of {limit} bytes", declared)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _refuse(self, exc: RequestError, receive: Receive, send: Send) -> None:
        """Sends the 413 at once, then reads and discards the rest of the body (bounded) before closing.

        A client that writes its whole body before reading (Python's http.client, most SDKs) only reads the answer
        once it has sent everything; closing with its bytes unread would reset the connection under it.
        """
        body = orjson.dumps({"error": exc.message})
        headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        if exc.declared is None or exc.declared <= DRAIN_MAX_BYTES:
            await _discard_body(receive)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _discard_body(receive: Receive) -> None:
    """Reads the request body to its end and drops it, within `DRAIN_MAX_BYTES`, `DRAIN_MAX_S` and `DRAIN_IDLE_S`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_MAX_S
    drained = 0
    while drained <= DRAIN_MAX_BYTES:
        wait = min(DRAIN_IDLE_S, deadline - loop.time())
        if wait <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), wait)
        except TimeoutError:
            return
        if message["type"] == "http.disconnect":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _check_content_type(scope: Scope, protocol: str) -> bool:
    """Whether the body uses the V2 binary tensor extension; raises 415 for bodies neither path reads.

    V1 reads JSON, or a body without Content-Type (as KServe's V1 endpoint does). V2 reads any JSON media type,
    binary tensor bodies (``Inference-Header-Content-Length``, decoded by KServe's dataplane) and, as JSON, a body
    without Content-Type: tritonclient sends its JSON requests so, and KServe 0.21's V2 endpoint refuses them.
    """
    binary = False
    media: str | None = None  # None: no Content-Type header
    for key, value in scope["headers"]:
        if key == b"content-type":
            if value == b"application/json":  # the common case, without decoding
                media = "application/json"
                continue
            media, _, params = value.decode("latin-1").lower().partition(";")
            media = media.strip()
            charset = params.strip().replace(" ", "")
            if protocol == "v1" and (media != "application/json" or charset not in ("", "charset=utf-8")):
                raise RequestError(415, f"unsupported Content-Type {media[:60]!r}: send application/json")
        elif key == b"content-encoding" and value.lower() != b"identity":
            raise RequestError(415, "compressed request bodies are not supported: send plain JSON")
        elif key == b"inference-header-content-length" and protocol == "v2":
            binary = True
    if protocol == "v2" and not binary and media is not None and media != "application/json" and not (
        media.endswith("+json")
    ):
        raise RequestError(415, f"unsupported Content-Type {media[:60]!r}: send application/json, or binary tensors "
                                f"with Inference-Header-Content-Length")
    return binary


def method_of(scope: Scope) -> str:
    return str(scope.get("method", ""))[:10]


def _drop_nulls(payload: Any) -> Any:
    """A V2 answer without the ``null`` values KServe's pydantic models write for absent optional keys.

    The V2 spec types ``model_version``, ``parameters`` and a model's ``versions`` as a string, an object and a list:
    when there is no value, the key is left out. Top level, and each tensor of ``inputs``/``outputs``.
    """
    if type(payload) is not dict:
        return payload
    cleaned = {key: value for key, value in payload.items() if value is not None}
    for key in ("inputs", "outputs"):
        tensors = cleaned.get(key)
        if type(tensors) is list:
            cleaned[key] = [{k: v for k, v in t.items() if v is not None} if type(t) is dict else t for t in tensors]
    return cleaned


def _without_nulls(send: Send) -> Send:
    """A `send` that rewrites a 200 JSON answer (or the JSON header of a binary one) with `_drop_nulls`."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def rewrite(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            if message["status"] != 200:
                await send(message)
                return
            start = message
            return
        if start is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        json_length = next((v for k, v in headers if k.lower() == b"inference-header-content-length"), None)
        try:
            if json_length is not None:
                length = int(json_length)
                header = orjson.dumps(_drop_nulls(orjson.loads(body[:length])))
                body = header + body[length:]
                headers = [(k, str(len(header)).encode() if k.lower() == b"inference-header-content-length" else v)
                           for k, v in headers]
            elif any(k.lower() == b"content-type" and v.startswith(b"application/json") for k, v in headers):
                body = orjson.dumps(_drop_nulls(orjson.loads(body)))
        except (ValueError, orjson.JSONDecodeError):
            pass  # not JSON after all: sent as it is
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return rewrite


def _labelled_json(scope: Scope) -> Scope:
    """``scope`` with ``Content-Type: application/json`` when it has no Content-Type (KServe reads it as binary)."""
    if any(key == b"content-type" for key, _ in scope["headers"]):
        return scope
    return {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}


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
