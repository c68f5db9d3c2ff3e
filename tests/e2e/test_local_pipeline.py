"""End to end: `boston-pipeline run` as a user runs it, against the real embedded S3 store and a real predictor."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from boston_model.versions import fetch_version
from components.common.processes import is_running
from components.deploy.process import read_served

RUN_TIMEOUT_S = 600


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def env(s3_server) -> dict:
    return dict(os.environ)  # the s3_server fixture has pointed BOSTON_STATE_DIR at its own state folder


@pytest.fixture(scope="module")
def state(env) -> Path:
    return Path(env["BOSTON_STATE_DIR"])


@pytest.fixture(scope="module")
def port(state, free_port):
    port = free_port()
    yield port
    served = read_served(state, port)
    subprocess.run([sys.executable, "-m", "pipeline.cli", "down", "--port", str(port)], timeout=60,
                   capture_output=True, env=dict(os.environ))
    if served:  # belt and braces: nothing of ours may outlive the tests
        try:
            os.killpg(served.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def first_run(env, port):
    return _cli("run", "--port", str(port), "--bucket", "e2e", env=env)


def _evaluate_predictions(state: Path) -> pd.DataFrame:
    newest = max((state / "pipeline_root").glob("*/evaluate-model/predictions"), key=lambda p: p.stat().st_mtime)
    return pd.read_csv(newest)


def test_the_committed_yaml_runs_on_kfp_local(s3_server, tmp_path):
    """The file a user uploads to the Kubeflow UI is the file that runs here (gate forced to fail: no deploy)."""
    from pipeline.runner import run_compiled, store_environment

    committed = Path(__file__).resolve().parents[2] / "boston_housing_pipeline.yaml"
    with store_environment(s3_server):
        task = run_compiled(committed, {"serving": {"target": "process"}, "s3_endpoint": "", "max_rmse": 0.1,
                                        "epochs": 30, "bucket": "yaml-check"}, tmp_path)
    assert task.outputs["gate_passed"] is False
    assert task.outputs["metrics"].metadata["test_rows"] == 102


def test_run_succeeds_and_prints_a_readable_summary(first_run, port):
    assert first_run.returncode == 0, first_run.stderr[-3000:]
    out = first_run.stdout
    mse = float(re.search(r"model \(test rows\)\s+([\d.]+)", out).group(1))
    assert mse <= 24.5
    assert re.search(r"baseline: least squares\s+24\.29", out)
    assert "gate:      PASSED" in out
    assert re.search(r"model:     s3://e2e/boston-housing/\d{8}T\d{6}Z-[0-9a-f]{8}/", out)
    assert f"http://127.0.0.1:{port}/v1/models/boston-housing:predict" in out
    assert "curl -s -H 'Content-Type: application/json'" in out
    assert "Traceback" not in out + first_run.stderr


def test_model_manifest_and_champion_are_in_s3(first_run, store, tmp_path):
    champion = store.get_json("e2e", "boston-housing/champion.json")
    assert champion["uri"] == f"s3://e2e/boston-housing/{champion['version']}/"
    assert champion["metrics"]["mse"] <= 24.5
    assert champion["previous"] is None
    keys = store.list_keys("e2e", f"boston-housing/{champion['version']}/")
    manifest = store.get_json("e2e", f"boston-housing/{champion['version']}/manifest.json")
    prefix = f"boston-housing/{champion['version']}/"
    assert sorted(k[len(prefix):] for k in keys) == sorted([*manifest["files"], "manifest.json"])
    assert "1/saved_model.pb" in manifest["files"] and "boston_model.json" in manifest["files"]
    fetch_version(store, champion["uri"], tmp_path)  # verifies every sha256 and size


def test_live_endpoint_answers_exactly_what_evaluate_predicted(first_run, state, port):
    served = read_served(state, port)
    predictions = _evaluate_predictions(state)
    features = [c for c in predictions.columns if c not in ("MEDV", "prediction")]
    response = requests.post(f"{served.url}/v1/models/boston-housing:predict",
                             json={"instances": predictions[features].to_numpy().tolist()}, timeout=10)
    assert response.status_code == 200
    live = np.asarray(response.json()["predictions"], dtype=np.float64).reshape(-1)
    np.testing.assert_allclose(live, predictions["prediction"].to_numpy(), atol=1e-5, rtol=0)


def test_predict_command_uses_the_served_model(first_run, env, port):
    row = pd.read_csv(Path(__file__).resolve().parents[2] / "components/data/boston_housing.csv").iloc[0]
    values = [f"{v:g}" for v in row.drop("MEDV")]
    result = _cli("predict", "--url", f"http://127.0.0.1:{port}", *values, env=env)
    assert result.returncode == 0, result.stderr
    assert 20 < float(result.stdout.strip()) < 40


def test_gate_failure_deploys_nothing(first_run, env, port, store, state):
    before = store.get_json("e2e", "boston-housing/champion.json")
    versions_before = {k.split("/")[1] for k in store.list_keys("e2e", "boston-housing/")}
    pid_before = read_served(state, port).pid
    result = _cli("run", "--port", str(port), "--bucket", "e2e", "--max-rmse", "1", "--cache", env=env)
    assert result.returncode == 3
    assert "gate:      FAILED" in result.stdout
    assert store.get_json("e2e", "boston-housing/champion.json") == before
    assert {k.split("/")[1] for k in store.list_keys("e2e", "boston-housing/")} == versions_before
    assert read_served(state, port).pid == pid_before


def test_second_run_replaces_the_served_model(first_run, env, port, store, state):
    first = store.get_json("e2e", "boston-housing/champion.json")
    old_pid = read_served(state, port).pid
    result = _cli("run", "--port", str(port), "--bucket", "e2e", "--cache", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    second = store.get_json("e2e", "boston-housing/champion.json")
    assert second["version"] != first["version"]
    assert second["previous"] == first["version"]
    served = read_served(state, port)
    assert served.pid != old_pid and served.uri == second["uri"]
    # Gone: exited (a zombie that no init reaps counts as exited; nothing of it serves).
    assert not is_running(old_pid)
    ready = requests.get(f"{served.url}/v1/models/boston-housing", timeout=5).json()
    assert ready["ready"] is True


def test_corrupt_input_fails_with_one_line_and_no_traceback(env, tmp_path):
    frame = pd.read_csv(Path(__file__).resolve().parents[2] / "components/data/boston_housing.csv")
    frame = frame.astype({"MEDV": object})
    frame.loc[41, "MEDV"] = "n/a?"
    bad = tmp_path / "corrupt.csv"
    frame.to_csv(bad, index=False)
    result = _cli("run", "--source", str(bad), env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["boston-pipeline run: error: column MEDV, row 42: 'n/a?' is not a number"]


def test_run_with_an_unreachable_store_fails_with_one_line(env):
    secret = "sEcReT-never-printed-42"
    broken = {**env, "MINIO_ENDPOINT": "127.0.0.1:9", "MINIO_ACCESS_KEY": "k", "MINIO_SECRET_KEY": secret}
    result = _cli("run", env=broken)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1:9" in lines[0]
    assert secret not in result.stdout + result.stderr


def test_the_store_secret_never_reaches_logs_artifacts_or_output(first_run, state, s3_server):
    assert s3_server.secret_key not in first_run.stdout + first_run.stderr
    leaked = [
        str(path) for folder in ("logs", "pipeline_root", "serving", "compiled")
        for path in (state / folder).rglob("*")
        if path.is_file() and s3_server.secret_key.encode() in path.read_bytes()
    ]
    assert not leaked
