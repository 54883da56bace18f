"""Helpers for tests that talk to the emulator over loopback: raw signed calls, PUTs and test images.

Import as ``from helpers import ...`` (``tests/`` is on ``sys.path`` because it holds ``conftest.py``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from PIL import Image
from yarl import URL

from pipeline.config import Credentials
from pipeline.emulator import PRESIGN_ROUTES, STATUS_ROUTES, Emulator
from pipeline.samples import make_jpeg
from pipeline.signing import signed_headers

__all__ = [
    "MakeEmulator",
    "Reply",
    "make_image",
    "presign",
    "presign_path",
    "put",
    "signed_post",
    "status_path",
    "upload_status",
    "write_manifest",
]

MakeEmulator = Callable[..., Awaitable[Emulator]]
"""The type of the ``make_emulator`` fixture: ``await make_emulator(EmulatorConfig(...))``."""


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, fully read: ``body`` is the decoded JSON when the answer is JSON, else the text."""

    status: int
    headers: Mapping[str, str]
    """Case-insensitive, as HTTP headers are."""
    body: Any
    text: str


async def _reply(resp: aiohttp.ClientResponse) -> Reply:
    text = await resp.text()
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return Reply(resp.status, CIMultiDict(resp.headers), body, text)


def presign_path(workspace: str, route: str = "presign") -> str:
    """The presign path for ``workspace`` (``route`` is ``presign`` or ``presign_short``)."""
    return PRESIGN_ROUTES[route].format(workspace=workspace)


def status_path(workspace: str, route: str = "status") -> str:
    """The upload-status path for ``workspace`` (``route`` is ``status`` or ``status_short``)."""
    return STATUS_ROUTES[route].format(workspace=workspace)


async def signed_post(
    session: aiohttp.ClientSession,
    emu: Emulator,
    path: str,
    json_body: Any,
    *,
    credentials: Credentials | None = None,
    timestamp: str | None = None,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> Reply:
    """POST ``json_body`` to ``emu`` at ``path`` (path and query, sent unencoded-as-given) with signature v2.

    ``credentials`` default to the emulator's first pair; ``headers`` override the signed ones (to forge
    or drop a header); ``data`` replaces the JSON body with raw bytes (to send malformed JSON).
    """
    creds = credentials or emu.credentials
    sent = signed_headers("POST", path, creds.access_key, creds.secret_key, timestamp=timestamp)
    sent.update(headers or {})
    payload = data if data is not None else json.dumps(json_body).encode()
    url = URL(emu.base_url + path, encoded=True)
    async with session.post(url, data=payload, headers=sent) as resp:
        return await _reply(resp)


async def presign(
    session: aiohttp.ClientSession,
    emu: Emulator,
    file_name: str = "photo.jpg",
    *,
    workspace: str | None = None,
) -> Reply:
    """Ask ``emu`` for a presigned URL for ``file_name`` in ``workspace`` (default: the first one)."""
    return await signed_post(session, emu, presign_path(workspace or emu.workspace), {"thumbnailFileName": file_name})


async def upload_status(
    session: aiohttp.ClientSession, emu: Emulator, key: str, *, workspace: str | None = None
) -> Reply:
    """Ask ``emu`` for the upload status of ``key``."""
    return await signed_post(session, emu, status_path(workspace or emu.workspace), {"thumbnailKey": key})


async def put(
    session: aiohttp.ClientSession,
    url: str | URL,
    data: Any,
    *,
    content_type: str | None = "image/jpeg",
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """PUT ``data`` to a presigned ``url``; a ``str`` URL is sent byte for byte (``encoded=True``)."""
    target = url if isinstance(url, URL) else URL(url, encoded=True)
    sent = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    if isinstance(data, bytes) and len(data) > 1024 * 1024:
        # aiohttp warns (ResourceWarning) about raw bytes over 1 MiB; a BytesIO still sends Content-Length.
        data = io.BytesIO(data)
    async with session.put(target, data=data, headers=sent) as resp:
        return await _reply(resp)


def make_image(width: int = 300, height: int = 300, fmt: str = "JPEG", *, pad_to: int = 0) -> bytes:
    """Encode a noise image of ``width`` x ``height`` in ``fmt``; ``pad_to`` appends junk up to that size.

    Trailing junk leaves the header readable, so a padded file is still identified as ``fmt``.
    """
    img = Image.effect_noise((width, height), 64).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    data = buf.getvalue()
    if pad_to > len(data):
        data += b"\0" * (pad_to - len(data))
    return data


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` as a CSV manifest (columns from the first row); return ``path``."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def photo_manifest(folder: Path, n: int, *, manifest: Path, height: int = 280) -> Path:
    """``n`` small JPEGs ``p0.jpg``.. in ``folder`` and a manifest at ``manifest`` keying them ``k0``.., with
    paths relative to the manifest's folder; return the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        make_jpeg(folder / f"p{i}.jpg", 300, height, seed=i, quality=70)
        rows.append({"id": f"k{i}", "path": (folder / f"p{i}.jpg").relative_to(manifest.parent).as_posix()})
    return write_manifest(manifest, rows)


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port for the block; yields its base URL (``http://127.0.0.1:PORT``)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
