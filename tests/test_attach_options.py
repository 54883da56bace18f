"""``--attach`` and its options generated from the settings; the person columns read from a manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_manifest

from pipeline.config import Credentials
from pipeline.errors import ConfigError, ManifestError
from pipeline.manifest import Manifest
from pipeline.options import OPTIONS, build_settings

CREDS = Credentials("a", "b")


def test_attach_flags_come_from_the_settings() -> None:
    flags = {o.flag: o for o in OPTIONS}
    for flag in ("--attach", "--attach-rate", "--person-max", "--attach-within", "--person-column",
                 "--person-id-column", "--primary-column"):
        assert flag in flags, flag
    assert flags["--attach"].default is False and flags["--person-max"].default == 100


def test_settings_from_flags_and_keywords() -> None:
    s = build_settings({"workspace": "w", "attach": True, "person_max": 7, "person_column": "",
                        "credentials": CREDS}, style="cli")
    assert s.attach and s.persons.person_max == 7 and s.columns.person is None
    with pytest.raises(ConfigError, match="person_max="):
        build_settings({"workspace": "w", "person_max": 0, "credentials": CREDS}, style="python")
    with pytest.raises(ConfigError, match=r"^--person-max must be 1 to 100 \(the API holds at most 100 .*got 101\.$"):
        build_settings({"workspace": "w", "attach": True, "person_max": 101, "credentials": CREDS}, style="cli")
    assert build_settings({"workspace": "w", "person_max": 100, "credentials": CREDS},
                          style="cli").persons.person_max == 100
    with pytest.raises(ConfigError, match="--dedupe cannot be used with --attach"):
        build_settings({"workspace": "w", "attach": True, "dedupe": True, "credentials": CREDS}, style="cli")


def test_the_manifest_reads_person_columns(tmp_path: Path) -> None:
    rows = [{"id": "a", "path": "a.jpg", "person": "Ann", "person_id": "", "primary": "YES"},
            {"id": "b", "path": "b.jpg", "person": "Ann", "person_id": "", "primary": "0"},
            {"id": "c", "path": "c.jpg", "person": "", "person_id": "77", "primary": "true"},
            {"id": "d", "path": "d.jpg", "person": "", "person_id": "", "primary": ""}]
    manifest = Manifest.open(write_manifest(tmp_path / "m.csv", rows))
    got = [(r.person, r.person_id, r.primary) for b in manifest.row_batches() for r in b.rows]
    assert got == [("Ann", None, True), ("Ann", None, False), (None, "77", True), (None, None, False)]
    plain = Manifest.open(write_manifest(tmp_path / "p.csv", [{"id": "a", "path": "a.jpg"}]))
    assert [(r.person, r.primary) for b in plain.row_batches() for r in b.rows] == [(None, False)]
    settings = build_settings({"workspace": "w", "person_column": "who", "credentials": CREDS}, style="cli")
    with pytest.raises(ManifestError, match="'who'"):
        Manifest.open(tmp_path / "p.csv", settings.columns)
