"""Serving bench: our predictor against the servers a user would deploy instead, side by side in one run.

One command, from the repository root with its venv::

    .venv/bin/python bench/serving/run.py     # ~6 minutes; --duration 2 --repeats 1 --cold-starts 1 for a look

It sets up what it needs: ``wrk`` (apt-get, if missing), a venv for the peers in ``bench/.venv-peers`` (MLServer
1.7.1 + mlserver-sklearn with ``uvloop==0.21.0``, without which MLServer 1.7.1 loads no model), and a model trained
by the repository's own train step. Servers, measured one at a time on loopback with ``wrk`` sharing the same cores:

* ``ours``: the ``boston_predictor`` package (``boston-predictor``; V1, and V2 for the request rate);
* stock KServe: a plain ``kserve.Model`` serving the same numpy map on ``kserve.ModelServer`` (the conformance
  suite's reference, ``tests/kserve/stock_kserve.py``), its per-request log lines off as ours are: what the fast
  path itself gains over KServe, not over a TensorFlow-backed peer (V1, and V2 for the request rate);
* MLServer 1.7.1 + mlserver-sklearn, defaults, V2 (the same affine map as a scikit-learn ``LinearRegression``);
* kserve 0.21 ``ModelServer`` with a ``kserve.Model`` calling the SavedModel signature, latency log off, V1;
* a bare uvicorn ASGI app that returns a fixed answer: the ceiling for any Python server on this machine;
* V2 over gRPC, ours and stock KServe's (``ModelInfer``, tritonclient's request: one FP32 tensor in raw contents),
  driven by ``grpc_load.py`` (wrk speaks HTTP/1.1 only) with as many generator processes as cores.

``--only-stock`` measures ours and stock KServe only (REST and gRPC; no peers venv, no TensorFlow peer) and writes
``bench/serving/RESULTS-only-stock.md``.

Reported: requests/s and latency at 1 and 16 connections, cold start (spawn to first answered prediction, median
of three), RSS (the server's whole process tree after the load) and batch throughput in rows/s. The markdown table
is printed and written to ``bench/serving/RESULTS.md``; raw wrk output goes to ``bench/results/serving/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from tenacity import RetryError, Retrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed

from components.common.ports import free_port

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PEERS_VENV = REPO / "bench" / ".venv-peers"
WORK = REPO / "bench" / "results" / "serving"
RESULTS_MD = HERE / "RESULTS.md"
RESULTS_ONLY_STOCK_MD = HERE / "RESULTS-only-stock.md"  # what --only-stock writes (RESULTS.md keeps every peer)
STOCK_KSERVE = REPO / "tests" / "kserve" / "stock_kserve.py"  # the conformance suite's stock reference
GRPC_LOAD = HERE / "grpc_load.py"
PEER_REQUIREMENTS = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0")
MODEL_NAME = "boston-housing"
ROW = [0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98]
BATCH_SIZES = (1, 100, 10_000)
START_TIMEOUT_S = 120.0

# The goals for ours: (label, key in our results, comparison, target)
GOALS = (
    ("c=16 req/s ≥ 2× stock kserve.Model's (same map, V1)", "c16_ratio_stock", ">=", 2.0),
    ("c=16 req/s ≥ 3× MLServer's", "c16_ratio_mlserver", ">=", 3.0),
    ("c=16 p99 ≤ 4 ms", "c16_p99_ms", "<=", 4.0),
    ("c=1 p50 ≤ 0.25 ms", "c1_p50_ms", "<=", 0.25),
    ("cold start ≤ 1.5 s", "cold_start_s", "<=", 1.5),
    ("cold start ≤ stock kserve.Model's (side by side, same run)", "cold_ratio_stock", "<=", 1.0),
    ("RSS ≤ 250 MB", "rss_mb", "<=", 250.0),
)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- setup --------------------------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """Path of wrk, installed with apt-get when missing (the bench machines run as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    log("installing wrk with apt-get")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or sys.exit("wrk could not be installed; install it and run again")


def ensure_peers_venv() -> Path:
    """The peers' venv, created once; re-created when its pinned requirements change."""
    python = PEERS_VENV / "bin" / "python"
    marker = PEERS_VENV / "bench-requirements.txt"
    wanted = "\n".join(PEER_REQUIREMENTS) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    log(f"creating {PEERS_VENV.relative_to(REPO)} ({', '.join(PEER_REQUIREMENTS)}); about a minute")
    shutil.rmtree(PEERS_VENV, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
    (PEERS_VENV / ".gitignore").write_text("*\n")  # keeps the venv out of git without touching .gitignore
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / "peers-install.log", "wb") as out:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS],
                       check=True, stdout=out, stderr=subprocess.STDOUT)
    marker.write_text(wanted)
    return python


