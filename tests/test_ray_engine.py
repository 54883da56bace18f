"""``--engine ray``: fetch and prepare on a Ray cluster's CPUs, everything stateful on the driver.

The fast tests share one local Ray (``ray.init(num_cpus=2)``) started after moto's S3 server, so the workers
read the objects themselves with the same dummy credentials. The slow ones (``make reliability``) kill the
driver with SIGKILL mid-upload, and take a worker node away from a two-node ``ray.cluster_utils.Cluster``
while its tasks run. Each checks per-row outcomes, or the emulator's count of uploads, not timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import MakeEmulator, photo_manifest, write_manifest
from s3_fixtures import MotoS3, moto_s3

from pipeline import runner
from pipeline.corpus import make_corpus
from pipeline.emulator import Emulator, EmulatorConfig, Faults
from pipeline.errors import ConfigError
from pipeline.python_api import make_settings
from pipeline.runner import prepare_stage
from pipeline.samples import make_jpeg

ray = pytest.importorskip("ray")

from pipeline.engines.ray_engine import RayEngine, store_env  # noqa: E402  (after the skip: it imports ray)

FAST = {"rate": 0.0, "confirm_rate": 0.0, "confirm": False, "progress": False}
SAME = ("path", "status", "reason", "detail", "action", "width", "height", "bytes", "source_sha256", "duplicate_of",
        "this_run")
"""The per-row columns two engines must agree on (the keys, times and run ids are each run's own)."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[MotoS3]:
    """moto's S3 server, then a local Ray of 2 CPUs whose workers get the same (dummy) store credentials."""
    with moto_s3() as s3:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": store_env()})
        try:
            yield s3
        finally:
            ray.shutdown()


def _archive(s3: MotoS3, folder: Path) -> Path:
    """A mixed archive: the demo corpus on disk (passthrough, converted, reoriented, and corrupt, too small,
    empty, not an image, a pixel bomb) and S3 objects (good, truncated, too small, too large, missing)."""
    rows: list[dict[str, Any]] = [{"path": p.relative_to(folder).as_posix()}
                                  for p, _ in make_corpus(folder / "disk", scale=0.3)]
    rows.append({"path": "disk/not-there.jpg"})
    good = make_jpeg(None, 640, 480, seed=7, quality=80)
    objects = {"good.jpg": good, "good2.jpg": make_jpeg(None, 500, 700, seed=8, quality=80),
               "truncated.jpg": good[: len(good) // 2], "tiny.jpg": make_jpeg(None, 100, 90, seed=9),
               "big.jpg": make_jpeg(None, 2400, 2400, seed=10, quality=95)}
    for key, data in objects.items():
        s3.put(f"mixed/{key}", data)
    rows += [{"path": f"s3://{s3.bucket}/mixed/{key}"} for key in [*objects, "missing.jpg"]]
    return write_manifest(folder / "mixed.csv", rows)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [{k: r[k] for k in SAME} for r in pq.read_table(path).to_pylist()]


async def test_a_store_refusing_every_read_stops_a_ray_run_as_it_stops_a_local_one(
    cluster: MotoS3, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    # Every row in a bucket that does not exist: the workers each see a few refusals, the driver sees them all
    # and stops the run (exit 3, one sentence) instead of rejecting 60 rows one by one.
    manifest = write_manifest(tmp_path / "denied.csv",
                              [{"path": f"s3://no-such-bucket-here/p{n}.jpg"} for n in range(60)])
    emu = await make_emulator(EmulatorConfig(storage="memory", rate=0, confirm_rate=0))
    ended: dict[str, tuple[int, str | None, int]] = {}
    for engine in ("local", "ray"):
        settings = make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                                 s3_endpoint=cluster.endpoint, engine=engine, out=tmp_path / f"{engine}.parquet",
                                 journal=tmp_path / f"{engine}.sqlite", **FAST)
        summary = await runner.run_async(settings, manifest)
        with closing(sqlite3.connect(tmp_path / f"{engine}.sqlite")) as db:
            rejected = db.execute("SELECT COUNT(*) FROM rows WHERE status = 'rejected'").fetchone()[0]
        ended[engine] = (summary.exit_code, summary.error, rejected)
    assert ended["ray"][:2] == ended["local"][:2]
    code, error, rejected = ended["ray"]
    assert code == 3 and error is not None and "s3://no-such-bucket-here" in error and "NoSuchBucket" in error
    assert rejected < 20  # the rows read before the verdict; the rest are left for a run with the right bucket


@pytest.mark.parametrize("dry_run", [False, True], ids=["upload", "audit"])
async def test_the_ray_engine_gives_every_row_the_local_engines_outcome(
    cluster: MotoS3, make_emulator: MakeEmulator, tmp_path: Path, dry_run: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _archive(cluster, tmp_path)
    on_cluster: list[Any] = []  # the tasks Ray ran: remote sources arrive unread, as their SourceRef
    real_work = RayEngine.work

    async def spy(self: RayEngine, task: Any, admit: Any) -> Any:
        on_cluster.append(task.source)
        return await real_work(self, task, admit)

    monkeypatch.setattr(RayEngine, "work", spy)
    emu = await make_emulator(EmulatorConfig(storage="memory", rate=0, confirm_rate=0))
    results: dict[str, list[dict[str, Any]]] = {}
    for engine in ("local", "ray"):
        settings = make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                                 s3_endpoint=cluster.endpoint, source_max_bytes=1_000_000, engine=engine,
                                 out=tmp_path / f"{engine}.parquet", journal=tmp_path / f"{engine}.sqlite",
                                 dry_run=dry_run, **FAST)
        summary = await runner.run_async(settings, manifest)
        assert summary.exit_code == 0, summary.error
        results[engine] = _rows(tmp_path / f"{engine}.parquet")
    local, on_ray = results["local"], results["ray"]
    assert on_ray == local
    remote = [s for s in on_cluster if not isinstance(s, (bytes, Path))]
    assert len(remote) == 6 and all(s.scheme == "s3" for s in remote)  # read by the workers, not the driver
    by_path = {r["path"].rsplit("/", 1)[-1]: r for r in on_ray}
    assert {n: by_path[n]["reason"] for n in ("truncated.jpg", "tiny.jpg", "big.jpg", "missing.jpg",
                                                "not-there.jpg")} == {
        "truncated.jpg": "corrupt", "tiny.jpg": "too_small", "big.jpg": "source_too_large",
        "missing.jpg": "not_found", "not-there.jpg": "not_found"}
    done = "skipped" if dry_run else "uploaded"
    assert by_path["good.jpg"]["status"] == by_path["portrait.jpg"]["status"] == done
    puts = emu.counters.snapshot(arrivals=False)["put_calls"]
    passed = sum(r["status"] == "uploaded" for r in local)
    assert puts == (0 if dry_run else 2 * passed)  # an audit calls no API; each real run uploads its rows once


async def test_prepared_bytes_waiting_for_slow_uploads_stay_within_the_budget(
    cluster: MotoS3, make_emulator: MakeEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = photo_manifest(tmp_path / "p", 40, manifest=tmp_path / "m.csv", height=700)
    size = max(len((tmp_path / "p" / f"p{i}.jpg").read_bytes()) for i in range(40))
    emu = await make_emulator(EmulatorConfig(storage="hash", rate=0, confirm_rate=0, faults=Faults(latency=0.1)))
    stages: list[prepare_stage.PrepareStage] = []
    real_init = prepare_stage.PrepareStage.__init__

    def spy_init(self: prepare_stage.PrepareStage, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        stages.append(self)

    in_flight = peak_tasks = 0
    real_work = RayEngine.work

    async def counted(self: RayEngine, task: Any, admit: Any) -> Any:
        nonlocal in_flight, peak_tasks
        in_flight += 1
        peak_tasks = max(peak_tasks, in_flight)
        try:
            return await real_work(self, task, admit)
        finally:
            in_flight -= 1

    monkeypatch.setattr(prepare_stage.PrepareStage, "__init__", spy_init)
    monkeypatch.setattr(RayEngine, "work", counted)
    budget = 3 * size
    settings = make_settings(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials,
                             engine="ray", prepared_max_bytes=budget, concurrency=2, out=tmp_path / "r.parquet",
                             journal=tmp_path / "j.sqlite", **FAST)
    summary = await runner.run_async(settings, manifest)
    assert summary.exit_code == 0 and summary.by_status == {"uploaded": 40}
    (stage,) = stages
    # The uploads were the bottleneck: prepared images filled the budget, and never went past it.
    assert 2 * size <= stage.prepared.peak <= budget
    assert stage.prepared.in_use == 0
    assert peak_tasks <= 2 * 2  # twice the cluster's 2 CPUs
    assert set(emu.counters.snapshot(arrivals=False)["puts_per_key"].values()) == {1}


def test_engine_ray_without_ray_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    """Without Ray importable, ``--engine ray`` is a configuration error (exit 2) before anything is read."""
    manifest = photo_manifest(tmp_path / "p", 2, manifest=tmp_path / "m.csv")
    code = ("import sys; sys.modules['ray'] = None\n"
            "from pipeline.__main__ import script\n"
            f"sys.argv = ['thumbnail-ingest', 'ingest', {str(manifest)!r}, '--workspace', 'ws', '--engine', 'ray',"
            f" '--out', {str(tmp_path / 'r.parquet')!r}, '--journal', {str(tmp_path / 'j.sqlite')!r}]\n"
            "script()\n")
    env = {**os.environ, "NCLOUD_ACCESS_KEY": "a", "NCLOUD_SECRET_KEY": "b"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--engine ray needs Ray" in lines[0] and "pip install" in lines[0]
    assert not (tmp_path / "j.sqlite").exists() and not (tmp_path / "r.parquet").exists()


# ---- slow: a killed driver, a lost node ------------------------------------------------------------------


def _cli(emu: Emulator, manifest: Path, tmp: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "ingest", str(manifest), "--workspace", emu.workspace,
            "--endpoint", emu.base_url, "--out", str(tmp / "results.parquet"), "--journal", str(tmp / "j.sqlite"),
            "--no-progress", "--log-format", "json", "--rate", "0", "--confirm-rate", "0", "--concurrency", "8",
            "--engine", "ray", *extra]


def _driver(emu: Emulator, tmp: Path, n: int) -> tuple[list[str], dict[str, str]]:
    """The CLI command of a ray run of ``n`` photos and its environment: the emulator's key pair, and no
    ``RAY_ADDRESS``, so the driver starts (and owns) a local Ray of its own."""
    manifest = photo_manifest(tmp / "p", n, manifest=tmp / "m.csv")
    env = {**os.environ, "NCLOUD_ACCESS_KEY": emu.credentials.access_key,
           "NCLOUD_SECRET_KEY": emu.credentials.secret_key}
    env.pop("RAY_ADDRESS", None)
    return _cli(emu, manifest, tmp), env


def _exactly_once(emu: Emulator, tmp: Path, n: int) -> None:
    """Every row uploaded, each with its own key the server holds; no URL PUT twice; every object beyond the
    committed keys is an orphan the journal names."""
    rows = pq.read_table(tmp / "results.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["uploaded"] * n
    keys = [r["thumbnail_key"] for r in rows]
    assert len(set(keys)) == n and all(k in emu.objects for k in keys)
    counters = emu.counters.snapshot(arrivals=False)
    assert set(counters["puts_per_key"].values()) == {1}
    with closing(sqlite3.connect(tmp / "j.sqlite")) as db:
        orphans = {k for (k,) in db.execute("select thumbnail_key from orphans")}
    assert set(emu.objects) - set(keys) <= orphans


@pytest.mark.slow  # a real kill -9 of a driver that started its own Ray: make reliability
@pytest.mark.parametrize("emulator_thread", [EmulatorConfig(faults=Faults(latency=0.02))], indirect=True)
def test_a_driver_killed_mid_upload_then_run_again_uploads_every_row_once(
    emulator_thread: Emulator, tmp_path: Path
) -> None:
    emu, n = emulator_thread, 120
    cmd, env = _driver(emu, tmp_path, n)
    # Its own session: the driver's local Ray (raylet, workers) is cleaned up by process group after the kill.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while emu.counters.snapshot(arrivals=False)["puts_ok"] < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # the driver only
        proc.wait()
    finally:
        time.sleep(1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what the driver's Ray left behind
    puts_at_kill = emu.counters.snapshot(arrivals=False)["put_calls"]
    assert 40 <= puts_at_kill < n, "the kill must land mid-run"

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    _exactly_once(emu, tmp_path, n)
    assert emu.counters.snapshot(arrivals=False)["put_calls"] <= n + 8  # extra PUTs bounded by rows in flight


@pytest.mark.slow  # a real Ctrl-C of a driver that started its own Ray: make reliability
@pytest.mark.parametrize("emulator_thread", [EmulatorConfig(faults=Faults(latency=0.02))], indirect=True)
def test_ctrl_c_mid_upload_exits_130_and_the_rerun_uploads_the_rest_once(
    emulator_thread: Emulator, tmp_path: Path
) -> None:
    emu, n = emulator_thread, 120
    cmd, env = _driver(emu, tmp_path, n)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while (emu.counters.snapshot(arrivals=False)["puts_ok"] < 30 and proc.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.01)
    assert proc.poll() is None, "the run must still be going"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert emu.counters.snapshot(arrivals=False)["put_calls"] < n, "the stop must land mid-run"
    rows = pq.read_table(tmp_path / "results.parquet").to_pylist()  # written at the stop
    assert len(rows) == n and {r["status"] for r in rows} <= {"uploaded", "pending"}

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    _exactly_once(emu, tmp_path, n)
    assert emu.counters.snapshot(arrivals=False)["put_calls"] == n  # a signal lets rows in flight finish


@pytest.mark.slow  # a two-node cluster on one machine, a node taken away mid-run: make reliability
async def test_a_worker_node_removed_mid_run_loses_no_row_and_uploads_none_twice(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    n = 60
    manifest = photo_manifest(tmp_path / "p", n, manifest=tmp_path / "m.csv", height=900)
    emu = await make_emulator(EmulatorConfig(storage="hash", rate=0, confirm_rate=0, faults=Faults(latency=0.05)))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    try:
        base = dict(workspace=emu.workspace, endpoint=emu.base_url, credentials=emu.credentials, engine="ray",
                    ray_address=cluster.address, out=tmp_path / "results.parquet", journal=tmp_path / "j.sqlite",
                    concurrency=4, **FAST)
        # Two nodes and local paths: refused before any upload, unless every node sees the same files.
        with pytest.raises(ConfigError, match="--shared-fs"):
            await runner.run_async(make_settings(**base), manifest)
        assert emu.counters.snapshot(arrivals=False)["put_calls"] == 0

        run = asyncio.create_task(runner.run_async(make_settings(**base, shared_fs=True), manifest))
        deadline = time.monotonic() + 120
        while emu.counters.snapshot(arrivals=False)["puts_ok"] < 10 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # the emulator's counters have no event to wait on
        assert not run.done(), "the node must go while tasks run"
        await asyncio.to_thread(cluster.remove_node, worker)
        summary = await asyncio.wait_for(run, 300)
        assert summary.exit_code == 0, summary.error
        _exactly_once(emu, tmp_path, n)
        assert emu.counters.snapshot(arrivals=False)["put_calls"] == n
        uploaded = {r["source_sha256"] for r in pq.read_table(tmp_path / "results.parquet").to_pylist()}
        assert uploaded == {hashlib.sha256((tmp_path / "p" / f"p{i}.jpg").read_bytes()).hexdigest()
                            for i in range(n)}
    finally:
        ray.shutdown()
        cluster.shutdown()
