"""The ``ingest`` options, defined once: generated from the settings dataclasses, validated by them.

Every user-facing field of ``Settings``, ``ColumnMap``, ``ApiSettings`` and ``ImagePolicy`` is one ``Option``:
its keyword (what the Python API accepts), its flag (what the CLI accepts), its default (read from the
dataclass, never repeated here) and its help. A field is user-facing when its ``metadata`` carries ``help``
(``flag`` and ``metavar`` optional) or when ``option_help.HELP_TABLE`` supplies the help for it, so a field
added later with ``help`` metadata gets a flag without touching this module.

``build_settings`` turns flat keyword values (from argparse or from ``make_settings(**kw)``) into validated
``Settings``; its ``ConfigError`` names the flag (``--path-column``) or the keyword (``path_column=``).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.client.settings import ApiSettings
from pipeline.config import ColumnMap, Settings, load_credentials
from pipeline.errors import ConfigError
from pipeline.models import Credentials
from pipeline.option_help import HELP_TABLE as _TABLE

__all__ = [
    "ENV_PREFIX",
    "OPTIONS",
    "Option",
    "add_options",
    "build_settings",
    "concurrency_cap",
    "python_message",
]

ENV_PREFIX = "THUMBNAIL_INGEST_"
Style = Literal["cli", "python"]


_KIND_METAVAR: dict[type, str] = {int: "N", float: "NUMBER", str: "TEXT", Path: "PATH"}
_UNIT_METAVAR = {"s": "SECONDS", "calls/s": "PER_SECOND", "calls/min": "PER_MINUTE", "kB/s": "KB_PER_S"}


@dataclass(frozen=True, slots=True)
class Option:
    """One user-facing setting: ``keyword`` for the Python API, ``flag`` for the CLI, ``default`` from the
    dataclass ``owner`` (field ``field``), and ``kind`` the value's type (``bool``, ``int``, ``float``,
    ``str`` or ``Path``; ``optional`` when ``None`` is allowed)."""

    keyword: str
    owner: type
    field: str
    flag: str
    help: str
    kind: type
    optional: bool
    default: Any
    metavar: str | None = None
    env: str | None = None
    choices: tuple[str, ...] = ()
    convert: Any = None
    """The owner's own reading of a text or path value (its ``metadata["convert"]``), instead of ``kind``'s."""

    @property
    def negated(self) -> bool:
        """Whether the flag switches a default-on setting off (``--no-confirm`` sets ``confirm=False``)."""
        return self.kind is bool and self.default is True


def _keyword(owner: type, name: str) -> str:
    return f"{name}_column" if owner is ColumnMap else name


def _kind(hint: Any) -> tuple[type, bool]:
    args = typing.get_args(hint)
    optional = type(None) in args
    if args:
        hint = next(a for a in args if a is not type(None))
    return (hint if isinstance(hint, type) else str), optional


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _collect(owner: type) -> list[Option]:
    hints = typing.get_type_hints(owner)
    found: list[Option] = []
    for f in dataclasses.fields(owner):
        kind, optional = _kind(hints[f.name])
        if dataclasses.is_dataclass(kind) and kind is not Credentials:
            found.extend(_collect(kind))
            continue
        spec = _TABLE.get((owner, f.name))
        help_text = str(f.metadata.get("help") or (spec.help if spec else ""))
        if not help_text:
            continue
        keyword = _keyword(owner, f.name)
        default = _default(f)
        flag = str(f.metadata.get("flag") or (spec.flag if spec and spec.flag else "")) or (
            "--no-" if kind is bool and default is True else "--") + keyword.replace("_", "-")
        unit = str(f.metadata.get("unit", ""))
        metavar = f.metadata.get("metavar") or (spec.metavar if spec else None) or _UNIT_METAVAR.get(unit)
        if unit and unit not in help_text:
            help_text = f"{help_text} [{unit}]"
        found.append(Option(keyword, owner, f.name, flag, help_text, kind, optional, default,
                            None if kind is bool else (metavar or _KIND_METAVAR.get(kind, "VALUE")),
                            spec.env if spec else None,
                            spec.choices if spec else (), f.metadata.get("convert")))
    return found


OPTIONS: tuple[Option, ...] = tuple(_collect(Settings))
"""Every ``ingest`` option, in the dataclasses' field order."""

