"""``--fetch-thumbnails``: the sampled remote photos fetched once, before the page is rendered.

The photos go through ``pipeline.fetch.Fetcher`` (its concurrency, size limit, timeout, retries, and the web
client's refusal of link-local and metadata addresses), each turned at once into two small thumbnails (as
stored, and upright) so no photo's bytes are held longer than its decode. Fetching stops once the thumbnails
made would fill the page's byte budget: the photos after that are left out, as local ones are.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence

from pipeline.fetch import Fetcher, FetchRejected, FetchSettings, SourceAccessError, SourceRef
from pipeline.report.thumbs import Fetched, ThumbMaker, render_thumbnail

__all__ = ["REPORT_FETCH", "prefetch"]

REPORT_FETCH = FetchSettings(fetch_concurrency=8, fetch_max_bytes_in_flight=128 * 1024 * 1024,
                             fetch_timeout=30.0, fetch_retries=1)
"""A report fetches a few hundred photos at most: fewer at once, and a shorter wait, than a run."""


def prefetch(maker: ThumbMaker, texts: Sequence[str], settings: FetchSettings = REPORT_FETCH) -> None:
    """Fetch the remote photos among the path cells ``texts`` (in page order) into ``maker.fetched``, unless
    the maker has photos left out or fetching off. Never raises for a photo: each failure is its ``why``."""
    if not (maker.enabled and maker.fetch):
        return
    refs = maker.remote_sources(texts)
    if refs:
        maker.fetched.update(asyncio.run(_fetch_all(refs, settings, maker.budget)))


async def _fetch_all(refs: Sequence[SourceRef], settings: FetchSettings, budget: int) -> dict[str, Fetched]:
    done: dict[str, Fetched] = {}
    used = 0
    async with Fetcher(settings) as fetcher:
        step = settings.fetch_concurrency
        for start in range(0, len(refs), step):
            if used >= budget:
                break  # the page is full: the rest would only be left out
            part = refs[start:start + step]
            for ref, fetched in zip(part, await asyncio.gather(*(_one(fetcher, r) for r in part)), strict=True):
                done[ref.url] = fetched
                used += len(base64.b64encode(fetched.upright)) if fetched.upright else 0  # as the sheets embed it
    return done


async def _one(fetcher: Fetcher, ref: SourceRef) -> Fetched:
    try:
        outcome = await fetcher.fetch(ref)
    except SourceAccessError:  # the store refuses every request: each of its photos says so
        return Fetched(None, None, "not fetched: access_denied")
    if isinstance(outcome, FetchRejected):
        return Fetched(None, None, f"not fetched: {outcome.reason}")
    data = outcome.data
    upright, stored = await asyncio.gather(asyncio.to_thread(render_thumbnail, data, True),
                                           asyncio.to_thread(render_thumbnail, data, False))
    return Fetched(upright, stored, "" if upright is not None else "cannot be decoded")
