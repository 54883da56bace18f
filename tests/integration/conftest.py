"""Fixtures for end-to-end runs: a mixed archive on disk and settings pointing at an emulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import write_manifest

from pipeline.config import Settings
from pipeline.corpus import make_corpus
from pipeline.emulator import Emulator
from pipeline.python_api import make_settings
from pipeline.samples import make_jpeg

FAST = {"rate": 0.0, "confirm_rate": 0.0}
"""Client limits lifted: the cap tests live in test_client.py; here we test behaviour, not pacing."""



@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, str]]]:
    """~200 rows: the 22-kind corpus plus plain photos and a few duplicates.

    Returns the manifest path and, per row in order, ``(path text, expected action or reason)``.
    """
    root = tmp_path_factory.mktemp("archive")
    expected: list[tuple[str, str]] = [
        (str(p.relative_to(root)), outcome) for p, outcome in make_corpus(root / "kinds", scale=0.25)
    ]
    plain = root / "plain"
    plain.mkdir()
    for i in range(172):
        make_jpeg(plain / f"person_{i:03d}.jpg", 320 + (i % 7) * 16, 300 + (i % 5) * 20, seed=100 + i, quality=80)
        expected.append((f"plain/person_{i:03d}.jpg", "passthrough"))
    expected += [(expected[-1][0], "passthrough"), (expected[-2][0], "passthrough")]  # duplicates
    expected += [("", "missing_path")]
    rows = [{"id": f"r{i:04d}", "path": p, "team": f"t{i % 3}"} for i, (p, _) in enumerate(expected)]
    manifest = write_manifest(root / "manifest.csv", rows)
    return manifest, expected


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    """``settings_for(emu, **overrides)``: settings aimed at ``emu`` with results and journal in tmp_path."""

    def build(emu: Emulator, **overrides: Any) -> Settings:
        options: dict[str, Any] = {
            "workspace": emu.workspace, "endpoint": emu.base_url, "credentials": emu.credentials,
            "out": tmp_path / "results.parquet", "journal": tmp_path / "journal.sqlite", "progress": False,
            **FAST,
        }
        options.update(overrides)
        return make_settings(**options)

    return build
