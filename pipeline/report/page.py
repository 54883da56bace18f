"""The HTML page: one self-contained file with no script, inline CSS and SVG, and ``data:`` thumbnails.

Its Content-Security-Policy forbids scripts and any network load (``default-src 'none'``), so even a string
that slipped past escaping could neither run nor call home. Everything from the data goes through ``_e``
(text: escaped, invisible characters shown as styled ``<U+XXXX>`` markers, ``pipeline.report.text``) or
``_a`` (attributes: the same markers as plain text), so no raw bidi or zero-width character reaches the page.
Numbers carry ``data-count`` attributes so tests (and scripts users write) can read them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.report import charts
from pipeline.report.records import DryRunEstimate, JournalInfo, PersonsSummary, ReportCaps, ReportData, SampleRow
from pipeline.report.text import marked, plain
from pipeline.report.thumbs import SIDE, ThumbMaker

__all__ = ["render"]

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1180px;
color:#1c2833;padding:0 16px}h1{font-size:24px;margin:0 0 4px}h2{margin-top:36px;border-bottom:1px solid #cfd8dc}
h3{margin:22px 0 6px}code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.meta{color:#546e7a}table{border-collapse:collapse;margin:8px 0}th,td{padding:3px 10px;border-bottom:1px solid
#eceff1;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}.chart text{font-size:12px;
fill:#37474f}.sheet{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;width:190px;border:1px solid #cfd8dc;
border-radius:4px;padding:6px;font-size:11px;overflow:hidden}figure img{width:SIDEpx;height:SIDEpx;
object-fit:contain;display:block;margin:0 auto 4px;background:#f5f7f8}figcaption div{overflow-wrap:anywhere}
.pair{display:flex;gap:4px}.pair figure{width:auto;border:0;padding:0}figure.change{width:290px}
table.notshown{font-size:12px;max-width:100%}table.notshown td{overflow-wrap:anywhere;max-width:420px}
td.why{color:#8d4b00}.note{color:#546e7a;font-size:12px}.cc{color:#b71c1c;background:#ffebee;
border:1px solid #ef9a9a;border-radius:2px;font:11px ui-monospace,Menlo,Consolas,monospace}.chart .cc{fill:#b71c1c;
font-weight:bold}
""".replace("SIDE", str(SIDE))


_e = marked  # text content: escaped, invisible characters shown as <U+XXXX> markers
_a = plain  # attributes: escaped, invisible characters as <U+XXXX> text (exact otherwise)


def _n(count: int, ident: str = "", **data: str) -> str:
    """A number cell; ``ident`` and ``data-*`` attributes say what it counts, for readers of the page's data."""
    attrs = (f' id="{_a(ident)}"' if ident else "") + "".join(f' data-{k}="{_a(v)}"' for k, v in data.items())
    return f'<td class="n"{attrs} data-count="{int(count)}">{int(count):,}</td>'


def _share(count: int, total: int) -> str:
    return f'<td class="n">{100.0 * count / total:.1f} %</td>' if total else "<td></td>"


def _hms(seconds: float) -> str:
    seconds = round(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:d} h {minutes:02d} min {secs:02d} s"
    return f"{days:d} d {text}" if days else text


def _totals(data: ReportData) -> str:
    rows = "".join(f'<tr><th>{_e(s)}</th>{_n(c, status=s)}{_share(c, data.rows)}</tr>'
                   for s, c in data.by_status)
    chart = charts.bar_chart("rows by status", list(data.by_status))
    return (f'<section id="totals"><h2>Totals by status</h2><table><thead><tr><th>status</th><th>rows</th>'
            f'<th>share</th></tr></thead><tbody>{rows}</tbody><tfoot><tr><th>all rows</th>'
            f"{_n(data.rows, 'total-rows')}<td></td></tr></tfoot></table>{chart}</section>")


def _reasons(data: ReportData) -> str:
    if not data.reasons:
        return '<section id="reasons"><h2>Totals by reason</h2><p>No row has a reason.</p></section>'
    rows = "".join(f"<tr><th>{_e(r.reason)}</th><td>{_e(r.status)}</td>"
                   f"{_n(r.count, reason=r.reason, status=r.status)}"
                   f"{_share(r.count, data.rows)}</tr>" for r in data.reasons)
    if data.other_reasons or data.other_reason_rows:
        plus = "" if data.reasons_exact else "+"
        rows += (f'<tr class="other"><th><span id="other-reasons" data-count="{data.other_reasons}">'
                 f"{data.other_reasons:,}{plus}</span> other reasons</th><td></td>"
                 f"{_n(data.other_reason_rows, 'other-reason-rows')}{_share(data.other_reason_rows, data.rows)}</tr>")
    note = "" if data.reasons_exact else ('<p class="note">More distinct reasons than the report counts one by one: '
                                          "the number of other reasons is a lower bound; their rows are exact.</p>")
    chart = charts.bar_chart("rows by reason", [(f"{r.reason} ({r.status})", r.count) for r in data.reasons],
                             colour_by=[r.status for r in data.reasons])
    return (f'<section id="reasons"><h2>Totals by reason</h2><table><thead><tr><th>reason</th><th>status</th>'
            f"<th>rows</th><th>share</th></tr></thead><tbody>{rows}</tbody></table>{note}{chart}</section>")


