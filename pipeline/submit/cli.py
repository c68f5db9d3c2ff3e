"""``boston-pipeline submit``: upload the pipeline to Kubeflow Pipelines and start a run or a recurring run.

``pipeline.cli`` registers it with ``add_submit_parser(commands)`` and ``COMMANDS["submit"] = cmd_submit``;
``main(argv)`` runs the subcommand on its own (tests, ``python -m pipeline.submit.cli``). The work is done by
the ``pipeline.submit`` package (cheap to import: kfp is loaded only when the command runs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline import config
from pipeline import submit as api

PROG = "boston-pipeline submit"
EXIT_RUN_FAILED = 1
EXIT_SUBMIT_ERROR = 2
EXIT_WAIT_TIMEOUT = 124  # as timeout(1) does

_DESCRIPTION = """\
Upload the pipeline to Kubeflow Pipelines (a new version when a pipeline with that name exists), get or create
the experiment, and start a run (or, with --recurring, a scheduled one). Prints the run's URL in the KFP UI.
Without --yaml the project's pipeline is compiled first; parameters are checked against the compiled pipeline
before anything is sent.
"""
_EPILOG = """\
examples:
  kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80 &
  boston-pipeline submit --host http://localhost:8080 --param epochs=500 --wait
  KFP_HOST=https://kubeflow.example.com/pipeline KFP_COOKIES="authservice_session=…" \\
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
        description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """A parser for the submit options alone (what ``main`` uses)."""
    parser = argparse.ArgumentParser(prog=PROG, description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    return parser


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where")
    where.add_argument("--host", metavar="URL",
                       help="Kubeflow Pipelines API base URL (default: $KFP_HOST), e.g. http://localhost:8080 after "
                            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`, or "
                            "https://<kubeflow>/pipeline")
    where.add_argument("--namespace", metavar="NS",
                       help="your profile namespace on multi-user Kubeflow (default: $KFP_NAMESPACE); the pipeline, "
                            "experiment and runs are created there. Leave out for standalone KFP")
    where.add_argument("--ui-host", metavar="URL",
                       help="base URL of the KFP UI for the printed links, when it differs from --host "
                            "(default: $KF_PIPELINES_UI_ENDPOINT, else --host)")

    what = parser.add_argument_group("what")
    what.add_argument("--pipeline-name", metavar="NAME",
                      help=f"pipeline name in KFP (default: the compiled pipeline's name, {config.PIPELINE_NAME!r}); "
                           "a new version is uploaded when it exists")
    what.add_argument("--yaml", type=Path, metavar="FILE",
                      help="upload this compiled pipeline (e.g. boston_housing_pipeline.yaml) instead of compiling")
    what.add_argument("--image", metavar="IMAGE",
                      help=f"component image when compiling (default: {config.IMAGE})")
    what.add_argument("--param", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                      help="a pipeline parameter, repeatable, e.g. --param epochs=500 --param max_rmse=5.5; one key of "
                           "the serving struct as --param serving.min_replicas=2; checked against the pipeline's "
                           "parameters and converted to their types (see --list-params)")
    what.add_argument("--list-params", action="store_true",
                      help="print the pipeline's parameters (type, default, description) and exit")
    what.add_argument("--experiment", default=api.DEFAULT_EXPERIMENT, metavar="NAME",
                      help="experiment to run in, created if missing (default: %(default)r)")
    what.add_argument("--run-name", metavar="NAME",
                      help="name of the run or recurring run (default: pipeline name and UTC time)")
    what.add_argument("--run-service-account", metavar="NAME",
                      help="Kubernetes service account the run's pods use (default: the namespace's pipeline "
                           "runner); the deploy step needs one allowed to manage InferenceServices. Not the same as "
                           "--param serving.service_account=…, the predictor's account")

    auth = parser.add_argument_group(
        "authentication",
        "Give at most one of --token / --token-file; --cookies may be added. Without any of them,\n"
        "$KFP_TOKEN, $KFP_TOKEN_FILE (or $KF_PIPELINES_SA_TOKEN_PATH) and $KFP_COOKIES are used, and inside a\n"
        "Kubeflow notebook the projected token /var/run/secrets/kubeflow/pipelines/token.")
    auth.add_argument("--token", metavar="TOKEN",
                      help="bearer token (prefer $KFP_TOKEN: a command-line token lands in the shell history)")
    auth.add_argument("--token-file", type=Path, metavar="FILE",
                      help="file holding a bearer token, e.g. a service-account token; re-read on every request")
    auth.add_argument("--cookies", metavar="COOKIES",
                      help="Cookie header for Kubeflow's login (Dex/oauth2-proxy), e.g. 'authservice_session=…' "
                           "copied from the browser")

    follow = parser.add_argument_group("follow the run")
    follow.add_argument("--wait", action="store_true",
                        help="follow the run until it ends, printing each state change of the run and its steps; "
                             "exit 1 if it fails")
    follow.add_argument("--timeout", type=_positive(float), default=None, metavar="SECONDS",
                        help="how long --wait follows the run (default: 3600); the run itself is not stopped")
    follow.add_argument("--poll-interval", type=_positive(float), default=None, metavar="SECONDS",
                        help="seconds between status checks with --wait (default: 5)")

    schedule = parser.add_argument_group("schedule")
    schedule.add_argument("--recurring", metavar="CRON",
                          help="create a recurring run instead of one run. KFP cron has 6 fields: second minute "
                               "hour day-of-month month day-of-week, e.g. '0 0 3 * * *' (03:00 daily) or "
                               "'0 0 4 * * MON'; @daily and '@every 12h' work too. Missed runs are not caught up")
    schedule.add_argument("--max-concurrency", type=_positive(int), default=1, metavar="N",
                          help="recurring runs allowed at the same time (default: 1)")


def cmd_submit(args: argparse.Namespace) -> int:
    """Runs ``submit``; errors are one line on stderr and a non-zero exit (see the exit codes in --help)."""
    url = ""
    try:
        params = _collect_params(args.param)
        if args.list_params:
            return _list_params(args)
        if args.wait and args.recurring is not None:
            raise api.SubmitError("--wait follows one run; it cannot be combined with --recurring")
        if not args.wait and (args.timeout is not None or args.poll_interval is not None):
            raise api.SubmitError("--timeout and --poll-interval apply to --wait")
        result = api.submit(
            args.host, params=params, experiment=args.experiment,
            run_name=args.run_name, pipeline_name=args.pipeline_name, pipeline_yaml=args.yaml, image=args.image,
            namespace=args.namespace, existing_token=args.token, token_file=args.token_file, cookies=args.cookies,
            recurring=args.recurring, max_concurrency=args.max_concurrency,
            run_service_account=args.run_service_account, ui_host=args.ui_host, progress=_stage,
        )
        url = result.url
        _print_result(result, args)
        if not args.wait:
            return 0
        timeout = args.timeout or api.DEFAULT_WAIT_TIMEOUT_S
        _stage(f"following the run for up to {timeout:g} s (Ctrl-C stops following, not the run)")
        state = api.wait_for_run(
            result.client, str(result.run_id), timeout=timeout, poll_seconds=args.poll_interval or api.DEFAULT_POLL_S,
            on_change=lambda change: print(f"    {change}", flush=True),
        )
        print(f"run {state}: {url}")
        return 0
    except api.RunFailedError as exc:
        _error(f"{exc} (details: {url})")
        return EXIT_RUN_FAILED
    except api.RunTimeoutError as exc:
        _error(f"{exc}; follow it at {url}")
        return EXIT_WAIT_TIMEOUT
    except (api.SubmitError, ValueError, OSError) as exc:
        _error(str(exc) or type(exc).__name__)
        return EXIT_SUBMIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted" + (f"; the run goes on: {url}" if url else ""))
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Parses the submit options alone and runs the command."""
    return cmd_submit(build_parser().parse_args(argv))


def _collect_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise api.SubmitError(f"--param {key} is given twice")
        params[key] = value
    return params


def _list_params(args: argparse.Namespace) -> int:
    import tempfile

    from pipeline.runner import DEFAULT_YAML, compile_pipeline

    with tempfile.TemporaryDirectory(prefix="boston-submit-") as folder:
        path = args.yaml or compile_pipeline(Path(folder) / DEFAULT_YAML, image=args.image)
        package = api.load_package(path)
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
    lines = [
        f"pipeline:   {result.pipeline_version_name} ({status}; id {result.pipeline_id})",
        f"experiment: {result.experiment} (id {result.experiment_id})"
        + (f" in namespace {result.namespace}" if result.namespace else ""),
        f"parameters: {chosen} (the others keep the pipeline's defaults)",
    ]
    if result.recurring_run_id:
        lines += [f"recurring:  {result.run_name} (id {result.recurring_run_id}), schedule {args.recurring!r}, "
                  f"at most {args.max_concurrency} at a time",
                  f"URL:        {result.url}"]
    else:
        lines += [f"run:        {result.run_name} (id {result.run_id})", f"URL:        {result.url}"]
    print("\n".join(lines), flush=True)


def _stage(message: str) -> None:
    print(f"==> {message}", flush=True)


def _error(message: str) -> None:
    # One line: a message that spans lines (a server's text, say) is folded.
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
