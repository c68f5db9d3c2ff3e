"""The Kubernetes API for InferenceServices: credentials, namespace, and calls with retries and actionable errors.

The calls go through the `kubernetes` client that `kserve.KServeClient` wraps, one level down from it: KServeClient
turns every API error into a bare RuntimeError (no status code, so a 409 cannot be told from a 403) and its waits
print tables and poll; here each status code gets its own handling and the wait is a watch.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from tenacity import Retrying, retry_if_exception, retry_if_exception_type, stop_after_attempt, wait_exponential

from boston_model.errors import ClusterRefused, first_line
from components.deploy.kserve_spec import GROUP, PLURAL, VERSION

SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# 409 is handled by the caller (re-read, then create-or-replace again); these are retried in place.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 8.0
CONFLICT_ATTEMPTS = 5


class Conflict(ClusterRefused):
    """409 from the API server: a stale resourceVersion, or the object appeared meanwhile."""


def _transient(message: str) -> ClusterRefused:
    """A 429/5xx or a connection error: worth another try (`InferenceServices._call` retries these)."""
    exc = ClusterRefused(message)
    exc.transient = True  # type: ignore[attr-defined]
    return exc


def _is_transient(exc: BaseException) -> bool:
    return getattr(exc, "transient", False) is True


def kube_api_client(kubeconfig: str | None = None, context: str | None = None) -> k8s.ApiClient:
    """An API client for the step's cluster: in-cluster service account first, else a kubeconfig.

    Unlike ``KServeClient()``, this leaves the process-wide default configuration alone.
    """
    from kubernetes import config as kube_config

    configuration = k8s.Configuration()
    try:
        kube_config.load_incluster_config(client_configuration=configuration)
    except kube_config.ConfigException:
        try:
            # KUBECONFIG is read here, not at import as the client's own default is.
            kube_config.load_kube_config(config_file=kubeconfig or os.environ.get("KUBECONFIG") or None,
                                         context=context, client_configuration=configuration)
        except (kube_config.ConfigException, OSError) as exc:
            raise ClusterRefused(f"no Kubernetes credentials: run in a cluster (the step's service account) or "
                                    f"set KUBECONFIG ({first_line(exc)})") from exc
    return k8s.ApiClient(configuration)


def current_namespace(path: Path = SERVICE_ACCOUNT_NAMESPACE_FILE) -> str:
    """The namespace this pod runs in (from its service account), for an empty ``namespace`` parameter."""
    try:
        namespace = path.read_text().strip()
    except OSError:
        namespace = ""
    if not namespace:
        raise ClusterRefused("no namespace given and not running in a pod: set the serving key 'namespace'")
    return namespace


def _api_message(exc: k8s.ApiException) -> str:
    """The API server's own message from a Status body (falls back to the HTTP reason)."""
    try:
        body = json.loads(exc.body or "")
        message = body.get("message") if isinstance(body, dict) else None
    except (TypeError, ValueError):
        message = None
    return " ".join(str(message or first_line(exc.body or "") or exc.reason or "").split())


