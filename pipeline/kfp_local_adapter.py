"""The one place that reaches into kfp.local's internals: the Docker engine's socket for the deploy step only.

kfp.local's ``DockerRunner`` gives every step the same ``docker run`` arguments and has no per-task seam. Only the
deploy step needs the engine (it starts the storage-initializer and predictor containers), and the socket is root
on the host: load, split, train and evaluate must not get it. So this wraps
``DockerTaskHandler.get_volumes_to_mount`` (the method kfp's own ``testing_utilities`` patches) and adds the socket
when the task's command runs the deploy function. tests/containers/test_kfp_local_adapter.py fails loudly if a kfp
upgrade moves either name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

ENGINE_SOCKET_IN_STEP = "/var/run/docker.sock"
FUNCTION_FLAG = "--function_to_execute"


def runs_function(command: Sequence[str], function: str) -> bool:
    """Whether a lightweight component's command line executes ``function`` (KFP's executor flag)."""
    command = list(command)
    return any(a == FUNCTION_FLAG and b == function for a, b in zip(command, command[1:], strict=False))


@contextlib.contextmanager
def engine_socket_for(function: str, socket: Path, shared: Path | None = None) -> Iterator[None]:
    """While active, kfp.local mounts ``socket`` (and the folder ``shared``, at its own path) into the containers of
    tasks that run ``function``, no others."""
    from kfp.local import docker_task_handler

    handler = docker_task_handler.DockerTaskHandler
    original = handler.get_volumes_to_mount

    def get_volumes_to_mount(self, client=None):  # noqa: ANN001, ANN202 - kfp's signature
        volumes = original(self, client)
        if runs_function(self.full_command, function):
            volumes[str(socket)] = {"bind": ENGINE_SOCKET_IN_STEP, "mode": "rw"}
            if shared is not None:
                volumes[str(shared)] = {"bind": str(shared), "mode": "rw"}
        return volumes

    handler.get_volumes_to_mount = get_volumes_to_mount
    try:
        yield
    finally:
        handler.get_volumes_to_mount = original
