"""The drift-triggered retraining job of docs/kubeflow.md, run as written against a live predictor and the KFP API
double (tests/doubles/kfp_api.py, driven through the real kfp.Client by `boston-pipeline submit`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from boston_model.drift import training_distribution
from components.deploy.process import stop_served
from components.deploy.release import predict_v1
from components.load.core import load_table
from pipeline import config
from pipeline.state import ENV_STATE_DIR, state_dir
from tests.doubles.kfp_api import KfpApiDouble
from tests.pipeline.test_models import store_version

REPO = Path(__file__).resolve().parents[2]
FEATURES = list(config.FEATURES)
TOKEN = "drift-job-token"


def _job_script() -> str:
    text = (REPO / "docs" / "kubeflow.md").read_text()
    block = re.search(r"```bash\n(# drift-job:.*?)```", text, re.S)
    assert block, "docs/kubeflow.md lost its drift job"
    return block.group(1)


@pytest.fixture
def served(s3_server, store, tmp_path, free_port) -> Iterator[tuple[str, str, np.ndarray]]:
    bucket = f"drift-{uuid.uuid4().hex[:8]}"
    data = load_table().frame[FEATURES].to_numpy(dtype=np.float64)
    version = store_version(store, bucket, tmp_path / "v", "20260301T000000Z-2222cccc", 22.0,
                            distribution=training_distribution(data, FEATURES)).version
    port = free_port()
    from pipeline import models

    models.promote_model(version, {"target": "process", "local_port": port}, bucket=bucket, log=lambda _: None)
    try:
        yield f"http://127.0.0.1:{port}", bucket, data
    finally:
        stop_served(state_dir(), port)


def _run_job(url: str, bucket: str, api: KfpApiDouble) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "ISVC_URL": url, "KF_PIPELINES_ENDPOINT": api.url, "KFP_EXISTING_TOKEN": TOKEN,
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", ENV_STATE_DIR: str(state_dir())}
    script = _job_script().replace("models drift ", f"models drift --bucket {bucket} ")
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)


def test_the_documented_drift_job_retrains_only_once_the_inputs_moved(served, tmp_path):
    url, bucket, data = served
    for start in range(0, len(data), 100):
        predict_v1(url, config.MODEL_NAME, data[start:start + 100])
    with KfpApiDouble(token=TOKEN) as api:
        stable = _run_job(url, bucket, api)
        assert stable.returncode == 0, stable.stderr[-2000:]
        assert "verdict: stable" in stable.stdout and api.calls("POST", "/apis/v2beta1/runs") == []
        shifted = data.copy()
        shifted[:, FEATURES.index("RM")] += 1.5
        for _ in range(3):
            for start in range(0, len(shifted), 100):
                predict_v1(url, config.MODEL_NAME, shifted[start:start + 100])
        moved = _run_job(url, bucket, api)
        assert moved.returncode == 0, moved.stderr[-2000:]
        assert "verdict: drift" in moved.stdout
        [run] = api.calls("POST", "/apis/v2beta1/runs")
        assert run.json["display_name"].startswith("retrain-on-drift-")
