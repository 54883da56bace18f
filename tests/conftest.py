"""Shared fixtures: a real emulator on a loopback port, in the test's loop or in a thread.

- ``emulator``: an ``Emulator`` started in the test's event loop with ``EmulatorConfig()``; for another
  config, parametrize indirectly: ``@pytest.mark.parametrize("emulator", [EmulatorConfig(rate=5)],
  indirect=True)``.
- ``make_emulator``: ``await make_emulator(EmulatorConfig(...))`` starts as many as a test needs; all are
  stopped at teardown.
- ``emulator_thread``: for sync code; an emulator on its own loop in a daemon thread
  (``emulator_in_thread``); indirect parametrization works the same way.
- ``http``: an ``aiohttp.ClientSession``, closed at teardown.

Helpers for raw calls (``signed_post``, ``presign``, ``put``, ``make_image``) live in ``tests/helpers.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from helpers import MakeEmulator

from pipeline.emulator import Emulator, EmulatorConfig, emulator_in_thread


@pytest.fixture(autouse=True)
def _private_state_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python API keeps notebook journals in the user's state folder: each test gets its own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
async def make_emulator() -> AsyncIterator[MakeEmulator]:
    """A factory: ``await make_emulator(config=None)`` returns a started emulator, stopped at teardown."""
    started: list[Emulator] = []

    async def factory(config: EmulatorConfig | None = None) -> Emulator:
        emu = Emulator(config)
        await emu.start()
        started.append(emu)
        return emu

    yield factory
    for emu in reversed(started):
        await emu.stop()


@pytest.fixture
async def emulator(request: pytest.FixtureRequest, make_emulator: MakeEmulator) -> Emulator:
    """An emulator on 127.0.0.1 (free port) in the test's loop; config from indirect parametrization."""
    return await make_emulator(getattr(request, "param", None))


@pytest.fixture
def emulator_thread(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """An emulator serving from its own thread (for sync code and subprocesses); stopped at teardown."""
    with emulator_in_thread(getattr(request, "param", None)) as emu:
        yield emu


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for raw calls, closed at teardown (so no ResourceWarning)."""
    async with aiohttp.ClientSession() as session:
        yield session
