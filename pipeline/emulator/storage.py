"""The object-storage side: the presigned PUT with S3's rules and XML errors."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from aiohttp import web

from pipeline.emulator.state import IssuedUrl, StoredObject, inspect_image

if TYPE_CHECKING:
    from pipeline.emulator.server import Emulator

__all__ = ["put_object", "s3_error"]


def s3_error(status: int, code: str, message: str) -> web.Response:
    """An S3-style XML error body."""
    request_id = secrets.token_hex(8).upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{request_id}</RequestId></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


def _raw_query_param(raw_path: str, name: str) -> str | None:
    """The still-encoded value of ``name`` in the raw request target (no decoding, so no normalising)."""
    _, _, query = raw_path.partition("?")
    for pair in query.split("&"):
        key, sep, value = pair.partition("=")
        if sep and key == name:
            return value
    return None


async def put_object(emu: Emulator, request: web.Request) -> web.Response:
    """Store the body of a PUT to a URL issued by presign, enforcing S3's and MI's rules."""
    counters = emu.counters
    counters.call("put")
    token = _raw_query_param(request.raw_path, "X-Amz-Signature")
    issued = emu.issued_by_token.get(token) if token else None
    if issued is not None:
        counters.put_attempt(issued.thumbnail_key)
    faults = emu.faults
    if faults.roll(faults.drop_rate):
        return emu.drop(request)
    if faults.roll(faults.stall_rate):
        return await emu.stall(request)
    if faults.roll(faults.error_rate):
        counters.bump("errors")
        if faults.rng().random() < 0.5:
            return await emu.answer(s3_error(503, "SlowDown", "Please reduce your request rate."))
        return await emu.answer(s3_error(500, "InternalError", "We encountered an internal error. Try again."))
    refusal = _refuse(emu, request, token, issued)
    if refusal is not None:
        return await emu.answer(refusal)
    assert issued is not None  # _refuse answers every request without a valid URL
    data = await request.read()
    await _store(emu, issued, request.headers.get("Content-Type", ""), data)
    counters.bump("puts_ok")
    etag = emu.objects[issued.thumbnail_key].etag
    if faults.put_answer_delay > 0:
        await emu.hold(faults.put_answer_delay)  # stored, answered late: the client may have given up
    return await emu.answer(web.Response(status=200, headers={"ETag": etag}))


def _refuse(emu: Emulator, request: web.Request, token: str | None, issued: IssuedUrl | None) -> web.Response | None:
    """The S3 error for this PUT, or ``None`` when it may be stored. Marks the URL used once it is valid.

    Header problems are checked before the URL, as S3 does; a URL is spent by the first PUT that presents
    it correctly, whatever happens after, because MI URLs are one-time and a retry must re-presign.
    """
    headers = request.headers
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return s3_error(
            501,
            "NotImplemented",
            "A header you provided implies functionality that is not implemented: Transfer-Encoding.",
        )
    if request.content_type.lower().startswith("multipart/"):
        return s3_error(400, "InvalidArgument", "A presigned PUT takes the raw object bytes, not multipart/form-data.")
    if "Content-Length" not in headers:
        return s3_error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
    if token is None:
        return s3_error(403, "AccessDenied", "Query-string authentication requires the X-Amz-Signature parameter.")
    if issued is None or request.raw_path != issued.target or request.host != issued.host:
        return s3_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    if issued.used:
        return s3_error(403, "AccessDenied", "This one-time URL has already been used.")
    issued.used = True
    if emu.wallclock() >= issued.expires_at:
        return s3_error(403, "AccessDenied", "Request has expired")
    unsigned = sorted(h for h in headers if h.lower().startswith("x-amz-"))
    if unsigned:
        return s3_error(
            403,
            "AccessDenied",
            f"There were headers present in the request which were not signed: {', '.join(unsigned)}",
        )
    if emu.config.sign_content_type and headers.get("Content-Type") != issued.content_type:
        return s3_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided (Content-Type).",
        )
    if (request.content_length or 0) > emu.config.put_max_bytes:
        return s3_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
    return None


def _digests(data: bytes) -> tuple[str, str]:
    """The object's md5 (its ETag) and sha256, in hex (hashlib releases the GIL on large buffers)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest(), hashlib.sha256(data).hexdigest()


async def _store(emu: Emulator, issued: IssuedUrl, content_type: str, data: bytes) -> None:
    """Record the object the way the configured storage mode says (bytes in memory, on disk, or hashes)."""
    # Hashed off the loop: megabytes of md5 + sha256 take milliseconds, and the real service's gateway does
    # not wait for its object store, so a PUT here must not delay the arrival stamps of API calls.
    md5, sha256 = await asyncio.to_thread(_digests, data)
    obj = StoredObject(
        key=issued.thumbnail_key,
        file_name=issued.file_name,
        size=len(data),
        sha256=sha256,
        content_type=content_type,
        uploaded_at=emu.wallclock(),
        etag=f'"{md5}"',
        # Identified now (header only, cheap) so that "hash" mode, which keeps no bytes, can still answer
        # the status call; the verdict itself is given by the status call.
        info=inspect_image(data),
    )
    mode = emu.config.storage
    if mode == "memory":
        obj.data = data
    elif mode == "disk" and emu.config.storage_dir is not None:
        # The file name comes from the key's random part, never from the client's file name (no traversal).
        random_part = issued.thumbnail_key.split("/")[-2]
        suffix = issued.file_name[issued.file_name.rfind(".") :].lower()
        path = emu.config.storage_dir / f"{random_part}{suffix}"
        await asyncio.to_thread(path.write_bytes, data)
        obj.path = path
    emu.objects[issued.thumbnail_key] = obj
