"""Self-contained HTML reports (no network fetches): tables and matplotlib figures embedded as PNG data URIs."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:right}"
    "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.pass{color:#060}.fail{color:#a00}"
    "img{max-width:100%}"
)


def figure_to_img(figure: Any, alt: str) -> str:
    """Renders a matplotlib figure to an ``<img>`` tag with an embedded PNG, then closes the figure."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An HTML table; floats shown with 4 significant decimals."""

    def cell(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def page(title: str, *sections: str) -> str:
    """A complete HTML document."""
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>"
    )
