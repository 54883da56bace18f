"""The top of the page and the runs: the headline (rows, runs, when, how long, how fast, the outcome in one
sentence, interrupted or not), what the latest run did, the dry run's estimate, and throughput run by run."""

from __future__ import annotations

from pipeline.report import charts
from pipeline.report.markup import plural, span_text, utc
from pipeline.report.records import DryRunEstimate, ReportCaps, ReportData, RunStats
from pipeline.report.text import marked, plain
from pipeline.result_fields import THIS_RUN

__all__ = ["DRAWN_RUNS", "dry_run", "headline", "this_run", "throughput"]

DRAWN_RUNS = 6
"""Runs drawn as charts (the latest); earlier ones are listed in a table."""
_UNFINISHED = ("pending",)


def _fact(label: str, value: str, ident: str, count: int | None = None) -> str:
    data = f' data-count="{count}"' if count is not None else ""
    return f'<div><dt>{label}</dt><dd id="{ident}"{data}>{value}</dd></div>'


def _status(data: ReportData, status: str) -> int:
    return dict(data.by_status).get(status, 0)


def _outcome(data: ReportData, caps: ReportCaps) -> str:
    """The run's outcome in one sentence."""
    if data.dry_run is not None:
        est = data.dry_run
        took = (f"; at the caps the real run takes about {span_text(est.seconds)}" if est.seconds is not None
                else "")
        return (f"Dry run: {plural(est.to_upload, 'photo')} to upload, {plural(est.rejected, 'row')} rejected"
                f" out of {plural(est.total, 'row')}{took}.")
    done = _status(data, "uploaded") + _status(data, "attached")
    attached = _status(data, "attached")
    bad = [f"{_status(data, s):,} {s}" for s in ("rejected", "failed") if _status(data, s)]
    text = f"{done:,} of {plural(data.rows, 'row')} are in the service"
    text += f" ({attached:,} attached to persons)" if attached else ""
    text += f"; {' and '.join(bad)} (by reason below)" if bad else "; none rejected or failed"
    pending = sum(_status(data, s) for s in _UNFINISHED)
    text += (f"; {plural(pending, 'row')} not finished: run the same command again to go on." if pending
             else ". Every row is finished.")
    return text


def _interrupted(data: ReportData) -> tuple[str, int]:
    pending = sum(_status(data, s) for s in _UNFINISHED)
    if not pending:
        return "no", 0
    why = [f"{r.count:,} {marked(r.reason)}" for r in data.reasons if r.status in _UNFINISHED]
    return f"yes: {plural(pending, 'row')} not finished ({', '.join(why) or 'no reason given'})", pending


def headline(data: ReportData, caps: ReportCaps, *, generated: str, named_by: str) -> str:
    """The page's first block: what a reader needs at a glance."""
    runs = data.runs
    timed = [r for r in runs if r.seconds is not None]
    starts = [r.start for r in runs if r.start is not None]
    ends = [r.end for r in runs if r.end is not None]
    facts = [_fact("rows", f"{data.rows:,}", "headline-rows", data.rows)]
    if runs and (len(runs) > 1 or runs[0].run_id is not None):
        count = len(runs) + data.runs_not_listed
        facts.append(_fact("runs", f"{count:,}", "headline-runs", count))
    if starts:
        last = max(ends) if ends else max(starts)
        first_day, last_day = utc(min(starts))[:10], utc(last)[:10]
        until = utc(last)[11:] if first_day == last_day else utc(last)
        facts.append(_fact("when (UTC)", f"{utc(min(starts))} to {until}", "headline-when"))
    if timed:
        seconds = sum(r.seconds or 0.0 for r in timed)
        rows = sum(r.rows for r in timed)
        over = f" over {plural(len(timed), 'run')}" if len(timed) > 1 else ""
        facts.append(_fact("duration", f"{span_text(seconds)}{over}", "headline-duration"))
        if seconds > 0:
            facts.append(_fact("speed", f"{rows / seconds:,.1f} rows/s", "headline-speed"))
    state, pending = _interrupted(data)
    facts.append(_fact("interrupted", state, "headline-interrupted", pending))
    return (f'<header id="headline"><h1>Run report: <code>{marked(data.name)}</code></h1>'
            f'<p class="outcome" id="outcome">{marked(_outcome(data, caps))}</p><dl class="facts">{"".join(facts)}'
            f'</dl><p class="meta">Written {marked(generated)}; rows named by {named_by}.</p></header>')


def this_run(data: ReportData) -> str:
    """What the latest run did, when the results span several runs (their ``this_run`` column)."""
    if len(data.runs) + data.runs_not_listed < 2 or not data.this_run:
        return ""
    latest = data.runs[-1]
    when = f", started {utc(latest.start)} UTC" if latest.start is not None else ""
    items = "".join(f'<li title="{plain(THIS_RUN.get(word, ""))}"><span data-this-run="{plain(word)}" '
                    f'data-count="{count}">{count:,}</span> {marked(word)}'
                    f'{" (finished by an earlier run)" if word == "unchanged" else ""}</li>'
                    for word, count in data.this_run)
    return (f'<section id="this-run"><h2>This run</h2><p>The latest run <code>{marked(latest.run_id or "?")}</code>'
            f"{when}:</p><ul class=\"inline\">{items}</ul></section>")


