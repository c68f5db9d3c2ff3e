"""The InferenceService for a model version, as a typed `V1beta1InferenceService` built by a pure function.

Two runtimes: KServe's TF Serving (``kserve-tensorflow-serving``, the SavedModel under ``1/``) or our predictor image
(its container shape from `predictor_container`). `to_manifest` gives the object as the API server sees it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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

from boston_model.errors import BadInput
from boston_model.store import parse_s3_uri
from components.deploy.predictor_container import GRPC_PORT, GRPC_PORT_NAME, PREDICTOR_PORT, predictor_container

GROUP = kserve_constants.KSERVE_GROUP
VERSION = kserve_constants.KSERVE_V1BETA1_VERSION
PLURAL = kserve_constants.KSERVE_PLURAL_INFERENCESERVICE
API_VERSION = kserve_constants.KSERVE_V1BETA1
KIND = kserve_constants.KSERVE_KIND_INFERENCESERVICE

RUNTIMES = ("tensorflow", "custom")
TF_SERVING_RUNTIME = "kserve-tensorflow-serving"  # KServe's ClusterServingRuntime for TensorFlow SavedModels
ANNOTATION_SIDECAR = "sidecar.istio.io/inject"
ANNOTATION_TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
# KServe's documented switch and the port/path Prometheus scrapes (the custom runtime's /metrics: KServe's own
# metrics and the served rows per feature and training bin that `boston-pipeline models drift` reads).
ANNOTATION_SCRAPE = "serving.kserve.io/enable-prometheus-scraping"
ANNOTATION_METRICS_PORT = "prometheus.kserve.io/port"
ANNOTATION_METRICS_PATH = "prometheus.kserve.io/path"
PART_OF = "boston-housing-kfp"
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAME_MAX = 63


def storage_uri_for(uri: str) -> str:
    """The ``s3://bucket/path/`` KServe's storage initializer needs, from a KFP artifact or model-store URI.

    KFP artifact URIs on Kubeflow's object store are ``minio://bucket/path`` (or ``s3://``). The result always ends
    in one slash: the initializer copies every key under the prefix, and ``s3://models/boston`` would also copy
    ``s3://models/boston-v2/…``.

    Raises:
        BadInput: Another scheme, no bucket or path, or empty / ``.`` / ``..`` path segments.
    """
    try:
        bucket, key = parse_s3_uri(uri.strip())
    except BadInput:
        raise BadInput(f"storage URI {uri!r} is not s3://bucket/path or minio://bucket/path") from None
    segments = key.rstrip("/").split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise BadInput(f"storage URI {uri!r} has an empty, '.' or '..' path segment")
    return f"s3://{bucket}/{'/'.join(segments)}/"


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
        raise BadInput(f"{version!r} is not a version number")
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
    grpc: bool = True,
) -> V1beta1InferenceService:
    """Builds the InferenceService that serves ``storage_uri`` as ``model_name`` (pure: no I/O).

    Args:
        model_name: InferenceService name and served model name (a DNS label).
        namespace: Namespace of the InferenceService.
        storage_uri: Model version prefix (normalised by `storage_uri_for`).
        runtime: "tensorflow" (KServe's TF Serving runtime, the SavedModel under ``1/``) or "custom" (our
            predictor image, whose entry point is ``boston-predictor``).
        service_account: Service account whose Secret gives the storage initializer its S3 keys ("" = default).
        resources: Container requests and limits.
        min_replicas: Minimum replicas (0 allows scale to zero on serverless KServe).
        max_replicas: Maximum replicas.
        canary_traffic_percent: Share of traffic for the new revision; 100 rolls out fully (the field is omitted).
        istio_sidecar: Value of the ``sidecar.istio.io/inject`` annotation.
        runtime_version: TF Serving image tag (runtime "tensorflow").
        predictor_image: Image of the custom predictor (runtime "custom").
        trained_tf_version: TensorFlow that trained the model; TF Serving must be at least as new.
        grpc: Serve V2 over gRPC beside REST (runtime "custom"): port 8081 declared as KServe expects, named
            ``h2c``. Knative (serverless mode) accepts one container port only: pass False there.

    Raises:
        ValueError: An invalid name, runtime, replica range, traffic share, URI, image or runtime version.
    """
    if not _NAME.match(model_name) or len(model_name) > _NAME_MAX:
        raise BadInput(f"model name {model_name!r} is not a DNS label (lowercase letters, digits, '-'; "
                         f"starts with a letter; at most {_NAME_MAX} characters)")
    if not namespace:
        raise BadInput("namespace is empty")
    if runtime not in RUNTIMES:
        raise BadInput(f"unknown runtime {runtime!r}: use {' or '.join(map(repr, RUNTIMES))}")
    if not 0 <= min_replicas <= max_replicas or max_replicas < 1:
        raise BadInput(f"replicas min {min_replicas} / max {max_replicas}: need 0 <= min <= max and max >= 1")
    if not 0 <= canary_traffic_percent <= 100:
        raise BadInput(f"canary traffic percent {canary_traffic_percent} is not within 0..100")
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
            raise BadInput("runtime 'tensorflow' needs a runtime version (the TF Serving image tag)")
        if trained_tf_version and version_tuple(runtime_version) < version_tuple(trained_tf_version):
            raise BadInput(f"TF Serving {runtime_version} is older than TensorFlow {trained_tf_version}, which "
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
            raise BadInput("runtime 'custom' needs the predictor image")
        shape = predictor_container(model_name, uri, grpc_port=GRPC_PORT if grpc else None)
        ports = [k8s.V1ContainerPort(container_port=shape.port, protocol="TCP")]
        if shape.grpc_port:
            ports.append(k8s.V1ContainerPort(name=GRPC_PORT_NAME, container_port=shape.grpc_port, protocol="TCP"))
        predictor.containers = [k8s.V1Container(
            name=shape.name,
            image=predictor_image,
            args=list(shape.args),
            env=[k8s.V1EnvVar(name=key, value=value) for key, value in shape.env.items()],
            ports=ports,
            resources=requirements,
            # Ready only once the model is loaded and self-checked: a rollout moves traffic to a new pod only then,
            # and KServe's rolling update keeps the old pods until it is (no gap; docs/kubeflow.md).
            readiness_probe=k8s.V1Probe(
                http_get=k8s.V1HTTPGetAction(path=f"/v2/models/{model_name}/ready", port=shape.port),
                period_seconds=2, failure_threshold=3,
            ),
        )]
    annotations = {ANNOTATION_SIDECAR: "true" if istio_sidecar else "false"}
    if runtime == "custom":
        annotations.update({ANNOTATION_SCRAPE: "true", ANNOTATION_METRICS_PORT: str(PREDICTOR_PORT),
                            ANNOTATION_METRICS_PATH: "/metrics"})
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
