"""For every test directory: the `ovs`, `lab` and `needs(...)` markers, checked before
a test's fixtures run (tests/toolcheck.py: skip, or fail under CI=true)."""

from __future__ import annotations

import pytest

from tests import toolcheck

pytest_plugins = ["pytester"]  # tests/unit/test_tools.py runs the markers in a pytest of its own


def pytest_report_header(config: pytest.Config) -> str:
    if toolcheck.in_ci():
        return "CI=true: a test whose tool, root or Open vSwitch is missing fails"
    return "not CI: a test whose tool, root or Open vSwitch is missing is skipped (-rs lists them)"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    wanted: list[str] = []
    for name, needs in toolcheck.MARKERS.items():
        if item.get_closest_marker(name) is not None:
            wanted += needs
    for mark in item.iter_markers("needs"):
        wanted += mark.args
    if wanted:
        toolcheck.need(*wanted)
