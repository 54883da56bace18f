"""The ``ingest`` options, defined once: generated from the settings dataclasses, validated by them.

Every user-facing field of ``Settings``, ``ColumnMap``, ``ApiSettings`` and ``ImagePolicy`` is one ``Option``:
its keyword (what the Python API accepts), its flag (what the CLI accepts), its default (read from the
dataclass, never repeated here) and its help. A field is user-facing when its ``metadata`` carries ``help``
(``flag`` and ``metavar`` optional) or when ``option_help.HELP_TABLE`` supplies the help for it, so a field
added later with ``help`` metadata gets a flag without touching this module.

Each option belongs to one help group (``option_help.GROUP_OF``, or the field's ``metadata["group"]``); byte
sizes (``option_help.SIZES``, or ``metadata["unit"] == "bytes"``) take ``256M``, ``50MB``, ``1.5GiB`` or
``2048`` (``pipeline.sizes``) on the command line and in Python. ``option_args.add_options`` makes the flags.

``build_settings`` turns flat keyword values (from argparse or from ``make_settings(**kw)``) into validated
``Settings``; its ``ConfigError`` names the flag (``--path-column``) or the keyword (``path_column=``).
"""

from __future__ import annotations

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
from pipeline.option_help import GROUP_OF, SIZES, Spec
from pipeline.option_help import HELP_TABLE as _TABLE
from pipeline.sizes import parse_size

__all__ = [
    "ENV_PREFIX",
    "OPTIONS",
    "Option",
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
    group: str = ""
    """The help group the flag is listed under (``option_help.GROUPS``)."""
    size: bool = False
    """A byte size: ``256M``, ``50MB``, ``1.5GiB`` or ``2048`` (``pipeline.sizes``)."""

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
    """The options of ``owner``'s fields, nested settings classes flattened in place (field order); a field
    without help text is no option."""
    hints = typing.get_type_hints(owner)
    found: list[Option] = []
    for f in dataclasses.fields(owner):
        kind, optional = _kind(hints[f.name])
        if dataclasses.is_dataclass(kind) and kind is not Credentials:
            found.extend(_collect(kind))
        elif (option := _option(owner, f, kind, optional)) is not None:
            found.append(option)
    return found


def _option(owner: type, f: dataclasses.Field[Any], kind: type, optional: bool) -> Option | None:
    """The option of one field: its text from the field's metadata, else from ``option_help.HELP_TABLE``."""
    spec = _TABLE.get((owner, f.name))
    help_text = str(f.metadata.get("help") or (spec.help if spec else ""))
    if not help_text:
        return None
    keyword = _keyword(owner, f.name)
    default = _default(f)
    flag = str(f.metadata.get("flag") or (spec.flag if spec and spec.flag else "")) or (
        "--no-" if kind is bool and default is True else "--") + keyword.replace("_", "-")
    size = f.metadata.get("unit") == "bytes" or (owner, f.name) in SIZES
    metavar, help_text = _metavar(f, spec, kind, help_text, size=size)
    return Option(keyword, owner, f.name, flag, help_text, kind, optional, default, metavar,
                  spec.env if spec else None, spec.choices if spec else (), f.metadata.get("convert"),
                  str(f.metadata.get("group") or GROUP_OF.get((owner, f.name), "")), size)


def _metavar(f: dataclasses.Field[Any], spec: Spec | None, kind: type, help_text: str, *,
             size: bool) -> tuple[str | None, str]:
    """The flag's metavar (``None`` for a switch) and its help text, the field's unit added where neither
    names it."""
    unit = str(f.metadata.get("unit", ""))
    metavar = "SIZE" if size else (
        f.metadata.get("metavar") or (spec.metavar if spec else None) or _UNIT_METAVAR.get(unit))
    if unit and unit not in help_text and not size and metavar != _UNIT_METAVAR.get(unit):
        help_text = f"{help_text} [{unit}]"
    return (None if kind is bool else (metavar or _KIND_METAVAR.get(kind, "VALUE"))), help_text


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


def python_message(message: str, values: Mapping[str, Any] | None = None) -> str:
    """``message`` with CLI flags replaced by Python keywords: ``--path-column`` -> ``path_column=``,
    ``--no-confirm`` -> ``confirm=False``, ``--processes`` -> ``use_processes=``, ``--id-column ''`` ->
    ``id_column=None``, ``--journal PATH`` -> ``journal=PATH``, ``--endpoint http://h`` -> ``endpoint='http://h'``;
    a flag followed by the value the caller gave in ``values`` (``--root /data``) becomes ``root='/data'``."""
    for keyword, value in (values or {}).items():
        option = _BY_KEYWORD.get(keyword)
        if option is None or value is None or isinstance(value, bool):
            continue
        shown = {str(value), str(Path(value).absolute())} if isinstance(value, (str, os.PathLike)) else {
            str(value)}
        written = f"{keyword}={_shown(value)}".replace("\\", "\\\\")  # a replacement: backslashes doubled
        for text in sorted(shown, key=len, reverse=True):  # the longest first: "/a/b" before "/a"
            message = re.sub(rf"(?<![\w-]){re.escape(option.flag)} {re.escape(text)}(?![\w/.-])", written, message)

    def swap(m: re.Match[str]) -> str:
        option = _BY_FLAG.get(m.group(1))
        keyword = option.keyword if option is not None else m.group(1)[2:].replace("-", "_")
        if m.group(2) is not None:  # "--id-column ''": no such column
            return f"{keyword}=None"
        if m.group(4) is not None:  # "--endpoint http://host": a value as Python writes it
            return f"{keyword}={m.group(4)!r}"
        if option is not None and option.negated:
            return f"{keyword}=False" + (f" {m.group(3)}" if m.group(3) else "")
        if m.group(3) is not None and option is not None and m.group(3) == option.metavar:
            return f"{keyword}={m.group(3)}"
        return f"{keyword}=" + (f" {m.group(3)}" if m.group(3) else "")

    url = r"[a-z][a-z0-9+.-]*://[^\s'\",;]*[^\s'\",;.)]"
    return re.sub(rf"(?<![\w-])(--[a-z][a-z0-9-]*)(?:( '')| ([A-Z][A-Z_|]*)\b| ({url}))?", swap, message)


def _shown(value: Any) -> str:
    """How a Python caller wrote ``value``: a path as its text in quotes, a number as is."""
    return repr(str(value)) if isinstance(value, (str, os.PathLike)) else repr(value)


def _name(option: Option, style: Style) -> str:
    return option.flag if style == "cli" else f"{option.keyword}="


def _check_type(option: Option, value: Any, style: Style) -> Any:
    """Coerce what the Python API may pass (``str`` paths, ``int`` rates); refuse a wrong type in one sentence."""
    if value is None:
        if option.optional or option.kind is bool:
            return option.default if option.kind is bool else None
        raise ConfigError(f"{_name(option, style)} may not be None.")
    if option.size:
        try:
            size = parse_size(value)
        except ValueError as exc:
            raise ConfigError(f"{_name(option, style)} {exc}.") from None
        if size < 1:
            raise ConfigError(f"{_name(option, style)} must be at least 1 byte; got {value!r}.")
        return size
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
            raise type(exc)(python_message(str(exc), values)) from None
        raise
