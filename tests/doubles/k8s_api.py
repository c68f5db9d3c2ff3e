"""A Kubernetes API **test double at the HTTP level** for KServe InferenceServices, plus a V1 model endpoint.

`FakeKubeApi` is a real HTTP server on 127.0.0.1 (a random free port) that answers the paths the `kubernetes`
client (and so `kserve.KServeClient`) uses for ``serving.kserve.io/v1beta1`` InferenceServices: create, get, list,
replace, delete and watch (chunked, newline-delimited events, ``resourceVersion`` and
``timeoutSeconds`` honoured). It keeps Kubernetes' bookkeeping: ``resourceVersion`` on every write (a stale one on
replace is a 409), ``generation`` bumped only when the spec changes, Status bodies for errors.

A simulated controller reconciles each new generation after ``reconcile_after`` seconds. Until then the status
still describes the previous generation (Ready and all), which is exactly what a careless waiter mistakes for
the new one. The outcome of each rollout can be planned: ``ready`` (default), ``fail-condition`` (Ready and
PredictorReady False, reason RevisionFailed), ``fail-model`` (modelStatus BlockedByFailedLoad with
lastFailureInfo) or ``hang`` (never reconciled). Faults can be injected per HTTP method: 403, 409, 5xx.

`ModelEndpoint` is a tiny V1 endpoint (``/v1/models/<name>[:predict]``) that answers with the model whose storage
URI is *currently Ready* in the double, so a smoke test really sees which revision serves.

Everything is bounded: watches end at their timeout or when the server stops; `stop()` joins every thread it
started.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
_PATH = re.compile(rf"^/apis/{re.escape(GROUP)}/{VERSION}/namespaces/([^/]+)/inferenceservices(?:/([^/]+))?$")
OUTCOMES = ("ready", "fail-condition", "fail-model", "hang")
MAX_WATCH_S = 60.0
_VERBS = {"GET": "get", "LIST": "list", "WATCH": "watch", "POST": "create", "PUT": "update",
          "DELETE": "delete"}
_REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid",
            500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


class _ApiError(Exception):
    def __init__(self, code: int, message: str, name: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.name = code, message, name


@dataclass
class _Fault:
    method: str
    status: int
    times: int
    message: str | None


@dataclass
class _Planned:
    outcome: str
    message: str | None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def storage_uri_of(spec: dict[str, Any]) -> str | None:
    """The storage URI of an InferenceService spec: the model's storageUri, or a custom container's STORAGE_URI."""
    predictor = spec.get("predictor") or {}
    uri = (predictor.get("model") or {}).get("storageUri")
    if uri:
        return uri
    for container in predictor.get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == "STORAGE_URI":
                return env.get("value")
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # watches need chunked transfer encoding

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        pass

    def _dispatch(self, method: str) -> None:
        self.close_connection = True  # one request per connection: no idle keep-alive thread outlives a test
        self.server.app.handle(self, method)  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 with a random port, run in a thread."""

    def __init__(self, app: Any) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        # Non-daemon handler threads, so server_close() joins them (a watch ends within 0.1 s of stop()).
        self.httpd.daemon_threads = False
        self.httpd.block_on_close = True
        self.httpd.app = app  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class FakeKubeApi:
    """The Kubernetes API double; see the module docstring.

    Args:
        reconcile_after: Seconds between a spec change and the simulated controller's verdict on it.
        endpoint_url: URL put in ``status.address.url`` (in-cluster address); a `ModelEndpoint` usually.
        domain: Domain of the external ``status.url``.
    """

    def __init__(self, reconcile_after: float = 0.3, endpoint_url: str = "", domain: str = "example.com") -> None:
        self.reconcile_after = reconcile_after
        self.endpoint_url = endpoint_url
        self.domain = domain
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, WATCH/LIST told apart
        self._lock = threading.Condition()
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._events: list[tuple[int, str, dict[str, Any]]] = []
        self._served: dict[tuple[str, str], dict[str, Any]] = {}
        self._rv = 100
        self._plans: list[_Planned] = []
        self._faults: list[_Fault] = []
        self._due: list[tuple[float, tuple[str, str], int, _Planned]] = []
        self._stopping = False
        self._server = _Server(self)
        self._controller = threading.Thread(target=self._control_loop, daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> FakeKubeApi:
        self._server.start()
        self._controller.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._server.stop()
        self._controller.join(timeout=5)

    def __enter__(self) -> FakeKubeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test controls -----------------------------------------------------------------------------------------

    def plan(self, outcome: str, message: str | None = None) -> None:
        """Decides how the next not-yet-planned rollout ends (later ones default to "ready")."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        with self._lock:
            self._plans.append(_Planned(outcome, message))

    def fail_next(self, method: str, status: int, times: int = 1, message: str | None = None) -> None:
        """Answers the next ``times`` requests of ``method`` (GET, LIST, WATCH, POST, PUT, DELETE) with
        ``status`` and a Kubernetes Status body."""
        with self._lock:
            self._faults.append(_Fault(method.upper(), status, times, message))

    def put_object(self, obj: dict[str, Any], ready: bool = True) -> dict[str, Any]:
        """Seeds an existing InferenceService (as if deployed earlier), Ready at generation 1 unless ``ready`` is
        False."""
        with self._lock:
            stored = self._store_new(obj["metadata"]["namespace"], copy.deepcopy(obj))
            key = (stored["metadata"]["namespace"], stored["metadata"]["name"])
            if ready:
                self._reconcile(key, 1, _Planned("ready", None))
            return copy.deepcopy(self._objects[key])

    def get_object(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects.get((namespace, name))
            return copy.deepcopy(obj) if obj else None

    def served_storage_uri(self, name: str, namespace: str | None = None) -> str | None:
        """The storage URI of the revision that currently answers for ``name`` (the last one that became Ready)."""
        with self._lock:
            for (ns, n), spec in self._served.items():
                if n == name and namespace in (None, ns):
                    return storage_uri_of(spec)
        return None

    def count(self, method: str) -> int:
        with self._lock:
            return sum(1 for m, _ in self.requests if m == method)

    # --- HTTP -------------------------------------------------------------------------------------------------

    def handle(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        match = _PATH.match(parts.path)
        if method == "GET" and match and not match.group(2):
            method = "WATCH" if query.get("watch") in ("true", "True", "1") else "LIST"
        with self._lock:
            self.requests.append((method, parts.path))
        try:
            if not match:
                raise _ApiError(404, "the server could not find the requested resource")
            namespace, name = match.group(1), match.group(2) or ""
            self._maybe_fault(method, namespace, name)
            if method == "WATCH":
                self._watch(handler, namespace, query)
                return
            status, payload = self._handle_rest(handler, method, namespace, name, query)
        except _ApiError as exc:
            status, payload = exc.code, self._status_body(exc)
        try:
            handler.send_json(status, payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _status_body(self, exc: _ApiError) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": exc.message,
            "reason": _REASONS.get(exc.code, "Unknown"), "code": exc.code,
        }
        if exc.name:
            body["details"] = {"name": exc.name, "group": GROUP, "kind": "inferenceservices"}
        return body

    def _maybe_fault(self, method: str, namespace: str, name: str) -> None:
        with self._lock:
            fault = next((f for f in self._faults if f.method == method and f.times > 0), None)
            if fault is None:
                return
            fault.times -= 1
        shown = name or "(list)"
        message = fault.message or {
            403: (f'inferenceservices.serving.kserve.io "{shown}" is forbidden: User '
                  f'"system:serviceaccount:{namespace}:default-editor" cannot {_VERBS[method]} resource '
                  f'"inferenceservices" in API group "{GROUP}" in the namespace "{namespace}"'),
            409: (f'Operation cannot be fulfilled on inferenceservices.{GROUP} "{shown}": the object has been '
                  "modified; please apply your changes to the latest version and try again"),
        }.get(fault.status, "etcdserver: request timed out")
        raise _ApiError(fault.status, message, name)

    def _handle_rest(
        self, handler: _Handler, method: str, namespace: str, name: str, query: dict[str, str]
    ) -> tuple[int, Any]:
        body = handler.read_json() if method in ("POST", "PUT") else None
        with self._lock:
            if method == "LIST":
                items = [copy.deepcopy(o) for (ns, n), o in sorted(self._objects.items())
                         if ns == namespace and _selected(n, query)]
                return 200, {"apiVersion": API_VERSION, "kind": "InferenceServiceList",
                             "metadata": {"resourceVersion": str(self._rv)}, "items": items}
            if method == "POST":
                return 201, self._create(namespace, body)
            key = (namespace, name)
            current = self._objects.get(key)
            if current is None:
                raise _ApiError(404, f'inferenceservices.{GROUP} "{name}" not found', name)
            if method == "GET":
                return 200, copy.deepcopy(current)
            if method == "PUT":
                return 200, self._replace(key, current, body)
            if method == "DELETE":
                del self._objects[key]
                self._served.pop(key, None)
                current["metadata"]["resourceVersion"] = self._next_rv()
                self._emit("DELETED", current)
                return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                             "details": {"name": name, "group": GROUP, "kind": "inferenceservices",
                                         "uid": current["metadata"]["uid"]}}
        raise _ApiError(405, f"method {method} not allowed")

    # --- storage (called with the lock held) ------------------------------------------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        self._events.append((int(obj["metadata"]["resourceVersion"]), kind, copy.deepcopy(obj)))
        self._lock.notify_all()

    def _validate(self, namespace: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("apiVersion") != API_VERSION or body.get("kind") != \
                "InferenceService":
            raise _ApiError(400, f"expected an InferenceService of {API_VERSION}")
        meta = body.get("metadata") or {}
        if not meta.get("name"):
            raise _ApiError(422, "metadata.name: Required value")
        if meta.get("namespace", namespace) != namespace:
            raise _ApiError(400, "the namespace of the provided object does not match the namespace sent on the "
                                 "request")
        if not isinstance(body.get("spec"), dict) or not (body["spec"].get("predictor")):
            raise _ApiError(422, f'InferenceService.{GROUP} "{meta["name"]}" is invalid: spec.predictor: Required '
                                 "value")
        return body

    def _store_new(self, namespace: str, body: Any) -> dict[str, Any]:
        obj = copy.deepcopy(self._validate(namespace, body))
        obj.pop("status", None)
        meta = obj["metadata"]
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), generation=1, creationTimestamp=_now(),
                    resourceVersion=self._next_rv())
        self._objects[(namespace, meta["name"])] = obj
        self._emit("ADDED", obj)
        return obj

    def _create(self, namespace: str, body: Any) -> dict[str, Any]:
        name = (body or {}).get("metadata", {}).get("name", "")
        if (namespace, name) in self._objects:
            raise _ApiError(409, f'inferenceservices.{GROUP} "{name}" already exists', name)
        obj = self._store_new(namespace, body)
        self._schedule((namespace, name), 1)
        return copy.deepcopy(obj)

    def _write(self, key: tuple[str, str], current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        meta = new["metadata"]
        for field in ("uid", "creationTimestamp", "namespace", "name"):
            meta[field] = current["metadata"][field]
        changed = new.get("spec") != current.get("spec")
        meta["generation"] = current["metadata"]["generation"] + (1 if changed else 0)
        meta["resourceVersion"] = self._next_rv()
        if "status" in current:  # the status subresource: writes to the main resource never change it
            new["status"] = copy.deepcopy(current["status"])
        else:
            new.pop("status", None)
        self._objects[key] = new
        self._emit("MODIFIED", new)
        if changed:
            self._schedule(key, meta["generation"])
        return copy.deepcopy(new)

    def _replace(self, key: tuple[str, str], current: dict[str, Any], body: Any) -> dict[str, Any]:
        new = copy.deepcopy(self._validate(key[0], body))
        sent = new["metadata"].get("resourceVersion")
        if not sent:
            raise _ApiError(422, f'InferenceService.{GROUP} "{key[1]}" is invalid: metadata.resourceVersion: '
                                 "Invalid value: 0x0: must be specified for an update", key[1])
        if sent != current["metadata"]["resourceVersion"]:
            raise _ApiError(409, f'Operation cannot be fulfilled on inferenceservices.{GROUP} "{key[1]}": the '
                                 "object has been modified; please apply your changes to the latest version and "
                                 "try again", key[1])
        if new["metadata"].get("name") != key[1]:
            raise _ApiError(400, "the name of the object does not match the name on the URL")
        return self._write(key, current, new)

    # --- watch ------------------------------------------------------------------------------------------------

    def _watch(self, handler: _Handler, namespace: str, query: dict[str, str]) -> None:
        timeout = min(float(query.get("timeoutSeconds") or MAX_WATCH_S), MAX_WATCH_S)
        deadline = time.monotonic() + timeout
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()
        with self._lock:
            if query.get("resourceVersion"):
                since = int(query["resourceVersion"])
                pending = []
            else:  # no resourceVersion: the current state first, as synthetic ADDED events
                since = self._rv
                pending = [("ADDED", copy.deepcopy(o)) for (ns, n), o in sorted(self._objects.items())
                           if ns == namespace and _selected(n, query)]
        try:
            for kind, obj in pending:
                _write_chunk(handler, {"type": kind, "object": obj})
            while True:
                with self._lock:
                    fresh = [(rv, kind, obj) for rv, kind, obj in self._events if rv > since]
                    if not fresh:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or self._stopping:
                            break
                        self._lock.wait(min(remaining, 0.1))
                        continue
                since = fresh[-1][0]
                for _, kind, obj in fresh:
                    meta = obj["metadata"]
                    if meta["namespace"] == namespace and _selected(meta["name"], query):
                        _write_chunk(handler, {"type": kind, "object": obj})
            handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped watching; that is its right

    # --- the simulated controller -------------------------------------------------------------------------------

    def _schedule(self, key: tuple[str, str], generation: int) -> None:
        planned = self._plans.pop(0) if self._plans else _Planned("ready", None)
        if planned.outcome != "hang":
            self._due.append((time.monotonic() + self.reconcile_after, key, generation, planned))
        self._lock.notify_all()

    def _control_loop(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                now = time.monotonic()
                due = [d for d in self._due if d[0] <= now]
                self._due = [d for d in self._due if d[0] > now]
                for _, key, generation, planned in due:
                    obj = self._objects.get(key)
                    # A newer spec supersedes an older one still rolling out, as the real controller does.
                    if obj is not None and obj["metadata"]["generation"] == generation:
                        self._reconcile(key, generation, planned)
                self._lock.wait(0.02)

    def _reconcile(self, key: tuple[str, str], generation: int, planned: _Planned) -> None:
        obj = self._objects[key]
        ns, name = key
        old = obj.get("status") or {}
        status = copy.deepcopy(old)
        status["observedGeneration"] = generation
        revision = f"{name}-predictor-{generation:05d}"
        stamp = _now()
        if planned.outcome == "ready":
            status.update(
                url=f"http://{name}.{ns}.{self.domain}",
                address={"url": self.endpoint_url or f"http://{name}-predictor.{ns}.svc.cluster.local"},
                conditions=[{"type": t, "status": "True", "lastTransitionTime": stamp}
                            for t in ("IngressReady", "PredictorReady", "Ready")],
                components={"predictor": {"latestCreatedRevision": revision, "latestReadyRevision": revision,
                                          "url": f"http://{name}-predictor.{ns}.{self.domain}",
                                          "traffic": [{"revisionName": revision, "percent": 100,
                                                       "latestRevision": True}]}},
            )
            model = status.setdefault("modelStatus", {})  # lastFailureInfo, if any, stays: KServe keeps it too
            model.update(transitionStatus="UpToDate", states={"activeModelState": "Loaded",
                                                              "targetModelState": "Loaded"},
                         copies={"failedCopies": 0, "totalCopies": 1})
            self._served[key] = copy.deepcopy(obj["spec"])
        elif planned.outcome == "fail-condition":
            message = planned.message or (f'Revision "{revision}" failed with message: Back-off pulling image '
                                          '"registry.invalid/predictor:missing".')
            failed = {"status": "False", "reason": "RevisionFailed", "message": message, "lastTransitionTime": stamp}
            status["conditions"] = [{"type": "IngressReady", "status": "True", "lastTransitionTime": stamp},
                                    {"type": "PredictorReady", **failed}, {"type": "Ready", **failed}]
        else:  # fail-model
            message = planned.message or "storage initializer: s3 object not found under the storage URI"
            status["conditions"] = [{"type": t, "status": "Unknown", "reason": "RevisionMissing",
                                     "lastTransitionTime": stamp} for t in ("PredictorReady", "Ready")]
            status["modelStatus"] = {
                "transitionStatus": "BlockedByFailedLoad",
                "states": {"activeModelState": (old.get("modelStatus") or {}).get("states", {}).get(
                    "activeModelState", ""), "targetModelState": "FailedToLoad"},
                "lastFailureInfo": {"reason": "ModelLoadFailed", "message": message, "exitCode": 1,
                                    "location": f"{revision}-deployment-abc12", "time": stamp},
            }
        obj["status"] = status
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("MODIFIED", obj)


def _selected(name: str, query: dict[str, str]) -> bool:
    selector = query.get("fieldSelector", "")
    if not selector:
        return True
    wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
    return wanted.get("metadata.name", name) == name


def _write_chunk(handler: _Handler, event: dict[str, Any]) -> None:
    data = (json.dumps(event) + "\n").encode()
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


# --- the V1 endpoint ----------------------------------------------------------------------------------------------


class _EndpointApp:
    def __init__(self, api: FakeKubeApi, load_model: Callable[[str], Callable[[np.ndarray], np.ndarray]]) -> None:
        self.api = api
        self.load_model = load_model
        self.models: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str | None]] = []  # (model name, storage URI answered from)

    def handle(self, handler: _Handler, method: str) -> None:
        match = re.match(r"^/v1/models/([^/:]+)(:predict)?$", urlsplit(handler.path).path)
        if not match:
            handler.send_json(404, {"error": "not found"})
            return
        name = match.group(1)
        uri = self.api.served_storage_uri(name)
        with self.lock:
            self.calls.append((name, uri))
        if uri is None:
            handler.send_json(404, {"error": f"model {name} is not served"})
            return
        if method == "GET" and not match.group(2):
            handler.send_json(200, {"name": name, "ready": True})
            return
        if method != "POST" or not match.group(2):
            handler.send_json(405, {"error": "method not allowed"})
            return
        with self.lock:
            if uri not in self.models:
                self.models[uri] = self.load_model(uri)
            predict = self.models[uri]
        rows = np.asarray((handler.read_json() or {}).get("instances"), dtype=np.float64)
        handler.send_json(200, {"predictions": [[float(v)] for v in predict(rows)]})  # TF Serving's V1 shape


class ModelEndpoint:
    """A V1 endpoint answering with whatever revision the `FakeKubeApi` currently serves for a model name.

    Args:
        api: The double whose Ready revisions decide which model answers.
        load_model: Storage URI -> a predict function (rows -> predictions); called once per URI.
    """

    def __init__(self, api: FakeKubeApi, load_model: Callable[[str], Callable[[np.ndarray], np.ndarray]]) -> None:
        self.app = _EndpointApp(api, load_model)
        self._server = _Server(self.app)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def calls(self) -> list[tuple[str, str | None]]:
        return list(self.app.calls)

    def start(self) -> ModelEndpoint:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


@contextmanager
def running(reconcile_after: float = 0.3,
            load_model: Callable[[str], Callable[[np.ndarray], np.ndarray]] | None = None
            ) -> Iterator[tuple[FakeKubeApi, ModelEndpoint | None]]:
    """Starts the API double (and a model endpoint when ``load_model`` is given); stops both afterwards."""
    api = FakeKubeApi(reconcile_after=reconcile_after)
    endpoint = ModelEndpoint(api, load_model).start() if load_model else None
    if endpoint:
        api.endpoint_url = endpoint.url
    api.start()
    try:
        yield api, endpoint
    finally:
        api.stop()
        if endpoint:
            endpoint.stop()
