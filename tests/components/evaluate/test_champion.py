"""Champion and challenger on the same rows: the champion's stored model re-scored on the candidate's test rows.

Real S3 (the session's SeaweedFS), real trained models; the champion's version goes through push_version and is
fetched back through its manifest, as the evaluate step does.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boston_model import card as fmt
from boston_model.store import ObjectStore
from boston_model.versions import ModelLocation, push_version, write_champion
from components.evaluate import core
from components.evaluate.champion import (
    ChampionComparison,
    ChampionUnavailable,
    TrainingDrift,
    champion_state,
    review_champion,
)
from components.split.core import split_frame
from components.train.core import TrainParams, train_model

MODEL = "boston-housing"


@pytest.fixture
def bucket() -> str:
    return f"champ-{uuid.uuid4().hex[:10]}"


def crown(store: ObjectStore, bucket: str, model_dir: Path, version: str, recorded_rmse: float) -> ModelLocation:
    location = ModelLocation(bucket, MODEL, version)
    push_version(store, location, model_dir)
    write_champion(store, location, {"metrics": {"rmse": recorded_rmse}})
    return location


def rewrite(model_dir: Path, dest: Path, weights: np.ndarray, bias: float, **changes) -> Path:
    """A copy of a model folder whose card holds another (self-consistent) affine map."""
    shutil.copytree(model_dir, dest)
    card = {**fmt.read_card(dest), **changes}
    probe = np.asarray(card["probe"]["inputs"])
    card.update(weights=list(map(float, weights)), bias=float(bias))
    card["probe"] = {"inputs": probe.tolist(), "savedmodel_outputs": (probe @ weights + bias).tolist()}
    fmt.write_card(dest, card)
    return dest


@pytest.fixture(scope="module")
def champion_seed_11(tmp_path_factory, boston) -> tuple[Path, pd.DataFrame]:
    """A champion trained on another split (seed 11), as in the recurring-retraining case."""
    train, _ = split_frame(boston, test_size=0.2, seed=11)
    model_dir = tmp_path_factory.mktemp("champion11")
    train_model(train, model_dir, TrainParams(seed=11), log=lambda _: None)
    return model_dir, train


def test_champion_from_another_split_is_scored_only_on_rows_it_never_trained_on(
    store, bucket, trained, seed_split, champion_seed_11
):
    _, test = seed_split
    champion_dir, champion_train = champion_seed_11
    crown(store, bucket, champion_dir, "20260101T000000Z-00000011", recorded_rmse=4.93)
    candidate = fmt.load_linear_model(trained[0])
    state = champion_state(store, bucket, MODEL, candidate, test, "MEDV")
    assert isinstance(state, ChampionComparison)
    # Independently: the candidate's test rows that do not appear among the champion's training rows.
    seen = champion_train.merge(test, how="inner")
    assert state.rows == len(test) - len(seen) and 0 < state.rows < len(test)
    assert state.test_rows == 102 and state.recorded_rmse == 4.93
    unseen = test.merge(champion_train, how="left", indicator=True).query("_merge == 'left_only'")
    # the champion's predictions from its card's numbers, RMSE by its formula (not the code under test)
    card = fmt.read_card(champion_dir)
    names = list(card["feature_names"])
    predicted = unseen[names].to_numpy() @ np.asarray(card["weights"]) + card["bias"]
    expected_rmse = float(np.sqrt(np.mean((predicted - unseen["MEDV"].to_numpy()) ** 2)))
    assert state.champion["rmse"] == pytest.approx(expected_rmse, rel=1e-12)
    decision = core.decide_gate(core.regression_metrics(test["MEDV"], candidate.predict(test[names].to_numpy())),
                                8.8, champion=state)
    assert f"on the {state.rows} test rows champion 20260101T000000Z-00000011 never trained on" in decision.summary()


def test_the_re_scored_rmse_decides_not_the_recorded_one(store, bucket, trained, seed_split, tmp_path):
    train, test = seed_split
    names = list(fmt.read_card(trained[0])["feature_names"])
    candidate = fmt.load_linear_model(trained[0])
    metrics = core.regression_metrics(test["MEDV"], candidate.predict(test[names].to_numpy()))

    # Recorded 1.0 (the candidate would fail against it), but on these rows the champion is the candidate's equal.
    crown(store, bucket, trained[0], "20260101T000000Z-aaaaaaaa", recorded_rmse=1.0)
    state = champion_state(store, bucket, MODEL, candidate, test, "MEDV")
    assert state.rows == 102 and state.champion["rmse"] == pytest.approx(metrics["rmse"])
    assert not core.decide_gate(metrics, 8.8, champion_rmse=1.0).passed  # what the recorded number would say
    assert core.decide_gate(metrics, 8.8, champion=state).passed

    # Recorded 99 (the candidate would pass against it), but re-scored the champion is far better on these rows.
    design = np.column_stack([np.ones(len(test)), test[names].to_numpy()])
    coef, *_ = np.linalg.lstsq(design, test["MEDV"].to_numpy(), rcond=None)
    better = rewrite(trained[0], tmp_path / "better", coef[1:], coef[0])
    other = f"{bucket}-b"
    crown(store, other, better, "20260101T000000Z-bbbbbbbb", recorded_rmse=99.0)
    state = champion_state(store, other, MODEL, candidate, test, "MEDV")
    assert state.champion["rmse"] < 0.9 * metrics["rmse"]
    assert core.decide_gate(metrics, 8.8, champion_rmse=99.0).passed
    decision = core.decide_gate(metrics, 8.8, champion=state)
    assert not decision.passed and decision.failures[0].startswith("on the 102 test rows champion")


def test_without_a_champion_there_is_nothing_to_compare(store, bucket, trained, seed_split):
    assert champion_state(store, bucket, MODEL, fmt.load_linear_model(trained[0]), seed_split[1], "MEDV") is None


def _unavailable(store, bucket, trained, test) -> ChampionUnavailable:
    state = champion_state(store, bucket, MODEL, fmt.load_linear_model(trained[0]), test, "MEDV")
    assert isinstance(state, ChampionUnavailable)
    assert "\n" not in state.reason
    decision = core.decide_gate({"rmse": 4.9}, 8.8, champion=state)
    assert decision.passed and [name for name, _, _ in decision.checks] == ["max_rmse", "beats_mean"]
    assert "no champion check, the absolute checks decide" in decision.summary()
    return state


def test_a_missing_champion_version_is_named_and_the_gate_falls_back(store, bucket, trained, seed_split):
    location = ModelLocation(bucket, MODEL, "20260101T000000Z-deadbeef")
    store.ensure_bucket(bucket)
    write_champion(store, location, {"metrics": {"rmse": 4.9}})
    state = _unavailable(store, bucket, trained, seed_split[1])
    assert state.reason.startswith("champion 20260101T000000Z-deadbeef cannot be read:")
    assert "no manifest.json" in state.reason


def test_a_corrupt_champion_is_named_and_the_gate_falls_back(store, bucket, trained, seed_split):
    location = crown(store, bucket, trained[0], "20260101T000000Z-c0c0c0c0", recorded_rmse=4.9)
    store.put_bytes(bucket, location.prefix + fmt.CARD_FILE, b'{"format_version": 1}')
    state = _unavailable(store, bucket, trained, seed_split[1])
    assert "boston_model.json" in state.reason and "cannot be read" in state.reason


def test_a_champion_with_other_features_is_named_and_the_gate_falls_back(store, bucket, trained, seed_split,
                                                                         tmp_path):
    card = fmt.read_card(trained[0])
    keep = [n for n in card["feature_names"] if n != "B"]
    probe = np.asarray(card["probe"]["inputs"])[:, [card["feature_names"].index(n) for n in keep]]
    other = rewrite(trained[0], tmp_path / "noB", np.ones(12), 1.0, feature_names=keep,
                    probe={"inputs": probe.tolist()})
    crown(store, bucket, other, "20260101T000000Z-0000000b", recorded_rmse=4.9)
    state = _unavailable(store, bucket, trained, seed_split[1])
    assert state.reason.startswith("champion 20260101T000000Z-0000000b uses other features")


def test_training_drift_against_the_champion_from_its_card(store, bucket, trained, seed_split, champion_seed_11):
    train, test = seed_split
    champion_dir, _ = champion_seed_11
    crown(store, bucket, champion_dir, "20260101T000000Z-00000011", recorded_rmse=4.93)
    candidate = fmt.load_linear_model(trained[0])
    comparison, state = review_champion(store, bucket, MODEL, candidate, test, "MEDV", train=train)
    assert isinstance(comparison, ChampionComparison)
    assert isinstance(state, TrainingDrift) and state.version == "20260101T000000Z-00000011"
    # Two random 80 % splits of the same 506 rows: nothing moved.
    assert state.report.rows == 404 and state.champion_rows == 404 and state.report.verdict == "stable"

    shifted = train.assign(RM=train["RM"] + 1.5)
    _, state = review_champion(store, bucket, MODEL, candidate, test, "MEDV", train=shifted)
    assert state.report.bands["RM"] == "drift"
    assert {b for n, b in state.report.bands.items() if n != "RM"} == {"stable"}
    decision = core.decide_gate({"rmse": 4.9}, 8.8, champion=comparison, training_drift=state,
                                max_training_drift=0.25)
    (failure,) = decision.failures
    assert failure.startswith("training-set drift against champion 20260101T000000Z-00000011 above 0.25 in RM (")


def test_a_champion_card_older_than_the_distribution_is_named(store, bucket, trained, seed_split, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(trained[0], old)
    card = fmt.read_card(old)
    del card["training_distribution"]
    fmt.write_card(old, card)
    crown(store, bucket, old, "20260101T000000Z-000000a0", recorded_rmse=4.9)
    comparison, state = review_champion(store, bucket, MODEL, fmt.load_linear_model(trained[0]), seed_split[1],
                                        "MEDV", train=seed_split[0])
    assert isinstance(comparison, ChampionComparison)  # the old card still loads and is re-scored
    assert isinstance(state, ChampionUnavailable)
    assert state.reason == ("champion 20260101T000000Z-000000a0 records no training distribution (trained before "
                            "it was recorded)")
