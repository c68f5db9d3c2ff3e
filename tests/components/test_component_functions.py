"""Each step's KFP wrapper called directly (``component.python_func``) with artifacts in a temporary folder.

The kfp.local tests (test_components_local.py) run the same bodies in a subprocess; here a failure shows its own
traceback and the outputs are read back from the artifacts the body wrote, the way the next step reads them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics, Model

from components import config
from components.deploy.component import deploy_model
from components.deploy.process import read_served, stop_served
from components.deploy.release import predict_v1
from components.evaluate.component import evaluate_model
from components.load.component import load_data
from components.split.component import split_data
from components.train.component import train_model
from pipeline.runner import store_environment
from pipeline.state import state_dir
from tests.components.deploy.test_kserve_deploy import make_model


def _artifact(cls, path: Path, **metadata):
    """An artifact whose ``.path`` is ``path`` (a local URI maps to itself), as the launcher hands one over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return cls(name=path.name, uri=str(path), metadata=dict(metadata))


@pytest.fixture
def no_store(monkeypatch):
    for name in ("MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Dataset:
    dataset = _artifact(Dataset, tmp_path_factory.mktemp("load") / "dataset")
    load_data.python_func(dataset=dataset, source="bundled", drop_columns="", s3_endpoint="")
    return dataset


@pytest.fixture(scope="module")
def split(loaded, tmp_path_factory) -> tuple[Dataset, Dataset]:
    folder = tmp_path_factory.mktemp("split")
    train, test = _artifact(Dataset, folder / "train"), _artifact(Dataset, folder / "test")
    split_data.python_func(dataset=loaded, train=train, test=test, test_size=config.TEST_SIZE, seed=config.SEED)
    return train, test


@pytest.fixture(scope="module")
def trained(split, tmp_path_factory) -> tuple[Model, HTML]:
    folder = tmp_path_factory.mktemp("train")
    model, curves = _artifact(Model, folder / "model"), _artifact(HTML, folder / "curves.html")
    train_model.python_func(train=split[0], model=model, curves=curves, epochs=config.EPOCHS,
                            batch_size=config.BATCH_SIZE, learning_rate=config.LEARNING_RATE,
                            validation_split=config.VALIDATION_SPLIT, patience=config.PATIENCE, seed=config.SEED)
    return model, curves


def _evaluate(trained, split, folder: Path, max_rmse: float) -> tuple[bool, dict[str, Artifact]]:
    outputs = {"metrics": _artifact(Metrics, folder / "metrics"), "report": _artifact(HTML, folder / "report.html"),
               "gate_summary": _artifact(Markdown, folder / "gate.md"),
               "predictions": _artifact(Dataset, folder / "predictions")}
    passed = evaluate_model.python_func(model=trained[0], train=split[0], test=split[1], max_rmse=max_rmse,
                                        champion_tolerance=config.CHAMPION_TOLERANCE,
                                        max_training_drift=config.MAX_TRAINING_DRIFT, model_name="direct",
                                        bucket="direct", s3_endpoint="", **outputs)
    return passed, outputs


def test_load_writes_the_validated_table_and_its_metadata(loaded):
    frame = pd.read_csv(loaded.path)
    assert list(frame.columns) == [*config.FEATURES, config.TARGET]
    assert len(frame) == loaded.metadata["rows"] == 506
    assert len(loaded.metadata["sha256"]) == 64


def test_load_drops_the_columns_it_is_asked_to(tmp_path):
    dataset = _artifact(Dataset, tmp_path / "dataset")
    load_data.python_func(dataset=dataset, source="bundled", drop_columns="B", s3_endpoint="")
    assert "B" not in pd.read_csv(dataset.path).columns


def test_load_failure_is_one_line_and_exit_1(tmp_path, capsys):
    dataset = _artifact(Dataset, tmp_path / "dataset")
    with pytest.raises(SystemExit) as info:
        load_data.python_func(dataset=dataset, source=str(tmp_path / "absent.csv"), drop_columns="", s3_endpoint="")
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR load: ") and err.count("\n") == 1
    assert not Path(dataset.path).exists()  # nothing half-written for the next step


def test_split_is_the_seed_split_and_disjoint(split, loaded):
    train, test = (pd.read_csv(a.path) for a in split)
    assert (len(train), len(test)) == (404, 102)
    assert split[0].metadata == {"rows": 404, "seed": config.SEED, "test_size": config.TEST_SIZE,
                                 "data_sha256": loaded.metadata["sha256"]}  # train records which data it saw
    whole = pd.read_csv(loaded.path)
    assert len(pd.concat([train, test]).drop_duplicates()) == len(whole.drop_duplicates())


def test_split_rejects_a_bad_test_size_in_one_line(loaded, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        split_data.python_func(dataset=loaded, train=_artifact(Dataset, tmp_path / "train"),
                               test=_artifact(Dataset, tmp_path / "test"), test_size=1.5, seed=1)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR split: ") and "test_size" in err and err.count("\n") == 1


@pytest.mark.slow
def test_train_writes_the_savedmodel_card_metadata_and_curves(trained):
    model, curves = trained
    folder = Path(model.path)
    assert (folder / "1" / "saved_model.pb").is_file()
    card = json.loads((folder / "boston_model.json").read_text())
    assert model.metadata["feature_names"] == card["feature_names"] == list(config.FEATURES)
    assert 0 < model.metadata["epochs_run"] < config.EPOCHS  # early stopping ended it
    assert "data:image/png;base64," in Path(curves.path).read_text()


@pytest.mark.slow
def test_evaluate_returns_the_gate_and_writes_what_deploy_reads(trained, split, tmp_path, no_store):
    passed, outputs = _evaluate(trained, split, tmp_path, max_rmse=config.MAX_RMSE)
    assert passed is True
    metrics = outputs["metrics"].metadata
    assert metrics["rmse"] <= config.MAX_RMSE and metrics["gate_passed"] == 1.0
    assert metrics["least_squares_mse"] == pytest.approx(24.29, abs=0.01)
    predictions = pd.read_csv(outputs["predictions"].path)
    assert len(predictions) == 102 and "prediction" in predictions
    assert Path(outputs["gate_summary"].path).read_text().startswith("# Deployment gate: PASSED")


@pytest.mark.slow
def test_evaluate_fails_the_gate_on_a_strict_bound(trained, split, tmp_path, no_store):
    passed, outputs = _evaluate(trained, split, tmp_path, max_rmse=1.0)
    assert passed is False
    assert outputs["metrics"].metadata["gate_passed"] == 0.0
    assert "max_rmse 1.000" in Path(outputs["gate_summary"].path).read_text()


def test_deploy_serves_locally_and_returns_its_outputs(s3_server, tmp_path, free_port):
    model = make_model(tmp_path / "model", bias=22.5)
    model.predictions.to_csv(tmp_path / "predictions.csv", index=False)
    port = free_port()
    applied = _artifact(Artifact, tmp_path / "applied")
    try:
        with store_environment(s3_server):
            result = deploy_model.python_func(
                model=_artifact(Model, model.path), predictions=_artifact(Dataset, tmp_path / "predictions.csv"),
                metrics=_artifact(Metrics, tmp_path / "metrics", rmse=4.9), applied_spec=applied,
                model_name=config.MODEL_NAME, bucket="direct-deploy", s3_endpoint="",
                serving={"target": "process", "local_port": port},
            )
        served = read_served(state_dir(), port)
        assert served is not None and result.endpoint == served.url
        assert result.model_uri == served.uri == f"s3://direct-deploy/{config.MODEL_NAME}/{result.version}/"
        assert json.loads(Path(applied.path).read_text())["storage_uri"] == result.model_uri
        live = predict_v1(result.endpoint, config.MODEL_NAME, model.predictions[list(config.FEATURES)].to_numpy())
        np.testing.assert_allclose(live, model.predictions["prediction"], atol=1e-5)
    finally:
        stop_served(state_dir(), port)


def test_deploy_rejects_an_unknown_target_before_storing_anything(tmp_path, capsys):
    model = make_model(tmp_path / "model", bias=22.5)
    model.predictions.to_csv(tmp_path / "predictions.csv", index=False)
    with pytest.raises(SystemExit) as info:
        deploy_model.python_func(
            model=_artifact(Model, model.path), predictions=_artifact(Dataset, tmp_path / "predictions.csv"),
            metrics=_artifact(Metrics, tmp_path / "metrics"), applied_spec=_artifact(Artifact, tmp_path / "applied"),
            model_name=config.MODEL_NAME, bucket="direct-deploy", s3_endpoint="", serving={"target": "nowhere"},
        )
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR deploy: ") and "nowhere" in err and err.count("\n") == 1



def test_deploy_refuses_when_the_champion_moved_after_its_gate(s3_server, tmp_path, free_port, capsys):
    """Two runs at once: the second gated against no champion, but the first promoted one before it deployed."""
    from boston_model.store import ObjectStore
    from boston_model.versions import read_champion

    port, bucket = free_port(), f"gate-{tmp_path.name[-12:].lower().replace('_', '-')}"
    store = ObjectStore(s3_server)

    def deploy(folder: str, bias: float, gated: str):
        model = make_model(tmp_path / f"{folder}-{gated or 'none'}", bias=bias)
        model.predictions.to_csv(tmp_path / f"{folder}.csv", index=False)
        predictions = _artifact(Dataset, tmp_path / f"{folder}.csv", champion_version=gated)  # as evaluate wrote it
        with store_environment(s3_server):
            return deploy_model.python_func(
                model=_artifact(Model, model.path), predictions=predictions,
                metrics=_artifact(Metrics, tmp_path / f"{folder}-metrics", rmse=4.9),
                applied_spec=_artifact(Artifact, tmp_path / f"{folder}-applied"), model_name=config.MODEL_NAME,
                bucket=bucket, s3_endpoint="", serving={"target": "process", "local_port": port})

    try:
        first = deploy("a", 22.5, gated="")  # the first run's gate saw no champion, and none moved in between
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            deploy("b", 30.0, gated="")  # the second run's gate also saw none: it compared against nothing
        assert info.value.code == 1
        err = capsys.readouterr().err
        assert err == (f"ERROR deploy: the champion moved from none to {first.version} after the gate compared "
                       "against it; nothing changed (run again to gate against the new champion)\n")
        assert read_champion(store, bucket, config.MODEL_NAME)["version"] == first.version
        stored = {k.split("/")[1] for k in store.list_keys(bucket, f"{config.MODEL_NAME}/") if k.count("/") == 2}
        assert stored == {first.version}  # nothing uploaded for the refused run
        second = deploy("b", 30.0, gated=first.version)  # gated against the champion that serves: released
        assert read_champion(store, bucket, config.MODEL_NAME)["version"] == second.version
    finally:
        stop_served(state_dir(), port)
