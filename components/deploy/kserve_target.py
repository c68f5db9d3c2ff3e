"""The KServe deploy target: serve a stored model version as an InferenceService, prove it, then promote it.

The flow (`deploy_kserve`): push an immutable version to S3, build the InferenceService for it
(`build_inference_service`, pure), create it or replace the live one, wait until the controller has observed
*that* generation and reports Ready, smoke-test the endpoint against evaluate's predictions, and only then move
the champion record. Any failure after the apply puts the previous spec back (or deletes a first deployment).

The Kubernetes calls go through the `kubernetes` client that `kserve.KServeClient` wraps, one level down from it:
KServeClient turns every API error into a bare RuntimeError (no status code, so a 409 cannot be told from a 403)
and its waits print tables and poll; here each status code gets its own handling and the wait is a watch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd
import urllib3
import yaml
from kserve.constants import constants as kserve_constants
from kserve.models import (
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1ModelFormat,
    V1beta1ModelSpec,
    V1beta1PredictorSpec,
)
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from components.common.errors import first_line
from components.common.model import EQUALITY_ATOL, read_card
from components.common.store import ObjectStore, parse_s3_uri
from components.common.versions import read_champion
from components.deploy import local
from components.deploy.core import DeployResult, promote, smoke_rows, store_version
from components.deploy.errors import DeployError, KServeDeployError

GROUP = kserve_constants.KSERVE_GROUP
VERSION = kserve_constants.KSERVE_V1BETA1_VERSION
PLURAL = kserve_constants.KSERVE_PLURAL_INFERENCESERVICE
API_VERSION = kserve_constants.KSERVE_V1BETA1
KIND = kserve_constants.KSERVE_KIND_INFERENCESERVICE

RUNTIMES = ("tensorflow", "custom")
TF_SERVING_RUNTIME = "kserve-tensorflow-serving"  # KServe's ClusterServingRuntime for TensorFlow SavedModels
CONTAINER_NAME = "kserve-container"  # KServe injects the storage initializer for this container's STORAGE_URI
MODEL_MOUNT = "/mnt/models"
PREDICTOR_PORT = 8080
ANNOTATION_SIDECAR = "sidecar.istio.io/inject"
ANNOTATION_TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
PART_OF = "boston-housing-kfp"
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

# 409 is handled by the caller (re-read, then create-or-replace again); these are retried in place.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
FAILED_TRANSITIONS = frozenset({"BlockedByFailedLoad", "InvalidSpec"})
# Condition reasons that do not heal by waiting (Knative revisions, Deployments, pods). A rollout in progress is
# Unknown, or False without a reason (raw deployments), so neither is mistaken for a failure.
TERMINAL_REASONS = frozenset({
    "ProgressDeadlineExceeded", "ContainerMissing", "ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff",
    "ExitCode", "InvalidSpec", "Unschedulable",
})
WATCH_WINDOW_S = 30  # one watch request; the wait re-reads the object between windows, so no event is missed
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAME_MAX = 63


class _Conflict(KServeDeployError):
    """409 from the API server: a stale resourceVersion, or the object appeared meanwhile."""


# --- storage URI ------------------------------------------------------------------------------------------------


def storage_uri_for(uri: str) -> str:
    """The ``s3://bucket/path/`` KServe's storage initializer needs, from a KFP artifact or model-store URI.

    KFP artifact URIs on Kubeflow's object store are ``minio://bucket/path`` (or ``s3://``). The result always ends
    in one slash: the initializer copies every key under the prefix, and ``s3://models/boston`` would also copy
    ``s3://models/boston-v2/…``.

    Raises:
        ValueError: Another scheme, no bucket or path, or empty / ``.`` / ``..`` path segments.
    """
    try:
        bucket, key = parse_s3_uri(uri.strip())
    except ValueError:
        raise ValueError(f"storage URI {uri!r} is not s3://bucket/path or minio://bucket/path") from None
    segments = key.rstrip("/").split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise ValueError(f"storage URI {uri!r} has an empty, '.' or '..' path segment")
    return f"s3://{bucket}/{'/'.join(segments)}/"


# --- the InferenceService ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """CPU and memory requests and limits of the predictor container (Kubernetes quantities)."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str

    def requirements(self) -> k8s.V1ResourceRequirements:
        requests = {k: v for k, v in (("cpu", self.cpu_request), ("memory", self.memory_request)) if v}
        limits = {k: v for k, v in (("cpu", self.cpu_limit), ("memory", self.memory_limit)) if v}
        return k8s.V1ResourceRequirements(requests=requests or None, limits=limits or None)


