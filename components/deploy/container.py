"""The container deploy target: a KServe pod's two phases, run by the local Docker engine.

What KServe does for an InferenceService with a custom container, done with ``docker``:

1. storage-initializer: the component image runs kserve-storage's copy (``components.deploy.storage_initializer``)
   from ``s3://…/<version>/`` into a fresh volume, with KServe's environment names. It alone holds the S3 keys.
2. predictor: the predictor image with exactly the container shape the InferenceService builder uses (arguments,
   environment, port, mount path), the volume mounted read-only at the mount path, its port published on a trial
   port of ``127.0.0.1`` only. It never holds S3 credentials.

A release switches by handing the new container the public listening socket on ``127.0.0.1:<port>`` through a
folder mounted into it (`boston_predictor.handover`), as the process target does: the endpoint never stops
accepting while the old container drains and is removed.

Every container and volume carries labels naming the run's state folder and port, so a second run replaces what a
first one started and ``boston-pipeline down`` finds it without any record on disk.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boston_model.errors import BadInput, ReleaseFailed, first_line, last_line
from boston_model.store import ObjectStore, S3Settings
from components.common.ports import free_port
from components.common.processes import wait_until
from components.common.registry import StoredVersion

# The InferenceService builder's container shape: one pure function, shared with kserve_spec.
from components.deploy.predictor_container import PredictorContainer
from components.deploy.predictor_container import predictor_container as custom_container
from components.deploy.release import Candidate, model_ready

if TYPE_CHECKING:
    import docker

LABEL = "com.github.boston-housing-kfp"
ENV_SCOPE = "BOSTON_STATE_DIR"
ENV_INITIALIZER_IMAGE = "BOSTON_STORAGE_INITIALIZER_IMAGE"
HOST = "127.0.0.1"
INITIALIZER_TIMEOUT_S = 120
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10
HANDOVER_MOUNT = "/run/boston-handover"  # where a predictor container finds the public socket's handover folder
BUILD_HINT = "build it with `make image-local` (or `make image` where python:3.11-slim can be pulled)"


@dataclass(frozen=True)
class ServedContainer:
    """A predictor container this target started."""

    name: str
    url: str
    model_name: str
    uri: str
    image: str


def engine() -> docker.DockerClient:
    """The Docker engine from the environment (``DOCKER_HOST`` or the default socket), or a one-line ReleaseFailed."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise ReleaseFailed(f"no Docker engine answers at {where} ({first_line(exc)[:120]}): the container target "
                          "needs it (boston-pipeline run --runner docker gives the deploy step the socket)") from None
    return client


def initializer_env(settings: S3Settings) -> dict[str, str]:
    """The S3 settings under the names KServe gives its storage-initializer (its S3 secret annotations)."""
    return {
        "AWS_ENDPOINT_URL": settings.url,
        "AWS_ACCESS_KEY_ID": settings.access_key,
        "AWS_SECRET_ACCESS_KEY": settings.secret_key,
        "AWS_DEFAULT_REGION": settings.region,
        "S3_USE_HTTPS": "1" if settings.secure else "0",
        "S3_VERIFY_SSL": "1" if settings.secure else "0",
    }


def _filters(scope: str, port: int | None = None, role: str | None = None) -> dict[str, list[str]]:
    wanted = [f"{LABEL}.scope={scope}"]
    if port is not None:
        wanted.append(f"{LABEL}.port={port}")
    if role:
        wanted.append(f"{LABEL}.role={role}")
    return {"label": wanted}


def _last_log_line(container: Any) -> str:
    try:
        text = container.logs(tail=50).decode(errors="replace")
    except Exception:  # noqa: BLE001 - a container gone before its logs were read leaves nothing to say
        return "no log"
    return last_line(text, "empty log")


def _run(client: docker.DockerClient, image: str, what: str, **kwargs: Any) -> Any:
    import docker

    try:
        return client.containers.run(image, detach=True, **kwargs)
    except docker.errors.ImageNotFound:
        raise ReleaseFailed(f"{what} image {image} not found in the Docker engine: {BUILD_HINT}") from None
    except docker.errors.APIError as exc:
        raise ReleaseFailed(f"{what} container did not start: {first_line(exc.explanation or exc)}") from None


