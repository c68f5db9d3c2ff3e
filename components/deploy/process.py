"""The process target: the KServe predictor (`boston_predictor`) as a background process on this machine.

A release starts the new predictor beside the one serving, on a trial port, and switches by handing it the public
listening socket (`boston_predictor.handover`): the endpoint's port never stops accepting. Each predictor gets its
own session (so a stop reaches its whole group) and a log file instead of the step's stdout: kfp.local reads a
step's output until it closes, and a server that inherited it would hang the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from boston_model.errors import BadInput, ReleaseFailed, last_line
from boston_model.store import ObjectStore
from boston_predictor.handover import Offer, bind_listener, receive_listener
from components.common.ports import free_port
from components.common.processes import is_running, terminate_group, wait_until
from components.common.registry import StoredVersion
from components.deploy.release import Candidate, model_ready

ENV_STATE_DIR = "BOSTON_STATE_DIR"  # the local runner names its state folder here; records and logs go below it
READY_TIMEOUT_S = 60.0
SWITCH_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0
HAND_OFF_S = 1.0  # between "stop accepting" and SIGTERM: requests on connections it just accepted get read


@dataclass(frozen=True)
class ServedModel:
    """A running local predictor."""

    pid: int
    url: str
    model_name: str
    uri: str
    log: str


def serving_record(state: Path, port: int) -> Path:
    return Path(state) / "serving" / f"{port}.json"


def handover_path(state: Path, port: int) -> Path:
    return Path(state) / "serving" / f"{port}.sock"


def read_served(state: Path, port: int) -> ServedModel | None:
    """The predictor recorded as serving on ``port``, if any."""
    try:
        return ServedModel(**json.loads(serving_record(state, port).read_text()))
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
    handover_path(state, port).unlink(missing_ok=True)
    return served


def switch_to(path: Path, host: str, port: int, signal_candidate: Callable[[], None],
              is_candidate: Callable[[str], bool], timeout: float = SWITCH_TIMEOUT_S) -> None:
    """Makes sure the public socket is offered at ``path`` (bound here on a first release), signals the candidate
    to take it, and waits until the candidate offers it in turn (then it accepts on it).

    Raises:
        ReleaseFailed: the port is taken by another program, or the candidate did not take the socket in time.
    """
    bootstrap = None
    try:
        receive_listener(path)[0].close()  # someone serves: it offers the socket
    except OSError:
        try:
            listener = bind_listener(host, port)
        except OSError as exc:
            raise ReleaseFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bootstrap = (listener, Offer(listener, path, "release"))
    try:
        signal_candidate()

        def taken() -> bool:
            try:
                sock, identity = receive_listener(path)
            except OSError:
                return False
            sock.close()
            return is_candidate(identity)

        if not wait_until(taken, timeout, 0.05):
            raise ReleaseFailed(f"the new predictor did not take over {host}:{port} within {timeout:.0f} s")
    finally:
        if bootstrap:
            bootstrap[1].close()
            bootstrap[0].close()


class ProcessTarget:
    """Serves versions as predictor processes on ``host:port``; records and logs in ``state``/serving."""

    name = "process"

    def __init__(self, state: Path, store: ObjectStore, model_name: str, host: str, port: int,
                 log: Callable[[str], None] = print) -> None:
        self.state, self.store, self.model_name = Path(state), store, model_name
        self.host, self.port, self.log = host, port, log
        self.endpoint = f"http://{host}:{port}"
        (self.state / "serving").mkdir(parents=True, exist_ok=True)
        os.chmod(self.state / "serving", 0o700)

    @classmethod
    def from_env(cls, store: ObjectStore, model_name: str, host: str, port: int,
                 env: Mapping[str, str] | None = None) -> ProcessTarget:
        """The target of a local run's deploy step: the runner names its state folder in the environment."""
        env = os.environ if env is None else env
        if not env.get(ENV_STATE_DIR):
            raise BadInput(f"the process target needs {ENV_STATE_DIR} (boston-pipeline run sets it)")
        return cls(Path(env[ENV_STATE_DIR]), store, model_name, host, port)

    def start(self, stored: StoredVersion) -> Candidate:
        trial = free_port(self.host)
        log = self.state / "serving" / f"{self.port}.log"
        command = [sys.executable, "-m", "boston_predictor", "--model_name", self.model_name,
                   "--storage_uri", stored.location.uri, "--http_port", str(trial), "--bind", self.host,
                   "--takeover", str(handover_path(self.state, self.port))]
        # The predictor fetches the version itself, with the same store settings (never on its command line).
        env = {**os.environ, **self.store.settings.to_env()}
        with open(log, "ab") as out:
            process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env=env,
            )
        served = ServedModel(process.pid, f"http://{self.host}:{trial}", self.model_name, stored.location.uri,
                             str(log))
        candidate = Candidate(served.url, served)

        def ready() -> bool:
            if process.poll() is not None:
                tail = last_line(log.read_text(errors="replace"), "empty log")
                raise ReleaseFailed(f"predictor exited with code {process.returncode}: {tail}")
            return model_ready(served.url, self.model_name)

        try:
            if not wait_until(ready, READY_TIMEOUT_S, 0.2):
                raise ReleaseFailed(f"predictor not ready on {served.url} after {READY_TIMEOUT_S:.0f} s")
        except ReleaseFailed:
            self.stop(candidate)
            raise
        return candidate

    def switch(self, candidate: Candidate) -> ServedModel | None:
        served: ServedModel = candidate.handle
        previous = read_served(self.state, self.port)
        if previous is not None and not is_running(previous.pid):
            previous = None
        switch_to(handover_path(self.state, self.port), self.host, self.port,
                  lambda: os.kill(served.pid, signal.SIGUSR1), lambda who: who.endswith(f"/{served.pid}"))
        serving_record(self.state, self.port).write_text(json.dumps(asdict(served) | {"url": self.endpoint}))
        return previous

    def switch_back(self, previous: ServedModel | None, candidate: Candidate) -> None:
        if previous is not None:
            os.kill(previous.pid, signal.SIGUSR1)  # offers the socket again, at the handover path
            serving_record(self.state, self.port).write_text(json.dumps(asdict(previous)))
        self.stop(candidate)

    def stop(self, candidate: Candidate) -> None:
        terminate_group(candidate.handle.pid, STOP_TIMEOUT_S)

    def retire(self, previous: ServedModel | None) -> None:
        if previous is not None and is_running(previous.pid):
            os.kill(previous.pid, signal.SIGUSR2)  # stop accepting first; what it accepted is answered
            time.sleep(HAND_OFF_S)
            terminate_group(previous.pid, STOP_TIMEOUT_S)
            self.log(f"stopped the predictor that served {previous.uri}")

    def check(self, card: Mapping[str, Any]) -> None:
        """Nothing to check before an upload: this target fails, if at all, when it starts the version."""

    def record(self) -> dict[str, Any]:
        return {}
