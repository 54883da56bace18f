"""The HTML page: one self-contained file with no script, inline CSS and SVG, and ``data:`` thumbnails.

In the order a reader asks: the headline (``overview``), what the latest run did, the dry run's estimate, the
rejected and failed photos by reason with each reason's meaning, what the policy changed, throughput run by
run, persons (with names), then the totals and the journal. Long tables fold after their first ten rows.

Its Content-Security-Policy forbids scripts and any network load (``default-src 'none'``), so even a string
that slipped past escaping could neither run nor call home. Everything from the data goes through ``_e``
(text: escaped, invisible characters shown as styled ``<U+XXXX>`` markers, ``pipeline.report.text``) or
``_a`` (attributes: the same markers as plain text), so no raw bidi or zero-width character reaches the page.
Numbers carry ``data-count`` attributes so tests (and scripts users write) can read them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.report import charts, overview
from pipeline.report.markup import count_cell, folded_table, path_html, plural, share_cell, size_text
from pipeline.report.reasons import meaning
from pipeline.report.records import JournalInfo, PersonsSummary, ReportCaps, ReportData, SampleRow
from pipeline.report.text import marked, plain
from pipeline.report.thumbs import SIDE, ThumbMaker

__all__ = ["render"]

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px auto;max-width:1180px;
color:#1c2833;padding:0 16px}h1{font-size:22px;margin:0 0 6px}h1 code{font-size:18px}h2{margin:28px 0 8px;
border-bottom:1px solid #cfd8dc;font-size:19px}h3{margin:16px 0 6px;font-size:15px}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:normal;overflow-wrap:break-word}
#headline{border:1px solid #cfd8dc;border-radius:6px;padding:10px 16px;background:#f8fafb}
.outcome{font-size:16px;margin:4px 0 8px}dl.facts{display:flex;flex-wrap:wrap;gap:4px 28px;margin:0}
dl.facts div{min-width:90px}dt{color:#546e7a;font-size:12px}dd{margin:0;font-weight:600}
.meta{color:#546e7a;font-size:12px;margin:8px 0 0}ul.inline{list-style:none;padding:0;margin:4px 0;display:flex;
flex-wrap:wrap;gap:4px 22px}ul.inline span{font-weight:600}
table{border-collapse:collapse;margin:8px 0}th,td{padding:3px 10px;border-bottom:1px solid
#eceff1;text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.meaning,span.meaning{color:#455a64}.chart text{font-size:12px;fill:#37474f}.sheet{display:flex;flex-wrap:wrap;
gap:10px}figure{margin:0;width:190px;border:1px solid #cfd8dc;border-radius:4px;padding:6px;font-size:11px;
overflow:hidden}figure img{width:SIDEpx;height:SIDEpx;object-fit:contain;display:block;margin:0 auto 4px;
background:#f5f7f8}figcaption div{overflow-wrap:break-word}.pair{display:flex;gap:4px}
.pair figure{width:auto;border:0;padding:0}figure.change{width:290px}
table.notshown{font-size:12px;width:100%;table-layout:fixed}table.notshown td{overflow-wrap:break-word}
td.why{color:#8d4b00}.note{color:#546e7a;font-size:12px}.cc{color:#b71c1c;background:#ffebee;
border:1px solid #ef9a9a;border-radius:2px;font:11px ui-monospace,Menlo,Consolas,monospace}.chart .cc{fill:#b71c1c;
font-weight:bold}.run .charts{display:flex;flex-wrap:wrap;gap:12px}details.more summary{cursor:pointer;
color:#1565c0;font-size:12px}p.index a{color:#1565c0;text-decoration:none}
""".replace("SIDE", str(SIDE))


_e = marked  # text content: escaped, invisible characters shown as <U+XXXX> markers
_a = plain  # attributes: escaped, invisible characters as <U+XXXX> text (exact otherwise)


def _status_table(data: ReportData) -> str:
    rows = "".join(f"<tr><th>{_e(s)}</th>{count_cell(c, status=s)}{share_cell(c, data.rows)}</tr>"
                   for s, c in data.by_status)
    return (f"<table><thead><tr><th>status</th><th>rows</th><th>share</th></tr></thead><tbody>{rows}</tbody>"
            f"<tfoot><tr><th>all rows</th>{count_cell(data.rows, 'total-rows')}<td></td></tr></tfoot></table>")