def ensure_model(model_dir: Path) -> dict[str, Any]:
    """A model trained by the repository's own train step (in a child process: TensorFlow stays out of here)."""
    card_path = model_dir / "boston_model.json"
    if not card_path.exists():
        log("training the model with the repository's train step")
        code = (
            "import sys; from pathlib import Path\n"
            "from components.load.core import load_table\n"
            "from components.split.core import split_frame\n"
            "from components.train.core import train_model\n"
            "train, _ = split_frame(load_table().frame)\n"
            "train_model(train, Path(sys.argv[1]), log=lambda _: None)\n"
        )
        subprocess.run([sys.executable, "-c", code, str(model_dir)], check=True, capture_output=True)
    return json.loads(card_path.read_text())


# --- servers --------------------------------------------------------------------------------------------------------


@dataclass
class Server:
    """How to start one server and talk to it."""

    label: str
    protocol: str  # "v1", "v2", "explain" (V1 bodies to :explain) or "grpc" (V2 ModelInfer; started with REST)
    argv: Callable[[int], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    batches: bool = True
    grpc_flags: Callable[[int], list[str]] | None = None  # protocol "grpc": the flags that serve gRPC on a port

    def path(self) -> str:
        if self.protocol == "grpc":  # started and checked over REST V1, measured over gRPC
            return f"/v1/models/{MODEL_NAME}:predict"
        if self.protocol == "explain":
            return f"/v1/models/{MODEL_NAME}:explain"
        return f"/v1/models/{MODEL_NAME}:predict" if self.protocol == "v1" else f"/v2/models/{MODEL_NAME}/infer"

    def body(self, rows: int) -> bytes:
        if self.protocol in ("v1", "explain", "grpc"):  # :explain takes exactly the bodies :predict takes
            return json.dumps({"instances": [ROW] * rows}).encode()
        request = {"inputs": [{"name": "predict", "shape": [rows, len(ROW)], "datatype": "FP64", "data": ROW * rows}]}
        return json.dumps(request).encode()


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    grpc_port: int | None = None


def start(server: Server, log_path: Path) -> tuple[Running, float]:
    """Starts a server in its own process group; returns it and the seconds until it answered a prediction."""
    port = free_port()
    grpc_port = free_port() if server.grpc_flags else None
    argv = server.argv(port) + (server.grpc_flags(grpc_port) if server.grpc_flags and grpc_port else [])
    env = {**os.environ, **server.env}
    with open(log_path, "ab") as out:
        began = time.monotonic()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   cwd=str(server.cwd), start_new_session=True)
    running = Running(process, port, grpc_port)
    body = server.body(1)

    def answered() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"{server.label} exited with {process.returncode}; see {log_path}")
        return post(port, server.path(), body, timeout=5)[0] == 200

    try:
        Retrying(stop=stop_after_delay(START_TIMEOUT_S), wait=wait_fixed(0.01), reraise=True,
                 retry=retry_if_exception_type(OSError) | retry_if_result(lambda ok: not ok))(answered)
    except (RetryError, OSError):
        stop(running)
        raise SystemExit(f"{server.label} did not answer within {START_TIMEOUT_S} s; see {log_path}") from None
    return running, time.monotonic() - began


