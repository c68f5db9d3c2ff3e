"""``boston-pipeline models list|show|diff|promote|rollback``: the registry on the command line.

The work is in :mod:`pipeline.models` (the notebook calls the same functions); this module parses and prints.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from boston_model.errors import BadInput
from pipeline import config


def add_models_parser(commands: Any) -> None:
    models = commands.add_parser(
        "models", help="list, show, compare, promote and roll back stored model versions",
        description="Operate the stored model versions in the embedded store (or the MinIO/S3 that MINIO_ENDPOINT, "
                    "MINIO_ACCESS_KEY and MINIO_SECRET_KEY name).")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    def common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--model", default=config.MODEL_NAME, help="model name (default: %(default)s)")
        parser.add_argument("--bucket", default=config.BUCKET, help="bucket of the model store (default: %(default)s)")
        return parser

    listing = common(sub.add_parser("list", help="one row per stored version, newest first"))
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = common(sub.add_parser("show", help="model card, metrics and a manifest check of every file"))
    show.add_argument("version", help="version id, a unique prefix, its 8-character hash, or 'champion'")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    diff = common(sub.add_parser("diff", help="metrics, parameters and weights of two versions side by side"))
    diff.add_argument("a", help="first version")
    diff.add_argument("b", help="second version")
    drift = common(sub.add_parser("drift", help="how far live inputs moved from the training data, per feature (PSI)",
                                  description="Read the predictor's live counts of rows per feature and bin (its "
                                              "/metrics), fetch the served version's card, and print the population "
                                              "stability index per feature: < 0.1 stable, 0.1-0.25 moderate, > 0.25 "
                                              "drift."))
    drift.add_argument("--url", default=None, help="predictor URL, e.g. an InferenceService's (default: the local one)")
    drift.add_argument("--min-rows", type=int, default=100, help="fewer rows read 'too few rows' (default: 100)")
    drift.add_argument("--fail-on", choices=("moderate", "drift"), default=None,
                       help="exit 1 when the verdict is this band or worse (for a scheduled job)")
    drift.add_argument("--json", action="store_true", help="machine-readable output")
    promote = common(sub.add_parser("promote", help="verify, serve and smoke-test a version, then make it champion"))
    promote.add_argument("version", help="version id, a unique prefix or its 8-character hash")
    rollback = common(sub.add_parser("rollback", help="promote the previous champion again"))
    for parser in (promote, rollback):
        parser.add_argument("--target", choices=("process", "container", "kserve"), default=None,
                            help="where to serve (default: the target the champion was served on, else process)")
        parser.add_argument("--port", type=int, default=None,
                            help="local port (process, container; default: what the version was served with, else "
                                 f"{config.LOCAL_PORT})")
        parser.add_argument("--namespace", default=None,
                            help="InferenceService namespace (kserve; default: as deployed, else the current one)")
        parser.add_argument("--runtime", choices=("tensorflow", "custom"), default=None,
                            help="KServe runtime (kserve; default: as deployed)")
        parser.add_argument("--serving", action="append", default=[], metavar="KEY=VALUE",
                            help="any other serving key (e.g. min_replicas=3); keys not given keep what the "
                                 "version was served with")
        parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (kserve)")
        parser.add_argument("--context", default=None, help="kubeconfig context (kserve)")
        parser.add_argument("--ready-timeout", type=int, default=None,
                            help="seconds the InferenceService may take to become Ready (kserve)")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_list(rows: list[Any]) -> str:
    """The ``models list`` table."""
    if not rows:
        return "no stored versions yet: `boston-pipeline run` trains and stores one"
    header = (f"   {'version':<27} {'created':<20} {'RMSE':>6} {'R²':>6}  {'data':<12} "
              f"{'parameters ≠ default':<22} serving")
    lines = [header]
    for row in rows:
        marker = "*" if row.champion else " "
        params = ", ".join(f"{k}={v}" for k, v in row.changed_params.items()) or "-"
        lines.append(f" {marker} {row.version:<27} {row.created:<20} {_fmt(row.rmse):>6} {_fmt(row.r2):>6}  "
                     f"{(row.data_sha256 or '-')[:12]:<12} {params:<22} {row.serving or ''}".rstrip())
    lines.append("(* champion)")
    return "\n".join(lines)


def format_show(details: Any) -> str:
    """The ``models show`` page: card, metrics, every file's check and the verdict."""
    stored, card = details.stored, details.stored.card
    fields = [("version", f"{stored.version}{'  (champion)' if details.champion else ''}"),
              ("uri", stored.location.uri), ("created", stored.created)]
    fields += [(key, card[key]) for key in ("tensorflow_version", "keras_version", "train_rows", "data_sha256")
               if card.get(key) is not None]
    if card.get("training"):
        fields.append(("training", ", ".join(f"{k}={v}" for k, v in sorted(card["training"].items()))))
    if stored.metrics:
        fields.append(("test metrics", ", ".join(f"{k}={_fmt(stored.metrics[k])}" for k in ("rmse", "r2", "mae", "mse")
                                                 if k in stored.metrics)))
    lines = [f"{label:<20}{value}" for label, value in fields]
    means = card.get("feature_means") or [None] * len(card["feature_names"])
    lines += ["", f"  {'feature':<9}{'weight':>12}{'train mean':>12}"]
    lines += [f"  {name:<9}{weight:>12.5f}{_fmt(mean, 4):>12}"
              for name, weight, mean in zip(card["feature_names"], card["weights"], means, strict=True)]
    lines.append(f"  {'bias':<9}{float(card['bias']):>12.5f}")
    if card.get("baseline") is not None:
        lines.append(f"  baseline (prediction at the training mean) {float(card['baseline']):.4f}")
    lines += ["", "  files (checked against manifest.json)"]
    for check in details.check.files:
        size = "-" if check.size is None else str(check.size)
        lines.append(f"  {'ok ' if check.ok else 'BAD'} {check.path:<40} {size:>9}  "
                     f"{(check.sha256 or '-')[:16]}{'' if check.ok else '  ' + (check.problem or '')}")
    lines += ["", details.check.verdict()]
    return "\n".join(lines)


