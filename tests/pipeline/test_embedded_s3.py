"""The embedded ``weed mini`` server: real processes, each stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from boston_model.store import ObjectStore, S3Settings, StoreError
from components.common.processes import wait_until
from pipeline import embedded_s3
from pipeline.state import state_dir

LISTEN_SETTLE_S = 10.0  # admin listeners open ~0.5 s after S3 is ready


def _kill_by_pid(pid: int | None) -> None:
    """Last-resort cleanup for a server a test started."""
    if pid is not None and embedded_s3.is_weed_process(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def _server(state: Path) -> Iterator[S3Settings]:
    """Starts a server in ``state`` and guarantees it is gone afterwards."""
    pids: list[int] = []
    try:
        settings = embedded_s3.ensure_running(state)
        record = embedded_s3.read_server(state)
        assert record is not None
        pids.append(record.pid)
        yield settings
    finally:
        record = embedded_s3.read_server(state)
        embedded_s3.stop(state)
        for pid in {*pids, record.pid if record else None}:
            _kill_by_pid(pid)


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, S3Settings]]:
    """A server of this module's own, so its files and sockets can be inspected."""
    state = tmp_path_factory.mktemp("own-state")
    with _server(state) as settings:
        yield state, settings


# --- pure helpers -------------------------------------------------------------------


def test_state_dir_resolution(tmp_path: Path) -> None:
    explicit = tmp_path / "explicit"
    xdg = tmp_path / "xdg"

    assert state_dir({"BOSTON_STATE_DIR": str(explicit), "XDG_STATE_HOME": str(xdg)}) == explicit
    assert state_dir({"XDG_STATE_HOME": str(xdg)}) == xdg / "boston-housing-kfp"
    assert state_dir({}) == Path.home() / ".local" / "state" / "boston-housing-kfp"
    assert not explicit.exists()
    assert not xdg.exists()


def test_weed_binary_is_executable() -> None:
    weed = embedded_s3.weed_binary()

    assert weed.name == "weed"
    assert os.access(weed, os.X_OK)


def test_settings_for_run_prefers_external_minio(tmp_path: Path) -> None:
    env = {
        "MINIO_ENDPOINT": "https://minio.example:9000",
        "MINIO_ACCESS_KEY": "ak",
        "MINIO_SECRET_KEY": "sk",
        "BOSTON_STATE_DIR": str(tmp_path / "state"),
    }

    settings, embedded = embedded_s3.settings_for_run(env)

    assert embedded is False
    assert (settings.endpoint, settings.secure) == ("minio.example:9000", True)
    assert not (tmp_path / "state").exists()  # no server started, nothing written


def test_settings_for_run_uses_session_server(s3_server: S3Settings) -> None:
    # The s3_server fixture points BOSTON_STATE_DIR at its state directory.
    settings, embedded = embedded_s3.settings_for_run({"BOSTON_STATE_DIR": os.environ["BOSTON_STATE_DIR"]})

    assert embedded is True
    assert settings == s3_server


def test_volumes_on_disk_reads_volume_file_names(tmp_path: Path) -> None:
    for name in ("boston-models_3.dat", "7.dat", "boston-models_3.idx", "lifecycle_1.vif", "notes.dat"):
        (tmp_path / name).write_text("")

    assert embedded_s3.volumes_on_disk(tmp_path) == {3, 7}


def _vol_status(nodes: dict[str, list[int] | None]) -> dict[str, object]:
    """The shape of weed 4.48's master ``/vol/status`` answer."""
    rack = {url: None if ids is None else [{"Id": i, "Collection": "c"} for i in ids] for url, ids in nodes.items()}
    return {"Volumes": {"DataCenters": {"DefaultDataCenter": {"DefaultRack": rack}}, "Free": 60, "Max": 67}}


def test_volumes_pending_waits_for_the_volume_server_and_every_stored_volume() -> None:
    no_server = "no volume server has registered with the master yet"
    # No answer, or no volume server yet: nothing can be read or written.
    assert embedded_s3.volumes_pending(None, set()) == no_server
    assert embedded_s3.volumes_pending({"Volumes": {"DataCenters": {}}}, set()) == no_server
    # A volume server with nothing registered serves a fresh store, not a stored one.
    assert embedded_s3.volumes_pending(_vol_status({"127.0.0.1:1": None}), set()) is None
    assert embedded_s3.volumes_pending(_vol_status({"127.0.0.1:1": []}), {2, 1}) == (
        "volumes 1, 2 not yet registered with the master"
    )
    assert embedded_s3.volumes_pending(_vol_status({"127.0.0.1:1": [2]}), {1, 2}) == (
        "volumes 1 not yet registered with the master"
    )
    assert embedded_s3.volumes_pending(_vol_status({"127.0.0.1:1": [1, 2, 5]}), {1, 2}) is None


def test_stop_without_server_is_false(tmp_path: Path) -> None:
    assert embedded_s3.stop(tmp_path) is False
    assert not (tmp_path / "s3").exists()


# --- one running server -------------------------------------------------------------


def test_keys_are_private(own_server: tuple[Path, S3Settings]) -> None:
    state, settings = own_server
    home = state / "s3"

    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "credentials.json").stat().st_mode) == 0o600
    assert json.loads((home / "credentials.json").read_text()) == {
        "access_key": settings.access_key,
        "secret_key": settings.secret_key,
    }


def test_keys_not_on_command_line(own_server: tuple[Path, S3Settings]) -> None:
    state, settings = own_server
    record = embedded_s3.read_server(state)
    assert record is not None

    argv = Path(f"/proc/{record.pid}/cmdline").read_bytes()

    assert settings.secret_key.encode() not in argv
    assert settings.access_key.encode() not in argv


