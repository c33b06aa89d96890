"""The programs sdnctl, its lab, its tests and its benchmarks run, and the Debian
package each comes from.

`./dev setup` installs every package named here (tests/unit/test_tools.py checks
its DEBS list against this table). Code that is about to run some of them calls
`require` first, so that a missing program is named with its package rather than
surfacing later as an odd failure half-way through a lab; the tests' own check
(tests/toolcheck.py) uses the same table.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable

# program -> Debian package (Debian 12). coreutils and dash (timeout, cat, sh) are
# Essential, always installed, and not listed.
PACKAGES: dict[str, str] = {
    "ovs-vsctl": "openvswitch-switch",
    "ovs-ofctl": "openvswitch-common",
    "ovs-appctl": "openvswitch-common",
    "ovsdb-server": "openvswitch-common",  # a private OVSDB: sdnctl/bench/boundnet.py
    "ovsdb-tool": "openvswitch-common",
    "ovsdb-client": "openvswitch-common",  # the fault suite's OVSDB relay: is it serving?
    "mnexec": "mininet",  # Mininet's helper; the Python package comes from pip (.venv)
    "ip": "iproute2",
    "ss": "iproute2",
    "ethtool": "ethtool",
    "ping": "iputils-ping",
    "pgrep": "procps",
    "sysctl": "procps",
    "tcpdump": "tcpdump",  # hostile-VM suite captures; tests/integration/test_observe.py
    "iperf3": "iperf3",  # benchmarks/dataplane.py
    "openssl": "openssl",  # tests/integration/test_tls.py
    "dot": "graphviz",  # sdnctl graph
    "chromium": "chromium",  # tests/integration/test_dashboard.py
    "etcd": "etcd-server",  # sdnctl run --etcd: tests and the leader-kill experiment
    "udhcpc": "udhcpc",  # a real DHCP client: tests/integration/test_dhcp_live.py
}

# Python packages of pyproject.toml's optional extras -> the extra that installs each
# (`pip install sdnctl` alone gives the controller and the command line).
EXTRAS: dict[str, str] = {"mininet": "lab", "scapy": "lab", "matplotlib": "render"}

# What building any Mininet lab runs (sdnctl/lab/build.py and Mininet itself; udhcpc:
# the lab's VMs boot their addresses by DHCP).
LAB_TOOLS = ("ovs-vsctl", "ovs-ofctl", "ovs-appctl", "mnexec", "ip", "ethtool", "sysctl",
             "udhcpc")


class ToolMissing(RuntimeError):
    """A program sdnctl needs is not on PATH."""


def package_of(tool: str) -> str:
    return PACKAGES.get(tool, tool)


def missing(tools: Iterable[str]) -> list[str]:
    """The programs of `tools` that are not on PATH, in order, each once."""
    return [t for t in dict.fromkeys(tools) if shutil.which(t) is None]


def explain(tools: Iterable[str]) -> str:
    """`tcpdump (Debian package tcpdump) and ovs-ofctl (openvswitch-common), not found
    on PATH (apt-get install tcpdump openvswitch-common, or ./dev setup)`."""
    tools = list(tools)
    named = [f"{t} ({'Debian package ' if i == 0 else ''}{package_of(t)})"
             for i, t in enumerate(tools)]
    listing = ", ".join(named[:-1]) + (" and " if len(named) > 1 else "") + named[-1]
    packages = " ".join(dict.fromkeys(package_of(t) for t in tools))
    return f"{listing}, not found on PATH (apt-get install {packages}, or ./dev setup)"


def require(*tools: str, what: str, error: type[Exception] = ToolMissing) -> None:
    """Raise `error` naming every program of `tools` that is missing, and its package."""
    gone = missing(tools)
    if gone:
        raise error(f"{what} needs {explain(gone)}")


def require_or_exit(*tools: str, what: str) -> None:
    """For scripts (benchmarks): exit with the message when a program is missing."""
    try:
        require(*tools, what=what)
    except ToolMissing as exc:
        raise SystemExit(f"{exc}") from None


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """`needs matplotlib: pip install 'sdnctl[render]' (or ./dev setup)` when `exc` is
    an optional extra's package not being installed; None for any other import."""
    package = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(package)
    if extra is None:
        return None
    return f"needs {package}: pip install 'sdnctl[{extra}]' (or ./dev setup)"
