"""A Kubeflow Pipelines REST API (v2beta1) test double at the HTTP level.

This is a real HTTP server on 127.0.0.1 (a random free port) that answers the requests the real ``kfp.Client``
2.17 sends through ``kfp_server_api``; it is not a mock of the client. The endpoints were read from the
installed ``kfp/client/client.py`` and ``kfp_server_api/api/*.py``:

========  ==========================================  ==============================================
GET       /apis/v2beta1/healthz                       ``Client()`` (when no namespace), ``get_kfp_healthz``
GET       /apis/v2beta1/pipelines                     ``list_pipelines``, ``get_pipeline_id`` (``filter``)
GET       /apis/v2beta1/pipelines/{id}                ``get_pipeline``
POST      /apis/v2beta1/pipelines/upload              ``upload_pipeline`` (multipart ``uploadfile``)
POST      /apis/v2beta1/pipelines/upload_version      ``upload_pipeline_version`` (multipart, ``pipelineid``)
GET       /apis/v2beta1/pipelines/{id}/versions       ``list_pipeline_versions``
GET       /apis/v2beta1/pipelines/{id}/versions/{v}   ``get_pipeline_version``
POST/GET  /apis/v2beta1/experiments                   ``create_experiment``, ``list_experiments``
GET       /apis/v2beta1/experiments/{id}              ``get_experiment``
POST      /apis/v2beta1/runs                          ``run_pipeline``
GET       /apis/v2beta1/runs/{id}                     ``get_run`` (plays the run's scripted states)
POST/GET  /apis/v2beta1/recurringruns[/{id}]          ``create_recurring_run``, ``get_recurring_run``
========  ==========================================  ==============================================

Everything lives in memory; nothing is compiled or executed. Every request is recorded (method, path, query,
headers, parsed JSON body, multipart fields and files) so a test can assert what the client sent. With ``token``
or ``cookie`` set, every endpoint (healthz included, as behind an auth proxy) answers 401 to a request without
them. Errors use the grpc-gateway body the real server sends (``{"code", "message", "error"}``).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

API = "/apis/v2beta1"

# A run's script: one frame per GET of the run, the last one repeats. A frame is the run state and the state of
# each task by display name (what the KFP UI shows as the step's name); a frame whose state is an HTTP status
# answers that GET with the error instead (a proxy restarting: 503), so a test can script a blink mid-run.
RunFrame = tuple[str | int, dict[str, str]]
UNAVAILABLE: RunFrame = (503, {})
SUCCEEDING_RUN: tuple[RunFrame, ...] = (
    ("PENDING", {}),
    ("RUNNING", {"Load and validate data": "RUNNING"}),
    ("RUNNING", {"Load and validate data": "SUCCEEDED", "Train Keras model": "RUNNING"}),
    ("SUCCEEDED", {"Load and validate data": "SUCCEEDED", "Train Keras model": "SUCCEEDED"}),
)
FAILING_RUN: tuple[RunFrame, ...] = (
    ("PENDING", {}),
    ("RUNNING", {"Train Keras model": "RUNNING"}),
    ("FAILED", {"Train Keras model": "FAILED"}),
)
FAILURE_MESSAGE = "task 'train-model' failed: ERROR train: loss is NaN"

# grpc status codes the gateway puts in error bodies
_GRPC_CODE = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 409: 6, 413: 8, 500: 13, 503: 14}
_EPOCH = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class UploadedFile:
    """One file of a multipart request."""

    filename: str
    content: bytes


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the double received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)


class ApiError(Exception):
    """Ends a request with an HTTP error and a grpc-gateway JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class KfpApiDouble:
    """An in-memory KFP v2beta1 API server on 127.0.0.1; use as a context manager or call start()/stop().

    Args:
        token: If set, requests must carry ``Authorization: Bearer <token>`` (or the cookie below).
        cookie: If set, requests may authenticate with a ``Cookie`` header containing this ``name=value``.
        multi_user: What healthz reports; in multi-user mode experiments need a namespace (as on Kubeflow).
        run_script: The states each new run goes through, one frame per GET (see ``SUCCEEDING_RUN``).
        max_body_bytes: Larger request bodies are refused with 413 (keeps the double bounded).
    """

    def __init__(
        self, *, token: str | None = None, cookie: str | None = None, multi_user: bool = False,
        run_script: Sequence[RunFrame] = SUCCEEDING_RUN, max_body_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.token = token
        self.cookie = cookie
        self.multi_user = multi_user
        self.run_script: tuple[RunFrame, ...] = tuple(run_script)
        self.max_body_bytes = max_body_bytes
        self.requests: list[RecordedRequest] = []
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, bytes] = {}  # pipeline_version_id -> the uploaded file, byte for byte
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.recurring_runs: dict[str, dict[str, Any]] = {}
        self._run_scripts: dict[str, tuple[RunFrame, ...]] = {}
        self._run_gets: dict[str, int] = {}
        self._clock = itertools.count()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (what a user passes as ``--host``)."""
        if self._server is None:
            raise RuntimeError("the KFP API double is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> KfpApiDouble:
        """Binds a free port on 127.0.0.1 and serves in a daemon thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="kfp-api-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket (bounded: waits at most 5 s for the thread)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> KfpApiDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- assertions helpers ----------------------------------------------------------------------------------

    def calls(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path equals ``path`` or matches it as a regex."""
        with self._lock:
            return [
                r for r in self.requests
                if r.method == method and (r.path == path or re.fullmatch(path, r.path) is not None)
            ]

    def clear_requests(self) -> None:
        """Forgets the recorded requests (the stored objects stay)."""
        with self._lock:
            self.requests.clear()

    # --- request handling ------------------------------------------------------------------------------------

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.token is None and self.cookie is None:
            return True
        if self.token is not None and headers.get("authorization") == f"Bearer {self.token}":
            return True
        cookies = [c.strip() for c in headers.get("cookie", "").split(";")]
        return self.cookie is not None and self.cookie in cookies

    def _route(self, request: RecordedRequest) -> tuple[int, Any]:
        if not self._authorized(request.headers):
            raise ApiError(401, "Unauthorized: missing or invalid credentials")
        routes: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
            ("GET", "/healthz", self._healthz),
            ("GET", "/pipelines", self._list_pipelines),
            ("POST", "/pipelines/upload", self._upload_pipeline),
            ("POST", "/pipelines/upload_version", self._upload_version),
            ("GET", "/pipelines/(?P<pipeline_id>[^/]+)/versions", self._list_versions),
            ("GET", "/pipelines/(?P<pipeline_id>[^/]+)/versions/(?P<version_id>[^/]+)", self._get_version),
            ("GET", "/pipelines/(?P<pipeline_id>[^/:]+)", self._get_pipeline),
            ("POST", "/experiments", self._create_experiment),
            ("GET", "/experiments", self._list_experiments),
            ("GET", "/experiments/(?P<experiment_id>[^/:]+)", self._get_experiment),
            ("POST", "/runs", self._create_run),
            ("GET", "/runs/(?P<run_id>[^/:]+)", self._get_run),
            ("POST", "/recurringruns", self._create_recurring_run),
            ("GET", "/recurringruns/(?P<recurring_run_id>[^/:]+)", self._get_recurring_run),
        ]
        for method, pattern, handler in routes:
            match = re.fullmatch(API + pattern, request.path)
            if match and method == request.method:
                with self._lock:
                    return handler(request, **match.groupdict())
        raise ApiError(404, f"Not Found: {request.method} {request.path}")

    def _now(self) -> str:
        # A strictly increasing clock: creation order is unambiguous even within one second.
        return (_EPOCH + timedelta(seconds=next(self._clock))).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _healthz(self, request: RecordedRequest) -> tuple[int, Any]:
        return 200, {"multi_user": self.multi_user, "pipeline_store": "database"}

    def _list_pipelines(self, request: RecordedRequest) -> tuple[int, Any]:
        namespace = request.query.get("namespace", "")
        found = [p for p in self.pipelines.values() if p["namespace"] == namespace]
        found = _apply_filter(found, request.query.get("filter"))
        return 200, ({"pipelines": found, "total_size": len(found)} if found else {})

    def _get_pipeline(self, request: RecordedRequest, pipeline_id: str) -> tuple[int, Any]:
        if pipeline_id not in self.pipelines:
            raise ApiError(404, f"Pipeline {pipeline_id} not found")
        return 200, self.pipelines[pipeline_id]

    def _upload_pipeline(self, request: RecordedRequest) -> tuple[int, Any]:
        upload = _uploaded_spec(request)
        name = request.query.get("name") or request.files["uploadfile"].filename
        namespace = request.query.get("namespace", "")
        if any(p["name"] == name and p["namespace"] == namespace for p in self.pipelines.values()):
            raise ApiError(409, f"Failed to create a pipeline: a pipeline named {name!r} already exists")
        pipeline = {
            "pipeline_id": str(uuid.uuid4()), "name": name, "display_name": request.query.get("display_name") or name,
            "description": request.query.get("description", ""), "namespace": namespace, "created_at": self._now(),
        }
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        self._add_version(pipeline["pipeline_id"], name, request, upload)
        return 200, pipeline

    def _upload_version(self, request: RecordedRequest) -> tuple[int, Any]:
        upload = _uploaded_spec(request)
        pipeline_id = request.query.get("pipelineid", "")
        if pipeline_id not in self.pipelines:
            raise ApiError(404, f"Failed to create a pipeline version: pipeline {pipeline_id!r} not found")
        name = request.query.get("name") or request.files["uploadfile"].filename
        if any(v["name"] == name and v["pipeline_id"] == pipeline_id for v in self.versions.values()):
            raise ApiError(409, f"Failed to create a pipeline version: version {name!r} already exists")
        return 200, self._add_version(pipeline_id, name, request, upload)

    def _add_version(self, pipeline_id: str, name: str, request: RecordedRequest, upload: bytes) -> dict[str, Any]:
        version = {
            "pipeline_id": pipeline_id, "pipeline_version_id": str(uuid.uuid4()), "name": name,
            "display_name": request.query.get("display_name") or name,
            "description": request.query.get("description", ""), "created_at": self._now(),
            "pipeline_spec": next(yaml.safe_load_all(upload)),
        }
        self.versions[version["pipeline_version_id"]] = version
        self.uploads[version["pipeline_version_id"]] = upload
        return version

    def _list_versions(self, request: RecordedRequest, pipeline_id: str) -> tuple[int, Any]:
        if pipeline_id not in self.pipelines:
            raise ApiError(404, f"Pipeline {pipeline_id} not found")
        found = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
        found = _apply_filter(found, request.query.get("filter"))
        sort_by = request.query.get("sort_by", "")
        found.sort(key=lambda v: v["created_at"], reverse=sort_by.endswith(" desc"))
        page_size = int(request.query.get("page_size") or 0)
        page = found[:page_size] if page_size > 0 else found
        return 200, ({"pipeline_versions": page, "total_size": len(found)} if page else {})

    def _get_version(self, request: RecordedRequest, pipeline_id: str, version_id: str) -> tuple[int, Any]:
        version = self.versions.get(version_id)
        if version is None or version["pipeline_id"] != pipeline_id:
            raise ApiError(404, f"Pipeline version {version_id} not found")
        return 200, version

    def _create_experiment(self, request: RecordedRequest) -> tuple[int, Any]:
        body = _json_object(request)
        name = body.get("display_name") or ""
        namespace = body.get("namespace") or ""
        if not name:
            raise ApiError(400, "Invalid input error: experiment display name is empty")
        if self.multi_user and not namespace:
            raise ApiError(400, "Invalid input error: in multi-user mode, experiment namespace cannot be empty")
        if any(e["display_name"] == name and e["namespace"] == namespace for e in self.experiments.values()):
            raise ApiError(409, f"Failed to create an experiment: {name!r} already exists")
        experiment = {
            "experiment_id": str(uuid.uuid4()), "display_name": name, "description": body.get("description") or "",
            "namespace": namespace, "created_at": self._now(), "storage_state": "AVAILABLE",
        }
        self.experiments[experiment["experiment_id"]] = experiment
        return 200, experiment

    def _list_experiments(self, request: RecordedRequest) -> tuple[int, Any]:
        namespace = request.query.get("namespace", "")
        found = [e for e in self.experiments.values() if e["namespace"] == namespace]
        found = _apply_filter(found, request.query.get("filter"))
        return 200, ({"experiments": found, "total_size": len(found)} if found else {})

    def _get_experiment(self, request: RecordedRequest, experiment_id: str) -> tuple[int, Any]:
        if experiment_id not in self.experiments:
            raise ApiError(404, f"Experiment {experiment_id} not found")
        return 200, self.experiments[experiment_id]

    def _check_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validates what runs and recurring runs share: experiment, pipeline version, parameters."""
        if not body.get("display_name"):
            raise ApiError(400, "Invalid input error: the run's display name is empty")
        if body.get("experiment_id") not in self.experiments:
            raise ApiError(404, f"Experiment {body.get('experiment_id')!r} not found")
        reference = body.get("pipeline_version_reference") or {}
        version = self.versions.get(reference.get("pipeline_version_id", ""))
        if version is None or version["pipeline_id"] != reference.get("pipeline_id"):
            raise ApiError(404, f"Pipeline version {reference!r} not found")
        declared = version["pipeline_spec"].get("root", {}).get("inputDefinitions", {}).get("parameters", {})
        parameters = (body.get("runtime_config") or {}).get("parameters") or {}
        unknown = sorted(set(parameters) - set(declared))
        if unknown:
            raise ApiError(400, f"Invalid input error: unknown pipeline parameters {unknown}")
        return version

    def _create_run(self, request: RecordedRequest) -> tuple[int, Any]:
        body = _json_object(request)
        self._check_job(body)
        run_id = str(uuid.uuid4())
        run = {**copy.deepcopy(body), "run_id": run_id, "storage_state": "AVAILABLE", "created_at": self._now()}
        self.runs[run_id] = run
        self._run_scripts[run_id] = self.run_script
        self._run_gets[run_id] = 0
        return 200, self._run_view(run_id, self.run_script[0])

    def _get_run(self, request: RecordedRequest, run_id: str) -> tuple[int, Any]:
        if run_id not in self.runs:
            raise ApiError(404, f"Run {run_id} not found")
        script = self._run_scripts[run_id]
        frame = script[min(self._run_gets[run_id], len(script) - 1)]
        self._run_gets[run_id] += 1
        if isinstance(frame[0], int):
            raise ApiError(frame[0], f"scripted error answering GET run {run_id}")
        return 200, self._run_view(run_id, frame)

    def _run_view(self, run_id: str, frame: RunFrame) -> dict[str, Any]:
        state, tasks = frame
        view = {**self.runs[run_id], "state": state}
        view["run_details"] = {"task_details": [
            {"run_id": run_id, "task_id": f"task-{i}", "display_name": name, "state": task_state}
            for i, (name, task_state) in enumerate(tasks.items())
        ]}
        if state == "FAILED":
            view["error"] = {"code": 2, "message": FAILURE_MESSAGE}
        return view

    def _create_recurring_run(self, request: RecordedRequest) -> tuple[int, Any]:
        body = _json_object(request)
        self._check_job(body)
        trigger = body.get("trigger") or {}
        cron = (trigger.get("cron_schedule") or {}).get("cron")
        if not cron and not trigger.get("periodic_schedule"):
            raise ApiError(400, "Invalid input error: a recurring run needs a cron or periodic trigger")
        if not 1 <= int(body.get("max_concurrency") or 0) <= 10:
            raise ApiError(400, "Invalid input error: The max concurrency of the recurring run is out of range. "
                                f"Support 1-10. Received {body.get('max_concurrency')}.")
        if cron and len(cron.split()) != 6:  # the server parses it with robfig/cron; the double checks the fields
            raise ApiError(400, "Invalid input error: Schedule cron is not a supported format"
                                f"(https://godoc.org/github.com/robfig/cron). Error: expected 6 fields, got {cron!r}")
        recurring = {
            **copy.deepcopy(body), "recurring_run_id": str(uuid.uuid4()), "status": "ENABLED",
            "created_at": self._now(), "max_concurrency": str(body.get("max_concurrency", 1)),
        }
        self.recurring_runs[recurring["recurring_run_id"]] = recurring
        return 200, recurring

    def _get_recurring_run(self, request: RecordedRequest, recurring_run_id: str) -> tuple[int, Any]:
        if recurring_run_id not in self.recurring_runs:
            raise ApiError(404, f"Recurring run {recurring_run_id} not found")
        return 200, self.recurring_runs[recurring_run_id]


def _json_object(request: RecordedRequest) -> dict[str, Any]:
    if not isinstance(request.json, dict):
        raise ApiError(400, "Invalid input error: the body must be a JSON object")
    return request.json


def _uploaded_spec(request: RecordedRequest) -> bytes:
    upload = request.files.get("uploadfile")
    if upload is None:
        raise ApiError(400, "Failed to upload: no 'uploadfile' in the multipart form")
    try:
        spec = next(yaml.safe_load_all(upload.content))
    except (yaml.YAMLError, StopIteration) as exc:
        raise ApiError(400, f"Failed to upload: the file is not YAML ({exc})") from None
    if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
        raise ApiError(400, "Failed to upload: the file is not a compiled KFP pipeline spec")
    return upload.content


def _apply_filter(items: list[dict[str, Any]], raw: str | None) -> list[dict[str, Any]]:
    """Supports what kfp.Client sends: EQUALS predicates on string fields (operation as a name or as 1)."""
    if not raw:
        return list(items)
    try:
        predicates = json.loads(raw).get("predicates", [])
    except (ValueError, AttributeError):
        raise ApiError(400, f"Invalid input error: bad filter {raw!r}") from None
    for predicate in predicates:
        if predicate.get("operation") not in ("EQUALS", 1):
            raise ApiError(400, f"the double supports only EQUALS filters, got {predicate!r}")
        value = predicate.get("stringValue", predicate.get("string_value"))
        items = [i for i in items if i.get(predicate.get("key")) == value]
    return items


def _make_handler(double: KfpApiDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a stuck client cannot hold a server thread for longer
        server_version = "kfp-api-double"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            return  # the recorded requests are the log

        def _handle(self) -> None:
            split = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            length = int(headers.get("content-length") or 0)
            try:
                if length > double.max_body_bytes:
                    raise ApiError(413, f"request body of {length} bytes is over the double's limit")
                body = self.rfile.read(length) if length else b""
                request = _parse_request(self.command, split.path, split.query, headers, body)
                with double._lock:
                    double.requests.append(request)
                status, payload = double._route(request)
            except ApiError as exc:
                status = exc.status
                payload = {"error": exc.message, "code": _GRPC_CODE.get(exc.status, 2), "message": exc.message}
            data = json.dumps(payload).encode()
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PATCH = _handle  # noqa: N815 - http.server's naming

    return Handler


def _parse_request(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> RecordedRequest:
    parsed_query = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    content_type = headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form, files = _parse_multipart(content_type, body)
        return RecordedRequest(method, path, parsed_query, headers, None, form, files)
    parsed_json = None
    if body:
        try:
            parsed_json = json.loads(body)
        except ValueError:
            raise ApiError(400, "Invalid input error: the body is not JSON") from None
    return RecordedRequest(method, path, parsed_query, headers, parsed_json)


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    if not message.is_multipart():
        raise ApiError(400, "Invalid input error: malformed multipart body")
    form: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        content = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files[str(name)] = UploadedFile(part.get_filename(), content)
        else:
            form[str(name)] = content.decode()
    return form, files
