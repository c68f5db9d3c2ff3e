"""Where and how the model is served: the deploy step's infrastructure knobs as one typed value.

The pipeline takes them as ONE struct parameter, ``serving`` (a JSON object), so the run form keeps to the
parameters people change per run. A run may give any subset of the keys; the others keep the defaults below
(``components.config``). Unknown keys and values of the wrong type fail with one line naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from typing import Any

from boston_model.errors import BadInput
from components import config

TARGETS = ("kserve", "process", "container")


@dataclasses.dataclass(frozen=True)
class ServingSettings:
    """The ``serving`` parameter, typed.

    Attributes:
        target: "kserve" (an InferenceService), "process" (a predictor process on this machine; what
            `boston-pipeline run` uses) or "container" (a KServe-shaped pod on the local Docker engine;
            `boston-pipeline run --runner docker`).
        namespace: Namespace of the InferenceService; empty = the namespace the run executes in.
        runtime: "tensorflow" (KServe's TF Serving runtime) or "custom" (the project's predictor image).
        runtime_version: tensorflow/serving image tag, at least the TensorFlow that trained the model.
        predictor_image: Predictor image for runtime "custom".
        service_account: Service account of the predictor; it carries the S3 Secret for KServe.
        cpu_request: Predictor CPU request, e.g. "100m".
        cpu_limit: Predictor CPU limit.
        memory_request: Predictor memory request, e.g. "256Mi".
        memory_limit: Predictor memory limit.
        min_replicas: Minimum predictor replicas (0 = scale to zero on serverless KServe).
        max_replicas: Maximum predictor replicas.
        canary_traffic_percent: Traffic share of the new revision; 100 rolls out fully.
        istio_sidecar: Inject the Istio sidecar into the predictor pods.
        grpc: Serve V2 over gRPC beside REST (runtime "custom"); false for KServe's Knative mode (one port).
        ready_timeout_s: Seconds the new InferenceService generation may take to become Ready.
        local_port: Port of the local predictor (targets "process" and "container"), on 127.0.0.1.
    """

    target: str = config.DEPLOY_TARGET
    namespace: str = config.KSERVE_NAMESPACE
    runtime: str = config.SERVING_RUNTIME
    runtime_version: str = config.TF_SERVING_VERSION
    predictor_image: str = config.PREDICTOR_IMAGE
    service_account: str = config.SERVICE_ACCOUNT
    cpu_request: str = config.CPU_REQUEST
    cpu_limit: str = config.CPU_LIMIT
    memory_request: str = config.MEMORY_REQUEST
    memory_limit: str = config.MEMORY_LIMIT
    min_replicas: int = config.MIN_REPLICAS
    max_replicas: int = config.MAX_REPLICAS
    canary_traffic_percent: int = config.CANARY_TRAFFIC_PERCENT
    istio_sidecar: bool = config.ISTIO_SIDECAR
    grpc: bool = config.GRPC
    ready_timeout_s: int = config.READY_TIMEOUT_S
    local_port: int = config.LOCAL_PORT

    def as_dict(self) -> dict[str, Any]:
        """The settings as the JSON object the pipeline parameter holds."""
        return dataclasses.asdict(self)


def serving_defaults() -> dict[str, Any]:
    """Every key with its default: the ``serving`` parameter's default in the compiled pipeline."""
    return ServingSettings().as_dict()


def parse_serving(values: Mapping[str, Any]) -> ServingSettings:
    """Reads a ``serving`` object: the keys given override the defaults.

    Numbers may arrive as floats (KFP passes a struct through protobuf, where every number is a double); an
    integer key accepts a whole float.

    Raises:
        BadInput: Not an object, an unknown key (the message lists the valid ones), a value of the wrong
            type, or an unknown target.
    """
    if not isinstance(values, Mapping):
        raise BadInput(f"serving must be a JSON object, got {values!r}")
    kinds = {f.name: f.type for f in dataclasses.fields(ServingSettings)}
    settings: dict[str, Any] = {}
    for key, value in values.items():
        if key not in kinds:
            close = difflib.get_close_matches(str(key), kinds, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BadInput(f"unknown serving key {key!r}{hint}; the keys are: {', '.join(kinds)}")
        settings[key] = _typed(key, kinds[key], value)
    parsed = ServingSettings(**settings)
    if parsed.target not in TARGETS:
        raise BadInput(f"unknown deploy target {parsed.target!r}: use 'process', 'container' or 'kserve'")
    return parsed


def _typed(key: str, kind: str, value: Any) -> Any:
    """``value`` as the field's type (the annotations are strings: this module uses postponed evaluation)."""
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
    words = {"str": "a string", "int": "an integer", "bool": "true or false"}
    raise BadInput(f"serving key {key!r} expects {words[kind]}, got {value!r}")
