"""Submit the pipeline to Kubeflow Pipelines: upload it (a new version if it exists), then run or schedule it.

One code path for ``boston-pipeline submit``, the notebook and users' scripts::

    from pipeline.submit import submit, wait_for_run

    result = submit("http://localhost:8080", params={"epochs": 500})
    print(result.url)
    wait_for_run(result.client, result.run_id, on_change=print)

The modules, one concern each: ``package`` (the compiled YAML and its typed parameters), ``schedule`` (cron),
``connection`` (host, credentials, the client, kfp's errors as one line), ``submission`` (upload and start),
``follow`` (poll a run), ``errors`` (the ``SubmitError`` family) and ``cli`` (``boston-pipeline submit``).
Server and network failures become a ``SubmitError`` whose message is one line naming the host and what to check.
kfp and kfp_server_api are imported inside the functions: importing this package is cheap.
"""

from pipeline.submit.connection import (
    AUTH_HINT,
    ENV_COOKIES,
    ENV_HOST,
    ENV_NAMESPACE,
    ENV_TOKEN,
    ENV_TOKEN_FILE,
    KFP_ENV_HOST,
    KFP_ENV_TOKEN_FILE,
    KFP_ENV_UI_HOST,
    Auth,
    check_reachable,
    connect,
    resolve_auth,
    resolve_host,
)
from pipeline.submit.errors import (
    CronError,
    KfpApiError,
    KfpAuthError,
    KfpConnectionError,
    ParameterError,
    RunFailedError,
    RunTimeoutError,
    SubmitError,
)
from pipeline.submit.follow import DEFAULT_POLL_S, DEFAULT_WAIT_TIMEOUT_S, StateChange, wait_for_run
from pipeline.submit.package import ParameterSpec, PipelinePackage, coerce_parameters, load_package, struct_keys
from pipeline.submit.schedule import CRON_HELP, validate_cron
from pipeline.submit.submission import DEFAULT_EXPERIMENT, SubmitResult, recurring_run_url, run_url, submit

__all__ = [
    "AUTH_HINT", "CRON_HELP", "DEFAULT_EXPERIMENT", "DEFAULT_POLL_S", "DEFAULT_WAIT_TIMEOUT_S", "ENV_COOKIES",
    "ENV_HOST", "ENV_NAMESPACE", "ENV_TOKEN", "ENV_TOKEN_FILE", "KFP_ENV_HOST", "KFP_ENV_TOKEN_FILE",
    "KFP_ENV_UI_HOST", "Auth", "CronError", "KfpApiError", "KfpAuthError", "KfpConnectionError", "ParameterError",
    "ParameterSpec", "PipelinePackage", "RunFailedError", "RunTimeoutError", "StateChange", "SubmitError",
    "SubmitResult", "check_reachable", "coerce_parameters", "connect", "load_package", "recurring_run_url",
    "resolve_auth", "resolve_host", "run_url", "struct_keys", "submit", "validate_cron", "wait_for_run",
]