def _dry_run(est: DryRunEstimate | None, caps: ReportCaps) -> str:
    if est is None:
        return ""

    def line(label: str, seconds: float | None, detail: str) -> str:
        shown = _hms(seconds) if seconds is not None else "unlimited"
        return f"<tr><th>{_e(label)}</th><td>{_e(shown)}</td><td>{_e(detail)}</td></tr>"

    persons = f"{est.persons:,}" + ("" if est.persons_exact else "+")
    rows = line("presign", est.presign_s, f"{est.to_upload:,} calls at {caps.presign_per_s:g}/s")
    if caps.status_checks:
        rows += line("status checks", est.status_s, f"{est.to_upload:,} calls at {caps.status_per_min:g}/min")
    if est.attach_calls:
        rows += line("attach", est.attach_s, f"at least {est.attach_calls:,} calls for {persons} persons "
                     f"at {caps.attach_per_s:g}/s")
    total = _hms(est.seconds) if est.seconds is not None else "no cap limits it"
    rejected_share = 100.0 * est.rejected / est.total if est.total else 0.0
    return (f'<section id="dry-run"><h2>Dry run: what the real run will do</h2><p>'
            f'<span id="to-upload" data-count="{est.to_upload}">{est.to_upload:,}</span> photos to upload; '
            f'<span id="rejected-share" data-count="{est.rejected}">{est.rejected:,} rows ({rejected_share:.1f} %)'
            f"</span> will be rejected. At the caps below, the real run takes at least "
            f'<strong id="estimate">{_e(total)}</strong> (the caps run side by side: the slowest decides; '
            f"upload bandwidth not included).</p><table><tbody>{rows}</tbody></table></section>")


def _throughput(data: ReportData, caps: ReportCaps) -> str:
    if not data.throughput:
        return ""
    lines = [(f"presign cap {caps.presign_per_s:g}/s", caps.presign_per_s)]
    if caps.status_checks:
        lines.append((f"status cap {caps.status_per_min:g}/min", caps.status_per_min / 60.0))
    if data.persons is not None:
        lines.append((f"attach cap {caps.attach_per_s:g} calls/s", caps.attach_per_s))
    chart = charts.throughput_chart(data.throughput, lines)
    return (f'<section id="throughput"><h2>Throughput over time</h2>{chart}<p class="note">From '
            "<code>uploaded_at</code> (and <code>attached_at</code>); rows finished by an earlier run keep "
            "their time.</p></section>")


def _persons(p: PersonsSummary | None) -> str:
    if p is None:
        return ""
    plus = "" if p.exact else "+"
    hist = "".join(f"<tr><th>{_e(label)}</th>{_n(count)}</tr>" for label, count in p.histogram)
    top = "".join(f"<tr><td><code>{_e(pid)}</code></td>{_n(count)}</tr>" for pid, count in p.top)
    return (f'<section id="persons"><h2>Persons</h2><table><tbody>'
            f'<tr><th>persons with thumbnails attached</th>{_n(p.persons, "persons-total")}<td>{plus}</td></tr>'
            f'<tr><th>reached by name (created, or found existing)</th>{_n(p.by_name, "persons-by-name")}</tr>'
            f'<tr><th>named by id (existing, extended)</th>{_n(p.by_id, "persons-by-id")}</tr>'
            f'<tr><th>thumbnails attached</th>{_n(p.attached, "thumbnails-attached")}</tr></tbody></table>'
            f"<h3>Thumbnails per person</h3><table><thead><tr><th>thumbnails</th><th>persons</th></tr></thead>"
            f"<tbody>{hist}</tbody></table><h3>Persons with the most thumbnails</h3><table><thead><tr>"
            f"<th>person_id</th><th>thumbnails</th></tr></thead><tbody>{top}</tbody></table></section>")


