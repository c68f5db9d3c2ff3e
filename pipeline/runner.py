"""Compile the pipeline, and run the compiled YAML on kfp.local (what runs locally is what a cluster runs)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from components.common.store import S3Settings

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
    with _component_image(image):
        compiler.Compiler().compile(pipeline_module.boston_housing_pipeline, str(output))
    return output


@contextlib.contextmanager
def _component_image(image: str | None) -> Iterator[None]:
    """Temporarily points every component of the pipeline at ``image`` (the components are built at import)."""
    if not image:
        yield
        return
    from pipeline import pipeline as pipeline_module

    specs = [
        task_fn.component_spec.implementation.container
        for task_fn in (
            pipeline_module.load_data, pipeline_module.split_data, pipeline_module.train_model,
            pipeline_module.evaluate_model, pipeline_module.deploy_model,
        )
    ]
    saved = [spec.image for spec in specs]
    for spec in specs:
        spec.image = image
    try:
        yield
    finally:
        for spec, old in zip(specs, saved, strict=False):
            spec.image = old


@contextlib.contextmanager
def store_environment(settings: S3Settings) -> Iterator[None]:
    """Hands the store to the steps through the environment (kfp.local passes os.environ to each step).

    kfp.local ignores Kubernetes secret wiring, so this is how local steps get the credentials that a cluster
    gives them from a Secret; they never become pipeline parameters.
    """
    saved = {key: os.environ.get(key) for key in settings.to_env()}
    os.environ.update(settings.to_env())
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
    cache_root: Path | None = None,
) -> Any:
    """Runs a compiled pipeline YAML on kfp.local in this Python environment.

    Returns:
        The pipeline task; ``.output`` is the gate decision.
    """
    from kfp import components, local

    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=True,
        enable_caching=caching, cache_root=str(cache_root) if cache_root else None,
    )
    pipeline_fn = components.load_component_from_file(str(yaml_path))
    return pipeline_fn(**arguments)
