"""Full-size packets cross the fabric: the VLAN tag and MPLS label need 8 more bytes,
and the lab's fabric links carry them (a 1500-byte IP packet between hypervisors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdnctl.lab.controller import daemon_command, wait_until_programmed
from sdnctl.lab.names import LOCALHOST, free_ports, free_prefix, rebased_topology
from sdnctl.lab.plan import plan_lab
from sdnctl.lab.session import LabSession
from sdnctl.policy.load import load_policy
from sdnctl.topology.load import load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
pytestmark = pytest.mark.lab


def test_full_size_packets_cross_hypervisors(tmp_path):
    # dpids of its own: the same example may run in another lab on the machine.
    topo_path = rebased_topology(TOPOLOGIES / "three-tier.topology.yaml", tmp_path, 0x7E5)
    policy_path = TOPOLOGIES / "three-tier.policy.yaml"
    topology = load_topology(topo_path)
    plan = plan_lab(load_policy(policy_path, topology), topology, prefix=free_prefix("m"))
    port, api_port = free_ports(2)
    api = f"{LOCALHOST}:{api_port}"
    with LabSession("test") as session:
        lab = session.lab(plan, (LOCALHOST, port))
        daemon = session.spawn("controller daemon",
                               daemon_command(policy_path, topo_path, f"{LOCALHOST}:{port}", api),
                               session.tmp / "daemon.log")
        assert wait_until_programmed(api, plan, daemon) is None
        web1, web2 = lab.hosts["web1"], lab.hosts["web2"]  # hv1 and hv2: across the leaf
        target = str(next(h.ip for h in plan.hosts if h.vm == "web2"))
        # 1472 bytes of ICMP data = a 1500-byte IP packet, don't-fragment set.
        out = web1.cmd(f"ping -M do -s 1472 -c 3 -i 0.2 -W 1 {target}")
        assert " 0% packet loss" in out, out
        # The other direction too.
        back = web2.cmd(f"ping -M do -s 1472 -c 3 -i 0.2 -W 1 "
                        f"{next(h.ip for h in plan.hosts if h.vm == 'web1')}")
        assert " 0% packet loss" in back, back
