"""Shared pieces of the image stage: reason codes, the internal rejection exception, detail wording."""

from __future__ import annotations

__all__ = [
    "REASONS",
    "Reject",
    "mb",
    "px",
]

REASONS: tuple[str, ...] = (
    "not_found",
    "unreadable",
    "empty_file",
    "too_large",
    "unsupported_format",
    "corrupt",
    "too_many_pixels",
    "too_small",
)
"""Every ``Rejected.reason`` that ``prepare`` can return. Stable: results manifests are queried by them."""


class Reject(Exception):
    """Raised inside the stage to stop work on one image; ``prepare`` turns it into ``Rejected``.

    It never escapes ``prepare``; it exists so that deep helpers can give up with a precise reason.
    """

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def px(width: int, height: int) -> str:
    """``4032x3024 px``."""
    return f"{width}x{height} px"


def mb(n: int) -> str:
    """A byte count for humans: ``5.00 MB (5000000 bytes)``; MB means 10**6 bytes, as the API docs do."""
    return f"{n / 1e6:.2f} MB ({n} bytes)"
