"""The Boston Housing pipeline: composition only (the logic lives in components/<step>/core.py)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Metrics

from components.deploy.component import deploy_model
from components.evaluate.component import evaluate_model
from components.load.component import load_data
from components.split.component import split_data
from components.train.component import train_model
from pipeline import config


@dsl.pipeline(
    name=config.PIPELINE_NAME,
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
    s3_endpoint: str = "",
    deploy_target: str = "local",
    local_port: int = config.LOCAL_PORT,
) -> NamedTuple("PipelineOutputs", gate_passed=bool, metrics=Metrics, report=HTML):
    """Builds the DAG load -> split -> train -> evaluate -> If(gate) -> deploy."""
    load = load_data(source=source, drop_columns=drop_columns, s3_endpoint=s3_endpoint)
    load.set_display_name("Load and validate data")
    split = split_data(dataset=load.outputs["dataset"], test_size=test_size, seed=seed)
    split.set_display_name("Split train/test")
    train = train_model(
        train=split.outputs["train"], epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        validation_split=validation_split, patience=patience, seed=seed,
    )
    train.set_display_name("Train Keras model")
    evaluate = evaluate_model(
        model=train.outputs["model"], train=split.outputs["train"], test=split.outputs["test"],
        max_rmse=max_rmse, champion_tolerance=champion_tolerance, model_name=model_name, bucket=bucket,
        s3_endpoint=s3_endpoint,
    )
    evaluate.set_display_name("Evaluate and gate")
    with dsl.If(evaluate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 - a KFP condition, not Python
        deploy = deploy_model(
            model=train.outputs["model"], predictions=evaluate.outputs["predictions"],
            metrics=evaluate.outputs["metrics"], target=deploy_target, model_name=model_name, bucket=bucket,
            s3_endpoint=s3_endpoint, local_port=local_port,
        )
        deploy.set_display_name("Deploy to KServe")
        deploy.set_caching_options(False)
    outputs = NamedTuple("PipelineOutputs", gate_passed=bool, metrics=Metrics, report=HTML)
    return outputs(evaluate.outputs["Output"], evaluate.outputs["metrics"], evaluate.outputs["report"])
