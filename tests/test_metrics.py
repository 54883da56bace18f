"""``--metrics-file``: the run's counters in Prometheus' text exposition format, written atomically."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.metrics import Counters, render, write_atomic

SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of a text exposition: every line a comment (# HELP/# TYPE naming a family) or
    ``name{label="v",...} value``; fails on anything else."""
    assert text.endswith("\n")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("#"):
            kind, name = line.split(" ", 3)[1:3]
            assert kind in ("HELP", "TYPE"), line
            if kind == "TYPE":
                typed.add(name)
            continue
        m = SAMPLE.match(line)
        assert m is not None, line
        labels = m.group("labels") or ""
        pairs = tuple(LABEL.findall(labels))
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == labels, line
        assert m.group("name") in typed, f"{line}: no # TYPE before it"
        samples[(m.group("name"), pairs)] = float(m.group("value"))
    return samples


def counters(**kw: object) -> Counters:
    base: dict[str, object] = {
        "run_id": "20250101T000000Z-abc123", "total": 1000, "done": 250,
        "by_status": {"uploaded": 240, "rejected": 10}, "retries": {"transient": 3, "rate_limited": 2},
        "rate_last": 2.5, "rate_run": 2.0, "eta_s": 300.0, "started_at": 1_735_689_600.0,
        "at": 1_735_689_725.5}
    return Counters(**{**base, **kw})  # type: ignore[arg-type]


def test_the_counters_parse_and_say_what_the_run_did() -> None:
    got = parse(render(counters()))
    p = "thumbnail_ingest_"
    assert got[(p + "rows", ())] == 1000
    assert got[(p + "rows_done", (("status", "uploaded"),))] == 240
    assert got[(p + "rows_done", (("status", "rejected"),))] == 10
    assert got[(p + "rows_per_second", (("window", "last"),))] == 2.5
    assert got[(p + "rows_per_second", (("window", "run"),))] == 2.0
    assert got[(p + "eta_seconds", ())] == 300
    assert got[(p + "retries_total", (("kind", "rate_limited"),))] == 2
    assert got[(p + "retries_total", (("kind", "transient"),))] == 3
    assert got[(p + "start_time_seconds", ())] == 1_735_689_600.0
    assert got[(p + "last_tick_time_seconds", ())] == 1_735_689_725.5
    assert got[(p + "run_info", (("run_id", "20250101T000000Z-abc123"),))] == 1
    assert (p + "exit_code", ()) not in got  # only at the end


def test_the_end_adds_the_exit_code_and_an_unknown_eta_is_left_out() -> None:
    got = parse(render(counters(exit_code=3, eta_s=None)))
    assert got[("thumbnail_ingest_exit_code", ())] == 3
    assert ("thumbnail_ingest_eta_seconds", ()) not in got


def test_label_values_are_escaped() -> None:
    text = render(counters(by_status={'we"ird\\st\natus': 1}))
    assert 'status="we\\"ird\\\\st\\natus"' in text
    parse(text)


def test_the_file_is_replaced_whole_and_no_temp_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "ingest.prom"
    write_atomic(target, render(counters()))
    write_atomic(target, render(counters(done=300, exit_code=0)))
    assert parse(target.read_text())[("thumbnail_ingest_exit_code", ())] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["ingest.prom"]


def test_a_folder_that_refuses_the_write_raises_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        write_atomic(tmp_path / "missing" / "ingest.prom", "x\n")
    assert list(tmp_path.iterdir()) == []