def initialize_storage(client: docker.DockerClient, scope: str, port: int, image: str, settings: S3Settings,
                       uri: str, shape: PredictorContainer, log: Callable[[str], None] = print) -> str:
    """Phase 1: copies ``uri`` into a new volume with kserve-storage; returns the volume's name.

    The container runs on the host network: it is a client only (it reaches a store on 127.0.0.1 as the steps do).
    Its last log line is passed on, as ``kubectl logs -c storage-initializer`` would show it.
    """
    labels = _labels(scope, port, "storage-initializer", uri=uri)
    volume = client.volumes.create(labels=labels).name
    container = _run(
        client, image, "storage-initializer",
        command=["python3", "-m", "components.deploy.storage_initializer", uri, shape.model_mount],
        environment=initializer_env(settings), network_mode="host", labels=labels,
        volumes={volume: {"bind": shape.model_mount, "mode": "rw"}},
    )
    try:
        code = container.wait(timeout=INITIALIZER_TIMEOUT_S)["StatusCode"]
        reason = _last_log_line(container)
    except Exception as exc:  # noqa: BLE001 - the engine's timeout error types vary with the transport
        code, reason = -1, f"no answer within {INITIALIZER_TIMEOUT_S} s ({first_line(exc)})"
    finally:
        container.remove(force=True)
    if code != 0:
        client.volumes.get(volume).remove(force=True)
        raise ReleaseFailed(f"storage-initializer for {uri} failed (exit {code}): {reason}")
    log(f"storage-initializer: {reason}")
    return volume


def container_name(model_name: str, port: int) -> str:
    return f"{model_name}-predictor-{port}"


def wait_ready(container: Any, url: str, model_name: str, timeout: float = READY_TIMEOUT_S) -> None:
    """Polls the V1 model endpoint until ready; a container that exits fails at once with its last log line."""

    def ready() -> bool:
        container.reload()
        if container.status in ("exited", "dead"):
            code = container.attrs.get("State", {}).get("ExitCode")
            raise ReleaseFailed(f"predictor container exited with code {code}: {_last_log_line(container)}")
        return model_ready(url, model_name)

    if not wait_until(ready, timeout, 0.25):
        raise ReleaseFailed(f"predictor not ready on {url} after {timeout:.0f} s: {_last_log_line(container)}")


def _labels(scope: str, port: int, role: str, model_name: str = "", uri: str = "") -> dict[str, str]:
    labels = {f"{LABEL}.scope": scope, f"{LABEL}.port": str(port), f"{LABEL}.role": role}
    if model_name:
        labels[f"{LABEL}.model"] = model_name
    if uri:
        labels[f"{LABEL}.uri"] = uri
    return labels


class ContainerTarget:
    """Serves versions as KServe-shaped pods on the local Docker engine, on ``127.0.0.1:port``.

    Args:
        store: The model store (its settings go to the storage-initializer only).
        model_name: Served model name.
        port: Public port on 127.0.0.1.
        predictor_image: Image of the predictor phase (the custom runtime's image).
        initializer_image: Image of the storage-initializer phase (the component image: it has kserve-storage).
        scope: Which local run owns the containers (its state folder), so runs with other state never collide.
        client: The Docker engine (default: `engine`).
    """

    name = "container"

    def __init__(self, store: ObjectStore, model_name: str, port: int, predictor_image: str, initializer_image: str,
                 scope: str, client: docker.DockerClient | None = None, log: Callable[[str], None] = print) -> None:
        self.store, self.model_name, self.port = store, model_name, port
        self.predictor_image, self.initializer_image, self.scope = predictor_image, initializer_image, scope
        self.client = client or engine()
        self.log = log
        self.endpoint = f"http://{HOST}:{port}"
        self.grpc: str | None = None  # host:port of the serving container's V2 gRPC, once started
        # Shared by the deploy step (the runner mounts the state folder's serving/ at the same path) and the
        # predictor containers (mounted at HANDOVER_MOUNT); the containers' user must be able to bind in it.
        self.handover_dir = Path(scope) / "serving" / "containers" / str(port)
        self.handover_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.handover_dir, 0o777)  # noqa: S103 - inside the 0700 serving folder; the image's user binds here

    @classmethod
    def from_env(cls, store: ObjectStore, model_name: str, port: int, predictor_image: str,
                 default_initializer: str, env: Mapping[str, str] | None = None) -> ContainerTarget:
        """The target of a deploy step: the docker runner names the scope and the initializer image in the env.

        KServe reads its storage-initializer image from its own configuration, not from the InferenceService; here
        the container runner plays that part.
        """
        env = os.environ if env is None else env
        if not env.get(ENV_SCOPE):
            raise BadInput(f"the container target needs {ENV_SCOPE} (boston-pipeline run --runner docker sets it)")
        initializer = env.get(ENV_INITIALIZER_IMAGE) or default_initializer
        return cls(store, model_name, int(port), predictor_image, initializer, env[ENV_SCOPE])

    def start(self, stored: StoredVersion) -> Candidate:
        """Both phases of the pod, the predictor on a trial port, then readiness; nothing is left on failure."""
        uri = stored.location.uri
        shape = custom_container(self.model_name, uri)
        volume = initialize_storage(self.client, self.scope, self.port, self.initializer_image,
                                    self.store.settings, uri, shape, self.log)
        trial = free_port(HOST)
        ports = {f"{shape.port}/tcp": (HOST, trial)}
        if shape.grpc_port:  # V2 over gRPC, published on loopback too (a port of its own for each container)
            ports[f"{shape.grpc_port}/tcp"] = (HOST, free_port(HOST))
        container = _run(
            self.client, self.predictor_image, "predictor",
            command=[*shape.args, "--takeover", f"{HANDOVER_MOUNT}/listener.sock"], environment=dict(shape.env),
            name=f"{container_name(self.model_name, self.port)}-{trial}",
            ports=ports,
            labels=_labels(self.scope, self.port, "predictor", self.model_name, uri),
            volumes={volume: {"bind": shape.model_mount, "mode": "ro"},
                     str(self.handover_dir): {"bind": HANDOVER_MOUNT, "mode": "rw"}},
        )
        candidate = Candidate(f"http://{HOST}:{trial}", (container, volume))
        self.grpc = f"{HOST}:{ports[f'{shape.grpc_port}/tcp'][1]}" if shape.grpc_port else None
        try:
            wait_ready(container, candidate.url, self.model_name)
        except ReleaseFailed:
            self.stop(candidate)
            raise
        return candidate

    def switch(self, candidate: Candidate) -> list[Any]:
        from components.deploy.process import switch_to

        container = candidate.handle[0]
        previous = [c for c in self.client.containers.list(filters=_filters(self.scope, self.port, "predictor"))
                    if c.id != container.id]
        switch_to(self.handover_dir / "listener.sock", HOST, self.port,
                  lambda: container.kill(signal="SIGUSR1"), lambda who: who.startswith(f"{container.id[:12]}/"))
        return previous

    def switch_back(self, previous: list[Any], candidate: Candidate) -> None:
        for container in previous:
            container.kill(signal="SIGUSR1")  # offers the socket again
        self.stop(candidate)

    def stop(self, candidate: Candidate) -> None:
        _remove(self.client, [candidate.handle[0]], [candidate.handle[1]])

    def retire(self, previous: list[Any]) -> None:
        from components.deploy.process import HAND_OFF_S

        for container in previous:
            with contextlib.suppress(Exception):  # noqa: BLE001 - a container gone already needs no hand-off
                container.kill(signal="SIGUSR2")  # stop accepting first; what it accepted is answered
        if previous:
            time.sleep(HAND_OFF_S)
        volumes = [m["Name"] for c in previous for m in c.attrs.get("Mounts", []) if m.get("Type") == "volume"]
        _remove(self.client, previous, volumes)
        for container in previous:
            self.log(f"stopped the predictor container {container.name}")

    def check(self, card: Mapping[str, Any]) -> None:
        """Nothing to check before an upload: this target fails, if at all, when it starts the version."""

    def record(self) -> dict[str, Any]:
        # The storage-initializer image is the runner's setting, not the version's: a promote reuses it.
        return {"image": self.predictor_image, "initializer_image": self.initializer_image,
                **({"grpc": self.grpc} if self.grpc else {})}


