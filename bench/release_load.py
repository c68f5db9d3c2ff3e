"""Benchmark: what a client sees during releases on one machine (`run`, `models rollback`, `models promote`).

One client sends a V1 request every 20 ms, each on a new connection, to the local endpoint while the commands run.
Prints, per command, its wall time, the requests answered, the requests that failed and the longest time without an
answer. Uses a throw-away state folder (its own S3 store and ports) and stops everything it started.

    .venv/bin/python bench/release_load.py                       # the process target
    .venv/bin/python bench/release_load.py --runner docker \\
        --image IMG --predictor-image PIMG                        # the container target (make image-local)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from components.common.ports import free_port  # noqa: E402 - after the path fix above
from pipeline import config  # noqa: E402

ROW = [0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98]


class Client(threading.Thread):
    """One V1 request every 20 ms on a new connection; records each answer's time and each failure."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.answers: list[float] = []
        self.failures: list[tuple[float, str]] = []

    def run(self) -> None:
        import requests

        body = {"instances": [ROW]}
        while not self.stop.is_set():
            try:
                ok = requests.post(self.url, json=body, timeout=10).status_code == 200
                (self.answers.append(time.monotonic()) if ok else self.failures.append((time.monotonic(), "HTTP")))
            except requests.RequestException as exc:
                self.failures.append((time.monotonic(), type(exc).__name__))
            self.stop.wait(0.02)


def cli(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, cwd=REPO, capture_output=True,
                            text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"boston-pipeline {' '.join(args)} failed:\n{result.stderr[-2000:]}")


def phase(name: str, client: Client, action) -> tuple[str, float, int, int, float]:
    start = time.monotonic()
    answered, failed = len(client.answers), len(client.failures)
    action()
    end = time.monotonic()
    times = [start] + [t for t in client.answers if start <= t <= end] + [end]
    gap = max(b - a for a, b in zip(times, times[1:], strict=False))
    return name, end - start, len(client.answers) - answered, len(client.failures) - failed, gap * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runner", choices=("subprocess", "docker"), default="subprocess")
    parser.add_argument("--image", default=None)
    parser.add_argument("--predictor-image", default=None)
    args = parser.parse_args()
    images = [*(["--image", args.image] if args.image else []),
              *(["--predictor-image", args.predictor_image] if args.predictor_image else [])]
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="boston-release-") as state:
        env = {**os.environ, "BOSTON_STATE_DIR": state, "TF_CPP_MIN_LOG_LEVEL": "2"}
        for name in ("MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
            env.pop(name, None)
        run = ["run", "--runner", args.runner, "--port", str(port), *images]
        try:
            cli(*run, env=env)  # the first champion
            client = Client(f"http://{config.LOCAL_HOST}:{port}/v1/models/{config.MODEL_NAME}:predict")
            client.start()

            def newest() -> str:
                out = subprocess.run([sys.executable, "-m", "pipeline.cli", "models", "list", "--json"], env=env,
                                     cwd=REPO, capture_output=True, text=True, check=True).stdout
                return json.loads(out)[0]["version"]

            rows = [phase("run (a new version)", client, lambda: cli(*run, "--seed", "7", env=env)),
                    phase("models rollback", client, lambda: cli("models", "rollback", env=env)),
                    phase("models promote", client, lambda: cli("models", "promote", newest(), env=env))]
            client.stop.set()
            client.join(timeout=15)
        finally:
            subprocess.run([sys.executable, "-m", "pipeline.cli", "down"], env=env, cwd=REPO, capture_output=True)
    target = "container" if args.runner == "docker" else "process"
    print(f"\nreleases under steady load ({target} target; one V1 request every 20 ms, a new connection each)\n")
    print(f"| {'command':<22} | {'seconds':>7} | {'answered':>8} | {'failed':>6} | {'longest gap (ms)':>16} |")
    print(f"|{'-' * 24}|{'-' * 9}:|{'-' * 10}:|{'-' * 8}:|{'-' * 18}:|")
    for name, seconds, answered, failed, gap in rows:
        print(f"| {name:<22} | {seconds:>7.1f} | {answered:>8} | {failed:>6} | {gap:>16.0f} |")
    return 1 if any(r[3] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
