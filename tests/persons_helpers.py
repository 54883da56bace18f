"""Helpers for tests of the persons API: raw signed calls of any method, paths, and uploaded keys.

Import as ``from persons_helpers import ...`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp
from helpers import Reply, _reply, make_image, presign, put, upload_status
from yarl import URL

from pipeline.config import Credentials
from pipeline.emulator import Emulator
from pipeline.signing import signed_headers

__all__ = ["JPEG", "persons_path", "signed_call", "thumb", "uploaded_keys"]

JPEG = make_image(300, 300)


def persons_path(workspace: str = "demo", person_id: str | int | None = None, tail: str = "", **query: Any) -> str:
    """``/api/v1/workspaces/{ws}/persons[/{id}][/tail][?query]``, the query percent-encoded."""
    path = f"/api/v1/workspaces/{workspace}/persons"
    if person_id is not None:
        path += f"/{person_id}"
    if tail:
        path += f"/{tail}"
    if query:
        path += "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())
    return path


async def signed_call(
    session: aiohttp.ClientSession,
    emu: Emulator,
    method: str,
    path: str,
    json_body: Any = None,
    *,
    credentials: Credentials | None = None,
    timestamp: str | None = None,
) -> Reply:
    """Send ``method`` to ``emu`` at ``path`` (path and query as given) with signature v2; a JSON body
    when ``json_body`` is not ``None``. ``timestamp`` overrides the signed one (for a moved clock)."""
    creds = credentials or emu.credentials
    headers = signed_headers(method, path, creds.access_key, creds.secret_key, timestamp=timestamp)
    data = None if json_body is None else json.dumps(json_body).encode()
    url = URL(emu.base_url + path, encoded=True)
    async with session.request(method, url, data=data, headers=headers) as resp:
        return await _reply(resp)


def thumb(key: str, primary: bool = False) -> dict[str, Any]:
    """One item of a ``thumbnails`` list."""
    return {"thumbnailKey": key, "isPrimaryThumbnail": primary}


async def uploaded_keys(session: aiohttp.ClientSession, emu: Emulator, n: int, *, prefix: str = "p",
                        workspace: str | None = None) -> list[str]:
    """Presign, PUT and confirm ``n`` acceptable JPEGs; their keys, in order."""
    keys = []
    for i in range(n):
        reply = await presign(session, emu, f"{prefix}{i}.jpg", workspace=workspace)
        result = reply.body["result"]
        assert (await put(session, result["url"], JPEG)).status == 200
        status = await upload_status(session, emu, result["thumbnailKey"], workspace=workspace)
        assert status.body["result"]["uploadStatus"] == "COMPLETED"
        keys.append(result["thumbnailKey"])
    return keys
