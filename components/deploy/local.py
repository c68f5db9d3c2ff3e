"""The local deploy target: run the KServe predictor (the `boston_predictor` package) as a background process.

The process gets its own session (so a stop reaches its whole group) and a log file instead of the step's stdout:
kfp.local reads a step's output until it closes, and a server that inherited it would hang the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests

from components.common.processes import is_running, terminate_group, wait_until
from components.deploy.errors import DeployError

READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.2
STOP_TIMEOUT_S = 15.0
SMOKE_ATOL = 1e-5


@dataclass(frozen=True)
class ServedModel:
    """A running local predictor."""

    pid: int
    url: str
    model_name: str
    uri: str
    log: str

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "url": self.url, "model_name": self.model_name, "uri": self.uri, "log": self.log}


def predictor_command() -> list[str]:
    """The predictor the image and the local target both run: the installed `boston_predictor` package.

    ``python -m`` with this interpreter rather than the ``boston-predictor`` script: the step may run in an
    environment whose ``bin/`` is not on PATH, and the interpreter finds the package the same way the step does.
    """
    return [sys.executable, "-m", "boston_predictor"]


def serving_record(state: Path, port: int) -> Path:
    return Path(state) / "serving" / f"{port}.json"


def read_served(state: Path, port: int) -> ServedModel | None:
    """The predictor recorded as serving on ``port``, if any."""
    path = serving_record(state, port)
    try:
        return ServedModel(**json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def stop_served(state: Path, port: int, timeout: float = STOP_TIMEOUT_S) -> ServedModel | None:
    """Stops the predictor recorded on ``port`` (SIGTERM to its group, SIGKILL after ``timeout``)."""
    served = read_served(state, port)
    if served is None:
        return None
    if is_running(served.pid):
        terminate_group(served.pid, timeout)
    serving_record(state, port).unlink(missing_ok=True)
    return served


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return "no log"
    return lines[-1].strip() if lines else "empty log"


def start_predictor(
    state: Path,
    model_name: str,
    uri: str,
    host: str,
    port: int,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = READY_TIMEOUT_S,
) -> ServedModel:
    """Starts the predictor for ``uri`` on ``host:port`` and waits until the model is ready.

    Raises:
        DeployError: the process exits or is not ready within ``timeout`` (with the last line of its log).
    """
    log_dir = Path(state) / "serving"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{port}.log"
    command = [
        *predictor_command(), "--model_name", model_name, "--storage_uri", uri,
        "--http_port", str(port), "--bind", host, *extra_args,
    ]
    with open(log, "ab") as out:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=dict(env if env is not None else os.environ),
        )
    url = f"http://{host}:{port}"
    served = ServedModel(process.pid, url, model_name, uri, str(log))
    serving_record(state, port).write_text(json.dumps(served.to_json()))

    def ready() -> bool:
        if process.poll() is not None:
            serving_record(state, port).unlink(missing_ok=True)
            raise DeployError(f"predictor exited with code {process.returncode}: {_last_line(log)}")
        return model_ready(url, model_name)

    if wait_until(ready, timeout, READY_POLL_S):
        return served
    stop_served(state, port)
    raise DeployError(f"predictor not ready on {url} after {timeout:.0f} s: {_last_line(log)}")


def model_ready(url: str, model_name: str) -> bool:
    """Whether the predictor at ``url`` says ``model_name`` is ready (KServe's V1 model route); False if unreachable."""
    try:
        response = requests.get(f"{url}/v1/models/{model_name}", timeout=1)
        return response.status_code == 200 and response.json().get("ready") is True
    except (requests.RequestException, ValueError):
        return False


def v1_request(rows: np.ndarray) -> dict[str, Any]:
    """The smoke test's body: TensorFlow Serving's V1 REST row format, ``{"instances": [[13 numbers], ...]}``.

    V1 is the protocol both serving runtimes speak: KServe's TF Serving runtime (``kserve-tensorflow-serving``)
    declares only ``v1`` and ``grpc-v1``, so a ``tensorflow`` deploy is smoke-tested over V1, never V2
    (tests/kserve/test_tf_serving_contract.py feeds this body to the exported SavedModel as TF Serving reads it).
    """
    return {"instances": np.asarray(rows, dtype=np.float64).tolist()}


def predict_v1(url: str, model_name: str, rows: np.ndarray, timeout: float = 10.0) -> np.ndarray:
    """Calls the V1 predict endpoint (`v1_request`) and returns one prediction per row."""
    try:
        response = requests.post(f"{url}/v1/models/{model_name}:predict", json=v1_request(rows), timeout=timeout)
    except requests.ConnectionError:
        raise DeployError(f"cannot reach {url}: is the predictor running? (`boston-pipeline run` starts it)") from None
    except requests.Timeout:
        raise DeployError(f"{url} did not answer within {timeout:g} s") from None
    if response.status_code != 200:
        try:
            reason = str(response.json().get("error") or response.text)
        except ValueError:
            reason = response.text
        raise DeployError(f"predict returned HTTP {response.status_code}: {reason[:200]}")
    return np.asarray(response.json()["predictions"], dtype=np.float64).reshape(-1)


def smoke_test(url: str, model_name: str, rows: np.ndarray, expected: np.ndarray, atol: float = SMOKE_ATOL) -> float:
    """Sends ``rows`` to the live endpoint; raises DeployError unless it answers ``expected`` within ``atol``.

    Over V1 for both runtimes (see `v1_request`: the TF Serving runtime serves V1 only).

    Returns:
        The largest absolute difference seen.
    """
    got = predict_v1(url, model_name, rows)
    expected = np.asarray(expected, dtype=np.float64).reshape(-1)
    if got.shape != expected.shape:
        raise DeployError(f"smoke test: {got.shape[0]} predictions for {expected.shape[0]} rows")
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= atol:
        raise DeployError(f"smoke test: live predictions differ from evaluate's by {diff:.3g} (> {atol:g})")
    return diff
