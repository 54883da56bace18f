"""The progress bar stays on stderr (logs print above it there) and the summary tells this run from the past."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from pipeline import logs, progress
from pipeline.models import ExitCode, Summary


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    logs.set_line_sink(None)
    logs.configure_logging("console")


def _summary(**kw: object) -> Summary:
    base: dict[str, object] = {
        "total": 100, "by_status": {"uploaded": 96, "rejected": 4}, "by_reason": {"too_small": 4},
        "duration_s": 2.0, "rows_per_s": 0.0, "results_path": Path("r.parquet"), "journal_path": Path("j.sqlite"),
        "exit_code": ExitCode.OK, "this_run": {"unchanged": 100}, "planned": {"finished": 100},
    }
    return Summary(**{**base, **kw})  # type: ignore[arg-type]


def test_nothing_reaches_stdout_while_the_bar_is_shown(capsys: pytest.CaptureFixture[str]) -> None:
    stream = Tty()
    logs.configure_logging("console", stream=stream, env={"NO_COLOR": "1"})
    bar = progress.Progress(10, enabled=True, stream=stream, initial=4)
    structlog.get_logger("t").warning("row_failed", row="k1", path="p1.jpg")
    bar.update("uploaded", 3)
    bar.close()
    out, _ = capsys.readouterr()
    assert out == ""
    text = stream.getvalue()
    assert "row_failed" in text and "row=k1" in text and "7/10" in text


def test_no_bar_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    bar = progress.Progress(10, enabled=True, stream=stream)
    bar.update("uploaded")
    bar.close()
    assert stream.getvalue() == "" and bar.counts["uploaded"] == 1


def test_a_broken_stream_turns_the_bar_off_not_the_run() -> None:
    class BrokenTty(Tty):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    bar = progress.Progress(5, enabled=True, stream=BrokenTty())
    for _ in range(5):
        bar.update("uploaded")
    bar.close()
    assert bar.counts["uploaded"] == 5


def test_in_a_notebook_without_widgets_the_text_bar_is_used_without_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress, "_widgets_available", lambda: False)
    stream = Tty()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = progress.Progress(3, enabled=True, stream=stream)
        bar.update("uploaded", 3)
        bar.close()
    assert "3/3" in stream.getvalue()


def test_a_resumed_run_tells_this_run_from_the_journal() -> None:
    text = progress.render_summary(_summary())
    assert "uploaded" in text and "96   (0 this run)" in text and "4   (0 this run)" in text
    assert "this run: 0 rows in 2.0 s (0.0 rows/s)" in text
    assert "finished rows left alone" in text and "failed" not in text


def test_this_run_rows_per_second_come_from_the_summary() -> None:
    text = progress.render_summary(_summary(this_run={"uploaded": 6, "unchanged": 90}, rows_per_s=3.0))
    assert "96   (6 this run)" in text and "this run: 6 rows in 2.0 s (3.0 rows/s)" in text


def test_exit_1_says_how_to_retry_the_failed_rows() -> None:
    text = progress.render_summary(_summary(by_status={"uploaded": 90, "failed": 10}, exit_code=ExitCode.FAILED,
                                            this_run={"uploaded": 90, "failed": 10}))
    assert "10 rows failed; run the same command again to retry them" in text


def test_a_fatal_stop_and_an_interrupt_are_said() -> None:
    fatal = progress.render_summary(_summary(exit_code=ExitCode.FATAL, error="The API refused the key."))
    assert "stopped: The API refused the key." in fatal
    interrupted = progress.render_summary(_summary(exit_code=ExitCode.INTERRUPTED, interrupted=True))
    assert "interrupted: state saved; run the same command again to resume" in interrupted


def test_a_dry_run_shows_what_a_real_run_would_do_now() -> None:
    text = progress.render_summary(
        _summary(by_status={"skipped": 7, "rejected": 1}, planned={"new": 5, "changed": 2, "recheck": 1,
                                                                   "finished": 3}), dry_run=True)
    assert "what a real run would do now" in text
    for label, n in (("new rows to upload", 5), ("changed sources to upload again", 2),
                     ("rejections to check again", 1), ("finished rows left alone", 3)):
        assert any(label in line and line.endswith(str(n)) for line in text.splitlines()), label
