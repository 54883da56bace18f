"""``Emulator``: the aiohttp application, its state, and starting/stopping it on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import ssl
import time
from collections.abc import Callable
from functools import partial
from types import TracebackType
from typing import Any

import structlog
from aiohttp import web

from pipeline.config import Credentials
from pipeline.emulator import handlers, persons, storage
from pipeline.emulator.settings import EmulatorConfig, Faults
from pipeline.emulator.state import Counters, IssuedUrl, Person, SlidingWindow, StoredObject

__all__ = ["PRESIGN_ROUTES", "STATUS_ROUTES", "Emulator"]

_WS = "/api/v1/workspaces/{workspace}/person-thumbnail"
PRESIGN_ROUTES = {"presign": f"{_WS}/uploads/presigned-url", "presign_short": f"{_WS}/presign"}
STATUS_ROUTES = {"status": f"{_WS}/uploads/complete", "status_short": f"{_WS}/complete"}
STATE_PATH = "/_emulator/state"

log = structlog.get_logger(__name__)


class Emulator:
    """A local stand-in for the MI thumbnail API and its object storage, on one aiohttp app.

    Use ``async with Emulator(config) as emu`` (or ``start()``/``stop()``) inside a running loop; for sync
    code use ``emulator_in_thread``. ``faults`` may be changed at any time; ``objects`` maps each uploaded
    thumbnailKey to its ``StoredObject``; ``counters`` counts every call. ``state()`` and
    ``counters.snapshot()`` are safe to call from another thread.

    ``clock`` (monotonic seconds) times the rate windows, arrivals and storms; ``wallclock`` (epoch
    seconds) the signature timestamps, URL expiry, upload times and key expiry. Tests inject their own to
    move time. ``persons`` maps each person's id to its ``Person`` (keys included); ``attached_keys`` maps
    every key ever attached to its person's id.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        # None rather than a shared default instance: each emulator must get its own mutable Faults.
        config = EmulatorConfig() if config is None else config
        self.config = config
        self.clock, self.wallclock = clock, wallclock
        self.faults: Faults = config.faults
        self.faults.clock = clock
        self.status_asks: dict[str, int] = {}
        self.tls_base_url = ""
        self._closing = asyncio.Event()
        self.objects: dict[str, StoredObject] = {}
        self.counters = Counters()
        self.credentials: Credentials = config.credentials[0]
        self.workspace: str = config.workspaces[0]
        self._secrets = {c.access_key: c.secret_key for c in config.credentials}
        self.issued_by_token: dict[str, IssuedUrl] = {}
        self.issued_by_key: dict[str, IssuedUrl] = {}
        self.base_url = ""
        self.persons: dict[int, Person] = {}
        self.attached_keys: dict[str, int] = {}
        self.person_ids = itertools.count(1001)
        self.thumbnail_ids = itertools.count(1)
        self._windows: dict[tuple[str, str], SlidingWindow] = {}
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    def _build_app(self) -> web.Application:
        # A PUT body may reach the storage limit; API bodies are bounded separately in api._json_body.
        middlewares = [self._log_request] if self.config.log_requests else []
        app = web.Application(client_max_size=self.config.put_max_bytes + 1, middlewares=middlewares)
        for route, path in PRESIGN_ROUTES.items():
            app.router.add_post(
                path, partial(handlers.api_call, self, route=route, kind="presign", handler=handlers.presign))
            app.router.add_get(path, partial(handlers.method_not_allowed, self))
        for route, path in STATUS_ROUTES.items():
            app.router.add_post(
                path, partial(handlers.api_call, self, route=route, kind="status", handler=handlers.upload_status)
            )
        persons.add_routes(self, app)
        app.router.add_put("/_storage/{bucket}/{key:.+}", partial(storage.put_object, self))
        app.router.add_get(STATE_PATH, self._state_route)
        app.router.add_route("*", "/{tail:.*}", self._unknown_route)
        return app

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on ``config.host``/``config.port`` (0 picks a free port); sets ``base_url``."""
        if self._runner is not None:
            raise RuntimeError("The emulator is already running.")
        self._closing = asyncio.Event()
        if self.config.storage == "disk" and self.config.storage_dir is not None:
            self.config.storage_dir.mkdir(parents=True, exist_ok=True)
        host = self.config.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Binding the socket ourselves is the public way to learn the port chosen for port 0.
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, self.config.port))
        except OSError:
            sock.close()
            raise
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner = runner
        port = sock.getsockname()[1]
        url_host = "127.0.0.1" if host in ("", "0.0.0.0") else f"[{host}]" if family == socket.AF_INET6 else host
        self.base_url = f"http://{url_host}:{port}"
        if self.config.tls_cert is not None and self.config.tls_key is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
            site = web.TCPSite(runner, host or "127.0.0.1", self.config.tls_port, ssl_context=context)
            await site.start()
            tls_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.tls_base_url = f"https://{url_host}:{tls_port}"

    async def stop(self) -> None:
        """Stop listening and close every connection (stalled requests included). Safe to call twice."""
        runner, self._runner = self._runner, None
        self._closing.set()
        if runner is not None:
            await runner.cleanup()

    def storage_origin(self, request: web.Request) -> tuple[str, str]:
        """``(scheme, host)`` that presigned URLs point at: the TLS listener with ``urls_over_tls``, else
        the address the presign call came in on."""
        if self.config.urls_over_tls and self.tls_base_url:
            return "https", self.tls_base_url.removeprefix("https://")
        return request.scheme, request.host

    async def stall(self, request: web.Request) -> web.Response:
        """Accept the request and never answer: wait until the emulator stops, then drop the connection."""
        self.counters.bump("stalled")
        await self._closing.wait()
        return self.drop(request)

    async def hold(self, seconds: float) -> None:
        """Wait ``seconds``, or until the emulator stops (so a held answer never delays its shutdown)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    @web.middleware
    async def _log_request(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        started = self.clock()
        response: web.StreamResponse = await handler(request)
        # The path only: the query of a storage URL is its credential.
        log.info("emulator_request", method=request.method, path=request.path, status=response.status,
                 ms=round((self.clock() - started) * 1000, 1))
        return response

    def state(self, *, arrivals: bool = True, objects: bool = True) -> dict[str, Any]:
        """What ``GET /_emulator/state`` returns: config (no secrets), faults, counters, stored objects and
        persons (these two left out when ``objects`` is false)."""
        cfg = self.config
        snapshot: dict[str, Any] = {
            "base_url": self.base_url,
            "access_keys": [c.access_key for c in cfg.credentials],
            "workspaces": list(cfg.workspaces),
            "config": {
                "rate": cfg.rate,
                "confirm_rate": cfg.confirm_rate,
                "persons_rate": cfg.persons_rate,
                "thumbnail_ttl": cfg.thumbnail_ttl,
                "url_ttl": cfg.url_ttl,
                "storage": cfg.storage,
                "sign_content_type": cfg.sign_content_type,
                "max_bytes": cfg.max_bytes,
                "put_max_bytes": cfg.put_max_bytes,
                "min_side": cfg.min_side,
            },
            "tls_base_url": self.tls_base_url,
            "faults": self.faults.as_dict(),
            "counters": self.counters.snapshot(arrivals=arrivals),
            "object_count": len(self.objects),
            "person_count": len(self.persons),
        }
        if objects:
            # list() copies the values in one step, so a reader in another thread sees no resize.
            snapshot["objects"] = {o.key: o.as_dict() for o in list(self.objects.values())}
            snapshot["persons"] = {str(p.id): p.as_dict() for p in list(self.persons.values())}
        return snapshot

    def reset_counters(self) -> None:
        """Start counting afresh (stored objects, issued URLs and the rate windows are kept)."""
        self.counters = Counters()

    def secret_for(self, access_key: str) -> str | None:
        """The secret of a known ``access_key``, else ``None``."""
        return self._secrets.get(access_key)

    def window(self, kind: str, access_key: str, length: float) -> SlidingWindow:
        """The cap window of ``kind`` (presign/status/persons) for ``access_key``."""
        key = (kind, access_key)
        window = self._windows.get(key)
        if window is None or window.length != length:
            window = self._windows[key] = SlidingWindow(length)
        return window

    async def answer(self, response: web.Response) -> web.Response:
        """Count ``response`` and hand it back after the injected latency."""
        latency = self.faults.latency
        if latency > 0:
            await asyncio.sleep(latency)
        self.counters.response(response.status)
        return response

    def drop(self, request: web.Request) -> web.Response:
        """Close the connection without answering (the returned response is never sent)."""
        self.counters.bump("dropped")
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)

    async def _state_route(self, request: web.Request) -> web.Response:
        # No faults, latency or counting here: inspection must not disturb what it measures.
        def flag(name: str) -> bool:
            return request.query.get(name, "1").lower() not in ("0", "false", "no")

        return web.json_response(self.state(arrivals=flag("arrivals"), objects=flag("objects")))

    async def _unknown_route(self, request: web.Request) -> web.Response:
        self.counters.call("unknown")
        return await self.answer(handlers.mi_error(404, "300", f"Not found: {request.method} {request.path}"))

    @property
    def running(self) -> bool:
        """Whether the emulator is listening."""
        return self._runner is not None
