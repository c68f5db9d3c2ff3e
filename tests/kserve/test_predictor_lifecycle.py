"""Start-up, readiness, binding, logging, SIGTERM, load and a bounded soak, all on real server processes."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from boston_model.versions import MANIFEST, build_manifest
from components.common.processes import wait_until

V1 = "/v1/models/boston-housing:predict"
V2 = "/v2/models/boston-housing/infer"
ROW = [0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98]
MAX_RSS_MB = 250


def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """The (address, port) of every TCP socket the process listens on, from /proc."""
    fd_dir = Path(f"/proc/{pid}/fd")
    inodes = set()
    for fd in fd_dir.iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:  # 0A: LISTEN
                continue
            addr_hex, port_hex = cols[1].split(":")
            if width == 8:
                addr = ".".join(str(int(addr_hex[i:i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                addr = "ipv6:" + addr_hex
            found.append((addr, int(port_hex, 16)))
    return found


def test_listens_on_loopback_only_and_without_grpc(predictor: Any) -> None:
    # kserve 0.21 would bind REST to 0.0.0.0 and gRPC to [::]; the default here is one loopback socket (gRPC is on
    # in the image and the InferenceService, on the --bind address: test_grpc.py).
    assert listening_addresses(predictor.process.pid) == [("127.0.0.1", predictor.port)]


def test_no_tensorflow_and_bounded_memory(predictor: Any) -> None:
    maps = Path(f"/proc/{predictor.process.pid}/maps").read_text()
    assert "tensorflow" not in maps.lower()
    assert predictor.rss_kb() < MAX_RSS_MB * 1024


def test_no_log_line_per_request_by_default(predictor: Any) -> None:
    predictor.get("/v2/health/live")
    before = len(predictor.stdout()) + len(predictor.stderr())
    for _ in range(50):
        assert predictor.post(V1, {"instances": [ROW]}).status == 200
        assert predictor.post(V1, {"instances": []}).status == 400
        assert predictor.get("/v2/health/ready").status == 200
    # No wait needed: an access log line is written before the response it logs is sent (uvicorn logs at
    # http.response.start), so any line for these requests is already there; the test below is the control.
    assert len(predictor.stdout()) + len(predictor.stderr()) == before


def test_bind_flag_and_request_logging(spawn_predictor: Any, model_dir: Path) -> None:
    server = spawn_predictor("--model_dir", str(model_dir), "--bind", "127.0.0.2", "--log_requests")
    server.wait_ready()
    assert listening_addresses(server.process.pid) == [("127.0.0.2", server.port)]
    for _ in range(5):
        assert server.post(V1, {"instances": [ROW]}).status == 200
    assert server.stdout().count("POST /v1/models/boston-housing") == 5  # written before each response
    assert server.stop() == 0


def test_ready_only_after_the_model_is_loaded_and_self_checked(spawn_predictor: Any, model_dir: Path) -> None:
    server = spawn_predictor("--model_dir", str(model_dir))
    seen: list[Any] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
            conn.request("GET", "/v2/models/boston-housing/ready")
            status = conn.getresponse().status
            conn.close()
        except OSError:
            status = "no answer"
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == 200:
            break
        time.sleep(0.01)
    # Nothing answers until the model is loaded and self-checked; the first answer is already "ready".
    assert seen[-1] == 200 and all(s == "no answer" for s in seen[:-1]), seen
    log = server.stderr()
    assert log.index("loaded and self-checked") < log.index("Uvicorn running")
    assert server.get("/v2/health/ready").json() == {"ready": True}


def _damage(folder: Path, how: str) -> list[str]:
    """Breaks a model folder in one way; returns the command-line arguments to start on it."""
    card = folder / "boston_model.json"
    saved = folder / "1" / "saved_model.pb"
    args = ["--model_dir", str(folder)]
    if how == "missing folder":
        return ["--model_dir", str(folder / "nowhere")]
    if how == "missing card":
        card.unlink()
    elif how == "zero-byte card":
        card.write_bytes(b"")
    elif how == "zero-byte SavedModel":
        saved.write_bytes(b"")
    elif how == "missing SavedModel":
        saved.unlink()
    elif how == "card not JSON":
        card.write_text("{not json")
    elif how in ("bad checksum", "wrong size"):
        (folder / MANIFEST).write_text(json.dumps(build_manifest(folder, "v1")))
        data = saved.read_bytes()
        saved.write_bytes(bytes([data[0] ^ 1]) + data[1:] if how == "bad checksum" else data + b"x")
    elif how == "card disagrees with its SavedModel":
        content = json.loads(card.read_text())
        content["weights"][0] += 0.5
        card.write_text(json.dumps(content))
    elif how == "gRPC on the HTTP port":
        args += ["--enable_grpc", "true", "--grpc_port", "1"]
    else:
        raise AssertionError(how)
    return args


@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("missing folder", "does not exist"),
        ("missing card", "has no boston_model.json"),
        ("zero-byte card", "empty file(s): boston_model.json"),
        ("zero-byte SavedModel", "empty file(s): 1/saved_model.pb"),
        ("missing SavedModel", "no 1/saved_model.pb"),
        ("card not JSON", "not valid JSON"),
        ("bad checksum", "does not match its sha256"),
        ("wrong size", "the manifest says"),
        ("card disagrees with its SavedModel", "differs from the SavedModel"),
        ("gRPC on the HTTP port", "--grpc_port and --http_port must differ"),
    ],
)
def test_start_up_failure_is_one_clear_line(
    predictor_command: list[str], model_copy: Path, how: str, words: str
) -> None:
    args = _damage(model_copy, how)
    done = subprocess.run(
        [*predictor_command, "--model_name", "boston-housing", "--http_port", "1", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("predictor: cannot start: ")
    assert words in lines[0]
    assert "Traceback" not in done.stderr and str(model_copy.parent) not in lines[0]


def test_sigterm_finishes_the_request_in_flight_and_exits_zero(spawn_predictor: Any, model_dir: Path) -> None:
    server = spawn_predictor("--model_dir", str(model_dir))
    server.wait_ready()
    body = json.dumps({"instances": [ROW] * 20}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"POST " + V1.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:100])
    time.sleep(0.3)  # headers parsed: the request is in the app, waiting for the rest of its body
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert server.process.poll() is None, "exited with a request in flight"
    with pytest.raises(ConnectionRefusedError):  # no new connections while draining
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    sock.sendall(body[100:])
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    head, _, payload = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert len(json.loads(payload)["predictions"]) == 20
    assert server.process.wait(20) == 0


def test_liveness_answers_under_prediction_load(predictor: Any) -> None:
    # Answers, not how fast: a latency bound measures the shared machine (bench/serving measures latency).
    big = json.dumps({"instances": [ROW] * 1000}).encode()
    stop = threading.Event()
    errors: list[str] = []
    served: list[int] = []

    def hammer() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", predictor.port, timeout=10)
        while not stop.is_set():
            conn.request("POST", V1, body=big, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(str(response.status))
            served.append(response.status)
        conn.close()

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        assert wait_until(lambda: len(served) >= 2, 30), "the load never got an answer"
        conn = http.client.HTTPConnection("127.0.0.1", predictor.port, timeout=10)
        for _ in range(30):
            conn.request("GET", "/v2/health/live")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        conn.close()
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert not errors


def test_soak_thousands_of_requests_no_errors_bounded_memory(predictor: Any) -> None:
    names = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]
    requests: list[tuple[str, Any, int]] = [
        (V1, {"instances": [ROW]}, 200),
        (V1, {"instances": [dict(zip(names, ROW, strict=True))] * 3}, 200),
        (V2, {"inputs": [{"name": "f", "shape": [2, 13], "datatype": "FP32", "data": ROW * 2}]}, 200),
        (V1, {"inputs": [ROW] * 10}, 200),
        (V1, {"instances": [ROW[:5]]}, 400),
        (V2, {"inputs": []}, 400),
    ]
    bodies = [(path, json.dumps(body).encode(), status) for path, body, status in requests]

    def run(count: int) -> list[str]:
        failures = []
        for i in range(count):
            path, body, status = bodies[i % len(bodies)]
            response = predictor.post(path, body)
            if response.status != status:
                failures.append(f"{path}: {response.status}")
        return failures

    assert run(600) == []  # warm-up: caches, allocator arenas, metric children
    rss_before = predictor.rss_kb()
    assert run(3000) == []
    growth_mb = (predictor.rss_kb() - rss_before) / 1024
    assert growth_mb < 8, f"RSS grew {growth_mb:.1f} MB over 3000 requests"
    assert predictor.process.poll() is None
