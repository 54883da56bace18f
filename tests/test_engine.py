"""The engine seam without Ray: ``runner.work`` (what every engine runs for a job), the synchronous reader a
worker uses (``fetch.reader``: the Fetcher's reasons), ``LocalEngine``'s admission of prepared bytes, and the
engine settings' one-sentence refusals."""

from __future__ import annotations

import hashlib
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from s3_fixtures import moto_s3

from pipeline.config import ApiSettings, Credentials, Settings
from pipeline.engines.engine import LocalEngine
from pipeline.engines.work import Task, work, work_apart
from pipeline.errors import ConfigError
from pipeline.fetch import Fetched, FetchRejected, FetchSettings, SourceRef
from pipeline.fetch.reader import close_reader, read_source
from pipeline.models import ImagePolicy, Prepared, Rejected
from pipeline.samples import make_jpeg

POLICY = ImagePolicy()


def test_work_prepares_hashes_and_leaves_the_bytes_behind_when_asked(tmp_path: Path) -> None:
    data = make_jpeg(tmp_path / "a.jpg", 400, 300, seed=1, quality=80)
    digest = hashlib.sha256(data).hexdigest()
    full = work(Task(tmp_path / "a.jpg", POLICY))
    assert isinstance(full.out, Prepared) and full.out.data and full.size is None and not full.fetched
    kept_back = work(Task(data, POLICY, keep_data=False))
    assert isinstance(kept_back.out, Prepared) and kept_back.out.data == b"" and kept_back.size == len(full.out.data)
    assert kept_back.out.source_sha256 == full.out.source_sha256 == digest
    unchanged = work(Task(data, POLICY, unless=digest))
    assert unchanged.out is None and unchanged.digest == digest  # the journaled content: nothing prepared
    changed = work(Task(data, POLICY, unless="0" * 64))
    assert isinstance(changed.out, Prepared) and changed.digest == digest
    assert work(Task(data, POLICY, digest_only=True)).out is None
    head, body = work_apart(Task(data, POLICY))
    assert isinstance(head.out, Prepared) and head.out.data == b"" and body == full.out.data
    assert head.size == len(body)
    rejected, nothing = work_apart(Task(b"not an image", POLICY))
    assert isinstance(rejected.out, Rejected) and nothing == b"" and rejected.size is None


def test_a_worker_reads_s3_with_the_fetchers_reasons() -> None:
    good = make_jpeg(None, 500, 400, seed=3, quality=80)
    with moto_s3() as s3:
        s3.put("w/good.jpg", good)
        s3.put("w/big.jpg", b"x" * 60_000)
        settings = FetchSettings(s3_endpoint=s3.endpoint, source_max_bytes=50_000, fetch_retries=0)
        got = read_source(SourceRef("s3", s3.bucket, "w/good.jpg"), settings)
        assert isinstance(got, Fetched) and got.data == good and got.stamp.value is not None
        assert got.stamp.value.startswith("etag:")
        missing = read_source(SourceRef("s3", s3.bucket, "w/none.jpg"), settings)
        big = read_source(SourceRef("s3", s3.bucket, "w/big.jpg"), settings)
        odd = read_source(SourceRef("s3", s3.bucket, "w//odd.jpg"), settings)
        assert isinstance(missing, FetchRejected) and missing.reason == "not_found"
        assert isinstance(big, FetchRejected) and big.reason == "source_too_large"
        assert isinstance(odd, FetchRejected) and odd.reason == "unsupported_source"
        # The same task through ``work``: the stamp comes back with the prepared image, a refusal alone.
        done = work(Task(SourceRef("s3", s3.bucket, "w/good.jpg"), POLICY, settings))
        assert done.fetched and done.stamp == got.stamp.value and isinstance(done.out, Prepared)
        refused = work(Task(SourceRef("s3", s3.bucket, "w/none.jpg"), POLICY, settings))
        assert refused.out is None and refused.refused == missing
        close_reader()


async def test_the_local_engine_admits_prepared_bytes_before_handing_them_back(tmp_path: Path) -> None:
    data = make_jpeg(None, 400, 300, seed=2, quality=80)
    admitted: list[int] = []

    async def admit(size: int) -> None:
        admitted.append(size)

    with ThreadPoolExecutor(1) as pool:
        engine = LocalEngine(pool, 4)
        assert engine.slots == 4 and not engine.fetches
        out = await engine.work(Task(data, POLICY), admit)
        assert isinstance(out.out, Prepared) and admitted == [len(out.out.data)]
        await engine.work(Task(data, POLICY, keep_data=False), admit)  # an audit's image is not held
        await engine.work(Task(b"junk", POLICY), admit)  # nor is a rejection
        assert len(admitted) == 1


def _settings(**kw: object) -> Settings:
    return Settings(api=ApiSettings(workspace="ws", credentials=Credentials("a", "b")), **kw)  # type: ignore[arg-type]


def test_engine_settings_are_refused_in_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="--engine must be local or ray; got 'spark'"):
        _settings(engine="spark")
    with pytest.raises(ConfigError, match="--ray-address and --shared-fs are for --engine ray"):
        _settings(ray_address="auto")
    with pytest.raises(ConfigError, match="are for --engine ray"):
        _settings(shared_fs=True)
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray hidden: as if not installed
    with pytest.raises(ConfigError, match=r"--engine ray needs Ray: install it with pip install") as info:
        _settings(engine="ray")
    assert "\n" not in str(info.value)
