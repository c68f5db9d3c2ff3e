"""The Boston Housing pipeline: composition only (the logic lives in components/<step>/core.py)."""

from typing import NamedTuple

from kfp import dsl, kubernetes
from kfp.dsl import HTML, Dataset, Metrics, PipelineTask

from components.deploy.component import deploy_model
from components.evaluate.component import evaluate_model
from components.load.component import load_data
from components.split.component import split_data
from components.train.component import train_model
from pipeline import config


def _reads_s3(task: PipelineTask) -> None:
    """Gives the step the S3 keys from the cluster Secret (kfp.local ignores this; the local run uses the env)."""
    kubernetes.use_secret_as_env(task, secret_name=config.S3_SECRET_NAME, secret_key_to_env=config.S3_SECRET_KEY_TO_ENV)


def _retried(task: PipelineTask) -> None:
    """Retries a step that only reads over the network (idempotent), for a store or server that blinks."""
    task.set_retry(num_retries=config.NETWORK_RETRIES, backoff_duration=config.RETRY_BACKOFF, backoff_factor=2.0)


@dsl.pipeline(
    name=config.PIPELINE_NAME,
    display_name="Boston Housing: train, gate, deploy to KServe",
    pipeline_config=dsl.PipelineConfig(active_deadline_seconds=config.PIPELINE_TIMEOUT_S),
    description=(
        "Boston Housing linear regression: load and validate the data, split it, train a Keras "
        "Normalization->Dense model, evaluate it against baselines, and - if it passes the gate - store it "
        "in S3/MinIO and serve it with KServe."
    ),
)
def boston_housing_pipeline(
    source: str = config.BUNDLED_SOURCE,
    drop_columns: str = "",
    test_size: float = config.TEST_SIZE,
    seed: int = config.SEED,
    epochs: int = config.EPOCHS,
    batch_size: int = config.BATCH_SIZE,
    learning_rate: float = config.LEARNING_RATE,
    validation_split: float = config.VALIDATION_SPLIT,
    patience: int = config.PATIENCE,
    max_rmse: float = config.MAX_RMSE,
    champion_tolerance: float = config.CHAMPION_TOLERANCE,
    model_name: str = config.MODEL_NAME,
    bucket: str = config.BUCKET,
    s3_endpoint: str = config.CLUSTER_S3_ENDPOINT,
    deploy_target: str = config.DEPLOY_TARGET,
    local_port: int = config.LOCAL_PORT,
    kserve_namespace: str = config.KSERVE_NAMESPACE,
    serving_runtime: str = config.SERVING_RUNTIME,
    runtime_version: str = config.TF_SERVING_VERSION,
    predictor_image: str = config.PREDICTOR_IMAGE,
    service_account: str = config.SERVICE_ACCOUNT,
    cpu_request: str = config.CPU_REQUEST,
    cpu_limit: str = config.CPU_LIMIT,
    memory_request: str = config.MEMORY_REQUEST,
    memory_limit: str = config.MEMORY_LIMIT,
    min_replicas: int = config.MIN_REPLICAS,
    max_replicas: int = config.MAX_REPLICAS,
    canary_traffic_percent: int = config.CANARY_TRAFFIC_PERCENT,
    istio_sidecar: bool = config.ISTIO_SIDECAR,
    ready_timeout_s: int = config.READY_TIMEOUT_S,
) -> NamedTuple(
    "PipelineOutputs", gate_passed=bool, metrics=Metrics, report=HTML, predictions=Dataset
):
    """Builds the DAG load -> split -> train -> evaluate -> If(gate) -> deploy.

    Args:
        source: Training data: "bundled" (ships in the image), s3://bucket/key, http(s)://… or a path.
        drop_columns: Comma-separated feature columns to drop, e.g. "B" (see the data card).
        test_size: Fraction of rows held out for testing.
        seed: Seed of the split and of the training.
        epochs: Maximum training epochs (early stopping usually ends sooner).
        batch_size: Rows per gradient step.
        learning_rate: Adam learning rate.
        validation_split: Fraction of training rows for early stopping; 0 stops on the training loss.
        patience: Early-stopping patience, in epochs.
        max_rmse: Largest acceptable test RMSE; above it nothing is deployed.
        champion_tolerance: How much worse than the serving champion's RMSE is acceptable (0.05 = 5 %).
        model_name: Model name: S3 prefix, InferenceService name and served model name.
        bucket: Bucket of the model store (versions go under <bucket>/<model_name>/<version>/).
        s3_endpoint: S3 endpoint host:port of the model store; empty = MINIO_ENDPOINT from the environment.
        deploy_target: "kserve" (an InferenceService) or "local" (a predictor process; `boston-pipeline run`).
        local_port: Port of the local predictor (deploy_target "local").
        kserve_namespace: Namespace of the InferenceService; empty = the namespace the run executes in.
        serving_runtime: "tensorflow" (KServe's TF Serving runtime) or "custom" (the project's predictor image).
        runtime_version: tensorflow/serving image tag, at least the TensorFlow that trained the model.
        predictor_image: Predictor image for serving_runtime "custom".
        service_account: Service account of the predictor; it carries the S3 Secret for KServe.
        cpu_request: Predictor CPU request.
        cpu_limit: Predictor CPU limit.
        memory_request: Predictor memory request.
        memory_limit: Predictor memory limit.
        min_replicas: Minimum predictor replicas (0 = scale to zero on serverless KServe).
        max_replicas: Maximum predictor replicas.
        canary_traffic_percent: Traffic share of the new revision; 100 rolls out fully.
        istio_sidecar: Inject the Istio sidecar into the predictor pods.
        ready_timeout_s: Seconds the new InferenceService generation may take to become Ready.
    """
    load = load_data(source=source, drop_columns=drop_columns, s3_endpoint=s3_endpoint)
    load.set_display_name("Load and validate data")
    _reads_s3(load)
    _retried(load)
    split = split_data(dataset=load.outputs["dataset"], test_size=test_size, seed=seed)
    split.set_display_name("Split train/test")
    train = train_model(
        train=split.outputs["train"], epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        validation_split=validation_split, patience=patience, seed=seed,
    )
    train.set_display_name("Train Keras model")
    train.set_cpu_request(config.TRAIN_CPU_REQUEST).set_cpu_limit(config.TRAIN_CPU_LIMIT)
    train.set_memory_request(config.TRAIN_MEMORY_REQUEST).set_memory_limit(config.TRAIN_MEMORY_LIMIT)
    evaluate = evaluate_model(
        model=train.outputs["model"], train=split.outputs["train"], test=split.outputs["test"],
        max_rmse=max_rmse, champion_tolerance=champion_tolerance, model_name=model_name, bucket=bucket,
        s3_endpoint=s3_endpoint,
    )
    evaluate.set_display_name("Evaluate and gate")
    _reads_s3(evaluate)
    _retried(evaluate)
    with dsl.If(evaluate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 - a KFP condition, not Python
        deploy = deploy_model(
            model=train.outputs["model"], predictions=evaluate.outputs["predictions"],
            metrics=evaluate.outputs["metrics"], target=deploy_target, model_name=model_name, bucket=bucket,
            s3_endpoint=s3_endpoint, local_port=local_port, namespace=kserve_namespace, runtime=serving_runtime,
            runtime_version=runtime_version, predictor_image=predictor_image, service_account=service_account,
            cpu_request=cpu_request, cpu_limit=cpu_limit, memory_request=memory_request, memory_limit=memory_limit,
            min_replicas=min_replicas, max_replicas=max_replicas, canary_traffic_percent=canary_traffic_percent,
            istio_sidecar=istio_sidecar, ready_timeout_s=ready_timeout_s,
        )
        deploy.set_display_name("Deploy to KServe")
        deploy.set_caching_options(False)  # deploying is the point: a cached "success" would serve nothing new
        _reads_s3(deploy)
        # No step-level retry: deploy retries its transient API calls itself, and re-running the whole step after
        # a deliberate rollback would push another version and roll out (and back) again.
    outputs = NamedTuple("PipelineOutputs", gate_passed=bool, metrics=Metrics, report=HTML, predictions=Dataset)
    return outputs(evaluate.outputs["Output"], evaluate.outputs["metrics"], evaluate.outputs["report"],
                   evaluate.outputs["predictions"])

