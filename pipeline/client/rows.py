"""``ApiClient.upload``: one row end to end (presign -> PUT -> confirm) with every retry rule."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType

import structlog

from pipeline.client.api import ApiClientBase
from pipeline.errors import ApiError, RequestRejectedError, UploadError
from pipeline.models import Presigned, UploadOutcome

__all__ = ["ApiClient"]

log = structlog.get_logger(__name__)

OnPresigned = Callable[[Presigned], Awaitable[None]]


class ApiClient(ApiClientBase):
    """The MI person-thumbnail client: ``presign``, ``put``, ``confirm`` and the row-level ``upload``.

    ``async with ApiClient(settings) as client`` owns one aiohttp session (pool of ``concurrency`` + 4,
    TLS verified), a presign limiter (<= ``rate`` in any sliding 1 s window, adaptive on 429) and a status
    limiter (<= ``confirm_rate`` in any sliding 60 s window). ``stats`` counts calls and retries; ``fatal``
    is the first fatal answer, after which every call raises it without touching the network.
    """

    async def __aenter__(self) -> ApiClient:
        await super().__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await super().__aexit__(exc_type, exc, tb)

    async def upload(
        self,
        file_name: str,
        data: bytes,
        content_type: str,
        *,
        confirm: bool = True,
        on_presigned: OnPresigned | None = None,
    ) -> UploadOutcome:
        """Upload one row: presign just before the PUT, PUT, then (if ``confirm``) the status call.

        Promises: per-row problems come back as an ``UploadOutcome`` (reason ``request_rejected``,
        ``presign_failed``, ``upload_failed`` or ``confirm_failed``, with a ``detail`` that never holds a
        URL query); only ``FatalApiError`` is raised. ``on_presigned`` is awaited after every successful
        presign and before its PUT (the runner journals the key there). A failed, expired or unanswered PUT
        and a ``FILE_NOT_EXIST`` verdict start a new round from a new presign -- at most
        ``settings.max_row_attempts`` rounds -- and every key given up on is listed in ``orphans``.
        """
        orphans: list[str] = []
        rounds = 0
        last_reason, last_detail = "upload_failed", "no attempt made"

        def failed(reason: str, detail: str) -> UploadOutcome:
            log.warning("upload_failed", file_name=file_name, reason=reason, detail=detail, attempts=rounds)
            return UploadOutcome(None, rounds, reason=reason, detail=detail, orphans=tuple(orphans))

        while rounds < self.settings.max_row_attempts:
            self._raise_if_fatal()
            rounds += 1
            try:
                presigned = await self.presign(file_name)
            except RequestRejectedError as exc:
                return failed("request_rejected", str(exc))
            except ApiError as exc:
                return failed("presign_failed", f"{exc} (after {self.settings.max_call_attempts} tries)")
            if on_presigned is not None:
                await on_presigned(presigned)
            key = presigned.thumbnail_key
            try:
                await self.put(presigned, data, content_type)
            except UploadError as exc:
                orphans.append(key)
                if not exc.retryable:
                    return failed("upload_failed", str(exc))
                kind = "expired" if exc.expired else "put_failed"
                last_reason, last_detail = "upload_failed", str(exc)
                if rounds < self.settings.max_row_attempts:
                    self.stats.retries[kind] += 1
                    # An expired URL needs no pause; a 5xx/SlowDown/dropped PUT backs off before the new URL.
                    delay = 0.0 if exc.expired else self._backoff(rounds)
                    log.info("retrying", call="put", kind=kind, attempt=rounds, status=exc.status,
                             code=exc.code, error=str(exc), delay=round(delay, 3))
                    await asyncio.sleep(delay)
                continue
            if not confirm:
                return UploadOutcome(key, rounds, orphans=tuple(orphans))
            try:
                check = await self.confirm(key)
            except RequestRejectedError as exc:
                orphans.append(key)
                return failed("request_rejected", str(exc))
            except ApiError as exc:
                orphans.append(key)
                return failed("confirm_failed", f"{exc} (after {self.settings.max_call_attempts} tries)")
            if check.completed:
                return UploadOutcome(key, rounds, orphans=tuple(orphans))
            orphans.append(key)
            if check.message == "FILE_NOT_EXIST":
                last_reason = "confirm_failed"
                last_detail = "upload status FAILED: FILE_NOT_EXIST after a PUT"
                if rounds < self.settings.max_row_attempts:
                    self.stats.retries["file_not_exist"] += 1
                    log.info("retrying", call="confirm", kind="file_not_exist", attempt=rounds)
                continue
            return failed("confirm_failed", f"upload status FAILED: {check.message or 'no message'}")
        return failed(last_reason, f"gave up after {rounds} presign+PUT rounds; last: {last_detail}")
