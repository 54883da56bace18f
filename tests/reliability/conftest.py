"""Every scenario here runs real child processes, real signals or real loads: all belong to `make reliability`
(which `.ci/run` runs on every submission), none to the two-minute `make test`."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