def _reason_table(data: ReportData) -> str:
    if not data.reasons:
        return "<p>No row has a reason.</p>"
    rows = [f"<tr><th><code>{_e(r.reason)}</code></th><td>{_e(r.status)}</td>"
            f"{count_cell(r.count, reason=r.reason, status=r.status)}{share_cell(r.count, data.rows)}"
            f'<td class="meaning">{_e(meaning(r.reason))}</td></tr>' for r in data.reasons]
    if data.other_reasons or data.other_reason_rows:
        plus = "" if data.reasons_exact else "+"
        rows.append(f'<tr class="other"><th><span id="other-reasons" data-count="{data.other_reasons}">'
                    f"{data.other_reasons:,}{plus}</span> other reasons</th><td></td>"
                    f"{count_cell(data.other_reason_rows, 'other-reason-rows')}"
                    f"{share_cell(data.other_reason_rows, data.rows)}<td></td></tr>")
    note = "" if data.reasons_exact else ('<p class="note">More distinct reasons than the report counts one by one: '
                                          "the number of other reasons is a lower bound; their rows are exact.</p>")
    return folded_table(("reason", "status", "rows", "share", "meaning"), rows, what="reasons") + note


def _totals(data: ReportData) -> str:
    status_chart = charts.bar_chart("rows by status", list(data.by_status))
    reason_chart = charts.bar_chart("rows by reason", [(f"{r.reason} ({r.status})", r.count) for r in data.reasons],
                                    colour_by=[r.status for r in data.reasons])
    return (f'<section id="totals"><h2>Totals</h2><h3>By status</h3>{_status_table(data)}{status_chart}'
            f'<h3 id="reasons">By reason</h3>{_reason_table(data)}{reason_chart}</section>')


def _persons(p: PersonsSummary | None) -> str:
    if p is None:
        return ""
    plus = "" if p.exact else "+"
    hist = "".join(f"<tr><th>{_e(label)}</th>{count_cell(count)}</tr>" for label, count in p.histogram)
    top = [f"<tr><td>{_e(name) if name else '<span class=note>(no name)</span>'}</td><td><code>{_e(pid)}</code>"
           f"</td>{count_cell(count, person=pid)}</tr>" for pid, name, count in p.top]
    return (f'<section id="persons"><h2>Persons</h2><table><tbody>'
            f'<tr><th>persons with thumbnails attached</th>{count_cell(p.persons, "persons-total")}<td>{plus}</td></tr>'
            f'<tr><th>reached by name (created, or found existing)</th>{count_cell(p.by_name, "persons-by-name")}</tr>'
            f'<tr><th>named by id (existing, extended)</th>{count_cell(p.by_id, "persons-by-id")}</tr>'
            f'<tr><th>thumbnails attached</th>{count_cell(p.attached, "thumbnails-attached")}</tr></tbody></table>'
            f"<h3>Persons with the most thumbnails</h3>"
            + folded_table(("name", "person_id", "thumbnails"), top, ident="top-persons", what="persons")
            + f"<h3>Thumbnails per person</h3><table><thead><tr><th>thumbnails</th><th>persons</th></tr></thead>"
            f"<tbody>{hist}</tbody></table></section>")


def _img(thumb_data: str) -> str:
    return f'<img alt="" src="{thumb_data}" width="{SIDE}" height="{SIDE}">'


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _caption(row: SampleRow) -> str:
    size = f"{row.width}×{row.height} px" if row.width and row.height else ""
    weight = size_text(row.bytes) if row.bytes is not None else ""
    facts = " · ".join(x for x in (row.action, size, weight) if x)
    return (f"<figcaption><div><strong>{_e(row.key)}</strong></div>"
            f"<div><code>{path_html(_short(row.path))}</code></div>"
            + (f"<div>{_e(row.detail)}</div>" if row.detail else "")
            + (f'<div class="note">{_e(facts)}</div>' if facts else "") + "</figcaption>")


def _not_shown(rows: Sequence[tuple[SampleRow, str]]) -> str:
    """The sampled rows whose photo is not shown, one compact row each, with why."""
    if not rows:
        return ""
    body = [f"<tr><td>{_e(r.key)}</td><td><code>{path_html(_short(r.path))}</code></td><td>{_e(r.detail)}</td>"
            f'<td class="why">{_e(why)}</td></tr>' for r, why in rows]
    return folded_table(("photo not shown", "path", "detail", "why"), body, cls="notshown", what="photos")


