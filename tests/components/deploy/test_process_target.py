"""The process target through the one release: real predictor processes, the real embedded S3 store.

A release promotes a version only after the live predictor answered evaluate's predictions; a failed release never
touches the predictor serving (the candidate ran beside it) and leaves the champion record alone. Under steady load
a release drops no request: the new predictor takes the public socket over before the old one stops.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boston_model.errors import BadInput, ReleaseFailed
from boston_model.store import ObjectStore, S3Settings
from boston_model.versions import read_champion
from components.common.processes import is_running
from components.deploy import release
from components.deploy.process import ProcessTarget, read_served, stop_served
from components.deploy.release import Released, predict_v1
from components.deploy.serving import ServingSettings
from pipeline import config
from pipeline.runner import store_environment
from tests.components.deploy.test_kserve_deploy import Model, make_model
from tests.load import SteadyLoad

MODEL = config.MODEL_NAME
FEATURES = list(config.FEATURES)


@dataclass
class LocalTarget:
    store: ObjectStore
    state: Path
    bucket: str
    port: int
    logs: list[str] = field(default_factory=list)

    def deploy(self, model: Model, predictions: pd.DataFrame | None = None, **kwargs) -> Released:
        settings = ServingSettings(target="process", local_port=self.port)
        target = ProcessTarget(self.state, self.store, MODEL, config.LOCAL_HOST, self.port, log=self.logs.append)
        smoke = release.Smoke.from_predictions(model.predictions if predictions is None else predictions, FEATURES)
        return release.deploy(self.store, self.bucket, MODEL, model.path, {"rmse": 4.9}, target, settings, smoke,
                              lock_dir=self.state, log=self.logs.append, **kwargs)

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
    serving = read_served(target.state, target.port)
    with pytest.raises(
            ReleaseFailed, match=f"smoke test: live predictions differ .*; champion {first.version} keeps serving"):
        target.deploy(b, predictions=_wrong(b))
    assert target.champion() == record
    # The predictor that served never stopped: same process, same version.
    assert read_served(target.state, target.port) == serving and is_running(serving.pid)
    np.testing.assert_allclose(target.live(a), a.predictions["prediction"], atol=1e-5)  # a answers, not b


def test_a_failed_first_deploy_leaves_nothing_served_and_no_champion(target, models):
    a, _ = models
    with pytest.raises(ReleaseFailed, match="the champion record is unchanged"):
        target.deploy(a, predictions=_wrong(a))
    assert target.champion() is None
    assert read_served(target.state, target.port) is None


def test_releases_under_steady_load_drop_no_request(target, models):
    a, b = models
    first = target.deploy(a)
    url = f"http://{config.LOCAL_HOST}:{target.port}/v1/models/{MODEL}:predict"
    rows = a.predictions[FEATURES].to_numpy()[:1]
    expected = {float(rows[0] @ m.weights + m.bias) for m in (a, b)}  # independent of the server's code
    with SteadyLoad(url, rows) as load:
        second = target.deploy(b)  # a new version
        old = read_served(target.state, target.port)
        third = release.release(target.store, release.ModelLocation(target.bucket, MODEL, first.version),
                                ProcessTarget(target.state, target.store, MODEL, config.LOCAL_HOST, target.port),
                                ServingSettings(target="process", local_port=target.port), lock_dir=target.state)
    assert load.failures == []
    assert len(load.answers) > 20  # the load really ran through both releases
    assert {round(v, 6) for v in load.answers} <= {round(v, 6) for v in expected}
    assert second.version != first.version and third.version == first.version
    assert not is_running(old.pid)  # the replaced predictor is gone; one process serves
    assert target.champion()["version"] == first.version


def test_a_release_refuses_when_the_champion_moved_since_the_gate(target, models):
    a, b = models
    first = target.deploy(a)
    serving = read_served(target.state, target.port)
    with pytest.raises(ReleaseFailed, match=f"champion moved from none to {first.version} after the gate"):
        target.deploy(b, expected_champion=None)  # this run's gate saw no champion
    assert target.champion()["version"] == first.version
    assert len(target.store.list_keys(target.bucket, f"{MODEL}/")) == len(
        target.store.list_keys(target.bucket, f"{MODEL}/{first.version}/")) + 1  # nothing uploaded (+ champion)
    assert read_served(target.state, target.port) == serving
    second = target.deploy(b, expected_champion=first.version)  # gated against the champion that serves
    assert target.champion()["version"] == second.version


def test_promoting_the_champion_again_is_refused(target, models):
    a, _ = models
    first = target.deploy(a)
    with pytest.raises(BadInput, match="already the champion"):
        release.release(target.store, release.ModelLocation(target.bucket, MODEL, first.version),
                        ProcessTarget(target.state, target.store, MODEL, config.LOCAL_HOST, target.port),
                        ServingSettings(target="process", local_port=target.port))
