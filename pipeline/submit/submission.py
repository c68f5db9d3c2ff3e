"""Submitting: upload the compiled pipeline (a new version when the name exists), start a run or a schedule, follow it.

``kfp.Client`` makes every call: the upload, the experiment (got or created), the run or the recurring run. What is
ours: the checks made before anything is sent (parameters, cron), and following a run step by step, which kfp's
``wait_for_run_completion`` does not do (it reports only the end, gives up at the first failed poll, and calls a
run that ends on the poll after the deadline timed out).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from boston_model.errors import OneLineError, first_line
from pipeline import config
from pipeline.submit.connection import AUTH_HINT, ENV_NAMESPACE, ENV_UI_HOST, connect, remote_call, resolve_host
from pipeline.submit.cron import validate_cron
from pipeline.submit.package import PipelinePackage, coerce_parameters, load_package

DEFAULT_EXPERIMENT = config.PIPELINE_NAME
DEFAULT_WAIT_TIMEOUT_S = 3600.0
DEFAULT_POLL_S = 5.0
FAILED_STATES = frozenset({"FAILED", "CANCELED"})
FINAL_STATES = FAILED_STATES | {"SUCCEEDED", "SKIPPED"}
MAX_POLL_FAILURES = 3  # failed polls in a row a wait tolerates (a proxy restarting during an hour-long run)


@dataclass(frozen=True)
class SubmitResult:
    """What ``submit`` created.

    Attributes:
        url: The run's page in the KFP UI (or the recurring run's page).
        client: The connected ``kfp.Client`` (pass it to ``wait_for_run``).
    """

    pipeline_id: str
    pipeline_version_id: str
    pipeline_version_name: str
    new_pipeline: bool
    experiment: str
    experiment_id: str
    run_name: str
    parameters: dict[str, Any]
    url: str
    run_id: str | None = None
    recurring_run_id: str | None = None
    namespace: str | None = None
    client: Any = field(default=None, repr=False, compare=False)


class StateChange(NamedTuple):
    """A run (``subject`` "run") or one of its steps (its display name) entered a new state."""

    subject: str
    state: str
    elapsed_s: float

    def __str__(self) -> str:
        return f"[{self.elapsed_s:5.0f}s] {self.subject}: {self.state}"


def submit(
    host: str | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    pipeline_name: str | None = None,
    pipeline_yaml: str | Path | None = None,
    image: str | None = None,
    namespace: str | None = None,
    existing_token: str | None = None,
    token_file: str | Path | None = None,
    cookies: str | None = None,
    recurring: str | None = None,
    max_concurrency: int = 1,
    run_service_account: str | None = None,
    ui_host: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> SubmitResult:
    """Uploads the pipeline (a new version if the name exists) and starts a run, or a recurring run.

    Args:
        host: KFP API base URL (default ``$KF_PIPELINES_ENDPOINT``), e.g. ``http://localhost:8080``.
        params: Run arguments by parameter name; strings are converted to the declared types.
        experiment, run_name, pipeline_name: Names in KFP; by default the experiment is the project's (created if
            missing), the run is named after the pipeline and the UTC time, the pipeline is the compiled one's.
        pipeline_yaml, image: A compiled pipeline to upload, or else the image to compile the project's with.
        namespace, existing_token, token_file, cookies: Where and who, as ``connect`` takes them; the namespace
            defaults to ``$KFP_NAMESPACE``, else the notebook pod's.
        recurring, max_concurrency: A 6-field KFP cron: a recurring run instead of one run, at most so many at once.
        run_service_account: Service account of the run's pods (not ``serving.service_account``, the predictor's).
        ui_host: Base URL of the KFP UI for links (default ``$KF_PIPELINES_UI_ENDPOINT``, else ``host``).
        progress: Called with a short line before each remote step.

    Raises:
        ValueError: Bad input (parameters, cron, host, credentials, a missing namespace); nothing was sent.
        OneLineError: The KFP API could not be reached or refused a call.
    """
    say = progress or (lambda _line: None)
    cron = validate_cron(recurring) if recurring is not None else None
    if pipeline_yaml is not None and image is not None:
        raise ValueError("an image applies only when compiling; recompile the YAML with that image instead")
    with tempfile.TemporaryDirectory(prefix="boston-submit-") as folder:
        if pipeline_yaml is None:
            from pipeline.runner import DEFAULT_YAML, compile_pipeline

            say("compiling the pipeline")
            pipeline_yaml = compile_pipeline(Path(folder) / DEFAULT_YAML, image=image)
        package = load_package(pipeline_yaml)
        arguments = coerce_parameters(package, params or {})
        host = resolve_host(host)
        say(f"connecting to {host}")
        namespace = namespace or os.environ.get(ENV_NAMESPACE) or None
        client = connect(host, namespace=namespace, existing_token=existing_token, token_file=token_file,
                         cookies=cookies)
        with remote_call(host, "checking the API (healthz)", namespace):
            multi_user = client.get_kfp_healthz().multi_user
        namespace = namespace or client.get_user_namespace() or None  # kfp reads a notebook pod's namespace
        if multi_user and not namespace:
            raise ValueError(f"{host} is a multi-user Kubeflow: give --namespace (your profile namespace, e.g. "
                             f"kubeflow-user-example-com) or set {ENV_NAMESPACE}")
        name = pipeline_name or package.name
        say(f"uploading pipeline {name!r}")
        pipeline_id, version_id, version_name, new = _upload(client, host, package, name, namespace)
        with remote_call(host, f"getting or creating experiment {experiment!r}", namespace):
            experiment_id = _id(client.create_experiment(experiment, namespace=namespace).experiment_id, host)
        ui = (ui_host or os.environ.get(ENV_UI_HOST) or host).rstrip("/")
        job = dict(experiment_id=experiment_id, params=arguments, pipeline_id=pipeline_id, version_id=version_id,
                   service_account=run_service_account)
        done = dict(
            pipeline_id=pipeline_id, pipeline_version_id=version_id, pipeline_version_name=version_name,
            new_pipeline=new, experiment=experiment, experiment_id=experiment_id, parameters=arguments,
            namespace=namespace, client=client)
        if cron is None:
            run_name = run_name or f"{name} {datetime.now(UTC):%Y-%m-%d %H:%M:%S UTC}"
            say(f"starting run {run_name!r}")
            with remote_call(host, f"creating run {run_name!r}", namespace):
                run_id = _id(client.run_pipeline(job_name=run_name, **job).run_id, host)
            return SubmitResult(**done, run_name=run_name, url=f"{ui}/#/runs/details/{run_id}", run_id=run_id)
        run_name = run_name or f"{name} retraining ({cron})"
        say(f"creating recurring run {run_name!r}")
        with remote_call(host, f"creating recurring run {run_name!r}", namespace):
            recurring_id = _id(client.create_recurring_run(
                job_name=run_name, cron_expression=cron, max_concurrency=max_concurrency,
                # Retraining needs the latest data, not one run per missed slot after a pause.
                no_catchup=True, description=f"{package.display_name}: scheduled retraining", **job,
            ).recurring_run_id, host)
        return SubmitResult(**done, run_name=run_name, url=f"{ui}/#/recurringrun/details/{recurring_id}",
                            recurring_run_id=recurring_id)


def _upload(client: Any, host: str, package: PipelinePackage, name: str,
            namespace: str | None) -> tuple[str, str, str, bool]:
    """Uploads a new pipeline, or a new version of the pipeline with this name; returns ids, version name, new?"""
    # kfp's get_pipeline_id looks outside the namespace, so the lookup is made here.
    flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    with remote_call(host, f"uploading pipeline {name!r}", namespace):
        found = client.list_pipelines(filter=flt, namespace=namespace, page_size=2).pipelines or []
        if len(found) > 1:
            raise OneLineError(f"{host} has {len(found)} pipelines named {name!r}; choose another with "
                               "--pipeline-name")
        if not found:
            pipeline_id = _id(client.upload_pipeline(str(package.path), pipeline_name=name, namespace=namespace,
                                                     description=package.description).pipeline_id, host)
            # The upload creates the pipeline and its first version; the answer only carries the pipeline.
            first = client.list_pipeline_versions(pipeline_id, page_size=1).pipeline_versions or [None]
            return pipeline_id, _id(getattr(first[0], "pipeline_version_id", None), host), name, True
        # Version names must be unique in a pipeline: time plus content hash, readable in the UI's version list.
        version_name = f"{name}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{package.sha256[:8]}"
        version = client.upload_pipeline_version(str(package.path), version_name, pipeline_id=found[0].pipeline_id,
                                                 description=f"spec sha256 {package.sha256}")
    return _id(found[0].pipeline_id, host), _id(version.pipeline_version_id, host), version_name, False


def _id(value: str | None, host: str) -> str:
    """Guards against an answer without an id: an auth proxy's login page parses as an empty object."""
    if not value:
        raise OneLineError(f"{host} answered without an id: is --host the KFP API? An auth proxy may have answered "
                           f"instead; {AUTH_HINT}")
    return value


