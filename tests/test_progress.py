"""The progress bar stays on stderr (logs print above it there) and the summary tells this run from the past."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from pipeline import logs, progress
from pipeline.cli import main
from pipeline.emulator import Emulator
from pipeline.journal import Journal
from pipeline.models import ExitCode
from pipeline.python_api import make_settings
from pipeline.runner import RunControl, run_async
from pipeline.samples import make_jpeg
from pipeline.summary import Summary


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    logs.set_line_sink(None)
    logs.configure_logging("console")


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipeline.emulator import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

    monkeypatch.setenv("NCLOUD_ACCESS_KEY", DEFAULT_ACCESS_KEY)
    monkeypatch.setenv("NCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


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


def test_a_stopped_run_says_its_sentence_first_then_only_counts_and_files() -> None:
    text = progress.render_summary(_summary(exit_code=ExitCode.FATAL, error="The API refused the key.",
                                            by_status={"pending": 96, "rejected": 4}))
    lines = text.splitlines()
    assert lines[0] == "thumbnail-ingest: stopped: The API refused the key."
    assert text.count("The API refused the key.") == 1
    assert lines[1] == "rows      100: 96 pending, 4 rejected"
    assert "reasons" not in text and "this run found" not in text
    assert "results   r.parquet" in lines and "journal   j.sqlite" in lines


@pytest.mark.usefixtures("creds")
def test_a_fatal_stop_through_the_cli_is_one_sentence_first_then_the_short_summary(
        emulator_thread: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "manifest.csv"
    make_jpeg(tmp_path / "p0.jpg", 300, 300, seed=1, quality=70)
    manifest.write_text("id,path\nk0,p0.jpg\n")
    code = main(["ingest", str(manifest), "--workspace", "no-such-workspace", "--endpoint", emulator_thread.base_url,
                 "--no-progress", "--rate", "0", "--confirm-rate", "0", "--journal", str(tmp_path / "j.sqlite")])
    assert code == 3
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "no-such-workspace" in line]
    assert len(said) == 1 and said[0].startswith("thumbnail-ingest: stopped:"), err
    after = err.splitlines()[err.splitlines().index(said[0]) + 1:]
    assert after[0].startswith("rows ") and any(line.startswith("results ") for line in after), err
    assert "fatal_api_error" not in err and len(after) <= 6, err


def test_a_dry_run_names_the_journal_only_as_read(tmp_path: Path) -> None:
    text = progress.render_summary(_summary(by_status={"skipped": 100}), dry_run=True)
    assert "journal   j.sqlite (read, not changed)" in text.splitlines()
    text = progress.render_summary(_summary(by_status={"skipped": 100}, journal_path=None), dry_run=True)
    assert "journal" not in text


async def test_a_dry_run_without_a_journal_names_none_and_with_one_reads_it(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    make_jpeg(tmp_path / "p0.jpg", 300, 300, seed=1, quality=70)
    manifest.write_text("id,path\nk0,p0.jpg\n")
    journal = tmp_path / "j.sqlite"
    settings = make_settings(workspace="w", dry_run=True, progress=False, journal=journal)
    first = await run_async(settings, manifest)
    assert first.exit_code == 0 and first.journal_path is None and not journal.exists()
    Journal.open(journal, workspace="w").close()
    second = await run_async(settings, manifest)
    assert second.journal_path == journal
    assert f"journal   {journal} (read, not changed)" in progress.render_summary(second, dry_run=True)


async def test_after_a_second_interrupt_the_summary_names_no_results_file(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    make_jpeg(tmp_path / "p0.jpg", 300, 300, seed=1, quality=70)
    manifest.write_text("id,path\nk0,p0.jpg\n")
    out = tmp_path / "dry.parquet"
    settings = make_settings(workspace="w", dry_run=True, progress=False, journal=tmp_path / "j.sqlite", out=out)

    def twice(control: RunControl) -> None:  # Ctrl-C, Ctrl-C: as soon as the run can be stopped
        control.request_stop_threadsafe()
        control.request_stop_threadsafe(abandon=True)

    summary = await run_async(settings, manifest, on_control=twice)
    assert summary.interrupted and summary.exit_code == ExitCode.INTERRUPTED
    assert not out.exists() and summary.results_path is None
    assert "results " not in progress.render_summary(summary, dry_run=True)