def format_diff(diff: Any) -> str:
    """The ``models diff`` table; ``≠`` marks what differs."""
    width = max(28, len(diff.a), len(diff.b))
    lines = [f"  {'':<18}{diff.a:>{width}}  {diff.b:>{width}}"]
    section = None
    for row in diff.rows:
        if row.section != section:
            section = row.section
            lines.append(section)
        digits = 5 if section == "weights" else 3
        a, b = (_fmt(v, digits)[:16] if row.name == "data_sha256" else _fmt(v, digits) for v in (row.a, row.b))
        lines.append(f"{'≠' if row.differs else ' '}   {row.name:<16}{a:>{width}}  {b:>{width}}")
    changed = sum(r.differs for r in diff.rows)
    lines.append(f"({changed} of {len(diff.rows)} differ, marked ≠)")
    return "\n".join(lines)


def format_drift(drift: Any) -> str:
    """The ``models drift`` table: index, band and the busiest bin of each feature."""
    report = drift.report
    lines = [f"{drift.url} serves {drift.version}; {report.rows} rows seen", "",
             f"  {'feature':<9}{'PSI':>8}  band"]
    for name, value in sorted(report.psi.items(), key=lambda item: -item[1] if item[1] == item[1] else 0):
        lines.append(f"  {name:<9}{value:>8.3f}  {report.bands[name]}")
    lines += ["", f"verdict: {report.verdict} (PSI < 0.1 stable, 0.1-0.25 moderate, > 0.25 drift)"]
    return "\n".join(lines)


FAIL_ON = {"moderate": ("moderate", "drift"), "drift": ("drift",)}


def _serving(args: argparse.Namespace) -> dict[str, Any]:
    """The serving keys the flags override (unset flags keep what the version was served with)."""
    values: dict[str, Any] = {}
    for item in args.serving:
        key, sep, text = item.partition("=")
        if not sep:
            raise BadInput(f"--serving {item!r}: expected KEY=VALUE")
        try:
            values[key.strip()] = json.loads(text)
        except ValueError:
            values[key.strip()] = text
    flags = {"target": args.target, "local_port": args.port, "namespace": args.namespace, "runtime": args.runtime,
             "ready_timeout_s": args.ready_timeout}
    return {**values, **{k: v for k, v in flags.items() if v is not None}}


def cmd_models(args: argparse.Namespace) -> int:
    from pipeline import models

    action = args.models_command
    if action == "list":
        rows = models.list_models(args.model, args.bucket)
        print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else format_list(rows))
        return 0
    if action == "show":
        details = models.show_model(args.version, args.model, args.bucket)
        if args.json:
            print(json.dumps({"version": details.stored.version, "uri": details.stored.location.uri,
                              "champion": details.champion, "card": details.stored.card,
                              "metrics": details.stored.metrics, "verified": details.check.ok,
                              "files": [asdict(f) for f in details.check.files]}, indent=2))
        else:
            print(format_show(details))
        return 0 if details.check.ok else 1
    if action == "diff":
        print(format_diff(models.diff_models(args.a, args.b, args.model, args.bucket)))
        return 0
    if action == "drift":
        drift = models.drift_of(args.url, args.model, args.bucket, min_rows=args.min_rows)
        if args.json:
            print(json.dumps({"url": drift.url, "version": drift.version, "rows": drift.report.rows,
                              "verdict": drift.report.verdict, "bands": drift.report.bands,
                              "psi": {k: v if v == v else None for k, v in drift.report.psi.items()}},
                             indent=2))
        else:
            print(format_drift(drift))
        return 1 if args.fail_on and drift.report.verdict in FAIL_ON[args.fail_on] else 0
    cluster = models.Cluster(args.kubeconfig, args.context)
    if action == "promote":
        done = models.promote_model(args.version, _serving(args), args.model, args.bucket, cluster)
    else:
        done = models.rollback_model(_serving(args), args.model, args.bucket, cluster)
    print(f"champion: {done.before or '(none)'} → {done.version}, serving at {done.endpoint}")
    return 0
