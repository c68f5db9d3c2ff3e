"""Fixtures for the predictor tests: one trained model per session and real predictor processes.

Every server here is the real predictor (`python -m boston_predictor`, what the ``boston-predictor`` command runs)
started as a subprocess on a free loopback port, polled with bounded loops, and stopped by its PID.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from components.common.ports import free_port

# The command line that starts the predictor: the package's own entry, found by the interpreter, not by path.
PREDICTOR_ARGV = (sys.executable, "-m", "boston_predictor")
MODEL_NAME = "boston-housing"
START_TIMEOUT_S = 30.0  # generous: the machine is shared, a start normally takes ~1.5 s
# The shared server runs with small limits so the limit tests send small bodies.
MAX_BATCH = 1000
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class TrainedModel:
    """A model folder written by the real training code, with the split it was trained on."""

    model_dir: Path
    train: pd.DataFrame
    test: pd.DataFrame


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """Trains once per session through load -> split -> train (TensorFlow; several seconds)."""
    from components.load.core import load_table
    from components.split.core import split_frame
    from components.train.core import TrainParams, train_model

    train, test = split_frame(load_table().frame)
    model_dir = tmp_path_factory.mktemp("trained") / "boston"
    train_model(train, model_dir, TrainParams(), log=lambda _: None)
    return TrainedModel(model_dir, train, test)


def write_synthetic_model(model_dir: Path) -> Path:
    """A model folder in the training step's format, without TensorFlow: fixed weights, probe outputs in float32.

    The SavedModel files are placeholders (the server never reads them; it checks they exist and are not empty).
    The real trained model is exercised by the slow tests.
    """
    import numpy as np

    from boston_model import card as model_format
    from pipeline import config

    rng = np.random.default_rng(7)
    weights = rng.normal(0.0, 1.0, len(config.FEATURES)) / 2
    bias = 22.5
    probe = np.abs(rng.normal(5.0, 3.0, (10, len(config.FEATURES))))
    outputs = (probe @ weights + bias).astype(np.float32).astype(np.float64)
    saved = model_dir / model_format.SAVEDMODEL_DIR
    (saved / "variables").mkdir(parents=True, exist_ok=True)
    (saved / "saved_model.pb").write_bytes(b"placeholder savedmodel")
    (saved / "variables" / "variables.index").write_bytes(b"placeholder index")
    card = {
        "format_version": model_format.FORMAT_VERSION,
        "feature_names": list(config.FEATURES),
        "target": config.TARGET,
        "weights": weights.tolist(),
        "bias": bias,
        "probe": {"inputs": probe.tolist(), "savedmodel_outputs": outputs.tolist()},
        "signature": {"name": "serving_default", "input": "features", "input_shape": [None, len(config.FEATURES)]},
        "feature_means": probe.mean(axis=0).tolist(),  # what :explain measures contributions from
    }
    model_format.write_card(model_dir, card)
    return model_dir


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic model most server tests use (no TensorFlow, instant)."""
    return write_synthetic_model(tmp_path_factory.mktemp("synthetic") / "boston")