def stop(running: Running) -> None:
    """SIGTERM to the server and its children (MLServer has worker processes), SIGKILL to any that linger."""
    try:
        parent = psutil.Process(running.process.pid)
        family = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        family = []
    for proc in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(family, timeout=30)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)
    running.process.wait(10)


def post(port: int, path: str, body: bytes, timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants (shared pages are counted once per process)."""
    try:
        parent = psutil.Process(pid)
        family = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for proc in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / (1024 * 1024)


# --- wrk --------------------------------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_us: float = float("nan")  # server CPU time per call (gRPC rows: robust to the shared cores)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(wrk: str, port: int, server: Server, rows: int, connections: int, seconds: float, tag: str) -> WrkResult:
    """Runs wrk with a POST body of ``rows`` rows; keeps its raw output under bench/results/serving/."""
    body_file = WORK / f"body-{server.protocol}-{rows}.json"
    if not body_file.exists():
        body_file.write_bytes(server.body(rows))
    script = WORK / f"post-{server.protocol}-{rows}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = assert(io.open("{body_file}", "rb"))\n'
        "wrk.body = f:read(\"*a\")\n"
        "f:close()\n"
    )
    threads = min(connections, os.cpu_count() or 1)
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
            f"http://127.0.0.1:{port}{server.path()}"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    (WORK / f"wrk-{tag}.txt").write_text(out)
    requests_per_s = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in match.groups())
    return WrkResult(requests_per_s, p50, p99, errors)


def run_grpc_load(running: Running, connections: int, seconds: float, tag: str) -> WrkResult:
    """`grpc_load.py` against ``running``'s gRPC port: as many generator processes as cores (as wrk's threads)."""
    server = psutil.Process(running.process.pid)
    cpu_before = sum(server.cpu_times()[:2])
    processes = max(1, min(connections, os.cpu_count() or 1))
    shares = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    procs = [subprocess.Popen([sys.executable, str(GRPC_LOAD), f"127.0.0.1:{running.grpc_port}", MODEL_NAME,
                               "--connections", str(share), "--seconds", str(max(1.0, seconds))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for share in shares]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise SystemExit(f"grpc_load.py failed: {err[-2000:]}")
        results.append(json.loads(out))
    cpu_s = sum(server.cpu_times()[:2]) - cpu_before
    (WORK / f"grpc-{tag}.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "latencies_ms"}
                                                       for r in results]))
    latencies = sorted(v for r in results for v in r["latencies_ms"])
    if not latencies:
        return WrkResult(0.0, float("nan"), float("nan"), sum(r["errors"] for r in results))
    rate = sum(r["calls"] / r["seconds"] for r in results)
    return WrkResult(rate, latencies[len(latencies) // 2], latencies[min(len(latencies) - 1,
                                                                           int(len(latencies) * 0.99))],
                     sum(r["errors"] for r in results), 1e6 * cpu_s / len(latencies))


# --- the run --------------------------------------------------------------------------------------------------------


@dataclass
class Measured:
    server: Server
    c1: WrkResult
    c16: WrkResult
    cold_start_s: float
    rss_mb: float
    rows_per_s: dict[int, float]


def median_of(runs: Sequence[WrkResult]) -> WrkResult:
    """Each figure's median over repeated runs: the machine is shared, so one run can land on someone's build."""
    return WrkResult(
        statistics.median(r.requests_per_s for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
        statistics.median(r.server_cpu_us for r in runs),
    )


def measure(server: Server, wrk: str, seconds: float, repeats: int, cold_starts: int) -> Measured:
    log(f"{server.label}: cold start x{cold_starts}")
    log_path = WORK / f"server-{re.sub(r'[^a-z0-9]+', '-', server.label.lower())}.log"
    log_path.write_bytes(b"")
    times = []
    for _ in range(cold_starts - 1):
        running, took = start(server, log_path)
        times.append(took)
        stop(running)
    running, took = start(server, log_path)
    times.append(took)
    try:
        slug = re.sub(r"[^a-z0-9]+", "-", server.label.lower()).strip("-")
        if server.protocol == "grpc":
            def load(connections: int, tag: str) -> WrkResult:
                return run_grpc_load(running, connections, seconds, tag)
        else:
            def load(connections: int, tag: str) -> WrkResult:
                return run_wrk(wrk, running.port, server, 1, connections, seconds, tag)
        load(16, f"{slug}-warmup")
        log(f"{server.label}: c=1 and c=16, {repeats} x {seconds:g} s each")
        c1 = median_of([load(1, f"{slug}-c1-{i}") for i in range(repeats)])
        c16 = median_of([load(16, f"{slug}-c16-{i}") for i in range(repeats)])
        rows_per_s = {}
        if server.batches and server.protocol != "grpc":
            for rows in BATCH_SIZES:
                log(f"{server.label}: batches of {rows} rows")
                result = run_wrk(wrk, running.port, server, rows, 1, max(2.0, seconds / 2), f"{slug}-rows{rows}")
                rows_per_s[rows] = result.requests_per_s * rows if not result.errors else float("nan")
        rss = tree_rss_mb(running.process.pid)
    finally:
        stop(running)
    for name, result in (("c=1", c1), ("c=16", c16)):
        if result.errors:
            log(f"WARNING {server.label} {name}: {result.errors} errors (see {WORK.relative_to(REPO)})")
    return Measured(server, c1, c16, statistics.median(times), rss, rows_per_s)


@dataclass
class ColdStarts:
    """Spawn to first answered prediction, ours and stock KServe's started alternately (medians)."""

    ours_s: float
    stock_s: float
    ours_cpu_s: float
    stock_cpu_s: float
    starts: int


