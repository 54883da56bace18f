"""Object stores (``s3://``, ``gs://``) read through obstore: one store per bucket, reused for the run.

Credentials come the way each ecosystem expects, read by obstore itself: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` (or
``--s3-endpoint``, which wins); ``AWS_PROFILE`` with ``~/.aws/credentials`` is read here (obstore does not);
Google application default credentials for ``gs://`` (``GOOGLE_BASE_URL`` and ``GOOGLE_BEARER_TOKEN`` point
it at an emulator, as in the tests). obstore's own retries are off: the ``Fetcher``
retries every transport the same way (obstore does not retry 429 or a body cut off mid-stream).
Errors are turned into ``Failure`` from their status and S3 error code only: obstore's messages hold
URLs and response bodies, which never reach a detail.
"""

from __future__ import annotations

import configparser
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import obstore
from obstore.store import GCSStore, S3Store

from pipeline.fetch.attempt import Claim, Failure, Sink, status_failure, too_large
from pipeline.fetch.outcomes import SourceStamp
from pipeline.fetch.refs import SourceRef
from pipeline.fetch.settings import FetchSettings

__all__ = ["ObjectStores", "key_problem", "profile_credentials", "s3_endpoint", "unreadable"]

_STATUS = re.compile(r"status code: (\d{3})")
_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
_CHUNK = 1 << 20


