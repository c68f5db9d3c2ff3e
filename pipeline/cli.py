"""``boston-pipeline``: run the pipeline locally, compile it, call the served model, stop local services."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from boston_model.errors import BadInput
from pipeline import config
from pipeline.models_cli import add_models_parser, cmd_models
from pipeline.runner import DEFAULT_YAML
from pipeline.submit.cli import add_submit_parser, cmd_submit


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--source", default=config.BUNDLED_SOURCE,
                      help="CSV to train on: 'bundled' (default, ships with the project), s3://bucket/key, "
                           "http(s)://… or a local path")
    data.add_argument("--drop-columns", default="", metavar="COLS",
                      help="comma-separated feature columns to drop, e.g. B (see components/data/DATA_CARD.md)")
    data.add_argument("--test-size", type=float, default=config.TEST_SIZE, help="fraction of rows held out for testing")
    data.add_argument("--seed", type=int, default=config.SEED, help="seed for the split and the training")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=config.EPOCHS, help="maximum epochs")
    train.add_argument("--batch-size", type=int, default=config.BATCH_SIZE, help="rows per gradient step")
    train.add_argument("--learning-rate", type=float, default=config.LEARNING_RATE, help="Adam learning rate")
    train.add_argument("--validation-split", type=float, default=config.VALIDATION_SPLIT,
                       help="fraction of training rows used for early stopping (0 = stop on training loss)")
    train.add_argument("--patience", type=int, default=config.PATIENCE, help="early-stopping patience in epochs")
    gate = parser.add_argument_group("gate")
    gate.add_argument("--max-rmse", type=float, default=config.MAX_RMSE, help="largest acceptable test RMSE")
    gate.add_argument("--champion-tolerance", type=float, default=config.CHAMPION_TOLERANCE,
                      help="how much worse than the serving champion's RMSE is acceptable (0.05 = 5%%)")
    gate.add_argument("--max-training-drift", type=float, default=config.MAX_TRAINING_DRIFT,
                      help="fail the gate when a feature's drift index against the champion's training rows "
                           "exceeds this (0.25 = the usual drift band; 0 = report only)")
    serve = parser.add_argument_group("serving")
    serve.add_argument("--model-name", default=config.MODEL_NAME, help="served model name and S3 prefix")
    serve.add_argument("--bucket", default=config.BUCKET, help="S3 bucket for model versions")
    serve.add_argument("--port", type=int, default=config.LOCAL_PORT, help="port of the local predictor (127.0.0.1)")
    parser.add_argument("--runner", choices=("subprocess", "docker"), default="subprocess",
                        help="subprocess: every step in this environment (default); docker: every step in a "
                             "container of the component image and the model served by the predictor image, "
                             "like a KServe pod (needs a Docker engine and `make image-local`)")
    parser.add_argument("--cache", action="store_true",
                        help="reuse results of unchanged steps from an earlier run (deploy always runs)")
    parser.add_argument("--verbose", action="store_true",
                        help="show kfp.local's full log (executor inputs, artifacts) instead of the condensed view")
    parser.add_argument("--image", default=None,
                        help=f"component image every step names (default: {config.IMAGE}); what --runner docker runs")
    parser.add_argument("--predictor-image", default=None,
                        help=f"predictor image (serving.predictor_image, default: {config.PREDICTOR_IMAGE}); what "
                             "--runner docker serves with")
    parser.add_argument("--yaml", type=Path, default=None,
                        help="where to write the compiled pipeline that is run (default: in the state folder)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="boston-pipeline",
        description="Boston Housing on Kubeflow Pipelines and KServe. Without a cluster, 'run' executes the compiled "
                    "pipeline on kfp.local with an embedded S3 store (SeaweedFS) and serves the model with KServe's "
                    "ModelServer on 127.0.0.1. Set MINIO_ENDPOINT, MINIO_ACCESS_KEY and MINIO_SECRET_KEY to use "
                    "your own MinIO/S3 instead.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="compile the pipeline and run that YAML locally, then serve the model",
                              description="Compile the pipeline, run the compiled YAML on kfp.local, deploy the model "
                                          "if it passes the gate, and print a summary with a live prediction.")
    _add_run_arguments(run)

    comp = commands.add_parser("compile", help="write the pipeline's IR YAML (to upload to Kubeflow)",
                               description="Compile the pipeline to Kubeflow Pipelines IR YAML.")
    comp.add_argument("-o", "--output", type=Path, default=Path(DEFAULT_YAML),
                      help="output file (default: %(default)s)")
    comp.add_argument("--image", default=None, help=f"component image for every step (default: {config.IMAGE})")

    pred = commands.add_parser("predict", help="ask the served model for predictions",
                               description="Send rows to the served model (V1 protocol) and print one prediction "
                                           "per row. Give 13 numbers (one row, in the model's feature order) or "
                                           "--csv with a header naming the features.")
    pred.add_argument("values", nargs="*", type=float, help="feature values of one row, in order")
    pred.add_argument("--csv", type=Path, help="CSV file with a header row; extra columns (e.g. MEDV) are ignored")
    pred.add_argument("--url", default=None,
                      help=f"predictor URL (default: the local deployment, else http://{config.LOCAL_HOST}:"
                           f"{config.LOCAL_PORT})")
    pred.add_argument("--model-name", default=config.MODEL_NAME, help="served model name")
    pred.add_argument("--explain", action="store_true",
                      help="also print why: the baseline and each feature's contribution (the :explain route)")

    down = commands.add_parser("down", help="stop the local predictor and the embedded S3 store",
                               description="Stop every local predictor and the embedded S3 store. Models, data and "
                                           "credentials stay in the state folder.")
    down.add_argument("--port", type=int, default=None, help="stop only the predictor on this port")
    add_submit_parser(commands)
    add_models_parser(commands)
    return parser


def _run_arguments(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "source": args.source, "drop_columns": args.drop_columns, "test_size": args.test_size, "seed": args.seed,
        "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "validation_split": args.validation_split, "patience": args.patience, "max_rmse": args.max_rmse,
        "champion_tolerance": args.champion_tolerance, "max_training_drift": args.max_training_drift,
        "model_name": args.model_name, "bucket": args.bucket,
        "serving": {"local_port": args.port,
                    **({"predictor_image": args.predictor_image} if args.predictor_image else {})},
    }  # run_local sets the serving target "process" and s3_endpoint="" (the store comes through the environment)


def _preflight_source(source: str, drop_columns: str) -> None:
    """Validates a local input before any step starts, so a bad file fails in a second with one line."""
    if source.startswith(("s3://", "minio://", "http://", "https://")):
        return  # read inside the load step, with the step's credentials
    from components.load.core import load_table

    load_table(source, drop_columns)


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline import runner

    _preflight_source(args.source, args.drop_columns)
    result = runner.run_local(_run_arguments(args), cache=args.cache, verbose=args.verbose, yaml_path=args.yaml,
                              runner=args.runner, image=args.image)
    print(_summary(result, args.model_name))
    return 0 if result.passed else 3


def _summary(result: Any, model_name: str) -> str:
    from components.deploy.release import predict_v1
    from components.evaluate.core import metrics_rows

    metrics, passed, champion, served = result.metrics, result.passed, result.champion, result.served
    seconds, report = result.seconds, result.report_path
    lines = ["", "=" * 72, f"Boston Housing pipeline finished in {seconds:.0f} s", "",
             f"  {'predictor':<26}{'MSE':>9}{'RMSE':>9}{'MAE':>9}{'R²':>8}"]
    for label, mse, rmse, mae, r2 in metrics_rows(metrics):
        lines.append(f"  {label:<26}{mse:>9.3f}{rmse:>9.3f}{mae:>9.3f}{r2:>8.3f}")
    lines += ["", f"  gate:      {'PASSED' if passed else 'FAILED (nothing deployed; see the report)'}",
              f"  report:    {report}"]
    if champion and served:
        import numpy as np

        from components.load.core import bundled_csv_bytes, parse_csv

        row = parse_csv(bundled_csv_bytes()).iloc[0]
        values = [float(row[name]) for name in champion["feature_names"]]
        prediction = float(predict_v1(served.url, model_name, np.asarray([values]))[0])
        body = json.dumps({"instances": [values]})
        lines += [
            f"  model:     {champion['uri']} (version {champion['version']})",
            f"  endpoint:  {served.url}/v1/models/{model_name}:predict",
            f"  try it:    first row of the data set -> {prediction:.2f} "
            f"(actual MEDV {float(row['MEDV']):.1f}; $1000s)",
            "",
            f"  curl -s -H 'Content-Type: application/json' -d {shlex.quote(body)} \\",
            f"       {served.url}/v1/models/{model_name}:predict",
            "",
            "  or: boston-pipeline predict " + " ".join(f"{v:g}" for v in values),
            "  stop everything: boston-pipeline down",
        ]
    lines.append("=" * 72)
    return "\n".join(lines)


def served_features(url: str, model_name: str) -> list[str] | None:
    """The feature names the served model declares (V2 metadata), or None if it does not say."""
    import requests

    try:
        response = requests.get(f"{url}/v2/models/{model_name}", timeout=5)
        inputs = response.json().get("inputs") or []
    except (requests.RequestException, ValueError):
        return None
    if len(inputs) == 1 and isinstance(inputs[0].get("parameters"), dict):
        names = inputs[0]["parameters"].get("feature_names")
        if isinstance(names, list):
            return [str(n) for n in names]
    names = [str(i.get("name")) for i in inputs]
    return names if len(names) > 1 else None


def cmd_compile(args: argparse.Namespace) -> int:
    from pipeline import runner

    path = runner.compile_pipeline(args.output, image=args.image)
    print(f"wrote {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from boston_model.errors import ReleaseFailed
    from components.deploy.process import read_served
    from components.deploy.release import predict_v1
    from pipeline.state import state_dir

    url = args.url
    if url is None:
        served = read_served(state_dir(), config.LOCAL_PORT)
        url = served.url if served else f"http://{config.LOCAL_HOST}:{config.LOCAL_PORT}"
    if args.csv:
        from components.load.core import parse_csv, read_source

        frame = parse_csv(read_source(str(args.csv)))
        names = served_features(url, args.model_name) or [c for c in config.FEATURES if c in frame.columns]
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise BadInput(f"{args.csv}: missing column(s) {', '.join(missing)}")
        rows = frame[names].apply(lambda c: c.astype(float)).to_numpy()
    elif args.values:
        rows = np.asarray([args.values], dtype=np.float64)
    else:
        raise BadInput("give one row of feature values, or --csv FILE")
    if args.explain:
        from pipeline.explain import contributions_table, explain_live

        explained = explain_live(url, args.model_name, rows)
        print("\n\n".join(contributions_table(e, f"row {i + 1}: " if len(explained) > 1 else "")
                           for i, e in enumerate(explained)))
        return 0
    try:
        predictions = predict_v1(url, args.model_name, rows)
    except ReleaseFailed as exc:
        raise BadInput(str(exc).replace("predict returned", f"{url} answered")) from None
    for value in predictions:
        print(f"{value:.4f}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from components.deploy.process import stop_served
    from pipeline import embedded_s3
    from pipeline.state import state_dir

    state = state_dir()
    ports = [args.port] if args.port else sorted(
        int(p.stem) for p in (state / "serving").glob("*.json") if p.stem.isdigit()
    )
    for port in ports:
        served = stop_served(state, port)
        if served:
            print(f"stopped the predictor on {served.url} (pid {served.pid})")
    from pipeline.docker_run import stop_served as stop_containers

    for served in stop_containers(state, args.port):
        print(f"stopped the predictor container {served.name} on {served.url}")
    if args.port is None and embedded_s3.stop(state):
        print("stopped the embedded S3 store (data kept in the state folder)")
    return 0


COMMANDS = {"run": cmd_run, "compile": cmd_compile, "predict": cmd_predict, "down": cmd_down, "submit": cmd_submit,
            "models": cmd_models}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; expected errors become one line on stderr and a non-zero exit, never a traceback."""
    from boston_model.errors import OneLineError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (OneLineError, ValueError, OSError) as exc:
        print(f"boston-pipeline {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        # kfp.local raises RuntimeError when a step fails; the step's own "ERROR <step>: …" line is in its log above.
        print(f"boston-pipeline {args.command}: error: {_one_line(exc)} (the failing step's ERROR line is above)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"boston-pipeline {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    import re

    from boston_model.errors import first_line

    # kfp.local colours its messages; the terminal line should not carry the escape codes.
    return first_line(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)), type(exc).__name__)


if __name__ == "__main__":
    sys.exit(main())
