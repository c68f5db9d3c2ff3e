"""The Boston Housing pipeline: composition only (the logic lives in components/<step>/core.py)."""

from typing import NamedTuple

from kfp import dsl, kubernetes
from kfp.dsl import HTML, Dataset, Metrics, PipelineTask

from components.deploy.component import deploy_model
from components.deploy.serving import serving_defaults
from components.evaluate.component import evaluate_model
from components.load.component import load_data
from components.split.component import split_data
from components.train.component import train_model
from pipeline import config

# The serving infrastructure's knobs, grouped into one struct parameter so the run form keeps to what people change
# per run; the deploy step fills keys a run leaves out with these same defaults.
SERVING_DEFAULTS = serving_defaults()


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
    max_training_drift: float = config.MAX_TRAINING_DRIFT,
    model_name: str = config.MODEL_NAME,
    bucket: str = config.BUCKET,
    s3_endpoint: str = config.CLUSTER_S3_ENDPOINT,
    serving: dict = SERVING_DEFAULTS,
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
        max_training_drift: Fail the gate when a feature's population stability index between these training rows
            and the champion's exceeds this (0.25 = the usual "drift" band); 0 = report only.
        model_name: Model name: S3 prefix, InferenceService name and served model name.
        bucket: Bucket of the model store (versions go under <bucket>/<model_name>/<version>/).
        s3_endpoint: S3 endpoint host:port of the model store; empty = MINIO_ENDPOINT from the environment.
        serving: Serving infrastructure, one JSON object (target, runtime, resources, replicas, …): set what changes.
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
        max_rmse=max_rmse, champion_tolerance=champion_tolerance, max_training_drift=max_training_drift,
        model_name=model_name, bucket=bucket,
        s3_endpoint=s3_endpoint,
    )
    evaluate.set_display_name("Evaluate and gate")
    _reads_s3(evaluate)
    _retried(evaluate)
    with dsl.If(evaluate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 - a KFP condition, not Python
        deploy = deploy_model(
            model=train.outputs["model"], predictions=evaluate.outputs["predictions"],
            metrics=evaluate.outputs["metrics"], model_name=model_name, bucket=bucket, s3_endpoint=s3_endpoint,
            serving=serving,
        )
        deploy.set_display_name("Deploy to KServe")
        deploy.set_caching_options(False)  # deploying is the point: a cached "success" would serve nothing new
        _reads_s3(deploy)
        # No step-level retry: deploy retries its transient API calls itself, and re-running the whole step after
        # a deliberate rollback would push another version and roll out (and back) again.
    outputs = NamedTuple("PipelineOutputs", gate_passed=bool, metrics=Metrics, report=HTML, predictions=Dataset)
    return outputs(evaluate.outputs["Output"], evaluate.outputs["metrics"], evaluate.outputs["report"],
                   evaluate.outputs["predictions"])

