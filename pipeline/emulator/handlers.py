"""The Media Intelligence API routes: gateway auth and caps, presign, upload status, and their faults."""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from pipeline.emulator.settings import window_for
from pipeline.emulator.state import CONTENT_TYPES, FORMATS_BY_EXTENSION, IssuedUrl
from pipeline.signing import ACCESS_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

if TYPE_CHECKING:
    from pipeline.emulator.server import Emulator

__all__ = ["BUCKET", "MAX_FILE_NAME", "api_call", "html_error", "method_not_allowed", "mi_error", "presign",
           "upload_status", "verdict"]

BUCKET = "mi-person-thumbnail"
STORAGE_ACCESS_KEY = "EMULATOR-STORAGE"
MAX_FILE_NAME = 255
MAX_JSON_BYTES = 64 * 1024
_ALNUM = string.ascii_letters + string.digits

Handler = Callable[["Emulator", web.Request], Awaitable[web.Response]]


def mi_error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    """An MI-shaped error: ``{"code": ..., "message": ...}``."""
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


def html_error(status: int, title: str) -> web.Response:
    """An HTML error page with no MI code, as a proxy or a firewall in front of the gateway answers."""
    body = f"<html><head><title>{status} {title}</title></head><body><h1>{title}</h1><hr>nginx</body></html>"
    return web.Response(status=status, text=body, content_type="text/html")


def _ok(result: dict[str, Any]) -> web.Response:
    return web.json_response({"code": "0", "message": "success", "result": result})


def _auth_failed(details: str) -> web.Response:
    # The gateway, not MI, rejects authentication, so the body has the gateway's shape.
    body = {"error": {"errorCode": "200", "message": "Authentication Failed", "details": details}}
    return web.json_response(body, status=401)


def _authenticate(emu: Emulator, request: web.Request) -> str | web.Response:
    """Return the caller's access key, or the 401 answer when the signature v2 check fails."""
    headers = request.headers
    missing = [h for h in (TIMESTAMP_HEADER, ACCESS_KEY_HEADER, SIGNATURE_HEADER) if not headers.get(h)]
    if missing:
        return _auth_failed(f"Missing header: {', '.join(missing)}.")
    timestamp, access_key = headers[TIMESTAMP_HEADER], headers[ACCESS_KEY_HEADER]
    if not timestamp.isdigit():
        return _auth_failed("The timestamp must be epoch milliseconds.")
    if abs(emu.wallclock() * 1000 - int(timestamp)) > emu.config.clock_skew * 1000:
        return _auth_failed("The timestamp is outside the allowed window of the server clock.")
    secret = emu.secret_for(access_key)
    if secret is None:
        return _auth_failed("Unknown access key.")
    # raw_path is the request target exactly as received, so a client that signed something else fails.
    expected = sign(request.method, request.raw_path, timestamp, access_key, secret)
    if not hmac.compare_digest(expected.encode(), headers[SIGNATURE_HEADER].encode()):
        return _auth_failed("Signature mismatch.")
    return access_key


async def api_call(emu: Emulator, request: web.Request, route: str, kind: str, handler: Handler) -> web.Response:
    """Run one API call through the gateway's stages: auth, faults, quota, caps, then ``handler``.

    ``kind`` is ``presign``, ``status`` or ``persons`` (which cap applies). A call refused by a cap or a fault does not
    enter the cap's window; every authenticated call is counted as an arrival.
    """
    counters = emu.counters
    counters.call(route)
    faults = emu.faults
    if faults.roll(faults.queue_rate):
        await asyncio.sleep(faults.queue_delay)  # a queue in front of the gateway: counted when it is through
    now = emu.clock()
    if faults.redirect_to:
        return await emu.answer(_redirect(faults.redirect_to, request))
    who = _authenticate(emu, request)
    if isinstance(who, web.Response):
        return await emu.answer(who)
    counters.arrival(kind, now)
    if faults.roll(faults.drop_rate):
        return emu.drop(request)
    if faults.roll(faults.stall_rate):
        return await emu.stall(request)
    if faults.roll(faults.error_rate):
        counters.bump("errors")
        status = faults.rng().choice((500, 503))
        return await emu.answer(mi_error(status, "500", "Internal server error (injected)."))
    if faults.roll(faults.html_error_rate):
        counters.bump("html_errors")
        return await emu.answer(html_error(502, "Bad Gateway"))
    if faults.quota_exhausted:
        return await emu.answer(mi_error(429, "400", "quota exceeded"))
    storm = faults.storm_remaining()
    if storm > 0:
        return await emu.answer(_throttled(storm, faults.retry_after))
    rate, period = _cap(emu, kind)
    limit, length = window_for(rate, period)
    if limit:
        window = emu.window(kind, who, length)
        if window.count(now) >= limit:
            return await emu.answer(_throttled(window.frees_in(now), faults.retry_after))
        window.add(now)
    return await emu.answer(await handler(emu, request))


