"""The emulator in a child process (the demo's): it serves, it stops with the context, it ends with its parent
however the parent ends, and a start that fails is one sentence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline.emulator.child import emulator_in_child, fetch_counters
from pipeline.errors import ConfigError


def _answers(base_url: str) -> bool:
    try:
        fetch_counters(base_url, timeout=2)
    except OSError:  # URLError included
        return False
    return True


def _gone_within(base_url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _answers(base_url):
            return True
        time.sleep(0.1)
    return False


def test_it_serves_with_the_built_in_key_pair_and_stops_with_the_context() -> None:
    with emulator_in_child("--storage", "hash", "--rate", "7") as emu:
        counters = emu.counters()
        assert counters["presign_calls"] == 0 and counters["responses_429"] == 0
        assert emu.workspace == "demo" and emu.base_url.startswith("http://127.0.0.1:")
        url = emu.base_url
    assert not _answers(url)  # stopped and waited for on exit


def test_it_ends_with_its_parent_even_on_kill_9() -> None:
    code = (
        "import sys, time\n"
        "from pipeline.emulator.child import emulator_in_child\n"
        "with emulator_in_child() as emu:\n"
        "    print(emu.base_url, flush=True)\n"
        "    time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        url = parent.stdout.readline().strip()
        assert url.startswith("http://") and _answers(url)
        os.kill(parent.pid, signal.SIGKILL)  # no finally, no atexit: only the closed pipe tells the child
        parent.wait(timeout=10)
        assert _gone_within(url, 15)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
        if parent.stdout is not None:
            parent.stdout.close()


def test_a_child_that_cannot_start_is_one_sentence() -> None:
    with pytest.raises(ConfigError, match=r"^The emulator did not start: .*rate") as caught, \
            emulator_in_child("--rate", "-1"):
        pass  # pragma: no cover
    assert "\n" not in str(caught.value)
