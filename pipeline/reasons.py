"""Every reason code a row can end with: one registry, the single source of the codes and what they mean.

A row's ``reason`` (in the journal, the results and the report) is always one of ``REGISTRY``'s codes. Each
record says which status the row ends in, whether the planner checks the row again on every run
(``fixable``: the cause lies in where files are, in flags or in the network, not in the picture), and the
sentence the "Reason codes" table of docs/reference.md gives (``markdown_table`` renders that table from here).
The sets the stages check against (``images.REASONS``, ``plan.FIXABLE_REASONS``) are derived from it.

This module imports nothing from the package, so every part of it can import this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FIXABLE",
    "IMAGE_REASONS",
    "PERSON_REFUSALS",
    "REGISTRY",
    "Reason",
    "codes",
    "markdown_table",
    "meaning",
]

Ending = Literal["rejected", "failed", "pending"]


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason code and what it promises."""

    code: str
    """Stable snake_case code; results manifests are queried by it."""
    status: Ending
    """The status a row with this reason is in (a ``models.Status`` value)."""
    fixable: bool
    """Checked again on every run: the cause is outside the picture (a path, a flag, the network, a person)."""
    meaning: str
    """One sentence (Markdown), as docs/reference.md's table gives it."""
    image: bool = False
    """``images.prepare`` can return it (``Rejected.reason``)."""


def _r(code: str, status: Ending, meaning: str, *, fixable: bool = False, image: bool = False) -> Reason:
    return Reason(code, status, fixable, meaning, image)


REGISTRY: tuple[Reason, ...] = (
    _r("missing_path", "rejected", "the path cell is empty", fixable=True),
    _r("invalid_path", "rejected", "the path holds a NUL character", fixable=True),
    _r("outside_root", "rejected", "the path resolves outside `--root` (not read)", fixable=True),
    _r("not_found", "rejected", "no such file or object (HTTP 404)", fixable=True, image=True),
    _r("unreadable", "rejected", "permission denied, a directory, a name the system refuses, ...",
       fixable=True, image=True),
    _r("access_denied", "rejected", "the object store or web server answered 401/403", fixable=True),
    _r("fetch_failed", "rejected", "a remote source kept failing (the detail has the status)", fixable=True),
    _r("source_too_large", "rejected", "a remote source over `--source-max-bytes` (not read)", fixable=True),
    _r("unsupported_source", "rejected",
       "a scheme the tool does not read, a link-local address, an object key the client cannot read as written, "
       "or a Content-Encoding other than gzip/deflate", fixable=True),
    _r("empty_file", "rejected", "zero bytes", image=True),
    _r("too_large", "rejected", "the source file is larger than the input cap (200 MiB)", image=True),
    _r("unsupported_format", "rejected", "not an image Pillow or pillow-heif can open (or a 12-bit JPEG)",
       image=True),
    _r("corrupt", "rejected", "truncated or undecodable", image=True),
    _r("too_small", "rejected", "a side is under 256 px after orientation (never upscaled)", image=True),
    _r("too_many_pixels", "rejected", "over 100 MP (decompression-bomb guard)", image=True),
    _r("presign_failed", "failed", "the presign call kept failing for `--retry-window`"),
    _r("upload_failed", "failed", "the PUT kept failing"),
    _r("confirm_failed", "failed", "the status call said `FAILED` (message in `detail`) or kept failing"),
    _r("request_rejected", "failed", "the API refused the request for this row (4xx, e.g. a 403 on one file name)"),
    _r("internal_error", "failed", "a bug; the detail says what"),
    _r("person_full", "rejected",
       "`--attach`: the person would hold more than `--person-max` thumbnails (decided before upload)", fixable=True),
    _r("person_not_found", "failed",
       "`--attach`: the row's `person_id` does not exist (the detail names it; nothing uploaded)", fixable=True),
    _r("invalid_person", "rejected",
       "`--attach`: the person name is blank, longer than 50 characters, or holds `;`, `|` or a backtick "
       "(never uploaded; checked again each run)", fixable=True),
    _r("attach_failed", "failed",
       "`--attach`: uploaded, but the attach call was refused or kept failing (detail); the key is kept and a "
       "re-run attaches it, uploading again when the key is older than 23 h or the service said it expired"),
    _r("interrupted", "pending", "the run stopped (Ctrl-C, a full disk) before this row finished"),
    _r("not_reached", "pending", "a fatal API answer stopped the run before this row, or the row is past `--limit`"),
)
"""Every row reason, in the order docs/reference.md's table lists them."""

_BY_CODE = {r.code: r for r in REGISTRY}
assert len(_BY_CODE) == len(REGISTRY), "a reason code is registered twice"

FIXABLE: frozenset[str] = frozenset(r.code for r in REGISTRY if r.fixable)
"""Codes the planner checks again on every run."""
IMAGE_REASONS: tuple[str, ...] = tuple(r.code for r in REGISTRY if r.image)
"""Codes ``images.prepare`` can return."""

PERSON_REFUSALS: tuple[str, ...] = ("person_not_found", "name_exists", "create_rejected", "add_rejected",
                                    "delete_rejected")
"""What the persons client's ``Refused`` can say of one call. Not row reasons, except ``person_not_found``:
the others reach a row only inside the ``detail`` of ``attach_failed``."""


def codes() -> frozenset[str]:
    """Every registered row reason code."""
    return frozenset(_BY_CODE)


def meaning(code: str) -> str | None:
    """The registered sentence for ``code`` (Markdown), or ``None`` for a code the registry does not know."""
    found = _BY_CODE.get(code)
    return found.meaning if found is not None else None


def markdown_table() -> str:
    """docs/reference.md's "Reason codes" table (header, rule and one row per code, each line ending in a newline)."""
    lines = ["| reason | status | meaning |", "|---|---|---|"]
    for r in REGISTRY:
        cell = r.meaning.replace("|", "\\|")  # a bare | would end the cell
        lines.append(f"| `{r.code}` | {r.status} | {cell} |")
    return "".join(line + "\n" for line in lines)
