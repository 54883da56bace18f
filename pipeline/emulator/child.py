"""``emulator_in_child``: the emulator in a child process of its own, as the demo runs it.

Why not in a thread of the caller: the emulator stamps each presign call's arrival and counts them per
sliding second. In one process with an ingest, its loop waits for the one GIL while the image threads hold
it, so it stamps some calls late and the next ones close behind, and sees 51 in a second that nobody sent
(measured: one 429 in 4 of 5 demos in a thread, 0 in 4 with the emulator in a child). The real service
runs on other machines; a child process is the nearest thing.

The child ends with its parent, however the parent ends (even ``kill -9``): it watches its stdin, the read
end of a pipe only the parent holds, and stops when it closes. It runs in its own session, so a Ctrl-C in the
terminal reaches the ingest (which drains) and not the emulator it is draining to.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from pipeline.config import Credentials
from pipeline.emulator.settings import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, DEFAULT_WORKSPACE
from pipeline.errors import ConfigError

__all__ = ["ChildEmulator", "emulator_in_child", "fetch_counters"]

_CHILD = """
import os, signal, sys, threading
from pipeline.emulator.runtime import main

def _parent_gone():
    # The raw descriptor, not sys.stdin: a daemon thread blocked in a buffered read aborts the interpreter's
    # shutdown when the emulator ends on its own (e.g. a bad flag).
    while os.read(0, 65536):
        pass  # end of file: the parent closed the pipe, or is gone
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=_parent_gone, daemon=True).start()
sys.exit(main(sys.argv[1:]))
"""
_LISTENING = re.compile(r"listening on (http://\S+)")


@dataclass(frozen=True)
class ChildEmulator:
    """A running emulator child: where it listens and the key pair and workspace it accepts."""

    base_url: str
    credentials: Credentials
    workspace: str

    def counters(self, timeout: float = 10.0) -> dict[str, Any]:
        """Its counters (``GET /_emulator/state``, without objects and arrival times)."""
        return fetch_counters(self.base_url, timeout=timeout)


def fetch_counters(base_url: str, *, arrivals: bool = False, timeout: float = 10.0) -> dict[str, Any]:
    """The counters of the emulator at ``base_url`` (``GET /_emulator/state``, objects left out; the presign
    and persons arrival times only if ``arrivals``). Raises ``OSError`` when it does not answer."""
    url = f"{base_url}/_emulator/state?objects=0&arrivals={int(arrivals)}"
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (our own emulator, on loopback)
        counters: dict[str, Any] = json.load(resp)["counters"]
    return counters


@contextmanager
def emulator_in_child(*args: str, start_timeout: float = 30.0, no_gc: bool = False) -> Iterator[ChildEmulator]:
    """Start ``python -m pipeline.emulator --port 0 ARGS`` with the built-in key pair and yield it once it
    listens; stop it on exit (SIGTERM, then SIGKILL after 10 s). Raises ``ConfigError`` (one sentence) if it
    does not say where it listens within ``start_timeout`` seconds.

    ``no_gc`` turns the cyclic garbage collector off in the child (the benchmarks' instrument): a gen-2 pass
    over tens of thousands of issued URLs pauses its loop for tens of ms, and the arrivals queued meanwhile
    would be stamped closer together than they were sent."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NCLOUD_")}  # the built-in key pair
    code = ("import gc; gc.disable()\n" if no_gc else "") + _CHILD
    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: nothing to drain while it runs
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "--port", "0", *args], env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True,
        )
        try:
            base_url = _wait_for_url(proc, errors, start_timeout)
            yield ChildEmulator(base_url, Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY), DEFAULT_WORKSPACE)
        finally:
            _stop(proc)


def _wait_for_url(proc: subprocess.Popen[str], errors: IO[str], timeout: float) -> str:
    """The base URL from the child's banner, waited for at most ``timeout`` seconds (it may fail or hang)."""
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:  # a thread, because a pipe cannot be waited on with a timeout everywhere
        assert proc.stdout is not None
        try:
            for line in proc.stdout:  # read to the end, so a chatty child (-v) never fills the pipe and blocks
                match = _LISTENING.search(line)
                if match and found.empty():
                    found.put(match.group(1))
        except (OSError, ValueError):  # the pipe was closed under us: the caller gave up and stopped the child
            pass
        found.put("")  # end of file: the child exited (a no-op for the caller once the URL is taken)

    threading.Thread(target=read, name="emulator-banner", daemon=True).start()
    try:
        url = found.get(timeout=timeout)
    except queue.Empty:
        raise ConfigError(f"The emulator did not say where it listens within {timeout:g} s.") from None
    if url:
        return url
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)  # its output ended: it is on its way out, with its reason written to stderr
    errors.seek(0)
    lines = [line.strip() for line in errors.read().splitlines() if line.strip()]
    why = lines[-1].removeprefix("error: ").rstrip(".") if lines else f"it exited with code {proc.returncode}"
    raise ConfigError(f"The emulator did not start: {why}.")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