def _remove(client: docker.DockerClient, containers: list[Any], volumes: list[str]) -> None:
    """Stops (SIGTERM: in-flight requests finish) and removes containers, then their volumes."""
    import docker

    for container in containers:
        with contextlib.suppress(docker.errors.NotFound):
            container.stop(timeout=STOP_TIMEOUT_S)
            container.remove(force=True)
    for volume in volumes:
        with contextlib.suppress(docker.errors.NotFound):
            client.volumes.get(volume).remove(force=True)


def find_served(client: docker.DockerClient, scope: str, port: int) -> ServedContainer | None:
    """The running predictor container of ``scope`` on ``port``, if any."""
    for container in client.containers.list(filters=_filters(scope, port, "predictor")):
        labels = container.labels
        return ServedContainer(container.name, f"http://{HOST}:{labels[f'{LABEL}.port']}",
                               labels.get(f"{LABEL}.model", ""), labels.get(f"{LABEL}.uri", ""),
                               ",".join(container.image.tags) or container.image.id)
    return None


def stop(client: docker.DockerClient, scope: str, port: int | None = None) -> list[ServedContainer]:
    """Stops and removes the pods of ``scope`` (on ``port``, or all), their containers and volumes.

    Returns:
        The predictors that were serving.
    """
    import docker

    stopped = []
    for container in client.containers.list(all=True, filters=_filters(scope, port)):
        if container.labels.get(f"{LABEL}.role") == "predictor" and container.status == "running":
            labels = container.labels
            stopped.append(ServedContainer(container.name, f"http://{HOST}:{labels[f'{LABEL}.port']}",
                                           labels.get(f"{LABEL}.model", ""), labels.get(f"{LABEL}.uri", ""),
                                           container.attrs["Config"]["Image"]))
        try:
            container.stop(timeout=STOP_TIMEOUT_S)
            container.remove(force=True)
        except docker.errors.NotFound:
            pass  # removed meanwhile (auto-remove, or a concurrent stop)
    for volume in client.volumes.list(filters=_filters(scope, port)):
        try:
            volume.remove(force=True)
        except docker.errors.NotFound:
            pass
    return stopped


