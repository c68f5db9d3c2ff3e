"""The `kserve.Model` in-process: readiness around load, the self-check, and KServe's own dataplane path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from boston_model.errors import BadInput
from boston_predictor.errors import RequestError
from boston_predictor.loading import ModelSource, name_from_uri
from boston_predictor.model import BostonHousingModel
from boston_predictor.protocol import rows_from_v1
from boston_predictor.rows import predict_rows

ROW = [0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98]


@pytest.fixture()
def loaded(model_dir: Path) -> Any:
    model = BostonHousingModel("boston-housing", ModelSource(model_dir=model_dir))
    model.load()
    return model


def test_not_ready_until_loaded(model_dir: Path) -> None:
    model = BostonHousingModel("boston-housing", ModelSource(model_dir=model_dir))
    assert model.ready is False
    assert asyncio.run(model.healthy()) is False
    assert model.load() is True
    assert model.ready is True


def test_a_failed_self_check_leaves_the_model_not_ready(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = BostonHousingModel("boston-housing", ModelSource(model_dir=model_dir))
    # A request path that drifts from the SavedModel (say a bad encoder) must be caught before "ready".
    monkeypatch.setattr(model, "handle_v1", lambda body: b'{"predictions": [[0.0]]}')
    with pytest.raises(BadInput, match="self-check failed: V1"):
        model.load()
    assert model.ready is False


def test_kserve_dataplane_v1_matches_the_fast_path(loaded: Any) -> None:
    payload = {"instances": [ROW, ROW]}
    response, _ = asyncio.run(loaded(payload, headers={}))
    assert response == json.loads(loaded.handle_v1(json.dumps(payload).encode()))


def test_kserve_dataplane_v2_matches_the_fast_path(loaded: Any) -> None:
    from kserve.protocol.infer_type import InferInput, InferRequest

    request = InferRequest("boston-housing", [InferInput("features", [2, 13], "FP32", ROW * 2)], request_id="r1")
    response, _ = asyncio.run(loaded(request, headers={}))
    fast = json.loads(loaded.handle_v2(json.dumps(
        {"inputs": [{"name": "features", "shape": [2, 13], "datatype": "FP32", "data": ROW * 2}]}).encode()))
    assert response.id == "r1"
    assert response.outputs[0].shape == [2, 1]
    np.testing.assert_array_equal(response.outputs[0].data, fast["outputs"][0]["data"])


def test_kserve_dataplane_rejects_bad_input_as_invalid_input(loaded: Any) -> None:
    from kserve.errors import InvalidInput

    with pytest.raises(InvalidInput, match="has 2 values, expected 13"):
        asyncio.run(loaded({"instances": [[1.0, 2.0]]}, headers={}))


def test_metadata_comes_from_the_card(loaded: Any, model_dir: Path) -> None:
    card = json.loads((model_dir / "boston_model.json").read_text())
    assert [i["name"] for i in loaded.get_input_types()] == card["feature_names"]
    assert loaded.get_output_types()[0]["name"] == card["target"]


@pytest.mark.parametrize(
    ("uri", "name"),
    [("s3://models/boston-housing/20261125T101500Z-ab12cd34/", "boston-housing"), ("s3://models/x", None)],
)
def test_model_name_from_storage_uri(uri: str, name: str | None) -> None:
    assert name_from_uri(uri) == name


# Both sides of the small-batch shortcuts in the finiteness checks: 30 rows are 390 input values (summed from the
# list), 31 rows 403 (numpy); 64 predictions are summed, 65 go through numpy.
@pytest.mark.parametrize("n", [1, 30, 31, 64, 65, 5000])
def test_non_finite_values_are_found_in_small_and_large_batches(loaded: Any, n: int) -> None:
    rows: list[list[Any]] = [list(ROW) for _ in range(n)]
    rows[-1][4] = float("nan")
    with pytest.raises(RequestError, match=rf"instances\[{n - 1}\] feature NOX is not finite"):
        rows_from_v1({"instances": rows}, loaded.spec)
    weights = loaded.spec.model.weights
    rows[-1] = [1.7e308 if w > 0 else -1.7e308 for w in weights]
    array, _ = rows_from_v1({"instances": rows}, loaded.spec)  # finite inputs whose sum overflows
    # The server process turns numpy's overflow warnings off (main); in here they are silenced by hand.
    with np.errstate(over="ignore"), pytest.raises(
        RequestError, match=rf"row {n - 1}: the prediction is not finite"
    ):
        predict_rows(loaded.spec, array)


def test_the_manifest_name_is_the_model_formats() -> None:
    # boston_predictor.loading names the file itself so that a folder without one never imports the S3 client.
    from boston_model import versions
    from boston_predictor import loading

    assert loading.MANIFEST == versions.MANIFEST


def test_starting_imports_neither_the_s3_client_nor_tensorflow(model_dir) -> None:
    """A local folder without a manifest is served without importing minio (0.2 s of cold start)."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from boston_predictor.loading import load_folder; "
            f"load_folder(Path({str(model_dir)!r})); import boston_predictor.cli, boston_predictor.server; "
            "print(sorted(m for m in ('minio', 'tensorflow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
