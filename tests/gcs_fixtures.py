"""A fake Google Cloud Storage server for tests: only what obstore's ``GCSStore`` calls to read an object.

obstore (0.12) reads through the XML API: ``GET`` and ``HEAD`` on ``{base_url}/{bucket}/{object}``, the object
name percent-encoded whole (``a%2Fb%20c%2Ejpg``), with ``Authorization: Bearer <token>``; a whole-object read
sends no ``Range``. Answers as GCS does: the bytes with ``ETag``, ``Last-Modified`` and ``Content-Length``;
``404 NoSuchKey`` / ``404 NoSuchBucket``, ``401`` for a wrong token and ``403 AccessDenied`` for an object the
token may not read, with GCS's XML error bodies. ``fake_gcs()`` starts it on a loopback port and points
obstore at it through the environment (``GOOGLE_BASE_URL``, ``GOOGLE_BEARER_TOKEN``).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import unquote

import pytest
from aiohttp import web
from helpers import serve_app

TOKEN = "fake-gcs-token"
_LAST_MODIFIED = "Wed, 01 May 2024 09:00:00 GMT"


def _error(status: int, code: str, message: str) -> web.Response:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return web.Response(status=status, text=body, content_type="application/xml")


class FakeGCS:
    """Buckets of objects (``put``), objects the token may not read (``deny``), and requests seen per path."""

    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, bytes]] = {}
        self.denied: set[tuple[str, str]] = set()
        self.seen: list[tuple[str, str]] = []
        self.url = ""

    def put(self, bucket: str, name: str, data: bytes) -> None:
        """Store ``data`` as ``gs://bucket/name``."""
        self.buckets.setdefault(bucket, {})[name] = data

    def deny(self, bucket: str, name: str) -> None:
        """Answer 403 AccessDenied for ``gs://bucket/name``."""
        self.denied.add((bucket, name))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        bucket, _, encoded = request.raw_path.split("?", 1)[0].lstrip("/").partition("/")
        name = unquote(encoded)
        self.seen.append((request.method, f"{bucket}/{name}"))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _error(401, "AuthenticationRequired", "Invalid Credentials")
        if bucket not in self.buckets:
            return _error(404, "NoSuchBucket", "The specified bucket does not exist.")
        if (bucket, name) in self.denied:
            return _error(403, "AccessDenied", "Access denied.")
        data = self.buckets[bucket].get(name)
        if data is None:
            return _error(404, "NoSuchKey", "The specified key does not exist.")
        headers = {"ETag": f'"{hashlib.md5(data).hexdigest()}"', "Last-Modified": _LAST_MODIFIED,
                   "Content-Type": "application/octet-stream"}
        return web.Response(body=data, headers=headers)  # aiohttp sends no body to a HEAD, only its length


@asynccontextmanager
async def fake_gcs(*, token: str = TOKEN) -> AsyncIterator[FakeGCS]:
    """A ``FakeGCS`` on a free loopback port, with obstore pointed at it (and given ``token``) for its life."""
    state = FakeGCS()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    async with serve_app(app) as state.url:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("GOOGLE_BASE_URL", state.url)
            patch.setenv("GOOGLE_BEARER_TOKEN", token)
            for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_PATH",
                         "GOOGLE_SERVICE_ACCOUNT_KEY", "GOOGLE_SKIP_SIGNATURE"):
                patch.delenv(name, raising=False)
            yield state