def cold_starts_side_by_side(ours: Server, stock: Server, starts: int) -> ColdStarts:
    """Starts ours and stock alternately, so both see the same load on the shared cores; wall and CPU time to the
    first answered prediction (CPU time does not count the time the cores spent on other processes)."""
    log(f"cold starts side by side: ours and stock, x{starts} each, alternating")
    wall: dict[str, list[float]] = {"ours": [], "stock": []}
    cpu: dict[str, list[float]] = {"ours": [], "stock": []}
    for _ in range(starts):
        for key, server in (("ours", ours), ("stock", stock)):
            running, took = start(server, WORK / f"cold-{key}.log")
            times = psutil.Process(running.process.pid).cpu_times()
            stop(running)
            wall[key].append(took)
            cpu[key].append(times.user + times.system)
    return ColdStarts(statistics.median(wall["ours"]), statistics.median(wall["stock"]),
                      statistics.median(cpu["ours"]), statistics.median(cpu["stock"]), starts)


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].split(" [")[0]
    return (f"{cpu}, {os.cpu_count()} cores shared by server and load generator, Linux {platform.release()}, "
            f"Python {platform.python_version()}, {wrk_version}")


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def fmt_ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"


def render(
    results: Sequence[Measured], seconds: float, repeats: int, cold_starts: int, versions: dict[str, str],
    side_by_side: ColdStarts,
) -> str:
    cold_pair = side_by_side
    ours_v1 = next(m for m in results if m.server.label.startswith("ours") and m.server.protocol == "v1")
    ours_v2 = next(m for m in results if m.server.label.startswith("ours") and m.server.protocol == "v2")
    stock_v1 = next(m for m in results if m.server.label.startswith("stock") and m.server.protocol == "v1")
    stock_v2 = next(m for m in results if m.server.label.startswith("stock") and m.server.protocol == "v2")
    ours_grpc = next(m for m in results if m.server.label.startswith("ours") and m.server.protocol == "grpc")
    stock_grpc = next(m for m in results if m.server.label.startswith("stock") and m.server.protocol == "grpc")
    mlserver = next((m for m in results if m.server.label.startswith("MLServer")), None)
    kserve_tf = next((m for m in results if m.server.label.startswith("kserve")), None)
    bare = next((m for m in results if m.server.label.startswith("bare")), None)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Serving bench",
        "",
        f"Measured {now} on {machine_line()}. wrk (gRPC: `grpc_load.py`) on loopback, one server at a time, each "
        f"c=1/c=16 figure the median of {repeats} runs of {seconds:g} s; "
        "same model (13 features) everywhere. Command: "
        f"`{' '.join(['.venv/bin/python', 'bench/serving/run.py', *sys.argv[1:]])}`.",
        "",
        "| server | c=1 req/s | c=1 p50 | c=16 req/s | c=16 p99 | cold start | RSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        name = m.server.label
        cold = f"{m.cold_start_s:.1f} s" if m.cold_start_s >= 0.95 else f"{m.cold_start_s:.2f} s"
        lines.append(f"| {name} | {fmt_rate(m.c1.requests_per_s)} | {fmt_ms(m.c1.p50_ms)} | "
                     f"{fmt_rate(m.c16.requests_per_s)} | {fmt_ms(m.c16.p99_ms)} | {cold} | {m.rss_mb:.0f} MB |")
    lines += ["", "Batch throughput, rows/s (one connection, one request at a time):", "",
              "| server | " + " | ".join(f"{n:,} row{'s' if n > 1 else ''}/request".replace(",", " ")
                                       for n in BATCH_SIZES) + " |",
              "|---|" + "---:|" * len(BATCH_SIZES)]
    for m in results:
        if m.rows_per_s:
            cells = " | ".join(fmt_rate(m.rows_per_s[n]) for n in BATCH_SIZES)
            lines.append(f"| {m.server.label} | {cells} |")
    lines += ["", "Ours (V1) against the others (×: how many times ours; % of the bare-ASGI ceiling):", "",
              "| against | c=1 req/s | c=16 req/s | c=16 p99 | cold start | RSS |", "|---|---:|---:|---:|---:|---:|"]
    for other in (m for m in (stock_v1, mlserver, kserve_tf) if m is not None):
        lines.append(
            f"| {other.server.label} | {ours_v1.c1.requests_per_s / other.c1.requests_per_s:.1f}× | "
            f"{ours_v1.c16.requests_per_s / other.c16.requests_per_s:.1f}× | "
            f"{other.c16.p99_ms / ours_v1.c16.p99_ms:.1f}× lower | "
            f"{other.cold_start_s / ours_v1.cold_start_s:.1f}× faster | {other.rss_mb / ours_v1.rss_mb:.1f}× smaller |")
    if bare is not None:
        lines.append(
            f"| {bare.server.label} (ceiling) | {100 * ours_v1.c1.requests_per_s / bare.c1.requests_per_s:.0f} % | "
            f"{100 * ours_v1.c16.requests_per_s / bare.c16.requests_per_s:.0f} % | | | |")
    for label, theirs, mine in (("V2", stock_v2, ours_v2), ("V2 gRPC", stock_grpc, ours_grpc)):
        lines.append(
            f"| {label}: {theirs.server.label}, against ours ({label}) | "
            f"{mine.c1.requests_per_s / theirs.c1.requests_per_s:.1f}× | "
            f"{mine.c16.requests_per_s / theirs.c16.requests_per_s:.1f}× | "
            f"{theirs.c16.p99_ms / mine.c16.p99_ms:.1f}× lower | "
            f"{theirs.cold_start_s / mine.cold_start_s:.1f}× faster | {theirs.rss_mb / mine.rss_mb:.1f}× smaller |")
    lines += ["", "V2 over gRPC, server CPU time per call (the load generator is Python too and shares the cores, "
              "so requests/s understates the difference):", "",
              "| server | c=1 | c=16 |", "|---|---:|---:|"]
    for m in (ours_grpc, stock_grpc):
        lines.append(f"| {m.server.label} | {m.c1.server_cpu_us:.0f} µs | {m.c16.server_cpu_us:.0f} µs |")
    lines.append(f"| ours against stock | {ours_grpc.c1.server_cpu_us / stock_grpc.c1.server_cpu_us:.2f}× | "
                 f"{ours_grpc.c16.server_cpu_us / stock_grpc.c16.server_cpu_us:.2f}× |")
    ours = {
        "c16_ratio_stock": ours_v1.c16.requests_per_s / stock_v1.c16.requests_per_s,
        "c16_ratio_mlserver": (ours_v1.c16.requests_per_s / mlserver.c16.requests_per_s if mlserver is not None
                               else float("nan")),
        "cold_ratio_stock": cold_pair.ours_s / cold_pair.stock_s,
        "c16_p99_ms": ours_v1.c16.p99_ms,
        "c1_p50_ms": ours_v1.c1.p50_ms,
        "cold_start_s": ours_v1.cold_start_s,
        "rss_mb": ours_v1.rss_mb,
    }
    lines += ["", f"Cold start side by side (V1; ours and stock started alternately, {cold_pair.starts} each, "
                  "medians; CPU time is the server's own, whatever else the shared cores ran):", "",
              "| | ours | stock kserve.Model | ours / stock |", "|---|---:|---:|---:|",
              f"| spawn to first answered prediction | {cold_pair.ours_s:.2f} s | {cold_pair.stock_s:.2f} s | "
              f"{cold_pair.ours_s / cold_pair.stock_s:.2f}× |",
              f"| CPU time until then | {cold_pair.ours_cpu_s:.2f} s | {cold_pair.stock_cpu_s:.2f} s | "
              f"{cold_pair.ours_cpu_s / cold_pair.stock_cpu_s:.2f}× |"]
    lines += explain_lines(results)
    lines += counting_lines(results)
    lines += ["", "Goals from the issue, for ours (V1):", "", "| goal | measured | met |", "|---|---:|:---:|"]
    for label, key, op, target in GOALS:
        value = ours[key]
        if value != value:  # NaN: its peer was not measured (--only-stock)
            continue
        met = value >= target if op == ">=" else value <= target
        shown = {"c16_ratio_stock": f"{value:.1f}×", "cold_ratio_stock": f"{value:.2f}×",
                 "c16_ratio_mlserver": f"{value:.1f}×", "c16_p99_ms": f"{value:.2f} ms", "c1_p50_ms": f"{value:.2f} ms",
                 "cold_start_s": f"{value:.2f} s", "rss_mb": f"{value:.0f} MB"}[key]
        lines.append(f"| {label} | {shown} | {'yes' if met else 'no'} |")
    errors = [m.server.label for m in results if m.c1.errors or m.c16.errors]
    lines += ["", "Notes: RSS is the server's whole process tree after the load (MLServer runs an inference worker "
              "process beside its front). Cold start is spawn to the first answered prediction, median of "
              f"{cold_starts}. The bare app reads the body and returns fixed bytes, so its batch rows/s is "
              "transport only. gRPC rows: the same servers started with gRPC on (stock: KServe's own gRPC server, its "
              "per-call log line off as ours has none), the load from `grpc_load.py` processes (one per core) "
              "sharing the cores with the server; their cold start is REST's first answer with gRPC on. "
              "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "."]
    if errors:
        lines.append(f"**Errors were seen for: {', '.join(errors)}** (raw output in bench/results/serving/).")
    return "\n".join(lines) + "\n"


EXPLAIN_GOAL = 2.0  # explaining may cost at most twice predicting


def explain_lines(results: Sequence[Measured]) -> list[str]:
    """Explaining against predicting on the same server, same run: cost ratios (time per request or per row)."""
    predict = next(m for m in results if m.server.label.startswith("ours") and m.server.protocol == "v1")
    explain = next((m for m in results if m.server.protocol == "explain"), None)
    if explain is None:
        return []
    ratios = [("c=1 req/s", predict.c1.requests_per_s / explain.c1.requests_per_s),
              ("c=16 req/s", predict.c16.requests_per_s / explain.c16.requests_per_s)]
    ratios += [(f"{n:,} {'row' if n == 1 else 'rows'}/request".replace(",", " "),
                predict.rows_per_s[n] / explain.rows_per_s[n])
               for n in BATCH_SIZES if n in predict.rows_per_s and n in explain.rows_per_s]
    lines = ["", f"Explaining against predicting (ours, V1; cost = predict's rate / explain's rate; goal ≤ "
                 f"{EXPLAIN_GOAL:g}×):", "", "| load | cost of explain | within goal |", "|---|---:|:---:|"]
    lines += [f"| {label} | {ratio:.2f}× | {'yes' if ratio <= EXPLAIN_GOAL else 'no'} |" for label, ratio in ratios]
    return lines


COUNTING_GOAL = 0.10  # counting served rows into the card's bins may cost at most 10 % of the c=16 rate


def counting_lines(results: Sequence[Measured]) -> list[str]:
    """The live drift counts' cost: the same server with counting on (the default) and off, same run."""
    on = next(m for m in results if m.server.label.startswith("ours") and m.server.protocol == "v1")
    off = next((m for m in results if "counting off" in m.server.label), None)
    if off is None:
        return []
    rows = [("c=1 req/s", on.c1.requests_per_s, off.c1.requests_per_s),
            ("c=16 req/s", on.c16.requests_per_s, off.c16.requests_per_s)]
    rows += [(f"{n:,} {'row' if n == 1 else 'rows'}/request (rows/s)".replace(",", " "), on.rows_per_s[n],
              off.rows_per_s[n]) for n in BATCH_SIZES if n in on.rows_per_s and n in off.rows_per_s]
    lines = ["", f"Live drift counts (ours, V1): counting on (the default) against off, same run; goal: at most "
                 f"{COUNTING_GOAL:.0%} of the c=16 rate:", "", "| load | on | off | cost |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {fmt_rate(a)} | {fmt_rate(b)} | {1 - a / b:+.1%} |" for label, a, b in rows]
    return lines


def package_version(python: Path | str, name: str) -> str:
    done = subprocess.run([str(python), "-c", f"from importlib.metadata import version; print(version({name!r}))"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of each wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="wrk runs per c=1/c=16 point (medians reported)")
    parser.add_argument("--cold-starts", type=int, default=3, help="starts per server for the cold-start median")
    parser.add_argument("--no-write", action="store_true", help="print the table only; leave RESULTS.md alone")
    parser.add_argument("--only-stock", action="store_true",
                        help="ours and stock KServe only (REST and gRPC): no peers venv, no TensorFlow peer")
    args = parser.parse_args(argv)

    WORK.mkdir(parents=True, exist_ok=True)
    for stale in [*WORK.glob("wrk-*.txt"), *WORK.glob("server-*.log")]:  # raw output of this run only
        stale.unlink()
    wrk = ensure_wrk()
    model_dir = WORK / "model"
    card = ensure_model(model_dir)
    mlserver_dir = WORK / "mlserver-model"
    if not args.only_stock:
        peers = ensure_peers_venv()
        mlserver_dir.mkdir(exist_ok=True)
        subprocess.run([str(peers), str(HERE / "peers" / "make_sklearn_model.py"),
                        str(model_dir / "boston_model.json"), str(mlserver_dir / "model.joblib")], check=True)
        (mlserver_dir / "model-settings.json").write_text(json.dumps({
            "name": MODEL_NAME, "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "v1"},
        }))

    def mlserver_argv(port: int) -> list[str]:
        # Its own ports for gRPC and metrics too, so nothing else on the machine collides with the defaults.
        (mlserver_dir / "settings.json").write_text(json.dumps(
            {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "host": "127.0.0.1"}))
        return [str(PEERS_VENV / "bin" / "mlserver"), "start", str(mlserver_dir)]

    py = sys.executable
    ours_argv = [py, "-m", "boston_predictor", "--model_name", MODEL_NAME, "--model_dir", str(model_dir)]
    stock_base = [py, str(STOCK_KSERVE), "--model_name", MODEL_NAME, "--model_dir", str(model_dir),
                  "--enable_latency_logging", "false", "--quiet"]
    stock_argv = [*stock_base, "--enable_grpc", "false"]
    ours_grpc = Server("ours: boston-predictor (V2 gRPC)", "grpc", lambda p: [*ours_argv, "--http_port", str(p)],
                       grpc_flags=lambda g: ["--enable_grpc", "true", "--grpc_port", str(g)])
    stock_grpc = Server("stock kserve.Model, same numpy map, logs off (V2 gRPC)", "grpc",
                        lambda p: [*stock_base, "--http_port", str(p)], grpc_flags=lambda g: ["--grpc_port", str(g)])
    servers = [
        Server("ours: boston-predictor (V1)", "v1", lambda p: [*ours_argv, "--http_port", str(p)]),
        Server("ours: boston-predictor (V2)", "v2", lambda p: [*ours_argv, "--http_port", str(p)],
               batches=False),
        Server("ours: boston-predictor (V1 :explain)", "explain", lambda p: [*ours_argv, "--http_port", str(p)]),
        Server("stock kserve.Model, same numpy map, logs off (V1)", "v1",
               lambda p: [*stock_argv, "--http_port", str(p)]),
        Server("stock kserve.Model, same numpy map, logs off (V2)", "v2",
               lambda p: [*stock_argv, "--http_port", str(p)], batches=False),
        Server("MLServer 1.7.1 + mlserver-sklearn, defaults (V2)", "v2", mlserver_argv, cwd=mlserver_dir),
        # Its latency log line per request is turned off (it costs KServe about a third of its throughput), so the
        # peer is the tuned one a careful user would run, not the slowest possible.
        Server("kserve 0.21 ModelServer + SavedModel signature, latency log off (V1)", "v1",
               lambda p: [py, str(HERE / "peers" / "kserve_savedmodel.py"), "--model_name", MODEL_NAME,
                          "--model_dir", str(model_dir), "--http_port", str(p), "--enable_grpc", "false",
                          "--enable_latency_logging", "false"]),
        Server("bare uvicorn ASGI app, fixed answer", "v1",
               lambda p: [py, "-m", "uvicorn", "bare_asgi:app", "--app-dir", str(HERE / "peers"), "--port", str(p),
                          "--host", "127.0.0.1", "--no-access-log", "--log-level", "warning"]),
    ]
    servers[5:5] = [ours_grpc, stock_grpc]  # after stock's REST rows
    # The same server with the live drift counts off (--count_inputs false): what counting costs, same run.
    servers.append(Server("ours: boston-predictor (V1, drift counting off)", "v1",
                          lambda p: [*ours_argv, "--http_port", str(p), "--count_inputs", "false"]))
    if args.only_stock:
        servers = [s for s in servers if s.label.startswith(("ours", "stock"))]
    assert len(card["feature_names"]) == len(ROW)
    ours_v1, stock_v1 = servers[0], servers[3]
    assert ours_v1.label.startswith("ours") and stock_v1.label.startswith("stock") and stock_v1.protocol == "v1"
    cold = cold_starts_side_by_side(ours_v1, stock_v1, max(3, args.cold_starts) + 2)
    results = [measure(s, wrk, args.duration, args.repeats, args.cold_starts) for s in servers]
    versions = {"kserve": package_version(py, "kserve"), "grpcio": package_version(py, "grpcio"),
                "uvicorn": package_version(py, "uvicorn")}
    if not args.only_stock:
        versions |= {"mlserver": package_version(peers, "mlserver"),
                     "scikit-learn (peer)": package_version(peers, "scikit-learn"),
                     "tensorflow": package_version(py, "tensorflow-cpu")}
    table = render(results, args.duration, args.repeats, args.cold_starts, versions, cold)
    print(table)
    if not args.no_write:
        written = RESULTS_ONLY_STOCK_MD if args.only_stock else RESULTS_MD
        written.write_text(table)
        log(f"written to {written.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
