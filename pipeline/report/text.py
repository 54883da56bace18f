"""Text from a results file as the page shows it: escaped, with invisible characters made visible.

A results file is data from anyone: a file name such as ``<U+202E>gnp.exe`` reads ``exe.png`` when shown
raw, a zero-width space hides a difference between two ids, a newline splits a reason. Every Unicode control
or format character (categories Cc, Cf: the bidi embeddings, overrides and isolates U+202A-U+202E and
U+2066-U+2069, the zero-width U+200B-U+200D, U+FEFF, ...) and the line and paragraph separators (Zl, Zp) is
replaced by a visible ``<U+202E>`` marker; in HTML the marker is styled (class ``cc``) so it cannot be taken
for text that was in the file. Escaping stays: the markers are added to already-escaped text.
"""

from __future__ import annotations

import html
import unicodedata

__all__ = ["INVISIBLE_CATEGORIES", "marked", "plain", "svg_text"]

INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _parts(text: str) -> list[tuple[bool, str]]:
    """``text`` as ``(invisible, piece)`` runs: visible runs whole, each invisible character its own piece."""
    parts: list[tuple[bool, str]] = []
    start = 0
    for i, ch in enumerate(text):
        if ch != " " and not ch.isprintable() and unicodedata.category(ch) in INVISIBLE_CATEGORIES:
            if i > start:
                parts.append((False, text[start:i]))
            parts.append((True, ch))
            start = i + 1
    if start < len(text):
        parts.append((False, text[start:]))
    return parts


def _code(ch: str) -> str:
    return f"<U+{ord(ch):04X}>"


def _render(value: object, tag: str) -> str:
    text = "" if value is None else str(value)
    if text.isprintable():  # the common case: nothing to mark (isprintable is False for every Cc/Cf/Zl/Zp)
        return html.escape(text, quote=True)
    return "".join(f'<{tag} class="cc">{html.escape(_code(piece))}</{tag}>' if invisible
                   else html.escape(piece, quote=True) for invisible, piece in _parts(text))


def marked(value: object) -> str:
    """``value`` as HTML text content: escaped, each invisible character a styled ``<U+XXXX>`` marker."""
    return _render(value, "span")


def svg_text(value: object) -> str:
    """``value`` as the content of an SVG ``<text>``: escaped, markers as styled ``<tspan>``s."""
    return _render(value, "tspan")


def plain(value: object) -> str:
    """``value`` escaped for places that hold text only (``<title>``, attributes): each invisible character
    becomes the marker as plain text, so no raw bidi or zero-width character is anywhere in the page."""
    text = "" if value is None else str(value)
    if not text.isprintable():
        text = "".join(_code(piece) if invisible else piece for invisible, piece in _parts(text))
    return html.escape(text, quote=True)
