"""The walkthrough notebook, executed top to bottom by a real Jupyter kernel, and kept without outputs in git.

The kernel is this interpreter's ``python3`` kernelspec (the venv's), and it inherits this process's environment:
``BOSTON_STATE_DIR`` from the session's ``s3_server`` fixture (so the notebook uses that store, never the
developer's), ``BOSTON_NOTEBOOK_PORT`` (a free port for its predictor) and no KFP variables.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

from components.common.processes import is_running, wait_until
from components.deploy.process import read_served
from pipeline.runner import DEFAULT_YAML
from tests.doubles.kfp_api import API, SUCCEEDING_RUN, KfpApiDouble

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "boston_housing_kubeflow.ipynb"
TOTAL_TIMEOUT_S = 600
CELL_TIMEOUT_S = 300
KFP_VARIABLES = ("KF_PIPELINES_ENDPOINT", "KF_PIPELINES_UI_ENDPOINT", "KF_PIPELINES_SA_TOKEN_PATH", "KFP_NAMESPACE",
                 "KFP_EXISTING_TOKEN", "KFP_COOKIES")
# The cells that the cluster path needs: the imports, the compiled file, and section 4.
CLUSTER_TAGS = {"setup", "compile", "cluster"}
# Appended to the executed copy only: the notebook's own results, read back as JSON.
PROBE = """
import json
print("PROBE " + json.dumps({
    "kernel": sys.executable, "passed": run.passed, "metrics": run.metrics, "pid": served.pid,
    "expected": expected.tolist(), "v1": v1.json(), "v2": v2.json(),
    "explanation": dataclasses.asdict(explanation), "versions": [v.version for v in versions],
    "champion": run.champion["version"],
}))
"""

pytestmark = pytest.mark.slow


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _execute(notebook: nbformat.NotebookNode, cwd: Path) -> None:
    """Runs every cell in a fresh kernel; raises on the first cell error or when the time is up."""
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    # "python3" must be this environment's kernel (its argv "python" then becomes sys.executable).
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve()), spec.resource_dir
    deadline = time.monotonic() + TOTAL_TIMEOUT_S
    client = NotebookClient(
        notebook, kernel_name="python3", resources={"metadata": {"path": str(cwd)}},
        # One budget for the whole notebook, and no cell may take more than CELL_TIMEOUT_S of it.
        timeout_func=lambda _cell: max(1, min(CELL_TIMEOUT_S, int(deadline - time.monotonic()))),
    )
    client.execute()


def _cell(notebook: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    return next(c for c in notebook.cells if c.get("id") == cell_id)


def _text(cell: nbformat.NotebookNode) -> str:
    """Everything a code cell printed or displayed, as text (stdout, text/plain, text/html)."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts += [output.data.get("text/plain", ""), output.data.get("text/html", "")]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def state(s3_server) -> Path:
    return Path(os.environ["BOSTON_STATE_DIR"])  # the s3_server fixture points it at the session's own store


