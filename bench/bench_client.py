"""Client throughput: presign+PUT rows/s at the 50/s cap and with the cap lifted, measured on the emulator.

The emulator runs in its own process (``python -m pipeline.emulator --storage hash``: bytes are hashed, not
kept), as the real service would, and stamps every presign arrival; the rate is ``(N - 1) / (t_last -
t_first)`` over those stamps (read from ``/_emulator/state``), so it is what the server saw, not what the
client believes. A second capped figure runs the emulator in a thread of this process: there its arrival
stamps can lag by ~5-20 ms whenever it waits for the GIL (5 ms switch interval). The limiter holds each call
in the window until its answer (which such a lag delays too), so this should cost a little rate and never a
429; that figure shows whether it did.
Rows carry ~100 KB JPEG payloads; confirmation is off (it has its own 1000/min cap) except in the nightly
case: 600 rows with status checks, once with the status calls paced evenly at 1000/60 s (the old limiter:
"before") and once with only the 60 s window guard ("after"; goal >= 45 rows/s, <= 1,000 in any 60 s, 0 x 429).
3,000 rows at 50/s take a minute: that is the point.
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

from emulator_tools import emulator_process, fetch_state, max_in_window
from PIL import Image

from pipeline.client import ApiClient, StrictLimiter
from pipeline.config import ApiSettings, Credentials
from pipeline.emulator import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    DEFAULT_WORKSPACE,
    EmulatorConfig,
    emulator_in_thread,
)

ROWS_CAPPED = 3000
ROWS_UNCAPPED = 3000
ROWS_THREAD = 1000
ROWS_CONFIRM = 600
CONCURRENCY = 24
PAYLOAD_BYTES = 100_000


def payload(size: int = PAYLOAD_BYTES) -> bytes:
    """A valid 320x320 JPEG padded with trailing bytes (which decoders ignore) to ``size`` bytes."""
    buf = io.BytesIO()
    Image.new("RGB", (320, 320), (90, 140, 200)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    return data + b"\0" * max(0, size - len(data))


async def _drive(
    base: str, rows: int, rate: float, data: bytes, snapshot: Any, *, confirm: bool = False, paced: bool = False
) -> dict[str, Any]:
    settings = ApiSettings(
        workspace=DEFAULT_WORKSPACE, credentials=Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY),
        endpoint=base, rate=rate, concurrency=CONCURRENCY,
    )
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(rows):
        queue.put_nowait(i)
    failed = 0

    async def worker(client: ApiClient) -> None:
        nonlocal failed
        while not queue.empty():
            i = queue.get_nowait()
            outcome = await client.upload(f"bench-{i}.jpg", data, "image/jpeg", confirm=confirm)
            failed += not outcome.ok

    started = time.monotonic()
    async with ApiClient(settings) as client:
        if paced:  # the limiter before this round: status calls evenly paced at 1000/60 s from the first call
            client.status_limiter = StrictLimiter(settings.confirm_rate, 60.0, margin=0.05)
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    wall = time.monotonic() - started
    snap = snapshot()
    arrivals = sorted(snap["presign_arrivals"])
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    return {
        "rows": rows,
        "client_rate": rate,
        "server_presign_rate": round((len(arrivals) - 1) / span, 2) if span else None,
        "wall_rows_per_s": round(rows / wall, 2),
        "wall_s": round(wall, 2),
        "max_presign_in_1s": max_in_window(arrivals, 1.0),
        "responses_429": snap["responses_429"],
        "status_calls": snap["status_calls"],
        "max_status_in_60s": snap["max_status_per_60s"],
        "puts_ok": snap["puts_ok"],
        "failed_rows": failed,
        "retries": dict(client.stats.retries),
    }


def _case(rows: int, rate: float, data: bytes) -> dict[str, Any]:
    with emulator_process("--rate", str(rate), "--storage", "hash", no_gc=True) as base:
        return asyncio.run(_drive(base, rows, rate, data, lambda: fetch_state(base)))


def _confirm_case(rows: int, data: bytes, *, paced: bool) -> dict[str, Any]:
    with emulator_process("--rate", "50", "--confirm-rate", "1000", "--storage", "hash", no_gc=True) as base:
        return asyncio.run(_drive(base, rows, 50.0, data, lambda: fetch_state(base), confirm=True, paced=paced))


def _thread_case(rows: int, rate: float, data: bytes) -> dict[str, Any]:
    with emulator_in_thread(EmulatorConfig(rate=rate, storage="hash")) as emu:
        return asyncio.run(_drive(emu.base_url, rows, rate, data, emu.counters.snapshot))


def run(out_dir: Path) -> dict[str, Any]:
    """Measure and return the figures (``out_dir`` is where ``python -m bench`` writes them)."""
    data = payload()
    before = _confirm_case(ROWS_CONFIRM, data, paced=True)
    print(f"600 rows with status checks, paced (before): {before}", flush=True)
    after = _confirm_case(ROWS_CONFIRM, data, paced=False)
    print(f"600 rows with status checks, window (after): {after}", flush=True)
    capped = _case(ROWS_CAPPED, 50.0, data)
    print(f"capped 50/s, emulator process:  {capped}", flush=True)
    uncapped = _case(ROWS_UNCAPPED, 0.0, data)
    print(f"uncapped, emulator process:     {uncapped}", flush=True)
    threaded = _thread_case(ROWS_THREAD, 50.0, data)
    print(f"capped 50/s, emulator thread:   {threaded}", flush=True)
    return {
        "payload_bytes": len(data),
        "concurrency": CONCURRENCY,
        "capped_50": capped,
        "uncapped": uncapped,
        "capped_50_emulator_in_thread": threaded,
        "confirm_600_paced_before": before,
        "confirm_600_window_after": after,
        "confirm_meets_goal": after["wall_rows_per_s"] >= 45 and after["max_status_in_60s"] <= 1000
        and after["responses_429"] == 0,
        "goal_capped_rows_per_s": 49.5,
        "capped_meets_goal": (capped["server_presign_rate"] or 0) >= 49.5,
    }


if __name__ == "__main__":
    run(Path(__file__).parent / "results")
