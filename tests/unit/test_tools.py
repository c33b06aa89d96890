"""The set-up provides what the code runs, and a test that misses something says so:
skipped with the reason outside CI, failed under CI=true (tests/toolcheck.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sdnctl import tools
from tests import toolcheck

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing on PATH: every program is missing."""
    monkeypatch.setenv("PATH", str(tmp_path))


def _debs() -> set[str]:
    """The packages of ./dev's `DEBS=( ... )` (comments dropped)."""
    body = re.search(r"^DEBS=\((.*?)^\)", (ROOT / "dev").read_text(), re.M | re.S)
    assert body, "no DEBS=( ... ) in ./dev"
    return {w for line in body.group(1).splitlines() for w in line.split("#")[0].split()}


def test_dev_setup_installs_the_package_of_every_program_sdnctl_runs() -> None:
    assert set(tools.PACKAGES.values()) - _debs() == set()
    assert set(tools.LAB_TOOLS) <= set(tools.PACKAGES)


def test_require_names_each_missing_program_and_its_package(bare_path: None) -> None:
    with pytest.raises(tools.ToolMissing) as exc:
        tools.require("tcpdump", "ovs-ofctl", "ovs-appctl", "tcpdump", what="the suite")
    assert str(exc.value) == (
        "the suite needs tcpdump (Debian package tcpdump), ovs-ofctl (openvswitch-common)"
        " and ovs-appctl (openvswitch-common), not found on PATH"
        " (apt-get install tcpdump openvswitch-common, or ./dev setup)")
    with pytest.raises(ValueError, match=r"^the lab needs iperf3 \(Debian package iperf3\)"):
        tools.require("iperf3", what="the lab", error=ValueError)
    with pytest.raises(SystemExit, match=r"^bench.py needs iperf3 \(Debian package iperf3\)"):
        tools.require_or_exit("iperf3", what="bench.py")


def test_require_is_silent_when_everything_is_there(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tmp_path / "tcpdump"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    tools.require("tcpdump", what="x")
    assert tools.missing(["tcpdump", "iperf3"]) == ["iperf3"]


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
def test_under_ci_a_missing_tool_fails_the_test(bare_path: None, ci: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception) as exc:
        toolcheck.need("tcpdump")
    assert "CI=true, and this test needs tcpdump (Debian package tcpdump)" in str(exc.value)
    assert "apt-get install tcpdump" in str(exc.value)


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_outside_ci_a_missing_tool_skips_with_the_reason(bare_path: None, ci: str | None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception) as exc:
        toolcheck.need("chromium", "dot")
    assert str(exc.value) == (
        "needs chromium (Debian package chromium), not found on PATH (apt-get install"
        " chromium, or ./dev setup); needs dot (Debian package graphviz), not found on PATH"
        " (apt-get install graphviz, or ./dev setup)")


def test_root_is_a_requirement_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolcheck.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="needs root"):
        toolcheck.need("ovs")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        toolcheck.need("root")


INNER = """
import pytest

@pytest.mark.needs("sdnctl-no-such-tool")
def test_marked():
    pass

def test_unmarked():
    pass
"""


@pytest.mark.parametrize("ci", ["true", None])
def test_the_needs_marker_fails_under_ci_and_skips_otherwise(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    """The marker as tests/conftest.py applies it, in a pytest run of its own."""
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makeconftest("from tests.conftest import pytest_runtest_setup  # noqa: F401\n"
                          "def pytest_configure(config):\n"
                          "    config.addinivalue_line('markers', 'needs: test')\n")
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    if ci:
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines(["*CI=true, and this test needs sdnctl-no-such-tool*"])
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(
            ["SKIPPED [[]1[]] test_inner.py:*: needs sdnctl-no-such-tool*not found on PATH*"])
