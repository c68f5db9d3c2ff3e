"""Benchmark: the local pipeline (kfp.local, one process per step) against one process doing the same work.

Prints a table of wall times as ratios against the one-process reference measured in the same run, plus a second
pipeline run with caching on and unchanged inputs, and the same two runs with every step in a container
(`--runner docker`; needs a Docker engine and `make image-local`, else those rows say why they are missing). Uses a
throw-away state folder (its own S3 store and ports) and stops everything it started.

    .venv/bin/python bench/pipeline.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from components.common.ports import free_port

REPO = Path(__file__).resolve().parents[1]
# This file is named like the project's `pipeline` package; drop its folder from the path so imports find the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def one_process(state: Path, port: int) -> float:
    """load -> split -> train -> evaluate -> store + serve + smoke test, in this process (no KFP)."""
    from boston_model.store import ObjectStore
    from components.deploy import release
    from components.deploy.process import ProcessTarget
    from components.deploy.serving import ServingSettings
    from components.evaluate.core import evaluate_model_dir, flat_metrics
    from components.load.core import load_table
    from components.split.core import split_frame
    from components.train.core import train_model
    from pipeline import embedded_s3
    from pipeline.runner import store_environment

    started = time.perf_counter()
    settings = embedded_s3.ensure_running(state)
    store = ObjectStore(settings)
    train, test = split_frame(load_table().frame)
    with tempfile.TemporaryDirectory() as model_dir, store_environment(settings):
        result = train_model(train, Path(model_dir), log=lambda _: None)
        evaluation = evaluate_model_dir(Path(model_dir), train, test)
        target = ProcessTarget(state, store, "boston-housing", "127.0.0.1", port, log=lambda _: None)
        smoke = release.Smoke.from_predictions(evaluation.predictions, result.card["feature_names"])
        release.deploy(store, "bench-reference", "boston-housing", Path(model_dir), flat_metrics(evaluation), target,
                       ServingSettings(target="process", local_port=port), smoke, lock_dir=state,
                       log=lambda _: None)
    return time.perf_counter() - started


def pipeline_run(env: dict[str, str], port: int, runner: str = "subprocess") -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--cache", "--port", str(port), "--bucket", "bench",
         "--runner", runner],
        env=env, capture_output=True, text=True, timeout=900, cwd=REPO,
    )
    if result.returncode != 0:
        raise SystemExit(f"pipeline run failed: {result.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def containers_missing() -> str | None:
    """Why the container rows cannot be measured here (no engine, no images), or None."""
    from boston_model.errors import OneLineError
    from pipeline import config, docker_run

    try:
        client = docker_run.engine()
        try:
            docker_run.require_images(client, [config.IMAGE, config.PREDICTOR_IMAGE])
        finally:
            client.close()
    except OneLineError as exc:
        return str(exc)
    return None


def fresh(state: Path) -> None:
    """Forget earlier runs' outputs, so the next run is cold."""
    for cache in (state / "cache", state / "pipeline_root"):
        subprocess.run(["rm", "-rf", str(cache)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="measurements per row (the median is shown)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The machine may be shared: the load average says how much the wall times below can be trusted.
    load_at_start = ", ".join(f"{a:.1f}" for a in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="boston-bench-") as tmp:
        state = Path(tmp)
        env = {**os.environ, "BOSTON_STATE_DIR": str(state)}
        for key in ("MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
            env.pop(key, None)
        ref_port, port, container_port = free_port(), free_port(), free_port()
        missing = containers_missing()
        try:
            reference, cold, cached, docker_cold, docker_cached = [], [], [], [], []
            for i in range(args.repeat):
                reference.append(one_process(state, ref_port))
                subprocess.run([sys.executable, "-m", "pipeline.cli", "down", "--port", str(ref_port)], env=env,
                               capture_output=True, timeout=60)
                fresh(state)
                cold.append(pipeline_run(env, port))
                cached.append(pipeline_run(env, port))
                print(f"round {i + 1}: reference {reference[-1]:.1f} s, pipeline {cold[-1]:.1f} s, "
                      f"cached {cached[-1]:.1f} s", file=sys.stderr)
                if missing is None:
                    fresh(state)
                    docker_cold.append(pipeline_run(env, container_port, "docker"))
                    docker_cached.append(pipeline_run(env, container_port, "docker"))
                    print(f"round {i + 1}: containers {docker_cold[-1]:.1f} s, cached {docker_cached[-1]:.1f} s",
                          file=sys.stderr)
        finally:
            subprocess.run([sys.executable, "-m", "pipeline.cli", "down"], env=env, capture_output=True, timeout=60)
    ref = statistics.median(reference)
    rows = [
        ("one process (no KFP): load, split, train, evaluate, store, serve", ref),
        ("kfp.local pipeline, compiled YAML, cold cache (`boston-pipeline run`)", statistics.median(cold)),
        ("kfp.local pipeline again, cache on, unchanged inputs", statistics.median(cached)),
    ]
    if missing is None:
        rows += [
            ("every step in a container (`--runner docker`), cold cache, served by the predictor image",
             statistics.median(docker_cold)),
            ("`--runner docker` again, cache on, unchanged inputs", statistics.median(docker_cached)),
        ]
    load = ", ".join(f"{a:.1f}" for a in os.getloadavg())
    print(f"\nLocal pipeline wall time ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"median of {args.repeat}; load average at the start {load_at_start}, at the end {load})\n")
    print("| run | wall time | × one process |")
    print("|---|---:|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} s | {seconds / ref:.2f} |")
    print(f"\ncached / cold pipeline: {statistics.median(cached) / statistics.median(cold):.2f}")
    if missing is None:
        print(f"containers / subprocess, cold: {statistics.median(docker_cold) / statistics.median(cold):.2f}")
    else:
        print(f"container rows not measured: {missing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
