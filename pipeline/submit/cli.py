"""``boston-pipeline submit``: upload the pipeline to Kubeflow Pipelines and start a run or a recurring run.

``pipeline.cli`` registers it with ``add_submit_parser(commands)`` and ``COMMANDS["submit"] = cmd_submit``, and
shows bad input and refusals (``ValueError``, ``OneLineError``, ``OSError``) as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from pipeline import config
from pipeline import submit as api
from pipeline.submit import connection

EXIT_RUN_FAILED = 1
EXIT_WAIT_TIMEOUT = 124  # as timeout(1) does

_DESCRIPTION = f"""\
Upload the pipeline to Kubeflow Pipelines (a new version when a pipeline with that name exists), get or create
the experiment, and start a run (or, with --recurring, a scheduled one). Prints the run's URL in the KFP UI.
Without --yaml the project's pipeline is compiled first; parameters are checked against it before anything is
sent. The environment variables are kfp's own, except ${api.ENV_COOKIES}.
"""
_EPILOG = f"""\
examples:
  kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80 &
  boston-pipeline submit --host http://localhost:8080 --param epochs=500 --wait
  {api.ENV_HOST}=https://kubeflow.example.com/pipeline {api.ENV_COOKIES}="authservice_session=…" \\
      boston-pipeline submit --namespace kubeflow-user-example-com --experiment nightly
  boston-pipeline submit --host http://localhost:8080 --recurring "0 0 3 * * *"   # every day at 03:00
  boston-pipeline submit --yaml boston_housing_pipeline.yaml --list-params

exit codes: 0 submitted (with --wait: the run succeeded), 1 the run failed or was canceled,
            2 not submitted (bad option, parameter, host or credentials), 124 --wait timed out