@pytest.fixture(scope="module")
def executed(state: Path, tmp_path_factory: pytest.TempPathFactory, free_port) -> Iterator[dict[str, Any]]:
    """The notebook run top to bottom as a user runs it (no cluster), with the probe appended."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE))
    port = free_port()
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BOSTON_NOTEBOOK_PORT", str(port))
        for name in KFP_VARIABLES:
            env.delenv(name, raising=False)
        try:
            _execute(notebook, tmp_path_factory.mktemp("notebook-cwd"))
            probe = json.loads(_text(notebook.cells[-1]).split("PROBE ", 1)[1])
            yield {"notebook": notebook, "probe": probe, "port": port, "seconds": time.monotonic() - started}
        finally:
            # The notebook stops its predictor in its last cell; if a cell failed before that, stop it by PID.
            served = read_served(state, port)
            if served is not None:
                _kill_group(served.pid)


def test_the_notebook_runs_on_the_venv_kernel_against_the_isolated_store(executed, state):
    setup = _text(_cell(executed["notebook"], "setup"))
    assert f"kernel: {sys.executable}" in setup
    assert f"state:  {state}" in setup
    assert executed["probe"]["kernel"] == sys.executable
    assert executed["seconds"] < TOTAL_TIMEOUT_S


def test_the_notebook_shows_the_data_the_plots_and_the_compiled_steps(executed):
    notebook = executed["notebook"]
    assert "506 rows, 14 columns" in _text(_cell(notebook, "data-table"))
    assert any("text/markdown" in o.data and "Known problems" in o.data["text/markdown"]
               for o in _cell(notebook, "data-card").outputs)
    assert any("image/png" in o.get("data", {}) for o in _cell(notebook, "data-plots").outputs)
    steps = _text(_cell(notebook, "steps"))
    for step in ("Load and validate data", "Split train/test", "Train Keras model", "Evaluate and gate",
                 "gate-passed"):
        assert step in steps


def test_the_local_run_passes_and_its_metrics_sit_beside_the_baselines(executed):
    probe = executed["probe"]
    assert probe["passed"] is True
    table = _text(_cell(executed["notebook"], "metrics"))
    for label in ("MSE", "RMSE", "MAE", "R²", "model", "baseline: least squares", "baseline: mean"):
        assert label in table
    assert f"{probe['metrics']['mse']:.6f}" in table
    assert probe["metrics"]["mse"] < probe["metrics"]["mean_mse"]
    report = _text(_cell(executed["notebook"], "report"))
    assert "<iframe srcdoc=" in report and "Boston Housing: evaluation" in report


def test_v1_and_v2_answers_equal_evaluates_predictions(executed):
    probe = executed["probe"]
    expected = np.asarray(probe["expected"])
    assert len(expected) == 5
    np.testing.assert_allclose(np.ravel(probe["v1"]["predictions"]), expected, atol=1e-5)
    np.testing.assert_allclose(probe["v2"]["outputs"][0]["data"], expected, atol=1e-5)
    curl = _text(_cell(executed["notebook"], "curl"))
    assert curl.count("curl -s -H 'Content-Type: application/json'") == 2


def test_the_notebook_explains_one_house_from_the_live_endpoint(executed):
    probe = executed["probe"]
    explanation = probe["explanation"]
    assert explanation["prediction"] == pytest.approx(probe["expected"][0], abs=1e-5)
    total = sum(explanation["contributions"].values())
    assert abs(total - (explanation["prediction"] - explanation["baseline"])) <= 1e-9
    assert len(explanation["contributions"]) == 13
    cell = _cell(executed["notebook"], "explain")
    assert any("image/png" in o.get("data", {}) for o in cell.outputs)
    assert probe["champion"] in probe["versions"]
    assert "verified: all" in _text(_cell(executed["notebook"], "registry"))


def test_without_kfp_host_the_cluster_section_explains_and_skips(executed):
    assert "KF_PIPELINES_ENDPOINT is not set" in _text(_cell(executed["notebook"], "submit"))
    assert "no run to follow" in _text(_cell(executed["notebook"], "wait"))


def test_the_notebook_stops_the_predictor_it_started(executed, state):
    pid, port = executed["probe"]["pid"], executed["port"]
    assert f"(pid {pid})" in _text(_cell(executed["notebook"], "cleanup"))
    assert wait_until(lambda: not is_running(pid), timeout_s=5)
    assert read_served(state, port) is None


def test_the_cluster_section_submits_the_compiled_file_to_kfp(state, tmp_path, monkeypatch):
    """Section 4 with KF_PIPELINES_ENDPOINT set, against the KFP REST API double: upload, run, follow to SUCCEEDED."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells = [c for c in notebook.cells if CLUSTER_TAGS & set(c.metadata.get("tags", []))]
    for name in KFP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # Two frames: one poll of a running run (one 5 s wait), then the finished one.
    with KfpApiDouble(run_script=SUCCEEDING_RUN[-2:]) as kfp:
        monkeypatch.setenv("KF_PIPELINES_ENDPOINT", kfp.url)
        _execute(notebook, tmp_path)
        run_page = f"{kfp.url}/#/runs/details/"
    (upload,) = kfp.calls("POST", f"{API}/pipelines/upload")
    (run,) = kfp.calls("POST", f"{API}/runs")
    compiled = state / "compiled" / DEFAULT_YAML
    assert upload.files["uploadfile"].content == compiled.read_bytes()  # the very file the notebook compiled
    assert not run.json.get("runtime_config", {}).get("parameters")  # the compiled defaults
    (run_id,) = kfp.runs
    assert run_page + run_id in _text(_cell(notebook, "submit"))
    assert f"run SUCCEEDED: {run_page}{run_id}" in _text(_cell(notebook, "wait"))


def test_the_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    dirty = [c.get("id") for c in notebook.cells
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, (f"cells {dirty} carry outputs: run "
                       f"`.venv/bin/jupyter nbconvert --clear-output --inplace {NOTEBOOK.relative_to(ROOT)}`")
    assert "widgets" not in notebook.metadata, "remove the saved widget state (metadata.widgets)"
    assert notebook.metadata.kernelspec.name == "python3"
