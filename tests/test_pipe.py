"""The pipes between stages: closing never waits, and every consumer sees the end."""

from __future__ import annotations

import asyncio

from pipeline.runner.records import Pipe


async def test_closing_a_full_pipe_does_not_wait_and_the_end_follows_the_items() -> None:
    pipe: Pipe[int] = Pipe(2)
    await pipe.put(1)
    await pipe.put(2)
    await asyncio.wait_for(pipe.close(), 1.0)  # nobody drains it: a stage cancelled mid-run still closes
    assert [await pipe.get(), await pipe.get(), await pipe.get(), await pipe.get()] == [1, 2, None, None]


async def test_every_waiting_consumer_sees_the_end() -> None:
    pipe: Pipe[int] = Pipe(4)
    consumers = [asyncio.create_task(pipe.get()) for _ in range(3)]
    await asyncio.sleep(0)  # let them wait on the empty pipe
    await pipe.close()
    assert await asyncio.wait_for(asyncio.gather(*consumers), 1.0) == [None, None, None]
