"""The one pacing of retries (``pipeline.pacing``): one backoff rule, one Retry-After rule and one map of
network exceptions, shared by the API client and the fetcher."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from pipeline.pacing import Net, backoff, net_failure, pause


def test_backoff_is_full_jitter_doubling_up_to_the_cap() -> None:
    for attempt in range(1, 12):
        bound = min(2.0, 0.1 * 2 ** (attempt - 1))
        draws = [backoff(attempt, 0.1, 2.0) for _ in range(400)]
        assert all(0.0 <= d <= bound for d in draws)
        assert max(draws) > 0.8 * bound  # the whole range is used, not a fixed delay
    assert backoff(10_000, 0.1, 2.0) <= 2.0  # no overflow on a long outage


def test_a_retry_after_is_obeyed_up_to_the_cap() -> None:
    assert pause(1, 0.1, 5.0, 3.0) == 3.0
    assert pause(1, 0.1, 5.0, 30.0) == 5.0
    assert pause(1, 0.1, 5.0, 0.0) == 0.0
    assert 0.0 <= pause(3, 0.1, 5.0, None) <= 0.4


async def test_network_exceptions_map_to_one_set_of_kinds() -> None:
    with socket.socket() as probe:  # a port nobody listens on: a real refused connection
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await session.get(f"http://127.0.0.1:{port}/")
    assert net_failure(refused.value) is Net.NO_CONNECTION
    assert net_failure(asyncio.TimeoutError()) is Net.TIMEOUT
    assert net_failure(aiohttp.ServerDisconnectedError()) is Net.BROKEN
    assert net_failure(ConnectionResetError()) is Net.BROKEN
    assert net_failure(aiohttp.InvalidURL("x")) is Net.INVALID_URL
    assert net_failure(ValueError("a bug")) is None


def test_a_route_whose_every_call_missed_has_a_wrong_path() -> None:
    """Per-route state (``routes.NotFoundStrikes``): three 404s with no call ever answered make the path's
    error (a clear ``NotFoundError``); once a call was answered, a 404 is one key's and stays as it is."""
    from pipeline.client.routes import NotFoundStrikes
    from pipeline.errors import NotFoundError, TransientError

    missing = TransientError("status: 404", status=404)
    strikes = NotFoundStrikes(3, "status")
    assert strikes.missed(missing) is missing and strikes.missed(missing) is missing
    third = strikes.missed(missing)
    assert isinstance(third, NotFoundError) and "check the status path" in str(third)
    answered = NotFoundStrikes(3, "status")
    answered.succeeded()
    assert all(answered.missed(missing) is missing for _ in range(5))