def _cap(emu: Emulator, kind: str) -> tuple[float, float]:
    """(calls allowed, per this many seconds) for the cap of ``kind``."""
    if kind == "presign":
        return emu.config.rate, 1.0
    if kind == "persons":
        return emu.config.persons_rate, 1.0
    return emu.config.confirm_rate, 60.0


async def method_not_allowed(emu: Emulator, request: web.Request) -> web.Response:
    """A GET (or other method) on an API path: 405 from the gateway, unsigned and uncapped -- what a client's
    preflight sees. Redirect, drop and stall faults apply, so a preflight meets them too."""
    emu.counters.call("other_method")
    faults = emu.faults
    if faults.redirect_to:
        return await emu.answer(_redirect(faults.redirect_to, request))
    if faults.roll(faults.drop_rate):
        return emu.drop(request)
    if faults.roll(faults.stall_rate):
        return await emu.stall(request)
    return await emu.answer(mi_error(405, "100", f"Method not allowed: {request.method}."))


def _redirect(base: str, request: web.Request) -> web.Response:
    return web.Response(status=307, headers={"Location": base.rstrip("/") + request.raw_path})


def _throttled(wait: float, retry_after: str) -> web.Response:
    # Retry-After is sent as whole seconds (rounded up, at least 1) because HTTP's delay-seconds is an
    # integer; a client honouring it therefore never retries before the window has room again.
    value = str(max(1, math.ceil(wait))) if retry_after == "auto" else retry_after
    headers = {"Retry-After": value} if value else None
    return mi_error(429, "410", "Too many requests: rate limit exceeded.", headers=headers)


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object, or the 400/413 answer for a body that is not one."""
    if request.content_type != "application/json":
        return mi_error(400, "100", "Content-Type must be application/json.")
    if (request.content_length or 0) > MAX_JSON_BYTES:
        return mi_error(413, "430", "Request entity too large.")
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return mi_error(400, "100", "Malformed JSON body.")
    if not isinstance(body, dict):
        return mi_error(400, "10001", "The body must be a JSON object.")
    return body


async def _workspace_and_field(emu: Emulator, request: web.Request, name: str) -> tuple[str, str] | web.Response:
    """(workspace, the body's required string field ``name``), or the 404/400/413 answer, in the service's order:
    the workspace, then the body, then the field."""
    workspace = _workspace(emu, request)
    if isinstance(workspace, web.Response):
        return workspace
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    value = body.get(name)
    if not isinstance(value, str) or not value:
        return mi_error(400, "10001", f"{name} is required.")
    return workspace, value


def _workspace(emu: Emulator, request: web.Request) -> str | web.Response:
    workspace = request.match_info["workspace"]
    if workspace not in emu.config.workspaces:
        return mi_error(404, "300", f"Workspace not found: {workspace}.")
    return workspace


def _extension(file_name: str) -> str | None:
    dot = file_name.rfind(".")
    ext = file_name[dot:].lower() if dot > 0 else ""
    return ext if ext in FORMATS_BY_EXTENSION else None


async def presign(emu: Emulator, request: web.Request) -> web.Response:
    """Issue a one-time presigned PUT URL; the body is ``{"thumbnailFileName": "<name>.jpg|png|webp"}``."""
    parsed = await _workspace_and_field(emu, request, "thumbnailFileName")
    if isinstance(parsed, web.Response):
        return parsed
    workspace, name = parsed
    if emu.faults.forbids(name):
        emu.counters.bump("forbidden")
        return html_error(403, "Forbidden")
    ext = _extension(name)
    if ext is None:
        return mi_error(400, "10001", "thumbnailFileName must end in .jpg, .jpeg, .png or .webp.")
    if len(name) > MAX_FILE_NAME or "/" in name or "\\" in name:
        return mi_error(400, "10001", f"thumbnailFileName must be a plain name of at most {MAX_FILE_NAME} chars.")
    issued, url = _issue(emu, request, workspace, name, CONTENT_TYPES[ext])
    ttl = math.ceil(emu.config.url_ttl)
    return _ok({"thumbnailKey": issued.thumbnail_key, "url": url, "expirationSeconds": ttl})


def _issue(emu: Emulator, request: web.Request, workspace: str, name: str, content_type: str) -> tuple[IssuedUrl, str]:
    """Create and register a URL shaped like an S3 SigV4 presigned PUT; return its record and the URL.

    The "signature" is a random one-time token; the record keeps the exact target the PUT must present.
    """
    while True:
        middle = "".join(secrets.choice(_ALNUM) for _ in range(10))
        key = f"{workspace}/{middle}/{name}"
        if key not in emu.issued_by_key:
            break
    token = secrets.token_hex(32)
    issued_at = emu.wallclock()
    ttl = math.ceil(emu.config.url_ttl)
    stamp = time.gmtime(issued_at)
    credential = f"{STORAGE_ACCESS_KEY}/{time.strftime('%Y%m%d', stamp)}/kr-standard/s3/aws4_request"
    signed = "content-type;host" if emu.config.sign_content_type else "host"
    scheme, host = emu.storage_origin(request)
    # S3 URI-encodes every key byte except unreserved ones and '/', and every reserved query byte.
    target = (
        f"/_storage/{BUCKET}/{quote(key, safe='/-_.~')}"
        f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={quote(credential, safe='')}"
        f"&X-Amz-Date={time.strftime('%Y%m%dT%H%M%SZ', stamp)}&X-Amz-Expires={ttl}"
        f"&X-Amz-SignedHeaders={quote(signed, safe='')}&X-Amz-Signature={token}"
    )
    early = emu.faults.roll(emu.faults.early_expiry_rate)
    if early:
        emu.counters.bump("early_expired")
    record = IssuedUrl(
        thumbnail_key=key,
        workspace=workspace,
        file_name=name,
        target=target,
        host=host,
        content_type=content_type,
        expires_at=issued_at - 1.0 if early else issued_at + emu.config.url_ttl,
    )
    emu.issued_by_token[token] = record
    emu.issued_by_key[key] = record
    emu.counters.bump("urls_issued")
    return record, f"{scheme}://{host}{target}"


async def upload_status(emu: Emulator, request: web.Request) -> web.Response:
    """Report whether the object uploaded for ``thumbnailKey`` is acceptable (COMPLETED) or why not."""
    parsed = await _workspace_and_field(emu, request, "thumbnailKey")
    if isinstance(parsed, web.Response):
        return parsed
    workspace, key = parsed
    asks = emu.status_asks[key] = emu.status_asks.get(key, 0) + 1
    if asks <= emu.faults.in_progress:
        return _ok({"uploadStatus": "IN_PROGRESS"})
    message = verdict(emu, workspace, key)
    if message is None:
        return _ok({"uploadStatus": "COMPLETED"})
    return _ok({"uploadStatus": "FAILED", "uploadMessage": message})


def verdict(emu: Emulator, workspace: str, key: str) -> str | None:
    """``None`` when the object is acceptable, else the FAILED message (checks in the docs' order)."""
    issued = emu.issued_by_key.get(key)
    obj = emu.objects.get(key)
    if issued is None or issued.workspace != workspace or obj is None:
        return "FILE_NOT_EXIST"
    if obj.size > emu.config.max_bytes:
        return "OVER_SIZE_LIMIT"
    ext = _extension(issued.file_name) or ""
    if obj.info.format not in FORMATS_BY_EXTENSION.get(ext, ()):
        return "INVALID_FORMAT"
    if min(obj.info.width, obj.info.height) < emu.config.min_side:
        return "RESOLUTION_NOT_SUPPORT"
    return None
