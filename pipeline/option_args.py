"""The ``ingest`` options as argparse flags, in their help groups (``option_help.GROUPS``), sizes in units.

``options`` defines the options and validates their values; this module only puts them on a parser.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.option_help import GROUPS
from pipeline.options import ENV_PREFIX, OPTIONS, Option
from pipeline.sizes import format_size, parse_size

__all__ = ["add_options"]


def _cli_value(option: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        if option.size:
            try:
                return parse_size(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None
        if option.convert is not None:
            return option.convert(text)
        if option.kind not in (int, float):
            return Path(text) if option.kind is Path else text
        what = "a whole number" if option.kind is int else "a finite number"
        try:
            value = option.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    convert.__name__ = "size" if option.size else option.kind.__name__  # argparse names it in its errors
    return convert


def add_options(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> dict[str, argparse._ArgumentGroup]:
    """Add one argparse option per ``Option`` (``dest`` = its keyword; defaults from the dataclasses, or from
    ``THUMBNAIL_INGEST_<ENV>`` in ``env`` where the option names one), each in its help group, the groups in
    ``option_help.GROUPS`` order. Size defaults are shown in units (``256 MiB``). Returns the groups by title,
    so the caller can add its own flags to them. Raises ``ValueError`` for an option without a group."""
    groups = {title: parser.add_argument_group(title) for title in GROUPS}
    for o in OPTIONS:
        if o.group not in groups:
            raise ValueError(f"the option {o.flag} has no help group; add it to option_help.GROUP_OF")
        group = groups[o.group]
        help_text = o.help
        default = o.default
        if o.env is not None:
            help_text += f" [env {ENV_PREFIX}{o.env}]"
            default = env.get(ENV_PREFIX + o.env) or default
        if o.kind is bool:
            group.add_argument(o.flag, dest=o.keyword, action="store_false" if o.negated else "store_true",
                               default=o.default, help=help_text)
            continue
        if o.size and isinstance(default, int):
            help_text += f" (default: {format_size(default)})"
        kwargs: dict[str, Any] = {"dest": o.keyword, "default": default, "help": help_text}
        if o.choices:
            kwargs["choices"] = o.choices
        else:
            kwargs.update(type=_cli_value(o), metavar=o.metavar)
        group.add_argument(o.flag, **kwargs)
    return groups
