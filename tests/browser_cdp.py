"""Headless Chromium driven over the DevTools protocol (aiohttp's WebSocket client): load a page at a given
window size and measure it. The page itself runs no script (its CSP forbids it); the measuring expression is
the browser's own ``Runtime.evaluate``, outside the page's policy."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import aiohttp


async def _session(binary: str, page: Path, profile: Path, expression: str, size: tuple[int, int],
                   screenshot: Path | None) -> Any:
    profile.mkdir(parents=True, exist_ok=True)
    port_file = profile / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # the browser writes its port once it listens (up to a minute on a busy machine)
            if port_file.is_file() and port_file.read_text().count("\n") >= 1:
                break
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as answer:
                targets = await answer.json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
            async with http.ws_connect(url, max_msg_size=0) as ws:
                ids = iter(range(1, 1_000_000))

                async def call(method: str, **params: Any) -> Any:
                    ident = next(ids)
                    await ws.send_json({"id": ident, "method": method, "params": params})
                    async for msg in ws:
                        data = json.loads(msg.data)
                        if data.get("id") == ident:
                            if "error" in data:
                                raise RuntimeError(f"{method}: {data['error']}")
                            return data["result"]
                        if data.get("method") == "Page.loadEventFired":
                            loaded.set()
                    raise RuntimeError("the browser closed the connection")

                loaded = asyncio.Event()
                await call("Page.enable")
                await call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1],
                           deviceScaleFactor=1, mobile=False)
                await call("Page.navigate", url=page.as_uri())
                while not loaded.is_set():
                    msg = await ws.receive()
                    if json.loads(msg.data).get("method") == "Page.loadEventFired":
                        loaded.set()
                result = await call("Runtime.evaluate", expression=expression, returnByValue=True)
                if screenshot is not None:
                    shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                      clip={"x": 0, "y": 0, "width": size[0], "height": 2000, "scale": 1})
                    screenshot.write_bytes(base64.b64decode(shot["data"]))
                return result["result"].get("value")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(binary: str, page: Path, profile: Path, expression: str, size: tuple[int, int] = (1400, 900),
            screenshot: Path | None = None) -> Any:
    """Load ``page`` in a ``size`` window and return the value of ``expression`` (JSON-able) evaluated in it;
    with ``screenshot``, also save the page's top 2000 px as PNG there."""
    return asyncio.run(asyncio.wait_for(_session(binary, page, profile, expression, size, screenshot), 180))
