"""A Mininet lab in a LabSession: an error after the lab and its daemon started
removes every bridge, interface, host shell and the daemon's whole process group."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from labkit import assert_nothing_left

from sdnctl.lab.names import LOCALHOST, free_port, free_prefix, rebased_topology
from sdnctl.lab.plan import plan_lab
from sdnctl.lab.session import LabSession
from sdnctl.policy.load import load_policy
from sdnctl.topology.load import load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
pytestmark = pytest.mark.lab


def _group(pgid: int) -> list[str]:
    """The processes of group `pgid` that are not zombies, as `ps` lists them."""
    rows = subprocess.run(["ps", "-eo", "pgid=,pid=,stat="], capture_output=True, text=True,
                          check=True).stdout.splitlines()
    return [r for r in rows if r.split()[0] == str(pgid) and not r.split()[2].startswith("Z")]


def test_error_after_start_up_leaves_nothing(tmp_path: Path) -> None:
    topology = load_topology(rebased_topology(TOPOLOGIES / "three-tier.topology.yaml",
                                              tmp_path, 0x7E5))
    policy = load_policy(TOPOLOGIES / "three-tier.policy.yaml", topology)
    plan = plan_lab(policy, topology, free_prefix("s"))
    with pytest.raises(RuntimeError, match="probe failed"), LabSession("test") as s:
        lab = s.lab(plan, (LOCALHOST, free_port()))
        # A stand-in daemon that starts a child of its own: the group must go.
        daemon = s.spawn("daemon", ["sh", "-c", "sleep 60 & wait"], tmp_path / "daemon.log")
        assert set(lab.hosts) == {h.vm for h in plan.hosts}
        deadline = time.monotonic() + 5
        while len(_group(daemon.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(_group(daemon.pid)) == 2  # the shell and its sleep
        raise RuntimeError("probe failed")
    assert_nothing_left(plan.prefix, plan.interfaces)
    assert daemon.returncode is not None
    assert _group(daemon.pid) == []  # its child too
