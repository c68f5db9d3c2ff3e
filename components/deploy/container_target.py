"""The container deploy target: a KServe pod's two phases, run by the local Docker engine.

What KServe does for an InferenceService with a custom container, done with ``docker``:

1. storage-initializer: the component image runs kserve-storage's copy (``components.deploy.storage_initializer``)
   from ``s3://…/<version>/`` into a fresh volume, with KServe's environment names. It alone holds the S3 keys.
2. predictor: the predictor image with exactly the container shape the InferenceService builder uses (arguments,
   environment, port, mount path), the volume mounted read-only at the mount path, its port published on
   ``127.0.0.1:<port>`` only. It never holds S3 credentials.

Every container and volume carries labels naming the run's state folder and port, so a second run replaces what a
first one started and ``boston-pipeline down`` finds it without any record on disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boston_model.errors import first_line
from boston_model.store import ObjectStore, S3Settings
from boston_model.versions import read_champion
from components.deploy.errors import DeployError

# The InferenceService builder's container shape: one pure function, shared with kserve_spec.
from components.deploy.predictor_container import PredictorContainer
from components.deploy.predictor_container import predictor_container as custom_container

if TYPE_CHECKING:
    import docker
    import pandas as pd

LABEL = "com.github.boston-housing-kfp"
ENV_SCOPE = "BOSTON_STATE_DIR"
ENV_INITIALIZER_IMAGE = "BOSTON_STORAGE_INITIALIZER_IMAGE"
HOST = "127.0.0.1"
INITIALIZER_TIMEOUT_S = 120
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10
BUILD_HINT = "build it with `make image-local` (or `make image` where python:3.11-slim can be pulled)"


@dataclass(frozen=True)
class ContainerOptions:
    """Where and with what the pod runs.

    Attributes:
        predictor_image: Image of the predictor phase (the custom runtime's image).
        initializer_image: Image of the storage-initializer phase (the component image: it has kserve-storage).
        port: Host port on 127.0.0.1 that the predictor's container port is published on.
        scope: Which local run owns the containers (the state folder), so runs with different state never collide.
    """

    predictor_image: str
    initializer_image: str
    port: int
    scope: str

    @classmethod
    def from_env(cls, predictor_image: str, port: int, default_initializer: str,
                 env: Mapping[str, str] | None = None) -> ContainerOptions:
        """Options for a deploy step: the runner names the scope and the initializer image in the environment.

        KServe reads its storage-initializer image from its own configuration, not from the InferenceService; here
        the container runner plays that part.
        """
        env = os.environ if env is None else env
        return cls(predictor_image, env.get(ENV_INITIALIZER_IMAGE) or default_initializer, int(port),
                   env.get(ENV_SCOPE, ""))


@dataclass(frozen=True)
class ServedContainer:
    """A predictor container this target started."""

    name: str
    url: str
    model_name: str
    uri: str
    image: str


def engine() -> docker.DockerClient:
    """The Docker engine from the environment (``DOCKER_HOST`` or the default socket), or a one-line DeployError."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise DeployError(f"no Docker engine answers at {where} ({first_line(exc)[:120]}): the container target "
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


def _labels(options: ContainerOptions, role: str, model_name: str = "", uri: str = "") -> dict[str, str]:
    labels = {f"{LABEL}.scope": options.scope, f"{LABEL}.port": str(options.port), f"{LABEL}.role": role}
    if model_name:
        labels[f"{LABEL}.model"] = model_name
    if uri:
        labels[f"{LABEL}.uri"] = uri
    return labels


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
    return first_line("\n".join(reversed(text.splitlines())), "empty log")


def _run(client: docker.DockerClient, image: str, what: str, **kwargs: Any) -> Any:
    import docker

    try:
        return client.containers.run(image, detach=True, **kwargs)
    except docker.errors.ImageNotFound:
        raise DeployError(f"{what} image {image} not found in the Docker engine: {BUILD_HINT}") from None
    except docker.errors.APIError as exc:
        raise DeployError(f"{what} container did not start: {first_line(exc.explanation or exc)}") from None


def initialize_storage(client: docker.DockerClient, options: ContainerOptions, settings: S3Settings,
                       uri: str, shape: PredictorContainer, log: Callable[[str], None] = print) -> str:
    """Phase 1: copies ``uri`` into a new volume with kserve-storage; returns the volume's name.

    The container runs on the host network: it is a client only (it reaches a store on 127.0.0.1 as the steps do).
    Its last log line is passed on, as ``kubectl logs -c storage-initializer`` would show it.
    """
    labels = _labels(options, "storage-initializer", uri=uri)
    volume = client.volumes.create(labels=labels).name
    container = _run(
        client, options.initializer_image, "storage-initializer",
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
        raise DeployError(f"storage-initializer for {uri} failed (exit {code}): {reason}")
    log(f"storage-initializer: {reason}")
    return volume


def start_predictor(client: docker.DockerClient, options: ContainerOptions, model_name: str, uri: str,
                    shape: PredictorContainer, volume: str) -> Any:
    """Phase 2: the predictor container, the builder's shape, published on 127.0.0.1:<port> only."""
    return _run(
        client, options.predictor_image, "predictor",
        command=list(shape.args), environment=dict(shape.env), name=container_name(model_name, options.port),
        ports={f"{shape.port}/tcp": (HOST, options.port)}, labels=_labels(options, "predictor", model_name, uri),
        volumes={volume: {"bind": shape.model_mount, "mode": "ro"}},
    )


def container_name(model_name: str, port: int) -> str:
    return f"{model_name}-predictor-{port}"


def wait_ready(container: Any, url: str, model_name: str, timeout: float = READY_TIMEOUT_S) -> None:
    """Polls the V1 model endpoint until ready; a container that exits fails at once with its last log line."""
    from components.common.processes import wait_until
    from components.deploy.local import model_ready

    def ready() -> bool:
        container.reload()
        if container.status in ("exited", "dead"):
            code = container.attrs.get("State", {}).get("ExitCode")
            raise DeployError(f"predictor container exited with code {code}: {_last_log_line(container)}")
        return model_ready(url, model_name)

    if not wait_until(ready, timeout, 0.25):
        raise DeployError(f"predictor not ready on {url} after {timeout:.0f} s: {_last_log_line(container)}")


def serve(client: docker.DockerClient, options: ContainerOptions, settings: S3Settings, model_name: str,
          uri: str, log: Callable[[str], None] = print) -> ServedContainer:
    """Both phases, then readiness; on failure nothing of this attempt is left behind."""
    shape = custom_container(model_name, uri)
    volume = initialize_storage(client, options, settings, uri, shape, log)
    try:
        container = start_predictor(client, options, model_name, uri, shape, volume)
        url = f"http://{HOST}:{options.port}"
        wait_ready(container, url, model_name)
    except DeployError:
        stop(client, options.scope, options.port)
        raise
    return ServedContainer(container.name, url, model_name, uri, options.predictor_image)


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


def deploy_container(
    store: ObjectStore,
    model_dir: Path,
    predictions: pd.DataFrame,
    feature_names: list[str],
    metrics: Mapping[str, Any],
    bucket: str,
    model_name: str,
    options: ContainerOptions,
    applied_spec: Path,
    client: docker.DockerClient | None = None,
    log: Callable[[str], None] = print,
) -> Any:
    """Stores, serves (both phases) and smoke-tests the model; promotes it to champion only on success.

    A second deploy replaces the pod on the same port. If the new one fails to start or answers differently from
    evaluate, the previous champion is served again and the champion record is left untouched.
    """
    from components.deploy.core import promote, smoke_rows, store_version
    from components.deploy.local import smoke_test

    client = client or engine()
    location, manifest = store_version(store, bucket, model_name, model_dir, metrics)
    log(f"stored {len(manifest['files'])} files under {location.uri}")
    previous = read_champion(store, bucket, model_name)
    replaced = stop(client, options.scope, options.port)
    for old in replaced:
        log(f"stopped the predictor container serving {old.uri}")
    rows, expected = smoke_rows(predictions, feature_names)
    try:
        served = serve(client, options, store.settings, model_name, location.uri, log)
        diff = smoke_test(served.url, model_name, rows, expected)
    except DeployError as exc:
        stop(client, options.scope, options.port)
        if previous:
            # The champion comes back as it ran before: its version in the image that served it.
            before = replace(options, predictor_image=replaced[0].image) if replaced else options
            log(f"rolling back: serving the champion {previous['version']} again")
            try:
                serve(client, before, store.settings, model_name, previous["uri"], log)
            except DeployError as again:
                raise DeployError(f"{exc}; the champion record is unchanged but could not be served again: "
                                  f"{again}") from None
        raise DeployError(f"{exc}; the champion is unchanged") from None
    log(f"smoke test passed on {served.url} (max |diff| {diff:.2g} over {len(rows)} rows)")
    shape = custom_container(model_name, location.uri)
    Path(applied_spec).write_text(json.dumps({
        "target": "container", "url": served.url, "storage_uri": location.uri, "container": served.name,
        "image": options.predictor_image, "args": list(shape.args), "env": dict(shape.env),
        "initializer_image": options.initializer_image,
    }, indent=2, sort_keys=True))
    # No champion lock file: the state folder is the host's, not this container's; the move re-checks `previous`.
    return promote(store, location, manifest, metrics, feature_names, previous, served.url)