class NotReady(Exception):
    """The predictor answered, but not yet 200."""


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Predictor:
    """A running predictor process and a keep-alive client to it."""

    process: subprocess.Popen[bytes]
    port: int
    log_dir: Path
    host: str = "127.0.0.1"
    grpc_port: int | None = None
    _conn: http.client.HTTPConnection | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str | None] | None = None
    ) -> Response:
        """One request on a kept-alive connection (reconnects once if the server closed it)."""
        if body is not None and not isinstance(body, bytes | str):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        sent_headers = {"Content-Type": "application/json"} if body is not None else {}
        sent_headers.update(headers or {})
        sent_headers = {k: v for k, v in sent_headers.items() if v is not None}  # None: leave the header out
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                self._conn.request(method, path, body=body, headers=sent_headers)
                raw = self._conn.getresponse()
                response = Response(raw.status, raw.read(), {k.lower(): v for k, v in raw.getheaders()})
                if response.headers.get("connection", "").lower() == "close":
                    self._drop()
                return response
            except (ConnectionError, http.client.HTTPException):
                self._drop()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def post(self, path: str, body: Any, headers: dict[str, str | None] | None = None) -> Response:
        return self.request("POST", path, body, headers)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def stderr(self) -> str:
        return (self.log_dir / "stderr.log").read_text(errors="replace")

    def stdout(self) -> str:
        return (self.log_dir / "stdout.log").read_text(errors="replace")

    def rss_kb(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss // 1024

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> float:
        """Polls readiness until 200; returns the seconds waited. Fails at once if the process exits first."""
        start = time.monotonic()

        def ready() -> None:
            if self.process.poll() is not None:  # not retried: an AssertionError stops the poll
                raise AssertionError(f"predictor exited with {self.process.returncode}:\n{self.stderr()[-2000:]}")
            conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
            try:
                conn.request("GET", "/v2/health/ready")
                if conn.getresponse().status != 200:
                    raise NotReady
            finally:
                conn.close()

        try:
            Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.05), reraise=True,
                     retry=retry_if_exception_type((NotReady, OSError, http.client.HTTPException)))(ready)
        except (NotReady, OSError, http.client.HTTPException):
            raise AssertionError(f"predictor not ready after {timeout} s:\n{self.stderr()[-2000:]}") from None
        return time.monotonic() - start

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        self._drop()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def spawn(
    log_dir: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None
) -> Predictor:
    """Starts the predictor with ``args`` (plus port and name unless given); logs go to ``log_dir``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [*PREDICTOR_ARGV, "--http_port", str(port), *args]
    if "--model_name" not in args:
        argv += ["--model_name", MODEL_NAME]
    full_env = {**os.environ, **(env or {})}
    with open(log_dir / "stdout.log", "wb") as out, open(log_dir / "stderr.log", "wb") as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=full_env, cwd=str(log_dir))
    host = args[args.index("--bind") + 1] if "--bind" in args else "127.0.0.1"
    grpc_port = int(args[args.index("--grpc_port") + 1]) if "--grpc_port" in args else None
    return Predictor(process, port, log_dir, host, grpc_port)


@pytest.fixture(scope="session")
def predictor(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Predictor]:
    """The shared server: the synthetic model, small limits, default everything else."""
    server = spawn(
        tmp_path_factory.mktemp("predictor"),
        "--model_dir", str(model_dir),
        "--max_batch", str(MAX_BATCH),
        "--max_body_bytes", str(MAX_BODY_BYTES),
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def grpc_predictor(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Predictor]:
    """The shared server's twin with V2 over gRPC on (``--enable_grpc true``), on another loopback port."""
    server = spawn(
        tmp_path_factory.mktemp("grpc-predictor"),
        "--model_dir", str(model_dir),
        "--max_batch", str(MAX_BATCH),
        "--max_body_bytes", str(MAX_BODY_BYTES),
        "--enable_grpc", "true", "--grpc_port", str(free_port()),
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture()
def spawn_predictor(tmp_path: Path) -> Iterator[Callable[..., Predictor]]:
    """Starts extra predictors for one test (``spawn_predictor(*args, env=...)``); all are stopped afterwards."""
    started: list[Predictor] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Predictor:
        server = spawn(tmp_path / f"server-{len(started)}", *args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture()
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic model folder that a test may damage."""
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


@pytest.fixture(scope="session")
def predictor_command() -> list[str]:
    """The installed ``boston-predictor`` console script (the image's ENTRYPOINT), next to this interpreter."""
    script = Path(sys.executable).with_name("boston-predictor")
    assert script.is_file(), f"{script} is missing: is the project installed (make install)?"
    return [str(script)]


STOCK_KSERVE = Path(__file__).resolve().with_name("stock_kserve.py")


@pytest.fixture(scope="session")
def stock_kserve(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Predictor]:
    """Stock KServe (`stock_kserve.py`) serving the same linear map as the shared predictor: the reference.

    REST and gRPC (KServe's default), both on loopback.
    """
    log_dir = tmp_path_factory.mktemp("stock-kserve")
    port, grpc_port = free_port(), free_port()
    argv = [sys.executable, str(STOCK_KSERVE), "--model_dir", str(model_dir), "--model_name", MODEL_NAME,
            "--http_port", str(port), "--grpc_port", str(grpc_port)]
    with open(log_dir / "stdout.log", "wb") as out, open(log_dir / "stderr.log", "wb") as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, cwd=str(log_dir))
    server = Predictor(process, port, log_dir, grpc_port=grpc_port)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
