"""Byte sizes as people write them: ``256M``, ``50MB``, ``1.5GiB``, ``2048``.

One rule, the one of ``sort -h`` and rclone for the bare letters: ``k``/``K``, ``M``, ``G``, ``T`` and
``KiB``, ``MiB``, ``GiB``, ``TiB`` are binary (powers of 1024); ``kB``/``KB``, ``MB``, ``GB``, ``TB`` are decimal
(powers of 1000); a plain number or ``B`` is bytes. Letters are read case-insensitively (``256m`` = ``256M``).
``format_size`` shows a size back in the largest unit that holds it exactly (``256 MiB``, ``5 MB``).
"""

from __future__ import annotations

import math
import re

__all__ = ["SIZE_RULE", "format_size", "parse_size"]

SIZE_RULE = "sizes: 2048 (bytes), 256k/256KiB, 50M/50MiB, 1.5G/1.5GiB (x1024); 50kB, 50MB, 2GB (x1000)"
"""The rule in one line, for the help."""

_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_PATTERN = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(i?b)?|b)?", re.IGNORECASE)


def parse_size(value: object) -> int:
    """``value`` in bytes: an ``int`` as is, or a text by the module's rule (fractions round to the nearest
    byte). Raises ``ValueError`` with a readable reason for anything else (negative, not a size, a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected a size such as 256M, 50MB or 2048; got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected a size of 0 or more; got {value}")
        return value
    m = _PATTERN.fullmatch(value.strip())
    if m is None:
        raise ValueError(f"expected a size such as 256M, 50MB, 1.5GiB or 2048; got {value!r}")
    number, letter, tail = m.group(1), (m.group(2) or "").lower(), (m.group(3) or "").lower()
    base = 1000 if tail == "b" else 1024  # "MB" is decimal; "M" and "MiB" binary
    amount: float = float(number) * base ** _POWERS[letter]
    if not math.isfinite(amount):
        raise ValueError(f"expected a size such as 256M, 50MB or 2048; got {value!r}")
    return round(amount)


def format_size(size: int) -> str:
    """``size`` bytes as the smallest whole number of a unit that holds it exactly: ``268435456`` ->
    ``256 MiB``, ``5000000`` -> ``5 MB``, ``1500`` -> ``1500 B``; the text reads back with ``parse_size``."""
    best = f"{size} B"
    shown = size
    for base, names in ((1024, ("KiB", "MiB", "GiB", "TiB")), (1000, ("kB", "MB", "GB", "TB"))):
        for power, name in enumerate(names, start=1):
            unit = base**power
            if size and size % unit == 0 and size // unit < shown:  # binary wins a tie: it is tried first
                best, shown = f"{size // unit} {name}", size // unit
    return best
