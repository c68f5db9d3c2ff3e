"""Each component through kfp.local (SubprocessRunner in this environment), chained like the pipeline does."""


import ast
import json
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest
from kfp import dsl, local
from kfp.dsl import HTML, Dataset, Markdown, Metrics, Model

from components import config
from components.evaluate.component import evaluate_model
from components.load.component import load_data
from components.split.component import split_data
from components.train.component import train_model

REPO = Path(__file__).resolve().parents[2]
COMPONENT_FILES = sorted(REPO.glob("components/*/component.py"))


@pytest.fixture(scope="module")
def kfp_local(tmp_path_factory, s3_server):
    """kfp.local in this environment, with the embedded store's credentials in the environment (as `run` does)."""
    from pipeline.runner import store_environment

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path_factory.mktemp("root")))
    with store_environment(s3_server):
        yield


@pytest.fixture(scope="module")
def loaded(kfp_local):
    return load_data(source="bundled", drop_columns="", s3_endpoint="")


@dsl.pipeline(name="components-through-evaluate")
def through_evaluate(max_rmse: float) -> NamedTuple(
    "Outputs", train=Dataset, test=Dataset, model=Model, curves=HTML, metrics=Metrics, gate_summary=Markdown,
    predictions=Dataset, passed=bool,
):
    """Chains the real components (kfp.local runs single components only with parameter inputs)."""
    load = load_data(source="bundled", drop_columns="", s3_endpoint="")
    split = split_data(dataset=load.outputs["dataset"], test_size=0.2, seed=42)
    train = train_model(train=split.outputs["train"], epochs=config.EPOCHS, batch_size=config.BATCH_SIZE,
                        learning_rate=config.LEARNING_RATE, validation_split=0.0, patience=config.PATIENCE, seed=42)
    evaluate = evaluate_model(model=train.outputs["model"], train=split.outputs["train"], test=split.outputs["test"],
                              max_rmse=max_rmse, champion_tolerance=0.05, max_training_drift=0.0,
                              model_name="component-test", bucket="component-test", s3_endpoint="")
    outputs = NamedTuple(
        "Outputs", train=Dataset, test=Dataset, model=Model, curves=HTML, metrics=Metrics, gate_summary=Markdown,
        predictions=Dataset, passed=bool,
    )
    return outputs(split.outputs["train"], split.outputs["test"], train.outputs["model"], train.outputs["curves"],
                   evaluate.outputs["metrics"], evaluate.outputs["gate_summary"], evaluate.outputs["predictions"],
                   evaluate.outputs["Output"])


@dsl.pipeline(name="evaluate-only")
def evaluate_only(model_uri: str, train_uri: str, test_uri: str, max_rmse: float) -> NamedTuple(
    "Outputs", gate_summary=Markdown, passed=bool
):
    """Evaluate alone, on artifacts imported from the first run."""
    model = dsl.importer(artifact_uri=model_uri, artifact_class=Model)
    train = dsl.importer(artifact_uri=train_uri, artifact_class=Dataset)
    test = dsl.importer(artifact_uri=test_uri, artifact_class=Dataset)
    evaluate = evaluate_model(model=model.output, train=train.output, test=test.output, max_rmse=max_rmse,
                              champion_tolerance=0.05, max_training_drift=0.0, model_name="component-test",
                              bucket="component-test", s3_endpoint="")
    outputs = NamedTuple("Outputs", gate_summary=Markdown, passed=bool)
    return outputs(evaluate.outputs["gate_summary"], evaluate.outputs["Output"])


@pytest.fixture(scope="module")
def chained(kfp_local):
    return through_evaluate(max_rmse=6.0).outputs


def test_component_modules_import_only_kfp_and_config_at_top_level():
    # Heavy libraries belong inside the component body: the body is what runs in the step's container.
    allowed = {"kfp", "kfp.dsl", "typing", "components"}
    for path in COMPONENT_FILES:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Import):
                assert {a.name for a in node.names} <= allowed, path
            elif isinstance(node, ast.ImportFrom):
                assert node.module in allowed, f"{path}: top-level import from {node.module}"
                if node.module == "components":
                    assert [a.name for a in node.names] == ["config"], path


def test_load_writes_the_validated_table_with_metadata(loaded):
    dataset = loaded.outputs["dataset"]
    assert pd.read_csv(dataset.path).shape == (506, 14)
    assert dataset.metadata["rows"] == 506
    assert len(dataset.metadata["sha256"]) == 64


def test_load_reads_from_s3_with_the_environment_credentials(kfp_local, s3_server):
    from boston_model.store import ObjectStore
    from components.load.core import bundled_csv_bytes

    store = ObjectStore(s3_server)
    store.ensure_bucket("data")
    store.put_bytes("data", "in/boston.csv", bundled_csv_bytes(), "text/csv")
    task = load_data(source="s3://data/in/boston.csv", drop_columns="B", s3_endpoint="")
    assert pd.read_csv(task.outputs["dataset"].path).shape == (506, 13)


def test_load_fails_with_one_line_on_a_corrupt_file(kfp_local, tmp_path, capfd):
    bad = tmp_path / "bad.csv"
    frame = pd.read_csv(REPO / "components/data/boston_housing.csv").astype({"RM": object})
    frame.loc[9, "RM"] = "six"
    frame.to_csv(bad, index=False)
    with pytest.raises(RuntimeError, match="load-data"):
        load_data(source=str(bad), drop_columns="", s3_endpoint="")
    out = capfd.readouterr().out
    errors = [line for line in out.splitlines() if "ERROR load:" in line]  # kfp.local logs around the step's line
    assert len(errors) == 1 and errors[0].endswith("ERROR load: column RM, row 10: 'six' is not a number"), errors
    assert "Traceback" not in out


def test_split_outputs_the_seed_split(chained):
    train = pd.read_csv(chained["train"].path)
    test = pd.read_csv(chained["test"].path)
    assert (len(train), len(test)) == (404, 102)
    assert chained["test"].metadata == {"rows": 102, "seed": 42}


def test_train_writes_a_savedmodel_card_and_curves(chained):
    model = chained["model"]
    assert (Path(model.path) / "1" / "saved_model.pb").is_file()
    card = json.loads((Path(model.path) / "boston_model.json").read_text())
    assert model.metadata["feature_names"] == card["feature_names"] == list(config.FEATURES)
    assert model.metadata["epochs_run"] < config.EPOCHS
    assert "data:image/png;base64," in Path(chained["curves"].path).read_text()


def test_evaluate_scores_gates_and_reports(chained):
    assert chained["passed"] is True
    metrics = chained["metrics"].metadata
    assert metrics["mse"] <= 24.5
    assert metrics["least_squares_mse"] == pytest.approx(24.29, abs=0.01)
    assert metrics["gate_passed"] == 1.0
    assert Path(chained["gate_summary"].path).read_text().startswith("# Deployment gate: PASSED")
    predictions = pd.read_csv(chained["predictions"].path)
    assert len(predictions) == 102 and "prediction" in predictions


def test_evaluate_gate_fails_on_a_strict_bound(chained):
    outputs = evaluate_only(model_uri=chained["model"].path, train_uri=chained["train"].path,
                            test_uri=chained["test"].path, max_rmse=1.0).outputs
    assert outputs["passed"] is False
    assert "max_rmse 1.000" in Path(outputs["gate_summary"].path).read_text()
