"""``Emulator``: the aiohttp application, its state, and starting/stopping it on a loopback port."""

from __future__ import annotations

import asyncio
import socket
from functools import partial
from types import TracebackType
from typing import Any

from aiohttp import web

from pipeline.config import Credentials
from pipeline.emulator import api, storage
from pipeline.emulator.settings import EmulatorConfig, Faults
from pipeline.emulator.state import Counters, IssuedUrl, SlidingWindow, StoredObject

__all__ = ["PRESIGN_ROUTES", "STATUS_ROUTES", "Emulator"]

_WS = "/api/v1/workspaces/{workspace}/person-thumbnail"
PRESIGN_ROUTES = {"presign": f"{_WS}/uploads/presigned-url", "presign_short": f"{_WS}/presign"}
STATUS_ROUTES = {"status": f"{_WS}/uploads/complete", "status_short": f"{_WS}/complete"}
STATE_PATH = "/_emulator/state"


class Emulator:
    """A local stand-in for the MI thumbnail API and its object storage, on one aiohttp app.

    Use ``async with Emulator(config) as emu`` (or ``start()``/``stop()``) inside a running loop; for sync
    code use ``emulator_in_thread``. ``faults`` may be changed at any time; ``objects`` maps each uploaded
    thumbnailKey to its ``StoredObject``; ``counters`` counts every call. ``state()`` and
    ``counters.snapshot()`` are safe to call from another thread.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        # None rather than a shared default instance: each emulator must get its own mutable Faults.
        config = EmulatorConfig() if config is None else config
        self.config = config
        self.faults: Faults = config.faults
        self.objects: dict[str, StoredObject] = {}
        self.counters = Counters()
        self.credentials: Credentials = config.credentials[0]
        self.workspace: str = config.workspaces[0]
        self._secrets = {c.access_key: c.secret_key for c in config.credentials}
        self.issued_by_token: dict[str, IssuedUrl] = {}
        self.issued_by_key: dict[str, IssuedUrl] = {}
        self.base_url = ""
        self._windows: dict[tuple[str, str], SlidingWindow] = {}
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    def _build_app(self) -> web.Application:
        # A PUT body may reach the storage limit; API bodies are bounded separately in api._json_body.
        app = web.Application(client_max_size=self.config.put_max_bytes + 1)
        for route, path in PRESIGN_ROUTES.items():
            app.router.add_post(path, partial(api.api_call, self, route=route, kind="presign", handler=api.presign))
        for route, path in STATUS_ROUTES.items():
            app.router.add_post(
                path, partial(api.api_call, self, route=route, kind="status", handler=api.upload_status)
            )
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

    async def stop(self) -> None:
        """Stop listening and close every connection. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def state(self, *, arrivals: bool = True, objects: bool = True) -> dict[str, Any]:
        """What ``GET /_emulator/state`` returns: config (no secrets), faults, counters, stored objects."""
        cfg = self.config
        snapshot: dict[str, Any] = {
            "base_url": self.base_url,
            "access_keys": [c.access_key for c in cfg.credentials],
            "workspaces": list(cfg.workspaces),
            "config": {
                "rate": cfg.rate,
                "confirm_rate": cfg.confirm_rate,
                "url_ttl": cfg.url_ttl,
                "storage": cfg.storage,
                "sign_content_type": cfg.sign_content_type,
                "max_bytes": cfg.max_bytes,
                "put_max_bytes": cfg.put_max_bytes,
                "min_side": cfg.min_side,
            },
            "faults": self.faults.as_dict(),
            "counters": self.counters.snapshot(arrivals=arrivals),
            "object_count": len(self.objects),
        }
        if objects:
            # list() copies the values in one step, so a reader in another thread sees no resize.
            snapshot["objects"] = {o.key: o.as_dict() for o in list(self.objects.values())}
        return snapshot

    def reset_counters(self) -> None:
        """Start counting afresh (stored objects, issued URLs and the rate windows are kept)."""
        self.counters = Counters()

    def secret_for(self, access_key: str) -> str | None:
        """The secret of a known ``access_key``, else ``None``."""
        return self._secrets.get(access_key)

    def window(self, kind: str, access_key: str, length: float) -> SlidingWindow:
        """The cap window of ``kind`` (presign/status) for ``access_key``."""
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
        return await self.answer(api.mi_error(404, "300", f"Not found: {request.method} {request.path}"))

    @property
    def running(self) -> bool:
        """Whether the emulator is listening."""
        return self._runner is not None
