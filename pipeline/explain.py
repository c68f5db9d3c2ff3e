"""Ask a live predictor why it predicts what it does (``:explain``), and show the answer as a table or a chart.

Used by ``boston-pipeline predict --explain`` and by the notebook; the attributions come from the server, which
computes them from the served model's card (see ``boston_predictor.explain``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import requests

from boston_model.errors import ReleaseFailed


@dataclass(frozen=True)
class LiveExplanation:
    """One row's explanation as the server sent it, with the row's values."""

    values: dict[str, float]
    prediction: float
    baseline: float
    contributions: dict[str, float]

    def ranked(self) -> list[tuple[str, float]]:
        """``(feature, contribution)`` largest magnitude first."""
        return sorted(self.contributions.items(), key=lambda item: -abs(item[1]))


def explain_live(url: str, model_name: str, rows: np.ndarray | Sequence[Sequence[float]],
                 timeout: float = 10.0) -> list[LiveExplanation]:
    """POSTs ``rows`` (in the model's feature order) to ``<url>/v1/models/<name>:explain``.

    Raises:
        ReleaseFailed: the server is unreachable or refuses the request (with its message), in one line.
    """
    body = {"instances": np.asarray(rows, dtype=np.float64).tolist()}
    try:
        response = requests.post(f"{url}/v1/models/{model_name}:explain", json=body, timeout=timeout)
    except requests.ConnectionError:
        raise ReleaseFailed(f"cannot reach {url}: is the predictor running? (`boston-pipeline run` starts it)") \
            from None
    except requests.Timeout:
        raise ReleaseFailed(f"{url} did not answer within {timeout:g} s") from None
    try:
        payload: Any = response.json()
    except ValueError:
        payload = {}
    if response.status_code != 200:
        reason = payload.get("error") if isinstance(payload, dict) else None
        raise ReleaseFailed(f"{url} answered HTTP {response.status_code}: {str(reason or response.text)[:200]}")
    return [
        LiveExplanation(dict(zip(e["contributions"], map(float, row), strict=True)), float(e["prediction"]),
                        float(e["baseline"]), {k: float(v) for k, v in e["contributions"].items()})
        for e, row in zip(payload["explanations"], body["instances"], strict=True)
    ]


def contributions_table(explanation: LiveExplanation, title: str = "") -> str:
    """A small text table: prediction = baseline + one contribution per feature, largest first."""
    lines = [f"{title}prediction {explanation.prediction:.4f} = baseline {explanation.baseline:.4f} "
             f"(the prediction at the training mean) + these contributions ($1000s):",
             f"  {'feature':<9}{'value':>10}{'contribution':>14}"]
    lines += [f"  {name:<9}{explanation.values[name]:>10g}{value:>+14.4f}" for name, value in explanation.ranked()]
    total = sum(explanation.contributions.values())
    lines.append(f"  {'sum':<9}{'':>10}{total:>+14.4f}")
    return "\n".join(lines)


def plot_contributions(explanation: LiveExplanation, ax: Any = None) -> Any:
    """A horizontal bar chart of one explanation (positive contributions raise the price); returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    ranked = list(reversed(explanation.ranked()))
    names = [f"{name} = {explanation.values[name]:g}" for name, _ in ranked]
    values = [value for _, value in ranked]
    ax.barh(names, values, color=["#3a7d44" if v >= 0 else "#b5403a" for v in values])
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("contribution to the predicted price ($1000s)")
    ax.set_title(f"baseline {explanation.baseline:.2f} → prediction {explanation.prediction:.2f}")
    return ax
