"""Person names as the API takes them (pure): one form per name, and the names it cannot take.

``normalise`` makes ``Alice``, ``Alice `` and ``Alice<U+200B>`` one name: NFC, the zero-width and word-joiner
characters removed (U+200B-U+200D, U+2060, U+FEFF: invisible, easily pasted in), surrounding whitespace
stripped. ``problem`` says why the API cannot take a (normalised) name: blank, longer than ``NAME_MAX``, or
holding a character the list call refuses (``;``, ``|``, backtick: API.md section 3), so its person could
never be looked up.
"""

from __future__ import annotations

import unicodedata

from pipeline.attach.models import NAME_MAX

__all__ = ["NAME_FORBIDDEN", "normalise", "problem"]

NAME_FORBIDDEN = (";", "|", "`")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def normalise(name: str) -> str:
    """``name`` in NFC, without zero-width characters, stripped of surrounding whitespace."""
    return unicodedata.normalize("NFC", name).translate(_INVISIBLE).strip()


def problem(name: str) -> str | None:
    """Why the API cannot take ``name`` (already normalised), as the end of a sentence; ``None`` when it can."""
    if not name:
        return "is blank"
    if len(name) > NAME_MAX:
        return f"is {len(name)} characters long (the API takes at most {NAME_MAX})"
    bad = sorted({c for c in name if c in NAME_FORBIDDEN})
    if bad:
        return f"holds {' and '.join(repr(c) for c in bad)}, which the persons API does not accept in a name"
    return None
