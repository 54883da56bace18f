"""``ApiClient``: preflight, the confirm rule (ask again while not final), and ``upload``, one row end to end
(presign -> PUT -> confirm) with every retry rule."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType

import aiohttp
import structlog

from pipeline.client.calls import ApiClientBase
from pipeline.client.retry import SILENT_STRIKES
from pipeline.client.stopping import RowInterrupted, until
from pipeline.client.storage import UnansweredPutError
from pipeline.client.transport import ClientState, PresignIncompleteError, map_network_error
from pipeline.errors import ApiError, FatalApiError, RequestRejectedError, UploadError
from pipeline.models import Presigned, UploadCheck, UploadOutcome

__all__ = ["FINAL_STATUSES", "ApiClient"]

log = structlog.get_logger(__name__)

OnPresigned = Callable[[Presigned], Awaitable[None]]

FINAL_STATUSES = ("COMPLETED", "FAILED")
"""Upload statuses that are a verdict; any other (``IN_PROGRESS``, ...) means "ask again later"."""


class ApiClient(ApiClientBase):
    """The MI person-thumbnail client: ``preflight``, ``presign``, ``put``, ``confirm`` and ``upload``.

    ``async with ApiClient(settings) as client`` owns one aiohttp session (pool of ``concurrency`` + 4,
    TLS verified), a presign limiter (<= ``rate`` in any sliding 1 s window, evenly paced, adaptive on
    429) and a status limiter (<= ``confirm_rate`` in any sliding 60 s window, unpaced). ``stats`` counts
    calls and retries; ``fatal`` is the first fatal answer, after which every call raises it without I/O.
    """

    async def __aenter__(self) -> ApiClient:
        await super().__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await super().__aexit__(exc_type, exc, tb)

    async def preflight(self) -> None:
        """Prove the endpoint answers before any upload: one unsigned GET of the presign path.

        Any HTTP answer but a redirect proves DNS, TCP and TLS (a gateway answers 401/404/405 to it; no
        quota is used). Raises ``EndpointUnreachableError`` -- one sentence naming the host -- on connection
        refused, a DNS or TLS failure, a redirect, or no answer in ``SILENT_STRIKES`` tries.
        """
        self._raise_if_fatal()
        for _ in range(SILENT_STRIKES):
            try:
                status, location = await until(self._halt.now, self._probe())
            except RowInterrupted:
                return  # the run was interrupted: it uploads nothing, so there is nothing left to prove
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                error = map_network_error(exc, "preflight", self._presign_url, answered=False)
                if isinstance(error, FatalApiError):
                    raise self._set_fatal(error, "preflight") from None
                continue
            self._check_redirect("preflight", status, location)
            if self.state is ClientState.SILENT:
                self.state = ClientState.ANSWERED
            return
        raise self._set_fatal(self._budget.silence_error(), "preflight")

    async def _probe(self) -> tuple[int, str]:
        """One unsigned GET of the presign path: its status and Location."""
        async with self.session.get(self._presign_url, allow_redirects=False, timeout=self._api_timeout) as resp:
            await resp.read()
            return resp.status, resp.headers.get("Location", "")

    async def confirm(self, thumbnail_key: str) -> UploadCheck:
        """The upload's verdict: ``completed`` for ``COMPLETED``; else ``message`` is ``uploadMessage``
        (``FILE_NOT_EXIST``, ``OVER_SIZE_LIMIT``, ...), or the last status itself when it never became
        final within ``settings.confirm_wait`` (see ``settle``). Same exceptions as ``presign``."""
        status, message = await self.settle(thumbnail_key)
        if status in FINAL_STATUSES:
            return UploadCheck(completed=status == "COMPLETED", message=message)
        return UploadCheck(completed=False, message=status or "NO_STATUS")

    async def settle(self, thumbnail_key: str) -> tuple[str, str | None]:
        """``(status, uploadMessage)`` once the status is final (``COMPLETED``/``FAILED``). A status that is
        not final yet (``IN_PROGRESS``, ...) is asked again -- each time under the status limiter, after a
        growing pause -- for up to ``settings.confirm_wait`` seconds; then the last one is returned."""
        started, asks = self.clock(), 0
        while True:
            status, message = await self.status(thumbnail_key)
            asks += 1
            waited = self.clock() - started
            if status in FINAL_STATUSES or waited >= self.settings.confirm_wait:
                return status, message
            self.stats.retries["in_progress"] += 1
            delay = min(self.settings.backoff_base * 2 ** min(asks, 30), self.settings.backoff_max,
                        self.settings.confirm_wait - waited)
            log.debug("status_not_final", key=thumbnail_key, status=status, asks=asks, delay=round(delay, 3))
            await self._wait(delay)

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
        secret, a signature or a URL query); only ``FatalApiError`` and ``RowInterrupted`` are raised.
        ``on_presigned`` is awaited after every successful presign and before its PUT (the runner journals
        the key there). A failed, expired or unanswered PUT, a presign answer without a url, and a
        ``FILE_NOT_EXIST`` verdict start a new round -- at most ``settings.max_row_attempts`` rounds -- and
        every key given up on (including one that came without its url) is listed in ``orphans``. A PUT that
        got no answer after it may have been sent (a timeout, a broken connection) is followed by the key's
        status call whatever ``confirm`` says: ``COMPLETED`` means it landed, and the row is done with that
        key (no second copy).

        After ``halt()``: ``RowInterrupted`` at once while the row holds no key (before or during a presign,
        its retries, a 429 pause, a backoff between rounds; a key presigned just then is never used), and
        after ``settings.stop_grace`` seconds while it holds one (its PUT or status calls under way).
        """
        row = _Row(file_name, self.redactor.text)
        while row.rounds < self.settings.max_row_attempts:
            self._raise_if_fatal()
            self._halt.check()
            row.rounds += 1
            done = await self._round(row, data, content_type, confirm=confirm, on_presigned=on_presigned)
            if done is not None:
                return done
        return row.failed(row.last[0], f"gave up after {row.rounds} presign+PUT rounds; last: {row.last[1]}")

    async def _round(self, row: _Row, data: bytes, content_type: str, *, confirm: bool,
                     on_presigned: OnPresigned | None) -> UploadOutcome | None:
        """One presign -> PUT -> status round: the row's outcome, or ``None`` for a new round (``row.last``
        says why)."""
        halt = self._halt
        try:
            presigned = await until(halt.now, self.presign(row.file_name))
        except RequestRejectedError as exc:
            return row.failed("request_rejected", str(exc))
        except PresignIncompleteError as exc:
            if exc.thumbnail_key is not None:
                row.orphans.append(exc.thumbnail_key)
            row.last = ("presign_failed", str(exc))
            self.stats.retries["transient"] += 1
            await until(halt.now, self._wait(self._backoff(row.rounds)))
            return None
        except ApiError as exc:
            return row.failed("presign_failed", str(exc))
        halt.check()  # answered as the run stopped: the key is never used, so nothing can be stored
        if on_presigned is not None:
            await on_presigned(presigned)
        unanswered: UnansweredPutError | None = None
        try:
            await until(halt.late, self.put(presigned, data, content_type))
        except UnansweredPutError as exc:
            unanswered = exc  # it may have landed: asked below before any new round
            log.info("put_unanswered", attempt=row.rounds, error=str(exc))
        except UploadError as exc:
            row.orphans.append(presigned.thumbnail_key)
            if not exc.retryable:
                return row.failed("upload_failed", str(exc))
            row.last = ("upload_failed", str(exc))
            await self._before_new_round(row.rounds, exc)
            return None
        if unanswered is None and not confirm:
            return row.done(presigned.thumbnail_key)
        return await self._verdict(row, presigned.thumbnail_key, unanswered)

    async def _verdict(self, row: _Row, key: str, unanswered: UnansweredPutError | None) -> UploadOutcome | None:
        """The status call after a PUT (or a PUT that got no answer): done when ``COMPLETED``; a new round
        (``None``) on ``FILE_NOT_EXIST``; else the row fails."""
        try:
            status, message = await until(self._halt.late, self.settle(key))
        except ApiError as exc:
            row.orphans.append(key)
            if unanswered is not None:
                return row.failed("upload_failed", f"{unanswered}; its upload status could not be asked: {exc}")
            return row.failed("confirm_failed", str(exc))
        if status == "COMPLETED":
            if unanswered is not None:
                log.info("put_landed", attempt=row.rounds)  # no second round, so no second copy
            return row.done(key)
        row.orphans.append(key)
        if status not in FINAL_STATUSES:
            wait = self.settings.confirm_wait
            return row.failed("confirm_failed", f"upload status still {status or 'empty'} after {wait:g} s of asking")
        if message != "FILE_NOT_EXIST":
            return row.failed("confirm_failed", f"upload status FAILED: {message or 'no message'}")
        if unanswered is not None:
            row.last = ("upload_failed", str(unanswered))  # it did not land: a new round
            await self._before_new_round(row.rounds, unanswered)
            return None
        row.last = ("confirm_failed", "upload status FAILED: FILE_NOT_EXIST after a PUT")
        if row.rounds < self.settings.max_row_attempts:
            self.stats.retries["file_not_exist"] += 1
            log.info("retrying", call="confirm", kind="file_not_exist", attempt=row.rounds)
        return None

    async def _before_new_round(self, rounds: int, exc: UploadError) -> None:
        """After a failed PUT: count the retry and pause before the next presign (an expired URL needs no
        pause; a 5xx/SlowDown/dropped PUT backs off). Ends at once when the run is interrupted."""
        if rounds >= self.settings.max_row_attempts:
            return
        kind = "expired" if exc.expired else "put_failed"
        self.stats.retries[kind] += 1
        delay = 0.0 if exc.expired else self._backoff(rounds)
        log.info("retrying", call="put", kind=kind, attempt=rounds, status=exc.status, code=exc.code,
                 error=str(exc), delay=round(delay, 3))
        await until(self._halt.now, self._wait(delay))


class _Row:
    """One row's upload across its rounds: the keys given up on (``orphans``), the rounds made, and why the
    last round ended (``last``: the reason and detail if no round succeeds)."""

    def __init__(self, file_name: str, redact: Callable[[str], str]) -> None:
        self.file_name = file_name
        self.redact = redact
        self.orphans: list[str] = []
        self.rounds = 0
        self.last = ("upload_failed", "no attempt made")

    def done(self, key: str) -> UploadOutcome:
        return UploadOutcome(key, self.rounds, orphans=tuple(self.orphans))

    def failed(self, reason: str, detail: str) -> UploadOutcome:
        detail = self.redact(detail)  # never a secret, a signature or a URL query
        log.debug("upload_failed", file_name=self.file_name, reason=reason, detail=detail, attempts=self.rounds)
        return UploadOutcome(None, self.rounds, reason=reason, detail=detail, orphans=tuple(self.orphans))
