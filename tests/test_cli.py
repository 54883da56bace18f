"""The CLI contract: exit codes, one-sentence user errors, JSON logs, and no secret anywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.emulator import Emulator, EmulatorConfig, Faults
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
    assert "default: 50.0" in out and "default: 1000.0" in out


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
        ("Carol", "skipped", "reoriented"), ("Dan", "rejected", "too_small")]
