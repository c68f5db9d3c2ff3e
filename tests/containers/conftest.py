"""The container group: a real Docker engine, both images built from the local base, the pipeline run in them.

Without an engine these tests skip with one line; with ``BOSTON_REQUIRE_CONTAINERS=1`` (``.ci/run`` sets it) the
same condition fails them, so CI cannot pass by skipping.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boston_model.store import S3Settings
from components.common.ports import free_port
from pipeline import embedded_s3
from pipeline.state import ENV_STATE_DIR
from tests.containers.helpers import REPO, ContainerWatch, Run, cli, unavailable

BUILD_TIMEOUT_S = 1800


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception:  # noqa: BLE001 - any failure to reach the engine means the same: no engine here
        unavailable("no Docker engine answers (start dockerd, see docs/containers.md)")
    yield client
    client.close()


@pytest.fixture(scope="session")
def container_state(docker_client) -> Iterator[Path]:
    """A state folder with its own embedded store, INSIDE the image build context (build/ in the repository).

    It exists, with the store's keys in it, before the images are built: if a Dockerfile or .dockerignore ever let
    the context into a layer, the key scan would find them.
    """
    state = REPO / "build" / "container-tests" / f"state-{os.getpid()}"
    state.mkdir(parents=True)
    try:
        embedded_s3.ensure_running(state)
        yield state
    finally:
        env = {**os.environ, ENV_STATE_DIR: str(state)}
        subprocess.run([sys.executable, "-m", "pipeline.cli", "down"], env=env, capture_output=True, timeout=120)
        embedded_s3.stop(state)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def store_settings(container_state) -> S3Settings:
    settings = embedded_s3.ensure_running(container_state)
    assert settings.secret_key and settings.access_key
    return settings


@pytest.fixture(scope="session")
def images(docker_client, container_state) -> dict[str, str]:
    """Both images, built by `make image-local` (the command users run; -j2: both at once), from the local base."""
    import docker

    try:
        docker_client.images.get("localhost/boston-housing-kfp/base:bookworm")
    except docker.errors.ImageNotFound:
        if os.getuid() != 0 or shutil.which("debootstrap") is None:
            unavailable("the local base image is missing and building it needs root and debootstrap")
    # Tags of this checkout's own, so test sessions of other checkouts sharing the engine never swap images under
    # a run (the layers are shared all the same; kept afterwards as the build cache).
    tag = hashlib.sha256(str(REPO).encode()).hexdigest()[:10]
    built = {"component": f"localhost/boston-housing-kfp/components:test-{tag}",
             "predictor": f"localhost/boston-housing-kfp/predictor:test-{tag}"}
    result = subprocess.run(["make", "-j2", "image-local", f"IMAGE={built['component']}",
                             f"PREDICTOR_IMAGE={built['predictor']}"], cwd=REPO, capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, f"make image-local failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return built


@pytest.fixture(scope="session")
def cli_env(container_state) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
    env[ENV_STATE_DIR] = str(container_state)
    return env


@pytest.fixture(scope="session")
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def first_run(docker_client, images, cli_env, port) -> Run:
    with ContainerWatch(docker_client) as watch:
        result = cli("run", "--runner", "docker", "--port", str(port), "--image", images["component"],
                     "--predictor-image", images["predictor"], env=cli_env)
    return Run(result, list(watch.created))