"""


def add_submit_parser(subcommands: Any) -> argparse.ArgumentParser:
    """Adds the ``submit`` subcommand to a ``add_subparsers()`` object and returns its parser."""
    parser = subcommands.add_parser(
        "submit", help="upload the pipeline to Kubeflow Pipelines and start a run (or a recurring run)",
        description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_argument_group("where")
    where.add_argument("--host", metavar="URL", help=f"KFP API base URL (default: ${api.ENV_HOST}), e.g. "
                       "http://localhost:8080 after the port-forward above, or https://<kubeflow>/pipeline")
    where.add_argument("--namespace", metavar="NS", help="your profile namespace on multi-user Kubeflow (default: "
                       f"${api.ENV_NAMESPACE}, else kfp's context or the notebook pod's); leave out for standalone KFP")
    where.add_argument("--ui-host", metavar="URL", help="KFP UI base URL for the printed links (default: "
                       f"${api.ENV_UI_HOST}, else --host)")
    what = parser.add_argument_group("what")
    what.add_argument("--pipeline-name", metavar="NAME", help="pipeline name in KFP (default: the compiled "
                      f"pipeline's, {config.PIPELINE_NAME!r}); a new version is uploaded when it exists")
    what.add_argument("--yaml", type=Path, metavar="FILE", help="upload this compiled pipeline instead of compiling")
    what.add_argument("--image", metavar="IMAGE", help=f"component image when compiling (default: {config.IMAGE})")
    what.add_argument("--param", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                      help="a pipeline parameter, repeatable: --param epochs=500, or one key of the serving struct: "
                           "--param serving.min_replicas=2; converted to the declared type (see --list-params)")
    what.add_argument("--list-params", action="store_true", help="print the pipeline's parameters and exit")
    what.add_argument("--experiment", default=api.DEFAULT_EXPERIMENT, metavar="NAME",
                      help="experiment to run in, created if missing (default: %(default)r)")
    what.add_argument("--run-name", metavar="NAME", help="default: the pipeline name and the UTC time")
    what.add_argument("--run-service-account", metavar="NAME",
                      help="service account of the run's pods (default: the namespace's pipeline runner; not "
                           "serving.service_account, the predictor's); deploying needs one that manages "
                           "InferenceServices")
    auth = parser.add_argument_group(
        "authentication", f"At most one of --token / --token-file, and --cookies if needed. Without any of them:\n"
        f"${api.ENV_TOKEN}, ${api.ENV_TOKEN_FILE}, ${api.ENV_COOKIES}, else in a Kubeflow notebook its\n"
        f"projected token {connection.IN_CLUSTER_TOKEN_FILE}.")
    auth.add_argument("--token", help=f"bearer token (prefer ${api.ENV_TOKEN}, kept out of the shell history)")
    auth.add_argument("--token-file", type=Path, metavar="FILE", help="file holding a token, read on every request")
    auth.add_argument("--cookies", help="Cookie header for Kubeflow's login, e.g. 'authservice_session=…'")
    follow = parser.add_argument_group("follow the run")
    follow.add_argument("--wait", action="store_true", help="print each state change of the run and its steps "
                        "until it ends; exit 1 if it fails")
    follow.add_argument("--timeout", type=_positive(float), metavar="SECONDS", help="how long --wait follows "
                        f"(default: {api.DEFAULT_WAIT_TIMEOUT_S:g}); the run itself goes on")
    follow.add_argument("--poll-interval", type=_positive(float), metavar="SECONDS",
                        help=f"seconds between polls (default: {api.DEFAULT_POLL_S:g})")
    schedule = parser.add_argument_group("schedule")
    schedule.add_argument("--recurring", metavar="CRON", help=f"a recurring run instead: {api.CRON_HELP}; @daily "
                          "and '@every 12h' work too. Missed runs are not caught up")
    schedule.add_argument("--max-concurrency", type=_positive(int), default=1, metavar="N",
                          help="recurring runs at the same time, 1 to 10 (default: 1)")
    return parser


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        with contextlib.suppress(ValueError):
            if (value := kind(text)) > 0:
                return value
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")

    return parse


def cmd_submit(args: argparse.Namespace) -> int:
    """Runs ``submit``. A failed run exits 1 and a --wait timeout 124, each with one line on stderr; bad input and
    refusals are raised for ``pipeline.cli`` to show (exit 2)."""
    params: dict[str, str] = {}
    for key, value in args.param:
        if key in params:
            raise ValueError(f"--param {key} is given twice")
        params[key] = value
    if args.list_params:
        return _list_params(args)
    if args.wait and args.recurring is not None:
        raise ValueError("--wait follows one run; it cannot be combined with --recurring")
    if not args.wait and (args.timeout is not None or args.poll_interval is not None):
        raise ValueError("--timeout and --poll-interval apply to --wait")
    result = api.submit(
        args.host, params=params, experiment=args.experiment, run_name=args.run_name,
        pipeline_name=args.pipeline_name, pipeline_yaml=args.yaml, image=args.image, namespace=args.namespace,
        existing_token=args.token, token_file=args.token_file, cookies=args.cookies, recurring=args.recurring,
        max_concurrency=args.max_concurrency, run_service_account=args.run_service_account, ui_host=args.ui_host,
        progress=_stage,
    )
    _print_result(result, args)
    if not args.wait:
        return 0
    timeout = args.timeout or api.DEFAULT_WAIT_TIMEOUT_S
    _stage(f"following the run for up to {timeout:g} s (Ctrl-C stops following, not the run)")
    try:
        run = api.wait_for_run(result.client, str(result.run_id), timeout=timeout,
                               poll_seconds=args.poll_interval or api.DEFAULT_POLL_S,
                               on_change=lambda change: print(f"    {change}", flush=True))
    except TimeoutError as exc:
        return _error(f"{exc}; follow it at {result.url}", EXIT_WAIT_TIMEOUT)
    except KeyboardInterrupt:
        return _error(f"interrupted; the run goes on: {result.url}", 130)
    if str(run.state).upper() in api.FAILED_STATES:
        return _error(f"{api.describe_run(run)} (details: {result.url})", EXIT_RUN_FAILED)
    print(f"run {run.state}: {result.url}")
    return 0


def _list_params(args: argparse.Namespace) -> int:
    import tempfile

    from pipeline.runner import DEFAULT_YAML, compile_pipeline

    with tempfile.TemporaryDirectory(prefix="boston-submit-") as folder:
        package = api.load_package(args.yaml or compile_pipeline(Path(folder) / DEFAULT_YAML, image=args.image))
    print(f"parameters of pipeline {package.name!r} (pass as --param KEY=VALUE):")
    for spec in package.parameters.values():
        keys = api.struct_keys(spec)
        default = "required" if spec.default is None and not spec.optional else f"default {spec.default!r}"
        if keys:
            default = f"{len(keys)} keys below (--param {spec.name}.KEY=VALUE)"
        about = " ".join(spec.description.split())
        print(f"  {spec.name:<20} {spec.type:<15} {default}" + (f"  - {about}" if about else ""))
        for key in keys:
            print(f"    {key.name:<30} {key.type:<15} default {key.default!r}")
    return 0


def _print_result(result: api.SubmitResult, args: argparse.Namespace) -> None:
    status = "new pipeline" if result.new_pipeline else "new version of the existing pipeline"
    chosen = ", ".join(f"{k}={v!r}" for k, v in result.parameters.items()) or "none"
    where = f" in namespace {result.namespace}" if result.namespace else ""
    if result.recurring_run_id:
        started = (f"recurring:  {result.run_name} (id {result.recurring_run_id}), schedule {args.recurring!r}, "
                   f"at most {args.max_concurrency} at a time")
    else:
        started = f"run:        {result.run_name} (id {result.run_id})"
    print(f"pipeline:   {result.pipeline_version_name} ({status}; id {result.pipeline_id})\n"
          f"experiment: {result.experiment} (id {result.experiment_id}){where}\n"
          f"parameters: {chosen} (the others keep the pipeline's defaults)\n{started}\nURL:        {result.url}",
          flush=True)


def _stage(message: str) -> None:
    print(f"==> {message}", flush=True)


def _error(message: str, code: int) -> int:
    print(f"boston-pipeline submit: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return code
