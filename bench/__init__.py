"""Benchmarks: ``make bench`` (``python -m bench``) runs each and writes its figures to bench/results/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # test-only tools: emulator_tools
