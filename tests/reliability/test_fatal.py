"""Fatal answers (wrong secret, unknown workspace, exhausted quota): the run stops after the first such answer,
exits 3 with one clear sentence on stderr, leaves the journal intact, and a re-run with the right settings
finishes."""

from __future__ import annotations

from pathlib import Path

import pytest
from relcommon import cli_cmd, cli_env, integrity, journal_rows, photo_manifest, results, run_cli

from pipeline.emulator import Emulator, EmulatorConfig

ROWS = 30
WRONG_SECRET = "wrong-secret-FATAL-0123456789"
EXPECT = {"wrong_secret": "Authentication Failed", "unknown_workspace": "no-such-workspace",
          "quota_exhausted": "quota"}


def _console(cmd: list[str]) -> list[str]:
    """The command with console logs (what a person or cron mail sees) instead of JSON."""
    i = cmd.index("--log-format")
    return [*cmd[: i + 1], "console", *cmd[i + 2 :]]


@pytest.mark.parametrize("case", ["wrong_secret", "unknown_workspace", "quota_exhausted"])
@pytest.mark.parametrize("emulator_thread", [EmulatorConfig(rate=0, confirm_rate=0)], indirect=True)
def test_fatal_answer_stops_the_run(emulator_thread: Emulator, tmp_path: Path, case: str) -> None:
    emu = emulator_thread
    manifest = photo_manifest(tmp_path, ROWS)
    # Two rows that are rejected before any API call, so the journal has something to keep.
    with manifest.open("a") as f:
        f.write("bad1,photos/missing.jpg\nbad2,\n")
    good_cmd = _console(cli_cmd(emu, manifest, tmp_path, "--concurrency", "8"))
    good_env = cli_env(emu.credentials.access_key, emu.credentials.secret_key, home=tmp_path)
    cmd, env = list(good_cmd), dict(good_env)
    if case == "wrong_secret":
        env["NCLOUD_SECRET_KEY"] = WRONG_SECRET
    elif case == "unknown_workspace":
        cmd[cmd.index("--workspace") + 1] = "no-such-workspace"
    else:
        emu.faults.quota_exhausted = True

    run = run_cli(cmd, env, timeout=120)
    counters = emu.counters.snapshot(arrivals=False)
    assert run.returncode == 3, run.stderr[-2000:]
    assert "Traceback" not in run.stderr + run.stdout
    stopped = [line for line in run.stderr.splitlines() if line.startswith("thumbnail-ingest: stopped:")]
    assert len(stopped) == 1, run.stderr[-2000:]
    sentence = stopped[0].removeprefix("thumbnail-ingest: stopped:").strip()
    # One line that names the cause (not a dump of the HTTP exchange).
    assert 0 < len(sentence) < 300 and EXPECT[case] in sentence, sentence
    assert WRONG_SECRET not in run.stderr + run.stdout
    # The run stopped at the first fatal answer: one presign call, nothing stored, no status call.
    assert counters["presign_calls"] == 1, counters
    assert counters["put_calls"] == 0 and counters["status_calls"] == 0 and not emu.objects

    # The journal is intact and holds only what really happened.
    journal = tmp_path / "j.sqlite"
    tables = integrity(journal)
    assert {"rows", "orphans", "meta"} <= tables
    jrows = journal_rows(journal)
    assert all(r["status"] in ("pending", "rejected") for r in jrows)
    # Rows the run reached before it stopped keep their verdicts; the rest are simply not there yet.
    assert {r["key"]: r["reason"] for r in jrows if r["status"] == "rejected"}.items() <= {
        "bad1": "not_found", "bad2": "missing_path"}.items()
    table = results(tmp_path / "results.parquet")
    assert len(table) == ROWS + 2 and "uploaded" not in {r["status"] for r in table}

    emu.faults.quota_exhausted = False
    again = run_cli(good_cmd, good_env, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    table = results(tmp_path / "results.parquet")
    assert [r["status"] for r in table] == ["uploaded"] * ROWS + ["rejected"] * 2
    assert [r["reason"] for r in table[-2:]] == ["not_found", "missing_path"]
    assert len(emu.objects) == ROWS
    assert set(emu.counters.snapshot(arrivals=False)["puts_per_key"].values()) == {1}
