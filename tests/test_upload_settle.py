"""The upload stage's one contract with the prepare stage (``Ready.settle``): every prepared row it takes is
settled, whatever ends it (uploaded: with its key, at once, so rows waiting on the same content go on; refused or
failed: with ``None``; a row left in the pipe after a stop is settled with ``None`` by the pipe's cut), so no
``--dedupe`` copy waits for ever and the prepared bytes always go back to their budget. Against the emulator over
loopback."""

from __future__ import annotations

import time
from pathlib import Path

from helpers import MakeEmulator

from pipeline.client import ApiClient
from pipeline.emulator import EmulatorConfig, Faults
from pipeline.fetch.refs import SourceRef
from pipeline.images import prepare
from pipeline.journal import Journal
from pipeline.models import ImagePolicy, Prepared, Row
from pipeline.progress import Progress
from pipeline.python_api import make_settings
from pipeline.runner.context import RunContext
from pipeline.runner.control import RunControl, StopCause
from pipeline.runner.plan import Why
from pipeline.runner.recorder import Recorder
from pipeline.runner.records import Job, Pipe, Ready, drop_ready
from pipeline.runner.upload_stage import UploadStage
from pipeline.samples import make_jpeg


async def test_every_ready_taken_is_settled_whatever_ends_it(make_emulator: MakeEmulator, tmp_path: Path) -> None:
    emu = await make_emulator(EmulatorConfig(rate=0, confirm_rate=0, faults=Faults(forbidden_names="refused")))
    settings = make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                             progress=False)
    make_jpeg(tmp_path / "p.jpg", 400, 300, seed=1)
    prepared = prepare(tmp_path / "p.jpg", ImagePolicy())
    assert isinstance(prepared, Prepared)
    settled: dict[int, list[str | None]] = {}

    def ready(i: int, name: str) -> Ready:
        job = Job(Row(i, f"k{i}", name, SourceRef("file", "", str(tmp_path / "p.jpg"))), Why.NEW, "1:1")
        return Ready(job, prepared, None, lambda key: settled.setdefault(i, []).append(key))

    with Journal.open(tmp_path / "j.sqlite", workspace=emu.workspace) as journal:
        control = RunControl()
        ctx = RunContext(settings, journal, Recorder(journal, Progress(3, enabled=False)), control, time.monotonic,
                         "run-1")
        async with ApiClient(settings.api) as client:
            inbox: Pipe[Ready] = Pipe(4)
            await inbox.put(ready(0, "ok.jpg"))
            await inbox.put(ready(1, "refused.jpg"))  # presign answered 403: the row fails
            await inbox.close()
            await UploadStage(ctx, client, inbox).run()
            late: Pipe[Ready] = Pipe(4, drop_ready)
            control.on_stop(late.cut)  # as the session wires every pipe before the attach stage's
            await late.put(ready(2, "late.jpg"))
            control.stop(StopCause.LOCAL)  # after a stop, a row waiting is not uploaded: the cut settles it
            await late.close()
            await UploadStage(ctx, client, late).run()
    key = settled[0][0]
    assert isinstance(key, str) and key.startswith(emu.workspace)  # settled with its key as soon as it had one
    assert all(k is None for k in settled[0][1:])  # settling again is harmless (the ``finally``)
    assert settled[1] and all(k is None for k in settled[1])
    assert settled[2] == [None]
    assert emu.counters.snapshot(arrivals=False)["put_calls"] == 1
