"""Overlay segments on real OVS: VXLAN between hypervisor bridges, userspace datapath.

The lab of topologies/overlay.*.yaml is run like every example (the matrix must
equal the policy, and nothing may be left behind), and in addition:

- the pairs that only a tunnel can carry (overlay-only segments between hv1 and
  hv2) are among those that reached, and
- each underlay bridge really decapsulated VXLAN: its UDP/4789 flow (the one
  that hands encapsulated frames to OVS's tunnel termination) counted packets,
  read just before the lab is torn down.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from labkit import assert_nothing_left

from sdnctl.lab.names import free_prefix, rebased_topology
from sdnctl.lab.plan import plan_lab
from sdnctl.policy.load import load_policy
from sdnctl.topology.load import load_topology

pytestmark = pytest.mark.lab

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
TOPOLOGY = TOPOLOGIES / "overlay.topology.yaml"
POLICY = TOPOLOGIES / "overlay.policy.yaml"


def _assert_nothing_left(prefix: str, interfaces: tuple[str, ...]) -> None:
    assert_nothing_left(prefix, interfaces)
    routes = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert "198.51.100." not in routes, "a tunnel address was left behind"


def _decapsulated(bridge: str) -> int:
    out = subprocess.run(["ovs-ofctl", "dump-flows", bridge, "udp,tp_dst=4789"],
                         capture_output=True, text=True, check=True).stdout
    return sum(int(n) for n in re.findall(r"n_packets=(\d+)", out))


def test_overlay_lab_matches_policy_through_vxlan(tmp_path: Path, monkeypatch) -> None:
    import sdnctl.lab.build as build
    from sdnctl.lab.run import run_lab

    topology = load_topology(TOPOLOGY)
    policy = load_policy(POLICY, topology)
    prefix = free_prefix("v")
    plan = plan_lab(policy, topology, prefix)
    assert {t.switch for t in plan.tunnels} == {"hv1", "hv2"}
    counted: dict[str, int] = {}
    real_stop = build.stop_lab

    def stop_after_counting(lab: build.Lab) -> None:
        for t in lab.plan.tunnels:
            counted[t.switch] = _decapsulated(t.underlay)
        real_stop(lab)

    monkeypatch.setattr(build, "stop_lab", stop_after_counting)
    report_path = tmp_path / "report.json"

    own = rebased_topology(TOPOLOGY, tmp_path, 0x7E5)  # no twin in another lab of it
    code = run_lab(own, POLICY, report_path=report_path, prefix=prefix)

    _assert_nothing_left(prefix, plan.interfaces)
    report = json.loads(report_path.read_text())
    mismatches = [p for p in report["probes"] if p["reached"] != p["expected"]]
    assert report["mismatches"] == len(mismatches) == 0, json.dumps(mismatches, indent=1)
    assert code == 0
    reached = {(p["src"], p["dst"], p["service"]) for p in report["probes"] if p["reached"]}
    # Only a VXLAN tunnel carries these: overlay-only segments across hv1 and hv2.
    for pair in [("web1", "web2", "tcp/80"), ("web2", "web1", "icmp"),
                 ("f1", "f2", "tcp/8080"), ("app2", "web2", "tcp/80")]:
        assert pair in reached, pair
    # The tenant that reuses acme's addresses on its own VNIs stays apart.
    assert not [p for p in reached if (p[0][0] == "f") != (p[1][0] == "f")]
    assert counted.keys() == {"hv1", "hv2"}
    assert all(n > 0 for n in counted.values()), counted
