"""A local emulator of the MI person-thumbnail API and its object storage (see ``shared/API.md``).

An aiohttp application that is strict where the real service is: signature v2 and the 5-minute clock
window, both presign and status URIs, MI/gateway error bodies and codes, the per-access-key caps (429 code
410 with Retry-After), one-time expiring presigned PUT URLs with S3's rules and XML errors, and the status
call's verdicts, and the persons API (``persons``: create, add thumbnails, list, details, edit, delete, with
keys expiring 24 h after upload unless attached, under their own cap). ``Faults`` injects 5xx answers, HTML
502 pages, dropped connections, stalls, latency,
early expiry, 429 storms with any Retry-After (or none), IN_PROGRESS verdicts, per-row 403s, redirects and
an exhausted quota; a TLS listener with a certificate the client does not trust is optional. ``objects``
and ``counters`` (also ``GET /_emulator/state``) let tests check every byte and every cap; its clocks are
injectable.

Layout: ``settings`` (config, faults), ``state`` (windows, counters, objects), ``handlers`` (MI routes),
``storage`` (the PUT), ``persons`` (the persons routes), ``server`` (``Emulator``), ``runtime`` (thread, blocking
run, CLI flags).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lazy import exports

if TYPE_CHECKING:
    from pipeline.config import Credentials
    from pipeline.emulator.handlers import BUCKET
    from pipeline.emulator.persons import PERSONS_ROUTES, age_uploads
    from pipeline.emulator.runtime import add_emulator_arguments, config_from_args, emulator_in_thread, run_emulator
    from pipeline.emulator.server import PRESIGN_ROUTES, STATUS_ROUTES, Emulator
    from pipeline.emulator.settings import (
        DEFAULT_ACCESS_KEY,
        DEFAULT_SECRET_KEY,
        DEFAULT_WORKSPACE,
        EmulatorConfig,
        Faults,
    )
    from pipeline.emulator.state import Counters, ImageInfo, Person, PersonThumbnail, StoredObject

__all__ = [
    "BUCKET",
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_SECRET_KEY",
    "DEFAULT_WORKSPACE",
    "PERSONS_ROUTES",
    "PRESIGN_ROUTES",
    "STATUS_ROUTES",
    "Counters",
    "Credentials",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "ImageInfo",
    "Person",
    "PersonThumbnail",
    "StoredObject",
    "add_emulator_arguments",
    "age_uploads",
    "config_from_args",
    "emulator_in_thread",
    "run_emulator",
]

__getattr__, __dir__ = exports(
    __name__,
    {
        "Credentials": "pipeline.config",
        "BUCKET": "pipeline.emulator.handlers",
        "PERSONS_ROUTES": "pipeline.emulator.persons",
        "age_uploads": "pipeline.emulator.persons",
        "add_emulator_arguments": "pipeline.emulator.arguments",
        "config_from_args": "pipeline.emulator.runtime",
        "emulator_in_thread": "pipeline.emulator.runtime",
        "run_emulator": "pipeline.emulator.runtime",
        "PRESIGN_ROUTES": "pipeline.emulator.server",
        "STATUS_ROUTES": "pipeline.emulator.server",
        "Emulator": "pipeline.emulator.server",
        "DEFAULT_ACCESS_KEY": "pipeline.emulator.settings",
        "DEFAULT_SECRET_KEY": "pipeline.emulator.settings",
        "DEFAULT_WORKSPACE": "pipeline.emulator.settings",
        "EmulatorConfig": "pipeline.emulator.settings",
        "Faults": "pipeline.emulator.settings",
        "Counters": "pipeline.emulator.state",
        "ImageInfo": "pipeline.emulator.state",
        "Person": "pipeline.emulator.state",
        "PersonThumbnail": "pipeline.emulator.state",
        "StoredObject": "pipeline.emulator.state",
    },
    globals(),
)
