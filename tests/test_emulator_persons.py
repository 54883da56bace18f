"""The emulator's persons API over loopback HTTP, driven by raw signed calls: every rule of API.md section 3,
the emulator's own choices (codes in ``pipeline.emulator.persons``), key expiry on a moved wall clock, the
persons cap, faults and inspection."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from emulator_tools import FakeClock
from helpers import MakeEmulator, make_image, presign, put, signed_post
from persons_helpers import persons_path, signed_call, thumb, uploaded_keys

from pipeline.config import Credentials
from pipeline.emulator import Emulator, EmulatorConfig, Faults
from pipeline.emulator.persons import age_uploads


@pytest.fixture
async def emu(make_emulator: MakeEmulator) -> Emulator:
    """An emulator with its caps off (the rule tests make many calls quickly) and two workspaces."""
    return await make_emulator(EmulatorConfig(rate=0, confirm_rate=0, persons_rate=0, workspaces=("demo", "other")))


async def create(http: aiohttp.ClientSession, emu: Emulator, body: dict[str, Any], ws: str = "demo") -> Any:
    return await signed_call(http, emu, "POST", persons_path(ws), body)


def code(reply: Any) -> tuple[int, str]:
    return reply.status, reply.body["code"]


async def test_create_answers_both_id_names_and_records_the_person(emu: Emulator, http: aiohttp.ClientSession) -> None:
    keys = await uploaded_keys(http, emu, 3)
    reply = await create(http, emu, {"name": "Ada", "description": "mathematician",
                                     "thumbnails": [thumb(keys[0]), thumb(keys[1], True), thumb(keys[2])]})
    assert reply.status == 200 and (reply.body["code"], reply.body["message"]) == ("0", "success")
    result = reply.body["result"]
    assert isinstance(result["id"], int) and result["personId"] == str(result["id"]) and result["name"] == "Ada"
    assert [t["isPrimaryThumbnail"] for t in result["thumbnailList"]] == [False, True, False]
    person = emu.persons[result["id"]]
    assert (person.name, person.keys, person.primary_key) == ("Ada", keys, keys[1])
    assert emu.counters.person_create_calls == 1 and emu.counters.snapshot()["person_create_calls"] == 1
    state = await (await http.get(f"{emu.base_url}/_emulator/state")).json()
    assert state["persons"][str(result["id"])]["keys"] == keys and state["person_count"] == 1


@pytest.mark.parametrize("body", [
    {},
    {"thumbnails": []},
    {"thumbnails": "k"},
    {"thumbnails": [thumb("K0")]},  # no primary
    {"thumbnails": [thumb("K0", True), thumb("K1", True)]},
    {"thumbnails": [thumb("K0", True), thumb("K0")]},  # one key twice
    {"thumbnails": [{"thumbnailKey": "K0", "isPrimaryThumbnail": "yes"}]},
    {"thumbnails": [{"isPrimaryThumbnail": True}]},
    {"thumbnails": [thumb(f"K{i}", i == 0) for i in range(101)]},
    {"name": "   ", "thumbnails": [thumb("K0", True)]},
    {"name": "", "thumbnails": [thumb("K0", True)]},
    {"name": "x" * 51, "thumbnails": [thumb("K0", True)]},
    {"name": 7, "thumbnails": [thumb("K0", True)]},
    {"description": "x" * 701, "thumbnails": [thumb("K0", True)]},
])
async def test_invalid_create_requests_are_400_10001(emu: Emulator, http: aiohttp.ClientSession,
                                                     body: dict[str, Any]) -> None:
    keys = await uploaded_keys(http, emu, 2)
    real = {"K0": keys[0], "K1": keys[1]}
    for item in body.get("thumbnails", []) if isinstance(body.get("thumbnails"), list) else []:
        if isinstance(item, dict) and item.get("thumbnailKey") in real:
            item["thumbnailKey"] = real[item["thumbnailKey"]]
    assert code(await create(http, emu, body)) == (400, "10001")
    assert emu.persons == {} and emu.attached_keys == {}


async def test_limits_are_inclusive(emu: Emulator, http: aiohttp.ClientSession) -> None:
    keys = await uploaded_keys(http, emu, 2)
    reply = await create(http, emu, {"name": "x" * 50, "description": "d" * 700, "thumbnails": [thumb(keys[0], True)]})
    assert reply.status == 200
    assert (await create(http, emu, {"name": "y", "thumbnails": [thumb(keys[1], True)]})).status == 200


async def test_only_completed_keys_of_this_workspace_that_were_never_attached(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    good = await uploaded_keys(http, emu, 1)
    elsewhere = await uploaded_keys(http, emu, 1, workspace="other")
    unput = (await presign(http, emu, "never-put.jpg")).body["result"]["thumbnailKey"]
    small = (await presign(http, emu, "small.jpg")).body["result"]
    await put(http, small["url"], make_image(100, 300))  # stored, but the status call says RESOLUTION_NOT_SUPPORT
    for bad in ("demo/none/such.jpg", elsewhere[0], unput, small["thumbnailKey"]):
        reply = await create(http, emu, {"thumbnails": [thumb(bad, True)]})
        assert code(reply) == (400, "10002") and bad in reply.body["message"]
    assert (await create(http, emu, {"thumbnails": [thumb(good[0], True)]})).status == 200
    again = await create(http, emu, {"thumbnails": [thumb(good[0], True)]})
    assert code(again) == (400, "10004")
    assert len(emu.persons) == 1


async def test_a_refused_key_attaches_nothing(emu: Emulator, http: aiohttp.ClientSession) -> None:
    keys = await uploaded_keys(http, emu, 2)
    reply = await create(http, emu, {"thumbnails": [thumb(keys[0], True), thumb("demo/none/x.jpg")]})
    assert code(reply) == (400, "10002")
    assert emu.attached_keys == {} and (await create(http, emu, {"thumbnails": [thumb(keys[0], True)]})).status == 200


async def test_keys_expire_24_hours_after_upload_on_the_wall_clock(make_emulator: MakeEmulator,
                                                                  http: aiohttp.ClientSession) -> None:
    wall = [time.time()]
    emu = Emulator(EmulatorConfig(persons_rate=0), wallclock=lambda: wall[0])
    await emu.start()
    try:
        keys = await uploaded_keys(http, emu, 2)
        wall[0] += 24 * 3600 - 1
        stamp = str(int(wall[0] * 1000))  # the client's clock moved with the server's
        body = {"thumbnails": [thumb(keys[0], True)]}
        assert (await signed_call(http, emu, "POST", persons_path(), body, timestamp=stamp)).status == 200
        wall[0] += 1
        stamp = str(int(wall[0] * 1000))
        late = await signed_call(http, emu, "POST", persons_path(), {"thumbnails": [thumb(keys[1], True)]},
                                 timestamp=stamp)
        assert code(late) == (400, "10003")
        # An attached key does not expire: the first person is untouched.
        assert emu.persons[next(iter(emu.persons))].keys == [keys[0]]
    finally:
        await emu.stop()


async def test_age_uploads_expires_keys_without_moving_signature_time(emu: Emulator,
                                                                      http: aiohttp.ClientSession) -> None:
    keys = await uploaded_keys(http, emu, 1)
    age_uploads(emu, 24 * 3600)
    assert code(await create(http, emu, {"thumbnails": [thumb(keys[0], True)]})) == (400, "10003")


async def test_names_are_unique_per_workspace_and_anonymous_persons_are_allowed(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    keys = await uploaded_keys(http, emu, 4)
    other = await uploaded_keys(http, emu, 1, workspace="other")
    assert (await create(http, emu, {"name": "Ada", "thumbnails": [thumb(keys[0], True)]})).status == 200
    dup = await create(http, emu, {"name": "Ada", "thumbnails": [thumb(keys[1], True)]})
    assert code(dup) == (400, "10009") and keys[1] not in emu.attached_keys
    assert (await create(http, emu, {"name": "Ada", "thumbnails": [thumb(other[0], True)]}, "other")).status == 200
    for key in keys[2:]:
        assert (await create(http, emu, {"thumbnails": [thumb(key, True)]})).status == 200
    assert sorted(str(p.name) for p in emu.persons.values()) == ["Ada", "Ada", "None", "None"]


async def test_add_thumbnails_answers_the_final_list_and_moves_the_primary(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    keys = await uploaded_keys(http, emu, 4)
    pid = (await create(http, emu, {"name": "Ada", "thumbnails": [thumb(keys[0], True)]})).body["result"]["id"]
    path = persons_path("demo", pid, "person-thumbnail")
    plain = await signed_call(http, emu, "POST", path, {"thumbnails": [thumb(keys[1])]})
    assert plain.status == 200
    final = plain.body["result"]["thumbnailList"]
    assert [t["isPrimaryThumbnail"] for t in final] == [True, False]
    assert all("?" in t["url"] and isinstance(t["id"], int) for t in final)
    moved = await signed_call(http, emu, "POST", path, {"thumbnails": [thumb(keys[2]), thumb(keys[3], True)]})
    assert [t["isPrimaryThumbnail"] for t in moved.body["result"]["thumbnailList"]] == [False, False, False, True]
    assert emu.persons[pid].primary_key == keys[3] and emu.counters.person_add_calls == 2
    two = await signed_call(http, emu, "POST", path, {"thumbnails": [thumb("a", True), thumb("b", True)]})
    assert code(two) == (400, "10001")
    assert code(await signed_call(http, emu, "POST", path, {"thumbnails": [thumb(keys[1])]})) == (400, "10004")


async def test_a_person_holds_at_most_100_thumbnails(emu: Emulator, http: aiohttp.ClientSession) -> None:
    keys = await uploaded_keys(http, emu, 101)
    first = await create(http, emu, {"thumbnails": [thumb(k, i == 0) for i, k in enumerate(keys[:60])]})
    pid = first.body["result"]["id"]
    path = persons_path("demo", pid, "person-thumbnail")
    over = await signed_call(http, emu, "POST", path, {"thumbnails": [thumb(k) for k in keys[60:]]})
    assert code(over) == (400, "10005") and len(emu.persons[pid].thumbnails) == 60
    full = await signed_call(http, emu, "POST", path, {"thumbnails": [thumb(k) for k in keys[60:100]]})
    assert len(full.body["result"]["thumbnailList"]) == 100
    assert code(await signed_call(http, emu, "POST", path, {"thumbnails": [thumb(keys[100])]})) == (400, "10005")


@pytest.mark.parametrize("method,tail", [("POST", "person-thumbnail"), ("GET", ""), ("PATCH", ""), ("DELETE", "")])
async def test_an_unknown_person_is_400_10404_not_the_fatal_404(emu: Emulator, http: aiohttp.ClientSession,
                                                                method: str, tail: str) -> None:
    keys = await uploaded_keys(http, emu, 1, workspace="other")
    pid = (await create(http, emu, {"thumbnails": [thumb(keys[0], True)]}, "other")).body["result"]["id"]
    body = {"thumbnails": [thumb("k")]} if method == "POST" else ({} if method == "PATCH" else None)
    for person_id in ("999999", "abc", str(pid)):  # the last is a person of another workspace
        reply = await signed_call(http, emu, method, persons_path("demo", person_id, tail), body)
        assert code(reply) == (400, "10404") and reply.body["message"] == "person not found"


async def test_list_pages_match_names_partially_and_count(emu: Emulator, http: aiohttp.ClientSession) -> None:
    names = ["Kim", "Kimberly", "Joakim", "Lee", "kim"]
    keys = await uploaded_keys(http, emu, len(names))
    for name, key in zip(names, keys, strict=True):
        assert (await create(http, emu, {"name": name, "thumbnails": [thumb(key, True)]})).status == 200
    page1 = await signed_call(http, emu, "GET", persons_path(name="Kim", pageNum=1, pageSize=2))
    result = page1.body["result"]
    assert [p["name"] for p in result["content"]] == ["Kim", "Kimberly"]
    assert (result["totalCount"], result["totalPage"], result["pageNo"], result["pageSize"]) == (2, 1, 1, 2)
    wide = await signed_call(http, emu, "GET", persons_path(name="im", pageNum=2, pageSize=2))
    assert [p["name"] for p in wide.body["result"]["content"]] == ["Joakim", "kim"]
    assert all(p["thumbnailCount"] == 1 and p["personId"] == str(p["id"]) for p in wide.body["result"]["content"])
    everyone = await signed_call(http, emu, "GET", persons_path(pageNum=1))
    assert everyone.body["result"]["totalCount"] == 5 and everyone.body["result"]["pageSize"] == 10
    past = await signed_call(http, emu, "GET", persons_path(pageNum=9, pageSize=1000))
    assert past.body["result"]["content"] == [] and emu.counters.person_list_calls == 4


async def test_a_korean_name_is_found_through_an_encoded_query(emu: Emulator, http: aiohttp.ClientSession) -> None:
    keys = await uploaded_keys(http, emu, 1)
    assert (await create(http, emu, {"name": "김지호", "thumbnails": [thumb(keys[0], True)]})).status == 200
    found = await signed_call(http, emu, "GET", persons_path(name="김지호", pageNum=1))
    assert [p["name"] for p in found.body["result"]["content"]] == ["김지호"]


@pytest.mark.parametrize("query", [
    {}, {"pageNum": 0}, {"pageNum": "x"}, {"pageNum": 1, "pageSize": 0}, {"pageNum": 1, "pageSize": 1001},
    {"pageNum": 1, "name": "K"}, {"pageNum": 1, "name": "x" * 51}, {"pageNum": 1, "name": "Ki;m"},
    {"pageNum": 1, "name": "Ki|m"}, {"pageNum": 1, "name": "Ki`m"},
])
async def test_invalid_list_queries_are_400(emu: Emulator, http: aiohttp.ClientSession, query: dict[str, Any]) -> None:
    assert code(await signed_call(http, emu, "GET", persons_path(**query))) == (400, "10001")


async def test_details_show_thumbnails_but_never_keys(emu: Emulator, http: aiohttp.ClientSession) -> None:
    keys = await uploaded_keys(http, emu, 2)
    pid = (await create(http, emu, {"name": "Ada", "thumbnails": [thumb(keys[0]), thumb(keys[1], True)]})
           ).body["result"]["id"]
    reply = await signed_call(http, emu, "GET", persons_path("demo", pid))
    result = reply.body["result"]
    assert {"id", "name", "description", "tags", "thumbnails"} <= set(result) and result["tags"] == []
    assert [t["isPrimaryThumbnail"] for t in result["thumbnails"]] == [False, True]
    assert set(result["thumbnails"][0]) == {"id", "url", "isPrimaryThumbnail"}
    assert not any(k in reply.text or k.split("/")[1] in reply.text for k in keys)
    assert emu.counters.person_get_calls == 1


async def test_edit_renames_and_sets_the_primary(emu: Emulator, http: aiohttp.ClientSession) -> None:
    keys = await uploaded_keys(http, emu, 3)
    ada = (await create(http, emu, {"name": "Ada", "thumbnails": [thumb(keys[0], True), thumb(keys[1])]})
           ).body["result"]
    await create(http, emu, {"name": "Bob", "thumbnails": [thumb(keys[2], True)]})
    path = persons_path("demo", ada["id"])
    second = ada["thumbnailList"][1]["id"]
    edited = await signed_call(http, emu, "PATCH", path, {"name": "Ada L.", "primaryThumbnailId": second})
    assert edited.status == 200 and edited.body["result"]["name"] == "Ada L."
    assert emu.persons[ada["id"]].primary_key == keys[1]
    assert code(await signed_call(http, emu, "PATCH", path, {"name": "Bob"})) == (400, "10009")
    assert code(await signed_call(http, emu, "PATCH", path, {"primaryThumbnailId": 999999})) == (400, "10001")
    assert code(await signed_call(http, emu, "PATCH", path, {"description": ""})) == (400, "10001")
    assert (await signed_call(http, emu, "PATCH", path, {"name": "Ada L."})).status == 200  # its own name
    assert emu.counters.person_edit_calls == 5


async def test_delete_removes_the_person_and_its_keys_stay_used(emu: Emulator, http: aiohttp.ClientSession) -> None:
    keys = await uploaded_keys(http, emu, 1)
    pid = (await create(http, emu, {"name": "Ada", "thumbnails": [thumb(keys[0], True)]})).body["result"]["id"]
    gone = await signed_call(http, emu, "DELETE", persons_path("demo", pid))
    assert gone.status == 200 and gone.body == {"code": "0", "message": "success"}
    assert emu.persons == {} and emu.counters.person_delete_calls == 1
    assert code(await signed_call(http, emu, "GET", persons_path("demo", pid))) == (400, "10404")
    assert code(await create(http, emu, {"name": "Ada", "thumbnails": [thumb(keys[0], True)]})) == (400, "10004")


@pytest.mark.parametrize("method,tail,person", [
    ("POST", "", None), ("GET", "", None), ("GET", "", "1001"), ("PATCH", "", "1001"), ("DELETE", "", "1001"),
    ("POST", "person-thumbnail", "1001"),
])
async def test_gateway_checks_apply_to_every_route(emu: Emulator, http: aiohttp.ClientSession, method: str,
                                                   tail: str, person: str | None) -> None:
    query = {"pageNum": 1} if method == "GET" and person is None else {}
    body = {"thumbnails": [thumb("k", True)]} if method in ("POST", "PATCH") else None
    wrong = Credentials(emu.credentials.access_key, "not-the-secret")
    denied = await signed_call(http, emu, method, persons_path("demo", person, tail, **query), body, credentials=wrong)
    assert denied.status == 401 and denied.body["error"]["errorCode"] == "200"
    stale = await signed_call(http, emu, method, persons_path("demo", person, tail, **query), body,
                              timestamp=str(int((time.time() - 600) * 1000)))
    assert stale.status == 401
    unknown = await signed_call(http, emu, method, persons_path("nope", person, tail, **query), body)
    assert code(unknown) == (404, "300")


async def test_the_persons_cap_is_its_own_sliding_second(http: aiohttp.ClientSession) -> None:
    fake = FakeClock()  # time stands still: the burst arrives within one second whatever the machine's load
    async with Emulator(EmulatorConfig(rate=50), clock=fake.clock) as emu:
        replies = await asyncio.gather(*(signed_call(http, emu, "GET", persons_path(pageNum=1)) for _ in range(11)))
        assert sorted(r.status for r in replies) == [200] * 10 + [429]
        throttled = next(r for r in replies if r.status == 429)
        assert throttled.body["code"] == "410" and throttled.headers["Retry-After"] == "1"
        assert (await presign(http, emu)).status == 200  # the presign window is another one
        c = emu.counters.snapshot()
        assert c["max_persons_per_1s"] == 11 and len(c["persons_arrivals"]) == 11 and c["max_presign_per_1s"] == 1
        fake.advance(1.0)
        assert (await signed_call(http, emu, "GET", persons_path(pageNum=1))).status == 200


@pytest.mark.parametrize("emulator", [EmulatorConfig(persons_rate=0)], indirect=True)
async def test_faults_apply_to_persons_routes(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    path = persons_path(pageNum=1)
    emulator.faults.quota_exhausted = True
    assert code(await signed_call(http, emulator, "GET", path)) == (429, "400")
    emulator.faults = Faults(error_rate=1.0)
    assert (await signed_call(http, emulator, "GET", path)).status in (500, 503)
    emulator.faults = Faults(html_error_rate=1.0)
    assert (await signed_call(http, emulator, "GET", path)).status == 502
    emulator.faults = Faults(clock=emulator.clock)
    emulator.faults.storm(60)
    assert code(await signed_call(http, emulator, "GET", path)) == (429, "410")
    emulator.faults = Faults(drop_rate=1.0)
    with pytest.raises(aiohttp.ClientError):
        await signed_call(http, emulator, "GET", path)
    # aiohttp sends an idempotent GET once more after a dropped connection: 4 + 2 calls arrived.
    assert emulator.counters.person_list_calls == 6


async def test_a_json_body_is_required_where_the_api_takes_one(emu: Emulator, http: aiohttp.ClientSession) -> None:
    reply = await signed_post(http, emu, persons_path(), None, data=b"{not json")
    assert code(reply) == (400, "100")
