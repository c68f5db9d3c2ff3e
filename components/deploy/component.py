"""KFP component: store the model in S3 and serve it (locally, or as a KServe InferenceService)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components import config


@dsl.component(base_image=config.IMAGE, install_kfp_package=False)
def deploy_model(
    model: Input[Model],
    predictions: Input[Dataset],
    metrics: Input[Metrics],
    applied_spec: Output[Artifact],
    target: str,
    model_name: str,
    bucket: str,
    s3_endpoint: str,
    local_port: int,
    namespace: str,
    runtime: str,
    runtime_version: str,
    predictor_image: str,
    service_account: str,
    cpu_request: str,
    cpu_limit: str,
    memory_request: str,
    memory_limit: str,
    min_replicas: int,
    max_replicas: int,
    canary_traffic_percent: int,
    istio_sidecar: bool,
    ready_timeout_s: int,
) -> NamedTuple("DeployOutputs", endpoint=str, model_uri=str, version=str):
    """Pushes the model to an immutable versioned S3 prefix, serves it, smoke-tests it, then promotes it.

    Args:
        model: The trained model folder.
        predictions: Evaluate's test predictions (the smoke test compares the live endpoint with them).
        metrics: Evaluate's metrics (recorded in the champion record).
        applied_spec: What was applied: the InferenceService YAML (kserve) or the local server's record (local).
        target: "local" (KServe ModelServer process on this machine) or "kserve" (an InferenceService).
        model_name: Model name: S3 prefix, InferenceService name and served name.
        bucket: Bucket of the model store.
        s3_endpoint: S3/MinIO endpoint; empty = MINIO_ENDPOINT from the environment.
        local_port: Port of the local predictor (target "local"), bound to 127.0.0.1.
        namespace: Namespace of the InferenceService (kserve); empty = the namespace this step runs in.
        runtime: "tensorflow" (KServe's TF Serving runtime) or "custom" (our predictor image).
        runtime_version: TF Serving image tag for runtime "tensorflow" (>= the TensorFlow that trained the model).
        predictor_image: Predictor image for runtime "custom".
        service_account: Service account that carries the S3 Secret for KServe's storage initializer.
        cpu_request: Predictor CPU request, e.g. "100m".
        cpu_limit: Predictor CPU limit.
        memory_request: Predictor memory request, e.g. "256Mi".
        memory_limit: Predictor memory limit.
        min_replicas: Minimum predictor replicas.
        max_replicas: Maximum predictor replicas.
        canary_traffic_percent: Traffic share of the new revision; 100 rolls out fully.
        istio_sidecar: Inject the Istio sidecar into the predictor pods.
        ready_timeout_s: How long the InferenceService may take to become Ready.
    """
    from collections import namedtuple
    from pathlib import Path

    import pandas as pd

    from components import config
    from components.common.model import read_card
    from components.common.runtime import fail_with_one_line, object_store

    outputs = namedtuple("DeployOutputs", ["endpoint", "model_uri", "version"])
    with fail_with_one_line("deploy"):
        if target not in ("local", "kserve"):
            raise ValueError(f"unknown deploy target {target!r}: use 'local' or 'kserve'")
        # The model card is what the server reads too: one source for the feature order.
        feature_names = list(read_card(Path(model.path))["feature_names"])
        predictions_frame = pd.read_csv(predictions.path)
        scores = {k: v for k, v in metrics.metadata.items() if isinstance(v, (int, float))}
        store = object_store(s3_endpoint)
        if target == "local":
            from components.common.embedded_s3 import state_dir
            from components.common.versions import dumps
            from components.deploy.core import deploy_local

            result = deploy_local(
                store, Path(model.path), predictions_frame, feature_names, scores,
                state_dir(), bucket, model_name, config.LOCAL_HOST, local_port,
            )
            Path(applied_spec.path).write_text(dumps({"target": "local", "url": result.endpoint,
                                                      "storage_uri": result.model_uri}))
        else:
            from components.deploy import kserve_target as kt

            resolved = namespace or kt.current_namespace()
            options = kt.ServingOptions(
                namespace=resolved, runtime=runtime, service_account=service_account,
                resources=kt.Resources(cpu_request, cpu_limit, memory_request, memory_limit),
                min_replicas=min_replicas, max_replicas=max_replicas,
                canary_traffic_percent=canary_traffic_percent, istio_sidecar=istio_sidecar,
                runtime_version=runtime_version, predictor_image=predictor_image,
            )
            result = kt.deploy_kserve(
                store, Path(model.path), predictions_frame, feature_names, scores, bucket, model_name, options,
                kt.InferenceServices(kt.kube_api_client(), resolved), Path(applied_spec.path), ready_timeout_s,
            )
            applied_spec.metadata.update({"namespace": resolved, "runtime": runtime, "storage_uri": result.model_uri})
        print(f"serving {result.model_uri} at {result.endpoint}")
        return outputs(result.endpoint, result.model_uri, result.version)
