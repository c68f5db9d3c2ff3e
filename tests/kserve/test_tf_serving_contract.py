"""The exported SavedModel, loaded the way TensorFlow Serving loads it, answers the V1 bodies we send it.

KServe's ``tensorflow`` runtime is TF Serving: it loads ``<storageUri>/<numeric version>/``, serves the
``serving_default`` signature and reads V1 REST's row format, each instance being the value of the signature's one
input (here a row of 13 float32 numbers). TF Serving itself cannot run here (no image registry), so the test does
what it does with real TensorFlow: load the version folder, take the signature, check its input's name, dtype and
shape, turn the body into that input's tensor and call it. The bodies are the smoke test's (the deploy step sends
it to every new InferenceService) and the first V1 example of docs/serving.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from boston_model.card import load_linear_model, read_card
from components.deploy.release import Smoke, v1_request

SERVING_DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"
VERSION_FOLDER = "1"  # TF Serving's numeric version folder under the storage URI


def tf_serving_signature(model_dir: Path) -> tuple[Any, str, Any]:
    """The ``serving_default`` signature of ``<model_dir>/1``, its input's name and its TensorSpec."""
    import tensorflow as tf

    version = model_dir / VERSION_FOLDER
    assert version.name.isdigit() and (version / "saved_model.pb").is_file()
    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    args, kwargs = signature.structured_input_signature
    assert not args and len(kwargs) == 1, "TF Serving's row format needs exactly one named input"
    (name, spec), = kwargs.items()
    return signature, name, spec


def answer_v1_rows(signature: Any, input_name: str, spec: Any, body: bytes) -> np.ndarray:
    """Reads a V1 ``instances`` body as TF Serving does for a one-input signature, and runs the signature."""
    import tensorflow as tf

    instances = json.loads(body)["instances"]
    tensor = tf.constant(instances, dtype=spec.dtype)  # float32, as the signature declares
    assert spec.is_compatible_with(tensor), (tensor.shape, spec)
    (output,) = signature(**{input_name: tensor}).values()
    assert output.shape == (len(instances), 1)  # TF Serving answers [[v], ...] for this model
    return output.numpy().reshape(-1).astype(np.float64)


@pytest.mark.slow
def test_savedmodel_serves_the_smoke_test_and_documented_bodies_as_tf_serving_reads_them(trained_model: Any) -> None:
    import tensorflow as tf

    from components.evaluate.core import evaluate_model

    model_dir = trained_model.model_dir
    card = read_card(model_dir)
    signature, input_name, spec = tf_serving_signature(model_dir)
    assert input_name == card["signature"]["input"] == "features"
    assert spec.dtype == tf.float32
    assert spec.shape.as_list() == [None, len(card["feature_names"])] == [None, 13]

    # The deploy step's smoke test: evaluate's first test rows, in the body it sends, against evaluate's answers.
    model = load_linear_model(model_dir)
    evaluation = evaluate_model(model, trained_model.train, trained_model.test)
    smoke = Smoke.from_predictions(evaluation.predictions, list(model.feature_names))
    rows, expected = smoke.rows, smoke.expected
    body = json.dumps(v1_request(rows)).encode()
    got = answer_v1_rows(signature, input_name, spec, body)
    assert float(np.max(np.abs(got - expected))) <= smoke.atol

    # The serving page's first V1 example, as a user would paste it.
    match = re.search(r"""-d '(\{"instances": \[\[[^']*\]\]\})'""", SERVING_DOC.read_text())
    assert match, "docs/serving.md's V1 section lost its first curl example"
    doc_body = match.group(1).encode()
    doc_rows = np.asarray(json.loads(doc_body)["instances"], dtype=np.float64)
    np.testing.assert_allclose(answer_v1_rows(signature, input_name, spec, doc_body), model.predict(doc_rows),
                               rtol=0, atol=1e-5)  # the smoke test's tolerance (Smoke.from_predictions)
