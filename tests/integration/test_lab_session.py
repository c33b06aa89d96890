"""LabSession on the real machine: an error half-way through set-up leaves nothing.

Checked the way an operator would look: `ovs-vsctl list-br`, `ip netns list`,
/sys/class/net and the PIDs. Catches: an undo that is registered but does not
remove (a bridge left in OVSDB, a namespace left mounted), a namespace deleted with
its processes still running (`ip netns del` alone does that), a process left behind.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sdnctl.lab.names import bridges, unique_name
from sdnctl.lab.session import LabSession

pytestmark = pytest.mark.ovs


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_nothing_left_after_an_error_half_way_through_set_up(lab, tmp_path: Path) -> None:
    sh = lab.sh

    def netns() -> set[str]:
        return {line.split()[0] for line in sh(["ip", "netns", "list"]).splitlines() if line}

    bridge, ns, veth, inner = (unique_name() for _ in range(4))
    said: list[str] = []
    with pytest.raises(RuntimeError, match="half-way"), LabSession("test", said.append) as s:
        sh(["ovs-vsctl", "add-br", s.bridge(bridge), "--", "set", "bridge", bridge,
            "datapath_type=netdev"])
        sh(["ip", "netns", "add", s.netns(ns)])
        sh(["ip", "link", "add", s.veth(veth), "type", "veth", "peer", "name", inner])
        sh(["ip", "link", "set", inner, "netns", ns])
        sh(["ovs-vsctl", "add-port", bridge, s.port(bridge, veth)])
        sleeper = s.spawn("sleeper", ["ip", "netns", "exec", ns, "sleep", "60"],
                          tmp_path / "sleeper.log")
        # Not registered: the namespace's undo must kill it before deleting the namespace.
        stray = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"])
        assert bridge in bridges() and ns in netns()
        assert Path("/sys/class/net", veth).exists()
        assert _alive(sleeper.pid) and _alive(stray.pid)
        raise RuntimeError("half-way")
    assert bridge not in bridges()
    assert ns not in netns()
    assert not Path("/sys/class/net", veth).exists()
    assert not _alive(sleeper.pid)
    assert stray.wait(5) == -9  # killed inside its namespace, by PID
    assert s.errors == [] and not any("teardown problem" in m for m in said)
