"""Stock KServe, the reference the conformance suite and the serving bench compare with.

A `kserve.Model` serving the model card's linear map, written the way KServe's own servers are written
(sklearnserver's ``predict``: `get_predict_input` -> model -> `get_predict_response`), on `kserve.ModelServer` with
KServe's defaults. The map returns shape ``(n, 1)``, as the SavedModel's ``Dense(1)`` does. It uses nothing from
this project, so its answers are KServe's, not ours.

The one change from stock: REST and gRPC listen on 127.0.0.1 (kserve 0.21 hard-codes 0.0.0.0 and ``[::]``; the
project's rule is loopback only). gRPC is on, as KServe's default; ``--enable_grpc false`` turns it off. Run::

    python tests/kserve/stock_kserve.py --model_dir DIR --model_name boston-housing --http_port N --grpc_port M

``--quiet`` (the bench) turns off the per-request access and timing log lines, as the project's server has none.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import kserve.model_server as kserve_model_server
import kserve.protocol.grpc.server as kserve_grpc_server
import numpy as np
import pandas as pd
from kserve.model import Model
from kserve.protocol.rest.server import RESTServer
from kserve.utils.utils import get_predict_input, get_predict_response


class LinearMap:
    """``x @ weights + bias`` from the card; named columns when KServe hands a DataFrame."""

    def __init__(self, card: dict[str, Any]) -> None:
        self.features = list(card["feature_names"])
        self.weights = np.asarray(card["weights"], dtype=np.float64).reshape(-1, 1)
        self.bias = float(card["bias"])

    def predict(self, x: Any) -> np.ndarray:
        if isinstance(x, pd.DataFrame):
            x = x[self.features].to_numpy()
        return np.asarray(x) @ self.weights + self.bias


class StockLinearModel(Model):
    """The linear map as KServe's docs and sklearnserver write a model."""

    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.ready = False

    def load(self) -> bool:
        self.model = LinearMap(json.loads((Path(self.model_dir) / "boston_model.json").read_text()))
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        instances = get_predict_input(payload)
        return get_predict_response(payload, self.model.predict(instances), self.name)


class LoopbackRESTServer(RESTServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = "127.0.0.1"


class _LoopbackAio:
    """`grpc.aio` for KServe's GRPCServer, whose ``start`` adds ``[::]:PORT``: the same port on 127.0.0.1."""

    def __init__(self, aio: Any) -> None:
        self._aio = aio

    def __getattr__(self, name: str) -> Any:
        return getattr(self._aio, name)

    def server(self, *args: Any, **kwargs: Any) -> Any:
        server = self._aio.server(*args, **kwargs)
        add_port = server.add_insecure_port
        server.add_insecure_port = lambda address: add_port(address.replace("[::]", "127.0.0.1"))
        return server


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve_model_server.parser])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--quiet", action="store_true")
    args, _ = parser.parse_known_args()
    kserve_model_server.RESTServer = LoopbackRESTServer  # the name ModelServer.start builds its REST server from
    kserve_grpc_server.aio = _LoopbackAio(kserve_grpc_server.aio)
    model = StockLinearModel(args.model_name, args.model_dir)
    model.load()
    server = kserve_model_server.ModelServer()
    if args.quiet:
        for name in ("uvicorn.access", "kserve.trace"):
            logging.getLogger(name).disabled = True
        # KServe's gRPC LoggingInterceptor logs every call at INFO on "kserve": the bench keeps warnings only.
        logging.getLogger("kserve").setLevel(logging.WARNING)
    server.start([model])
