"""The one patch of kfp.local internals (pipeline/kfp_local_adapter.py): fails loudly if a kfp upgrade moves them.

No engine needed: kfp.local computes a task's mounts before it talks to Docker.
"""

from __future__ import annotations

from pathlib import Path

from kfp import local
from kfp.local import docker_task_handler

from pipeline.kfp_local_adapter import ENGINE_SOCKET_IN_STEP, engine_socket_for, runs_function


def _command(function: str) -> list[str]:
    return ["sh", "-ec", "python3 -m kfp.dsl.executor_main", "--executor_input", "{}",
            "--function_to_execute", function]


def _handler(function: str, root: Path) -> docker_task_handler.DockerTaskHandler:
    return docker_task_handler.DockerTaskHandler(image="img", full_command=_command(function),
                                                 pipeline_root=str(root), runner=local.DockerRunner())


def test_kfp_still_has_the_names_the_adapter_wraps():
    handler = docker_task_handler.DockerTaskHandler
    assert callable(getattr(handler, "get_volumes_to_mount", None))
    assert "full_command" in handler.__init__.__code__.co_varnames
    # kfp's own run path must still call the method the adapter wraps
    assert "get_volumes_to_mount" in handler.run.__code__.co_names


def test_only_the_named_function_gets_the_socket(tmp_path):
    socket = tmp_path / "docker.sock"
    with engine_socket_for("deploy_model", socket):
        deploy = _handler("deploy_model", tmp_path).get_volumes_to_mount()
        train = _handler("train_model", tmp_path).get_volumes_to_mount()
    assert deploy[str(socket)] == {"bind": ENGINE_SOCKET_IN_STEP, "mode": "rw"}
    assert str(socket) not in train
    assert str(tmp_path) in deploy and str(tmp_path) in train  # kfp's own pipeline-root mount is kept


def test_the_patch_is_undone_on_exit(tmp_path):
    with engine_socket_for("deploy_model", tmp_path / "docker.sock"):
        pass
    assert str(tmp_path / "docker.sock") not in _handler("deploy_model", tmp_path).get_volumes_to_mount()


def test_runs_function_reads_the_executor_flag():
    assert runs_function(_command("deploy_model"), "deploy_model")
    assert not runs_function(_command("deploy_model_v2"), "deploy_model")
    assert not runs_function(["deploy_model", "--function_to_execute"], "deploy_model")