_BY_KEYWORD = {o.keyword: o for o in OPTIONS}
_BY_FLAG = {o.flag: o for o in OPTIONS}
_EXTRA_KEYWORDS = ("credentials",)

CONCURRENCY_FLOOR = 256
"""Rows in flight that always make sense: at 50 presigns/s a row spends a few seconds between presign and
its confirmed upload, so a few hundred rows keep the presign cap busy; more only wait in line."""


def concurrency_cap(rate: float) -> int:
    """The most rows in flight that can help at ``rate`` presign calls/s (0 = unlimited): five seconds' worth
    of presigns, at least ``CONCURRENCY_FLOOR``; 4096 when unlimited (past that, sockets and memory run out)."""
    if rate <= 0:
        return 4096
    return max(CONCURRENCY_FLOOR, math.ceil(rate * 5))


def _cli_value(option: Option) -> Any:
    def convert(text: str) -> Any:
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

    convert.__name__ = option.kind.__name__
    return convert


def add_options(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """Add one argparse option per ``Option`` (``dest`` = its keyword; defaults from the dataclasses, or from
    ``THUMBNAIL_INGEST_<ENV>`` in ``env`` where the option names one)."""
    for o in OPTIONS:
        help_text = o.help
        default = o.default
        if o.env is not None:
            help_text += f" [env {ENV_PREFIX}{o.env}]"
            default = env.get(ENV_PREFIX + o.env) or default
        if o.kind is bool:
            parser.add_argument(o.flag, dest=o.keyword, action="store_false" if o.negated else "store_true",
                                default=o.default, help=help_text)
            continue
        kwargs: dict[str, Any] = {"dest": o.keyword, "default": default, "help": help_text}
        if o.choices:
            kwargs["choices"] = o.choices
        else:
            kwargs.update(type=_cli_value(o), metavar=o.metavar)
        parser.add_argument(o.flag, **kwargs)


def python_message(message: str) -> str:
    """``message`` with CLI flags replaced by Python keywords: ``--path-column`` -> ``path_column=``,
    ``--no-confirm`` -> ``confirm=False``, ``--processes`` -> ``use_processes=``."""

    def swap(m: re.Match[str]) -> str:
        option = _BY_FLAG.get(m.group(0))
        if option is None:
            return m.group(0)[2:].replace("-", "_") + "="
        return f"{option.keyword}=False" if option.negated else f"{option.keyword}="

    return re.sub(r"(?<![\w-])--[a-z][a-z0-9-]*", swap, message)


def _name(option: Option, style: Style) -> str:
    return option.flag if style == "cli" else f"{option.keyword}="


def _check_type(option: Option, value: Any, style: Style) -> Any:
    """Coerce what the Python API may pass (``str`` paths, ``int`` rates); refuse a wrong type in one sentence."""
    if value is None:
        if option.optional or option.kind is bool:
            return option.default if option.kind is bool else None
        raise ConfigError(f"{_name(option, style)} may not be None.")
    if option.convert is not None and isinstance(value, (str, os.PathLike)):
        return option.convert(value)
    if option.kind is Path and isinstance(value, (str, Path)):
        return Path(value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(option.kind, True)
    if not ok:
        raise ConfigError(f"{_name(option, style)} must be {option.kind.__name__}; got {value!r}.")
    return float(value) if option.kind is float else value


def _check_bounds(values: Mapping[str, Any], style: Style) -> None:
    """Bounds the dataclasses do not know: the concurrency the caps can use, a positive ``limit``."""
    concurrency = values.get("concurrency")
    rate = values.get("rate", _BY_KEYWORD["rate"].default)
    if isinstance(concurrency, int) and isinstance(rate, (int, float)) and concurrency > concurrency_cap(rate):
        cap = concurrency_cap(rate)
        why = (f"at {rate:g} presign calls/s more than {cap} rows in flight cannot help (they only wait in line)"
               if rate > 0 else f"more than {cap} rows in flight exhaust sockets and memory")
        raise ConfigError(f"{_name(_BY_KEYWORD['concurrency'], style)} must be at most {cap}: {why}; "
                          f"got {concurrency}.")
    limit = values.get("limit")
    if limit is not None and limit < 1:
        raise ConfigError(f"{_name(_BY_KEYWORD['limit'], style)} must be at least 1 (or left out for all rows); "
                          f"got {limit}.")


def _build(values: Mapping[str, Any], style: Style, env: Mapping[str, str] | None) -> Settings:
    for name in values:
        if name not in _BY_KEYWORD and name not in _EXTRA_KEYWORDS:
            close = difflib.get_close_matches(name, [*_BY_KEYWORD, *_EXTRA_KEYWORDS], n=1)
            raise ConfigError(f"Unknown option {name}=" + (f"; did you mean {close[0]}=?" if close else ""))
    if not values.get("workspace"):
        raise ConfigError("A workspace is required: pass --workspace NAME or set THUMBNAIL_INGEST_WORKSPACE."
                          if style == "cli" else "A workspace is required: pass workspace='NAME'.")
    given = {k: _check_type(_BY_KEYWORD[k], v, style) for k, v in values.items() if k in _BY_KEYWORD}
    if style == "cli":
        # On the command line an empty column name means "no such column".
        for key in ("id_column", "file_name_column", "person_column", "person_id_column", "primary_column"):
            if given.get(key) == "":
                given[key] = None
    _check_bounds(given, style)
    if isinstance(given.get("endpoint"), str):
        given["endpoint"] = given["endpoint"].rstrip("/")
    credentials = values.get("credentials")
    if credentials is None:
        credentials = Credentials("dry-run", "dry-run") if given.get("dry_run") else load_credentials(env)
    by_owner: dict[type, dict[str, Any]] = {ApiSettings: {"credentials": credentials}}
    for key, value in given.items():
        option = _BY_KEYWORD[key]
        by_owner.setdefault(option.owner, {})[option.field] = value
    built = _construct(Settings, by_owner)
    assert isinstance(built, Settings)
    return built


def _construct(owner: type, by_owner: Mapping[type, Mapping[str, Any]]) -> Any:
    """``owner(...)`` from the values given for its fields, nested settings dataclasses built the same way."""
    hints = typing.get_type_hints(owner)
    kwargs = dict(by_owner.get(owner, {}))
    for f in dataclasses.fields(owner):
        kind, _ = _kind(hints[f.name])
        if dataclasses.is_dataclass(kind) and kind is not Credentials and f.name not in kwargs:
            kwargs[f.name] = _construct(kind, by_owner)
    return owner(**kwargs)


def build_settings(values: Mapping[str, Any], *, style: Style, env: Mapping[str, str] | None = None) -> Settings:
    """Validated ``Settings`` from flat keyword values (``workspace``, ``endpoint``, ``rate``, ``concurrency``,
    ``path_column``, ``use_processes``, ``confirm``, ... and ``credentials``); omitted ones take the dataclass
    defaults. Credentials default to ``env`` (or the process environment), then ``~/.ncloud/configure``; a dry
    run needs none.

    Raises ``ConfigError`` with one sentence naming the culprit as a flag (``style="cli"``) or as a keyword
    (``style="python"``: ``path_column=``, ``confirm=False``).
    """
    try:
        return _build(values, style, env)
    except ConfigError as exc:
        if style == "python":
            raise type(exc)(python_message(str(exc))) from None
        raise
