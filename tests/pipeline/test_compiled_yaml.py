"""The committed boston_housing_pipeline.yaml: current, loadable by kfp, and readable in the Kubeflow UI.

Users upload that file in the KFP UI without installing anything, so it must equal a fresh compile and carry
what the UI shows: a description, a default and a description per parameter, a display name per step.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import config
from pipeline.runner import DEFAULT_YAML, compile_pipeline

COMMITTED = Path(__file__).resolve().parents[2] / DEFAULT_YAML


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pipeline(tmp_path_factory.mktemp("fresh") / DEFAULT_YAML)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    assert COMMITTED.is_file(), f"{COMMITTED.name} is missing: run `make compile` and commit it"
    return next(yaml.safe_load_all(COMMITTED.read_text()))


def _all_dags(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The root DAG and every sub-DAG (dsl.If, ParallelFor, exit handlers), by name."""
    dags = {"root": spec["root"]["dag"]}
    dags.update({name: comp["dag"] for name, comp in spec["components"].items() if "dag" in comp})
    return dags


def test_committed_yaml_equals_a_fresh_compile(fresh):
    assert COMMITTED.is_file(), f"{COMMITTED.name} is missing: run `make compile` and commit it"
    committed, compiled = COMMITTED.read_text(), fresh.read_text()
    if committed != compiled:
        diff = difflib.unified_diff(committed.splitlines(), compiled.splitlines(), "committed", "fresh compile",
                                    lineterm="", n=1)
        excerpt = "\n".join(list(diff)[:40])
        pytest.fail(f"{COMMITTED.name} is stale: run `make compile` and commit it.\n{excerpt}")


def test_committed_yaml_loads_with_kfp_and_declares_the_pipeline_interface(spec):
    from kfp import components

    pipeline = components.load_component_from_file(str(COMMITTED))
    assert pipeline.name == config.PIPELINE_NAME
    assert set(pipeline.component_spec.inputs) == set(spec["root"]["inputDefinitions"]["parameters"])
    assert {"gate_passed", "metrics", "report"} <= set(pipeline.component_spec.outputs)


def test_pipeline_has_a_description(spec):
    assert len(spec["pipelineInfo"].get("description", "")) > 40


def test_every_parameter_has_a_default_and_a_description(spec):
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    no_default = [name for name, p in parameters.items() if "defaultValue" not in p]
    undocumented = [name for name, p in parameters.items() if not p.get("description", "").strip()]
    assert not no_default, f"parameters without a default (the UI's Run form starts empty): {no_default}"
    assert not undocumented, ("parameters without a description (add them to the Args section of "
                              f"boston_housing_pipeline's docstring): {undocumented}")


def test_every_step_has_a_display_name(spec):
    # Without set_display_name the UI shows the task key ("train-model"); dsl.If(name=…) names condition groups.
    unnamed = [f"{dag}/{key}" for dag, body in _all_dags(spec).items() for key, task in body["tasks"].items()
               if task.get("taskInfo", {}).get("name", key) == key]
    assert not unnamed, f"tasks without a display name: {unnamed}"


def test_evaluate_publishes_the_ui_visualisations(spec):
    # KFP's UI renders system.Metrics as a table, system.HTML and system.Markdown in the step's Visualizations.
    outputs = spec["components"]["comp-evaluate-model"]["outputDefinitions"]["artifacts"]
    kinds = {name: art["artifactType"]["schemaTitle"] for name, art in outputs.items()}
    assert kinds["metrics"] == "system.Metrics"
    assert kinds["report"] == "system.HTML"
    assert kinds["gate_summary"] == "system.Markdown"