def s3_endpoint(settings: FetchSettings) -> str | None:
    """The S3 endpoint in force: ``--s3-endpoint``, else ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, else AWS."""
    return settings.s3_endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def profile_credentials() -> dict[str, str]:
    """Keys of ``AWS_PROFILE`` (default ``default``) from the shared credentials file, when the environment
    holds no access key; ``{}`` otherwise. The region comes from ``~/.aws/config`` when not in the env."""
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return {}
    profile = os.environ.get("AWS_PROFILE", "default")
    home = Path.home() / ".aws"
    found: dict[str, str] = {}
    creds = configparser.ConfigParser()
    creds.read(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", home / "credentials"))
    if creds.has_section(profile):
        section = creds[profile]
        for ours, theirs in (("access_key_id", "aws_access_key_id"), ("secret_access_key", "aws_secret_access_key"),
                             ("session_token", "aws_session_token")):
            if section.get(theirs):
                found[ours] = section[theirs]
    if found and not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        config = configparser.ConfigParser()
        config.read(os.environ.get("AWS_CONFIG_FILE", home / "config"))
        name = profile if profile == "default" else f"profile {profile}"
        if config.has_section(name) and config[name].get("region"):
            found["region"] = config[name]["region"]
    return found


def key_problem(key: str) -> str | None:
    """Why obstore cannot read the object ``key`` as written, as a sentence's end; ``None`` when it can.

    obstore's paths are ``/``-separated segments: it refuses an empty segment (``//``), a ``.`` or ``..``
    segment and a control character, and silently drops a leading or trailing ``/`` (it would read another
    object). Such keys are legal in S3 and GCS, so they are refused here by name, before any request.
    """
    if key.startswith("/"):
        return "key starting with '/' cannot be read by this client (it would read the key without it)"
    if key.endswith("/"):
        return "key ending with '/' cannot be read by this client (it would read the key without it)"
    if "//" in key:
        return "key with '//' cannot be read by this client"
    segments = key.split("/")
    for dots in (".", ".."):
        if dots in segments:
            return f"key with a '{dots}' segment cannot be read by this client"
    control = next((c for c in key if ord(c) < 32 or ord(c) == 127), None)
    if control is not None:
        return f"key with a control character ({control!r}) cannot be read by this client"
    return None


def unreadable(ref: SourceRef) -> Failure | None:
    """The ``unsupported_source`` failure of an object whose key obstore cannot read (``key_problem``)."""
    problem = key_problem(ref.key)
    if problem is None:
        return None
    store = "S3" if ref.scheme == "s3" else "GCS"
    return Failure("unsupported_source", f"{ref.display}: {store} {problem}")


def _failure(exc: Exception, where: str) -> Failure:
    text = str(exc)
    status = _STATUS.search(text)
    code = _CODE.search(text)
    if status is not None:
        return status_failure(int(status.group(1)), code.group(1) if code else None, where)
    if isinstance(exc, (FileNotFoundError, obstore.exceptions.NotFoundError)):
        return status_failure(404, code.group(1) if code else None, where)
    if isinstance(exc, (PermissionError, obstore.exceptions.PermissionDeniedError,
                        obstore.exceptions.UnauthenticatedError)):
        return Failure("access_denied", f"{where}: access denied", refusal=type(exc).__name__)
    # No HTTP answer: refused, reset or cut off mid-body, or a credential lookup failing. Name the class only.
    return Failure("fetch_failed", f"{where}: no complete answer ({type(exc).__name__})", retryable=True)


def _stamp(meta: Any) -> SourceStamp:
    size = int(meta["size"])
    if meta.get("e_tag"):
        return SourceStamp(f"etag:{meta['e_tag']}", size)
    return SourceStamp(f"lm:{meta['last_modified'].isoformat()}:{size}", size)


class ObjectStores:
    """The obstore clients of one run, one per ``scheme://bucket``, created on first use."""

    def __init__(self, settings: FetchSettings) -> None:
        self._settings = settings
        self._stores: dict[str, S3Store | GCSStore] = {}

    def _store(self, ref: SourceRef) -> S3Store | GCSStore:
        store = self._stores.get(ref.store)
        if store is not None:
            return store
        timeout = timedelta(seconds=self._settings.fetch_timeout)
        retry: Any = {"max_retries": 0, "retry_timeout": timeout}
        connect = timedelta(seconds=min(10.0, self._settings.fetch_timeout))
        client: Any = {"timeout": timeout, "connect_timeout": connect}
        if ref.scheme == "s3":
            config: Any = dict(profile_credentials())
            endpoint = s3_endpoint(self._settings)
            if endpoint:
                config["endpoint"] = endpoint
                # An explicit http:// endpoint is the user's choice (a local server); https stays verified.
                client["allow_http"] = endpoint.startswith("http://")
            store = S3Store(ref.bucket, config=config, client_options=client, retry_config=retry)
        else:
            # obstore reads GOOGLE_BASE_URL itself (a GCS emulator's endpoint) but refuses http:// unless told:
            # an explicit http:// endpoint is the user's choice (a local server), as for S3.
            client["allow_http"] = os.environ.get("GOOGLE_BASE_URL", "").startswith("http://")
            store = GCSStore(ref.bucket, client_options=client, retry_config=retry)
        self._stores[ref.store] = store
        return store

    async def head(self, ref: SourceRef) -> SourceStamp | Failure:
        """The object's stamp from a HEAD request."""
        if (refused := unreadable(ref)) is not None:
            return refused
        try:
            meta = await obstore.head_async(self._store(ref), ref.key)
        except Exception as exc:  # obstore raises its own classes and builtins; all become a Failure
            return _failure(exc, ref.display)
        return _stamp(meta)

    async def stream(self, ref: SourceRef, sink: Sink, claim: Claim, max_bytes: int) -> SourceStamp | Failure:
        """Hand the object's bytes to ``sink`` in order and answer its stamp. Its size (from the response
        head) is checked against ``max_bytes`` before the body is read, and the body is read only once
        ``claim`` holds that many bytes (the caller gives them back or hands them on)."""
        if (refused := unreadable(ref)) is not None:
            return refused
        try:
            result = await obstore.get_async(self._store(ref), ref.key)
            stamp = _stamp(result.meta)
            size = stamp.size or 0
            if size > max_bytes:
                return too_large(ref.display, max_bytes, size)
            await claim.take(size)
            received = 0
            async for chunk in result.stream(min_chunk_size=_CHUNK):
                received += len(chunk)
                if received > max_bytes:
                    return too_large(ref.display, max_bytes, None)
                sink(chunk)
        except Exception as exc:  # as above: every obstore error becomes a Failure
            return _failure(exc, ref.display)
        if received != size:
            return Failure("fetch_failed", f"{ref.display}: {received} of {size} bytes arrived", retryable=True)
        return stamp
