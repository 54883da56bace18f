"""A real S3 server for tests: moto's server mode on loopback, and a fault-injecting proxy in front of it.

``moto_s3()`` starts moto on a free 127.0.0.1 port with dummy AWS credentials in the environment (no
internet involved) and yields a ``MotoS3`` with its endpoint, a boto3 client and one bucket.
``FaultyProxy`` is a tiny aiohttp reverse proxy: it fails the first N requests per object path in the
way asked (``503``, ``429``, ``drop`` = close the connection before answering, ``cut`` = close it
halfway through the body), then forwards to moto, and counts every request per path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp import web
from botocore.config import Config  # type: ignore[import-untyped]
from moto.server import ThreadedMotoServer

BUCKET = "sources"
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass(frozen=True)
class MotoS3:
    """A running moto S3 server: ``endpoint`` (http://127.0.0.1:port), a boto3 ``client``, a ``bucket``."""

    endpoint: str
    client: Any
    bucket: str

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` in the bucket."""
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def seed(self, keys: Iterable[str], data: bytes) -> None:
        """Store ``data`` at each of ``keys`` straight into the server's backend (moto serves from this
        process), with its ETag given: gigabytes through HTTP PUTs cost boto3's and moto's hashing and parsing,
        several times what the test itself takes. Reads still go through the server like any other."""
        backend = _backend()
        etag = hashlib.md5(data).hexdigest()
        for key in keys:
            backend.put_object(self.bucket, key, data, etag=etag)


def _backend() -> Any:
    """moto's S3 backend (of its default account), which its server in this process serves from."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


@contextmanager
def moto_s3() -> Iterator[MotoS3]:
    """moto on a free loopback port, with dummy credentials set in the environment for its lifetime."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in DUMMY_ENV.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            client = boto3.client(
                "s3", endpoint_url=endpoint, region_name="us-east-1",
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
            )
            client.create_bucket(Bucket=BUCKET)
            yield MotoS3(endpoint, client, BUCKET)
        finally:
            server.stop()
            # moto keeps its buckets in this process for its whole life, each large object in an open temp
            # file: drop them, so the next server starts empty and gigabytes of test objects leave the disk.
            _backend().reset()


class FaultyProxy:
    """Forwards to ``upstream``, failing the first ``failures`` requests of each path with ``mode``."""

    def __init__(self, upstream: str, mode: str, failures: int) -> None:
        self.upstream = upstream
        self.mode = mode
        self.failures = failures
        self.seen: dict[str, int] = {}
        self.endpoint = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> FaultyProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession(auto_decompress=False)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        count = self.seen[request.path] = self.seen.get(request.path, 0) + 1
        if count <= self.failures:
            if self.mode in ("503", "429"):
                body = f"<Error><Code>{'SlowDown' if self.mode == '503' else 'TooManyRequests'}</Code></Error>"
                return web.Response(status=int(self.mode), text=body, headers={"Retry-After": "0"})
            if self.mode == "drop":
                assert request.transport is not None
                request.transport.close()
                raise ConnectionResetError("dropped on purpose")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        sent = await request.read()
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=sent, allow_redirects=False) as upstream:
            payload = await upstream.read()
            keep = {k: v for k, v in upstream.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")}
            response = web.StreamResponse(status=upstream.status, headers=keep)
            response.content_length = len(payload) if request.method != "HEAD" else upstream.content_length
            await response.prepare(request)
            if request.method == "HEAD":
                return response
            if count <= self.failures and self.mode == "cut":
                await response.write(payload[: len(payload) // 2])
                assert request.transport is not None
                request.transport.close()  # close() sends what is buffered first: half a body arrives
                return response
            await response.write(payload)
            await response.write_eof()
            return response


_CHILD = r"""
import asyncio, json, sys, time
from pipeline.fetch import Fetched, Fetcher, FetchSettings, parse_source

args = json.loads(sys.stdin.read())

def peak_rss():
    # VmHWM belongs to this address space; ru_maxrss would carry the parent's peak across fork and exec.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

async def main():
    settings = FetchSettings(**args["settings"])
    refs = [parse_source(cell, base=None, root=None) for cell in args["cells"]]
    fetched = size = 0
    async with Fetcher(settings) as fetcher:
        async def one(ref):
            nonlocal fetched, size
            got = await fetcher.fetch(ref)
            if isinstance(got, Fetched):  # the bytes are dropped at once, as the next stage would consume them
                fetched += 1
                size += got.size
        baseline = peak_rss()
        start, cpu = time.monotonic(), time.process_time()
        await asyncio.gather(*(one(ref) for ref in refs))
        return {"fetched": fetched, "bytes": size, "seconds": time.monotonic() - start,
                "cpu_seconds": time.process_time() - cpu, "budget_peak": fetcher.budget.peak,
                "retries": fetcher.stats.retries, "baseline_rss": baseline}

report = asyncio.run(main())
report["peak_rss"] = peak_rss()
print(json.dumps(report))
"""


@dataclass(frozen=True)
class ChildFetch:
    """What a child process that fetched every source (and dropped the bytes) reports about itself:
    ``baseline_rss`` is its peak RSS after imports, before fetching; ``peak_rss`` the peak at the end."""

    fetched: int
    bytes: int
    seconds: float
    cpu_seconds: float
    budget_peak: int
    retries: int
    baseline_rss: int
    peak_rss: int


def fetch_in_child(cells: list[str], **settings: Any) -> ChildFetch:
    """Fetch the sources ``cells`` name in a fresh Python process (all at once, bounded by ``settings``),
    so its peak RSS is the fetch stage's alone, not the test servers'."""
    import json
    import os
    import subprocess
    import sys

    args = {"cells": cells, "settings": settings}
    env = {**os.environ, **DUMMY_ENV}
    # The sources go in on stdin: thousands of presigned URLs overflow an argument list.
    done = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(args), capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the fetch child failed ({done.returncode}): {done.stderr[-2000:]}")
    return ChildFetch(**json.loads(done.stdout.strip().splitlines()[-1]))
