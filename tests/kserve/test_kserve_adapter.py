"""The KServe internals `boston_predictor.kserve_adapter` relies on are still where it reads them, and only it does.

If a KServe upgrade moves or reshapes any of them, these tests fail with the name that moved, before a server
process ever starts wrong.
"""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import re
from pathlib import Path

import kserve.model_server as kserve_model_server
import pytest
import uvicorn
from fastapi import FastAPI
from kserve.protocol.rest.server import RESTServer

from boston_predictor import kserve_adapter

REPO = Path(__file__).resolve().parents[2]


def test_the_kserve_release_is_the_one_the_adapter_was_written_against() -> None:
    # PredictorServer.start repeats ModelServer.start's single-process branch: a new release needs a re-read.
    installed = importlib.metadata.version("kserve")
    assert installed == kserve_adapter.KSERVE_VERSION, (
        f"kserve {installed} is installed; re-read ModelServer.start and RESTServer in that release "
        f"against boston_predictor/kserve_adapter.py, then set KSERVE_VERSION"
    )


def test_model_server_private_methods_are_where_the_adapter_calls_them() -> None:
    server_cls = kserve_model_server.ModelServer
    register = server_cls._register_and_check_atleast_one_model_is_ready
    assert list(inspect.signature(register).parameters) == ["self", "models"]
    assert inspect.iscoroutinefunction(server_cls._serve)
    # ModelServer keeps its REST server in _rest_server and gathers self.servers in _serve.
    assert "self._rest_server = " in inspect.getsource(server_cls.__init__)
    assert "self.servers" in inspect.getsource(server_cls._serve)
    assert "_register_and_check_atleast_one_model_is_ready(models)" in inspect.getsource(server_cls.start)
    # ModelServer.stop (on SIGTERM) stops whatever gRPC server it keeps in _grpc_server: ours, when on.
    assert "self._grpc_server = None" in inspect.getsource(server_cls.__init__)
    assert "await self._grpc_server.stop(sig)" in inspect.getsource(server_cls.stop)


def test_rest_server_builds_an_app_through_the_hooks_the_adapter_overrides() -> None:
    create = inspect.getsource(RESTServer.create_application)
    assert "self._add_middlewares(app)" in create
    assert "kserve.model_server:app" in create
    assert list(inspect.signature(RESTServer._add_middlewares).parameters) == ["self", "app"]
    # Every keyword the adapter passes is still a RESTServer parameter.
    accepted = set(inspect.signature(RESTServer.__init__).parameters)
    passed = {"access_log_format", "workers", "grace_period", "event_loop", "timeout_keep_alive", "ssl_certfile",
              "ssl_keyfile"}
    assert passed <= accepted, passed - accepted


def test_rest_server_config_is_a_uvicorn_config_read_at_bind_time() -> None:
    server = RESTServer(kserve_model_server.FASTAPI_APP_IMPORT_STRING, None, None, 0)  # type: ignore[arg-type]
    assert isinstance(server.config, uvicorn.Config)
    assert server.config.host == "0.0.0.0"  # what the adapter replaces with --bind
    assert callable(server.config.get_loop_factory)


def test_the_module_global_app_is_kserves_fastapi_app() -> None:
    assert kserve_model_server.FASTAPI_APP_IMPORT_STRING == "kserve.model_server:app"
    assert isinstance(kserve_adapter.kserve_app(), FastAPI)
    assert kserve_adapter.kserve_app() is kserve_model_server.app


def _project_sources() -> list[Path]:
    folders = ("boston_predictor", "components", "pipeline", "kserve")
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _project_sources(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_other_module_touches_a_private_kserve_name(path: Path) -> None:
    if path == Path(kserve_adapter.__file__).resolve():
        return
    source = path.read_text()
    for name in kserve_adapter.PRIVATE_NAMES:
        named = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", source)
        assert not named, f"{path.name} names {name}: only boston_predictor/kserve_adapter.py may"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "kserve":
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"{path.name} imports {private} from {node.module}"
