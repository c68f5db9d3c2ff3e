"""Loading a version from S3 (the embedded SeaweedFS): verified by its manifest, or refused in one line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from boston_model.store import ObjectStore
from boston_model.versions import ModelLocation, push_version

ROW = [0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98]


def test_serves_a_version_fetched_from_s3(s3_server: Any, model_dir: Path, spawn_predictor: Any) -> None:
    location = ModelLocation("kserve-tests", "boston-housing", "20261125T000000Z-good")
    push_version(ObjectStore(s3_server), location, model_dir)
    server = spawn_predictor("--storage_uri", location.uri, env=s3_server.to_env())
    server.wait_ready()
    response = server.post("/v2/models/boston-housing/infer",
                           {"inputs": [{"name": "f", "shape": [1, 13], "datatype": "FP64", "data": ROW}]})
    assert response.status == 200
    assert response.json()["model_version"] == location.version
    assert server.stop() == 0


def _start_failure(command: list[str], args: list[str], env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [*command, "--model_name", "boston-housing", "--http_port", "1", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    return [line for line in done.stderr.splitlines() if line.strip()]


def test_a_corrupted_object_stops_start_up_with_one_line(
    predictor_command: list[str], s3_server: Any, model_dir: Path
) -> None:
    store = ObjectStore(s3_server)
    location = ModelLocation("kserve-tests", "boston-housing", "20261125T000000Z-corrupt")
    push_version(store, location, model_dir)
    key = location.prefix + "1/saved_model.pb"
    original = store.get_bytes(location.bucket, key)
    store.put_bytes(location.bucket, key, bytes([original[0] ^ 1]) + original[1:])  # same size, other bytes

    lines = _start_failure(predictor_command, ["--storage_uri", location.uri], {**os.environ, **s3_server.to_env()})
    assert len(lines) == 1 and lines[0].startswith("predictor: cannot start: ")
    assert "1/saved_model.pb does not match its sha256" in lines[0]
    assert s3_server.secret_key not in lines[0]


def test_s3_without_credentials_is_one_line(predictor_command: list[str], s3_server: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
    lines = _start_failure(predictor_command, ["--storage_uri", "s3://kserve-tests/boston-housing/v1/"], env)
    assert lines == ["predictor: cannot start: --storage_uri needs MINIO_ENDPOINT, MINIO_ACCESS_KEY and "
                     "MINIO_SECRET_KEY to be set"]