class InferenceServices:
    """The InferenceServices of one namespace, with transient errors retried and the rest made actionable.

    Args:
        api_client: A configured `kubernetes.client.ApiClient` (see `kube_api_client`).
        namespace: Namespace to work in.
        attempts: Tries per call for 429/5xx and connection errors.
        backoff_s: First pause between tries; doubles each time, capped at 8 s.
        request_timeout: (connect, read) seconds per request.
        sleep: Pause function (tests pass a fast one).
        log: Progress lines.
    """

    def __init__(
        self,
        api_client: k8s.ApiClient,
        namespace: str,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        request_timeout: tuple[float, float] = (5.0, 30.0),
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = print,
    ) -> None:
        self.api = k8s.CustomObjectsApi(api_client)
        self.host = api_client.configuration.host
        self.namespace = namespace
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.request_timeout = request_timeout
        self.sleep = sleep
        self.log = log

    def describe(self, name: str) -> str:
        return f"InferenceService {self.namespace}/{name}"

    def backoff(self) -> wait_exponential:
        """The pause between tries: ``backoff_s``, doubling each time, at most 8 s (also used on 409s)."""
        return wait_exponential(multiplier=self.backoff_s, max=MAX_BACKOFF_S)

    def retry_conflicts(self, attempts: int = CONFLICT_ATTEMPTS, log: bool = False) -> Retrying:
        """Runs a read-modify-write again on a 409 (each try re-reads the object), pausing as `backoff` does."""
        return Retrying(
            stop=stop_after_attempt(max(1, attempts)), wait=self.backoff(), sleep=self.sleep,
            retry=retry_if_exception_type(Conflict), reraise=True,
            before_sleep=(lambda state: self.log(f"{state.outcome.exception()}; re-reading and trying again"))
            if log else None,
        )

    def _call(self, verb: str, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self.request_timeout)

        def once() -> Any:
            try:
                return fn(GROUP, VERSION, self.namespace, PLURAL, *args, **kwargs)
            except k8s.ApiException as exc:
                if exc.status == 409:
                    raise Conflict(f"{verb} {self.describe(name)}: 409 {_api_message(exc)}") from exc
                if exc.status not in RETRY_STATUSES:
                    raise self._error(verb, name, exc) from exc
                raise _transient(f"HTTP {exc.status}: {_api_message(exc)}") from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise _transient(f"cannot reach the Kubernetes API at {self.host} ({type(exc).__name__})") from exc

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts), wait=self.backoff(), sleep=self.sleep,
            retry=retry_if_exception(_is_transient), reraise=True,
            before_sleep=lambda state: self.log(f"{verb} {self.describe(name)}: {state.outcome.exception()}; retrying"),
        )
        try:
            return retrying(once)
        except ClusterRefused as exc:
            if not _is_transient(exc):
                raise
            raise ClusterRefused(
                f"{verb} {self.describe(name)} failed {self.attempts} times, last with {exc}"
            ) from None

    def _error(self, verb: str, name: str, exc: k8s.ApiException) -> ClusterRefused:
        message = _api_message(exc)
        what = self.describe(name)
        if exc.status == 401:
            return ClusterRefused(f"{verb} {what}: the Kubernetes API rejected the credentials (401 {message}): "
                                     "check the step's service account token or KUBECONFIG")
        if exc.status == 403:
            return ClusterRefused(
                f"{verb} {what}: forbidden (403 {message}): bind the step's service account to a Role that may "
                f"get/create/update/patch/delete/watch inferenceservices.serving.kserve.io in {self.namespace} "
                "(kserve/rbac.yaml: kubectl apply -k kserve/)"
            )
        if exc.status == 404:
            return ClusterRefused(f"{verb} {what}: not found (404 {message}): is KServe installed and does "
                                     f"namespace {self.namespace} exist?")
        if exc.status in (400, 422):
            return ClusterRefused(f"{verb} {what}: the API server rejected the spec ({exc.status} {message})")
        return ClusterRefused(f"{verb} {what}: HTTP {exc.status} {message}")

    def get(self, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self._call("get", name, self.api.get_namespaced_custom_object, name)
        except ClusterRefused as exc:
            cause = exc.__cause__
            if isinstance(cause, k8s.ApiException) and cause.status == 404 and _names_object(cause, name):
                return None
            raise

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("create", body["metadata"]["name"], self.api.create_namespaced_custom_object, body)

    def replace(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("replace", name, self.api.replace_namespaced_custom_object, name, body)

    def delete(self, name: str) -> None:
        self._call("delete", name, self.api.delete_namespaced_custom_object, name)

    def watch(self, name: str, resource_version: str | None, timeout_s: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events ``(type, object)`` for ``name`` after ``resource_version``, for at most ``timeout_s`` seconds."""
        kwargs: dict[str, Any] = {
            "field_selector": f"metadata.name={name}", "timeout_seconds": timeout_s,
            "_request_timeout": (self.request_timeout[0], timeout_s + self.request_timeout[1]),
        }
        if resource_version:
            kwargs["resource_version"] = resource_version
        stream = k8s_watch.Watch().stream(
            self.api.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, **kwargs
        )
        for event in stream:
            obj = event.get("raw_object") or event.get("object")
            if isinstance(obj, dict):
                yield str(event.get("type")), obj


def _names_object(exc: k8s.ApiException, name: str) -> bool:
    """Whether a 404 is about the object itself (absent), not the API (KServe not installed)."""
    try:
        details = json.loads(exc.body or "").get("details") or {}
    except (TypeError, ValueError, AttributeError):
        return False
    return details.get("name") == name
