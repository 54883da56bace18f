"""The persons look-ups made when first needed (``runner/attach_lookups.Lookups``: one listing for many names
waiting, a filtered list call each for a few, one look-up per target), and the attach loop that sleeps while
every persons slot is busy -- against the emulator over loopback."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from helpers import MakeEmulator
from persons_helpers import uploaded_keys

from pipeline.attach import AttachRow, AttachSettings, PersonRef, PersonsApi, PersonState, Target, Thumb
from pipeline.client import ApiClient
from pipeline.config import ApiSettings
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.journal import Journal
from pipeline.progress import Progress
from pipeline.python_api import make_settings
from pipeline.runner.attach_book import AttachBook
from pipeline.runner.attach_lookups import WHOLE_LIST_FROM, Lookups
from pipeline.runner.attach_stage import PERSONS_IN_FLIGHT, AttachStage
from pipeline.runner.context import RunContext
from pipeline.runner.control import RunControl
from pipeline.runner.recorder import Recorder
from pipeline.runner.records import Attachable, Pipe


@pytest.fixture
async def emu(make_emulator: MakeEmulator) -> Emulator:
    return await make_emulator(EmulatorConfig(rate=0, confirm_rate=0, persons_rate=0))


def _client(emu: Emulator) -> ApiClient:
    return ApiClient(ApiSettings(workspace=emu.workspace, credentials=emu.credentials, endpoint=emu.base_url))


def _calls(emu: Emulator) -> Counter[str]:
    snap = emu.counters.snapshot(arrivals=False)
    return Counter({k: snap[f"{k}_calls"] for k in ("person_list", "person_get", "person_create")})


async def test_many_names_waiting_cost_one_listing_and_a_few_cost_a_call_each(emu: Emulator,
                                                                              tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http:
        keys = await uploaded_keys(http, emu, 2)
    learned: dict[Target, PersonState | None] = {}
    with Journal.open(tmp_path / "j.sqlite", workspace=emu.workspace) as journal:
        async with _client(emu) as client:
            api = PersonsApi(client, AttachSettings(attach_rate=0))
            for i, key in enumerate(keys):
                assert isinstance(await api.create(f"Name {i:02d}", [Thumb(key, True)]), PersonRef)
            before = _calls(emu)
            lookups = Lookups(api, journal, learned.__setitem__)
            many = [Target(name=f"Name {i:02d}") for i in range(WHOLE_LIST_FROM + 5)]
            found = await asyncio.gather(*(lookups.want(t) for t in many))  # wanted in one loop iteration
            assert lookups.want(many[0]) is lookups.want(many[0])  # once per target
            after_many = _calls(emu)
            few = [Target(name=f"Other {i}") for i in range(3)]
            await asyncio.gather(*(lookups.want(t) for t in few))
            await lookups.close()
        assert set(journal.known_persons()) == {"name:Name 00", "name:Name 01"}
    assert [s.count if s else None for s in found[:3]] == [1, 1, None] and set(learned) == set(many) | set(few)
    assert lookups.rounds == [WHOLE_LIST_FROM + 5, 3]
    assert after_many - before == Counter({"person_list": 1, "person_get": 2})  # one listing, two counts
    assert _calls(emu) - after_many == Counter()  # names wanted later are read from that listing


async def test_a_run_expecting_many_names_lists_once_and_then_never_asks_per_name(emu: Emulator,
                                                                                  tmp_path: Path) -> None:
    """A run creating many persons, one at a time (rows in manifest order): one listing at the first name, then
    no call per name (a look-up call per person would halve the persons cap left for the creates)."""
    with Journal.open(tmp_path / "j.sqlite", workspace=emu.workspace) as journal:
        async with _client(emu) as client:
            api = PersonsApi(client, AttachSettings(attach_rate=0))
            before = _calls(emu)
            lookups = Lookups(api, journal, lambda t, s: None, names=WHOLE_LIST_FROM)
            for i in range(WHOLE_LIST_FROM):
                assert await lookups.want(Target(name=f"New {i:02d}")) is None
            await lookups.close()
            few = Lookups(api, journal, lambda t, s: None, names=WHOLE_LIST_FROM - 1)
            assert await few.want(Target(name="Only one")) is None
            await few.close()
    # The many: one listing; the few: one filtered list call for its one name, not the whole list.
    assert _calls(emu) - before == Counter({"person_list": 2})


async def test_the_attach_loop_sleeps_while_every_persons_slot_is_busy(emu: Emulator, tmp_path: Path) -> None:
    """More persons due than slots, on a clock that says every one is long due: while the slots' calls take
    their time (held 0.2 s in front of the gateway), the loop waits for one to end instead of spinning."""
    n = PERSONS_IN_FLIGHT + 8
    targets = [Target(name=f"P{i:02d}") for i in range(n)]
    book = AttachBook.of([AttachRow(f"r{i:02d}", t) for i, t in enumerate(targets)], 100, {})
    for target in targets:
        book.learn(target, None)  # no such person: each is created
    inbox: Pipe[Attachable] = Pipe(n + 1)
    for i in range(n):
        await inbox.put(Attachable(f"r{i:02d}", f"r{i:02d}.jpg", f"never-uploaded-{i}"))
    await inbox.close()
    emu.faults.queue_rate, emu.faults.queue_delay = 1.0, 0.2
    ticks = itertools.count(step=60.0)  # every reading a minute later: every person is always due
    with Journal.open(tmp_path / "j.sqlite", workspace=emu.workspace) as journal:
        async with _client(emu) as client:
            api = PersonsApi(client, AttachSettings(attach_rate=0))
            settings = make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                                     person_max=100, attach_within=600.0)
            ctx = RunContext(settings, journal, Recorder(journal, Progress(n, enabled=False)), RunControl(),
                             lambda: float(next(ticks)), "run-1")
            stage = AttachStage(ctx, api, book, inbox)
            await stage.run()
    # Each create was refused (the keys were never uploaded): every row ended, none attached.
    assert not book.rows or all(not group for group in book.rows.values())
    assert emu.counters.snapshot(arrivals=False)["person_create_calls"] == n
    assert stage.turns <= 3 * n  # a turn per key in and per call out (spinning: thousands)
