"""The ``boston-predictor`` command: KServe's ModelServer flags plus ours; loads, self-checks, then serves.

Locally, and as the custom runtime image's entry point::

    boston-predictor --model_name boston-housing --model_dir /mnt/models --http_port 8080 --bind 0.0.0.0
    boston-predictor --storage_uri s3://models/boston-housing/<version>/       # MINIO_* from the env
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import kserve.model_server as kserve_model_server
import numpy as np

from boston_model.errors import BadInput
from boston_predictor.loading import ModelSource
from boston_predictor.model import BostonHousingModel
from boston_predictor.server import ServeOptions, build_server
from boston_predictor.spec import DEFAULT_BIND, DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES

log = logging.getLogger("kserve")


def build_parser() -> argparse.ArgumentParser:
    """KServe's ModelServer flags plus ours (``--help`` lists both)."""
    parser = argparse.ArgumentParser(
        prog="boston-predictor",
        description="Serve the Boston Housing model with KServe (REST V1 and V2).",
        parents=[kserve_model_server.parser],
        allow_abbrev=False,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model_dir", type=Path, help="local model folder (KServe's storage initializer: /mnt/models)")
    source.add_argument("--storage_uri", help="s3://bucket/<name>/<version>/, fetched and verified by its manifest "
                                              "with credentials from MINIO_ENDPOINT/MINIO_ACCESS_KEY/MINIO_SECRET_KEY")
    parser.add_argument("--bind", default=DEFAULT_BIND, help="address the REST server listens on (0.0.0.0 in a pod)")
    parser.add_argument("--max_batch", type=int, default=DEFAULT_MAX_BATCH, help="most rows per request")
    parser.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="largest request body")
    parser.add_argument("--count_inputs", default=True, type=lambda value: value.lower() in ("1", "true", "yes"),
                        help="count served rows per feature and training bin on /metrics for `boston-pipeline "
                             "models drift` (default true; false turns it off)")
    parser.add_argument("--takeover", type=Path, default=None,
                        help="handover path of a seamless local release: serve on --http_port (the trial port), and "
                             "on SIGUSR1 also accept on the public socket offered there (boston_predictor.handover)")
    parser.add_argument("--log_requests", action="store_true",
                        help="log a line per request (access log and KServe latency log); off by default")
    parser.add_argument("--enable_model_repository", action="store_true",
                        help="serve KServe's model repository extension (/v2/repository/models/NAME/load, unload; "
                             "unauthenticated): off by default, its routes answer 404")
    # Our defaults for KServe's own flags: no model name unless given; gRPC off for a local process (two predictors
    # side by side would both want port 8081); the image and the InferenceService turn it on (--enable_grpc true).
    # Ours binds --bind, as REST does (KServe's would bind [::]).
    parser.set_defaults(enable_grpc=False, model_name=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Loads the model, then serves until SIGTERM. Returns the process exit code."""
    args = build_parser().parse_args(argv)
    # Overflowing inputs are refused per request (predict_rows); numpy's own warning would be a stderr line per
    # such request, and np.errstate around every prediction costs more than the prediction.
    np.seterr(all="ignore")
    # kserve 0.21 answers metadata with FastAPI's ORJSONResponse, which FastAPI 0.16x flags as deprecated on the
    # first such request: a stderr line that says nothing about the request or the server.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    try:
        if args.enable_grpc and args.grpc_port == args.http_port:
            raise BadInput("--grpc_port and --http_port must differ")
        if args.workers != 1:
            raise BadInput("--workers must be 1: scale with replicas")
        if args.max_batch < 1 or args.max_body_bytes < 1:
            raise BadInput("--max_batch and --max_body_bytes must be positive")
        model = BostonHousingModel(args.model_name, ModelSource(args.model_dir, args.storage_uri), args.max_batch,
                                   args.count_inputs)
        started = time.perf_counter()
        model.load()
        # Checked for the server process only (tests load the model inside processes that use TensorFlow):
        # a regression worth failing loudly, it costs seconds of start-up and half a GB.
        if "tensorflow" in sys.modules:
            raise BadInput("self-check failed: TensorFlow was imported into the server process")
    except BadInput as exc:
        # One line, no traceback: this is what `kubectl logs` shows for a crash-looping predictor.
        print(f"predictor: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    options = ServeOptions(
        http_port=args.http_port,
        bind=args.bind,
        max_body_bytes=args.max_body_bytes,
        log_requests=args.log_requests,
        enable_docs_url=args.enable_docs_url,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
        takeover=args.takeover,
        model_repository=args.enable_model_repository,
        grpc_port=args.grpc_port if args.enable_grpc else None,
    )
    server = build_server(model, options)
    assert model.spec is not None
    log.info(
        "model %s%s loaded and self-checked in %.0f ms: %d features, max batch %d, max body %d bytes, bind %s:%d%s",
        model.name, f" (version {model.spec.version})" if model.spec.version else "",
        (time.perf_counter() - started) * 1000, model.spec.n_features, args.max_batch, args.max_body_bytes,
        args.bind, args.http_port, f" (gRPC :{args.grpc_port})" if args.enable_grpc else "",
    )
    server.start([model])
    return 0
