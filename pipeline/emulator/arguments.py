"""The ``emulator`` subcommand's flags: a leaf module (argparse only), so building the command's parser never
loads aiohttp."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.emulator.settings import STORAGE_MODES

__all__ = ["add_emulator_arguments"]


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``emulator`` subcommand's flags (service shape, key pair, storage, faults) to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one")
    parser.add_argument("--rate", type=float, default=50.0, help="presign calls per second; 0 = unlimited")
    parser.add_argument("--confirm-rate", type=float, default=1000.0, help="status calls per minute; 0 = unlimited")
    parser.add_argument("--persons-rate", type=float, default=10.0,
                        help="persons API calls per second (create, add, list, details, ...); 0 = unlimited")
    parser.add_argument("--thumbnail-ttl", type=float, default=86400.0,
                        help="seconds an uploaded key stays usable unless attached to a person")
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
    parser.add_argument("-v", "--verbose", dest="log_requests", action="store_true",
                        help="log one line per request (method, path without query, status, ms)")
    tls = parser.add_argument_group("TLS (optional second listener)")
    tls.add_argument("--tls-cert", type=Path, default=none, help="PEM certificate for a TLS listener")
    tls.add_argument("--tls-key", type=Path, default=none, help="its PEM private key")
    tls.add_argument("--tls-port", type=int, default=0, help="port of the TLS listener; 0 picks a free one")
    tls.add_argument("--urls-over-tls", action="store_true", help="issue upload URLs on the TLS listener")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--error-rate", type=float, default=0.0, help="fraction of calls answered 500/503")
    faults.add_argument("--html-error-rate", type=float, default=0.0,
                        help="fraction of API calls answered 502 with an HTML page (a proxy)")
    faults.add_argument("--drop-rate", type=float, default=0.0, help="fraction of connections dropped")
    faults.add_argument("--stall-rate", type=float, default=0.0, help="fraction of calls accepted, never answered")
    faults.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    faults.add_argument("--put-answer-delay", type=float, default=0.0, metavar="SECONDS",
                        help="seconds a PUT's answer is held after its object is stored")
    faults.add_argument("--queue-rate", type=float, default=0.0,
                        help="fraction of API calls held --queue-delay seconds before their arrival is counted")
    faults.add_argument("--queue-delay", type=float, default=0.03, metavar="SECONDS",
                        help="how long a call picked by --queue-rate waits in front of the gateway")
    faults.add_argument("--early-expiry-rate", type=float, default=0.0, help="fraction of URLs issued expired")
    faults.add_argument("--quota-exhausted", action="store_true", help="answer every API call 429 code 400")
    faults.add_argument("--storm", type=float, default=0.0, metavar="SECONDS", help="429 every API call at first")
    faults.add_argument("--retry-after", default="auto",
                        help="Retry-After of 429s: auto (until the window has room), '' (none), or sent verbatim")
    faults.add_argument("--in-progress", type=int, default=0, metavar="N",
                        help="answer the first N status calls of each key IN_PROGRESS")
    faults.add_argument("--forbidden-names", default="", metavar="REGEX",
                        help="answer presign 403 (HTML, no code) for file names matching REGEX")
    faults.add_argument("--redirect-to", default="", metavar="URL", help="answer every API call 307 to URL")
    faults.add_argument("--seed", type=int, default=none, help="seed of the fault draws")
