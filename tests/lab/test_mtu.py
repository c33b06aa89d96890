"""Full-size packets cross the fabric: the VLAN tag and MPLS label need 8 more bytes,
and the lab's fabric links carry them (a 1500-byte IP packet between hypervisors)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sdnctl.lab.build import build_lab, stop_lab
from sdnctl.lab.plan import plan_lab
from sdnctl.lab.run import (
    daemon_command,
    free_port,
    start_daemon,
    stop_daemon,
    wait_until_programmed,
)
from sdnctl.policy.load import load_policy
from sdnctl.topology.load import load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
pytestmark = pytest.mark.lab


def test_full_size_packets_cross_hypervisors(tmp_path):
    topo_path = TOPOLOGIES / "three-tier.topology.yaml"
    policy_path = TOPOLOGIES / "three-tier.policy.yaml"
    topology = load_topology(topo_path)
    plan = plan_lab(load_policy(policy_path, topology), topology,
                    prefix="m" + uuid.uuid4().hex[:2])
    port, api_port = free_port(), free_port()
    lab = build_lab(plan, ("127.0.0.1", port))
    daemon = None
    try:
        daemon = start_daemon(daemon_command(policy_path, topo_path, f"127.0.0.1:{port}",
                                             f"127.0.0.1:{api_port}"), tmp_path / "daemon.log")
        plugged = {h.vm: f"{h.switch}:{h.port}" for h in plan.hosts}
        assert wait_until_programmed(f"127.0.0.1:{api_port}", sorted(plan.bridges), plugged,
                                     daemon, 60) is None
        web1, web2 = lab.hosts["web1"], lab.hosts["web2"]  # hv1 and hv2: across the leaf
        target = str(next(h.ip for h in plan.hosts if h.vm == "web2"))
        # 1472 bytes of ICMP data = a 1500-byte IP packet, don't-fragment set.
        out = web1.cmd(f"ping -M do -s 1472 -c 3 -i 0.2 -W 1 {target}")
        assert " 0% packet loss" in out, out
        # The other direction too.
        back = web2.cmd(f"ping -M do -s 1472 -c 3 -i 0.2 -W 1 "
                        f"{next(h.ip for h in plan.hosts if h.vm == 'web1')}")
        assert " 0% packet loss" in back, back
    finally:
        if daemon is not None:
            stop_daemon(daemon)
        stop_lab(lab)
