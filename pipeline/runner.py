"""Compile the pipeline, and run the compiled YAML on kfp.local (what runs locally is what a cluster runs)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from components.common.store import S3Settings
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
    if image and image != config.IMAGE:
        # The pipeline graph is built when the module is imported, so the image is swapped in the compiled IR:
        # every executor names the one project image, on its own `image:` line.
        text = output.read_text()
        swapped = text.replace(f"image: {config.IMAGE}\n", f"image: {image}\n")
        if swapped == text:
            raise ValueError(f"no executor uses {config.IMAGE}; cannot switch the image")
        output.write_text(swapped)
    return output


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
    import warnings

    from kfp import components, local

    # Known and harmless here: the steps name the cluster image but run in this environment (that is the point of
    # the local run), and display names only matter in the Kubeflow UI.
    warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*", category=UserWarning)
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=True,
        enable_caching=caching, cache_root=str(cache_root) if cache_root else None,
    )
    pipeline_fn = components.load_component_from_file(str(yaml_path))
    return pipeline_fn(**arguments)
