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
        applied_spec: What was applied: the InferenceService YAML (kserve) or the served predictor's record
            (process, container).
        model_name: Model name: S3 prefix, InferenceService name and served name.
        bucket: Bucket of the model store.
        s3_endpoint: S3/MinIO endpoint; empty = MINIO_ENDPOINT from the environment.
        serving: Where and how to serve (target, namespace, runtime, resources, replicas, …): any subset of the keys
            of ``components.deploy.serving.ServingSettings``; the others keep their defaults.
    """
    import json
    from collections import namedtuple
    from pathlib import Path

    import pandas as pd

    from boston_model.card import read_card
    from components import config
    from components.common.runtime import fail_with_one_line, object_store
    from components.deploy.release import UNCHECKED, Smoke, deploy
    from components.deploy.serving import parse_serving

    outputs = namedtuple("DeployOutputs", ["endpoint", "model_uri", "version"])
    with fail_with_one_line("deploy"):
        settings = parse_serving(serving)
        # The model card is what the server reads too: one source for the feature order.
        card = read_card(Path(model.path))
        smoke = Smoke.from_predictions(pd.read_csv(predictions.path), list(card["feature_names"]))
        scores = {k: v for k, v in metrics.metadata.items() if isinstance(v, (int, float))}
        store = object_store(s3_endpoint)
        if settings.target == "process":
            from components.deploy.process import ProcessTarget

            target = ProcessTarget.from_env(store, model_name, config.LOCAL_HOST, settings.local_port)
        elif settings.target == "container":
            from components.deploy.container import ContainerTarget

            target = ContainerTarget.from_env(store, model_name, settings.local_port, settings.predictor_image,
                                              config.IMAGE)
        else:
            from components.deploy.kserve_api import InferenceServices, current_namespace, kube_api_client
            from components.deploy.kserve_target import KServeTarget

            namespace = settings.namespace or current_namespace()
            target = KServeTarget(InferenceServices(kube_api_client(), namespace), model_name, settings,
                                  Path(applied_spec.path))
            applied_spec.metadata.update({"namespace": namespace, "runtime": settings.runtime})
        # The champion evaluate gated against ("" = none): the release refuses if it moved since.
        gated = predictions.metadata.get("champion_version", UNCHECKED)
        released = deploy(store, bucket, model_name, Path(model.path), scores, target, settings, smoke,
                          gated if gated is UNCHECKED else gated or None,
                          lock_dir=target.state if settings.target == "process" else None)
        if settings.target != "kserve":
            Path(applied_spec.path).write_text(json.dumps({"target": settings.target, "url": released.endpoint,
                                                           "storage_uri": released.model_uri,
                                                           **target.record()},
                                               indent=2, sort_keys=True))
        applied_spec.metadata["storage_uri"] = released.model_uri
        print(f"serving {released.model_uri} at {released.endpoint}")
        return outputs(released.endpoint, released.model_uri, released.version)
