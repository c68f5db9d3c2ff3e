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

from boston_predictor.errors import RequestError
from boston_predictor.protocol import rows_from_v1
from boston_predictor.rows import parse_json, predict_rows
from boston_predictor.spec import ModelSpec
from components.common.model import ModelLoadError, feature_means_from_card


@dataclass(frozen=True)
class Explainer:
    """The reference point of the attributions: the training rows' feature means and the prediction there."""

    means: np.ndarray
    baseline: float

    @classmethod
    def from_card(cls, card: dict, spec: ModelSpec) -> Explainer | None:
        """The explainer a card supports, or None for cards written before training recorded the means."""
        try:
            means = feature_means_from_card(card, spec.model)
        except ModelLoadError:
            return None
        return cls(means, float(spec.model.predict(means.reshape(1, -1))[0]))


def explanations(spec: ModelSpec, explainer: Explainer, rows: np.ndarray) -> list[dict]:
    """One explanation per row: prediction, baseline and the contribution of each feature, named."""
    predictions = predict_rows(spec, rows)  # the one prediction path, with its non-finite check
    contributions = (rows - explainer.means) * spec.model.weights
    names = spec.features
    baseline = explainer.baseline
    return [
        {"prediction": p, "baseline": baseline, "contributions": dict(zip(names, c, strict=True))}
        for p, c in zip(predictions.tolist(), contributions.tolist(), strict=True)
    ]


def explain_payload(spec: ModelSpec, explainer: Explainer | None, payload: object) -> dict:
    """Answers a decoded V1 request (KServe's dataplane hands us dicts)."""
    rows, _ = rows_from_v1(payload, spec)  # a bad body is refused exactly as :predict refuses it
    if explainer is None:
        raise RequestError(501, f"model {spec.name!r} cannot explain: its card has no training feature means "
                                "(trained before explanations existed); retrain it")
    return {"explanations": explanations(spec, explainer, rows)}


@contextmanager
def _without_gc_pauses() -> Iterator[None]:
    """Holds off the cyclic garbage collector while a response is built.

    A large answer is thousands of fresh dicts and lists without reference cycles; each few hundred allocations
    would start a collection that walks the server's whole heap (KServe, FastAPI, numpy), which at 10 000 rows cost
    three times the work itself. Nothing here awaits, so no other request runs meanwhile.
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
        return orjson.dumps(explain_payload(spec, explainer, parse_json(body)))
