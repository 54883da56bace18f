"""Running the emulator outside a test's loop: in a thread, or as the blocking ``emulator`` subcommand."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from pipeline.config import Credentials
from pipeline.emulator.server import Emulator
from pipeline.emulator.settings import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    DEFAULT_WORKSPACE,
    STORAGE_MODES,
    EmulatorConfig,
    Faults,
)
from pipeline.errors import ConfigError

__all__ = ["add_emulator_arguments", "config_from_args", "emulator_in_thread", "run_emulator"]

_START_TIMEOUT = 10.0


@contextlib.contextmanager
def emulator_in_thread(config: EmulatorConfig | None = None) -> Iterator[Emulator]:
    """Run an emulator on its own event loop in a daemon thread; yield it once it is listening.

    On exit the emulator is stopped and the thread joined. A failure to start (e.g. the port is taken) is
    raised here, in the caller's thread.
    """
    emulator = Emulator(config)
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
    """The one line ``run_emulator`` prints; the secret appears only when it is the public default."""
    creds = emulator.credentials
    line = (
        f"MI emulator listening on {emulator.base_url} "
        f"access_key={creds.access_key} workspaces={','.join(emulator.config.workspaces)}"
    )
    if (creds.access_key, creds.secret_key) == (DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY):
        line += f" secret_key={DEFAULT_SECRET_KEY}"
    return line


def run_emulator(config: EmulatorConfig) -> None:
    """Serve until SIGINT or SIGTERM, after printing one line with the base URL, key and workspaces.

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

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``emulator`` subcommand's flags (service shape, key pair, storage, faults) to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one")
    parser.add_argument("--rate", type=float, default=50.0, help="presign calls per second; 0 = unlimited")
    parser.add_argument("--confirm-rate", type=float, default=1000.0, help="status calls per minute; 0 = unlimited")
    # SUPPRESS keeps "(default: None)" out of help rendered with ArgumentDefaultsHelpFormatter.
    none = argparse.SUPPRESS
    parser.add_argument("--access-key", default=none, help="accepted key; else $NCLOUD_ACCESS_KEY, else built-in")
    parser.add_argument("--secret-key", default=none, help="its secret; else $NCLOUD_SECRET_KEY, else built-in")
    parser.add_argument(
        "--workspace",
        action="append",
        dest="workspaces",
        default=none,
        metavar="NAME",
        help="known workspace, repeatable (default: demo)",
    )
    parser.add_argument("--url-ttl", type=float, default=900.0, help="presigned URL lifetime, seconds")
    parser.add_argument("--storage", choices=STORAGE_MODES, default="memory", help="keep uploads in memory/disk/hash")
    parser.add_argument("--storage-dir", type=Path, default=none, help="directory for --storage disk")
    parser.add_argument("--sign-content-type", action="store_true", help="sign Content-Type into the URLs")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--error-rate", type=float, default=0.0, help="fraction of calls answered 500/503")
    faults.add_argument("--drop-rate", type=float, default=0.0, help="fraction of connections dropped")
    faults.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    faults.add_argument("--early-expiry-rate", type=float, default=0.0, help="fraction of URLs issued expired")
    faults.add_argument("--quota-exhausted", action="store_true", help="answer every API call 429 code 400")
    faults.add_argument("--storm", type=float, default=0.0, metavar="SECONDS", help="429 every API call at first")
    faults.add_argument("--seed", type=int, default=none, help="seed of the fault draws")


def config_from_args(ns: argparse.Namespace, env: Mapping[str, str]) -> EmulatorConfig:
    """Build the config from parsed flags; the key pair comes from flags, else the environment, else defaults.

    Raises ``ConfigError`` when only half of a key pair is given or a value is out of range.
    """
    access = getattr(ns, "access_key", None) or env.get("NCLOUD_ACCESS_KEY", "")
    secret = getattr(ns, "secret_key", None) or env.get("NCLOUD_SECRET_KEY", "")
    if bool(access) != bool(secret):
        raise ConfigError("Give both an access key and a secret key (flags or NCLOUD_* variables), or neither.")
    creds = Credentials(access, secret) if access else Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
    for name in ("error_rate", "drop_rate", "early_expiry_rate"):
        if not 0.0 <= getattr(ns, name, 0.0) <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 1.")
    if getattr(ns, "latency", 0.0) < 0:
        raise ConfigError("--latency must not be negative.")
    faults = Faults(
        error_rate=ns.error_rate,
        drop_rate=ns.drop_rate,
        latency=ns.latency,
        early_expiry_rate=ns.early_expiry_rate,
        quota_exhausted=ns.quota_exhausted,
        seed=getattr(ns, "seed", None),
    )
    if ns.storm > 0:
        faults.storm(ns.storm)
    return EmulatorConfig(
        host=ns.host,
        port=ns.port,
        rate=ns.rate,
        confirm_rate=ns.confirm_rate,
        credentials=(creds,),
        workspaces=tuple(getattr(ns, "workspaces", None) or (DEFAULT_WORKSPACE,)),
        url_ttl=ns.url_ttl,
        storage=ns.storage,
        storage_dir=getattr(ns, "storage_dir", None),
        sign_content_type=ns.sign_content_type,
        faults=faults,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.emulator``: the same as ``thumbnail-ingest emulator``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.emulator", description="Run the local MI emulator.")
    add_emulator_arguments(parser)
    ns = parser.parse_args(argv)
    try:
        config = config_from_args(ns, os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_emulator(config)
    return 0
