"""What each reason code means, as README.md's "Reason codes" table says (the report shows it beside the code)."""

from __future__ import annotations

__all__ = ["REASONS", "meaning"]

REASONS: dict[str, str] = {
    "missing_path": "the path cell is empty",
    "invalid_path": "the path holds a NUL character",
    "outside_root": "the path resolves outside --root (not read)",
    "not_found": "no such file or object (HTTP 404)",
    "unreadable": "permission denied, a directory, a name the system refuses, ...",
    "access_denied": "the object store or web server answered 401/403",
    "fetch_failed": "a remote source kept failing (the detail has the status)",
    "source_too_large": "a remote source over --source-max-bytes (not read)",
    "unsupported_source": "a scheme the tool does not read, or a link-local address",
    "empty_file": "zero bytes",
    "too_large": "the source file is larger than the input cap (200 MiB)",
    "unsupported_format": "not an image Pillow or pillow-heif can open (or a 12-bit JPEG)",
    "corrupt": "truncated or undecodable",
    "too_small": "a side is under 256 px after orientation (never upscaled)",
    "too_many_pixels": "over 100 MP (decompression-bomb guard)",
    "presign_failed": "the presign call kept failing for --retry-window",
    "upload_failed": "the PUT kept failing",
    "confirm_failed": "the status call said FAILED (message in detail) or kept failing",
    "request_rejected": "the API refused the request for this row (4xx, e.g. a 403 on one file name)",
    "internal_error": "a bug; the detail says what",
    "person_full": "--attach: the person would hold more than --person-max thumbnails (decided before upload)",
    "person_not_found": "--attach: the row's person_id does not exist (the detail names it; nothing uploaded)",
    "invalid_person": "--attach: the person name is blank, longer than 50 characters, or holds ;, | or a backtick "
                      "(never uploaded; checked again each run)",
    "attach_failed": "--attach: uploaded, but the attach call was refused or kept failing (detail); the key is kept "
                     "and a re-run attaches it, uploading again when the key is older than 23 h or the service said "
                     "it expired",
    "interrupted": "the run stopped (Ctrl-C, a full disk) before this row finished",
    "not_reached": "a fatal API answer stopped the run before this row, or the row is past --limit",
}
"""Reason code -> its meaning (README's wording, without the Markdown)."""


def meaning(reason: str) -> str:
    """What ``reason`` means; empty for a code the tool does not write (a file from elsewhere)."""
    return REASONS.get(reason, "")