def wait_for_run(
    client: Any, run_id: str, *, timeout: float = DEFAULT_WAIT_TIMEOUT_S, poll_seconds: float = DEFAULT_POLL_S,
    on_change: Callable[[StateChange], None] | None = None,
) -> Any:
    """Follows a run until it ends, reporting each state change of the run and of its steps.

    Args:
        client: A connected ``kfp.Client`` (``SubmitResult.client``).
        run_id: The run to follow.
        timeout: Seconds to wait at most; the run itself is not stopped.
        poll_seconds: Seconds between polls.
        on_change: Called with every state change, in order.

    Returns:
        The finished run, whatever its state, as kfp's ``wait_for_run_completion`` returns it (``describe_run``
        says how it ended in one line).

    Raises:
        TimeoutError: The timeout ran out first.
        OneLineError: The API could not be read (a few polls in a row without an answer or with a 5xx are fine).
    """
    host = getattr(client, "host", "the KFP API")
    report = on_change or (lambda _change: None)
    started = time.monotonic()
    seen: dict[str, str] = {}
    failures, state = 0, ""
    while True:
        try:
            with remote_call(host, f"reading run {run_id}"):
                run = client.get_run(run_id)
        except OneLineError as exc:
            status = getattr(exc.__cause__, "status", None) or 0  # kfp_server_api.ApiException's; 0: no answer
            failures += 1
            if 0 < status < 500 or failures > MAX_POLL_FAILURES:
                raise
        else:
            failures, state = 0, str(run.state or "").upper()
            for change in _changes(run, state, seen, time.monotonic() - started):
                report(change)
            if state in FINAL_STATES:
                return run
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            raise TimeoutError(f"run {run_id} still {state or 'not started'} after {timeout:g} s (stopped waiting; "
                               "the run goes on)")
        time.sleep(min(poll_seconds, left))  # the last poll happens when the timeout runs out, not after


