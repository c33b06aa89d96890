"""A Mininet lab in a LabSession: an error after the lab and its daemon started
removes every bridge, interface, host shell and the daemon's whole process group."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from labkit import assert_nothing_left

from sdnctl.lab.names import LOCALHOST, free_port, free_prefix
from sdnctl.lab.plan import plan_lab
from sdnctl.lab.session import LabSession
from sdnctl.policy.load import load_policy
from sdnctl.topology.load import load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
pytestmark = pytest.mark.lab


def test_error_after_start_up_leaves_nothing(tmp_path: Path) -> None:
    topology = load_topology(TOPOLOGIES / "three-tier.topology.yaml")
    policy = load_policy(TOPOLOGIES / "three-tier.policy.yaml", topology)
    plan = plan_lab(policy, topology, free_prefix("s"))
    with pytest.raises(RuntimeError, match="probe failed"), LabSession("test") as s:
        lab = s.lab(plan, (LOCALHOST, free_port()))
        # A stand-in daemon that starts a child of its own: the group must go.
        daemon = s.spawn("daemon", ["sh", "-c", "sleep 60 & wait"], tmp_path / "daemon.log")
        assert set(lab.hosts) == {h.vm for h in plan.hosts}
        raise RuntimeError("probe failed")
    assert_nothing_left(plan.prefix, plan.interfaces)
    assert daemon.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(daemon.pid, 0)
