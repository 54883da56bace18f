"""Small pieces of the page's HTML: number cells, counts in words, sizes, durations, paths that wrap at their
separators, and long tables folded after their first rows.

Everything from the data goes through ``text.marked`` (escaped, invisible characters as markers) or
``text.plain`` (attributes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone

from pipeline.report.text import marked, plain

__all__ = ["FOLD", "count_cell", "folded_table", "path_html", "plural", "share_cell", "size_text", "span_text",
           "utc"]

FOLD = 10
"""Rows a long table shows before the rest is folded into a ``<details>``."""
_SEPARATOR = re.compile(r"([/\\])")


def count_cell(count: int, ident: str = "", **data: str) -> str:
    """A number cell; ``ident`` and ``data-*`` attributes say what it counts, for readers of the page's data."""
    attrs = (f' id="{plain(ident)}"' if ident else "") + "".join(f' data-{k}="{plain(v)}"' for k, v in data.items())
    return f'<td class="n"{attrs} data-count="{int(count)}">{int(count):,}</td>'


def share_cell(count: int, total: int) -> str:
    """``count`` as a percentage of ``total`` (empty when there is no total)."""
    return f'<td class="n">{100.0 * count / total:.1f} %</td>' if total else "<td></td>"


def plural(count: int, noun: str, many: str = "") -> str:
    """``1 row``, ``2 rows``, ``1,200 rows`` (``many``: the plural when it is not ``noun + "s"``)."""
    return f"{count:,} {noun if count == 1 else (many or noun + 's')}"


def size_text(size: int) -> str:
    """Bytes as people read them: ``200 B``, ``14.2 kB``, ``3.1 MB`` (powers of 1000)."""
    if size < 1000:
        return f"{size:,} B"
    if size < 1_000_000:
        return f"{size / 1000:.3g} kB" if size < 100_000 else f"{size / 1000:.0f} kB"
    return f"{size / 1e6:.3g} MB" if size < 1e8 else f"{size / 1e6:,.0f} MB"


def span_text(seconds: float) -> str:
    """A duration in its two largest units: ``6 s``, ``6 min 10 s``, ``1 h 05 min``, ``2 d 3 h``."""
    total = round(seconds)
    if total < 60:
        return f"{seconds:.1f} s" if seconds < 10 and seconds != total else f"{total} s"
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


def utc(epoch: float, *, seconds: bool = True) -> str:
    """Epoch seconds as ``2026-12-04 23:13:09`` (UTC)."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S" if seconds else
                                                                    "%Y-%m-%d %H:%M")


def path_html(path: str) -> str:
    """A path as HTML text that may wrap after each ``/`` or ``\\`` (a ``<wbr>``), never inside a name."""
    return "".join(marked(piece) + "<wbr>" if piece in ("/", "\\") else marked(piece)
                   for piece in _SEPARATOR.split(path) if piece)


def folded_table(head: Sequence[str], rows: Sequence[str], *, cls: str = "", ident: str = "",
                 what: str = "rows") -> str:
    """A table of ``rows`` (each a ``<tr>``) whose rows past the first ``FOLD`` are folded into a
    ``<details>`` below it ("12 more rows"), so a long table does not push the rest of the page down."""
    klass = f' class="{cls}"' if cls else ""
    attrs = klass + (f' id="{ident}"' if ident else "")
    thead = "<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>"
    shown = f"<table{attrs}>{thead}<tbody>{''.join(rows[:FOLD])}</tbody></table>"
    rest = rows[FOLD:]
    if not rest:
        return shown
    more = plural(len(rest), "more " + what.rstrip("s"), "more " + what)
    return (f'{shown}<details class="more"><summary>{more}</summary><table{klass}>{thead}<tbody>{"".join(rest)}'
            "</tbody></table></details>")