def describe_run(run: Any) -> str:
    """One line on how a run ended: its state, the steps that failed and the run's error message."""
    failed = [t.display_name for t in _tasks(run) if str(t.state or "").upper() == "FAILED"]
    message = first_line(getattr(getattr(run, "error", None), "message", None) or "")
    return (f"run {run.run_id} {str(run.state or '').upper()}" + (f" in step(s) {', '.join(failed)}" if failed else "")
            + (f": {message}" if message else ""))


def _tasks(run: Any) -> list[Any]:
    details = getattr(run, "run_details", None)
    return [t for t in (getattr(details, "task_details", None) or []) if getattr(t, "display_name", None)]


def _changes(run: Any, state: str, seen: dict[str, str], elapsed: float) -> list[StateChange]:
    """New states since the last poll; the run's own change comes first, or last when the run has ended."""
    tasks = []
    for task in _tasks(run):
        task_state = str(task.state or "").upper()
        if task_state and seen.get(f"task:{task.display_name}") != task_state:
            seen[f"task:{task.display_name}"] = task_state
            tasks.append(StateChange(task.display_name, task_state, elapsed))
    if not state or seen.get("run") == state:
        return tasks
    seen["run"] = state
    own = StateChange("run", state, elapsed)
    return tasks + [own] if state in FINAL_STATES else [own, *tasks]
