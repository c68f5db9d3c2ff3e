"""What the request path knows about the served model (`ModelSpec`), the serving limits and the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME
from prometheus_client import Counter

from boston_model.card import LinearModel

if TYPE_CHECKING:
    from boston_predictor.inputs import InputCounts

DEFAULT_BIND = "127.0.0.1"
# 10 000 rows of 13 full-precision floats is about 2.5 MB of JSON; the two limits are set to agree.
DEFAULT_MAX_BATCH = 10_000
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
OUTPUT_DATATYPE = "FP64"  # predictions are computed in float64, whatever the request's datatype

REQUESTS = Counter(
    "predictor_requests_total", "Predict/infer requests answered by the fast path, by protocol and status code",
    ["model_name", "protocol", "code"],
)


class Metrics:
    """Prometheus series for one model: KServe's own latency histograms plus a request counter by status.

    KServe's Model.__call__ fills the same histograms, so dashboards built for KServe keep working. The labelled
    children are looked up once: `labels()` takes a lock and builds a key, several microseconds per request.
    """

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.pre = PRE_HIST_TIME.labels(model_name=model_name)
        self.predict = PREDICT_HIST_TIME.labels(model_name=model_name)
        self.post = POST_HIST_TIME.labels(model_name=model_name)
        self._requests: dict[tuple[str, int], Any] = {}

    def observe(self, start: float, parsed: float, predicted: float, encoded: float) -> None:
        self.pre.observe(parsed - start)
        self.predict.observe(predicted - parsed)
        self.post.observe(encoded - predicted)

    def count(self, protocol: str, status: int) -> None:
        child = self._requests.get((protocol, status))
        if child is None:
            child = self._requests[(protocol, status)] = REQUESTS.labels(self.model_name, protocol, str(status))
        child.inc()


@dataclass
class ModelSpec:
    """What the request path needs to know about the model; everything comes from the model card.

    Attributes:
        name: The model name used in URLs.
        model: The folded affine model (the shared prediction path).
        output_name: Name of the single output (the card's target, e.g. ``MEDV``).
        input_name: The SavedModel signature's input name (TF-Serving named-input requests use it).
        signature_name: The SavedModel signature served.
        version: The model version, when known (from the storage URI or manifest).
        max_batch: Most rows accepted in one request.
        inputs: Where served rows are counted for drift (`boston_predictor.inputs`); the self-check is not counted.
    """

    name: str
    model: LinearModel
    output_name: str
    input_name: str
    signature_name: str
    version: str | None
    max_batch: int
    inputs: InputCounts | None = None  # served rows per feature and training bin (None: not counted)
    features: tuple[str, ...] = field(init=False)
    feature_set: frozenset[str] = field(init=False)
    metrics: Metrics = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.features = self.model.feature_names
        self.feature_set = frozenset(self.features)
        self.metrics = Metrics(self.name)

    @property
    def n_features(self) -> int:
        return len(self.features)
