"""The compiled IR YAML: load it back and check the DAG, the parameters and their defaults."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from components.deploy.serving import ServingSettings
from pipeline import config
from pipeline.runner import compile_pipeline


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> dict:
    path = compile_pipeline(tmp_path_factory.mktemp("yaml") / "pipeline.yaml")
    return next(yaml.safe_load_all(Path(path).read_text()))


def _tasks(spec: dict) -> dict:
    return spec["root"]["dag"]["tasks"]


def test_dag_is_load_split_train_evaluate_then_gated_deploy(spec):
    tasks = _tasks(spec)
    assert {"load-data", "split-data", "train-model", "evaluate-model"} <= set(tasks)
    assert tasks["split-data"]["dependentTasks"] == ["load-data"]
    assert tasks["train-model"]["dependentTasks"] == ["split-data"]
    assert sorted(tasks["evaluate-model"]["dependentTasks"]) == ["split-data", "train-model"]
    condition = next(t for name, t in tasks.items() if name.startswith("condition"))
    assert "evaluate-model" in condition["dependentTasks"]
    assert "Output" in condition["triggerPolicy"]["condition"]
    inner = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert list(inner) == ["deploy-model"]
    assert inner["deploy-model"]["cachingOptions"] == {}  # caching off: always deploy for real


def test_parameters_and_defaults_come_from_config(spec):
    params = spec["root"]["inputDefinitions"]["parameters"]
    expected = {
        "source": config.BUNDLED_SOURCE, "test_size": config.TEST_SIZE, "seed": config.SEED,
        "epochs": config.EPOCHS, "batch_size": config.BATCH_SIZE, "learning_rate": config.LEARNING_RATE,
        "validation_split": config.VALIDATION_SPLIT, "patience": config.PATIENCE, "max_rmse": config.MAX_RMSE,
        "champion_tolerance": config.CHAMPION_TOLERANCE, "max_training_drift": config.MAX_TRAINING_DRIFT,
        "model_name": config.MODEL_NAME, "bucket": config.BUCKET,
        "drop_columns": "",
    }
    for name, default in expected.items():
        assert params[name]["defaultValue"] == default, name
    assert params["epochs"]["parameterType"] == "NUMBER_INTEGER"
    assert params["learning_rate"]["parameterType"] == "NUMBER_DOUBLE"


def test_the_run_form_is_the_per_run_parameters_plus_one_serving_struct(spec):
    # The Kubeflow UI lists every root parameter; the serving infrastructure is one JSON field among them.
    params = spec["root"]["inputDefinitions"]["parameters"]
    per_run = {"source", "drop_columns", "test_size", "seed", "epochs", "batch_size", "learning_rate",
               "validation_split", "patience", "max_rmse", "champion_tolerance", "max_training_drift",
               "model_name"}
    assert set(params) == per_run | {"bucket", "s3_endpoint", "serving"}
    assert params["serving"]["parameterType"] == "STRUCT"
    assert set(params["serving"]["defaultValue"]) == {f.name for f in dataclasses.fields(ServingSettings)}


def test_every_step_runs_in_the_project_image_without_installing_anything(spec):
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 5
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == config.IMAGE
        assert "pip install" not in " ".join(container["command"])


def test_compile_can_target_another_image(tmp_path):
    path = compile_pipeline(tmp_path / "p.yaml", image="registry.local/boston:dev")
    executors = next(yaml.safe_load_all(path.read_text()))["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {"registry.local/boston:dev"}
    # …and the module-level components are left pointing at the default image.
    again = next(yaml.safe_load_all(compile_pipeline(tmp_path / "q.yaml").read_text()))["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in again.values()} == {config.IMAGE}
