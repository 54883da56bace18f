"""What a newcomer reads after ``make demo`` and in the emulator's banner: commands that work when pasted."""

from __future__ import annotations

import shlex
from pathlib import Path

from pipeline.demo import next_steps
from pipeline.emulator import Emulator
from pipeline.emulator.runtime import banner


async def test_the_banner_counters_command_survives_a_shell(emulator: Emulator) -> None:
    line = next(x for x in banner(emulator).splitlines() if x.startswith("Counters:"))
    words = shlex.split(line.removeprefix("Counters:"))
    assert words[0] == "curl" and words[1].endswith("/_emulator/state?objects=0&arrivals=0")


def test_the_demo_ends_with_three_next_steps(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("<html></html>")
    text = next_steps(tmp_path, tmp_path / "results.parquet")
    steps = [line for line in text.splitlines() if line.lstrip()[:2] in ("1.", "2.", "3.")]
    assert len(steps) == 3 and str((tmp_path / "report.html").absolute()) in steps[0]
    assert "emulator" in steps[1] and "--dry-run" in text and "--workspace" in steps[2]
