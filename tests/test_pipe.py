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


async def test_a_cut_drops_the_items_waiting_and_ends_every_consumer_at_once() -> None:
    dropped: list[int] = []
    pipe: Pipe[int] = Pipe(4, dropped.append)
    await pipe.put(1)
    await pipe.put(2)
    waiting = Pipe[int](4, dropped.append)
    consumers = [asyncio.create_task(waiting.get()) for _ in range(3)]
    await asyncio.sleep(0)
    pipe.cut()
    waiting.cut()
    assert dropped == [1, 2]  # what they hold is given back by the pipe, not by a stage
    assert await pipe.get() is None and await pipe.get() is None
    assert await asyncio.wait_for(asyncio.gather(*consumers), 1.0) == [None, None, None]


async def test_a_cut_ends_a_producer_waiting_for_room_and_drops_its_item() -> None:
    dropped: list[int] = []
    pipe: Pipe[int] = Pipe(1, dropped.append)
    assert await pipe.put(1) is True
    producer = asyncio.create_task(pipe.put(2))  # waits: the pipe is full and nobody drains it
    await asyncio.sleep(0)
    assert not producer.done()
    pipe.cut()
    assert await asyncio.wait_for(producer, 1.0) is False
    assert sorted(dropped) == [1, 2]
    assert await pipe.put(3) is False and sorted(dropped) == [1, 2, 3]  # after a cut nothing is taken
    assert await pipe.get() is None and not pipe.live


async def test_a_stop_cuts_the_pipes_registered_with_the_run_control() -> None:
    from pipeline.runner.control import RunControl, StopCause

    control = RunControl()
    dropped: list[int] = []
    pipe: Pipe[int] = Pipe(4, dropped.append)
    control.on_stop(pipe.cut)
    await pipe.put(7)
    consumer = asyncio.create_task(pipe.get())
    assert await consumer == 7
    consumer = asyncio.create_task(pipe.get())
    await asyncio.sleep(0)
    control.stop(StopCause.LOCAL)
    assert await asyncio.wait_for(consumer, 1.0) is None
    late: Pipe[int] = Pipe(4, dropped.append)
    control.on_stop(late.cut)  # registered after the stop: cut at once
    assert not late.live and await late.put(8) is False and dropped == [8]
