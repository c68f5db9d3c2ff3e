"""What the endpoint is asked: every served row's features counted into the card's training bins, on ``/metrics``.

The counts live in one numpy array per model; a request adds its rows with one vectorised pass
(`boston_model.drift.count_bins`), and Prometheus reads the array when it scrapes, as the counter
``boston_feature_rows_total{model_name, feature, bin}`` beside KServe's own metrics (same registry). No counter
object is touched per request, so counting costs one comparison and one ``bincount`` per request, whatever its size.
``boston-pipeline models drift`` turns these counts into the population stability index against training.

A card without a training distribution (trained before it was recorded) serves as before; nothing is counted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily

from boston_model.drift import METRIC, CardBins, card_bins, count_bins
from boston_model.errors import BadInput


class InputCounts:
    """Per-feature, per-bin row counts of one served model, exported as a Prometheus counter.

    Args:
        model_name: The served name (the ``model_name`` label).
        card: The model card; without a training distribution nothing is counted (`enabled` is False).
    """

    def __init__(self, model_name: str, card: Mapping[str, Any]) -> None:
        self.model_name = model_name
        try:
            self.bins: CardBins | None = card_bins(card)
        except BadInput:
            self.bins = None
        width = max(self.bins.n_bins) if self.bins else 0
        self._counts = np.zeros((len(self.bins.feature_names) if self.bins else 0, width), dtype=np.int64)
        self._lock = threading.Lock()  # REST and gRPC may count from different threads

    @property
    def enabled(self) -> bool:
        return self.bins is not None

    def add(self, rows: np.ndarray) -> None:
        """Counts ``rows`` (``(n, n_features)``, finite: the predictor has validated them)."""
        if self.bins is None:
            return
        counted = count_bins(rows, self.bins)
        with self._lock:
            self._counts += counted[:, : self._counts.shape[1]]

    def snapshot(self) -> np.ndarray:
        with self._lock:
            return self._counts.copy()

    def collect(self) -> Iterator[CounterMetricFamily]:
        """The Prometheus collector protocol: one counter family, a sample per feature and bin."""
        family = CounterMetricFamily(METRIC, "Served rows per feature and training bin (bin = index of the card's "
                                     "bin, lowest first)", labels=["model_name", "feature", "bin"])
        if self.bins is not None:
            counts = self.snapshot()
            for j, (name, n_bins) in enumerate(zip(self.bins.feature_names, self.bins.n_bins, strict=True)):
                for i in range(n_bins):
                    family.add_metric([self.model_name, name, str(i)], float(counts[j, i]))
        yield family

    def register(self) -> InputCounts:
        """Adds these counts to the registry KServe's ``/metrics`` serves; a model loaded again replaces its own."""
        with _REGISTERED_LOCK:
            earlier = _REGISTERED.pop(self.model_name, None)
            if earlier is not None:
                REGISTRY.unregister(earlier)
            REGISTRY.register(self)
            _REGISTERED[self.model_name] = self
        return self


_REGISTERED: dict[str, InputCounts] = {}
_REGISTERED_LOCK = threading.Lock()
