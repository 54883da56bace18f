"""Packages whose public names load on first use (PEP 562): ``import pipeline.client`` (which every import of
one of its modules runs first) then costs nothing, so the command's ``--help`` and ``--version`` never load
aiohttp, pyarrow or Pillow. A leaf module: it imports nothing of the package."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["exports"]


def exports(package: str, names: Mapping[str, str], namespace: dict[str, Any]
            ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: ``names`` maps each public name to the module that
    defines it; a name is imported on first access and kept in ``namespace`` (the package's globals), so the
    next access is a plain attribute; any other name raises ``AttributeError``."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
