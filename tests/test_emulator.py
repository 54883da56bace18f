"""The emulator's API side over real loopback HTTP: auth, both URIs, bodies, error codes, caps, status.

Storage PUT rules are in ``test_emulator_storage.py``; faults, inspection and ways of running it in
``test_emulator_faults.py``.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from emulator_tools import FakeClock
from helpers import (
    MakeEmulator,
    make_image,
    presign,
    presign_path,
    put,
    signed_post,
    status_path,
    upload_status,
)

from pipeline.config import Credentials
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.emulator.settings import window_for
from pipeline.signing import ACCESS_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, now_ms, signed_headers

KEY_SHAPE = re.compile(r"^demo/[A-Za-z0-9]{10}/photo\.jpg$")


@pytest.mark.parametrize("route", ["presign", "presign_short"])
async def test_presign_success_body_on_both_uris(emulator: Emulator, http: aiohttp.ClientSession, route: str) -> None:
    reply = await signed_post(http, emulator, presign_path("demo", route), {"thumbnailFileName": "photo.jpg"})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert set(reply.body) == {"code", "message", "result"}
    assert (reply.body["code"], reply.body["message"]) == ("0", "success")
    result = reply.body["result"]
    assert set(result) == {"thumbnailKey", "url", "expirationSeconds"}
    assert result["expirationSeconds"] == 900
    assert KEY_SHAPE.match(result["thumbnailKey"])
    assert result["url"].startswith(f"{emulator.base_url}/_storage/mi-person-thumbnail/demo/")
    for param in (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Credential=",
        "X-Amz-Date=",
        "X-Amz-Expires=900",
        "X-Amz-SignedHeaders=host&",
        "X-Amz-Signature=",
    ):
        assert param in result["url"]
    assert emulator.counters.calls_by_route[route] == 1
    assert emulator.counters.urls_issued == 1


async def test_keys_are_unique_per_call_and_file_name_is_echoed(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    replies = [await presign(http, emulator, "same name.PNG") for _ in range(20)]
    keys = {r.body["result"]["thumbnailKey"] for r in replies}
    assert len(keys) == 20
    assert all(k.startswith("demo/") and k.endswith("/same name.PNG") for k in keys)
    # The key is URI-encoded in the URL, as S3 does.
    assert all("/same%20name.PNG?" in r.body["result"]["url"] for r in replies)


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({SIGNATURE_HEADER: "AAAA"}, "Signature mismatch"),
        ({ACCESS_KEY_HEADER: "NOBODY"}, "Unknown access key"),
        # Offsets, not timestamps: parameters are built at collection, which may be minutes before the run.
        ({TIMESTAMP_HEADER: -6 * 60 * 1000}, "timestamp"),
        ({TIMESTAMP_HEADER: +6 * 60 * 1000}, "timestamp"),
        ({TIMESTAMP_HEADER: "yesterday"}, "timestamp"),
        ({SIGNATURE_HEADER: ""}, "Missing header"),
    ],
)
async def test_auth_failures_are_401_with_gateway_body(
    emulator: Emulator, http: aiohttp.ClientSession, change: dict[str, str | int], detail: str
) -> None:
    change = {k: str(int(now_ms()) + v) if isinstance(v, int) else v for k, v in change.items()}
    reply = await signed_post(http, emulator, presign_path("demo"), {"thumbnailFileName": "a.jpg"}, headers=change)
    assert reply.status == 401
    assert reply.body["error"]["errorCode"] == "200"
    assert reply.body["error"]["message"] == "Authentication Failed"
    assert detail.lower() in reply.body["error"]["details"].lower()
    assert emulator.counters.presign_calls == 1
    assert emulator.counters.max_presign_per_1s == 0  # unauthenticated calls are not arrivals
    assert emulator.counters.urls_issued == 0


async def test_stale_but_within_five_minutes_is_accepted(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    ts = str(int(now_ms()) - 4 * 60 * 1000)
    reply = await signed_post(http, emulator, presign_path("demo"), {"thumbnailFileName": "a.jpg"}, timestamp=ts)
    assert reply.status == 200


async def test_wrong_secret_and_signature_over_other_target_fail(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    wrong = Credentials(emulator.credentials.access_key, "not-the-secret")
    bad = await signed_post(http, emulator, presign_path("demo"), {"thumbnailFileName": "a.jpg"}, credentials=wrong)
    assert bad.status == 401
    # The signature covers the raw target including the query: signing without it must fail.
    path = presign_path("demo")
    headers = signed_headers("POST", path, emulator.credentials.access_key, emulator.credentials.secret_key)
    reply = await signed_post(http, emulator, path + "?x=1", {"thumbnailFileName": "a.jpg"}, headers=headers)
    assert reply.status == 401
    ok = await signed_post(http, emulator, path + "?x=1", {"thumbnailFileName": "a.jpg"})
    assert ok.status == 200


async def test_second_key_pair_is_accepted(make_emulator: MakeEmulator) -> None:
    other = Credentials("SECOND", "second-secret")
    emu = await make_emulator(EmulatorConfig(credentials=(Credentials("FIRST", "first-secret"), other)))
    async with aiohttp.ClientSession() as http:
        reply = await signed_post(http, emu, presign_path("demo"), {"thumbnailFileName": "a.jpg"}, credentials=other)
    assert reply.status == 200
    assert emu.credentials.access_key == "FIRST"


@pytest.mark.parametrize("path", [presign_path("nope"), status_path("nope"), status_path("nope", "status_short")])
async def test_unknown_workspace_is_404_code_300(emulator: Emulator, http: aiohttp.ClientSession, path: str) -> None:
    reply = await signed_post(http, emulator, path, {"thumbnailFileName": "a.jpg", "thumbnailKey": "k"})
    assert reply.status == 404
    assert reply.body["code"] == "300"
    assert "nope" in reply.body["message"]


async def test_unknown_route_is_404_json(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    reply = await signed_post(http, emulator, "/api/v1/workspaces/demo/no-such-api", {})
    assert (reply.status, reply.body["code"]) == (404, "300")
    assert emulator.counters.calls_by_route["unknown"] == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "10001"),
        ({"thumbnailFileName": ""}, "10001"),
        ({"thumbnailFileName": 12}, "10001"),
        ({"thumbnailFileName": "a.gif"}, "10001"),
        ({"thumbnailFileName": "jpg"}, "10001"),
        ({"thumbnailFileName": ".jpg"}, "10001"),
        ({"thumbnailFileName": "a.jpg.txt"}, "10001"),
        ({"thumbnailFileName": "dir/a.jpg"}, "10001"),
        ({"thumbnailFileName": "x" * 300 + ".jpg"}, "10001"),
        (["a.jpg"], "10001"),
    ],
)
async def test_bad_file_names_are_400(emulator: Emulator, http: aiohttp.ClientSession, body: object, code: str) -> None:
    reply = await signed_post(http, emulator, presign_path("demo"), body)
    assert (reply.status, reply.body["code"]) == (400, code)
    assert emulator.counters.urls_issued == 0


@pytest.mark.parametrize("name", ["A.JPG", "b.JpEg", "c.png", "d.WEBP", "e.f.jpeg"])
async def test_extensions_are_case_insensitive(emulator: Emulator, http: aiohttp.ClientSession, name: str) -> None:
    reply = await presign(http, emulator, name)
    assert reply.status == 200
    assert reply.body["result"]["thumbnailKey"].endswith("/" + name)


async def test_malformed_json_and_wrong_content_type_are_code_100(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    bad_json = await signed_post(http, emulator, presign_path("demo"), None, data=b"{not json")
    assert (bad_json.status, bad_json.body["code"]) == (400, "100")
    form = await signed_post(
        http,
        emulator,
        presign_path("demo"),
        {"thumbnailFileName": "a.jpg"},
        headers={"Content-Type": "text/plain"},
    )
    assert (form.status, form.body["code"]) == (400, "100")


async def test_burst_of_51_presigns_gets_exactly_one_429(http: aiohttp.ClientSession) -> None:
    fake = FakeClock()  # the burst arrives within one second whatever the machine's load: time stands still
    async with Emulator(EmulatorConfig(rate=50), clock=fake.clock) as emulator:
        replies = await asyncio.gather(*(presign(http, emulator, f"p{i}.jpg") for i in range(51)))
        statuses = sorted(r.status for r in replies)
        assert statuses == [200] * 50 + [429]
        throttled = next(r for r in replies if r.status == 429)
        assert throttled.body["code"] == "410"
        assert throttled.headers["Retry-After"] == "1"
        assert emulator.counters.responses_429 == 1
        assert emulator.counters.max_presign_per_1s == 51  # counts what arrived, accepted or not
        assert emulator.counters.urls_issued == 50


async def test_rejected_calls_do_not_consume_the_window(http: aiohttp.ClientSession) -> None:
    fake = FakeClock()
    async with Emulator(EmulatorConfig(rate=1), clock=fake.clock) as emulator:
        assert (await presign(http, emulator)).status == 200
        fake.advance(0.5)
        assert (await presign(http, emulator)).status == 429
        fake.advance(0.5)
        # One second after the accepted call, the window is free again although a call was refused 0.5 s ago.
        assert (await presign(http, emulator)).status == 200
        assert emulator.counters.max_presign_per_1s == 2


@pytest.mark.parametrize("emulator", [EmulatorConfig(confirm_rate=5)], indirect=True)
async def test_status_cap_is_per_sliding_minute(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    replies = [await upload_status(http, emulator, "demo/x/none.jpg", workspace="demo") for _ in range(6)]
    assert [r.status for r in replies] == [200] * 5 + [429]
    assert replies[-1].body["code"] == "410"
    assert 59 <= int(replies[-1].headers["Retry-After"]) <= 60
    assert emulator.counters.max_status_per_60s == 6
    assert emulator.counters.status_calls == 6
    # The presign cap is separate.
    assert (await presign(http, emulator)).status == 200


async def test_caps_are_per_access_key(make_emulator: MakeEmulator) -> None:
    a, b = Credentials("A", "sa"), Credentials("B", "sb")
    emu = await make_emulator(EmulatorConfig(rate=1, credentials=(a, b)))
    body = {"thumbnailFileName": "a.jpg"}
    async with aiohttp.ClientSession() as http:
        first_a = await signed_post(http, emu, presign_path("demo"), body, credentials=a)
        first_b = await signed_post(http, emu, presign_path("demo"), body, credentials=b)
        second_a = await signed_post(http, emu, presign_path("demo"), body, credentials=a)
    assert [first_a.status, first_b.status, second_a.status] == [200, 200, 429]


@pytest.mark.parametrize("emulator", [EmulatorConfig(rate=0, confirm_rate=0)], indirect=True)
async def test_cap_zero_is_unlimited(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    replies = await asyncio.gather(*(presign(http, emulator, f"p{i}.jpg") for i in range(80)))
    assert {r.status for r in replies} == {200}
    assert emulator.counters.max_presign_per_1s == 80


def test_window_for_fractional_rates() -> None:
    assert window_for(50, 1.0) == (50, 1.0)
    assert window_for(2.5, 1.0) == (2, 1.0)
    assert window_for(0.5, 1.0) == (1, 2.0)
    assert window_for(0, 60.0) == (0, 60.0)


async def _uploaded_key(http: aiohttp.ClientSession, emu: Emulator, name: str, data: bytes, ctype: str) -> str:
    issued = await presign(http, emu, name)
    assert issued.status == 200
    assert (await put(http, issued.body["result"]["url"], data, content_type=ctype)).status == 200
    return str(issued.body["result"]["thumbnailKey"])


@pytest.mark.parametrize(
    ("name", "data", "ctype", "verdict"),
    [
        ("ok.jpg", make_image(300, 300, "JPEG"), "image/jpeg", None),
        ("ok.png", make_image(256, 256, "PNG"), "image/png", None),
        ("ok.webp", make_image(400, 260, "WEBP"), "image/webp", None),
        ("small.jpg", make_image(300, 200, "JPEG"), "image/jpeg", "RESOLUTION_NOT_SUPPORT"),
        ("big.jpg", make_image(300, 300, "JPEG", pad_to=5_000_001), "image/jpeg", "OVER_SIZE_LIMIT"),
        ("png-as.jpg", make_image(300, 300, "PNG"), "image/jpeg", "INVALID_FORMAT"),
        ("junk.webp", b"not an image at all" * 100, "image/webp", "INVALID_FORMAT"),
    ],
)
@pytest.mark.parametrize("route", ["status", "status_short"])
async def test_status_verdicts(
    emulator: Emulator,
    http: aiohttp.ClientSession,
    name: str,
    data: bytes,
    ctype: str,
    verdict: str | None,
    route: str,
) -> None:
    key = await _uploaded_key(http, emulator, name, data, ctype)
    reply = await signed_post(http, emulator, status_path("demo", route), {"thumbnailKey": key})
    assert reply.status == 200
    assert (reply.body["code"], reply.body["message"]) == ("0", "success")
    expected = (
        {"uploadStatus": "COMPLETED"} if verdict is None else {"uploadStatus": "FAILED", "uploadMessage": verdict}
    )
    assert reply.body["result"] == expected


async def test_status_file_not_exist(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(EmulatorConfig(workspaces=("demo", "other")))
    async with aiohttp.ClientSession() as http:
        pending = (await presign(http, emu, "later.jpg")).body["result"]["thumbnailKey"]
        other = await _uploaded_key(http, emu, "there.jpg", make_image(), "image/jpeg")
        replies = [
            await upload_status(http, emu, pending),  # presigned, never uploaded
            await upload_status(http, emu, "demo/AAAAAAAAAA/never.jpg"),  # never issued
            await upload_status(http, emu, other, workspace="other"),  # uploaded in another workspace
            await upload_status(http, emu, other),
        ]
    messages = [r.body["result"].get("uploadMessage") for r in replies]
    assert messages == ["FILE_NOT_EXIST", "FILE_NOT_EXIST", "FILE_NOT_EXIST", None]
    assert replies[-1].body["result"]["uploadStatus"] == "COMPLETED"


@pytest.mark.parametrize("body", [{}, {"thumbnailKey": ""}, {"thumbnailKey": 5}])
async def test_status_without_key_is_400_10001(emulator: Emulator, http: aiohttp.ClientSession, body: object) -> None:
    reply = await signed_post(http, emulator, status_path("demo"), body)
    assert (reply.status, reply.body["code"]) == (400, "10001")


async def test_presign_arrivals_are_recorded_in_order(http: aiohttp.ClientSession) -> None:
    fake = FakeClock()
    async with Emulator(clock=fake.clock) as emulator:
        for _ in range(3):
            await presign(http, emulator)
            fake.advance(0.25)
        assert list(emulator.counters.presign_arrivals) == [1000.0, 1000.25, 1000.5]


async def test_emulator_accepts_the_documented_known_answer_request(make_emulator: MakeEmulator) -> None:
    # The API.md vector, sent verbatim; the clock window is widened because its timestamp is from 2023.
    emu = await make_emulator(
        EmulatorConfig(
            credentials=(Credentials("ACCESS_KEY_ID", "ncp-secret-example"),),
            workspaces=("my-workspace",),
            clock_skew=10 * 365 * 86400,
        )
    )
    headers = {
        TIMESTAMP_HEADER: "1700000000000",
        ACCESS_KEY_HEADER: "ACCESS_KEY_ID",
        SIGNATURE_HEADER: "NPILVRmXxYku1LSAEOwxULdtiLygmPbwQ+LYcT0sIMI=",
        "Content-Type": "application/json",
    }
    async with aiohttp.ClientSession() as http:
        ok = await signed_post(http, emu, presign_path("my-workspace"), {"thumbnailFileName": "a.jpg"}, headers=headers)
        headers[SIGNATURE_HEADER] = "NPILVRmXxYku1LSAEOwxULdtiLygmPbwQ+LYcT0sIMJ="
        bad = await signed_post(
            http, emu, presign_path("my-workspace"), {"thumbnailFileName": "a.jpg"}, headers=headers
        )
    assert ok.status == 200 and ok.body["result"]["thumbnailKey"].startswith("my-workspace/")
    assert bad.status == 401
