"""SIGKILL the real CLI at many moments of a run (a PUT arriving, a PUT stored but unanswered, right after a
PUT, during a presign, at a random time), re-run after each, and check from the emulator and the journal that
in the end every row is terminal, no row was uploaded twice after it was journaled, and nothing was lost.
Also: one SIGINT with JSON logs gives exit 130, the ``interrupted`` event, results written, and a resumable run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from relcommon import (
    cli_cmd,
    cli_env,
    events,
    integrity,
    journal_rows,
    orphans,
    photo_manifest,
    results,
    run_cli,
    sha256,
    wait_for,
)

from pipeline.emulator import Emulator, EmulatorConfig, Faults, emulator_in_thread

CONCURRENCY = 8
MODES = ("put_calls", "puts_ok", "status_calls", "presign_calls", "time")
"""What each kill waits for: a PUT has arrived (and is held by the latency, so it is in flight), a PUT has
been stored (answer still held back), a status call has arrived (right after a PUT), a presign call has
arrived, or a random delay."""


def _integrity(journal: Path) -> None:
    assert {"rows", "orphans"} <= integrity(journal)


def _kill_run(tmp_path: Path, rows: int, kills: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    manifest = photo_manifest(tmp_path, rows)
    journal = tmp_path / "j.sqlite"
    figures: dict[str, object] = {"kills": []}
    with emulator_in_thread(EmulatorConfig(rate=0, confirm_rate=0, faults=Faults(latency=0.03))) as emu:
        cmd = cli_cmd(emu, manifest, tmp_path, "--concurrency", str(CONCURRENCY))
        env = cli_env(emu.credentials.access_key, emu.credentials.secret_key)
        for k in range(kills):
            before = emu.counters.snapshot(arrivals=False)
            mode = MODES[k % len(MODES)]
            # Each kill waits for a few more events of its kind, spread so the kills cover the whole run.
            step = rng.randint(2, max(3, rows // (kills + 2)))
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if mode == "time":
                time.sleep(rng.uniform(1.2, 2.5))
                reached = True
            else:
                target = before[mode] + step

                def hit(mode: str = mode, target: int = target, proc: subprocess.Popen[bytes] = proc) -> bool:
                    return emu.counters.snapshot(arrivals=False)[mode] >= target or proc.poll() is not None

                reached = wait_for(hit, 60, step=0.001)
            alive = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            after = emu.counters.snapshot(arrivals=False)
            figures["kills"].append((mode, step, alive, after["puts_ok"]))  # type: ignore[union-attr]
            assert reached and alive, f"kill {k} ({mode}) came too late: the run had already finished"
            if journal.exists():
                _integrity(journal)

        done = run_cli(cmd, env, timeout=300)
        counters = emu.counters.snapshot(arrivals=False)
        objects = dict(emu.objects)

    assert done.returncode == 0, done.stderr[-3000:]
    finished = next(e for e in events(done.stderr) if e["event"] == "run_finished")
    table = results(tmp_path / "results.parquet")
    assert [r["status"] for r in table] == ["uploaded"] * rows
    keys = [r["thumbnail_key"] for r in table]
    assert len(set(keys)) == rows  # exactly one committed key per row, none shared
    for r in table:  # nothing lost: each committed key holds that row's photo, byte for byte
        assert objects[r["thumbnail_key"]].sha256 == r["source_sha256"] == sha256((tmp_path / r["path"]).read_bytes())
    _integrity(journal)
    jrows = {j["key"]: j for j in journal_rows(journal)}
    assert len(jrows) == rows and all(j["status"] == "uploaded" for j in jrows.values())
    assert [jrows[r["id"]]["thumbnail_key"] for r in table] == keys
    extra = set(objects) - set(keys)
    # Every object beyond the committed keys was uploaded for a row that was in flight at a kill, and the
    # journal knows it as a possible orphan (so nothing journaled was uploaded again).
    assert extra <= orphans(journal)
    assert len(extra) <= kills * CONCURRENCY
    assert set(counters["puts_per_key"].values()) == {1}  # no URL PUT twice
    assert counters["puts_ok"] == len(objects)
    figures.update(puts_ok=counters["puts_ok"], extra_objects=len(extra), orphans=len(orphans(journal)),
                   final_run_s=round(done.seconds, 1), final_already_done=finished["by_status"])
    return figures


def test_sigkill_3_times_ci(tmp_path: Path) -> None:
    _kill_run(tmp_path, 150, 3, seed=1)


@pytest.mark.slow
def test_sigkill_10_times(tmp_path: Path) -> None:
    figures = _kill_run(tmp_path, 400, 10, seed=2)
    print(figures)


@pytest.mark.parametrize("emulator_thread", [EmulatorConfig(rate=0, confirm_rate=0, faults=Faults(latency=0.2))],
                         indirect=True)
@pytest.mark.parametrize("pool", [(), ("--processes", "--workers", "2")], ids=["threads", "processes"])
def test_sigint_json_logs_interrupted_event_and_resume(
    emulator_thread: Emulator, tmp_path: Path, pool: tuple[str, ...]
) -> None:
    emu = emulator_thread
    rows = 40
    manifest = photo_manifest(tmp_path, rows)
    cmd = cli_cmd(emu, manifest, tmp_path, "--concurrency", "2", *pool)
    env = cli_env(emu.credentials.access_key, emu.credentials.secret_key)
    # Its own process group, signalled as a whole: what Ctrl-C in a terminal does (pool workers included).
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert wait_for(lambda: emu.counters.snapshot(arrivals=False)["puts_ok"] >= 3, 60)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    # Nothing of the run outlives it: a pool worker left behind would hold the journal's lock for ever.
    assert wait_for(lambda: not _group_alive(proc.pid), 15), "a process of the interrupted run is still alive"
    log = events(err)
    names = [e["event"] for e in log]
    assert names.count("interrupted") == 1 and names[-1] == "run_finished"
    assert names.index("interrupted") < names.index("run_finished")
    finished = log[-1]
    assert finished["interrupted"] is True and finished["exit_code"] == 130

    table = results(tmp_path / "results.parquet")
    statuses = [r["status"] for r in table]
    assert set(statuses) == {"uploaded", "pending"}
    assert all(r["reason"] == "interrupted" for r in table if r["status"] == "pending")
    assert finished["by_status"] == {s: statuses.count(s) for s in set(statuses)}
    # Rows in flight at the signal were finished, not abandoned: the journal has nothing half-done.
    assert {j["status"] for j in journal_rows(tmp_path / "j.sqlite")} <= {"uploaded", "pending"}
    uploaded_before = {r["thumbnail_key"] for r in table if r["status"] == "uploaded"}
    assert uploaded_before == set(emu.objects)

    emu.faults.latency = 0.0
    again = run_cli(cmd, env, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    last = events(again.stderr)[-1]
    assert last["event"] == "run_finished" and last["planned"]["finished"] == len(uploaded_before)
    table = results(tmp_path / "results.parquet")
    assert [r["status"] for r in table] == ["uploaded"] * rows
    assert uploaded_before <= {r["thumbnail_key"] for r in table}
    assert len(emu.objects) == rows
    assert set(emu.counters.snapshot(arrivals=False)["puts_per_key"].values()) == {1}


def _group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
