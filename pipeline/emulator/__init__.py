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

from pipeline.config import Credentials
from pipeline.emulator.handlers import BUCKET
from pipeline.emulator.persons import PERSONS_ROUTES, age_uploads
from pipeline.emulator.runtime import (
    add_emulator_arguments,
    config_from_args,
    emulator_in_thread,
    run_emulator,
)
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
