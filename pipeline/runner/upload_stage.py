"""``UploadStage``: ``concurrency`` workers taking prepared rows through the client (presign -> PUT -> confirm),
each row journaled as presigned before its PUT, and handing each fresh key on to the attach stage."""

from __future__ import annotations

import asyncio

import structlog

from pipeline.client import ApiClient, RowInterrupted
from pipeline.client.stopping import until
from pipeline.errors import FatalApiError, IngestError
from pipeline.models import Presigned, Status
from pipeline.naming import upload_name
from pipeline.runner.attach_prep import now_utc
from pipeline.runner.attach_route import AttachRoute
from pipeline.runner.context import RunContext
from pipeline.runner.plan import source_of
from pipeline.runner.prepare_stage import result_of, unattached_detail
from pipeline.runner.records import Job, Pipe, Ready

__all__ = ["UploadStage"]

log = structlog.get_logger("pipeline.runner")


class UploadStage:
    """``concurrency`` workers: presign -> PUT -> confirm through the client, each row journaled as presigned
    before its PUT and recorded when it ends. After a stop, prepared rows not yet started are left."""

    def __init__(self, ctx: RunContext, client: ApiClient, inbox: Pipe[Ready], attach: AttachRoute | None = None,
                 *, unattached: list[str] | None = None) -> None:
        self.s, self.journal, self.recorder, self.control = ctx.settings, ctx.journal, ctx.recorder, ctx.control
        self.client, self.inbox, self.attach = client, inbox, attach
        self.unattached: list[str] = [] if unattached is None else unattached
        """Upload times of rows that have no person under ``--attach`` (their keys expire unattached)."""

    async def run(self) -> None:
        try:
            await asyncio.gather(*(self._worker() for _ in range(self.s.api.concurrency)))
        finally:
            if self.attach is not None:
                await self.attach.out.close()

    async def _worker(self) -> None:
        while (item := await self.inbox.get()) is not None:
            try:
                key = await self._upload(item)
            finally:
                item.settle(None)  # whatever ended the row (settled already when it got a key: a no-op then)
            if key is not None and self.attach is not None:
                job = item.job
                await self.attach.uploaded(job.row, key, replaces=job.replaces, replaced_person=job.replaced_person)

    async def _upload(self, item: Ready) -> str | None:
        """One row's upload, recorded; its key when it ended uploaded (then already settled, so rows waiting
        on its content go on at once). After a refusal by the attach route nothing is uploaded (after a stop,
        no row comes: the inbox is cut)."""
        job, prepared = item.job, item.prepared
        row = job.row

        async def on_presigned(p: Presigned, job: Job = job, sha: str = prepared.source_sha256) -> None:
            self.recorder.presigned(job.row.key, p.thumbnail_key, source_sha256=sha, source_stamp=job.stamp,
                                    source_path=source_of(job.row))

        try:
            # A row with a person waits here for its person's look-up: a key that cannot be attached is
            # never uploaded (the route records the refusal). The row holds no key yet: a signal ends the wait.
            if self.attach is not None and await until(self.client.halted, self.attach.admit(row)) is not None:
                return None
            outcome = await self.client.upload(
                upload_name(row, prepared), prepared.data, prepared.content_type,
                confirm=self.s.confirm, on_presigned=on_presigned,
            )
        except FatalApiError as exc:
            self.control.fail(exc)
            return None
        except RowInterrupted:  # a signal: nothing recorded, the journal keeps the row for the next run
            return None
        except Exception as exc:  # a bug, not an API answer: the row fails instead of the run
            if isinstance(exc, IngestError):
                raise  # a full disk, a journal rule: the run's business
            log.exception("internal_error", row=row.key, path=row.path)
            self.recorder.record(result_of(job, prepared, Status.FAILED, reason="internal_error",
                                           detail=f"{type(exc).__name__}: {exc}"), row.path)
            return None
        key = outcome.thumbnail_key if outcome.ok else None
        if outcome.ok:
            at = now_utc()
            lonely = unattached_detail(self.s, row, at)
            if lonely is not None:
                self.unattached.append(at)
            result = result_of(job, prepared, Status.UPLOADED, thumbnail_key=key, attempts=outcome.attempts,
                               uploaded_at=at, duplicate_of=item.duplicate_of, detail=lonely)
        else:
            result = result_of(job, prepared, Status.FAILED, reason=outcome.reason, detail=outcome.detail,
                               attempts=outcome.attempts, duplicate_of=item.duplicate_of)
        # The journal names this row's orphans itself: every round's key was journaled presigned (on_presigned).
        self.recorder.record(result, row.path)
        item.settle(key)
        return key
