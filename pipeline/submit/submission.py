"""Submitting: upload the compiled pipeline (a new version when the name exists), then start a run or a schedule.

Everything that can be checked locally (the YAML, the parameters, the cron) is checked before the server is
contacted.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import config
from pipeline.submit.connection import ENV_NAMESPACE, connect, host_of, remote_call, require_id, resolve_host
from pipeline.submit.errors import SubmitError
from pipeline.submit.package import PipelinePackage, coerce_parameters, load_package
from pipeline.submit.schedule import validate_cron

if TYPE_CHECKING:
    import kfp

DEFAULT_EXPERIMENT = config.PIPELINE_NAME


@dataclass(frozen=True)
class SubmitResult:
    """What ``submit`` created.

    Attributes:
        url: The run's page in the KFP UI (or the recurring run's page).
        client: The connected ``kfp.Client`` (pass it to ``wait_for_run``).
    """

    host: str
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


def run_url(ui_host: str, run_id: str) -> str:
    """The KFP UI page of a run."""
    return f"{ui_host.rstrip('/')}/#/runs/details/{run_id}"


def recurring_run_url(ui_host: str, recurring_run_id: str) -> str:
    """The KFP UI page of a recurring run."""
    return f"{ui_host.rstrip('/')}/#/recurringrun/details/{recurring_run_id}"


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
    client: kfp.Client | None = None,
    progress: Callable[[str], None] | None = None,
) -> SubmitResult:
    """Uploads the pipeline (a new version if the name exists) and starts a run, or a recurring run.

    Args:
        host: KFP API base URL (default ``$KFP_HOST``), e.g. ``http://localhost:8080``.
        params: Run arguments by parameter name; strings are converted to the declared types.
        experiment: Experiment name; created if missing.
        run_name: Run (or recurring run) name; default: the pipeline name and the UTC time.
        pipeline_name: Name of the pipeline in KFP; default: the compiled pipeline's name.
        pipeline_yaml: A compiled pipeline to upload; default: compile the project's pipeline now.
        image: Component image when compiling (default ``config.IMAGE``).
        namespace: Profile namespace on multi-user Kubeflow (default ``$KFP_NAMESPACE``); the pipeline, the
            experiment and the run are created there.
        existing_token: Bearer token (default ``$KFP_TOKEN``).
        token_file: Token file, e.g. a projected service-account token (default ``$KFP_TOKEN_FILE``).
        cookies: Cookie header value, e.g. ``authservice_session=…`` (default ``$KFP_COOKIES``).
        recurring: A 6-field KFP cron expression: create a recurring run instead of one run.
        max_concurrency: Recurring runs allowed at once.
        run_service_account: Kubernetes service account the run's pods use (default: the namespace's pipeline
            runner). Not the ``serving`` parameter's ``service_account`` key, which is the predictor's.
        ui_host: Base URL of the KFP UI for links, when it differs from ``host``.
        client: An already connected ``kfp.Client`` (then host and credentials are not used).
        progress: Called with a short line before each remote step.

    Raises:
        SubmitError: Anything that stops the submission; its subclasses say what (ParameterError, CronError,
            KfpConnectionError, KfpAuthError, KfpApiError).
    """
    say = progress or (lambda _line: None)
    cron = validate_cron(recurring) if recurring is not None else None
    if max_concurrency < 1:
        raise SubmitError(f"max_concurrency must be at least 1, got {max_concurrency}")
    if pipeline_yaml is not None and image is not None:
        raise SubmitError("an image applies only when compiling; recompile the YAML with that image instead")
    with contextlib.ExitStack() as stack:
        if pipeline_yaml is None:
            from pipeline.runner import DEFAULT_YAML, compile_pipeline

            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="boston-submit-")))
            say("compiling the pipeline")
            pipeline_yaml = compile_pipeline(folder / DEFAULT_YAML, image=image)
        package = load_package(pipeline_yaml)
        arguments = coerce_parameters(package, params or {})
        if client is None:
            say(f"connecting to {resolve_host(host)}")
            client = connect(host, namespace=namespace, existing_token=existing_token, token_file=token_file,
                             cookies=cookies, ui_host=ui_host)
        host = host_of(client)
        auth = getattr(client, "boston_auth", None)
        with remote_call(host, "checking the API (healthz)", namespace, auth):
            health = client.get_kfp_healthz()
        namespace = namespace or os.environ.get(ENV_NAMESPACE) or client.get_user_namespace() or None
        errors = functools.partial(remote_call, host, namespace=namespace, auth=auth)
        if getattr(health, "multi_user", False) and not namespace:
            raise SubmitError(f"{host} is a multi-user Kubeflow: give --namespace (your profile namespace, "
                              f"e.g. kubeflow-user-example-com) or set {ENV_NAMESPACE}")
        name = pipeline_name or package.name
        say(f"uploading pipeline {name!r}")
        pipeline_id, version_id, version_name, new = _upload(client, package, name, namespace, host, errors)
        with errors(f"getting or creating experiment {experiment!r}"):
            experiment_id = require_id(client.create_experiment(experiment, namespace=namespace).experiment_id,
                                     "experiment id", host)
        ui = (getattr(client, "boston_ui_host", None) or getattr(client, "_uihost", None) or host).rstrip("/")
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        common = dict(experiment_id=experiment_id, params=arguments, pipeline_id=pipeline_id, version_id=version_id,
                      service_account=run_service_account)
        shared = dict(host=host, pipeline_id=pipeline_id, pipeline_version_id=version_id,
                      pipeline_version_name=version_name, new_pipeline=new, experiment=experiment,
                      experiment_id=experiment_id, parameters=arguments, namespace=namespace, client=client)
        if cron is None:
            run_name = run_name or f"{name} {stamp}"
            say(f"starting run {run_name!r}")
            with errors(f"creating run {run_name!r}"):
                run = client.run_pipeline(job_name=run_name, **common)
            run_id = require_id(run.run_id, "run id", host)
            return SubmitResult(**shared, run_name=run_name, url=run_url(ui, run_id), run_id=run_id)
        run_name = run_name or f"{name} retraining ({cron})"
        say(f"creating recurring run {run_name!r}")
        with errors(f"creating recurring run {run_name!r}"):
            recurring_run = client.create_recurring_run(
                job_name=run_name, cron_expression=cron, max_concurrency=max_concurrency,
                # Retraining needs the latest data, not one run per missed slot after a pause.
                no_catchup=True, description=f"{package.display_name}: scheduled retraining", **common)
        recurring_id = require_id(recurring_run.recurring_run_id, "recurring run id", host)
        return SubmitResult(**shared, run_name=run_name, url=recurring_run_url(ui, recurring_id),
                            recurring_run_id=recurring_id)


def _upload(
    client: Any, package: PipelinePackage, name: str, namespace: str | None, host: str,
    errors: Callable[[str], contextlib.AbstractContextManager[None]],
) -> tuple[str, str, str, bool]:
    """Uploads a new pipeline, or a new version of the pipeline with this name; returns ids, version name, new?"""
    flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    with errors(f"looking up pipeline {name!r}"):
        found = client.list_pipelines(filter=flt, namespace=namespace, page_size=2).pipelines or []
    if len(found) > 1:
        raise SubmitError(f"{host} has {len(found)} pipelines named {name!r}; pass --pipeline-name to choose another")
    if not found:
        with errors(f"uploading pipeline {name!r}"):
            pipeline = client.upload_pipeline(str(package.path), pipeline_name=name,
                                              description=package.description, namespace=namespace)
        pipeline_id = require_id(pipeline.pipeline_id, "pipeline id", host)
        with errors(f"reading the first version of pipeline {name!r}"):
            # The upload creates the pipeline and its first version; the answer only carries the pipeline.
            versions = client.list_pipeline_versions(pipeline_id, sort_by="created_at desc", page_size=1)
        version = (versions.pipeline_versions or [None])[0]
        version_id = require_id(getattr(version, "pipeline_version_id", None), "pipeline version id", host)
        return pipeline_id, version_id, str(version.display_name or version.name or name), True
    pipeline_id = require_id(found[0].pipeline_id, "pipeline id", host)
    # Version names must be unique in a pipeline: time plus content hash, readable in the UI's version list.
    version_name = f"{name}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{package.sha256[:8]}"
    with errors(f"uploading version {version_name!r} of pipeline {name!r}"):
        version = client.upload_pipeline_version(
            str(package.path), version_name, pipeline_id=pipeline_id,
            description=f"spec sha256 {package.sha256}",
        )
    return pipeline_id, require_id(version.pipeline_version_id, "pipeline version id", host), version_name, False
