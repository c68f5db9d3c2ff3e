"""Live input drift on the predictor: every served row counted per feature and training bin, on ``/metrics``.

Over real HTTP against a real predictor process. Expected bins are computed here with ``numpy.searchsorted`` on the
card's edges, independently of `boston_model.drift.count_bins`.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from boston_model import drift
from boston_model.card import CARD_FILE
from boston_model.errors import BadInput
from components.load.core import load_table
from pipeline import config
from pipeline.models import live_counts
from tests.kserve.conftest import MODEL_NAME

FEATURES = list(config.FEATURES)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return load_table().frame[FEATURES].to_numpy(dtype=np.float64)


@pytest.fixture()
def drift_model(model_dir: Path, tmp_path: Path, data: np.ndarray) -> Path:
    """The synthetic model with a training distribution measured on the whole data set (as train records it)."""
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    card = json.loads((target / CARD_FILE).read_text())
    card[drift.DISTRIBUTION_KEY] = drift.training_distribution(data, FEATURES)
    (target / CARD_FILE).write_text(json.dumps(card))
    return target


def _send(server, rows: np.ndarray, batch: int = 50) -> None:
    for start in range(0, len(rows), batch):
        response = server.post(f"/v1/models/{MODEL_NAME}:predict", {"instances": rows[start:start + batch].tolist()})
        assert response.status == 200, response.body


def _expected_counts(card_path: Path, rows: np.ndarray) -> dict[str, list[int]]:
    """Per feature, rows per bin: bin i holds edges[i-1] <= value < edges[i] (outer bins open-ended)."""
    features = json.loads(card_path.read_text())[drift.DISTRIBUTION_KEY]["features"]
    expected = {}
    for j, name in enumerate(FEATURES):
        edges = np.asarray(features[name]["edges"], dtype=np.float64)
        index = np.searchsorted(edges, rows[:, j], side="right")
        expected[name] = np.bincount(index, minlength=edges.size + 1).tolist()
    return expected


def test_every_answered_row_is_counted_exactly_under_concurrent_requests(spawn_predictor, drift_model, data):
    server = spawn_predictor("--model_dir", str(drift_model))
    server.wait_ready()
    rows = data[:400]
    chunks = np.array_split(rows, 8)
    failures: list[BaseException] = []

    def client(chunk: np.ndarray) -> None:
        try:
            from tests.kserve.conftest import Predictor

            own = Predictor(server.process, server.port, server.log_dir)  # its own keep-alive connection
            _send(own, chunk, batch=7)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == [] and not any(t.is_alive() for t in threads)
    counts = live_counts(server.url, MODEL_NAME)
    assert {name: [int(v) for v in counts[name]] for name in FEATURES} == _expected_counts(
        drift_model / CARD_FILE, rows)
    assert all(sum(counts[name]) == len(rows) for name in FEATURES)  # the self-check's probe rows are not counted


def test_refused_requests_are_not_counted(spawn_predictor, drift_model, data):
    server = spawn_predictor("--model_dir", str(drift_model))
    server.wait_ready()
    bad = server.post(f"/v1/models/{MODEL_NAME}:predict", {"instances": [[1.0] * 12]})
    assert bad.status == 400
    _send(server, data[:10])
    assert all(sum(v) == 10 for v in live_counts(server.url, MODEL_NAME).values())


def test_the_training_rows_read_stable_and_a_shifted_feature_reads_drift(spawn_predictor, drift_model, data):
    server = spawn_predictor("--model_dir", str(drift_model))
    server.wait_ready()
    bins = drift.card_bins(json.loads((drift_model / CARD_FILE).read_text()))
    _send(server, data)
    unchanged = drift.drift_report(live_counts(server.url, MODEL_NAME), bins)
    assert unchanged.rows == len(data) and unchanged.verdict == "stable"
    assert set(unchanged.bands.values()) == {"stable"}

    other = spawn_predictor("--model_dir", str(drift_model))
    other.wait_ready()
    shifted = data.copy()
    shifted[:, FEATURES.index("RM")] += 1.5
    _send(other, shifted)
    report = drift.drift_report(live_counts(other.url, MODEL_NAME), bins)
    assert report.bands["RM"] == "drift" and report.verdict == "drift"
    assert {name for name, b in report.bands.items() if b != "stable"} == {"RM"}


def test_an_old_card_still_serves_and_counts_nothing(spawn_predictor, model_dir, data):
    server = spawn_predictor("--model_dir", str(model_dir))  # the synthetic card records no distribution
    server.wait_ready()
    _send(server, data[:20])
    with pytest.raises(BadInput, match="no boston_feature_rows counts for model"):
        live_counts(server.url, MODEL_NAME)


def test_counting_can_be_turned_off(spawn_predictor, drift_model, data):
    server = spawn_predictor("--model_dir", str(drift_model), "--count_inputs", "false")
    server.wait_ready()
    _send(server, data[:20])
    with pytest.raises(BadInput, match="no boston_feature_rows counts"):
        live_counts(server.url, MODEL_NAME)