def version_tuple(version: str) -> tuple[int, ...]:
    """``"2.21.0"`` -> ``(2, 21, 0)``; suffixes such as ``-gpu`` or ``rc1`` are ignored."""
    numbers = re.findall(r"\d+", version.split("-")[0])[:3]
    if not numbers:
        raise ValueError(f"{version!r} is not a version number")
    return tuple(int(n) for n in numbers) + (0,) * (3 - len(numbers))


def build_inference_service(
    model_name: str,
    namespace: str,
    storage_uri: str,
    runtime: str,
    *,
    service_account: str,
    resources: Resources,
    min_replicas: int,
    max_replicas: int,
    canary_traffic_percent: int = 100,
    istio_sidecar: bool = False,
    runtime_version: str = "",
    predictor_image: str = "",
    trained_tf_version: str | None = None,
) -> V1beta1InferenceService:
    """Builds the InferenceService that serves ``storage_uri`` as ``model_name`` (pure: no I/O).

    Args:
        model_name: InferenceService name and served model name (a DNS label).
        namespace: Namespace of the InferenceService.
        storage_uri: Model version prefix (normalised by `storage_uri_for`).
        runtime: "tensorflow" (KServe's TF Serving runtime, the SavedModel under ``1/``) or "custom" (our
            predictor image running ``kserve/predictor.py``).
        service_account: Service account whose Secret gives the storage initializer its S3 keys ("" = default).
        resources: Container requests and limits.
        min_replicas: Minimum replicas (0 allows scale to zero on serverless KServe).
        max_replicas: Maximum replicas.
        canary_traffic_percent: Share of traffic for the new revision; 100 rolls out fully (the field is omitted).
        istio_sidecar: Value of the ``sidecar.istio.io/inject`` annotation.
        runtime_version: TF Serving image tag (runtime "tensorflow").
        predictor_image: Image of the custom predictor (runtime "custom").
        trained_tf_version: TensorFlow that trained the model; TF Serving must be at least as new.

    Raises:
        ValueError: An invalid name, runtime, replica range, traffic share, URI, image or runtime version.
    """
    if not _NAME.match(model_name) or len(model_name) > _NAME_MAX:
        raise ValueError(f"model name {model_name!r} is not a DNS label (lowercase letters, digits, '-'; "
                         f"starts with a letter; at most {_NAME_MAX} characters)")
    if not namespace:
        raise ValueError("namespace is empty")
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: use {' or '.join(map(repr, RUNTIMES))}")
    if not 0 <= min_replicas <= max_replicas or max_replicas < 1:
        raise ValueError(f"replicas min {min_replicas} / max {max_replicas}: need 0 <= min <= max and max >= 1")
    if not 0 <= canary_traffic_percent <= 100:
        raise ValueError(f"canary traffic percent {canary_traffic_percent} is not within 0..100")
    uri = storage_uri_for(storage_uri)
    requirements = resources.requirements()
    predictor = V1beta1PredictorSpec(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        service_account_name=service_account or None,
        canary_traffic_percent=None if canary_traffic_percent == 100 else canary_traffic_percent,
    )
    if runtime == "tensorflow":
        if not runtime_version:
            raise ValueError("runtime 'tensorflow' needs a runtime version (the TF Serving image tag)")
        if trained_tf_version and version_tuple(runtime_version) < version_tuple(trained_tf_version):
            raise ValueError(f"TF Serving {runtime_version} is older than TensorFlow {trained_tf_version}, which "
                             "trained the model: pick a runtime version at least as new")
        predictor.model = V1beta1ModelSpec(
            model_format=V1beta1ModelFormat(name="tensorflow", version="2"),
            runtime=TF_SERVING_RUNTIME,
            runtime_version=runtime_version,
            protocol_version="v1",
            storage_uri=uri,
            resources=requirements,
        )
    else:
        if not predictor_image:
            raise ValueError("runtime 'custom' needs the predictor image")
        predictor.containers = [k8s.V1Container(
            name=CONTAINER_NAME,
            image=predictor_image,
            args=["--model_name", model_name, "--model_dir", MODEL_MOUNT, "--http_port", str(PREDICTOR_PORT),
                  "--bind", "0.0.0.0"],
            env=[k8s.V1EnvVar(name="STORAGE_URI", value=uri)],
            ports=[k8s.V1ContainerPort(container_port=PREDICTOR_PORT, protocol="TCP")],
            resources=requirements,
        )]
    annotations = {ANNOTATION_SIDECAR: "true" if istio_sidecar else "false"}
    if canary_traffic_percent < 100:
        # Gives the latest revision its own URL, so the smoke test can reach it and not the traffic split.
        annotations[ANNOTATION_TAG_ROUTING] = "true"
    return V1beta1InferenceService(
        api_version=API_VERSION,
        kind=KIND,
        metadata=k8s.V1ObjectMeta(
            name=model_name,
            namespace=namespace,
            labels={"app.kubernetes.io/name": model_name, "app.kubernetes.io/part-of": PART_OF},
            annotations=annotations,
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def to_manifest(isvc: V1beta1InferenceService) -> dict[str, Any]:
    """The InferenceService as the API server and ``kubectl`` see it (camelCase, no empty fields)."""
    return _prune(k8s.ApiClient().sanitize_for_serialization(isvc))


def _prune(value: Any) -> Any:
    # The generated models default some strings to "" (e.g. the model spec's container name): drop them, so the
    # manifest holds only what the builder decided.
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ("", None, {}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def manifest_yaml(manifest: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False)


# --- reading an InferenceService's status (pure) ----------------------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    """Where a rollout stands: ``phase`` is "ready", "failed" or "pending"; ``detail`` says why, in one line."""

    phase: str
    detail: str


def _condition_text(condition: Mapping[str, Any]) -> str:
    parts = [str(condition.get(k)) for k in ("reason", "message") if condition.get(k)]
    return ": ".join(parts) or "no reason given"


def rollout_state(obj: Mapping[str, Any], generation: int, baseline_failure: Any = None) -> Rollout:
    """Judges whether generation ``generation`` of an InferenceService is Ready, failed, or still rolling out.

    A status about an older generation is never taken as ready nor failed: right after a replace it still
    describes the previous revision. ``baseline_failure`` is the ``lastFailureInfo`` seen before the apply; KServe
    keeps the last one around, so only a different one counts.
    """
    status = obj.get("status") or {}
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation:
        return Rollout("pending", f"the controller has observed generation {observed} of {generation}")
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    ready = conditions.get("Ready") or {}
    if ready.get("status") == "True":
        return Rollout("ready", "Ready")
    model = status.get("modelStatus") or {}
    failure = model.get("lastFailureInfo")
    target_state = (model.get("states") or {}).get("targetModelState")
    if model.get("transitionStatus") in FAILED_TRANSITIONS or target_state == "FailedToLoad" or (
        failure and failure != baseline_failure
    ):
        text = _condition_text(failure) if failure else f"model {target_state or model.get('transitionStatus')}"
        return Rollout("failed", f"the model failed to load: {text}")
    for kind in ("Ready", "PredictorReady"):
        condition = conditions.get(kind) or {}
        reason = str(condition.get("reason") or "")
        if condition.get("status") == "False" and (reason in TERMINAL_REASONS or "fail" in reason.lower()):
            return Rollout("failed", f"{kind} is False: {_condition_text(condition)}")
    if ready:
        return Rollout("pending", f"Ready is {ready.get('status', 'Unknown')}: {_condition_text(ready)}")
    return Rollout("pending", "no Ready condition yet")


def smoke_url_of(obj: Mapping[str, Any], canary_traffic_percent: int = 100) -> str:
    """The URL to smoke-test: the latest revision's tagged URL during a canary, else the in-cluster address."""
    status = obj.get("status") or {}
    if canary_traffic_percent < 100:
        traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
        tagged = [t.get("url") for t in traffic if t.get("latestRevision") and t.get("url")]
        if not tagged:
            raise KServeDeployError(f"canary rollout: no URL for the latest revision in the status (is the "
                                    f"{ANNOTATION_TAG_ROUTING} annotation honoured?)")
        return str(tagged[0])
    # The cluster-local address first: the deploy step runs in the cluster, and the external URL usually needs
    # the ingress gateway, DNS and a token.
    url = (status.get("address") or {}).get("url") or status.get("url")
    if not url:
        raise KServeDeployError("the InferenceService is Ready but its status has no URL")
    return str(url)


# --- the API ------------------------------------------------------------------------------------------------------


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
            raise KServeDeployError(f"no Kubernetes credentials: run in a cluster (the step's service account) or "
                                    f"set KUBECONFIG ({first_line(exc)})") from exc
    return k8s.ApiClient(configuration)


def current_namespace(path: Path = SERVICE_ACCOUNT_NAMESPACE_FILE) -> str:
    """The namespace this pod runs in (from its service account), for an empty ``namespace`` parameter."""
    try:
        namespace = path.read_text().strip()
    except OSError:
        namespace = ""
    if not namespace:
        raise KServeDeployError("no namespace given and not running in a pod: set the serving key 'namespace'")
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

    def pause(self, attempt: int) -> None:
        self.sleep(min(self.backoff_s * 2**attempt, 8.0))

    def _call(self, verb: str, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self.request_timeout)
        last = ""
        for attempt in range(self.attempts):
            try:
                return fn(GROUP, VERSION, self.namespace, PLURAL, *args, **kwargs)
            except k8s.ApiException as exc:
                if exc.status == 409:
                    raise _Conflict(f"{verb} {self.describe(name)}: 409 {_api_message(exc)}") from exc
                if exc.status not in RETRY_STATUSES:
                    raise self._error(verb, name, exc) from exc
                last = f"HTTP {exc.status}: {_api_message(exc)}"
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last = f"cannot reach the Kubernetes API at {self.host} ({type(exc).__name__})"
            if attempt + 1 < self.attempts:
                self.log(f"{verb} {self.describe(name)}: {last}; retrying")
                self.pause(attempt)
        raise KServeDeployError(f"{verb} {self.describe(name)} failed {self.attempts} times, last with {last}")

    def _error(self, verb: str, name: str, exc: k8s.ApiException) -> KServeDeployError:
        message = _api_message(exc)
        what = self.describe(name)
        if exc.status == 401:
            return KServeDeployError(f"{verb} {what}: the Kubernetes API rejected the credentials (401 {message}): "
                                     "check the step's service account token or KUBECONFIG")
        if exc.status == 403:
            return KServeDeployError(
                f"{verb} {what}: forbidden (403 {message}): bind the step's service account to a Role that may "
                f"get/create/update/patch/delete/watch inferenceservices.serving.kserve.io in {self.namespace} "
                "(kserve/rbac.yaml: kubectl apply -k kserve/)"
            )
        if exc.status == 404:
            return KServeDeployError(f"{verb} {what}: not found (404 {message}): is KServe installed and does "
                                     f"namespace {self.namespace} exist?")
        if exc.status in (400, 422):
            return KServeDeployError(f"{verb} {what}: the API server rejected the spec ({exc.status} {message})")
        return KServeDeployError(f"{verb} {what}: HTTP {exc.status} {message}")

    def get(self, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self._call("get", name, self.api.get_namespaced_custom_object, name)
        except KServeDeployError as exc:
            cause = exc.__cause__
            if isinstance(cause, k8s.ApiException) and cause.status == 404 and _names_object(cause, name):
                return None
            raise

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("create", body["metadata"]["name"], self.api.create_namespaced_custom_object, body)

    def replace(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("replace", name, self.api.replace_namespaced_custom_object, name, body)

    def patch(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (what the client sends for a dict body)."""
        return self._call("patch", name, self.api.patch_namespaced_custom_object, name, patch)

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


# --- apply, wait, roll back ----------------------------------------------------------------------------------------


def _replacement(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """``desired``'s labels, annotations and spec over ``current``'s identity (resourceVersion, finalizers…)."""
    metadata = {k: v for k, v in (current.get("metadata") or {}).items() if k != "managedFields"}
    wanted = desired.get("metadata") or {}
    for key in ("labels", "annotations"):
        if wanted.get(key):
            metadata[key] = dict(wanted[key])
        else:
            metadata.pop(key, None)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": desired["spec"]}


def apply_inference_service(
    isvcs: InferenceServices, manifest: Mapping[str, Any], conflicts: int = 5
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Creates the InferenceService, or replaces the live one; a 409 re-reads the object and tries again.

    Returns:
        ``(before, after)``: the object as it was (None if absent) and as the API server stored it.
    """
    name = manifest["metadata"]["name"]
    last: KServeDeployError | None = None
    for attempt in range(max(1, conflicts)):
        before = isvcs.get(name)
        try:
            if before is None:
                return None, isvcs.create(manifest)
            return before, isvcs.replace(name, _replacement(before, manifest))
        except _Conflict as exc:
            last = exc
            isvcs.log(f"{exc}; re-reading and trying again")
            isvcs.pause(attempt)
    raise KServeDeployError(f"{last} (still conflicting after {conflicts} attempts)")


def wait_until_ready(
    isvcs: InferenceServices,
    name: str,
    generation: int,
    timeout_s: float,
    baseline_failure: Any = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Waits until generation ``generation`` is Ready; fails fast on the InferenceService's own failure.

    Raises:
        KServeDeployError: a failure reported by KServe (its message), the object was deleted, or ``timeout_s``
            passed (with the last state seen).
    """
    what = f"{isvcs.describe(name)} generation {generation}"
    deadline = clock() + timeout_s
    obj = isvcs.get(name)
    while True:
        if obj is None:
            raise KServeDeployError(f"{what} was deleted while waiting for it")
        state = rollout_state(obj, generation, baseline_failure)
        if state.phase == "ready":
            return obj
        if state.phase == "failed":
            raise KServeDeployError(f"{what} failed: {state.detail}")
        remaining = deadline - clock()
        if remaining <= 0:
            raise KServeDeployError(f"{what} not Ready after {timeout_s:.0f} s: {state.detail}")
        resource_version = (obj.get("metadata") or {}).get("resourceVersion")
        window = max(1, math.ceil(min(remaining, WATCH_WINDOW_S)))
        events = isvcs.watch(name, resource_version, window)
        # Watch errors (expired resourceVersion, dropped connection) just end the window: the object is re-read
        # below, so nothing is lost but a little latency.
        with contextlib.suppress(k8s.ApiException, urllib3.exceptions.HTTPError, OSError), contextlib.closing(events):
            for kind, event_obj in events:
                obj = None if kind == "DELETED" else event_obj
                if obj is None or rollout_state(obj, generation, baseline_failure).phase != "pending":
                    break
        if obj is not None:
            obj = isvcs.get(name)


def _failure_info(obj: Mapping[str, Any] | None) -> Any:
    return (((obj or {}).get("status") or {}).get("modelStatus") or {}).get("lastFailureInfo")


def roll_back(
    isvcs: InferenceServices, name: str, before: Mapping[str, Any] | None, timeout_s: float,
) -> str:
    """Puts the previous spec back (or deletes a first deployment); returns what was done, in a few words."""
    if before is None:
        isvcs.delete(name)
        return "deleted the new InferenceService (nothing was served before)"
    desired = {"metadata": before.get("metadata") or {}, "spec": before["spec"]}
    for attempt in range(5):
        current = isvcs.get(name)
        try:
            if current is None:
                restored = isvcs.create({"apiVersion": API_VERSION, "kind": KIND,
                                         "metadata": {k: v for k, v in desired["metadata"].items()
                                                      if k in ("name", "namespace", "labels", "annotations")},
                                         "spec": desired["spec"]})
            else:
                restored = isvcs.replace(name, _replacement(current, desired))
            break
        except _Conflict:
            isvcs.pause(attempt)
    else:
        raise KServeDeployError("rollback kept conflicting")
    generation = int(restored["metadata"].get("generation") or 1)
    wait_until_ready(isvcs, name, generation, timeout_s, _failure_info(current))
    return f"rolled back to the previous spec (generation {generation}, Ready)"


# --- the whole deploy ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingOptions:
    """How to serve on KServe: everything `build_inference_service` takes besides name, URI and model card."""

    namespace: str
    runtime: str
    service_account: str
    resources: Resources
    min_replicas: int
    max_replicas: int
    canary_traffic_percent: int = 100
    istio_sidecar: bool = False
    runtime_version: str = ""
    predictor_image: str = ""

    def builder_kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def deploy_kserve(
    store: ObjectStore,
    model_dir: Path,
    predictions: pd.DataFrame,
    feature_names: list[str],
    metrics: Mapping[str, Any],
    bucket: str,
    model_name: str,
    options: ServingOptions,
    isvcs: InferenceServices,
    spec_path: Path,
    ready_timeout_s: float,
    log: Callable[[str], None] = print,
    atol: float = EQUALITY_ATOL,
) -> DeployResult:
    """Stores the model, serves it as an InferenceService, smoke-tests it, then promotes it to champion.

    On a failed rollout or smoke test the previous spec is put back and the champion record is left untouched.

    Args:
        store: Model store.
        model_dir: Trained model folder (SavedModel under ``1/`` and the model card).
        predictions: Evaluate's test rows with their ``prediction``.
        feature_names: Feature columns, in the model's order.
        metrics: Evaluate's metrics (recorded with the champion).
        bucket: Bucket of the model store.
        model_name: Model name: S3 prefix, InferenceService name and served name.
        options: Namespace, runtime and the rest of the serving spec.
        isvcs: The InferenceServices API of ``options.namespace``.
        spec_path: Where to write the applied InferenceService as YAML.
        ready_timeout_s: How long a rollout may take to become Ready.
        log: Progress lines.
        atol: Largest accepted |live - evaluate| (float32 serving against float64 evaluation).

    Raises:
        KServeDeployError: One line saying what failed and what was rolled back.
    """
    card = read_card(Path(model_dir))
    # A dry build checks the options before anything is uploaded: a bad option must not leave a stray version.
    build_inference_service(
        model_name, storage_uri=f"s3://dry-run/{model_name}/0/", trained_tf_version=card.get("tensorflow_version"),
        **options.builder_kwargs(),
    )
    # Likewise an unreachable API or a missing permission shows before the upload.
    isvcs.get(model_name)
    location, manifest_files = store_version(store, bucket, model_name, Path(model_dir), metrics)
    log(f"stored {len(manifest_files['files'])} files under {location.uri}")
    isvc = build_inference_service(
        model_name, storage_uri=location.uri, trained_tf_version=card.get("tensorflow_version"),
        **options.builder_kwargs(),
    )
    manifest = to_manifest(isvc)
    Path(spec_path).parent.mkdir(parents=True, exist_ok=True)
    Path(spec_path).write_text(manifest_yaml(manifest))
    previous = read_champion(store, bucket, model_name)
    rows, expected = smoke_rows(predictions, feature_names)

    before, after = apply_inference_service(isvcs, manifest)
    generation = int(after["metadata"].get("generation") or 1)
    log(f"{'replaced' if before else 'created'} {isvcs.describe(model_name)} (generation {generation}); "
        f"waiting up to {ready_timeout_s:.0f} s for it to be Ready")
    try:
        ready = wait_until_ready(isvcs, model_name, generation, ready_timeout_s, _failure_info(before))
        smoke_url = smoke_url_of(ready, options.canary_traffic_percent)
        diff = local.smoke_test(smoke_url, model_name, rows, expected, atol=atol)
    except DeployError as exc:
        try:
            done = roll_back(isvcs, model_name, before, ready_timeout_s)
        except KServeDeployError as rollback_exc:
            done = f"rollback failed too: {rollback_exc}"
        log(done)
        raise KServeDeployError(f"{exc}; {done}; the champion is unchanged") from None
    status = ready.get("status") or {}
    endpoint = str(status.get("url") or smoke_url)
    log(f"smoke test passed on {smoke_url} (max |diff| {diff:.2g} over {len(rows)} rows)")
    return promote(
        store, location, manifest_files, metrics, feature_names, previous, endpoint, target="kserve",
        inference_service=f"{isvcs.namespace}/{model_name}", generation=generation, runtime=options.runtime,
    )