def dry_run(est: DryRunEstimate | None, caps: ReportCaps) -> str:
    """The dry run's estimate of the real run: each cap's time and the slowest."""
    if est is None:
        return ""

    def line(label: str, seconds: float | None, detail: str) -> str:
        shown = span_text(seconds) if seconds is not None else "unlimited"
        return f"<tr><th>{marked(label)}</th><td>{marked(shown)}</td><td>{marked(detail)}</td></tr>"

    persons = f"{est.persons:,}" + ("" if est.persons_exact else "+")
    rows = line("presign", est.presign_s, f"{plural(est.to_upload, 'call')} at {caps.presign_per_s:g}/s")
    if caps.status_checks:
        window = max(int(caps.status_per_min), 1)
        rows += line("status checks", est.status_s,
                     f"{plural(est.to_upload, 'call')}, {caps.status_per_min:,.0f} in any 60 s: "
                     + ("all in the first window, at the presign pace" if est.to_upload <= window else
                        f"{plural(-(-est.to_upload // window), 'window')}, each at the presign pace"))
    if est.attach_calls:
        rows += line("attach", est.attach_s, f"at least {plural(est.attach_calls, 'call')} for {persons} persons "
                     f"at {caps.attach_per_s:g}/s")
    total = span_text(est.seconds) if est.seconds is not None else "no cap limits it"
    rejected_share = 100.0 * est.rejected / est.total if est.total else 0.0
    return (f'<section id="dry-run"><h2>Dry run: what the real run will do</h2><p>'
            f'<span id="to-upload" data-count="{est.to_upload}">{plural(est.to_upload, "photo")}</span> to upload; '
            f'<span id="rejected-share" data-count="{est.rejected}">{plural(est.rejected, "row")} '
            f"({rejected_share:.1f} %)</span> will be rejected. At the caps below, the real run takes about "
            f'<strong id="estimate">{marked(total)}</strong> (the caps run side by side: the slowest decides; '
            f"upload bandwidth not included).</p><table><tbody>{rows}</tbody></table></section>")


def _upload_caps(run: RunStats, caps: ReportCaps) -> list[charts.Cap]:
    """The caps that bound uploads/s: one presign call per upload; one status call per upload, a cap over 60 s
    windows used whole, so it binds (as an average) only in a run longer than a minute."""
    drawn = [charts.Cap("presign", f"presign cap {caps.presign_per_s:g} calls/s (one per upload)",
                        caps.presign_per_s)]
    if caps.status_checks and caps.status_per_min > 0 and (run.seconds or 0.0) > 60:
        drawn.append(charts.Cap("status", f"status cap {caps.status_per_min:,.0f} calls/min = "
                                f"{caps.status_per_min / 60:.3g}/s on average (one per upload)",
                                caps.status_per_min / 60))
    return drawn


def _run_block(run: RunStats, number: int, caps: ReportCaps) -> str:
    start = run.start if run.start is not None else 0.0
    end = run.end if run.end is not None else start + 1
    took = f" · {span_text(run.seconds)}" if run.seconds is not None else ""
    speed = f" ({run.rows / run.seconds:,.1f} rows/s)" if run.seconds else ""
    title = (f"Run {number}: <code>{marked(run.run_id or 'without a run id')}</code> · started "
             f"{utc(start)} UTC{took} · {plural(run.rows, 'row')}{speed}")
    parts = [f'<div class="run" data-run="{plain(run.run_id or "")}"><h3>{title}</h3><div class="charts">']
    if run.uploads is not None:
        parts.append(charts.rate_chart(run.uploads, title="uploads per second", unit="uploads/s",
                                       colour="#1565c0", start=start, end=end, caps=_upload_caps(run, caps)))
    if run.attaches is not None:
        parts.append(charts.rate_chart(run.attaches, title="attached rows per second", unit="rows/s",
                                       colour="#6a1b9a", start=start, end=end))
    parts.append("</div></div>")
    return "".join(parts)


def throughput(data: ReportData, caps: ReportCaps) -> str:
    """Throughput per run, each run on its own time axis (the latest ``DRAWN_RUNS``), earlier runs listed."""
    runs = [r for r in data.runs if r.uploads is not None or r.attaches is not None]
    if not runs:
        return ""
    drawn = runs[-DRAWN_RUNS:]
    blocks = "".join(_run_block(r, len(runs) - len(drawn) + i + 1, caps) for i, r in enumerate(drawn))
    earlier = runs[:-DRAWN_RUNS]
    listed = "" if not earlier else (
        f'<p class="note">{plural(len(earlier), "earlier run")} not drawn: '
        + "; ".join(f"<code>{marked(r.run_id or '?')}</code> {plural(r.rows, 'row')}" for r in earlier) + ".</p>")
    persons = ("" if not any(r.attaches is not None for r in drawn) else
               f" The persons cap ({caps.attach_per_s:g} calls/s) counts calls, each carrying up to 100 "
               "thumbnails, so it is not drawn against attached rows/s.")
    return (f'<section id="throughput"><h2>Throughput, run by run</h2>{blocks}{listed}<p class="note">From '
            "<code>uploaded_at</code> and <code>attached_at</code>, split by <code>run_id</code>; each run has "
            f"its own time axis (UTC).{persons}</p></section>")
