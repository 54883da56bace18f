"""Logging: redaction as a configured processor, stderr only, colours only on a terminal, retries
summarised on an injected clock, row events a person can act on, and a broken stream never stops a run."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from pipeline import logs
from pipeline.emulator import Emulator
from pipeline.python_api import make_settings
from pipeline.runner import run_async
from pipeline.samples import make_jpeg

URL = ("http://127.0.0.1:8080/_storage/b/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F2026"
       "&X-Amz-Signature=deadbeefcafe")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Broken(io.StringIO):
    """A stream whose reader went away: every write fails like a closed pipe."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    logs.set_line_sink(None)
    logs.configure_logging("console")


def test_secrets_given_to_configure_logging_are_redacted_everywhere() -> None:
    stream = io.StringIO()
    logs.configure_logging("json", stream=stream, secrets=["another-secret-value"])
    log = structlog.get_logger("t")
    log.info("upload_failed", url=URL, nested={"list": [URL, "another-secret-value"]})
    try:
        raise RuntimeError(f"boom at {URL} with another-secret-value")
    except RuntimeError:
        log.exception("crashed")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["upload_failed", "crashed"]
    assert "deadbeefcafe" not in stream.getvalue() and "another-secret-value" not in stream.getvalue()
    assert events[0]["nested"]["list"][0].endswith("?<redacted>")


def test_a_secret_of_an_earlier_configuration_is_not_a_module_global() -> None:
    assert not hasattr(logs, "add_secret") and not hasattr(logs, "_SECRETS")


def test_line_sink_receives_lines_while_a_bar_is_shown() -> None:
    got: list[str] = []
    stream = io.StringIO()
    logs.configure_logging("console", stream=stream)
    logs.set_line_sink(got.append)
    structlog.get_logger("t").info("hello", n=1)
    assert len(got) == 1 and "hello" in got[0] and stream.getvalue() == ""


def test_logs_go_to_stderr_not_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging("console")
    structlog.get_logger("t").warning("row_failed", row="k1", path="p1.jpg")
    out, err = capsys.readouterr()
    assert out == "" and "row_failed" in err


def test_console_row_events_show_the_row_and_the_path() -> None:
    stream = io.StringIO()
    logs.configure_logging("console", stream=stream)
    structlog.get_logger("t").warning("row_failed", row="k1", path="photos/p1.jpg", reason="upload_failed")
    line = stream.getvalue()
    assert "row_failed" in line and "row=k1" in line and "path=photos/p1.jpg" in line


@pytest.mark.parametrize(("tty", "env", "coloured"), [(False, {}, False), (True, {}, True),
                                                      (True, {"NO_COLOR": "1"}, False)])
def test_colours_only_on_a_terminal_without_no_color(tty: bool, env: dict[str, str], coloured: bool) -> None:
    stream: io.StringIO = Tty() if tty else io.StringIO()
    logs.configure_logging("console", stream=stream, env=env)
    structlog.get_logger("t").warning("row_failed", row="k1")
    assert ("\x1b[" in stream.getvalue()) is coloured


def test_levels_filter_the_same_in_both_formats() -> None:
    for fmt in ("console", "json"):
        stream = io.StringIO()
        logs.configure_logging(fmt, stream=stream, level="warning")
        log = structlog.get_logger("t")
        log.info("row_rejected", row="k")
        log.warning("row_failed", row="k")
        assert "row_rejected" not in stream.getvalue() and "row_failed" in stream.getvalue()
    with pytest.raises(ValueError, match="debug, info, warning or error"):
        logs.level_number("loud")


def test_retries_are_summarised_on_the_clock_not_one_line_each() -> None:
    clock, stream = Clock(), io.StringIO()
    logs.configure_logging("json", stream=stream, clock=clock, retry_interval=10.0)
    log = structlog.get_logger("pipeline.client")
    for i in range(30):
        clock.now = i * 0.3  # 30 retries within 9 s: no line yet
        log.warning("retrying", call="presign", status=502, error="Bad Gateway")
    log.warning("rate_limited", call="presign", code="410")
    log.warning("retrying", call="presign", status=None, error="read timed out")
    assert stream.getvalue() == ""
    clock.now = 10.0
    log.warning("retrying", call="put", status=None, kind="put_failed", error="dropped")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    summary = lines[0]
    assert summary["event"] == "retries_summary" and summary["level"] == "info" and summary["retried"] == 33
    assert summary["by_kind"] == {"502": 30, "429": 1, "timeout": 1, "put_failed": 1}
    assert summary["summary"] == "retried 33 calls in the last 10 s (502 x 30, 429 x 1, timeout x 1, put_failed x 1)"
    clock.now = 12.0
    log.info("retrying", call="put", status=503)
    logs.flush_retry_summary()
    last = json.loads(stream.getvalue().splitlines()[-1])
    assert last["event"] == "retries_summary" and last["by_kind"] == {"503": 1}
    logs.flush_retry_summary()
    assert len(stream.getvalue().splitlines()) == 2


def test_at_debug_every_retry_is_a_debug_line() -> None:
    stream = io.StringIO()
    logs.configure_logging("json", stream=stream, level=logging.DEBUG, clock=Clock())
    for _ in range(3):
        structlog.get_logger("t").warning("retrying", call="presign", status=502)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["event"], e["level"]) for e in events] == [("retrying", "debug")] * 3


def test_a_broken_stream_is_dropped_and_logging_goes_on() -> None:
    broken = Broken()
    logs.configure_logging("console", stream=broken)
    log = structlog.get_logger("t")
    for i in range(5):
        log.warning("row_failed", row=str(i))  # must not raise
    assert broken.writes == 1
    safe = logs.SafeStream(broken)
    safe.write("x\n")
    safe.flush()
    assert safe.broken and not safe.isatty()


def test_a_failing_sink_gives_lines_back_to_the_stream() -> None:
    def sink(_line: str) -> None:
        raise ValueError("I/O operation on closed file")

    stream = io.StringIO()
    logs.configure_logging("console", stream=stream)
    logs.set_line_sink(sink)
    structlog.get_logger("t").warning("row_failed", row="k1")
    assert "row_failed" in stream.getvalue()


async def test_a_rejection_is_logged_when_it_happens_not_when_its_group_is_journaled(
        emulator: Emulator, tmp_path: Path) -> None:
    # One row rejected at once (its file is missing), then many good rows: its line must come while the
    # uploads have only begun, not in a burst near the end with the journal's group write.
    lines = ["id,path", "gone,missing.jpg"]
    for i in range(60):
        make_jpeg(tmp_path / f"p{i}.jpg", 300, 300, seed=i, quality=70)
        lines.append(f"k{i},p{i}.jpg")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    settings = make_settings(workspace=emulator.workspace, endpoint=emulator.base_url,
                             credentials=emulator.credentials, rate=0.0, confirm_rate=0.0, progress=False,
                             journal=tmp_path / "j.sqlite", workers=1, concurrency=1, batch_size=4)
    stored_when_logged: list[int] = []

    def note(_logger: object, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event["event"] == "row_rejected":
            stored_when_logged.append(len(emulator.objects))
        return event

    logs.configure_logging("json", stream=io.StringIO())
    with capture_logs() as events:
        structlog.get_config()["processors"].insert(0, note)
        summary = await run_async(settings, manifest)
    assert summary.this_run == {"uploaded": 60, "rejected": 1}
    assert [e["row"] for e in events if e["event"] == "row_rejected"] == ["gone"]
    assert len(emulator.objects) == 60
    assert stored_when_logged[0] < 10, stored_when_logged  # logged before most uploads, not after them
