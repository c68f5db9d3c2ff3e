"""Submit the pipeline to Kubeflow Pipelines: upload it (a new version if it exists), then run or schedule it.

One code path for ``boston-pipeline submit``, the notebook and users' scripts::

    from pipeline.submit import describe_run, submit, wait_for_run

    result = submit("http://localhost:8080", params={"epochs": 500})
    print(result.url)
    print(describe_run(wait_for_run(result.client, result.run_id, on_change=print)))

``kfp.Client`` does the work, with its own settings (``KF_PIPELINES_ENDPOINT``, …); what this package adds is
what kfp lacks: ``package`` checks and types the run arguments against the compiled YAML, ``cron`` checks a
schedule, ``connection`` fails fast with one line naming what to check, ``submission`` uploads, starts and follows
a run step by step, and ``cli`` is ``boston-pipeline submit``. Bad input is a ``ValueError``; a refusing or
unreachable server a ``OneLineError``. kfp is imported inside the functions: importing this package is cheap.
"""

from pipeline.submit.connection import (
    ENV_COOKIES,
    ENV_HOST,
    ENV_NAMESPACE,
    ENV_TOKEN,
    ENV_TOKEN_FILE,
    ENV_UI_HOST,
    connect,
    resolve_host,
)
from pipeline.submit.cron import CRON_HELP, validate_cron
from pipeline.submit.package import ParameterSpec, PipelinePackage, coerce_parameters, load_package, struct_keys
from pipeline.submit.submission import (
    DEFAULT_EXPERIMENT,
    DEFAULT_POLL_S,
    DEFAULT_WAIT_TIMEOUT_S,
    FAILED_STATES,
    StateChange,
    SubmitResult,
    describe_run,
    submit,
    wait_for_run,
)

__all__ = [
    "CRON_HELP", "DEFAULT_EXPERIMENT", "DEFAULT_POLL_S", "DEFAULT_WAIT_TIMEOUT_S", "ENV_COOKIES", "ENV_HOST",
    "ENV_NAMESPACE", "ENV_TOKEN", "ENV_TOKEN_FILE", "ENV_UI_HOST", "FAILED_STATES", "ParameterSpec",
    "PipelinePackage", "StateChange", "SubmitResult", "coerce_parameters", "connect", "describe_run",
    "load_package", "resolve_host", "struct_keys", "submit", "validate_cron", "wait_for_run",
]
