"""KFP component: store the model in S3 and serve it (a local process, a local KServe-shaped pod of containers, or a
KServe InferenceService)."""

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
    model_name: str,
    bucket: str,
    s3_endpoint: str,
    serving: dict,
) -> NamedTuple("DeployOutputs", endpoint=str, model_uri=str, version=str):
    """Pushes the model to an immutable versioned S3 prefix, serves it, smoke-tests it, then promotes it.

    Args:
        model: The trained model folder.
        predictions: Evaluate's test predictions (the smoke test compares the live endpoint with them).
        metrics: Evaluate's metrics (recorded in the champion record).
        applied_spec: What was applied: the InferenceService YAML (kserve) or the local server's record (local).
        model_name: Model name: S3 prefix, InferenceService name and served name.
        bucket: Bucket of the model store.
        s3_endpoint: S3/MinIO endpoint; empty = MINIO_ENDPOINT from the environment.
        serving: Where and how to serve (target, namespace, runtime, resources, replicas, …): any subset of the keys
            of ``components.deploy.serving.ServingSettings``; the others keep their defaults.
    """
    from collections import namedtuple
    from pathlib import Path

    import pandas as pd

    from boston_model.card import read_card
    from components import config
    from components.common.runtime import fail_with_one_line, object_store
    from components.deploy.serving import parse_serving

    outputs = namedtuple("DeployOutputs", ["endpoint", "model_uri", "version"])
    with fail_with_one_line("deploy"):
        settings = parse_serving(serving)
        # The model card is what the server reads too: one source for the feature order.
        feature_names = list(read_card(Path(model.path))["feature_names"])
        predictions_frame = pd.read_csv(predictions.path)
        scores = {k: v for k, v in metrics.metadata.items() if isinstance(v, (int, float))}
        store = object_store(s3_endpoint)
        if settings.target == "local":
            from boston_model.versions import dumps
            from components.common.state import state_dir
            from components.deploy.core import deploy_local

            result = deploy_local(
                store, Path(model.path), predictions_frame, feature_names, scores,
                state_dir(), bucket, model_name, config.LOCAL_HOST, settings.local_port,
            )
            Path(applied_spec.path).write_text(dumps({"target": "local", "url": result.endpoint,
                                                      "storage_uri": result.model_uri}))
        elif settings.target == "container":
            from components.deploy import container_target as ct

            options = ct.ContainerOptions.from_env(settings.predictor_image, settings.local_port, config.IMAGE)
            result = ct.deploy_container(store, Path(model.path), predictions_frame, feature_names, scores,
                                         bucket, model_name, options, Path(applied_spec.path))
        else:
            from components.deploy.kserve_api import InferenceServices, current_namespace, kube_api_client
            from components.deploy.kserve_spec import Resources
            from components.deploy.kserve_target import ServingOptions, deploy_kserve

            resolved = settings.namespace or current_namespace()
            options = ServingOptions(
                namespace=resolved, runtime=settings.runtime, service_account=settings.service_account,
                resources=Resources(settings.cpu_request, settings.cpu_limit, settings.memory_request,
                                    settings.memory_limit),
                min_replicas=settings.min_replicas, max_replicas=settings.max_replicas,
                canary_traffic_percent=settings.canary_traffic_percent, istio_sidecar=settings.istio_sidecar,
                runtime_version=settings.runtime_version, predictor_image=settings.predictor_image,
            )
            result = deploy_kserve(
                store, Path(model.path), predictions_frame, feature_names, scores, bucket, model_name, options,
                InferenceServices(kube_api_client(), resolved), Path(applied_spec.path),
                settings.ready_timeout_s,
            )
            applied_spec.metadata.update({"namespace": resolved, "runtime": settings.runtime,
                                          "storage_uri": result.model_uri})
        print(f"serving {result.model_uri} at {result.endpoint}")
        return outputs(result.endpoint, result.model_uri, result.version)
