"""ApiClient.put against a real S3 implementation: moto's server on loopback, URL presigned by boto3 (SigV4).

moto checks the request's shape (a raw body with its Content-Length, the path as signed) and stores what it
got; it does not verify presigned signatures, so the signature rules are covered by the emulator's tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from helpers import make_image
from s3_fixtures import BUCKET, moto_s3

from pipeline.client import ApiClient
from pipeline.config import ApiSettings, Credentials
from pipeline.models import Presigned


@pytest.fixture
def s3() -> Iterator[tuple[str, object]]:
    """moto on 127.0.0.1 (free port) and a boto3 client with dummy credentials; no internet involved."""
    with moto_s3() as server:
        yield server.endpoint, server.client


async def test_put_through_a_real_s3_presigned_url(s3: tuple[str, object]) -> None:
    endpoint, client = s3
    key = "persons/thumbnails/a b+c.jpg"  # characters S3 percent-encodes: the URL must go out unchanged
    url = client.generate_presigned_url(  # type: ignore[attr-defined]
        "put_object", Params={"Bucket": BUCKET, "Key": key, "ContentType": "image/jpeg"}, ExpiresIn=900
    )
    assert "content-type" in url.lower()  # ContentType is a signed header: sending another would fail
    data = make_image(320, 300)
    settings = ApiSettings(workspace="ws", credentials=Credentials("AK", "SK"), endpoint=endpoint)
    async with ApiClient(settings) as api:
        await api.put(Presigned(key, url, time.time() + 900), data, "image/jpeg")
    stored = client.get_object(Bucket=BUCKET, Key=key)  # type: ignore[attr-defined]
    assert stored["Body"].read() == data
    assert stored["ContentType"] == "image/jpeg"
    assert api.stats.put_calls == 1
