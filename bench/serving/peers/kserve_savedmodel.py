"""The peer a user would write from KServe's docs: a `kserve.Model` that calls the SavedModel signature per request.

Run by the bench with the repository's venv (TensorFlow and kserve), KServe's defaults otherwise::

    python bench/serving/peers/kserve_savedmodel.py --model_name boston-housing --model_dir DIR --http_port 8080
"""

from __future__ import annotations

import argparse
from typing import Any

import kserve.model_server as kserve_model_server
import numpy as np
import tensorflow as tf
from kserve.model import Model


class SavedModelPredictor(Model):
    """Loads ``<model_dir>/1`` and answers V1 ``instances`` through its ``serving_default`` signature."""

    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.signature: Any = None
        self.ready = False

    def load(self) -> bool:
        self.signature = tf.saved_model.load(f"{self.model_dir}/1").signatures["serving_default"]
        self.ready = True
        return self.ready

    def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        rows = tf.constant(np.asarray(payload["instances"], dtype=np.float32))
        output = next(iter(self.signature(rows).values()))
        return {"predictions": output.numpy().tolist()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve_model_server.parser])
    parser.add_argument("--model_dir", required=True)
    args, _ = parser.parse_known_args()
    model = SavedModelPredictor(args.model_name, args.model_dir)
    model.load()
    kserve_model_server.ModelServer().start([model])
