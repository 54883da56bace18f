"""Inline SVG charts: horizontal bars for totals, and throughput over time with the rate caps drawn in.

Every label is escaped (``pipeline.report.text``): an SVG inside HTML is parsed as markup, so a reason such as
``</svg><script>`` must arrive as text; invisible characters in it are shown as ``<U+XXXX>`` markers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone

from pipeline.report.records import Series
from pipeline.report.text import plain, svg_text

__all__ = ["bar_chart", "throughput_chart"]

_COLOURS = {"uploaded": "#2e7d32", "skipped": "#607d8b", "rejected": "#ef6c00", "failed": "#c62828"}
_SERIES_COLOURS = ("#1565c0", "#6a1b9a")
_CAP_COLOURS = ("#c62828", "#ef6c00", "#6a1b9a")


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


def _clock(epoch: float, span: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%H:%M:%S" if span < 86_400 else "%Y-%m-%d %H:%M")


def _rebin(series: Series, buckets: int) -> tuple[float, list[float]]:
    """``(bucket seconds, rows per second)`` with at most ``buckets`` buckets."""
    factor = max(1, math.ceil(len(series.counts) / buckets))
    width = series.width * factor
    rates = [sum(series.counts[i:i + factor]) / width for i in range(0, len(series.counts), factor)]
    return width, rates


def throughput_chart(series: Sequence[Series], caps: Sequence[tuple[str, float]]) -> str:
    """Rows per second over time for each series, with each ``(label, per second)`` cap as a dashed line."""
    if not series:
        return ""
    width, height, left, bottom, top_pad = 760, 300, 60, 40, 20
    start = min(s.start for s in series)
    end = max(s.start + s.width * len(s.counts) for s in series)
    span = max(end - start, 1.0)
    binned = [(s, *_rebin(s, 240)) for s in series]
    peak = max([max(rates) for _, _, rates in binned] + [rate for _, rate in caps if rate > 0] + [1.0]) * 1.1
    plot_w, plot_h = width - left - 20, height - bottom - top_pad

    def x(t: float) -> float:
        return left + plot_w * (t - start) / span

    def y(rate: float) -> float:
        return top_pad + plot_h * (1 - rate / peak)

    parts = [f'<svg class="chart" role="img" aria-label="throughput" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}"><title>Rows per second</title>',
             f'<line x1="{left}" y1="{y(0):.1f}" x2="{left + plot_w}" y2="{y(0):.1f}" stroke="#90a4ae"/>',
             f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{y(0):.1f}" stroke="#90a4ae"/>']
    for tick in range(5):
        rate = peak * tick / 4
        parts.append(f'<text x="{left - 6}" y="{y(rate) + 4:.1f}" text-anchor="end">{rate:.3g}</text>')
    for tick, anchor in enumerate(("start", "middle", "middle", "end")):
        t = start + span * tick / 3
        parts.append(f'<text x="{x(t):.1f}" y="{height - 18}" text-anchor="{anchor}">{_e(_clock(t, span))}</text>')
    parts.append(f'<text x="{left}" y="{height - 2}">UTC; rows per second in buckets of '
                 f'{_e(_duration(max(w for _, w, _ in binned)))}</text>')
    for i, (s, bucket, rates) in enumerate(binned):
        points = " ".join(f"{x(s.start + bucket * j):.1f},{y(r):.1f} {x(s.start + bucket * (j + 1)):.1f},{y(r):.1f}"
                          for j, r in enumerate(rates))
        colour = _SERIES_COLOURS[i % len(_SERIES_COLOURS)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        parts.append(f'<text x="{left + 8}" y="{top_pad + 14 + 14 * i}" fill="{colour}">{_e(s.label)} rows/s</text>')
    for i, (label, rate) in enumerate(c for c in caps if c[1] > 0):
        colour = _CAP_COLOURS[i % len(_CAP_COLOURS)]
        parts.append(f'<line x1="{left}" y1="{y(rate):.1f}" x2="{left + plot_w}" y2="{y(rate):.1f}" '
                     f'stroke="{colour}" stroke-dasharray="6 4"/>')
        parts.append(f'<text x="{left + plot_w}" y="{y(rate) - 4:.1f}" text-anchor="end" fill="{colour}">'
                     f"{_e(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"
