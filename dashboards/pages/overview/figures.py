"""Overview figures: a sparkline per SLO row, as a small inline SVG.

Two hundred Plotly graphs would cost the browser seconds to draw; a sparkline is a polyline, so
it is built here as SVG markup (pure: values in, markup out; single-quoted attributes, so it
travels in JSON unescaped) and placed inline in the overview table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["sparkline_svg"]

LINE_COLOUR = "#3b6fb6"
REFERENCE_COLOUR = "#c0392b"


def sparkline_svg(
    values: Sequence[float | None],
    *,
    positions: Sequence[float] | None = None,
    width: int = 120,
    height: int = 28,
    reference: float | None = None,
    title: str = "",
) -> str:
    """A sparkline of ``values`` (oldest first), evenly spaced, or each at its ``positions``
    (0 = left edge, 1 = right edge; e.g. its time within the series). A ``None`` breaks the
    line (no data is not drawn as zero). ``reference`` (e.g. 0 = budget exhausted) is drawn as
    a dashed line when it falls inside the values' range. The last value gets a dot."""
    pad = 2.0
    known = [value for value in values if value is not None and math.isfinite(value)]
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='sparkline' width='{width}' "
        f"height='{height}' viewBox='0 0 {width} {height}'>"
    ]
    if title:
        parts.append(f"<title>{_escape(title)}</title>")
    # Whole-pixel coordinates: finer is invisible at this size and doubles the markup.
    if not known:
        parts.append(
            f"<text x='{width / 2:.0f}' y='{height / 2 + 4:.0f}' text-anchor='middle' "
            "font-size='10' fill='#888'>no data</text></svg>"
        )
        return "".join(parts)
    low, high = min(known), max(known)
    if math.isclose(low, high, rel_tol=0, abs_tol=1e-12):
        low, high = low - 0.5 * (abs(low) or 1) * 0.01, high + 0.5 * (abs(high) or 1) * 0.01
    span = high - low
    inner = width - 2 * pad
    if positions is None or len(positions) != len(values):
        positions = [index / max(len(values) - 1, 1) for index in range(len(values))]

    def y(value: float) -> float:
        return pad + (high - value) / span * (height - 2 * pad)

    if reference is not None and low <= reference <= high:
        ref_y = y(reference)
        parts.append(
            f"<line class='reference' x1='0' x2='{width}' y1='{ref_y:.1f}' y2='{ref_y:.1f}' "
            f"stroke='{REFERENCE_COLOUR}' stroke-width='1' stroke-dasharray='3,2'/>"
        )
    segments: list[list[str]] = [[]]
    last: tuple[float, float] | None = None
    for index, value in enumerate(values):
        if value is None or not math.isfinite(value):
            if segments[-1]:
                segments.append([])
            continue
        x_value, y_value = pad + positions[index] * inner, y(value)
        segments[-1].append(f"{x_value:.0f},{y_value:.0f}")
        last = (x_value, y_value)
    for segment in segments:
        if len(segment) == 1:
            x_text, y_text = segment[0].split(",")
            parts.append(f"<circle cx='{x_text}' cy='{y_text}' r='1.2' fill='{LINE_COLOUR}'/>")
        elif segment:
            parts.append(
                f"<polyline class='series' fill='none' stroke='{LINE_COLOUR}' "
                f"stroke-width='1.5' points='{' '.join(segment)}'/>"
            )
    if last is not None:
        parts.append(f"<circle cx='{last[0]:.1f}' cy='{last[1]:.1f}' r='2' fill='{LINE_COLOUR}'/>")
    parts.append("</svg>")
    return "".join(parts)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