def _img(thumb_data: str) -> str:
    return f'<img alt="" src="{thumb_data}" width="{SIDE}" height="{SIDE}">'


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _caption(row: SampleRow) -> str:
    size = f"{row.width}×{row.height} px" if row.width and row.height else ""
    weight = f"{row.bytes / 1000:,.0f} kB" if row.bytes else ""
    facts = " · ".join(x for x in (row.action, size, weight) if x)
    return (f'<figcaption><div><strong>{_e(row.key)}</strong></div><div><code>{_e(_short(row.path))}</code></div>'
            + (f"<div>{_e(row.detail)}</div>" if row.detail else "")
            + (f'<div class="note">{_e(facts)}</div>' if facts else "") + "</figcaption>")


def _not_shown(rows: Sequence[tuple[SampleRow, str]]) -> str:
    """The sampled rows whose photo is not shown, one compact row each, with why."""
    if not rows:
        return ""
    body = "".join(f"<tr><td>{_e(r.key)}</td><td><code>{_e(_short(r.path))}</code></td><td>{_e(r.detail)}</td>"
                   f'<td class="why">{_e(why)}</td></tr>' for r, why in rows)
    return ('<table class="notshown"><thead><tr><th>photo not shown</th><th>path</th><th>detail</th><th>why</th>'
            f"</tr></thead><tbody>{body}</tbody></table>")


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


def _sheets(data: ReportData, maker: ThumbMaker) -> str:
    if not data.samples:
        return ""
    parts = ['<section id="sheets"><h2>Rejected and failed photos, by reason</h2>']
    for i, (reason, count, rows) in enumerate(data.samples):
        parts.append(f'<h3 id="reason-{i}" data-reason="{_a(reason)}" data-count="{count}">{_e(reason)} '
                     f'<span class="note">{count:,} rows; {len(rows):,} sampled</span></h3>'
                     + _sheet(maker, rows, pairs=False))
    parts.append("</section>")
    return "".join(parts)


def _changed(data: ReportData, maker: ThumbMaker) -> str:
    if not data.changed:
        return ""
    parts = ['<section id="changed"><h2>Changed photos: before and after</h2><p class="note">Before: the '
             "source's stored pixels. After: as the policy turned it, with the uploaded size.</p>"]
    for sample in data.changed:
        parts.append(f'<h3 data-kind="{_a(sample.kind)}" data-count="{sample.count}">{_e(sample.kind)} '
                     f'<span class="note">{sample.count:,} rows; {len(sample.rows):,} sampled</span></h3>'
                     + _sheet(maker, sample.rows, pairs=True))
    parts.append("</section>")
    return "".join(parts)


def _journal(info: JournalInfo | None) -> str:
    if info is None:
        return ""
    if info.problem is not None:
        return (f'<section id="journal"><h2>Journal</h2><p>The journal <code>{_e(info.path)}</code> was not read: '
                f"{_e(info.problem)}.</p></section>")
    states = "".join(f"<tr><th>{_e(s)}</th>{_n(c, state=s)}</tr>" for s, c in info.states)
    return (f'<section id="journal"><h2>Journal</h2><p><code>{_e(info.path)}</code>, workspace '
            f"<code>{_e(info.workspace or '?')}</code>, started {_e(info.created_at or '?')}. Uploaded keys "
            f'recorded as possible orphans: <span id="orphans" data-count="{info.orphans}">{info.orphans:,}</span>.'
            f"</p><table><thead><tr><th>journal state</th><th>rows</th></tr></thead><tbody>{states}</tbody></table>"
            "</section>")


def render(data: ReportData, maker: ThumbMaker, caps: ReportCaps, *, generated: str,
           columns: Sequence[str]) -> str:
    """The whole page. ``columns`` names the key and path columns used; ``generated`` is the time shown."""
    body = "".join((_totals(data), _reasons(data), _dry_run(data.dry_run, caps), _throughput(data, caps),
                    _persons(data.persons), _sheets(data, maker), _changed(data, maker), _journal(data.journal)))
    photos = "Photos left out on request." if not maker.enabled else (
        f"{maker.made:,} thumbnails made from the sources (pixels only, no metadata).")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
            f'content="{_CSP}"><meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Run report: {plain(data.name)}</title><style>{_CSS}</style></head><body>"
            f'<h1>Run report</h1><p class="meta">Results <code>{_e(data.name)}</code>, {data.rows:,} rows; '
            f"written {_e(generated)}. Rows named by {', '.join(f'<code>{_e(c)}</code>' for c in columns)}.</p>"
            f'{body}<footer><p class="note">{_e(photos)} Made by thumbnail-ingest report; this page loads nothing '
            "from the network and runs no script.</p></footer></body></html>")
