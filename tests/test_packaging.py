"""Packaging: a cheap ``--version`` and ``import pipeline``, the console script's target, the floors."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import pipeline
from pipeline.__main__ import run
from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("aiohttp", "pyarrow", "PIL", "pillow_heif", "obstore")


def _child(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def _imported(importtime_stderr: str) -> set[str]:
    """Top-level packages named in ``-X importtime`` output (``import time: self | cumulative | name``)."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_version_imports_no_heavy_library() -> None:
    done = _child("-X", "importtime", "-m", "pipeline", "--version")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == f"thumbnail-ingest {pipeline.__version__}\n"
    imported = _imported(done.stderr)
    assert "pipeline" in imported  # the parse worked: the child did import us
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_import_pipeline_is_lazy_until_a_name_is_used() -> None:
    code = (
        "import sys, pipeline\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "pipeline.ingest\n"
        "print('aiohttp' in sys.modules and 'pyarrow' in sys.modules)\n"
    )
    done = _child("-c", code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["[]", "True"]


def test_every_public_name_resolves_and_others_do_not() -> None:
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None
    assert set(pipeline.__all__) <= set(dir(pipeline))
    from pipeline.python_api import ingest

    assert pipeline.ingest is ingest
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = pipeline.no_such_name  # type: ignore[attr-defined]


def test_the_fast_version_says_what_argparse_says(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    slow = capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["thumbnail-ingest", "--version"])
    assert run() == 0
    assert capsys.readouterr().out == slow


def test_the_console_script_runs_the_cli_for_anything_else(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["thumbnail-ingest", "ingest", "--no-such-flag", "m.csv"])
    assert run() == 2
    assert "--no-such-flag" in capsys.readouterr().err


def test_pyproject_floors_and_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["project"]["scripts"]["thumbnail-ingest"] == "pipeline.__main__:script"
    floors = {dep.split(">=")[0].split("[")[0].lower(): dep.split(">=")[1]
              for dep in project["project"]["dependencies"] + project["project"]["optional-dependencies"]["test"]}
    assert floors["aiohttp"] == "3.12" and floors["pillow"] == "11.3" and floors["structlog"] == "25.1"
    assert project["tool"]["ruff"]["target-version"] == "py311"
