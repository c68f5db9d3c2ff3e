"""KFP component: store the model in S3 and serve it (locally, or as a KServe InferenceService)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model

from pipeline import config


@dsl.component(base_image=config.IMAGE, install_kfp_package=False)
def deploy_model(
    model: Input[Model],
    predictions: Input[Dataset],
    metrics: Input[Metrics],
    target: str,
    model_name: str,
    bucket: str,
    s3_endpoint: str,
    local_port: int,
) -> NamedTuple("DeployOutputs", endpoint=str, model_uri=str, version=str):
    """Pushes the model to an immutable versioned S3 prefix, serves it, smoke-tests it, then promotes it.

    Args:
        model: The trained model folder.
        predictions: Evaluate's test predictions (the smoke test compares the live endpoint with them).
        metrics: Evaluate's metrics (recorded in the champion record).
        target: "local" (KServe ModelServer process on this machine) or "kserve" (an InferenceService).
        model_name: Model name: S3 prefix and served name.
        bucket: Bucket of the model store.
        s3_endpoint: S3/MinIO endpoint; empty = MINIO_ENDPOINT from the environment.
        local_port: Port of the local predictor (target "local"), bound to 127.0.0.1.
    """
    from collections import namedtuple
    from pathlib import Path

    import pandas as pd

    from components.common.embedded_s3 import state_dir
    from components.common.runtime import fail_with_one_line, object_store
    from components.deploy.core import deploy_local

    outputs = namedtuple("DeployOutputs", ["endpoint", "model_uri", "version"])
    with fail_with_one_line("deploy"):
        if target != "local":
            raise ValueError(f"unknown deploy target {target!r}: use 'local' or 'kserve'")
        feature_names = list(model.metadata.get("feature_names") or [])
        predictions_frame = pd.read_csv(predictions.path)
        if not feature_names:
            feature_names = [c for c in predictions_frame.columns if c not in (config.TARGET, "prediction")]
        result = deploy_local(
            object_store(s3_endpoint), Path(model.path), predictions_frame, feature_names,
            {k: v for k, v in metrics.metadata.items() if isinstance(v, (int, float))},
            state_dir(), bucket, model_name, config.LOCAL_HOST, local_port,
        )
        print(f"serving {result.model_uri} at {result.endpoint}")
        return outputs(result.endpoint, result.model_uri, result.version)
