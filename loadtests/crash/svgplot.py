"""A small SVG plotter for the crash report: series over time as lines or points, shaded time spans,
axes with ticks and labels, a legend, an optional log scale and horizontal reference lines.

Pure Python and no dependency, so the report stays one self-contained file: each plot is an SVG
document the report embeds as a ``data:`` image.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

# Okabe-Ito: told apart by people with the common colour-vision deficiencies, dark enough on white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8C6D00", "#56B4E9", "#000000", "#E69F00")
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
LegendEntry = tuple[str, str, str]   # label, kind of mark, colour


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    kind: Literal["line", "points", "crosses"] = "line"
    color: str | None = None


@dataclass(frozen=True)
class Span:
    """A shaded stretch of the x axis (an upload's window, the uploads phase)."""

    start: float
    end: float
    label: str
    color: str = "#F0C94C"
    opacity: float = 0.25


@dataclass(frozen=True)
class Rule:
    """A horizontal reference line (a limit)."""

    y: float
    label: str
    color: str = "#B00020"


@dataclass
class Plot:
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    log_y: bool = False
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None
    width: int = 640
    height: int = 300


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(power * m for m in (1, 2, 2.5, 5, 10) if power * m >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks: list[float] = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten (and 2x, 5x when the range is short) within [low, high], both positive."""
    ticks: list[float] = []
    spread = math.log10(high) - math.log10(low)
    multipliers = (1.0, 2.0, 5.0) if spread <= 3 else (1.0,)
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for m in multipliers:
            value = m * 10.0**exponent
            if low * (1 - 1e-9) <= value <= high * (1 + 1e-9):
                ticks.append(value)
    return ticks


def format_tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:g}k" if value % 1000 == 0 else f"{value:,.0f}"
    return f"{value:g}"


def render_svg(plot: Plot) -> str:
    """The plot as a standalone SVG document (with a ``<title>`` naming it)."""
    left, right, top, bottom = 64, 16, 34, 46
    legend_entries: list[LegendEntry] = [(s.label, s.kind, color_of(s, i)) for i, s in enumerate(plot.series)]
    legend_entries += [(label, "span", color) for label, color in unique_spans(plot.spans)]
    legend_entries += [(r.label, "rule", r.color) for r in plot.rules]
    legend_rows = legend_layout(legend_entries, plot.width - left - right)
    height = plot.height + 18 * len(legend_rows) + 6
    inner_w, inner_h = plot.width - left - right, plot.height - top - bottom

    x0, x1 = plot.x_range or data_range([x for s in plot.series for x, _ in s.points]
                                        + [v for sp in plot.spans for v in (sp.start, sp.end)])
    y0, y1 = plot.y_range or y_data_range(plot)
    if plot.log_y:
        y0, y1 = max(y0, 1e-3), max(y1, y0 * 10)
        ly0, ly1 = math.log10(y0), math.log10(y1)
    if x1 <= x0:
        x1 = x0 + 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * inner_w

    def sy(y: float) -> float:
        if plot.log_y:
            fraction = (math.log10(max(y, y0)) - ly0) / (ly1 - ly0)
        else:
            fraction = (y - y0) / (y1 - y0)
        return top + inner_h - min(max(fraction, 0.0), 1.0) * inner_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{plot.width}" height="{height}" '
           f'viewBox="0 0 {plot.width} {height}" font-family={quoteattr(FONT)} font-size="12">',
           f"<title>{escape(plot.title)}</title>",
           f'<rect width="{plot.width}" height="{height}" fill="#ffffff"/>',
           f'<text x="{left}" y="20" font-size="14" font-weight="bold" fill="#111111">{escape(plot.title)}</text>']
    for span in plot.spans:
        a, b = sx(max(span.start, x0)), sx(min(span.end, x1))
        if b > a:
            out.append(f'<rect x="{a:.1f}" y="{top}" width="{b - a:.1f}" height="{inner_h}" '
                       f'fill="{span.color}" fill-opacity="{span.opacity}"/>')
    y_ticks = log_ticks(y0, y1) if plot.log_y else nice_ticks(y0, y1)
    for tick in y_ticks:
        y = sy(tick)
        out.append(f'<line x1="{left}" x2="{left + inner_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#DDDDDD"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#333333">{format_tick(tick)}</text>')
    for tick in nice_ticks(x0, x1, 8):
        x = sx(tick)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + inner_h}" y2="{top + inner_h + 5}" stroke="#333333"/>')
        out.append(f'<text x="{x:.1f}" y="{top + inner_h + 18}" text-anchor="middle" fill="#333333">'
                   f"{format_tick(tick)}</text>")
    out.append(f'<rect x="{left}" y="{top}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#333333"/>')
    out.append(f'<text x="{left + inner_w / 2:.1f}" y="{top + inner_h + 36}" text-anchor="middle" '
               f'fill="#111111">{escape(plot.x_label)}</text>')
    out.append(f'<text transform="translate(16 {top + inner_h / 2:.1f}) rotate(-90)" text-anchor="middle" '
               f'fill="#111111">{escape(plot.y_label)}</text>')
    for rule in plot.rules:
        if y0 <= rule.y <= y1:
            y = sy(rule.y)
            out.append(f'<line x1="{left}" x2="{left + inner_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{rule.color}" '
                       'stroke-width="1.5" stroke-dasharray="6 4"/>')
    for i, series in enumerate(plot.series):
        out.append(series_svg(series, color_of(series, i), sx, sy, x0, x1))
    out.extend(legend_svg(legend_rows, left, plot.height + 10))
    out.append("</svg>")
    return "\n".join(out)


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


# --- pieces -------------------------------------------------------------------------------------


def color_of(series: Series, index: int) -> str:
    return series.color or PALETTE[index % len(PALETTE)]


def unique_spans(spans: Sequence[Span]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for span in spans:
        seen.setdefault(span.label, span.color)
    return list(seen.items())


def data_range(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    return min(finite), max(finite)


def y_data_range(plot: Plot) -> tuple[float, float]:
    values = [y for s in plot.series for _, y in s.points] + [r.y for r in plot.rules]
    low, high = data_range(values)
    if plot.log_y:
        positive = [v for v in values if v > 0 and math.isfinite(v)]
        return (min(positive) / 1.5, max(positive) * 1.5) if positive else (1.0, 10.0)
    low = min(low, 0.0)
    return low, high * 1.08 if high > low else low + 1.0


def series_svg(series: Series, color: str, sx: Callable[[float], float], sy: Callable[[float], float],
               x0: float, x1: float) -> str:
    visible = [(sx(x), sy(y)) for x, y in series.points if x0 <= x <= x1 and math.isfinite(y)]
    if not visible:
        return ""
    if series.kind == "line":
        path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(visible))
        return f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2" stroke-linejoin="round"/>'
    if series.kind == "crosses":
        marks = " ".join(f"M{x - 3:.1f},{y - 3:.1f} l6,6 m0,-6 l-6,6" for x, y in visible)
        return f'<path d="{marks}" fill="none" stroke="{color}" stroke-width="1.5"/>'
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.8"/>' for x, y in visible)
    return f'<g fill="{color}" fill-opacity="0.55">{dots}</g>'



def legend_layout(entries: Sequence[LegendEntry], width: int) -> list[list[tuple[float, LegendEntry]]]:
    """Entries placed left to right, wrapping to a new row when the plot's width is used up."""
    rows: list[list[tuple[float, LegendEntry]]] = []
    x = width + 1.0
    for entry in entries:
        size = 26 + 7.0 * len(entry[0]) + 14
        if x + size > width:
            rows.append([])
            x = 0.0
        rows[-1].append((x, entry))
        x += size
    return rows


def legend_svg(rows: list[list[tuple[float, LegendEntry]]], left: int, top: float) -> list[str]:
    out: list[str] = []
    for r, row in enumerate(rows):
        y = top + 18 * r
        for dx, (label, kind, color) in row:
            x = left + dx
            if kind == "span":
                out.append(f'<rect x="{x:.1f}" y="{y - 6:.1f}" width="18" height="10" fill="{color}" '
                           'fill-opacity="0.45"/>')
            elif kind == "points":
                out.append(f'<circle cx="{x + 9:.1f}" cy="{y - 1:.1f}" r="3" fill="{color}"/>')
            elif kind == "crosses":
                out.append(f'<path d="M{x + 6:.1f},{y - 4:.1f} l6,6 m0,-6 l-6,6" stroke="{color}" '
                           'stroke-width="1.5" fill="none"/>')
            else:
                dash = ' stroke-dasharray="6 4"' if kind == "rule" else ""
                out.append(f'<line x1="{x:.1f}" x2="{x + 18:.1f}" y1="{y - 1:.1f}" y2="{y - 1:.1f}" '
                           f'stroke="{color}" stroke-width="2"{dash}/>')
            out.append(f'<text x="{x + 24:.1f}" y="{y + 3:.1f}" fill="#111111">{escape(label)}</text>')
    return out
