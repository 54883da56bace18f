"""SIGKILL the real CLI with ``--attach`` at five moments of the attach (issue 13), then re-run: exactly one
person per name, each key attached once and to the right person, nothing left half-done in the journal.

The moments, timed off the emulator's counters (its answers are held back by a small latency, so each kill
lands after the server acted and before the client heard): a create call arrived (the person exists, the
client never learnt its id), an add call arrived (keys attached, answer lost), uploads going on with keys
not yet attached, the start-up reconciliation of a re-run (list calls), and a random moment.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest
from attach_archive import check_attached, make_archive, seed
from relcommon import cli_cmd, cli_env, events, integrity, results, run_cli, wait_for

from pipeline.emulator import EmulatorConfig, Faults, emulator_in_thread

MOMENTS = ("puts_ok", "person_create_calls", "person_list_calls", "person_add_calls", "time")
"""In this order each is sure to come: uploads first; creates as the first persons fill; list calls when the
next run reconciles the create it was killed in; adds (the existing persons only ever get adds); then a
random moment after the run's first persons call."""
_PERSONS_CALLS = ("person_create_calls", "person_add_calls", "person_list_calls", "person_get_calls")


def _intents(journal: Path) -> int:
    with closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        (n,) = db.execute("select count(*) from attach_intents").fetchone()
        return int(n)


@pytest.mark.slow  # real time (seconds of it): the reliability tier
def test_sigkill_at_five_moments_of_the_attach_then_rerun(tmp_path: Path) -> None:
    rng = random.Random(13)
    config = EmulatorConfig(rate=0, confirm_rate=0, persons_rate=0, faults=Faults(latency=0.03))
    with emulator_in_thread(config) as emu:
        existing_id = asyncio.run(seed(emu))
        archive = make_archive(tmp_path / "photos", existing_id)
        cmd = cli_cmd(emu, archive.manifest, tmp_path, "--attach", "--attach-rate", "0", "--attach-within", "2",
                      "--concurrency", "8")
        env = cli_env(emu.credentials.access_key, emu.credentials.secret_key)
        killed = []
        for moment in MOMENTS:
            before = emu.counters.snapshot(arrivals=False)
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if moment == "time":
                calls = sum(before[c] for c in _PERSONS_CALLS)

                def started(calls: int = calls, proc: subprocess.Popen[bytes] = proc) -> bool:
                    now = emu.counters.snapshot(arrivals=False)
                    return sum(now[c] for c in _PERSONS_CALLS) > calls or proc.poll() is not None

                reached = wait_for(started, 120, step=0.001)
                time.sleep(rng.uniform(0.0, 0.3))
            else:
                target = before[moment] + (1 if moment == "person_list_calls" else rng.randint(1, 4))

                def hit(moment: str = moment, target: int = target, proc: subprocess.Popen[bytes] = proc) -> bool:
                    return emu.counters.snapshot(arrivals=False)[moment] >= target or proc.poll() is not None

                reached = wait_for(hit, 120, step=0.001)
            alive = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed.append((moment, alive))
            # A random moment may fall after the run's end; every other kill must hit a live run.
            assert reached and (alive or moment == "time"), f"the kill at {moment} came too late"
            journal = tmp_path / "j.sqlite"
            if journal.exists():
                assert "attach_intents" in integrity(journal)

        done = run_cli(cmd, env, timeout=300)
        persons_after = {p.id: list(p.keys) for p in emu.persons.values()}

    assert done.returncode == 0, done.stderr[-3000:]
    finished = next(e for e in events(done.stderr) if e["event"] == "run_finished")
    assert finished["by_status"] == {"attached": 268, "rejected": 10, "uploaded": 22}
    check_attached(emu, archive, results(tmp_path / "results.parquet"), existing_id)
    every_key = [k for keys in persons_after.values() for k in keys]
    assert len(every_key) == len(set(every_key))  # no key on two persons (the emulator refuses a second attach)
    assert _intents(tmp_path / "j.sqlite") == 0
    print(killed)
