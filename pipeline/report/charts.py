"""Inline SVG charts: horizontal bars for totals, and one run's rate over time with its own caps drawn in.

A rate chart draws one series (uploads/s, or attached rows/s) and only the caps that bound that series in the
same unit; its legend sits under the plot with a colour key per line; ticks are round (1-2-5 steps, and whole
seconds, minutes or hours on the time axis).

Every label is escaped (``pipeline.report.text``): an SVG inside HTML is parsed as markup, so a reason such as
``</svg><script>`` must arrive as text; invisible characters in it are shown as ``<U+XXXX>`` markers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from pipeline.report.records import Series
from pipeline.report.text import plain, svg_text

__all__ = ["Cap", "bar_chart", "nice_ticks", "rate_chart", "time_ticks"]

_COLOURS = {"uploaded": "#2e7d32", "skipped": "#607d8b", "rejected": "#ef6c00", "failed": "#c62828"}
_CAP_COLOURS = ("#c62828", "#ef6c00")
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400,
               172_800, 604_800)


_e = plain  # titles and labels that hold text only; <text> content goes through svg_text (styled markers)


def bar_chart(title: str, items: Sequence[tuple[str, int]], *, colour_by: Sequence[str] | None = None) -> str:
    """Horizontal bars, one per ``(label, count)``; ``colour_by`` names a status per bar for its colour."""
    if not items:
        return ""
    width, label_w, bar_h = 720, 240, 22
    height = bar_h * len(items) + 10
    top = max(count for _, count in items) or 1
    parts = [f'<svg class="chart" role="img" aria-label="{_e(title)}" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">', f"<title>{_e(title)}</title>"]
    for i, (label, count) in enumerate(items):
        y = 5 + i * bar_h
        length = (width - label_w - 90) * count / top
        status = colour_by[i] if colour_by is not None else label
        colour = _COLOURS.get(status, "#546e7a")
        shown = label if len(label) <= 34 else label[:33] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{svg_text(shown)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{bar_h - 6}" fill="{colour}"/>')
        parts.append(f'<text x="{label_w + length + 6:.1f}" y="{y + 15}">{count:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Cap:
    """A cap drawn as a dashed line: ``name`` (``presign``, ``status``) and its label, at ``per_s`` per second."""

    name: str
    label: str
    per_s: float


def nice_ticks(peak: float, count: int = 4) -> list[float]:
    """Round ticks from 0 to at least ``peak`` in about ``count`` steps of 1, 2 or 5 times a power of ten."""
    peak = max(peak, 1e-9)
    raw = peak / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    steps = math.ceil(peak / step - 1e-9)
    return [round(i * step, 10) for i in range(steps + 1)]


def time_ticks(start: float, end: float, count: int = 6) -> tuple[float, list[float]]:
    """``(step, ticks)``: round instants (whole seconds, minutes, hours) within ``[start, end]``, at most about
    ``count`` of them."""
    span = max(end - start, 1.0)
    longest = _TIME_STEPS[-1] * math.ceil(span / count / _TIME_STEPS[-1])
    step = next((s for s in _TIME_STEPS if span / s <= count), longest)
    first = math.ceil(start / step) * step
    return float(step), [float(first + i * step) for i in range(int((end - first) // step) + 1)]


def _tick_label(value: float) -> str:
    return f"{value:,.10g}"


def _clock(epoch: float, step: float, span: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    if span >= 86_400:
        return moment.strftime("%m-%d %H:%M")
    return moment.strftime("%H:%M:%S" if step < 60 else "%H:%M")


def _rebin(series: Series, buckets: int) -> tuple[float, list[float]]:
    """``(bucket seconds, rows per second)`` with at most ``buckets`` buckets."""
    factor = max(1, math.ceil(len(series.counts) / buckets))
    width = series.width * factor
    rates = [sum(series.counts[i:i + factor]) / width for i in range(0, len(series.counts), factor)]
    return width, rates


def rate_chart(series: Series, *, title: str, unit: str, colour: str, start: float, end: float,
               caps: Sequence[Cap] = ()) -> str:
    """``series`` as ``unit`` over ``[start, end]`` (one run), with each cap in ``caps`` (same unit) as a dashed
    line, round ticks, and a legend with a colour key per line under the plot."""
    width, left, right, top_pad = 560, 52, 30, 10
    plot_w, plot_h = width - left - right, 150
    start = min(start, series.start)  # the whole of the first and last buckets is drawn
    end = max(end, series.start + series.width * len(series.counts))
    span = max(end - start, 1.0)
    bucket, rates = _rebin(series, 200)
    drawn = [c for c in caps if c.per_s > 0]
    height = top_pad + plot_h + 36 + 16 * (1 + len(drawn))
    ticks = nice_ticks(max([*rates, *(c.per_s for c in drawn), 0.0]) or 1.0)
    top = ticks[-1]

    def x(t: float) -> float:
        return left + plot_w * min(max(t - start, 0.0), span) / span

    def y(rate: float) -> float:
        return top_pad + plot_h * (1 - rate / top)

    base = y(0)
    parts = [f'<svg class="chart rate" role="img" aria-label="{_e(title)}" data-series="{_e(series.label)}" '
             f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
             f"<title>{_e(title)}</title>"]
    for tick in ticks:
        parts.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + plot_w}" y2="{y(tick):.1f}" '
                     f'stroke="{"#90a4ae" if tick == 0 else "#eceff1"}"/>')
        parts.append(f'<text class="ytick" x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">'
                     f"{_tick_label(tick)}</text>")
    step, instants = time_ticks(start, start + span)
    for t in instants:
        anchor = "start" if x(t) < left + 30 else "end" if x(t) > left + plot_w - 30 else "middle"
        parts.append(f'<line x1="{x(t):.1f}" y1="{base:.1f}" x2="{x(t):.1f}" y2="{base + 4:.1f}" stroke="#90a4ae"/>'
                     f'<text class="xtick" x="{x(t):.1f}" y="{base + 17:.1f}" text-anchor="{anchor}">'
                     f"{_e(_clock(t, step, span))}</text>")
    points = " ".join(f"{x(series.start + bucket * j):.1f},{y(r):.1f} {x(series.start + bucket * (j + 1)):.1f},"
                      f"{y(r):.1f}" for j, r in enumerate(rates))
    parts.append(f'<polyline data-series="{_e(series.label)}" fill="none" stroke="{colour}" stroke-width="1.6" '
                 f'points="{points}"/>')
    legend = [(colour, f"{series.label} ({unit}, per {_duration(bucket)})", "", "")]
    for i, cap in enumerate(drawn):
        cap_colour = _CAP_COLOURS[i % len(_CAP_COLOURS)]
        parts.append(f'<line data-cap="{_e(cap.name)}" x1="{left}" y1="{y(cap.per_s):.1f}" x2="{left + plot_w}" '
                     f'y2="{y(cap.per_s):.1f}" stroke="{cap_colour}" stroke-dasharray="6 4"/>')
        legend.append((cap_colour, cap.label, ' stroke-dasharray="6 4"', cap.name))
    ly = base + 36
    for i, (key_colour, label, dash, cap_name) in enumerate(legend):
        row = ly + 16 * i
        kind = f' data-cap="{_e(cap_name)}"' if cap_name else f' data-series="{_e(series.label)}"'
        parts.append(f'<g class="legend"{kind}><line x1="{left}" y1="{row - 4}" x2="{left + 22}" y2="{row - 4}" '
                     f'stroke="{key_colour}" stroke-width="3"{dash}/><text x="{left + 28}" y="{row}">'
                     f"{_e(label)}</text></g>")
    parts.append("</svg>")
    return "".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"
