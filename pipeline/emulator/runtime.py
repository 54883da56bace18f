"""Running the emulator outside a test's loop: in a thread, or as the blocking ``emulator`` subcommand."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from pipeline.config import Credentials
from pipeline.emulator.arguments import add_emulator_arguments
from pipeline.emulator.server import Emulator
from pipeline.emulator.settings import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    DEFAULT_WORKSPACE,
    EmulatorConfig,
    Faults,
)
from pipeline.errors import ConfigError

__all__ = [
    "DESCRIPTION",
    "EPILOG",
    "add_emulator_arguments",
    "banner",
    "config_from_args",
    "emulator_in_thread",
    "run_emulator",
]

_START_TIMEOUT = 10.0

DESCRIPTION = (
    "Run a local emulator of the NAVER Cloud Media Intelligence person-thumbnail API and its object storage: "
    "signature v2 checks, presign and upload-status calls, the persons API (create, add thumbnails, list, "
    "details, edit, delete; keys expire 24 h after upload unless attached), the rate caps (429 past them), "
    "one-time expiring upload URLs with S3's rules, and injectable faults. Point `thumbnail-ingest ingest "
    "--endpoint` at it."
)
EPILOG = (
    "Inspection: GET <base>/_emulator/state returns JSON with the configuration (no secrets), the faults, the "
    "counters (calls by route, responses by status, 429s, PUTs per key, the most presign calls in any 1 s and "
    "status calls in any 60 s, presign arrival times) and the stored objects; ?objects=0 and ?arrivals=0 leave "
    "the bulky parts out; the persons and their keys are listed too. Faults, counters and inspection never touch "
    "each other. Ctrl-C prints the counters."
)


@contextlib.contextmanager
def emulator_in_thread(
    config: EmulatorConfig | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    wallclock: Callable[[], float] = time.time,
) -> Iterator[Emulator]:
    """Run an emulator on its own event loop in a daemon thread; yield it once it is listening.

    On exit the emulator is stopped and the thread joined. A failure to start (e.g. the port is taken) is
    raised here, in the caller's thread. ``clock``/``wallclock`` are passed to ``Emulator``.
    """
    emulator = Emulator(config, clock=clock, wallclock=wallclock)
    ready = threading.Event()
    failure: list[BaseException] = []
    holder: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        try:
            await emulator.start()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        holder["loop"] = (asyncio.get_running_loop(), stop)
        ready.set()
        try:
            await stop.wait()
        finally:
            await emulator.stop()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="mi-emulator", daemon=True)
    thread.start()
    if not ready.wait(_START_TIMEOUT):
        raise RuntimeError("The emulator did not start in time.")
    if failure:
        thread.join()
        raise failure[0]
    loop, stop = holder["loop"]
    try:
        yield emulator
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(_START_TIMEOUT)


def banner(emulator: Emulator) -> str:
    """What ``run_emulator`` prints at start: one line with the base URL, key and workspaces, then the
    ``export`` lines and an ingest command ready to paste. The secret appears only when it is the public
    default; otherwise the export line says to set it (it came from the flags or the environment)."""
    creds = emulator.credentials
    workspaces = emulator.config.workspaces
    line = (f"MI emulator listening on {emulator.base_url} access_key={creds.access_key} "
            f"workspaces={','.join(workspaces)}")
    public = (creds.access_key, creds.secret_key) == (DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
    if public:
        line += f" secret_key={DEFAULT_SECRET_KEY}"
    secret = DEFAULT_SECRET_KEY if public else "<the secret you gave the emulator>"
    return "\n".join([
        line,
        "To ingest against it, paste:",
        f"  export NCLOUD_ACCESS_KEY={creds.access_key}",
        f"  export NCLOUD_SECRET_KEY={secret}",
        f"  .venv/bin/thumbnail-ingest ingest MANIFEST.csv --workspace {workspaces[0]} --endpoint {emulator.base_url}",
        f"Counters: curl '{emulator.base_url}/_emulator/state?objects=0&arrivals=0'   (Ctrl-C stops and prints them)",
    ])


def counters_report(emulator: Emulator) -> str:
    """The counters printed when the emulator stops: one line of totals and one of faults."""
    c = emulator.counters.snapshot(arrivals=False)
    totals = " ".join(f"{k}={c[k]}" for k in ("presign_calls", "status_calls", "put_calls", "puts_ok",
                                               "urls_issued", "responses_429", "max_presign_per_1s",
                                               "max_status_per_60s", "person_create_calls", "person_add_calls",
                                               "person_list_calls", "person_get_calls", "max_persons_per_1s")
                      if k in c)
    faults = " ".join(f"{k}={v}" for k, v in sorted(c["faults"].items())) or "none"
    return f"MI emulator stopped: {totals} objects={len(emulator.objects)}\nfaults injected: {faults}"


def run_emulator(config: EmulatorConfig) -> None:
    """Serve until SIGINT or SIGTERM: print ``banner`` at start and ``counters_report`` at the end.

    Raises ``ConfigError`` when the address cannot be bound (e.g. the port is in use).
    """

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # add_signal_handler is unavailable off the main thread and on Windows; Ctrl-C still works there.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        emulator = Emulator(config)
        try:
            await emulator.start()
        except OSError as exc:
            raise ConfigError(f"The emulator cannot listen on {config.host}:{config.port}: {exc}.") from exc
        try:
            print(banner(emulator), flush=True)
            await stop.wait()
        finally:
            await emulator.stop()
            print(counters_report(emulator), flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


def config_from_args(ns: argparse.Namespace, env: Mapping[str, str]) -> EmulatorConfig:
    """Build the config from parsed flags; the key pair comes from flags, else the environment, else defaults.

    Raises ``ConfigError`` when only half of a key pair is given or a value is out of range.
    """
    access = getattr(ns, "access_key", None) or env.get("NCLOUD_ACCESS_KEY", "")
    secret = getattr(ns, "secret_key", None) or env.get("NCLOUD_SECRET_KEY", "")
    if bool(access) != bool(secret):
        raise ConfigError("Give both an access key and a secret key (flags or NCLOUD_* variables), or neither.")
    creds = Credentials(access, secret) if access else Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
    for name in ("error_rate", "html_error_rate", "drop_rate", "stall_rate", "early_expiry_rate", "queue_rate"):
        if not 0.0 <= getattr(ns, name, 0.0) <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 1.")
    for name in ("latency", "queue_delay", "put_answer_delay"):
        if getattr(ns, name, 0.0) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must not be negative.")
    if getattr(ns, "in_progress", 0) < 0:
        raise ConfigError("--in-progress must not be negative.")
    forbidden = getattr(ns, "forbidden_names", "")
    try:
        re.compile(forbidden)
    except re.error as exc:
        raise ConfigError(f"--forbidden-names is not a regular expression: {exc}.") from None
    faults = Faults(
        error_rate=ns.error_rate,
        html_error_rate=getattr(ns, "html_error_rate", 0.0),
        drop_rate=ns.drop_rate,
        stall_rate=getattr(ns, "stall_rate", 0.0),
        latency=ns.latency,
        put_answer_delay=getattr(ns, "put_answer_delay", 0.0),
        queue_rate=getattr(ns, "queue_rate", 0.0),
        queue_delay=getattr(ns, "queue_delay", 0.03),
        early_expiry_rate=ns.early_expiry_rate,
        quota_exhausted=ns.quota_exhausted,
        retry_after=getattr(ns, "retry_after", "auto"),
        in_progress=getattr(ns, "in_progress", 0),
        forbidden_names=forbidden,
        redirect_to=getattr(ns, "redirect_to", ""),
        seed=getattr(ns, "seed", None),
    )
    if ns.storm > 0:
        faults.storm(ns.storm)
    return EmulatorConfig(
        host=ns.host,
        port=ns.port,
        rate=ns.rate,
        confirm_rate=ns.confirm_rate,
        persons_rate=getattr(ns, "persons_rate", 10.0),
        thumbnail_ttl=getattr(ns, "thumbnail_ttl", 86400.0),
        credentials=(creds,),
        workspaces=tuple(getattr(ns, "workspaces", None) or (DEFAULT_WORKSPACE,)),
        url_ttl=ns.url_ttl,
        storage=ns.storage,
        storage_dir=getattr(ns, "storage_dir", None),
        sign_content_type=ns.sign_content_type,
        faults=faults,
        tls_cert=getattr(ns, "tls_cert", None),
        tls_key=getattr(ns, "tls_key", None),
        tls_port=getattr(ns, "tls_port", 0),
        urls_over_tls=getattr(ns, "urls_over_tls", False),
        log_requests=getattr(ns, "log_requests", False),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.emulator``: the same as ``thumbnail-ingest emulator``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.emulator", description=DESCRIPTION, epilog=EPILOG)
    add_emulator_arguments(parser)
    ns = parser.parse_args(argv)
    try:
        config = config_from_args(ns, os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_emulator(config)
    return 0
