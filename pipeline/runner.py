"""Compile the pipeline, and run the compiled YAML on kfp.local (what runs locally is what a cluster runs)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boston_model.errors import BadInput
from boston_model.store import S3Settings
from components.deploy.container import ServedContainer
from components.deploy.process import ServedModel
from pipeline import config

DEFAULT_YAML = "boston_housing_pipeline.yaml"


def compile_pipeline(output: Path, image: str | None = None) -> Path:
    """Compiles the pipeline to IR YAML at ``output``.

    Args:
        output: Where to write the YAML.
        image: Component image to use instead of ``config.IMAGE`` (every step runs in this one image).
    """
    from kfp import compiler

    from pipeline import pipeline as pipeline_module

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_module.boston_housing_pipeline, str(output))
    output.write_text(_sorted_struct_defaults_in_header(output.read_text()))
    if image and image != config.IMAGE:
        # The pipeline graph is built when the module is imported, so the image is swapped in the compiled IR:
        # every executor names the one project image, on its own `image:` line.
        text = output.read_text()
        swapped = text.replace(f"image: {config.IMAGE}\n", f"image: {image}\n")
        if swapped == text:
            raise BadInput(f"no executor uses {config.IMAGE}; cannot switch the image")
        output.write_text(swapped)
    return output


def _sorted_struct_defaults_in_header(text: str) -> str:
    """The compiled text with each struct default in kfp's header comment written in key order.

    kfp sorts the YAML body, but writes the header's ``# Inputs:`` list from a protobuf map, whose order changes
    from process to process: the ``serving`` default would make every compile differ. The body is the source.
    """
    import yaml

    declared = next(yaml.safe_load_all(text))["root"].get("inputDefinitions", {}).get("parameters", {})
    for name, spec in declared.items():
        default = spec.get("defaultValue")
        if spec.get("parameterType") == "STRUCT" and isinstance(default, dict):
            prefix = f"#    {name}: dict [Default: "
            start = text.find(prefix)
            end = text.find("]\n", start)
            if start >= 0 and end >= 0:
                text = f"{text[:start]}{prefix}{dict(sorted(default.items()))}{text[end:]}"
    return text


def store_environment(settings: S3Settings) -> contextlib.AbstractContextManager[None]:
    """Hands the store to the steps through the environment (kfp.local passes os.environ to each step).

    kfp.local ignores Kubernetes secret wiring, so this is how local steps get the credentials that a cluster
    gives them from a Secret; they never become pipeline parameters.
    """
    return _environment(settings.to_env())


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Sets ``values`` in ``os.environ`` for the block, then restores what was there."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_compiled(
    yaml_path: Path, arguments: Mapping[str, Any], pipeline_root: Path, caching: bool = False,
    cache_root: Path | None = None, runner: Any = None,
) -> Any:
    """Runs a compiled pipeline YAML on kfp.local, in this Python environment unless ``runner`` says otherwise.

    Args:
        runner: A kfp.local runner; default: ``SubprocessRunner(use_venv=False)``, the steps in this environment.

    Returns:
        The pipeline task; ``.output`` is the gate decision.
    """
    import warnings

    from kfp import components, local

    # Known and harmless here: the steps name the cluster image but run in this environment (that is the point of
    # the local run), and display names only matter in the Kubeflow UI.
    warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*", category=UserWarning)
    local.init(
        runner=runner or local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root),
        raise_on_error=True,
        enable_caching=caching, cache_root=str(cache_root) if cache_root else None,
    )
    pipeline_fn = components.load_component_from_file(str(yaml_path))
    return pipeline_fn(**arguments)


@dataclass(frozen=True)
class LocalRun:
    """The outcome of :func:`run_local`."""

    passed: bool
    metrics: dict[str, Any]
    report_path: str
    predictions_path: str
    champion: dict[str, Any] | None
    served: ServedModel | ServedContainer | None
    yaml_path: Path
    log_path: Path
    seconds: float


def run_local(
    arguments: Mapping[str, Any],
    *,
    cache: bool = False,
    verbose: bool = False,
    yaml_path: Path | None = None,
    stage: Callable[[str], None] = print,
    runner: str = "subprocess",
    image: str | None = None,
) -> LocalRun:
    """The embedded default end to end: start (or find) the store, compile, run the compiled YAML on kfp.local.

    Args:
        arguments: Pipeline parameters; the ``serving`` target is "process" ("container" with the docker runner; its
            other keys, such as ``local_port``, may be given) and ``s3_endpoint`` defaults to "" (the store is
            handed to the steps through the environment).
        cache: Reuse results of unchanged steps (deploy always runs).
        verbose: Print kfp.local's full log instead of the condensed view.
        yaml_path: Where to write the compiled YAML (default: in the state folder).
        stage: Receives progress lines.
        runner: "subprocess" (every step in this environment) or "docker" (every step in the component image,
            the model served by a predictor container; pipeline/docker_run.py).
        image: Component image the compiled YAML names (default ``config.IMAGE``); the docker runner runs it.
    """
    from boston_model.store import ObjectStore
    from boston_model.versions import read_champion
    from components.deploy.process import read_served
    from pipeline import embedded_s3
    from pipeline.progress import CondensedLog
    from pipeline.state import ENV_STATE_DIR, state_dir

    started = time.monotonic()
    # TensorFlow's C++ start-up chatter would bury the steps' progress lines (the steps inherit the environment).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if runner not in ("subprocess", "docker"):
        raise BadInput(f"unknown runner {runner!r}: use 'subprocess' or 'docker'")
    serving = {"target": "container" if runner == "docker" else "process", **arguments.get("serving", {})}
    arguments = {"s3_endpoint": "", **arguments, "serving": serving}
    state = state_dir()
    stage("==> starting the object store")
    settings, embedded = embedded_s3.settings_for_run()
    store = ObjectStore(settings)
    store.check()
    stage(f"    {'embedded SeaweedFS' if embedded else 'MinIO/S3'} at {settings.url}")
    yaml_path = Path(yaml_path or state / "compiled" / DEFAULT_YAML)
    stage(f"==> compiling the pipeline to {yaml_path}")
    compile_pipeline(yaml_path, image=image)
    where = " in containers of the component image" if runner == "docker" else ""
    stage(f"==> running the compiled pipeline on kfp.local{where} (load -> split -> train -> evaluate -> gate -> "
          "deploy)")
    log_path = state / "logs" / f"run-{time.strftime('%Y%m%dT%H%M%S')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stage(f"    full log: {log_path}")
    with contextlib.ExitStack() as stack:
        kfp_runner = None
        if runner == "docker":
            from pipeline import docker_run

            kfp_runner = stack.enter_context(docker_run.docker_runner(
                settings, state, state / "pipeline_root", image or config.IMAGE,
                serving.get("predictor_image", config.PREDICTOR_IMAGE)))
        stack.enter_context(store_environment(settings))
        # The process target keeps its serving records and logs in the state folder the runner names.
        stack.enter_context(_environment({ENV_STATE_DIR: str(state)}))
        full_log = stack.enter_context(open(log_path, "w"))
        stream = sys.stdout if verbose else CondensedLog(sys.stdout, full_log)
        with contextlib.redirect_stdout(stream):
            task = run_compiled(yaml_path, arguments, state / "pipeline_root", caching=cache,
                                cache_root=state / "cache", runner=kfp_runner)
    passed = bool(task.outputs["gate_passed"])
    bucket = arguments.get("bucket", config.BUCKET)
    model_name = arguments.get("model_name", config.MODEL_NAME)
    port = int(serving.get("local_port", config.LOCAL_PORT))
    if passed and runner == "docker":
        from pipeline import docker_run

        served = docker_run.find_served(state, port)
    else:
        served = read_served(state, port) if passed else None
    return LocalRun(
        passed=passed,
        metrics=dict(task.outputs["metrics"].metadata),
        report_path=task.outputs["report"].path,
        predictions_path=task.outputs["predictions"].path,
        champion=read_champion(store, bucket, model_name) if passed else None,
        served=served,
        yaml_path=yaml_path,
        log_path=log_path,
        seconds=time.monotonic() - started,
    )