def test_second_call_reuses_server(own_server: tuple[Path, S3Settings]) -> None:
    state, settings = own_server
    before = embedded_s3.read_server(state)

    again = embedded_s3.ensure_running(state)

    assert again == settings
    assert embedded_s3.read_server(state) == before


def test_server_rejects_wrong_secret(own_server: tuple[Path, S3Settings]) -> None:
    _, settings = own_server
    wrong = S3Settings(settings.endpoint, settings.access_key, "not-" + settings.secret_key)

    with pytest.raises(StoreError, match="rejected the credentials"):
        ObjectStore(wrong).check()


def _listening_sockets(pid: int) -> list[tuple[str, str, int]]:
    """``(table, ip, port)`` of every listening TCP / bound UDP socket of ``pid``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            # 0A is TCP LISTEN; for UDP every bound socket receives, so all count.
            if inode in inodes and (table.startswith("udp") or state == "0A"):
                hex_ip, hex_port = local.split(":")
                raw = bytes.fromhex(hex_ip)
                if table.endswith("6"):
                    ip = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
                else:
                    ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
                found.append((table, ip, int(hex_port, 16)))
    return found


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="needs Linux procfs")
def test_listens_only_on_loopback(own_server: tuple[Path, S3Settings]) -> None:
    state, _ = own_server
    record = embedded_s3.read_server(state)
    assert record is not None
    expected = set(record.ports.values())

    sockets: list[tuple[str, str, int]] = []

    def every_port_listens() -> bool:
        sockets[:] = _listening_sockets(record.pid)
        return {port for _, _, port in sockets} >= expected

    wait_until(every_port_listens, LISTEN_SETTLE_S)  # bounded by time; the assertions below say what is missing

    assert sockets, "the server listens on nothing"
    assert {(table, ip) for table, ip, _ in sockets} == {("tcp", "127.0.0.1")}
    # Exactly the ports we chose: no WebDAV, Iceberg, Lance or default-port listeners.
    assert {port for _, _, port in sockets} == expected


def test_room_for_buckets_is_fixed_not_taken_from_free_disk(own_server: tuple[Path, S3Settings]) -> None:
    """Each bucket is a SeaweedFS collection with its own volume; weed's default caps volumes at
    free disk / volume size, which refused the 41st bucket with a 500 on a disk with 40 GB free."""
    state, settings = own_server
    record = embedded_s3.read_server(state)
    assert record is not None
    status = embedded_s3.server.master_status(record.ports["master.port"], "/dir/status")

    assert status is not None, "the master did not answer /dir/status"
    assert status["Topology"]["Max"] == embedded_s3.server.VOLUME_COUNT
    store = ObjectStore(settings)
    for index in range(5):
        bucket = f"room-{index}"
        store.ensure_bucket(bucket)
        store.put_bytes(bucket, "model/file.bin", bytes([index]) * 64)
        assert store.get_bytes(bucket, "model/file.bin") == bytes([index]) * 64


# --- lifecycle ----------------------------------------------------------------------


@pytest.mark.server
def test_stop_and_restart_keep_keys_and_data(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with _server(state) as first:
        store = ObjectStore(first)
        store.ensure_bucket("lifecycle")
        store.put_json("lifecycle", "kept.json", {"rows": 506})
        record = embedded_s3.read_server(state)
        assert record is not None

        assert embedded_s3.stop(state) is True
        assert not embedded_s3.is_weed_process(record.pid)
        assert not (state / "s3" / "server.json").exists()
        assert (state / "s3" / "credentials.json").exists()
        assert embedded_s3.stop(state) is False
        # weed names unix sockets in /tmp after its ports and may leave them behind.
        ports = {str(port) for port in record.ports.values()}
        left = [p for p in Path("/tmp").glob("seaweedfs-*.sock") if p.stem.rsplit("-", 1)[-1] in ports]
        assert left == []

        # A record left by a crash must not block a fresh start; Linux pids stay <= 2**22.
        (state / "s3" / "server.json").write_text(
            json.dumps({"pid": 2**22 + 1, "port": record.port, "data_dir": record.data_dir})
        )

        second = embedded_s3.ensure_running(state)
        restarted = embedded_s3.read_server(state)

        assert restarted is not None
        assert restarted.pid != record.pid
        assert (second.access_key, second.secret_key) == (first.access_key, first.secret_key)
        # Ready means stored objects are readable at once, not only that S3 answers.
        assert ObjectStore(second).get_json("lifecycle", "kept.json") == {"rows": 506}


@pytest.mark.server
def test_concurrent_starts_share_one_server(tmp_path: Path) -> None:
    state = tmp_path / "state"
    results: list[S3Settings] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            results.append(embedded_s3.ensure_running(state))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=start) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert not errors
        assert len(results) == 3
        assert len(set(results)) == 1
    finally:
        record = embedded_s3.read_server(state)
        embedded_s3.stop(state)
        _kill_by_pid(record.pid if record else None)


@pytest.mark.server
def test_startup_failure_reports_cause_from_log(tmp_path: Path) -> None:
    state = tmp_path / "state"
    data = state / "s3" / "data"
    data.mkdir(parents=True)
    # A file where the filer keeps its database makes weed exit during start-up.
    (data / "filerldb2").write_text("not a directory")

    try:
        with pytest.raises(StoreError) as raised:
            embedded_s3.ensure_running(state)
    finally:
        record = embedded_s3.read_server(state)
        _kill_by_pid(record.pid if record else None)

    message = str(raised.value)
    assert "\n" not in message
    assert "exited with code" in message
    assert "filerldb2" in message
    assert not (state / "s3" / "server.json").exists()
