"""A PUT that timed out may have landed: before another presign round the client asks the key's upload status,
and ``COMPLETED`` counts the row done with that key (one stored copy, not one per round). A PUT that got no
answer and did not land (``FILE_NOT_EXIST``) starts a new round as before."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from helpers import MakeEmulator, make_image

from pipeline.client import ApiClient, ApiSettings
from pipeline.emulator import Emulator, EmulatorConfig, Faults
from pipeline.models import Presigned

JPEG = make_image(300, 300)


def settings_for(emu: Emulator, **overrides: Any) -> ApiSettings:
    # A PUT times out after 0.3 s (the body's own share is negligible at 1 GB/s).
    base = ApiSettings(workspace=emu.workspace, credentials=emu.credentials, endpoint=emu.base_url,
                       backoff_base=0.01, backoff_max=0.05, put_timeout_floor=0.3, put_min_rate=1e6)
    return dataclasses.replace(base, **overrides)


@pytest.mark.parametrize("confirm", [True, False])
async def test_a_put_answered_after_its_timeout_is_one_stored_copy(make_emulator: MakeEmulator,
                                                                   confirm: bool) -> None:
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0, faults=Faults(put_answer_delay=30.0)))
    async with ApiClient(settings_for(emu)) as client:
        outcome = await client.upload("a.jpg", JPEG, "image/jpeg", confirm=confirm)
    assert outcome.ok and outcome.attempts == 1 and outcome.orphans == ()
    assert list(emu.objects) == [outcome.thumbnail_key]  # 1 stored copy (it was 8, one per round)
    assert emu.objects[outcome.thumbnail_key or ""].data == JPEG
    c = emu.counters
    assert (c.presign_calls, c.put_calls, c.puts_ok, c.status_calls) == (1, 1, 1, 1)


async def test_a_put_without_answer_that_did_not_land_starts_a_new_round(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0))
    keys: list[str] = []

    async def unstall() -> None:
        while not emu.counters.faults["stalled"]:  # noqa: ASYNC110 - the emulator's counters have no event
            await asyncio.sleep(0.005)
        emu.faults.stall_rate = 0.0  # only the first PUT is swallowed; the status calls are answered

    async def on_presigned(p: Presigned) -> None:
        keys.append(p.thumbnail_key)
        if len(keys) == 1:
            emu.faults.stall_rate = 1.0
            helpers.append(asyncio.create_task(unstall()))

    helpers: list[asyncio.Task[None]] = []
    async with ApiClient(settings_for(emu)) as client:
        outcome = await client.upload("a.jpg", JPEG, "image/jpeg", on_presigned=on_presigned)
    await asyncio.gather(*helpers)
    assert outcome.ok and outcome.attempts == 2 and outcome.thumbnail_key == keys[1]
    assert outcome.orphans == (keys[0],) and list(emu.objects) == [keys[1]]
    assert emu.counters.status_calls == 2  # the first key asked (FILE_NOT_EXIST), the second confirmed
    assert client.stats.retries["put_failed"] == 1
