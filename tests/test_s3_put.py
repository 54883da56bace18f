"""ApiClient.put against a real S3 implementation: moto's server on loopback, URL presigned by boto3 (SigV4).

moto checks the request's shape (a raw body with its Content-Length, the path as signed) and stores what it
got; it does not verify presigned signatures, so the signature rules are covered by the emulator's tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config  # type: ignore[import-untyped]
from helpers import make_image
from moto.server import ThreadedMotoServer

from pipeline.client import ApiClient
from pipeline.config import ApiSettings, Credentials
from pipeline.models import Presigned

BUCKET = "thumbnails"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    """moto on 127.0.0.1 (free port) and a boto3 client with dummy credentials; no internet involved."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        client.create_bucket(Bucket=BUCKET)
        yield endpoint, client
    finally:
        server.stop()


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
