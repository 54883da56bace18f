"""The fetch stage against a real S3 server (moto's server mode on loopback), faults injected by a proxy."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import moto.settings
import pytest
from s3_fixtures import FaultyProxy, MotoS3, moto_s3
from structlog.testing import capture_logs

from pipeline.errors import FatalApiError
from pipeline.fetch import (
    Fetched,
    Fetcher,
    FetchRejected,
    FetchSettings,
    SourceAccessError,
    SourceRef,
    SourceStamp,
    parse_source,
)
from pipeline.fetch.stores import profile_credentials


async def _no_wait(_: float) -> None:
    """Backoff without waiting: tests count retries, they do not time them."""


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with moto_s3() as server:
        yield server


@pytest.fixture
def settings(s3: MotoS3) -> FetchSettings:
    return FetchSettings(s3_endpoint=s3.endpoint, fetch_timeout=30.0)


@pytest.fixture
async def fetcher(settings: FetchSettings) -> AsyncIterator[Fetcher]:
    async with Fetcher(settings, sleep=_no_wait) as f:
        yield f


def _ref(s3: MotoS3, key: str) -> SourceRef:
    ref = parse_source(f"s3://{s3.bucket}/{key}", base=None, root=None)
    assert isinstance(ref, SourceRef)
    return ref


def _blob(n: int, seed: int) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (n // 32) + b"x" * (n % 32)


async def test_objects_arrive_byte_identical_with_their_etag(s3: MotoS3, fetcher: Fetcher) -> None:
    keys = {"a/one.jpg": _blob(1, 1), "a/two words+plus.jpg": _blob(300_000, 2), "b/ünï.png": _blob(3_000_001, 3)}
    for key, data in keys.items():
        s3.put(key, data)
    for key, data in keys.items():
        got = await fetcher.fetch(_ref(s3, key))
        assert isinstance(got, Fetched)
        assert got.data == data and got.size == len(data)
        etag = s3.client.head_object(Bucket=s3.bucket, Key=key)["ETag"]
        assert got.stamp == SourceStamp(f"etag:{etag}", len(data))
        assert await fetcher.stat(_ref(s3, key)) == got.stamp  # HEAD and GET agree: resume can compare
    assert fetcher.stats.fetched == 3 and fetcher.stats.retries == 0


async def test_missing_key_is_not_found_and_never_fatal(s3: MotoS3, fetcher: Fetcher) -> None:
    s3.put("present.jpg", b"x")
    assert isinstance(await fetcher.fetch(_ref(s3, "present.jpg")), Fetched)
    for n in range(10):  # far past the fatal threshold: missing keys are row data
        got = await fetcher.fetch(_ref(s3, f"missing-{n}.jpg"))
        assert isinstance(got, FetchRejected) and got.reason == "not_found"
        assert "404" in got.detail and f"missing-{n}.jpg" in got.detail
    assert isinstance(await fetcher.stat(_ref(s3, "missing-0.jpg")), FetchRejected)


async def test_too_large_object_is_refused_from_its_size(s3: MotoS3, settings: FetchSettings) -> None:
    s3.put("big.bin", _blob(2_000_000, 4))
    small = FetchSettings(s3_endpoint=settings.s3_endpoint, source_max_bytes=1_000_000)
    async with Fetcher(small) as fetcher:
        got = await fetcher.fetch(_ref(s3, "big.bin"))
        assert isinstance(got, FetchRejected) and got.reason == "source_too_large"
        assert "2.0 MB" in got.detail
        assert fetcher.budget.peak == 0  # never reserved, so never read


async def test_unknown_bucket_stops_the_run_after_a_handful_of_requests(s3: MotoS3, fetcher: Fetcher) -> None:
    stopped = 0
    for n in range(50):
        ref = parse_source(f"s3://no-such-bucket/k{n}.jpg", base=None, root=None)
        assert isinstance(ref, SourceRef)
        try:
            got = await fetcher.fetch(ref)
        except SourceAccessError as exc:
            assert isinstance(exc, FatalApiError)
            assert "s3://no-such-bucket" in str(exc) and "NoSuchBucket" in str(exc)
            stopped += 1
        else:
            assert isinstance(got, FetchRejected) and got.reason == "not_found"
    assert fetcher.stats.requests == fetcher.settings.fatal_after  # later rows raise without a request
    assert stopped == 50 - fetcher.settings.fatal_after + 1


async def test_wrong_credentials_stop_early_and_never_leak(
    s3: MotoS3, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put("guarded.jpg", b"x")
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto now checks every signature
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    raised: SourceAccessError | None = None
    denied = []
    for _ in range(20):
        try:
            got = await fetcher.fetch(_ref(s3, "guarded.jpg"))
        except SourceAccessError as exc:
            raised = exc
            break
        assert isinstance(got, FetchRejected) and got.reason == "access_denied"
        denied.append(got.detail)
    assert raised is not None and len(denied) == fetcher.settings.fatal_after - 1
    assert "403" in str(raised)
    assert all("wrong-secret-value" not in text and "testing" not in text for text in [*denied, str(raised)])


async def test_keys_from_an_aws_profile_file(s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = nope\n\n[archive]\n"
                                          "aws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n")
    (tmp_path / "config").write_text("[profile archive]\nregion = kr-standard\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                 "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_PROFILE", "archive")
    assert profile_credentials() == {"access_key_id": "AKIDPROFILE", "secret_access_key": "profile-secret",
                                     "region": "kr-standard"}
    s3.put("profiled.jpg", b"via the profile")
    with capture_logs() as logs:
        async with Fetcher(FetchSettings(s3_endpoint=s3.endpoint)) as fetcher:
            got = await fetcher.fetch(_ref(s3, "profiled.jpg"))
    assert isinstance(got, Fetched) and got.data == b"via the profile"
    assert "profile-secret" not in repr(logs)


@pytest.mark.parametrize("mode", ["503", "429", "drop", "cut"])
async def test_injected_faults_are_retried_and_recovered(s3: MotoS3, mode: str) -> None:
    objects = {f"flaky/{mode}-{n}.jpg": _blob(200_000 + n, n) for n in range(4)}
    for key, data in objects.items():
        s3.put(key, data)
    async with FaultyProxy(s3.endpoint, mode, failures=2) as proxy:
        settings = FetchSettings(s3_endpoint=proxy.endpoint, fetch_retries=3)
        with capture_logs() as logs:
            async with Fetcher(settings, sleep=_no_wait) as fetcher:
                for key, data in objects.items():
                    got = await fetcher.fetch(_ref(s3, key))
                    assert isinstance(got, Fetched), got
                    assert got.data == data
        assert all(proxy.seen[f"/{s3.bucket}/{key}"] == 3 for key in objects)  # 2 failures, then success
        assert fetcher.stats.retries == 2 * len(objects)
    retries = [e for e in logs if e["event"] == "fetch_retry"]
    assert len(retries) == 2 * len(objects) and all(e["source"].startswith("s3://") for e in retries)


async def test_faults_past_the_retries_are_fetch_failed_with_the_status(s3: MotoS3) -> None:
    s3.put("down.jpg", b"x" * 1000)
    async with FaultyProxy(s3.endpoint, "503", failures=100) as proxy:
        async with Fetcher(FetchSettings(s3_endpoint=proxy.endpoint, fetch_retries=2), sleep=_no_wait) as fetcher:
            got = await fetcher.fetch(_ref(s3, "down.jpg"))
        assert isinstance(got, FetchRejected) and got.reason == "fetch_failed"
        assert "HTTP 503" in got.detail and "3 attempts" in got.detail
        assert proxy.seen[f"/{s3.bucket}/down.jpg"] == 3


async def test_relative_paths_under_a_remote_root(s3: MotoS3, fetcher: Fetcher) -> None:
    s3.put("archive/2024/p.jpg", b"inside")
    s3.put("secret/p.jpg", b"outside")
    root = f"s3://{s3.bucket}/archive/"
    ref = parse_source("2024/p.jpg", base=None, root=root)
    assert isinstance(ref, SourceRef)
    got = await fetcher.fetch(ref)
    assert isinstance(got, Fetched) and got.data == b"inside"
    escaped = parse_source("../secret/p.jpg", base=None, root=root)
    assert not isinstance(escaped, SourceRef) and escaped.reason == "outside_root"
