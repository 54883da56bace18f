"""``ingest --help``: every flag in its group, the groups in order, a short usage line, sizes in units."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from pipeline import option_args, options
from pipeline.cli import main
from pipeline.option_help import GROUPS
from pipeline.options import Option
from pipeline.sizes import format_size, parse_size


def _help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def _sections(text: str) -> dict[str, list[str]]:
    """Each ``title:`` section of the help and the flags listed in it."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = found.setdefault(line[:-1], [])
        elif current is not None and (m := re.match(r"  (-\w, )?(--[a-z0-9-]+)", line)):
            current.append(m.group(2))
    return found


def test_every_option_has_a_group() -> None:
    missing = [o.flag for o in options.OPTIONS if o.group not in GROUPS]
    assert not missing, f"add these to option_help.GROUP_OF: {missing}"


def test_an_option_without_a_group_is_refused_when_the_parser_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    stray = dataclasses.replace(options.OPTIONS[0], flag="--stray", keyword="stray", group="")
    monkeypatch.setattr(option_args, "OPTIONS", (*options.OPTIONS, stray))
    with pytest.raises(ValueError, match="--stray has no help group"):
        option_args.add_options(argparse.ArgumentParser(), {})


def test_the_help_lists_the_groups_in_order_each_flag_in_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    sections = _sections(_help(capsys))
    assert [title for title in sections if title in GROUPS] == list(GROUPS)
    by_flag = {o.flag: o for o in options.OPTIONS}
    for title in GROUPS:
        for flag in sections[title]:
            if flag in by_flag:
                assert by_flag[flag].group == title, flag
    listed = [flag for title in GROUPS for flag in sections[title]]
    assert sorted(by_flag) == sorted(f for f in listed if f in by_flag)  # each once, none left in "options"
    assert {"--log-level", "--quiet", "--verbose"} <= set(sections["output and logs"])
    assert sections["options"] == ["--help"]
    assert {"--attach", "--person-max"} <= set(sections["persons (--attach)"])
    assert {"--source-max-bytes", "--s3-endpoint"} <= set(sections["sources (remote fetch)"])


def test_the_usage_is_one_line_and_the_epilog_keeps_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys)
    assert text.splitlines()[0] == "usage: thumbnail-ingest ingest [options] MANIFEST"
    assert "exit codes:" in text and "environment:" in text and "  75   another run holds" in text
    assert "SIZE sizes: 2048 (bytes)" in text


def test_sizes_are_shown_in_units(capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(_help(capsys).split())
    assert "--fetch-max-bytes-in-flight SIZE" in text and "(default: 256 MiB)" in text
    assert "--source-max-bytes SIZE" in text and "(default: 50 MiB)" in text
    assert "--max-input-bytes SIZE" in text and "(default: 200 MiB)" in text
    assert "268435456" not in text and "52428800" not in text
    assert "(default: 50)" in text and "(default: 50.0)" not in text  # --rate: no float noise


def _size_options() -> list[Option]:
    return [o for o in options.OPTIONS if o.size]


def test_every_bytes_field_is_a_size_option() -> None:
    assert {o.keyword for o in _size_options()} == {"fetch_max_bytes_in_flight", "source_max_bytes",
                                                    "prepared_max_bytes", "max_input_bytes"}
    for o in options.OPTIONS:
        assert o.size or "bytes" not in o.keyword, o.keyword


@pytest.mark.parametrize(("text", "size"), [
    ("2048", 2048), ("256M", 256 * 2**20), ("256m", 256 * 2**20), ("256MiB", 256 * 2**20),
    ("256 MiB", 256 * 2**20), ("50MB", 50_000_000), ("50 mb", 50_000_000), ("1.5GiB", 3 * 2**29),
    ("1.5G", 3 * 2**29), ("2GB", 2_000_000_000), ("64k", 65536), ("64kB", 64_000), ("64KiB", 65536),
    ("100B", 100), ("1T", 2**40), (".5M", 2**19),
])
def test_sizes_parse_by_one_rule(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "12X", "1.2.3M", "-5M", "5 M B", "1e3", "inf"])
def test_a_text_that_is_no_size_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(text)


@pytest.mark.parametrize(("size", "shown"), [
    (256 * 2**20, "256 MiB"), (50 * 2**20, "50 MiB"), (5_000_000, "5 MB"), (1500, "1500 B"), (2**30, "1 GiB"),
    (3 * 2**29, "1536 MiB"), (0, "0 B"), (1024, "1 KiB"), (2_048_000_000, "2048 MB"),
])
def test_sizes_are_shown_in_the_largest_exact_unit_and_read_back(size: int, shown: str) -> None:
    assert format_size(size) == shown
    assert parse_size(shown) == size


def test_size_flags_take_units_on_the_command_line() -> None:
    parser = argparse.ArgumentParser()
    option_args.add_options(parser, {})
    ns = parser.parse_args(["--source-max-bytes", "50MB", "--fetch-max-bytes-in-flight", "1G",
                            "--max-input-bytes", "2048"])
    settings = options.build_settings({o.keyword: getattr(ns, o.keyword) for o in options.OPTIONS}
                                      | {"workspace": "w", "dry_run": True}, style="cli")
    assert settings.fetch.source_max_bytes == 50_000_000
    assert settings.fetch.fetch_max_bytes_in_flight == 2**30
    assert settings.policy.max_input_bytes == 2048


@pytest.mark.parametrize(("value", "message"), [
    ("lots", "--source-max-bytes: expected a size such as 256M, 50MB, 1.5GiB or 2048; got 'lots'"),
    ("0", "--source-max-bytes must be at least 1 byte"),
])
def test_a_bad_size_is_a_usage_error(capsys: pytest.CaptureFixture[str], value: str, message: str) -> None:
    code = main(["ingest", "m.csv", "--workspace", "w", "--dry-run", "--source-max-bytes", value])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["--help"], ["ingest", "--help"], ["report", "--help"], ["emulator", "--help"],
                                  ["demo", "--help"], ["--version"]])
def test_help_and_version_load_no_http_arrow_or_image_library(args: list[str]) -> None:
    """Every package's public names load on first use (``pipeline.lazy``) and the subcommands' arguments live in
    leaf modules: asking for help or the version loads neither aiohttp, pyarrow, Pillow, obstore, pandas nor ray
    (a fresh interpreter, since this one has them all)."""
    import subprocess
    import sys

    probe = ("import contextlib, io, sys\n"
             "from pipeline.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
             "    try:\n        main(sys.argv[1:])\n    except SystemExit:\n        pass\n"
             "assert out.getvalue().strip(), 'nothing printed'\n"
             "heavy = ('aiohttp', 'pyarrow', 'PIL', 'obstore', 'pandas', 'ray')\n"
             "print(','.join(m for m in heavy if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "", f"{args} loaded {done.stdout.strip()}"
