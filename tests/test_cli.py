"""The CLI contract: exit codes, one-sentence user errors, JSON logs, and no secret anywhere."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from contextlib import closing
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import pipeline
from pipeline.cli import main
from pipeline.emulator import Emulator, EmulatorConfig, Faults
from pipeline.images import lossless
from pipeline.models import ExitCode
from pipeline.samples import make_jpeg

SECRET = "S3CRET-recognisable-0123456789"


def _manifest(tmp_path: Path, n: int = 6, *, bad: bool = True) -> Path:
    lines = ["id,path,person"]
    for i in range(n):
        make_jpeg(tmp_path / f"p{i}.jpg", 300, 300, seed=i, quality=70)
        lines.append(f"k{i},p{i}.jpg,Person {i}")
    if bad:
        (tmp_path / "tiny.jpg").write_bytes(make_jpeg(None, 100, 100))
        lines.append("tiny,tiny.jpg,Tiny")
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _args(emu: Emulator, manifest: Path, *extra: str) -> list[str]:
    return ["ingest", str(manifest), "--workspace", emu.workspace, "--endpoint", emu.base_url,
            "--no-progress", "--rate", "0", "--confirm-rate", "0", *extra]


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipeline.emulator import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

    monkeypatch.setenv("NCLOUD_ACCESS_KEY", DEFAULT_ACCESS_KEY)
    monkeypatch.setenv("NCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_help_lists_every_flag_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for flag in ("--workspace", "--endpoint", "--out", "--journal", "--root", "--rate", "--confirm-rate",
                 "--no-confirm", "--concurrency", "--workers", "--max-side", "--dry-run", "--log-format",
                 "--no-progress", "--dedupe"):
        assert flag in out
    assert "default: 50)" in out and "default: 1000)" in out


@pytest.mark.usefixtures("creds")
def test_exit_0_and_results(emulator_thread: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(_args(emulator_thread, _manifest(tmp_path)))
    assert code == 0
    rows = pq.read_table(tmp_path / "manifest.results.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["uploaded"] * 6 + ["rejected"]
    assert rows[-1]["reason"] == "too_small" and rows[0]["person"] == "Person 0"
    assert "manifest.results.parquet" in capsys.readouterr().err


@pytest.mark.usefixtures("creds")
@pytest.mark.parametrize("emulator_thread", [EmulatorConfig(faults=Faults(early_expiry_rate=1.0))], indirect=True)
def test_exit_1_when_rows_fail(emulator_thread: Emulator, tmp_path: Path) -> None:
    assert main(_args(emulator_thread, _manifest(tmp_path, 2, bad=False))) == 1
    rows = pq.read_table(tmp_path / "manifest.results.parquet").to_pylist()
    assert {r["status"] for r in rows} == {"failed"} and {r["reason"] for r in rows} == {"upload_failed"}


@pytest.mark.usefixtures("creds")
def test_exit_3_on_wrong_secret(
    emulator_thread: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NCLOUD_SECRET_KEY", SECRET)
    assert main(_args(emulator_thread, _manifest(tmp_path))) == 3
    err = capsys.readouterr().err
    assert "stopped:" in err and SECRET not in err
    assert emulator_thread.counters.snapshot(arrivals=False)["presign_calls"] == 1


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["ingest", "{m}", "--workspace", "w"], {}, "No API credentials found"),
        (["ingest", "{m}"], {"NCLOUD_ACCESS_KEY": "a", "NCLOUD_SECRET_KEY": "b"}, "workspace is required"),
        (["ingest", "{dir}/nope.csv", "--workspace", "w"], {"NCLOUD_ACCESS_KEY": "a", "NCLOUD_SECRET_KEY": "b"},
         "nope.csv"),
        (["ingest", "{m}", "--workspace", "w", "--path-column", "photo"],
         {"NCLOUD_ACCESS_KEY": "a", "NCLOUD_SECRET_KEY": "b"}, "photo"),
        (["ingest", "{m}", "--workspace", "w", "--rate", "fast"], {}, "--rate"),
        (["ingest", "{m}", "--workspace", "w", "--max-side", "100"], {"NCLOUD_ACCESS_KEY": "a",
                                                                     "NCLOUD_SECRET_KEY": "b"}, "--max-side"),
        (["ingest", "{m}", "--workspace", "w", "--out", "{dir}/r.xlsx"],
         {"NCLOUD_ACCESS_KEY": "a", "NCLOUD_SECRET_KEY": "b"}, ".parquet or .csv"),
    ],
)
def test_user_errors_exit_2_with_one_sentence(
    tmp_path: Path, argv: list[str], env: dict[str, str], message: str
) -> None:
    manifest = _manifest(tmp_path, 1, bad=False)
    args = [a.format(m=manifest, dir=tmp_path) for a in argv]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NCLOUD_", "THUMBNAIL_INGEST_"))}
    proc = subprocess.run([sys.executable, "-m", "pipeline", *args], env={**clean, **env, "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "manifest.results.parquet").exists()


def test_json_logs_parse_and_never_contain_the_secret(emulator_thread: Emulator, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    env = {**os.environ, "NCLOUD_ACCESS_KEY": emulator_thread.credentials.access_key,
           "NCLOUD_SECRET_KEY": emulator_thread.credentials.secret_key}
    proc = subprocess.run([sys.executable, "-m", "pipeline", *_args(emulator_thread, manifest, "--log-format", "json")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    names = [e["event"] for e in events]
    assert names[0] == "run_started" and names[-1] == "run_finished"
    assert [e["reason"] for e in events if e["event"] == "row_rejected"] == ["too_small"]
    secret = emulator_thread.credentials.secret_key
    everything = proc.stderr + proc.stdout + pq.read_table(tmp_path / "manifest.results.parquet").to_pandas().to_csv()
    assert secret not in everything and "X-Amz-Signature" not in everything


def test_sigint_exits_130_writes_results_and_resumes(emulator_thread: Emulator, tmp_path: Path) -> None:
    emulator_thread.faults.latency = 0.2
    manifest = _manifest(tmp_path, 40, bad=False)
    env = {**os.environ, "NCLOUD_ACCESS_KEY": emulator_thread.credentials.access_key,
           "NCLOUD_SECRET_KEY": emulator_thread.credentials.secret_key}
    cmd = [sys.executable, "-m", "pipeline", *_args(emulator_thread, manifest, "--concurrency", "2")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while emulator_thread.counters.snapshot(arrivals=False)["puts_ok"] < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    rows = pq.read_table(tmp_path / "manifest.results.parquet").to_pylist()
    statuses = {r["status"] for r in rows}
    assert "uploaded" in statuses and "pending" in statuses
    emulator_thread.faults.latency = 0.0
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    rows = pq.read_table(tmp_path / "manifest.results.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["uploaded"] * 40
    assert set(emulator_thread.counters.snapshot(arrivals=False)["puts_per_key"].values()) == {1}


@pytest.mark.parametrize("name", ["sample.csv", "sample.parquet"])
def test_shipped_sample_manifests_dry_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NCLOUD_ACCESS_KEY", "NCLOUD_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)  # a dry run needs no credentials
    manifest = Path(__file__).resolve().parents[1] / "manifests" / name
    assert main(["ingest", str(manifest), "--workspace", "w", "--dry-run", "--no-progress",
                 "--out", str(tmp_path / "r.parquet")]) == 0
    rows = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert [(r["person"], r["status"], r["reason"] or r["action"]) for r in rows] == [
        ("Alice", "skipped", "passthrough+stripped"), ("Bob", "skipped", "passthrough"),
        ("Carol", "skipped", "reoriented+lossless" if lossless.available() else "reoriented"),
        ("Dan", "rejected", "too_small")]


# --- flags, output streams and JSON everywhere (issue 12) -------------------------------------------------


def _env(emu: Emulator | None = None, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NCLOUD_", "THUMBNAIL_INGEST_", "NO_COLOR"))}
    if emu is not None:
        clean.update(NCLOUD_ACCESS_KEY=emu.credentials.access_key, NCLOUD_SECRET_KEY=emu.credentials.secret_key)
    return {**clean, **extra}


def _json_lines(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "no output"
    return [json.loads(line) for line in lines]  # fails the test on any line that is not JSON


def test_help_shows_new_flags_exit_codes_and_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for flag in ("--limit", "--read-timeout", "--connect-timeout", "--retry-window", "--max-row-attempts",
                 "--max-retry-after", "--log-level", "-q, --quiet", "-v, --verbose", "--processes"):
        assert flag in out, flag
    assert "default: 16" in out and "default: 10)" in out
    for code in ExitCode:
        assert f" {code.value} " in out
    for var in ("NCLOUD_ACCESS_KEY", "NCLOUD_SECRET_KEY", "THUMBNAIL_INGEST_WORKSPACE", "THUMBNAIL_INGEST_ENDPOINT",
                "THUMBNAIL_INGEST_LOG_FORMAT", "THUMBNAIL_INGEST_LOG_LEVEL", "NO_COLOR"):
        assert var in out, var


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"thumbnail-ingest {pipeline.__version__}"
    assert pipeline.__version__ and pipeline.__version__ != "0.0.0+unknown"


@pytest.mark.parametrize(("flag", "message"), [
    (["--concurrency", "0"], "--concurrency must be at least 1; got 0"),
    (["--concurrency", "-2"], "--concurrency must be at least 1"),
    (["--concurrency", "5000"], "cannot help"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["--workers", "-1"], "--workers must be 0"),
    (["--read-timeout", "0"], "--read-timeout must be a positive"),
    (["--log-level", "loud"], "unknown log level"),
])
@pytest.mark.usefixtures("creds")
def test_bad_numbers_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: list[str],
                                      message: str) -> None:
    argv = ["ingest", str(_manifest(tmp_path, 1)), "--workspace", "w", "--endpoint", "http://127.0.0.1:9", *flag]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.usefixtures("creds")
def test_limit_takes_that_many_rows_then_the_rest(emulator_thread: Emulator, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 5, bad=False)
    assert main(_args(emulator_thread, manifest, "--limit", "2")) == 0
    assert emulator_thread.counters.snapshot(arrivals=False)["puts_ok"] == 2
    assert main(_args(emulator_thread, manifest)) == 0
    counters = emulator_thread.counters.snapshot(arrivals=False)
    assert counters["puts_ok"] == 5 and set(counters["puts_per_key"].values()) == {1}


@pytest.mark.usefixtures("creds")
@pytest.mark.parametrize(("flags", "shown", "hidden"), [
    ([], ["row_rejected", "run_finished"], ["debug"]),
    (["-q"], [], ["row_rejected", "run_started"]),
    (["--log-level", "warning"], [], ["row_rejected"]),
    (["-v"], ["row_rejected", "run_started"], []),  # debug lines themselves: the retries test below
])
def test_quiet_verbose_and_log_level(emulator_thread: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     flags: list[str], shown: list[str], hidden: list[str]) -> None:
    assert main(_args(emulator_thread, _manifest(tmp_path, 2), "--log-format", "json", *flags)) == 0
    out, err = capsys.readouterr()
    assert out == ""
    if err.strip():
        _json_lines(err)
    for text in shown:
        assert text in err, text
    for text in hidden:
        assert text not in err, text


def test_log_level_from_the_environment(emulator_thread: Emulator, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", *_args(emulator_thread, _manifest(tmp_path, 1))],
        env=_env(emulator_thread, THUMBNAIL_INGEST_LOG_LEVEL="error", THUMBNAIL_INGEST_LOG_FORMAT="json"),
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # at the default level the same run prints run_started, row_rejected, ...


@pytest.mark.parametrize(("argv", "env", "event"), [
    (["ingest", "{m}", "--workspace", "w", "--log-format", "json"], {}, "config_error"),
    (["ingest", "{m}", "--workspace", "w", "--rate", "fast", "--log-format=json"], {}, "config_error"),
    (["ingest", "{m}"], {"THUMBNAIL_INGEST_LOG_FORMAT": "json", "NCLOUD_ACCESS_KEY": "a",
                         "NCLOUD_SECRET_KEY": "b"}, "config_error"),
    (["ingest", "--log-format", "json", "{dir}/nope.csv", "--workspace", "w", "--dry-run"], {}, "config_error"),
    (["--log-format", "json", "nonsense"], {}, "config_error"),
])
def test_json_mode_errors_are_json(tmp_path: Path, argv: list[str], env: dict[str, str], event: str) -> None:
    manifest = _manifest(tmp_path, 1, bad=False)
    args = [a.format(m=manifest, dir=tmp_path) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "pipeline", *args], env={**_env(), **env, "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    events = _json_lines(proc.stderr)
    assert [e["event"] for e in events] == [event] and events[0]["level"] == "error" and events[0]["error"]
    assert proc.stdout == ""


def test_json_mode_journal_locked_is_json(emulator_thread: Emulator, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 1, bad=False)
    journal = tmp_path / "held.sqlite"
    holder = sqlite3.connect(journal, isolation_level=None)
    try:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline",
             *_args(emulator_thread, manifest, "--journal", str(journal), "--log-format", "json")],
            env=_env(emulator_thread), capture_output=True, text=True, timeout=120)
    finally:
        holder.close()
    assert proc.returncode == 2, proc.stderr
    events = _json_lines(proc.stderr)
    assert any(e["event"] == "config_error" and "in use" in str(e["error"]) for e in events), proc.stderr


def test_json_mode_fatal_api_answer_is_json(emulator_thread: Emulator, tmp_path: Path) -> None:
    env = {**_env(emulator_thread), "NCLOUD_SECRET_KEY": SECRET}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", *_args(emulator_thread, _manifest(tmp_path), "--log-format", "json")],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    events = _json_lines(proc.stderr)
    names = [e["event"] for e in events]
    assert "fatal_api_error" in names and "run_stopped" in names and names[-1] == "run_finished"
    assert SECRET not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize("emulator_thread", [EmulatorConfig(faults=Faults(error_rate=0.4, seed=7))],
                         indirect=True)
@pytest.mark.slow  # real time (seconds of it): the reliability tier
def test_retries_are_summarised_at_the_default_level(emulator_thread: Emulator, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "pipeline", *_args(emulator_thread, _manifest(tmp_path, 12, bad=False),
                                                    "--log-format", "json")]
    proc = subprocess.run(cmd, env=_env(emulator_thread), capture_output=True, text=True, timeout=120)
    events = _json_lines(proc.stderr)
    names = [e["event"] for e in events]
    assert "retrying" not in names and "rate_limited" not in names
    summaries = [e for e in events if e["event"] == "retries_summary"]
    assert summaries and sum(int(e["retried"]) for e in summaries) > 0  # type: ignore[call-overload]
    verbose = subprocess.run([*cmd, "-v", "--journal", str(tmp_path / "other.sqlite"),
                              "--out", str(tmp_path / "other.parquet")],
                             env=_env(emulator_thread), capture_output=True, text=True, timeout=120)
    retries = [e for e in _json_lines(verbose.stderr) if e["event"] in ("retrying", "rate_limited")]
    assert retries and {e["level"] for e in retries} == {"debug"}


def test_bar_and_logs_on_a_terminal_stderr_and_nothing_on_stdout(emulator_thread: Emulator,
                                                                 tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 4)
    args = [a for a in _args(emulator_thread, manifest) if a != "--no-progress"]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # a terminal has a width
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *args], env=_env(emulator_thread, NO_COLOR="1"),
                            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    out, _ = proc.communicate(timeout=120)
    reader.join(timeout=30)
    os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, screen
    assert out == b""
    assert "ingest:" in screen and "row/s" in screen  # the bar
    assert "row_rejected" in screen and "row=tiny" in screen and "path=tiny.jpg" in screen  # a log line above it
    assert "\x1b[3" not in screen  # NO_COLOR: no colour codes (the bar's cursor moves are not colours)
    assert "(4 this run)" in screen


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_closed_log_pipe_never_stops_the_run(emulator_thread: Emulator, tmp_path: Path, fmt: str) -> None:
    manifest = _manifest(tmp_path, 8)
    cmd = [sys.executable, "-m", "pipeline", *_args(emulator_thread, manifest, "-v", "--log-format", fmt)]
    proc = subprocess.Popen(cmd, env=_env(emulator_thread), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    proc.stderr.close()  # the reader goes away before the first line (`2>&1 | head -0`)
    assert proc.wait(timeout=120) == 0
    rows = pq.read_table(tmp_path / "manifest.results.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["uploaded"] * 8 + ["rejected"]


def test_report_is_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pipeline.report.command")
    with pytest.raises(SystemExit) as exc:
        main(["report", "--help"])
    assert exc.value.code == 0 and "results" in capsys.readouterr().out


# --- start-up edges: a closed stderr, endpoints that are not scheme://host[:port] (hardening, third pass) ----


def _close_stderr() -> None:
    os.close(2)  # as `2>&-` does: the child starts with no descriptor 2 at all (DEVNULL would be an open file)


def test_a_dry_run_with_stderr_closed_runs_and_exits_0(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 2, bad=False)
    cmd = [sys.executable, "-m", "pipeline", "ingest", str(manifest), "--workspace", "w", "--dry-run",
           "--no-progress"]
    proc = subprocess.run(cmd, env=_env(), stdout=subprocess.PIPE, preexec_fn=_close_stderr,
                          timeout=120, check=False)
    assert proc.returncode == 0
    assert proc.stdout == b""
    rows = pq.read_table(tmp_path / "manifest.dryrun.parquet").to_pylist()
    assert [(r["id"], r["status"]) for r in rows] == [("k0", "skipped"), ("k1", "skipped")]


def test_a_run_with_stderr_closed_keeps_its_own_exit_code_and_journal(emulator_thread: Emulator,
                                                                      tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 3)
    cmd = [sys.executable, "-m", "pipeline", *_args(emulator_thread, manifest, "-v")]
    proc = subprocess.run(cmd, env=_env(emulator_thread), stdout=subprocess.DEVNULL,
                          preexec_fn=_close_stderr, timeout=120, check=False)
    assert proc.returncode == 0
    rows = pq.read_table(tmp_path / "manifest.results.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["uploaded"] * 3 + ["rejected"]
    with closing(sqlite3.connect(tmp_path / "manifest.journal.sqlite")) as conn:  # no log line was written into it
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("http://[::1", "--endpoint is not a valid http(s) URL"),
        ("http://127.0.0.1:99999", "--endpoint is not a valid http(s) URL"),
        ("http://127.0.0.1:9/api/v1", "--endpoint takes scheme://host[:port] only"),
        ("https://mi.example/api/v1/workspaces", "the API paths are added by the tool (--presign-path"),
        ("http://127.0.0.1:9/?sig=TOPSECRETQ", "it cannot hold a query or a fragment"),
        ("http://127.0.0.1:9#TOPSECRETF", "it cannot hold a query or a fragment"),
        ("http://user:TOPSECRETP@127.0.0.1:9", "--endpoint cannot hold user info"),
        ("https:///api", "--endpoint needs a host"),
    ],
)
def test_endpoints_other_than_scheme_host_port_are_one_sentence_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str, message: str
) -> None:
    manifest = _manifest(tmp_path, 1, bad=False)
    code = main(["ingest", str(manifest), "--workspace", "w", "--dry-run", "--no-progress", "--endpoint", endpoint])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err and "TOPSECRET" not in err
    assert not (tmp_path / "manifest.dryrun.parquet").exists()


def test_an_endpoint_with_only_a_trailing_slash_is_taken(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 1, bad=False)
    code = main(["ingest", str(manifest), "--workspace", "w", "--dry-run", "--no-progress", "--endpoint",
                 "http://[::1]:9/"])
    assert code == 0
