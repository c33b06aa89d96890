"""What a test needs from the machine, checked the same way everywhere.

The README's set-up (`./dev setup`) provides everything the tests use: root, Open
vSwitch running, Mininet, and the programs of sdnctl/tools.py. A test that finds
one of them missing:
- under CI (`CI=true`, as CI services and .ci/run set it) FAILS, naming what is
  missing and the Debian package that provides it: it is a set-up bug, and a
  skipped suite would look like a passing one;
- elsewhere (a laptop without root, say) is SKIPPED with the same reason, which
  `./dev test` (pytest -rs) lists at the end.

Use the markers (tests/conftest.py applies them before any fixture runs):
`@pytest.mark.ovs` (root and a running Open vSwitch), `@pytest.mark.lab` (that and
Mininet), `@pytest.mark.needs("tcpdump", ...)` (programs on PATH, or "root", "ovs",
"mininet"); or call `need(...)` / `unavailable(reason)` from a test or fixture.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from typing import NoReturn

import pytest

from sdnctl.tools import explain, missing

TRUE = ("1", "true", "yes")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in TRUE


def unavailable(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere, with `reason` (what is missing and how to get it)."""
    if in_ci():
        pytest.fail(f"CI=true, and this test {reason}: the set-up must provide it (outside CI"
                    " this would be a skip)", pytrace=False)
    try:  # -rs then names the test's file and line, not this one's
        skip = pytest.skip.Exception(reason, _use_item_location=True)
    except TypeError:  # a pytest without that (private) option
        skip = pytest.skip.Exception(reason)
    raise skip


@functools.cache
def _ovs_problem() -> str | None:
    """Why Open vSwitch cannot be used from here (None: it can). Asked once a run."""
    gone = missing(("ovs-vsctl", "ovs-ofctl"))
    if gone:
        return f"needs {explain(gone)}"
    done = subprocess.run(["ovs-vsctl", "--timeout=5", "show"], capture_output=True, text=True)
    if done.returncode != 0:
        return (f"needs Open vSwitch running (ovs-vsctl show: {done.stderr.strip()!r};"
                " ./dev setup starts it)")
    return None


def _problem(what: str) -> str | None:
    if what == "root":
        return None if os.geteuid() == 0 else "needs root (network namespaces, OVS)"
    if what == "ovs":
        return _problem("root") or _ovs_problem()
    if what == "mininet":
        if shutil.which("mnexec") is None:
            return f"needs {explain(['mnexec'])}"
        try:
            import mininet.net  # noqa: F401
        except ImportError as exc:
            return f"needs Mininet's Python package in the venv ({exc}; ./dev setup)"
        return None
    return f"needs {explain([what])}" if shutil.which(what) is None else None


def need(*what: str) -> None:
    """Each of `what` ("root", "ovs", "mininet" or a program) must be here, else
    `unavailable` with every reason at once."""
    problems = list(dict.fromkeys(p for w in what if (p := _problem(w))))
    if problems:
        unavailable("; ".join(problems))


# What the markers mean. The tools: what tests/integration/conftest.py and the lab
# run for every test (namespaces, veths, offload off, pings, clean-up checks).
MARKERS: dict[str, tuple[str, ...]] = {
    "ovs": ("ovs", "ip", "ethtool", "ping", "ss"),
    "lab": ("ovs", "mininet", "ip", "ethtool", "ping", "sysctl", "pgrep"),
}
