"""``PersonsApi`` on an ``ApiClient`` against the emulator over loopback: create, add, find (several pages,
partial matches left out), count, delete, per-person refusals, the attach cap counted on the emulator's
arrivals, 429 storms, fatal answers once, and clean messages."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import aiohttp
import pytest
from emulator_tools import max_in_window
from helpers import MakeEmulator
from persons_helpers import uploaded_keys

from pipeline.attach import AttachSettings, PersonRef, PersonsApi, PersonState, Refused, Thumb
from pipeline.client import ApiClient
from pipeline.config import ApiSettings, Credentials
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.errors import AuthenticationError, NotFoundError


def settings_for(emu: Emulator, **overrides: Any) -> ApiSettings:
    base = ApiSettings(workspace=emu.workspace, credentials=emu.credentials, endpoint=emu.base_url,
                       backoff_base=0.01, backoff_max=0.05)
    return dataclasses.replace(base, **overrides)


def assert_clean(text: str, emu: Emulator) -> None:
    assert emu.credentials.secret_key not in text and "X-Amz-Signature" not in text
    assert not re.search(r"https?://\S+\?(?!<redacted>)", text), text


@pytest.fixture
async def emu(make_emulator: MakeEmulator) -> Emulator:
    """Uploads uncapped (tests upload many keys quickly); the persons cap at its default, 10/s."""
    return await make_emulator(EmulatorConfig(rate=0, confirm_rate=0))


async def keys_for(emu: Emulator, n: int, prefix: str = "k") -> list[str]:
    async with aiohttp.ClientSession() as http:
        return await uploaded_keys(http, emu, n, prefix=prefix)


def thumbs(keys: list[str], primary: int | None = 0) -> list[Thumb]:
    return [Thumb(k, i == primary) for i, k in enumerate(keys)]


async def test_create_add_count_find_delete(emu: Emulator) -> None:
    keys = await keys_for(emu, 5)
    async with ApiClient(settings_for(emu)) as client:
        api = PersonsApi(client)
        ada = await api.create("Ada", thumbs(keys[:2], primary=1))
        assert isinstance(ada, PersonRef) and ada.name == "Ada" and ada.id.isdigit()
        assert emu.persons[int(ada.id)].keys == keys[:2] and emu.persons[int(ada.id)].primary_key == keys[1]
        added = await api.add(ada.id, thumbs(keys[2:4], primary=None))
        assert isinstance(added, PersonState) and added.count == 4 and added.primary_id is not None
        moved = await api.add(ada.id, [Thumb(keys[4], True)])
        assert isinstance(moved, PersonState) and moved.count == 5 and moved.primary_id != added.primary_id
        assert emu.persons[int(ada.id)].primary_key == keys[4]
        assert await api.count(ada.id) == moved
        assert await api.find_by_name("Ada") == [ada]
        assert await api.delete(ada.id) is None
        assert await api.count(ada.id) is None and await api.find_by_name("Ada") == []
    c = emu.counters
    assert (c.person_create_calls, c.person_add_calls, c.person_get_calls, c.person_delete_calls) == (1, 2, 2, 1)
    assert c.person_list_calls == 2 and c.responses_429 == 0


async def test_anonymous_persons_and_text_ids(emu: Emulator) -> None:
    keys = await keys_for(emu, 2)
    async with ApiClient(settings_for(emu)) as client:
        api = PersonsApi(client)
        first, second = [await api.create(None, [Thumb(k, True)]) for k in keys]
    assert isinstance(first, PersonRef) and isinstance(second, PersonRef) and first.id != second.id
    assert first.name is None and {p.name for p in emu.persons.values()} == {None}


@pytest.mark.parametrize("emu_config", [EmulatorConfig(rate=0, confirm_rate=0, persons_rate=0)])
async def test_find_reads_every_page_and_takes_exact_names_only(make_emulator: MakeEmulator,
                                                                 emu_config: EmulatorConfig) -> None:
    emu = await make_emulator(emu_config)
    names = ["Kim Ji", "Kimberly", "Joakim", "Kim Jiho", "kim", "Park Kim", "Kim"]
    keys = await keys_for(emu, len(names))
    async with ApiClient(settings_for(emu)) as client:
        api = PersonsApi(client, AttachSettings(attach_rate=0), page_size=2)
        made = [await api.create(n, [Thumb(k, True)]) for n, k in zip(names, keys, strict=True)]
        assert await api.find_by_name("Kim") == [made[-1]]  # the last of 3 pages of 6 partial matches
        assert await api.find_by_name("Kim J") == []
        assert await api.find_by_name("K") == []  # too short to filter on: every person listed and compared
    # "Kim": pages 1..3 (Kim Ji, Kimberly | Kim Jiho, Park Kim | Kim); "Kim J": 1 page (Kim Ji, Kim Jiho); "K":
    # every person (7) unfiltered in pages of 2.
    assert emu.counters.person_list_calls == 3 + 1 + 4


async def test_a_taken_name_is_looked_up_not_trusted_to_an_error_code(emu: Emulator) -> None:
    keys = await keys_for(emu, 3)
    async with ApiClient(settings_for(emu)) as client:
        api = PersonsApi(client)
        ada = await api.create("Ada", [Thumb(keys[0], True)])
        assert isinstance(ada, PersonRef)
        again = await api.create("Ada", thumbs(keys[1:]))
    assert isinstance(again, Refused) and again.reason == "name_exists" and again.person_id == ada.id
    assert again.state == PersonState(ada.id, 1, again.state.primary_id if again.state else None)
    assert keys[1] not in emu.attached_keys and client.fatal is None
    assert_clean(again.detail, emu)


async def test_per_person_refusals_are_results(emu: Emulator) -> None:
    keys = await keys_for(emu, 2)
    async with ApiClient(settings_for(emu)) as client:
        api = PersonsApi(client)
        ada = await api.create("Ada", [Thumb(keys[0], True)])
        assert isinstance(ada, PersonRef)
        twice = await api.add(ada.id, [Thumb(keys[0])])
        unknown = await api.add("987654", [Thumb(keys[1])])
        bad_key = await api.create(None, [Thumb("demo/none/x.jpg", True)])
        gone = await api.delete("987654")
        assert await api.count("987654") is None
    assert isinstance(twice, Refused) and twice.reason == "add_rejected" and twice.state is not None
    assert twice.state.count == 1 and "10004" in twice.detail
    assert isinstance(unknown, Refused) and unknown.reason == "person_not_found" and "987654" in unknown.detail
    assert isinstance(bad_key, Refused) and bad_key.reason == "create_rejected"
    assert isinstance(gone, Refused) and gone.reason == "person_not_found"
    assert client.fatal is None
    for refused in (twice, unknown, bad_key, gone):
        assert_clean(refused.detail, emu)


async def test_the_attach_rate_holds_on_the_emulators_arrivals(emu: Emulator) -> None:
    keys = await keys_for(emu, 1)
    async with ApiClient(settings_for(emu)) as client:
        api = PersonsApi(client)
        ada = await api.create("Ada", [Thumb(keys[0], True)])
        assert isinstance(ada, PersonRef)
        states = await asyncio.gather(*(api.count(ada.id) for _ in range(24)))
    assert all(s is not None and s.count == 1 for s in states)
    snap = emu.counters.snapshot()
    arrivals = snap["persons_arrivals"]
    assert snap["responses_429"] == 0 and len(arrivals) == 25
    assert snap["max_persons_per_1s"] <= 10 and max_in_window(arrivals, 1.0) <= 10
    assert max_in_window(arrivals[:12], 1.0) <= 10  # the first second too


async def test_a_429_storm_is_ridden_out_and_lowers_the_rate(emu: Emulator) -> None:
    keys = await keys_for(emu, 1)
    emu.faults.storm(1.5)
    async with ApiClient(settings_for(emu)) as client:
        api = PersonsApi(client)
        ada = await api.create("Ada", [Thumb(keys[0], True)])
        assert isinstance(ada, PersonRef)
        states = await asyncio.gather(*(api.count(ada.id) for _ in range(5)))
    assert all(s is not None for s in states) and len(emu.persons) == 1
    c = emu.counters
    # Retry-After pauses every waiting call at once: a 1.5 s storm costs a few 429s, not a hammering.
    assert 1 <= c.responses_429 <= 4 and client.stats.responses_429 == c.responses_429
    assert api.limiter.rate < 10 and client.presign_limiter.rate == 50


async def test_5xx_answers_are_retried(emu: Emulator) -> None:
    keys = await keys_for(emu, 3)
    emu.faults.seed, emu.faults.error_rate = 7, 0.4
    async with ApiClient(settings_for(emu, retry_window=30.0)) as client:
        api = PersonsApi(client, AttachSettings(attach_rate=0))
        made = [await api.create(f"P{i}", [Thumb(k, True)]) for i, k in enumerate(keys)]
        found = [await api.find_by_name(f"P{i}") for i in range(3)]
    assert all(isinstance(m, PersonRef) for m in made) and [len(f) for f in found] == [1, 1, 1]
    assert emu.counters.faults["errors"] > 0 and client.stats.retries["transient"] == emu.counters.faults["errors"]


async def test_a_wrong_secret_is_fatal_once(emu: Emulator) -> None:
    wrong = Credentials(emu.credentials.access_key, "not-the-secret")
    async with ApiClient(settings_for(emu, credentials=wrong)) as client:
        api = PersonsApi(client)
        results = await asyncio.gather(*(api.count(str(i)) for i in range(6)), return_exceptions=True)
        assert all(isinstance(r, AuthenticationError) for r in results)
        with pytest.raises(AuthenticationError):
            await client.presign("a.jpg")  # the whole client stopped, without another request
    assert emu.counters.person_get_calls == 1 and emu.counters.presign_calls == 0
    assert api.limiter.closed
    for r in results:
        assert_clean(str(r), emu)


async def test_an_unknown_workspace_is_fatal(emu: Emulator) -> None:
    async with ApiClient(settings_for(emu, workspace="nope")) as client:
        api = PersonsApi(client)
        with pytest.raises(NotFoundError, match="workspace"):
            await api.find_by_name("Ada")
        assert client.fatal is not None
        with pytest.raises(NotFoundError):
            await api.count("1")
    assert emu.counters.person_list_calls == 1 and emu.counters.person_get_calls == 0


async def test_arguments_the_api_would_refuse_are_caller_bugs(emu: Emulator) -> None:
    async with ApiClient(settings_for(emu)) as client:
        api = PersonsApi(client)
        with pytest.raises(ValueError, match="exactly one primary"):
            await api.create("Ada", [Thumb("a"), Thumb("b")])
        with pytest.raises(ValueError, match="1 to 100"):
            await api.add("1", [Thumb(f"k{i}") for i in range(101)])
        with pytest.raises(ValueError, match="not blank"):
            await api.create(" ", [Thumb("a", True)])
    assert emu.counters.person_create_calls == emu.counters.person_add_calls == 0
