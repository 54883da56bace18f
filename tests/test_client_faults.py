"""The client against a misbehaving emulator (issue 11): dead, stalled, redirecting and TLS-broken endpoints
stop fast; throttling and 5xx are ridden out by time within a run budget; waits are capped and interruptible;
IN_PROGRESS is asked again; per-row 403s stay per row; a URL is never PUT twice."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from emulator_tools import FakeClock
from helpers import MakeEmulator, make_image, presign, put

from pipeline.client import ApiClient, ApiSettings, ClientState
from pipeline.client.rows import FINAL_STATUSES
from pipeline.config import Credentials
from pipeline.emulator import Emulator, EmulatorConfig, Faults
from pipeline.errors import ConfigError, EndpointUnreachableError, ServiceUnavailableError
from pipeline.models import Presigned

JPEG = make_image(300, 300)


def settings_for(base: str, emu: Emulator | None = None, **overrides: Any) -> ApiSettings:
    creds = emu.credentials if emu is not None else Credentials("AK", "SECRET-KEY-123")
    workspace = emu.workspace if emu is not None else "ws"
    base_settings = ApiSettings(workspace=workspace, credentials=creds, endpoint=base, backoff_base=0.01,
                                backoff_max=0.05)
    return dataclasses.replace(base_settings, **overrides)


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_defaults_end_a_stalled_or_dead_endpoint_within_30_s() -> None:
    """Two silent tries at most, each bounded by connect + read timeout: under 30 s at the defaults."""
    from pipeline.client.calls import SILENT_STRIKES

    s = ApiSettings(workspace="w", credentials=Credentials("a", "bcde"))
    assert SILENT_STRIKES * (s.connect_timeout + s.read_timeout) < 30
    assert s.put_timeout(5_000_000) == pytest.approx(s.put_timeout_floor + 100.0)  # 5 MB at 50 kB/s
    with pytest.raises(ConfigError, match="--read-timeout"):
        ApiSettings(workspace="w", credentials=Credentials("a", "bcde"), read_timeout=0)


async def test_dead_endpoint_is_fatal_at_once_naming_the_host() -> None:
    port = dead_port()
    async with ApiClient(settings_for(f"http://127.0.0.1:{port}")) as client:
        with pytest.raises(EndpointUnreachableError, match=f"127.0.0.1:{port}"):
            await client.preflight()
    async with ApiClient(settings_for(f"http://127.0.0.1:{port}", concurrency=8)) as client:
        results = await asyncio.gather(*(client.upload(f"r{i}.jpg", JPEG, "image/jpeg") for i in range(8)),
                                       return_exceptions=True)
    assert all(isinstance(r, EndpointUnreachableError) for r in results)
    assert client.stats.presign_calls == 1 and sum(client.stats.retries.values()) == 0  # not row by row


@pytest.mark.parametrize("emulator", [EmulatorConfig(faults=Faults(stall_rate=1.0))], indirect=True)
async def test_stalled_endpoint_ends_after_two_silent_tries(emulator: Emulator) -> None:
    settings = settings_for(emulator.base_url, emulator, connect_timeout=0.2, read_timeout=0.2, concurrency=8)
    async with ApiClient(settings) as client:
        results = await asyncio.gather(*(client.upload(f"r{i}.jpg", JPEG, "image/jpeg") for i in range(8)),
                                       return_exceptions=True)
    assert all(isinstance(r, EndpointUnreachableError) for r in results), results
    assert "did not answer" in str(results[0])
    # The first-call gate holds one silent try at a time and the second ends it: 2 calls, not 8 x 5.
    assert emulator.counters.faults["stalled"] == 2
    async with ApiClient(settings) as client:
        with pytest.raises(EndpointUnreachableError):
            await client.preflight()
    assert emulator.counters.faults["stalled"] == 4


@pytest.mark.parametrize("emulator", [EmulatorConfig(faults=Faults(redirect_to="http://elsewhere.invalid"))],
                         indirect=True)
async def test_redirect_is_fatal_not_followed(emulator: Emulator) -> None:
    async with ApiClient(settings_for(emulator.base_url, emulator)) as client:
        with pytest.raises(EndpointUnreachableError, match="redirect"):
            await client.preflight()
    async with ApiClient(settings_for(emulator.base_url, emulator)) as client:
        with pytest.raises(EndpointUnreachableError, match="redirect") as info:
            await client.upload("a.jpg", JPEG, "image/jpeg")
    assert "elsewhere.invalid" in str(info.value) and emulator.counters.presign_calls == 1


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no trust store holds (made with the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not available")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_bad_certificate_on_the_api_is_fatal(make_emulator: MakeEmulator, self_signed: tuple[Path, Path]) -> None:
    emu = await make_emulator(EmulatorConfig(tls_cert=self_signed[0], tls_key=self_signed[1]))
    async with ApiClient(settings_for(emu.tls_base_url, emu)) as client:
        with pytest.raises(EndpointUnreachableError, match="TLS"):
            await client.preflight()
        with pytest.raises(EndpointUnreachableError):
            await client.upload("a.jpg", JPEG, "image/jpeg")
    assert emu.counters.presign_calls == 0  # the handshake failed: nothing reached the routes


async def test_bad_certificate_on_the_upload_url_stops_after_one_put(
    make_emulator: MakeEmulator, self_signed: tuple[Path, Path]
) -> None:
    emu = await make_emulator(EmulatorConfig(tls_cert=self_signed[0], tls_key=self_signed[1], urls_over_tls=True))
    journaled: list[str] = []

    async def on_presigned(p: Presigned) -> None:
        journaled.append(p.thumbnail_key)

    async with ApiClient(settings_for(emu.base_url, emu)) as client:
        with pytest.raises(EndpointUnreachableError, match="TLS") as info:
            await client.upload("a.jpg", JPEG, "image/jpeg", on_presigned=on_presigned)
        assert client.fatal is info.value
    # One presign and one PUT attempt, not 8 rounds; the key was handed to the journal before the PUT.
    assert emu.counters.presign_calls == 1 and client.stats.put_calls == 1 and len(journaled) == 1
    assert "X-Amz" not in str(info.value)


@pytest.mark.slow  # real time (seconds of it): the reliability tier
async def test_storm_without_retry_after_html_502s_and_drops_400_rows(make_emulator: MakeEmulator) -> None:
    """The done-when scenario: a 12 s 429 storm without Retry-After, 10 % HTML 502 pages and 5 % dropped
    connections; 400 uploads through a bounded concurrency all succeed, and no URL is PUT twice."""
    faults = Faults(html_error_rate=0.10, drop_rate=0.05, retry_after="", seed=5)
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0, faults=faults))
    faults.storm(12.0)
    async with ApiClient(settings_for(emu.base_url, emu, rate=200, concurrency=16)) as client:
        limit = asyncio.Semaphore(16)

        async def one(i: int) -> bool:
            async with limit:
                return (await client.upload(f"r{i}.jpg", JPEG, "image/jpeg")).ok

        ok = await asyncio.gather(*(one(i) for i in range(400)))
    c = emu.counters.snapshot(arrivals=False)
    assert all(ok) and client.fatal is None
    assert c["responses_429"] > 0 and c["faults"]["html_errors"] > 0 and c["faults"]["dropped"] > 0
    assert set(c["puts_per_key"].values()) == {1}
    assert len(emu.objects) >= 400


async def test_outage_budget_ends_the_run_with_a_sentence(emulator: Emulator) -> None:
    emulator.faults.error_rate = 1.0
    fake = FakeClock()
    settings = settings_for(emulator.base_url, emulator, outage_budget=30.0, retry_window=1000.0, backoff_max=5.0)
    async with ApiClient(settings, clock=fake.clock, sleep=fake.sleep) as client:
        with pytest.raises(ServiceUnavailableError, match="answered only errors") as info:
            await client.upload("a.jpg", JPEG, "image/jpeg")
        assert client.state is ClientState.FATAL and client.fatal is info.value
    assert emulator.counters.presign_calls >= 3


async def test_retry_after_is_capped(emulator: Emulator) -> None:
    emulator.faults.retry_after = "3600"
    emulator.faults.storm(3600)
    fake = FakeClock()
    settings = settings_for(emulator.base_url, emulator, max_retry_after=5.0, retry_window=12.0)
    async with ApiClient(settings, clock=fake.clock, sleep=fake.sleep) as client:
        start = fake.clock()
        outcome = await client.upload("a.jpg", JPEG, "image/jpeg")
    assert outcome.reason == "presign_failed" and "HTTP 429" in (outcome.detail or "")
    # Each 429 paused the limiter for 5 s (the cap), not an hour: 12 s of retrying is 3-4 tries.
    assert 3 <= emulator.counters.responses_429 <= 4 and fake.clock() - start < 30


async def test_a_long_wait_ends_at_once_on_cancellation(emulator: Emulator) -> None:
    emulator.faults.retry_after = "3600"
    emulator.faults.storm(3600)
    settings = settings_for(emulator.base_url, emulator, max_retry_after=3600.0)
    async with ApiClient(settings) as client:
        throttled = asyncio.Event()
        task = asyncio.ensure_future(client.upload("a.jpg", JPEG, "image/jpeg"))
        with structlog.testing.capture_logs():
            while client.stats.responses_429 == 0:  # wait for the 429 (an event in the client), not for time
                await asyncio.wait([task], timeout=0.05)
            throttled.set()
            assert client.presign_limiter.paused_until - client.clock() > 3000
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=30)
    assert throttled.is_set() and done == {task} and task.cancelled()


@pytest.mark.parametrize("emulator", [EmulatorConfig(faults=Faults(in_progress=2))], indirect=True)
async def test_in_progress_is_asked_again_not_uploaded_again(emulator: Emulator) -> None:
    fake = FakeClock()
    async with ApiClient(settings_for(emulator.base_url, emulator), clock=fake.clock, sleep=fake.sleep) as client:
        ok = await client.upload("a.jpg", JPEG, "image/jpeg")
        assert ok.ok and ok.attempts == 1 and client.stats.retries["in_progress"] == 2
        assert (emulator.counters.put_calls, emulator.counters.status_calls) == (1, 3)
    emulator.faults.in_progress = 1000
    settings = settings_for(emulator.base_url, emulator, confirm_wait=10.0)
    async with ApiClient(settings, clock=fake.clock, sleep=fake.sleep) as client:
        stuck = await client.upload("b.jpg", JPEG, "image/jpeg")
    assert stuck.reason == "confirm_failed" and "still IN_PROGRESS" in (stuck.detail or "")
    assert stuck.attempts == 1 and emulator.counters.put_calls == 2  # no second upload of the row
    assert stuck.orphans == (stuck.orphans[0],) and "IN_PROGRESS" not in FINAL_STATUSES


@pytest.mark.parametrize("emulator", [EmulatorConfig(faults=Faults(forbidden_names=r"^blocked"))], indirect=True)
async def test_a_per_row_403_fails_that_row_only(emulator: Emulator) -> None:
    async with ApiClient(settings_for(emulator.base_url, emulator)) as client:
        blocked = await client.upload("blocked-1.jpg", JPEG, "image/jpeg")
        fine = await client.upload("fine.jpg", JPEG, "image/jpeg")
    assert blocked.reason == "request_rejected" and "HTTP 403" in (blocked.detail or "")
    assert fine.ok and client.fatal is None and emulator.counters.faults["forbidden"] == 1


async def test_a_url_is_never_put_twice_when_the_connection_drops(emulator: Emulator) -> None:
    """The PUT goes out on the kept-alive presign connection, which the server drops: aiohttp alone would
    send it again (shown first, with a plain session); the client never does."""
    async with aiohttp.ClientSession() as http:
        url = (await presign(http, emulator)).body["result"]["url"]
        emulator.faults.drop_rate = 1.0
        with pytest.raises(aiohttp.ClientError):
            await put(http, url, JPEG)
    assert list(emulator.counters.puts_per_key.values()) == [2]  # the hazard is real
    emulator.faults.drop_rate = 0.0

    async def drop_from_now_on(_: Presigned) -> None:
        emulator.faults.drop_rate = 1.0

    # The status call that follows a PUT without an answer is dropped too: it is retried for the retry window
    # (kept short here), then the row fails.
    settings = settings_for(emulator.base_url, emulator, max_row_attempts=1, retry_window=2.0)
    async with ApiClient(settings) as client:
        outcome = await client.upload("a.jpg", JPEG, "image/jpeg", on_presigned=drop_from_now_on)
    assert outcome.reason == "upload_failed" and outcome.orphans
    assert emulator.counters.puts_per_key[outcome.orphans[0]] == 1
