"""What each reason code means, in plain text for the page: the registry's sentences (``pipeline.reasons``, the
one list the "Reason codes" table of docs/reference.md is generated from) without their Markdown."""

from __future__ import annotations

from pipeline.reasons import REGISTRY

__all__ = ["REASONS", "meaning"]

REASONS: dict[str, str] = {r.code: r.meaning.replace("`", "").replace("\\|", "|") for r in REGISTRY}
"""Code -> its meaning as plain text."""


def meaning(reason: str) -> str:
    """The meaning of ``reason`` (``""`` for a code the registry does not know, e.g. an older release's)."""
    return REASONS.get(reason, "")
