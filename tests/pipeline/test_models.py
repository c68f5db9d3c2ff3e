"""``boston-pipeline models …`` and :mod:`pipeline.models` against the real embedded S3 and real predictors.

Versions are model folders in the training format with a placeholder SavedModel (the predictor serves the folded
card and never reads it), stored through the same push_version the deploy step uses. Promotions start the real
predictor on free loopback ports; every predictor is stopped by its PID afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from boston_model import card as fmt
from boston_model.store import ObjectStore
from boston_model.versions import ModelLocation, push_version, read_champion, write_champion
from components.common.ports import free_port
from components.deploy.process import read_served, stop_served
from components.deploy.release import predict_v1
from pipeline import config, models
from pipeline.cli import main
from pipeline.state import ENV_STATE_DIR, state_dir

MODEL = config.MODEL_NAME
FEATURES = list(config.FEATURES)


@dataclass(frozen=True)
class Stored:
    version: str
    weights: np.ndarray
    bias: float

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return rows @ self.weights + self.bias


def store_version(store: ObjectStore, bucket: str, folder: Path, version: str, bias: float, seed: int = 42,
                  rmse: float = 4.9, empty_file: bool = False, distribution: dict | None = None) -> Stored:
    rng = np.random.default_rng(zlib.crc32(version.encode()))
    weights = rng.normal(0.0, 1.0, len(FEATURES)) / 2
    probe = np.abs(rng.normal(5.0, 3.0, (6, len(FEATURES))))
    saved = folder / fmt.SAVEDMODEL_DIR
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"placeholder")
    (saved / "variables" / "variables.index").write_bytes(b"" if empty_file else b"placeholder")
    means = np.full(len(FEATURES), 3.0)
    fmt.write_card(folder, {
        "format_version": fmt.FORMAT_VERSION, "feature_names": FEATURES, "target": config.TARGET,
        "weights": weights.tolist(), "bias": bias, "tensorflow_version": "2.20.0", "train_rows": 404,
        "probe": {"inputs": probe.tolist(), "savedmodel_outputs": (probe @ weights + bias).tolist()},
        "feature_means": means.tolist(), "baseline": float(means @ weights + bias), "data_sha256": "ab" * 32,
        "training": {**models.default_params(), "seed": seed},
        **({"training_distribution": distribution} if distribution else {}),
    })
    push_version(store, ModelLocation(bucket, MODEL, version), folder,
                 {"metrics.json": {"rmse": rmse, "r2": 0.7, "mae": 3.1, "mse": rmse**2, "test_rows": 102}})
    return Stored(version, weights, bias)


@pytest.fixture
def bucket() -> str:
    return f"reg-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def three(store, bucket, tmp_path) -> list[Stored]:
    """Three stored versions; the middle one is champion."""
    found = [store_version(store, bucket, tmp_path / str(i), f"2026010{i}T000000Z-{i}{i}{i}{i}aaaa", 20.0 + i,
                           seed=42 if i != 3 else 11, rmse=4.0 + i / 10) for i in (1, 2, 3)]
    write_champion(store, ModelLocation(bucket, MODEL, found[1].version), {"metrics": {"rmse": 4.2}})
    return found


@pytest.fixture
def port(s3_server) -> Iterator[int]:
    chosen = free_port()
    yield chosen
    stop_served(state_dir(), chosen)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_version_newest_first_with_markers(capsys, three, bucket):
    code, out, err = cli(capsys, "models", "list", "--bucket", bucket)
    assert code == 0 and err == ""
    lines = [line for line in out.splitlines() if "2026010" in line]
    assert [line.split()[0 if not line.startswith(" *") else 1] for line in lines] == [
        three[2].version, three[1].version, three[0].version]
    assert lines[1].startswith(" * ") and not lines[0].startswith(" * ")
    assert "seed=11" in lines[0] and "4.300" in lines[0] and "abababababab" in lines[0]
    code, out, _ = cli(capsys, "models", "list", "--bucket", bucket, "--json")
    rows = json.loads(out)
    assert [r["version"] for r in rows] == [s.version for s in reversed(three)]
    assert [r["champion"] for r in rows] == [False, True, False]
    assert rows[0]["changed_params"] == {"seed": 11} and rows[1]["changed_params"] == {}
    assert rows[0]["rmse"] == pytest.approx(4.3) and rows[0]["uri"] == f"s3://{bucket}/{MODEL}/{three[2].version}/"


def test_show_prints_card_metrics_and_a_verified_manifest(capsys, three, bucket):
    code, out, _ = cli(capsys, "models", "show", "20260102T", "--bucket", bucket)
    assert code == 0
    assert f"{three[1].version}  (champion)" in out
    assert "verified: all 4 files match the manifest (sha256 and size)" in out
    assert f"{three[1].weights[5]:.5f}" in out and "tensorflow_version  2.20.0" in out
    code, out, _ = cli(capsys, "models", "show", "champion", "--bucket", bucket, "--json")
    shown = json.loads(out)
    assert shown["version"] == three[1].version and shown["verified"] is True
    assert {f["path"] for f in shown["files"]} == {"1/saved_model.pb", "1/variables/variables.index",
                                                    "boston_model.json", "metrics.json"}


def test_diff_marks_what_differs(capsys, three, bucket):
    code, out, _ = cli(capsys, "models", "diff", three[0].version, three[2].version, "--bucket", bucket)
    assert code == 0
    marked = {line.split()[1] for line in out.splitlines() if line.startswith("≠")}
    assert {"rmse", "seed", "bias", *FEATURES} <= marked
    assert "batch_size" not in marked and "data_sha256" not in marked
    assert out.strip().endswith("differ, marked ≠)")


def test_a_tampered_version_is_named_by_show_and_refused_by_promote(capsys, store, three, bucket, port):
    key = f"{MODEL}/{three[0].version}/{fmt.CARD_FILE}"
    store.put_bytes(bucket, key, store.get_bytes(bucket, key).replace(b'"bias"', b'"bias" ', 1))
    code, out, _ = cli(capsys, "models", "show", three[0].version, "--bucket", bucket)
    assert code == 1
    assert "BAD boston_model.json" in out and "NOT verified: 1 of 4 files" in out
    before = read_champion(store, bucket, MODEL)
    code, out, err = cli(capsys, "models", "promote", three[0].version, "--bucket", bucket, "--port", str(port))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "boston_model.json" in err and "does not verify" in err
    assert read_champion(store, bucket, MODEL) == before
    assert read_served(state_dir(), port) is None


def test_unknown_versions_get_the_nearest_names(capsys, three, bucket):
    code, _, err = cli(capsys, "models", "show", three[0].version[:-1] + "b", "--bucket", bucket)
    assert code == 2 and err.count("\n") == 1
    assert "unknown version" in err and three[0].version in err
    code, _, err = cli(capsys, "models", "promote", "nope", "--bucket", bucket)
    assert code == 2 and "unknown version 'nope'; nearest stored:" in err
    code, _, err = cli(capsys, "models", "diff", "2026", three[0].version, "--bucket", bucket)
    assert code == 2 and "is ambiguous" in err


def test_an_unreachable_store_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("MINIO_ENDPOINT", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("MINIO_ACCESS_KEY", "k")
    monkeypatch.setenv("MINIO_SECRET_KEY", "s")
    for argv in (["models", "list"], ["models", "show", "x"], ["models", "rollback"]):
        code, out, err = cli(capsys, *argv)
        assert code == 2 and out == "" and err.count("\n") == 1
        assert "cannot reach S3 endpoint" in err


def test_promote_and_rollback_end_to_end_on_the_local_target(capsys, store, three, bucket, port):
    rows = np.abs(np.random.default_rng(5).normal(5.0, 3.0, (4, len(FEATURES))))
    code, out, _ = cli(capsys, "models", "promote", three[0].version, "--bucket", bucket, "--port", str(port))
    assert code == 0 and f"champion: {three[1].version} → {three[0].version}" in out
    url = f"http://127.0.0.1:{port}"
    np.testing.assert_allclose(predict_v1(url, MODEL, rows), three[0].predict(rows), atol=1e-9)
    check_predict_explain(capsys, url, three[0], rows[0])
    code, out, _ = cli(capsys, "models", "promote", three[2].version, "--bucket", bucket)  # port from the record
    assert code == 0 and f"{three[0].version} → {three[2].version}" in out
    np.testing.assert_allclose(predict_v1(url, MODEL, rows), three[2].predict(rows), atol=1e-9)
    champion = read_champion(store, bucket, MODEL)
    assert champion["history"] == [three[1].version, three[0].version] and champion["target"] == "process"

    code, out, _ = cli(capsys, "models", "rollback", "--bucket", bucket)
    assert code == 0 and f"{three[2].version} → {three[0].version}" in out
    np.testing.assert_allclose(predict_v1(url, MODEL, rows), three[0].predict(rows), atol=1e-9)
    assert read_champion(store, bucket, MODEL)["history"] == [three[1].version]
    promotion = models.rollback_model(bucket=bucket, log=lambda _: None)  # the Python API, as the notebook calls it
    assert (promotion.before, promotion.version) == (three[0].version, three[1].version)
    np.testing.assert_allclose(predict_v1(url, MODEL, rows), three[1].predict(rows), atol=1e-9)
    code, _, err = cli(capsys, "models", "rollback", "--bucket", bucket)
    assert code == 2 and "has no earlier champion to roll back to; nothing changed" in err
    listed = {r.version: r for r in models.list_models(bucket=bucket)}
    assert listed[three[1].version].champion and listed[three[1].version].serving == url
    code, _, err = cli(capsys, "models", "promote", "champion", "--bucket", bucket)
    assert code == 2 and "is already the champion" in err


def check_predict_explain(capsys, url: str, served: Stored, row: np.ndarray) -> None:
    """`boston-pipeline predict --explain` prints prediction = baseline + one contribution per feature."""
    code, out, err = cli(capsys, "predict", "--url", url, "--explain", *(repr(float(v)) for v in row))
    assert code == 0, err
    head, *lines = out.strip().splitlines()
    baseline = float(np.full(len(FEATURES), 3.0) @ served.weights + served.bias)
    prediction = float(served.predict(row.reshape(1, -1))[0])
    assert head.startswith(f"prediction {prediction:.4f} = baseline {baseline:.4f}")
    shown = {line.split()[0]: float(line.split()[-1]) for line in lines[1:-1]}
    expected = dict(zip(FEATURES, served.weights * (row - 3.0), strict=True))
    assert shown.keys() == expected.keys()
    assert all(abs(shown[k] - expected[k]) < 1e-4 for k in FEATURES)
    ranked = [abs(v) for v in shown.values()]
    assert ranked == sorted(ranked, reverse=True)  # largest contribution first
    assert float(lines[-1].split()[-1]) == pytest.approx(prediction - baseline, abs=1e-4)
    code, _, err = cli(capsys, "predict", "--url", url, "--explain", "1", "2")
    assert code == 2 and err.count("\n") == 1 and "has 2 values, expected 13" in err


def test_a_version_that_fails_to_serve_leaves_the_champion_serving(capsys, store, three, bucket, port, tmp_path):
    cli(capsys, "models", "promote", three[0].version, "--bucket", bucket, "--port", str(port))
    served = read_served(state_dir(), port)
    broken = store_version(store, bucket, tmp_path / "broken", "20260109T000000Z-bbbbbbbb", 30.0, empty_file=True)
    before = read_champion(store, bucket, MODEL)
    code, out, err = cli(capsys, "models", "promote", broken.version, "--bucket", bucket)
    assert code == 2 and err.count("\n") == 1
    assert "empty file(s): 1/variables/variables.index" in err
    assert f"champion {three[0].version} keeps serving and stays champion" in err
    assert read_champion(store, bucket, MODEL) == before
    assert read_served(state_dir(), port) == served  # the same process, never interrupted
    rows = np.ones((2, len(FEATURES)))
    np.testing.assert_allclose(predict_v1(served.url, MODEL, rows), three[0].predict(rows), atol=1e-9)


def test_two_promotions_at_once_cannot_tear_the_record(store, three, bucket, port):
    argv = [sys.executable, "-m", "pipeline.cli", "models", "promote", "--bucket", bucket, "--port", str(port)]
    env = {**os.environ, ENV_STATE_DIR: str(state_dir())}
    procs = [subprocess.Popen([*argv, s.version], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              cwd=Path(__file__).resolve().parents[2]) for s in (three[0], three[2])]
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    champion = read_champion(store, bucket, MODEL)
    winner = next(s for s in three if s.version == champion["version"])
    loser = three[0] if winner is three[2] else three[2]
    # They took turns: the second saw the first as its previous champion, and the record names what serves.
    assert champion["previous"] == loser.version and champion["history"] == [three[1].version, loser.version]
    rows = np.ones((3, len(FEATURES)))
    np.testing.assert_allclose(predict_v1(f"http://127.0.0.1:{port}", MODEL, rows), winner.predict(rows), atol=1e-9)


def test_kserve_promote_updates_the_inference_service_and_waits(store, three, bucket):
    from kubernetes import client

    from boston_model.store import parse_s3_uri
    from tests.doubles.k8s_api import running

    def load_model(uri: str):
        b, key = parse_s3_uri(uri)
        return fmt.linear_model_from_card(store.get_json(b, key + fmt.CARD_FILE)).predict

    with running(reconcile_after=0.3, load_model=load_model) as (api, endpoint):
        cluster = models.Cluster(api_client=client.ApiClient(client.Configuration(host=api.url)))
        logs: list[str] = []
        # Deployed with its own settings: 3 replicas and a CPU limit of 4.
        serving = {"target": "kserve", "namespace": "ml-team", "ready_timeout_s": 15, "min_replicas": 3,
                   "cpu_limit": "4"}
        first = models.promote_model(three[0].version, serving, bucket=bucket, cluster=cluster, log=logs.append)
        assert (first.before, first.version) == (three[1].version, three[0].version)
        obj = api.get_object("ml-team", MODEL)
        assert obj["spec"]["predictor"]["model"]["storageUri"] == f"s3://{bucket}/{MODEL}/{three[0].version}/"
        assert obj["spec"]["predictor"]["model"]["runtimeVersion"] == config.TF_SERVING_VERSION
        assert obj["spec"]["predictor"]["minReplicas"] == 3
        # A version promoted without settings of its own keeps what serves now (the kserve target, 3 replicas).
        second = models.promote_model(three[2].version, bucket=bucket, cluster=cluster, log=logs.append)
        assert second.version == three[2].version and api.get_object("ml-team", MODEL)["spec"]["predictor"][
            "minReplicas"] == 3
        # Rolling back puts the version back with what it was deployed with, not the defaults.
        again = models.rollback_model(bucket=bucket, cluster=cluster, log=logs.append)
        assert again.version == three[0].version
        obj = api.get_object("ml-team", MODEL)
        assert obj["metadata"]["generation"] == 3 and obj["spec"]["predictor"]["minReplicas"] == 3
        assert obj["spec"]["predictor"]["model"]["resources"]["limits"]["cpu"] == "4"
        # Every smoke call after the replace was answered by the rolled-back version, not by the one before it.
        assert endpoint.calls[-1][1] == f"s3://{bucket}/{MODEL}/{three[0].version}/"
        champion = read_champion(store, bucket, MODEL)
        assert champion["target"] == "kserve" and champion["inference_service"] == f"ml-team/{MODEL}"
        assert champion["serving"]["min_replicas"] == 3 and champion["serving"]["cpu_limit"] == "4"
        assert champion["generation"] == 3 and champion["history"] == [three[1].version]
        assert any("waiting up to 15 s" in line for line in logs)


def test_drift_reads_the_served_versions_live_counts(capsys, store, bucket, port, tmp_path):
    from boston_model.drift import training_distribution
    from components.load.core import load_table

    data = load_table().frame[FEATURES].to_numpy(dtype=np.float64)
    old = store_version(store, bucket, tmp_path / "old", "20260201T000000Z-0000aaaa", 21.0)
    new = store_version(store, bucket, tmp_path / "new", "20260202T000000Z-1111bbbb", 22.0,
                        distribution=training_distribution(data, FEATURES))
    url = f"http://127.0.0.1:{port}"
    assert cli(capsys, "models", "promote", old.version, "--bucket", bucket, "--port", str(port))[0] == 0
    code, _, err = cli(capsys, "models", "drift", "--bucket", bucket, "--url", url)
    assert code == 2 and err.count("\n") == 1 and "has no boston_feature_rows counts" in err  # an old card
    assert cli(capsys, "models", "promote", new.version, "--bucket", bucket)[0] == 0
    predict_v1(url, MODEL, data[:50])
    smoke = 6  # the release's smoke test sent the card's 6 probe rows to this predictor: answered rows count
    code, out, _ = cli(capsys, "models", "drift", "--bucket", bucket, "--url", url)
    assert code == 0 and f"serves {new.version}; {50 + smoke} rows seen" in out and "verdict: too few rows" in out
    for start in range(50, len(data), 100):
        predict_v1(url, MODEL, data[start:start + 100])
    code, out, _ = cli(capsys, "models", "drift", "--bucket", bucket, "--url", url, "--json", "--fail-on", "moderate")
    report = json.loads(out)
    assert code == 0 and report["version"] == new.version and report["rows"] == len(data) + smoke
    assert report["verdict"] == "stable" and set(report["bands"]) == set(FEATURES)
    shifted = data.copy()
    shifted[:, FEATURES.index("RM")] += 1.5
    for _ in range(3):
        for start in range(0, len(shifted), 100):
            predict_v1(url, MODEL, shifted[start:start + 100])
    code, out, _ = cli(capsys, "models", "drift", "--bucket", bucket, "--url", url, "--fail-on", "drift")
    assert code == 1 and "verdict: drift" in out
    assert [line.split()[0] for line in out.splitlines() if line.endswith("drift") and line.startswith("  ")] == ["RM"]