def _sheet(maker: ThumbMaker, rows: Sequence[SampleRow], *, pairs: bool) -> str:
    """Figures of the rows whose photo can be shown (``pairs``: before and after), then a table of the rest."""
    figures: list[str] = []
    missing: list[tuple[SampleRow, str]] = []
    for r in rows:
        first = maker.make(r.path, orient=not pairs)
        second = maker.make(r.path, orient=True) if pairs and first.data is not None else None
        if first.data is None or (second is not None and second.data is None):
            missing.append((r, first.why or (second.why if second is not None else "")))
        elif second is not None and second.data is not None:
            figures.append(f'<figure class="change"><div class="pair"><figure>{_img(first.data)}<figcaption>before'
                           f"</figcaption></figure><figure>{_img(second.data)}<figcaption>after</figcaption>"
                           f"</figure></div>{_caption(r)}</figure>")
        else:
            figures.append(f"<figure>{_img(first.data)}{_caption(r)}</figure>")
    sheet = f'<div class="sheet">{"".join(figures)}</div>' if figures else ""
    return sheet + _not_shown(missing)


def _sample_note(count: int, shown: int) -> str:
    rows = plural(count, "row")
    if shown >= count:
        return f"{rows}, all shown" if count > 1 else rows
    return f"{rows}; {shown:,} shown (a uniform sample)"


def _sheets(data: ReportData, maker: ThumbMaker) -> str:
    if not data.samples:
        return ""
    index = " · ".join(f'<a href="#reason-{i}"><code>{_e(reason)}</code></a> {count:,}'
                       for i, (reason, count, _) in enumerate(data.samples))
    parts = [f'<section id="sheets"><h2>Rejected and failed photos, by reason</h2><p class="index">{index}</p>']
    for i, (reason, count, rows) in enumerate(data.samples):
        said = meaning(reason)
        parts.append(f'<h3 id="reason-{i}" data-reason="{_a(reason)}" data-count="{count}"><code>{_e(reason)}'
                     "</code>" + (f' <span class="meaning">{_e(said)}</span>' if said else "")
                     + f' <span class="note">{_sample_note(count, len(rows))}</span></h3>'
                     + _sheet(maker, rows, pairs=False))
    parts.append("</section>")
    return "".join(parts)


def _changed(data: ReportData, maker: ThumbMaker) -> str:
    if not data.changed:
        return ""
    parts = ['<section id="changed"><h2>What the policy changed: before and after</h2><p class="note">Before: the '
             "source's stored pixels. After: as the policy turned it, with the uploaded size.</p>"]
    for sample in data.changed:
        parts.append(f'<h3 data-kind="{_a(sample.kind)}" data-count="{sample.count}">{_e(sample.kind)} '
                     f'<span class="note">{_sample_note(sample.count, len(sample.rows))}</span></h3>'
                     + _sheet(maker, sample.rows, pairs=True))
    parts.append("</section>")
    return "".join(parts)


def _journal(info: JournalInfo | None) -> str:
    if info is None:
        return ""
    if info.problem is not None:
        return (f'<section id="journal"><h2>Journal</h2><p>The journal <code>{_e(info.path)}</code> was not read: '
                f"{_e(info.problem)}.</p></section>")
    states = "".join(f"<tr><th>{_e(s)}</th>{count_cell(c, state=s)}</tr>" for s, c in info.states)
    return (f'<section id="journal"><h2>Journal</h2><p><code>{_e(info.path)}</code>, workspace '
            f"<code>{_e(info.workspace or '?')}</code>, started {_e(info.created_at or '?')}. Uploaded keys "
            f'recorded as possible orphans: <span id="orphans" data-count="{info.orphans}">{info.orphans:,}</span>.'
            f"</p><table><thead><tr><th>journal state</th><th>rows</th></tr></thead><tbody>{states}</tbody></table>"
            "</section>")


def render(data: ReportData, maker: ThumbMaker, caps: ReportCaps, *, generated: str,
           columns: Sequence[str]) -> str:
    """The whole page. ``columns`` names the key and path columns used; ``generated`` is the time shown."""
    named_by = ", ".join(f"<code>{_e(c)}</code>" for c in columns) or "position"
    body = "".join((overview.headline(data, caps, generated=generated, named_by=named_by), overview.this_run(data),
                    overview.dry_run(data.dry_run, caps), _sheets(data, maker), _changed(data, maker),
                    overview.throughput(data, caps), _persons(data.persons), _totals(data), _journal(data.journal)))
    photos = "Photos left out on request." if not maker.enabled else (
        f"{plural(maker.made, 'thumbnail')} made from the sources (pixels only, no metadata).")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
            f'content="{_CSP}"><meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Run report: {plain(data.name)}</title><style>{_CSS}</style></head><body>"
            f'{body}<footer><p class="note">{_e(photos)} Made by thumbnail-ingest report; this page loads nothing '
            "from the network and runs no script.</p></footer></body></html>")
