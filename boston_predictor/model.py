"""The Boston Housing regression as a `kserve.Model`: loaded, verified and self-checked before it is ready."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kserve.errors import InvalidInput, ModelNotReady
from kserve.model import Model
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from starlette.exceptions import HTTPException

from boston_model.card import EQUALITY_ATOL
from boston_model.errors import BadInput
from boston_predictor.errors import RequestError
from boston_predictor.explain import Explainer, explain_body, explain_payload
from boston_predictor.loading import ModelSource, fetch_from_s3, load_folder, manifest_version, name_from_uri
from boston_predictor.protocol import rows_from_v1, rows_from_v2
from boston_predictor.rows import parse_json, predict_rows
from boston_predictor.spec import DEFAULT_MAX_BATCH, OUTPUT_DATATYPE, ModelSpec


class BostonHousingModel(Model):
    """The Boston Housing regression as a `kserve.Model`.

    `load` reads the folded model (no TensorFlow), checks it against the SavedModel's recorded outputs, then runs
    its probe rows through the full V1 and V2 request paths; only then is the model ready. `handle_v1`/`handle_v2`
    serve raw request bodies (the ASGI front calls them); `predict` serves KServe's own dataplane with the same code.
    """

    def __init__(self, name: str | None, source: ModelSource, max_batch: int = DEFAULT_MAX_BATCH,
                 count_inputs: bool = True) -> None:
        super().__init__(name or "unnamed")
        self._requested_name = name
        self.source = source
        self.max_batch = max_batch
        self.count_inputs = count_inputs
        self.spec: ModelSpec | None = None
        self.explainer: Explainer | None = None
        self.ready = False

    # --- loading ---------------------------------------------------------------------------------------------

    def load(self) -> bool:
        """Loads, verifies and self-checks the model; raises `BadInput` with one line when it cannot."""
        version_hint = None
        if self.source.storage_uri:
            with tempfile.TemporaryDirectory(prefix="boston-model-") as tmp:
                version_hint = fetch_from_s3(self.source.storage_uri, Path(tmp))
                card, model = load_folder(Path(tmp))
        else:
            card, model = load_folder(Path(self.source.model_dir or "."))
            version_hint = manifest_version(Path(self.source.model_dir or "."))
        name = self._requested_name or card.get("model_name") or name_from_uri(self.source.storage_uri)
        if not name:
            raise BadInput("no model name: pass --model_name (the model card does not carry one)")
        self.name = name
        signature = card.get("signature") if isinstance(card.get("signature"), dict) else {}
        self.spec = ModelSpec(
            name=name,
            model=model,
            output_name=str(card.get("target") or "prediction"),
            input_name=str(signature.get("input") or "features"),
            signature_name=str(signature.get("name") or "serving_default"),
            version=version_hint,
            max_batch=self.max_batch,
        )
        self.explainer = Explainer.from_card(card, self.spec)
        self._self_check(card)
        if self.count_inputs:
            from boston_predictor.inputs import InputCounts

            self.spec.inputs = InputCounts(name, card).register()
        self.ready = True
        return self.ready

    def _self_check(self, card: dict[str, Any]) -> None:
        """Sends the card's probe rows through the V1 and V2 request paths and compares with the SavedModel."""
        assert self.spec is not None
        probe = card["probe"]["inputs"][: self.max_batch]
        expected = np.asarray(card["probe"]["savedmodel_outputs"], dtype=np.float64).reshape(-1)[: len(probe)]
        v1 = orjson.loads(self.handle_v1(orjson.dumps({"instances": probe})))["predictions"]
        v2_body = {"inputs": [{"name": self.spec.input_name, "shape": [len(probe), self.spec.n_features],
                               "datatype": "FP32", "data": probe}]}
        v2 = orjson.loads(self.handle_v2(orjson.dumps(v2_body)))["outputs"][0]["data"]
        for label, got in (("V1", np.asarray(v1, dtype=np.float64).reshape(-1)), ("V2", np.asarray(v2))):
            diff = float(np.max(np.abs(got - expected)))
            if not diff <= EQUALITY_ATOL:
                raise BadInput(f"self-check failed: {label} answers differ from the SavedModel by {diff:.3g}")

    # --- the request path (shared by the ASGI front, KServe's dataplane and the self-check) -------------------

    def handle_v1(self, body: bytes) -> bytes:
        """Answers a V1 request body exactly as TF Serving shapes it: ``{"predictions": [[v], ...]}``."""
        spec = self._spec()
        start = time.perf_counter()
        rows, key = rows_from_v1(parse_json(body), spec)
        parsed = time.perf_counter()
        predictions = predict_rows(spec, rows)
        predicted = time.perf_counter()
        # Output shape (None, 1): one single-value list per row, as TF Serving answers for this model.
        out = orjson.dumps({key: predictions.reshape(-1, 1)}, option=orjson.OPT_SERIALIZE_NUMPY)
        spec.metrics.observe(start, parsed, predicted, time.perf_counter())
        return out

    def handle_v2(self, body: bytes) -> bytes:
        """Answers a V2 infer request body with one FP64 output of shape ``[n, 1]``."""
        spec = self._spec()
        start = time.perf_counter()
        rows, request_id = rows_from_v2(parse_json(body), spec, owned_only=True)  # NotOwned: the front delegates
        parsed = time.perf_counter()
        predictions = predict_rows(spec, rows)
        predicted = time.perf_counter()
        response: dict[str, Any] = {"model_name": spec.name, "id": request_id or str(uuid.uuid4())}
        if spec.version:
            response["model_version"] = spec.version
        response["outputs"] = [{"name": spec.output_name, "shape": [len(predictions), 1],
                                "datatype": OUTPUT_DATATYPE, "data": predictions}]
        out = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
        spec.metrics.observe(start, parsed, predicted, time.perf_counter())
        return out

    def handle_explain(self, body: bytes) -> bytes:
        """Answers a V1 ``:explain`` body (the bodies ``:predict`` takes) with ``{"explanations": [...]}``."""
        return explain_body(self._spec(), self.explainer, body)

    async def explain(self, payload: dict, headers: dict[str, str] | None = None) -> Any:
        """KServe's dataplane explain entry point (when a request does not come through the ASGI front)."""
        try:
            return explain_payload(self._spec(), self.explainer, payload)
        except RequestError as exc:
            raise (ModelNotReady(self.name) if exc.status == 503 else InvalidInput(exc.message)) from None

    async def predict(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> Any:
        """KServe's dataplane entry point: every request the ASGI front does not fully own arrives here.

        KServe has already decoded the body (the V2 binary tensor extension included) and will encode the answer
        (binary outputs when the request asks for them), so these requests behave as on stock KServe; the checks
        and the prediction are the fast path's own.
        """
        try:
            spec = self._spec()
            if isinstance(payload, InferRequest):
                rows, _ = rows_from_v2(_infer_request_as_dict(payload), spec)
                predictions = predict_rows(spec, rows)
                output = InferOutput(spec.output_name, [len(predictions), 1], OUTPUT_DATATYPE)
                output.set_data_from_numpy(predictions.reshape(-1, 1), binary_data=False)  # to_rest re-encodes
                return InferResponse(
                    payload.id or str(uuid.uuid4()), spec.name, [output], model_version=spec.version,
                    use_binary_outputs=payload.use_binary_outputs, requested_outputs=payload.request_outputs,
                )
            rows, key = rows_from_v1(payload, spec)
            return {key: predict_rows(spec, rows).reshape(-1, 1).tolist()}
        except RequestError as exc:
            if exc.status == 503:
                raise ModelNotReady(self.name) from None
            if exc.status == 400:
                raise InvalidInput(exc.message) from None
            raise HTTPException(exc.status, exc.message) from None  # 413: the app's handler answers {"error": ...}

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata: the model's inputs, one per feature, in the card's order."""
        spec = self._spec()
        return [{"name": name, "datatype": OUTPUT_DATATYPE, "shape": [-1, 1]} for name in spec.features]

    def get_output_types(self) -> list[dict[str, Any]]:
        spec = self._spec()
        return [{"name": spec.output_name, "datatype": OUTPUT_DATATYPE, "shape": [-1, 1]}]

    def _spec(self) -> ModelSpec:
        if self.spec is None:
            raise RequestError(503, f"model {self.name} is not loaded")
        return self.spec



def _infer_request_as_dict(request: InferRequest) -> dict[str, Any]:
    """KServe's decoded request in the JSON form `rows_from_v2` reads (binary tensors are lists by now)."""
    inputs = []
    for tensor in request.inputs:
        data = tensor.data if isinstance(tensor.data, list) else tensor.as_numpy().reshape(-1).tolist()
        inputs.append({"name": tensor.name, "shape": list(tensor.shape), "datatype": tensor.datatype, "data": data,
                       "parameters": tensor.parameters})
    out: dict[str, Any] = {"inputs": inputs}
    if request.request_outputs:
        out["outputs"] = [{"name": o.name} for o in request.request_outputs]
    return out
