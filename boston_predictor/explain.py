"""``:explain``: exact per-feature attributions of each prediction, in KServe's ``{"explanations": [...]}`` shape.

The model is affine, so ``prediction = baseline + sum_i w_i * (x_i - mean_i)`` exactly, with ``baseline`` the
prediction at the training rows' feature means (recorded in the model card at training time). No explainer model or
sampling is needed. Requests are read by the same V1 parser as ``:predict``, so explain accepts exactly the bodies
predict accepts and refuses the others with the same status and message; the same batch and body limits apply.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import orjson

from boston_model.card import feature_means_from_card
from boston_model.errors import BadInput
from boston_predictor.errors import RequestError
from boston_predictor.protocol import rows_from_v1
from boston_predictor.rows import all_finite, parse_json, predict_rows
from boston_predictor.spec import ModelSpec

_ROWS_PER_BLOCK = 256  # ~110 kB of output per block


@dataclass(frozen=True)
class Explainer:
    """The reference point of the attributions: the training rows' feature means and the prediction there."""

    means: np.ndarray
    baseline: float
    row_template: bytes  # one explanation as JSON, a %b slot for each number (see `encode_explanations`)

    @classmethod
    def from_card(cls, card: dict, spec: ModelSpec) -> Explainer | None:
        """The explainer a card supports, or None for cards written before training recorded the means."""
        try:
            means = feature_means_from_card(card, spec.model)
        except BadInput:
            return None
        baseline = float(spec.model.predict(means.reshape(1, -1))[0])
        return cls(means, baseline, _row_template(spec.features, baseline))


def _row_template(names: tuple[str, ...], baseline: float) -> bytes:
    """``{"prediction":%b,"baseline":<b>,"contributions":{"<name>":%b,...}},`` with names JSON-escaped."""
    keys = b",".join(orjson.dumps(name).replace(b"%", b"%%") + b":%b" for name in names)
    return b'{"prediction":%b,"baseline":' + orjson.dumps(baseline) + b',"contributions":{' + keys + b"}},"


def explanations(spec: ModelSpec, explainer: Explainer, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictions (the one prediction path, with its non-finite check) and each feature's contribution."""
    predictions = predict_rows(spec, rows)
    contributions = (rows - explainer.means) * spec.model.weights
    if not all_finite(contributions.reshape(-1)):
        row = int(np.argmin(np.isfinite(contributions).all(axis=1)))
        raise RequestError(400, f"row {row}: a contribution is not finite (the input values are too large)")
    return predictions, contributions


def encode_explanations(explainer: Explainer, predictions: np.ndarray, contributions: np.ndarray) -> bytes:
    """``{"explanations": [{"prediction", "baseline", "contributions": {name: value}}, ...]}`` as JSON bytes.

    Equal to ``orjson.dumps`` of the dicts (a test checks it), built without them: orjson writes every number once
    (its shortest round-trip form), and one C-level format fills the row template per block of rows. A dict per row
    would cost twice as much at 10 000 rows, and explaining may cost at most twice predicting. Blocks keep every
    temporary small enough for the allocator to reuse: one pass over 10 000 rows at once made ~20 MB of fresh
    temporaries, and faulting those pages in cost as much as the encoding itself.
    """
    table = np.column_stack([predictions, contributions])
    template = explainer.row_template
    parts = [b'{"explanations":[']
    for start in range(0, len(table), _ROWS_PER_BLOCK):
        block = table[start:start + _ROWS_PER_BLOCK]
        numbers = orjson.dumps(block.reshape(-1), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
        parts.append((template * len(block)) % tuple(numbers))
    if len(parts) > 1:
        parts[-1] = parts[-1][:-1]  # the last row's trailing comma
    parts.append(b"]}")
    return b"".join(parts)


def as_dicts(spec: ModelSpec, explainer: Explainer, predictions: np.ndarray, contributions: np.ndarray) -> dict:
    """The same answer as Python objects (KServe's dataplane path and the encoder's test)."""
    names = spec.features
    return {"explanations": [
        {"prediction": p, "baseline": explainer.baseline, "contributions": dict(zip(names, c, strict=True))}
        for p, c in zip(predictions.tolist(), contributions.tolist(), strict=True)
    ]}


def _rows(spec: ModelSpec, explainer: Explainer | None, payload: object) -> tuple[Explainer, np.ndarray]:
    rows, _ = rows_from_v1(payload, spec)  # a bad body is refused exactly as :predict refuses it
    if explainer is None:
        raise RequestError(501, f"model {spec.name!r} cannot explain: its card has no training feature means "
                                "(trained before explanations existed); retrain it")
    return explainer, rows


def explain_payload(spec: ModelSpec, explainer: Explainer | None, payload: object) -> dict:
    """Answers a decoded V1 request (KServe's dataplane hands us dicts)."""
    explainer, rows = _rows(spec, explainer, payload)
    return as_dicts(spec, explainer, *explanations(spec, explainer, rows))


@contextmanager
def _without_gc_pauses() -> Iterator[None]:
    """Holds off the cyclic garbage collector while a response is built.

    Reading a large body makes thousands of fresh lists without reference cycles; each few hundred allocations
    would start a collection that walks the server's whole heap (KServe, FastAPI, numpy). Nothing here awaits, so
    no other request runs meanwhile.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def explain_body(spec: ModelSpec, explainer: Explainer | None, body: bytes) -> bytes:
    """Answers a raw ``:explain`` request body."""
    with _without_gc_pauses():
        explainer, rows = _rows(spec, explainer, parse_json(body))
        return encode_explanations(explainer, *explanations(spec, explainer, rows))
