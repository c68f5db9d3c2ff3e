"""``boston-pipeline run --runner docker``: the compiled YAML on kfp.local's DockerRunner, every step in the image.

What runs where:
- each step is a container of the component image, on the host network: steps are clients only (no step serves
  anything), so they reach the store on 127.0.0.1 exactly as in the subprocess run, and the store's credentials
  reach them the same way, through the environment;
- the steps run as the image's non-root user (or as the caller's UID when that is not root), group 0, writing their
  outputs into the pipeline root on the host, which kfp.local mounts at the same path;
- the deploy step alone gets the engine's socket (pipeline/kfp_local_adapter.py) and starts the two phases of a
  KServe-shaped pod (components/deploy/container.py): the predictor is published on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from boston_model.errors import BadInput
from boston_model.store import S3Settings
from components.deploy import container

DEPLOY_FUNCTION = "deploy_model"
IMAGE_UID = 1000  # the images' user (kserve/Dockerfile.*)
DEFAULT_ENGINE = "unix:///var/run/docker.sock"


def engine() -> Any:
    """The local Docker engine, or a one-line error saying how to start one."""
    try:
        import docker
    except ImportError:  # pragma: no cover - docker is an install requirement
        raise BadInput("the docker runner needs the `docker` package (make install)") from None
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        where = os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE
        raise BadInput(f"no Docker engine answers at {where}: start one (dockerd; see docs/containers.md) "
                       "or use the default subprocess runner") from None
    return client


def engine_socket() -> Path:
    """The engine's Unix socket on this host: what the deploy step gets mounted."""
    where = os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE
    if not where.startswith("unix://"):
        raise BadInput(f"DOCKER_HOST={where}: the docker runner needs a local engine socket (unix://…)")
    return Path(where.removeprefix("unix://"))


def require_images(client: Any, images: Sequence[str]) -> None:
    """One line naming the command that builds a missing image, before any step starts."""
    import docker

    for image in images:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            hint = container.BUILD_HINT
            raise BadInput(f"image {image} is not in the Docker engine: {hint}") from None


def step_user(pipeline_root: Path) -> str:
    """``uid:0`` for the step containers; the pipeline root is made writable for it.

    As root on the host, steps still run as the image's non-root user; group 0 (root's group, which owns the
    pipeline root) gets write access so they can store their outputs. Otherwise steps run as the caller, who owns
    the pipeline root already; group 0 lets that UID write the image's HOME, as on clusters that pick the UID.
    """
    pipeline_root.mkdir(parents=True, exist_ok=True)
    uid = os.getuid()
    if uid != 0:
        return f"{uid}:0"
    mode = pipeline_root.stat().st_mode
    pipeline_root.chmod(mode | stat.S_IRWXG)
    if pipeline_root.stat().st_gid != 0:
        os.chown(pipeline_root, -1, 0)
    return f"{IMAGE_UID}:0"


def step_environment(settings: S3Settings, state: Path, image: str) -> dict[str, str]:
    """What every step container sees: the store (as in the subprocess run) and the container target's scope."""
    return {
        **settings.to_env(),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        container.ENV_SCOPE: str(state),
        container.ENV_INITIALIZER_IMAGE: image,
    }


@contextlib.contextmanager
def docker_runner(settings: S3Settings, state: Path, pipeline_root: Path, image: str,
                  predictor_image: str) -> Iterator[Any]:
    """A kfp.local DockerRunner for this run; while active, the deploy step's container gets the engine socket."""
    from kfp import local

    from pipeline.kfp_local_adapter import engine_socket_for

    socket = engine_socket()
    client = engine()
    try:
        require_images(client, [image, predictor_image])
    finally:
        client.close()
    runner = local.DockerRunner(
        network_mode="host", user=step_user(pipeline_root), group_add=[str(socket.stat().st_gid)],
        environment=step_environment(settings, state, image),
    )
    # The container target's handover folders (the public socket passes from one predictor container to the next
    # through them): the deploy step reaches them at the same path as the host, and binds there as the image's user.
    handover = state / "serving" / "containers"
    handover.mkdir(parents=True, exist_ok=True)
    handover.chmod(0o777)  # noqa: S103 - below the 0700 serving folder; the step's user creates a folder per port
    with engine_socket_for(DEPLOY_FUNCTION, socket, handover):
        yield runner


def find_served(state: Path, port: int) -> container.ServedContainer | None:
    """The predictor container the run in ``state`` serves on ``port``, if any."""
    client = engine()
    try:
        return container.find_served(client, str(state), port)
    finally:
        client.close()


def stop_served(state: Path, port: int | None = None) -> list[container.ServedContainer]:
    """Stops the containers (and volumes) of ``state``'s container deploys; nothing when no engine answers."""
    try:
        client = engine()
    except BadInput:
        return []
    try:
        return container.stop(client, str(state), port)
    finally:
        client.close()
