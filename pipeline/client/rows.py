"""``ApiClient``: preflight, the confirm rule (ask again while not final), and ``upload``, one row end to end
(presign -> PUT -> confirm). Each loop is a ``pacing.Retrier``; this module only says what an outcome means
(``_judge_probe``, ``_judge_round``, ``settle``'s judge)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import aiohttp
import structlog

from pipeline.client.calls import ApiClientBase
from pipeline.client.limiter import Clock, Sleep
from pipeline.client.retry import SILENT_STRIKES
from pipeline.client.settings import ApiSettings
from pipeline.client.stopping import RowInterrupted, until
from pipeline.client.storage import UnansweredPutError
from pipeline.client.transport import ClientState, PresignIncompleteError, map_network_error
from pipeline.errors import ApiError, FatalApiError, RequestRejectedError, UploadError
from pipeline.models import Presigned, UploadCheck, UploadOutcome
from pipeline.pacing import Policy, Retrier, Try, Verdict, fatal, give_up, retry

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

    def __init__(self, settings: ApiSettings, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(settings, clock=clock, sleep=sleep)
        base, cap = settings.backoff_base, settings.backoff_max
        # A row's rounds: at most max_row_attempts; the pause between two ends at once when the run stops.
        self._rounds = Retrier(Policy(base, cap, tries=settings.max_row_attempts), clock=clock,
                               sleep=self._between_rounds, on_fatal=self._stop_run)
        # A status asked again while not final, for up to confirm_wait (the last ask at its end).
        self._polls = Retrier(Policy(base, cap, window=settings.confirm_wait), clock=clock, sleep=self._wait)
        # Preflight's probes: SILENT_STRIKES of them, the next at once after a silent one.
        self._probes = Retrier(Policy(base, cap, tries=SILENT_STRIKES), clock=clock, sleep=self._wait,
                               on_fatal=self._stop_run)

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
        try:
            status, location = await self._probes.call(lambda: until(self._halt.now, self._probe()),
                                                       self._judge_probe)
        except RowInterrupted:
            return  # the run was interrupted: it uploads nothing, so there is nothing left to prove
        self._check_redirect("preflight", status, location)
        if self.state is ClientState.SILENT:
            self.state = ClientState.ANSWERED

    def _judge_probe(self, exc: Exception, attempt: Try) -> Verdict:
        """A probe without an answer: refused, DNS and TLS are fatal (``map_network_error``), and so is silence
        on the last try; a timeout or a drop is tried again at once. Anything else is raised as it is."""
        if not isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError)):
            return give_up()
        error = map_network_error(exc, "preflight", self._presign_url, answered=False)
        if isinstance(error, FatalApiError):
            return fatal(error)
        return fatal(self._calls.silence_error()) if attempt.last else retry(0.0)

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
        not final yet (``IN_PROGRESS``, ...) is asked again -- each time under the status limiter, after the
        retrier's pause (full jitter, growing, never past the window) -- for up to ``settings.confirm_wait``
        seconds, the last ask at its end; then the last status is returned."""

        async def ask() -> tuple[str, str | None]:
            status, message = await self.status(thumbnail_key)
            if status not in FINAL_STATUSES:
                raise _NotFinal(status, message)
            return status, message

        def judge(exc: Exception, attempt: Try) -> Verdict:
            if not isinstance(exc, _NotFinal) or attempt.last:
                return give_up()
            self.stats.retries["in_progress"] += 1
            delay = attempt.pause()
            log.debug("status_not_final", key=thumbnail_key, status=exc.status, asks=attempt.number,
                      delay=round(delay, 3))
            return retry(delay)

        try:
            return await self._polls.call(ask, judge)
        except _NotFinal as last:
            return last.status, last.message

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

        async def one_round() -> UploadOutcome:
            self._raise_if_fatal()
            self._halt.check()
            row.rounds += 1
            return await self._round(row, data, content_type, confirm=confirm, on_presigned=on_presigned)

        try:
            return await self._rounds.call(one_round, self._judge_round)
        except _NewRound as last:  # the rounds are spent
            return row.failed(last.reason, f"gave up after {row.rounds} presign+PUT rounds; last: {last.detail}")

    def _judge_round(self, exc: Exception, attempt: Try) -> Verdict:
        """A round that ended without the row's outcome (``_NewRound``) starts another -- counted, logged when
        it says so, after the backoff unless it needs none -- unless it was the last; a fatal error stops the
        run; anything else (``RowInterrupted``, a bug) is raised as it is."""
        if isinstance(exc, FatalApiError):
            return fatal()
        if not isinstance(exc, _NewRound) or attempt.last:
            return give_up()
        self.stats.retries[exc.kind] += 1
        delay = attempt.pause() if exc.backs_off else 0.0
        if exc.event is not None:
            log.info("retrying", **exc.event, kind=exc.kind, attempt=attempt.number, delay=round(delay, 3))
        return retry(delay)

    async def _between_rounds(self, seconds: float) -> None:
        """The pause before a new round, ended at once when the run is interrupted (the row holds no key)."""
        await until(self._halt.now, self._wait(seconds))

    async def _round(self, row: _Row, data: bytes, content_type: str, *, confirm: bool,
                     on_presigned: OnPresigned | None) -> UploadOutcome:
        """One presign -> PUT -> status round: the row's outcome, or ``_NewRound`` (why this round did not end
        the row)."""
        halt = self._halt
        try:
            presigned = await until(halt.now, self.presign(row.file_name))
        except RequestRejectedError as exc:
            return row.failed("request_rejected", str(exc))
        except PresignIncompleteError as exc:
            if exc.thumbnail_key is not None:
                row.orphans.append(exc.thumbnail_key)
            raise _NewRound("presign_failed", str(exc), "transient", backs_off=True) from None
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
            raise _NewRound.after_put(exc) from None
        if unanswered is None and not confirm:
            return row.done(presigned.thumbnail_key)
        return await self._verdict(row, presigned.thumbnail_key, unanswered)

    async def _verdict(self, row: _Row, key: str, unanswered: UnansweredPutError | None) -> UploadOutcome:
        """The status call after a PUT (or a PUT that got no answer): done when ``COMPLETED``; a new round
        (``_NewRound``) on ``FILE_NOT_EXIST``; else the row fails."""
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
            raise _NewRound.after_put(unanswered)  # it did not land: a new round
        raise _NewRound("confirm_failed", "upload status FAILED: FILE_NOT_EXIST after a PUT", "file_not_exist",
                        backs_off=False, event={"call": "confirm"})


class _NotFinal(Exception):
    """A status that is not final yet (``IN_PROGRESS``, ...): asked again while ``confirm_wait`` lasts."""

    def __init__(self, status: str, message: str | None) -> None:
        super().__init__(status)
        self.status, self.message = status, message


class _NewRound(Exception):
    """A round that ended without the row's outcome; another round may bring it. ``reason``/``detail``: the
    row's failure if none does; ``kind``: the ``ClientStats.retries`` entry a new round counts in;
    ``backs_off``: whether it waits the backoff first; ``event``: the fields of its ``retrying`` log line
    (``None``: not logged)."""

    def __init__(self, reason: str, detail: str, kind: str, *, backs_off: bool,
                 event: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.kind, self.backs_off, self.event = reason, detail, kind, backs_off, event

    @classmethod
    def after_put(cls, exc: UploadError) -> _NewRound:
        """After a failed PUT: an expired URL needs no pause; a 5xx/SlowDown/dropped PUT backs off."""
        return cls("upload_failed", str(exc), "expired" if exc.expired else "put_failed", backs_off=not exc.expired,
                   event={"call": "put", "status": exc.status, "code": exc.code, "error": str(exc)})


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
