"""Options are defined once: flags and defaults come from the settings dataclasses; bad values are errors
that name the flag on the command line and the keyword in Python."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pipeline import option_args, options
from pipeline.client.settings import ApiSettings
from pipeline.config import ColumnMap, Settings
from pipeline.errors import ConfigError
from pipeline.models import Credentials, ImagePolicy

CREDS = Credentials("access", "secret-value")


def _parse(*argv: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    option_args.add_options(parser, env or {})
    ns = parser.parse_args(list(argv))
    return {o.keyword: getattr(ns, o.keyword) for o in options.OPTIONS}


def _build(style: options.Style = "python", **kw: Any) -> Settings:
    return options.build_settings({"workspace": "w", "credentials": CREDS, **kw}, style=style)


def test_every_field_with_help_metadata_gets_a_flag_and_its_default() -> None:
    by_keyword = {o.keyword: o for o in options.OPTIONS}
    for owner in (ApiSettings, Settings, ColumnMap, ImagePolicy):
        for f in dataclasses.fields(owner):
            if f.metadata.get("help"):
                option = by_keyword[options._keyword(owner, f.name)]
                assert option.default == f.default and option.help.startswith(str(f.metadata["help"]))
    for name in ("connect_timeout", "read_timeout", "retry_window", "max_row_attempts", "max_retry_after"):
        assert f"--{name.replace('_', '-')}" in {o.flag for o in options.OPTIONS}


def test_cli_defaults_are_the_dataclass_defaults() -> None:
    settings = options.build_settings({**_parse("--workspace", "w"), "credentials": CREDS}, style="cli")
    assert settings == Settings(api=ApiSettings(workspace="w", credentials=CREDS))


def test_flags_reach_every_settings_group() -> None:
    values = _parse("--workspace", "w", "--rate", "10", "--concurrency", "4", "--read-timeout", "2.5",
                    "--path-column", "photo", "--id-column", "", "--max-side", "1024", "--keep-metadata",
                    "--no-confirm", "--processes", "--limit", "7", "--out", "r.csv", "--log-format", "json")
    s = options.build_settings({**values, "credentials": CREDS}, style="cli")
    assert (s.api.rate, s.api.concurrency, s.api.read_timeout) == (10.0, 4, 2.5)
    assert s.columns == ColumnMap(path="photo", id=None, file_name="file_name")
    assert (s.policy.max_side, s.policy.keep_metadata) == (1024, True)
    assert (s.confirm, s.use_processes, s.limit, s.out, s.log_format) == (False, True, 7, Path("r.csv"), "json")


def test_environment_supplies_workspace_and_endpoint_defaults() -> None:
    values = _parse(env={"THUMBNAIL_INGEST_WORKSPACE": "env-ws", "THUMBNAIL_INGEST_ENDPOINT": "http://h:1/"})
    s = options.build_settings({**values, "credentials": CREDS}, style="cli")
    assert (s.api.workspace, s.api.endpoint) == ("env-ws", "http://h:1")


def test_make_settings_keywords_keep_working() -> None:
    s = _build(endpoint="http://127.0.0.1:9/", out="r.parquet", journal="j.sqlite", root=".", rate=0.0,
               confirm_rate=60.0, confirm=False, concurrency=3, workers=2, use_processes=True, max_side=512,
               dry_run=False, retry_failed=False, dedupe=True, keep_metadata=True, verify_pixels=True,
               path_column="p", id_column=None, file_name_column=None, presign_path="/x/{workspace}",
               status_path="/y/{workspace}", progress=False, log_format="console", limit=5)
    assert s.api.endpoint == "http://127.0.0.1:9" and s.journal == Path("j.sqlite") and s.limit == 5
    assert s.columns == ColumnMap(path="p", id=None, file_name=None) and s.dedupe and not s.retry_failed


def test_a_dry_run_needs_no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NCLOUD_ACCESS_KEY", raising=False)
    monkeypatch.delenv("NCLOUD_SECRET_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert options.build_settings({"workspace": "w", "dry_run": True}, style="python").dry_run
    with pytest.raises(ConfigError, match="No API credentials"):
        options.build_settings({"workspace": "w"}, style="python", env={})


@pytest.mark.parametrize(
    ("kw", "cli", "python"),
    [
        ({"concurrency": 0}, "--concurrency must be at least 1; got 0", "concurrency= must be at least 1"),
        ({"concurrency": -3}, "--concurrency must be at least 1", "concurrency= must be"),
        ({"concurrency": 1000}, "--concurrency must be at most 256: at 50 presign calls/s more than 256 rows "
         "in flight cannot help", "concurrency= must be at most 256"),
        ({"workers": -1}, "--workers must be 0", "workers= must be 0"),
        ({"rate": -1.0}, "--rate must be zero", "rate= must be zero"),
        ({"read_timeout": 0.0}, "--read-timeout must be a positive", "read_timeout= must be a positive"),
        ({"limit": 0}, "--limit must be at least 1", "limit= must be at least 1"),
        ({"max_side": 100}, "--max-side must be at least 256", "max_side= must be at least 256"),
        ({"out": "r.xlsx"}, "--out must end in .parquet or .csv", "out= must end in .parquet or .csv"),
        ({"confirm": "no"}, "--no-confirm must be bool", "confirm= must be bool"),
        ({"workspace": ""}, "pass --workspace NAME or set THUMBNAIL_INGEST_WORKSPACE", "pass workspace='NAME'"),
    ],
)
def test_bad_values_are_errors_naming_the_flag_or_the_keyword(kw: dict[str, Any], cli: str, python: str) -> None:
    with pytest.raises(ConfigError) as on_cli:
        _build("cli", **kw)
    assert cli in str(on_cli.value)
    with pytest.raises(ConfigError) as on_python:
        _build("python", **kw)
    assert python in str(on_python.value) and "--" not in str(on_python.value)


def test_concurrency_cap_follows_the_rate() -> None:
    assert _build(rate=200.0, concurrency=1000).api.concurrency == 1000
    assert options.concurrency_cap(50.0) == 256 and options.concurrency_cap(0.0) == 4096
    with pytest.raises(ConfigError, match="exhaust sockets"):
        _build(rate=0.0, concurrency=5000)


def test_workers_zero_means_one_per_cpu() -> None:
    assert _build(workers=0).workers == 0


def test_python_messages_translate_flags_to_keywords() -> None:
    assert options.python_message("use --path-column or --no-confirm with --processes; --x-y too") == (
        "use path_column= or confirm=False with use_processes=; x_y= too")
    assert options.python_message("an endpoint such as https://h/a--b stays") == (
        "an endpoint such as https://h/a--b stays")


def test_python_messages_write_values_as_python_does() -> None:
    message = options.python_message
    assert message("pass --id-column '' to key the rows") == "pass id_column=None to key the rows"
    assert message("use another --journal PATH, or (--id-prefix TEXT, e.g.") == (
        "use another journal=PATH, or (id_prefix=TEXT, e.g.")
    assert message("try --endpoint http://h:80.") == "try endpoint='http://h:80'."
    assert message("--root /data/x is not a folder.", {"root": "/data/x"}) == "root='/data/x' is not a folder."
    assert message("--root /data/xy is not a folder.", {"root": "/data/x"}) == "root= /data/xy is not a folder."
    assert message("past --limit 5; run", {"limit": 5}) == "past limit=5; run"
    assert message("--rate PER_SECOND, --rate FAST, --no-confirm ON") == (
        "rate=PER_SECOND, rate= FAST, confirm=False ON")


def test_an_unknown_keyword_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"concurency=; did you mean concurrency=\?"):
        _build(concurency=3)


@pytest.mark.parametrize(("given", "expected"), [
    ("s3://bkt/archive//2024", "s3://bkt/archive//2024"), ("https://h/p", "https://h/p"),
    ("photos", Path("photos")), ("file:///data/photos", Path("/data/photos")),
])
def test_a_root_url_reaches_settings_as_written_from_the_cli_and_python(given: str, expected: Any) -> None:
    from_cli = options.build_settings({**_parse("--root", given), "workspace": "w", "credentials": CREDS},
                                      style="cli")
    assert from_cli.root == expected and type(from_cli.root) is type(expected)
    assert _build(root=given).root == expected
    assert Settings(api=from_cli.api, root=given).root == expected  # built directly, the same reading


@pytest.mark.parametrize("root", ["s3://", "ftp://h/p", "https://user:pw@h/p", "https://h/p?sig=abc"])
def test_a_malformed_remote_root_is_one_sentence_naming_the_flag_or_keyword(root: str) -> None:
    for style, name in (("cli", "--root"), ("python", "root=")):
        with pytest.raises(ConfigError) as info:
            options.build_settings({**_parse("--root", root), "workspace": "w", "credentials": CREDS}, style=style)
        message = str(info.value)
        assert message.startswith(name) and "\n" not in message and message.endswith(".")
        assert "pw" not in message and "abc" not in message
        assert style == "cli" or "--" not in message
