"""Shared pytest fixtures."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from boston_model.store import ObjectStore, S3Settings
from components.common import ports
from pipeline import embedded_s3
from pipeline.state import ENV_STATE_DIR

# --- ports ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Hands out free ports on 127.0.0.1: call it once per server (``port = free_port()``)."""
    return ports.free_port


# --- waiting -----------------------------------------------------------------------


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the test's own thread asks ``time.sleep`` for (they still happen).

    "Fails fast" is then a bound on the waiting the code chose, which does not depend on how busy the machine is,
    instead of a wall-clock bound that does.
    """
    asked: list[float] = []
    real, caller = time.sleep, threading.get_ident()

    def sleep(seconds: float) -> None:
        if threading.get_ident() == caller:
            asked.append(seconds)
        real(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return asked


# --- embedded S3 server -------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Settings]:
    """A real embedded S3 server (``weed mini``) shared by the whole session.

    Its state lives in a temporary directory that ``BOSTON_STATE_DIR`` points to for the
    rest of the session, so code calling ``settings_for_run()`` finds this server and
    never touches the developer's own state. ``MINIO_*`` variables are cleared for the
    same reason. The server is stopped by PID when the session ends.
    """
    state = tmp_path_factory.mktemp("boston-state")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_STATE_DIR, str(state))
        for name in ("MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
            env.delenv(name, raising=False)
        settings = embedded_s3.ensure_running(state)
        record = embedded_s3.read_server(state)
        try:
            yield settings
        finally:
            embedded_s3.stop(state)
            # If stop() could not (say a test broke server.json), still end our process.
            if record is not None and embedded_s3.is_weed_process(record.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(record.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def store(s3_server: S3Settings) -> ObjectStore:
    """A client of the session's S3 server (stateless, so one serves every test)."""
    return ObjectStore(s3_server)


# --- tiers ---------------------------------------------------------------------------

# Fixtures that start a real server (the embedded store, a predictor, a cluster double) or train TensorFlow: a test
# that uses one is not in the fast tier. `make test-fast` runs `-m "not slow and not server and not container"`.
_SERVER_FIXTURES = frozenset({"s3_server", "store", "cluster", "target", "predictor", "server", "live", "stock",
                              "component_env", "kfp_api", "port", "own_server", "silent_server"})
# Fixtures that train TensorFlow or run steps through a pipeline runner (kfp.local): slow.
_TRAINING_FIXTURES = frozenset({"trained", "trained_model", "boston_model_dir", "kfp_local", "champion_seed_11"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks each test by what it needs, so the fast tier is exactly what is left (see setup.cfg's markers)."""
    for item in items:
        needs = set(getattr(item, "fixturenames", ()))
        path = str(item.path)
        if needs & _TRAINING_FIXTURES or "/e2e/" in path:
            item.add_marker(pytest.mark.slow)
        if needs & _SERVER_FIXTURES or any(part in path for part in ("/kserve/", "/notebooks/", "/e2e/")):
            item.add_marker(pytest.mark.server)


_TIERS = ("slow", "server", "container")


@pytest.fixture(autouse=True)
def _fast_tier_stays_fast(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test left in the fast tier may not listen on a socket or import TensorFlow: it fails, naming the marker.

    Cheap (a patched method and a dictionary lookup), so the fast tier checks itself on every run.
    """
    if any(request.node.get_closest_marker(tier) for tier in _TIERS):
        yield
        return
    test = request.node.nodeid

    def listen(self: socket.socket, *args: object) -> None:
        raise AssertionError(f"{test} starts a server in the fast tier: mark it server (tests/conftest.py)")

    monkeypatch.setattr(socket.socket, "listen", listen)
    had_tensorflow = "tensorflow" in sys.modules
    yield
    if not had_tensorflow and "tensorflow" in sys.modules:
        pytest.fail(f"{test} imports TensorFlow in the fast tier: mark it slow (tests/conftest.py)")
