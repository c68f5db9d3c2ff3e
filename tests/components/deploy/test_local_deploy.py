"""components/deploy/core.py's local target: real predictor processes, the real embedded S3 store.

A deploy promotes a version only after the live predictor answered evaluate's predictions; a failed deploy serves the
previous champion again and leaves the champion record alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boston_model.store import ObjectStore, S3Settings
from boston_model.versions import read_champion
from components.deploy.core import DeployResult, deploy_local
from components.deploy.errors import DeployError
from components.deploy.local import predict_v1, read_served, stop_served
from pipeline import config
from pipeline.runner import store_environment
from tests.components.deploy.test_kserve_deploy import Model, make_model

MODEL = config.MODEL_NAME
FEATURES = list(config.FEATURES)


@dataclass
class LocalTarget:
    store: ObjectStore
    state: Path
    bucket: str
    port: int
    logs: list[str] = field(default_factory=list)

    def deploy(self, model: Model, predictions: pd.DataFrame | None = None) -> DeployResult:
        return deploy_local(
            self.store, model.path, model.predictions if predictions is None else predictions, FEATURES,
            {"rmse": 4.9}, self.state, self.bucket, MODEL, config.LOCAL_HOST, self.port, log=self.logs.append,
        )

    def champion(self) -> dict | None:
        return read_champion(self.store, self.bucket, MODEL)

    def live(self, model: Model) -> np.ndarray:
        served = read_served(self.state, self.port)
        assert served is not None, "nothing is served"
        return predict_v1(served.url, MODEL, model.predictions[FEATURES].to_numpy())


@pytest.fixture
def target(s3_server: S3Settings, tmp_path: Path, free_port) -> Iterator[LocalTarget]:
    state = tmp_path / "state"
    local = LocalTarget(ObjectStore(s3_server), state, f"local-{uuid.uuid4().hex[:10]}", free_port())
    try:
        with store_environment(s3_server):  # the predictor reads the store from MINIO_*, as in a step
            yield local
    finally:
        stop_served(state, local.port)  # by the PID in the serving record


@pytest.fixture
def models(tmp_path: Path) -> tuple[Model, Model]:
    return make_model(tmp_path / "a", bias=22.5), make_model(tmp_path / "b", bias=30.0)


def _wrong(model: Model) -> pd.DataFrame:
    """Evaluate's predictions, off by one: the live predictor cannot match them."""
    return model.predictions.assign(prediction=model.predictions["prediction"] + 1.0)


def test_a_deploy_serves_the_new_version_then_promotes_it(target, models):
    a, b = models
    first = target.deploy(a)
    second = target.deploy(b)
    assert target.champion()["version"] == second.version
    assert target.champion()["previous"] == first.version
    assert read_served(target.state, target.port).uri == second.model_uri
    np.testing.assert_allclose(target.live(b), b.predictions["prediction"], atol=1e-5)


def test_a_failed_smoke_test_serves_the_champion_again_and_keeps_its_record(target, models):
    a, b = models
    first = target.deploy(a)
    record = target.champion()
    with pytest.raises(DeployError, match="smoke test: live predictions differ .*; the champion is unchanged"):
        target.deploy(b, predictions=_wrong(b))
    assert target.champion() == record
    assert read_served(target.state, target.port).uri == first.model_uri
    np.testing.assert_allclose(target.live(a), a.predictions["prediction"], atol=1e-5)  # a answers, not b
    assert any(f"serving the champion {first.version} again" in line for line in target.logs)


def test_a_failed_first_deploy_leaves_nothing_served_and_no_champion(target, models):
    a, _ = models
    with pytest.raises(DeployError, match="the champion is unchanged"):
        target.deploy(a, predictions=_wrong(a))
    assert target.champion() is None
    assert read_served(target.state, target.port) is None
