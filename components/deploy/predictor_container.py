"""The shape of the custom predictor container: what runs it, where the model sits, which port it answers on.

One pure description (no Kubernetes or Docker types) that every container target builds from: the KServe
InferenceService's custom runtime (`kserve_spec.build_inference_service`) and a local container target alike. The
image's entry point is ``boston-predictor``; KServe's storage initializer (or the local target) puts the model
version at ``model_mount`` before the container starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

CONTAINER_NAME = "kserve-container"  # KServe injects the storage initializer for this container's STORAGE_URI
MODEL_MOUNT = "/mnt/models"  # where KServe's storage initializer puts the model for a custom runtime
PREDICTOR_PORT = 8080
GRPC_PORT = 8081  # KServe's gRPC port; V2 over gRPC, bound to the same address as REST
GRPC_PORT_NAME = "h2c"  # KServe marks a container port named h2c (or *grpc*) as gRPC (appProtocol kubernetes.io/h2c)
BIND_ALL = "0.0.0.0"  # inside a container: the pod's (or the published port's) network, not the host's loopback


@dataclass(frozen=True)
class PredictorContainer:
    """How to run the predictor image for one model version.

    Attributes:
        name: Container name (KServe's storage initializer looks for ``kserve-container``).
        args: Arguments for the image's entry point (``boston-predictor``).
        port: Container port of the HTTP server (TCP).
        grpc_port: Container port of the V2 gRPC server (TCP), or None when gRPC is off.
        model_mount: Folder inside the container that holds the model version.
        env: Environment variables; ``STORAGE_URI`` tells KServe which version to copy to ``model_mount``.
    """

    name: str
    args: tuple[str, ...]
    port: int
    model_mount: str
    grpc_port: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)


def predictor_container(
    model_name: str, storage_uri: str, port: int = PREDICTOR_PORT, grpc_port: int | None = GRPC_PORT
) -> PredictorContainer:
    """The predictor container that serves the version at ``storage_uri`` as ``model_name`` (pure: no I/O).

    Args:
        model_name: Served model name (``/v1/models/<model_name>``).
        storage_uri: Model version prefix, ``s3://bucket/name/version/``.
        port: Container port the server listens on.
        grpc_port: Container port of V2 over gRPC (on by default, as in stock KServe); None turns it off.
    """
    args = ("--model_name", model_name, "--model_dir", MODEL_MOUNT, "--http_port", str(port), "--bind", BIND_ALL)
    grpc = ("--enable_grpc", "true", "--grpc_port", str(grpc_port)) if grpc_port else ("--enable_grpc", "false")
    return PredictorContainer(
        name=CONTAINER_NAME,
        args=args + grpc,
        port=port,
        model_mount=MODEL_MOUNT,
        env={"STORAGE_URI": storage_uri},
        grpc_port=grpc_port or None,
    )
