"""The emulator's storage PUT over real loopback HTTP: S3's rules, one-time URLs, expiry, storage modes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from emulator_tools import FakeClock
from helpers import MakeEmulator, Reply, make_image, presign, put, upload_status
from yarl import URL

from pipeline.emulator import Emulator, EmulatorConfig, Faults


def s3_code(reply: Reply) -> tuple[int, str, str]:
    """(status, Code, Message) of an S3 XML error, checking the body's shape on the way."""
    assert reply.text.startswith("<?xml")
    root = ET.fromstring(reply.text)
    assert root.tag == "Error"
    assert [child.tag for child in root] == ["Code", "Message", "RequestId"]
    return reply.status, root.findtext("Code") or "", root.findtext("Message") or ""


async def issue(http: aiohttp.ClientSession, emu: Emulator, name: str = "photo.jpg") -> tuple[str, str]:
    reply = await presign(http, emu, name)
    assert reply.status == 200
    return reply.body["result"]["thumbnailKey"], reply.body["result"]["url"]


async def test_put_stores_bytes_and_returns_md5_etag(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    data = make_image(320, 300)
    key, url = await issue(http, emulator)
    reply = await put(http, url, data)
    assert reply.status == 200
    assert reply.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    obj = emulator.objects[key]
    assert (obj.data, obj.size, obj.sha256) == (data, len(data), hashlib.sha256(data).hexdigest())
    assert (obj.content_type, obj.file_name, obj.read()) == ("image/jpeg", "photo.jpg", data)
    assert (obj.info.format, obj.info.width, obj.info.height) == ("JPEG", 320, 300)
    assert emulator.counters.puts_ok == 1
    assert emulator.counters.puts_per_key == {key: 1}
    assert emulator.counters.puts_per_token is emulator.counters.puts_per_key


async def test_url_is_one_time(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    key, url = await issue(http, emulator)
    data = make_image()
    assert (await put(http, url, data)).status == 200
    second = await put(http, url, b"other bytes")
    assert s3_code(second)[:2] == (403, "AccessDenied")
    assert emulator.objects[key].data == data
    assert emulator.counters.puts_per_key[key] == 2
    assert emulator.counters.puts_ok == 1


async def test_url_expires(http: aiohttp.ClientSession) -> None:
    wall = FakeClock(time.time())  # the wall clock moves on command; signatures stay within the 5-minute skew
    async with Emulator(EmulatorConfig(url_ttl=0.3), wallclock=wall.clock) as emulator:
        key, url = await issue(http, emulator)
        wall.advance(0.3)
        assert s3_code(await put(http, url, make_image())) == (403, "AccessDenied", "Request has expired")
        assert key not in emulator.objects


@pytest.mark.parametrize("emulator", [EmulatorConfig(faults=Faults(early_expiry_rate=1.0))], indirect=True)
async def test_early_expiry_fault(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    _, url = await issue(http, emulator)
    assert "X-Amz-Expires=900" in url  # the URL looks normal
    assert s3_code(await put(http, url, make_image())) == (403, "AccessDenied", "Request has expired")
    assert emulator.counters.faults["early_expired"] == 1


async def test_reencoded_url_is_signature_mismatch(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    key, url = await issue(http, emulator, "my photo.jpg")
    assert "%2F" in url and "%20" in url
    # yarl's default normalisation decodes %2F in the query: what a careless client sends.
    assert s3_code(await put(http, URL(url), make_image()))[:2] == (403, "SignatureDoesNotMatch")
    assert s3_code(await put(http, url.replace("%2F", "/"), make_image()))[:2] == (
        403,
        "SignatureDoesNotMatch",
    )
    assert s3_code(await put(http, url.replace("%20", "+"), make_image()))[:2] == (
        403,
        "SignatureDoesNotMatch",
    )
    assert s3_code(await put(http, url + "&extra=1", make_image()))[:2] == (403, "SignatureDoesNotMatch")
    # A mangled URL does not spend the real one.
    assert (await put(http, url, make_image())).status == 200
    assert emulator.counters.puts_per_key[key] == 5


async def test_unknown_or_missing_token(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    _, url = await issue(http, emulator)
    forged = url[: url.rindex("=") + 1] + "0" * 64
    assert s3_code(await put(http, forged, b"x"))[:2] == (403, "SignatureDoesNotMatch")
    bare = url.split("?")[0]
    assert s3_code(await put(http, bare, b"x"))[:2] == (403, "AccessDenied")


async def test_missing_content_length_is_411(emulator: Emulator) -> None:
    async with aiohttp.ClientSession() as http:
        key, url = await issue(http, emulator)
    target = URL(url, encoded=True)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(
            f"PUT {target.raw_path_qs} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
            "Content-Type: image/jpeg\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 411")
    assert "<Code>MissingContentLength</Code>" in body
    assert key not in emulator.objects


async def test_chunked_is_501(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    key, url = await issue(http, emulator)

    async def body() -> AsyncIterator[bytes]:
        yield make_image()

    assert s3_code(await put(http, url, body()))[:2] == (501, "NotImplemented")
    assert key not in emulator.objects
    # Header problems are refused before the URL is looked at, so the URL is still good.
    assert (await put(http, url, make_image())).status == 200


async def test_multipart_is_400(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    key, url = await issue(http, emulator)
    form = aiohttp.FormData()
    form.add_field("file", make_image(), filename="photo.jpg", content_type="image/jpeg")
    assert s3_code(await put(http, url, form, content_type=None))[:2] == (400, "InvalidArgument")
    assert key not in emulator.objects


async def test_unsigned_amz_header_is_refused(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    _, url = await issue(http, emulator)
    reply = await put(http, url, make_image(), headers={"x-amz-acl": "public-read"})
    assert s3_code(reply)[:2] == (403, "AccessDenied")


async def test_body_over_5_mib_is_entity_too_large(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    key, url = await issue(http, emulator)
    reply = await put(http, url, io.BytesIO(b"\0" * (5 * 1024 * 1024 + 1)))
    assert s3_code(reply)[:2] == (400, "EntityTooLarge")
    assert key not in emulator.objects
    key, url = await issue(http, emulator)
    assert (await put(http, url, io.BytesIO(b"\0" * (5 * 1024 * 1024)))).status == 200
    assert emulator.objects[key].size == 5 * 1024 * 1024


@pytest.mark.parametrize("emulator", [EmulatorConfig(sign_content_type=True)], indirect=True)
async def test_signed_content_type_must_match(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    key, url = await issue(http, emulator, "p.png")
    assert "X-Amz-SignedHeaders=content-type%3Bhost&" in url
    assert s3_code(await put(http, url, make_image(fmt="PNG"), content_type="image/jpeg"))[:2] == (
        403,
        "SignatureDoesNotMatch",
    )
    key, url = await issue(http, emulator, "p.png")
    assert (await put(http, url, make_image(fmt="PNG"), content_type="image/png")).status == 200
    assert emulator.objects[key].content_type == "image/png"


async def test_disk_storage(make_emulator: MakeEmulator, tmp_path: Path) -> None:
    emu = await make_emulator(EmulatorConfig(storage="disk", storage_dir=tmp_path / "objects"))
    data = make_image(300, 300, "WEBP")
    async with aiohttp.ClientSession() as http:
        key, url = await issue(http, emu, "..odd name.webp")
        assert (await put(http, url, data, content_type="image/webp")).status == 200
        status = await upload_status(http, emu, key)
    obj = emu.objects[key]
    assert obj.data is None and obj.path is not None
    assert obj.path.parent == tmp_path / "objects"
    assert obj.path.read_bytes() == data == obj.read()
    assert status.body["result"] == {"uploadStatus": "COMPLETED"}


async def test_hash_storage_keeps_no_bytes_but_still_judges(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(EmulatorConfig(storage="hash"))
    data = make_image(300, 100)
    async with aiohttp.ClientSession() as http:
        key, url = await issue(http, emu)
        assert (await put(http, url, data)).status == 200
        status = await upload_status(http, emu, key)
    obj = emu.objects[key]
    assert (obj.data, obj.path, obj.read()) == (None, None, None)
    assert (obj.size, obj.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert status.body["result"] == {"uploadStatus": "FAILED", "uploadMessage": "RESOLUTION_NOT_SUPPORT"}
