"""`sdnctl check` refuses allowed pairs that no path connects: exactly the pairs
`verify --offline` would find BLOCKED for want of a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdnctl.bindings import planned_bindings
from sdnctl.cli import main
from sdnctl.compile.compiler import compile_network
from sdnctl.policy.load import load_policy
from sdnctl.topology.load import load_topology
from sdnctl.topology.paths import carriage
from sdnctl.verify.live import verify_offline
from sdnctl.verify.nopath import pairs_without_path

POLICY = """\
version: 1
tenants:
  acme:
    default: allow
    segments:
      web: {vlan: 10, subnet: 10.1.10.0/24, gateway: 10.1.10.1}
vms:
  w1: {tenant: acme, segment: web, mac: "02:00:00:00:10:11", ip: 10.1.10.11, host: hv1}
  w2: {tenant: acme, segment: web, mac: "02:00:00:00:10:12", ip: 10.1.10.12, host: hv2}
  w3: {tenant: acme, segment: web, mac: "02:00:00:00:10:13", ip: 10.1.10.13, host: hv3}
"""

TOPOLOGIES = {
    # hv3 has no links at all.
    "island": """\
version: 1
switches:
  hv1: {dpid: 1, role: hypervisor}
  hv2: {dpid: 2, role: hypervisor}
  hv3: {dpid: 3, role: hypervisor}
  leaf: {dpid: 16, role: fabric}
links:
  - {a: "hv1:10", b: "leaf:1"}
  - {a: "hv2:10", b: "leaf:2"}
""",
    # hv1–hv2–hv3: hv2 is not transit, so hv1 and hv3 never meet.
    "chain": """\
version: 1
switches:
  hv1: {dpid: 1, role: hypervisor}
  hv2: {dpid: 2, role: hypervisor}
  hv3: {dpid: 3, role: hypervisor}
links:
  - {a: "hv1:10", b: "hv2:10"}
  - {a: "hv2:11", b: "hv3:10"}
""",
    # Two fabrics: hv1 on one, hv3 on the other, hv2 on both (still not transit).
    "split": """\
version: 1
switches:
  hv1: {dpid: 1, role: hypervisor}
  hv2: {dpid: 2, role: hypervisor}
  hv3: {dpid: 3, role: hypervisor}
  leafa: {dpid: 16, role: fabric}
  leafb: {dpid: 17, role: fabric}
links:
  - {a: "hv1:10", b: "leafa:1"}
  - {a: "hv2:10", b: "leafa:2"}
  - {a: "hv2:11", b: "leafb:2"}
  - {a: "hv3:10", b: "leafb:1"}
""",
}
STRANDED = {"island": {("w1", "w3"), ("w2", "w3"), ("w3", "w1"), ("w3", "w2")},
            "chain": {("w1", "w3"), ("w3", "w1")},
            "split": {("w1", "w3"), ("w3", "w1")}}


def _files(tmp_path: Path, name: str, policy: str = POLICY) -> tuple[str, str]:
    p, t = tmp_path / "p.yaml", tmp_path / "t.yaml"
    p.write_text(policy)
    t.write_text(TOPOLOGIES[name])
    return str(p), str(t)


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_check_names_exactly_the_pairs_verify_offline_finds_blocked(tmp_path, capsys, name):
    p, t = _files(tmp_path, name)
    topology = load_topology(t)
    policy = load_policy(p, topology)
    bindings = planned_bindings(policy, topology)
    report = verify_offline(policy, topology, bindings,
                            compile_network(policy, topology, bindings))
    blocked = {pair for m in report.pairs.mismatches if m.kind == "BLOCKED" for pair in m.pairs}
    assert blocked == STRANDED[name]
    # check: one error per destination VM, naming every source it cannot meet.
    named = set()
    for problem in pairs_without_path(policy, topology):
        dst = problem.message.split()[1]
        named |= {(src, dst) for src in ("w1", "w2", "w3") if f"{src} (hv" in problem.message}
    assert named == STRANDED[name]
    assert main(["check", "-p", p, "-t", t]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{p}:")
    assert "no path connects their hypervisors" in err and "never transit" in err


def test_a_deny_tenant_without_rules_between_them_is_fine(tmp_path, capsys):
    deny = POLICY.replace("default: allow", "default: deny")
    p, t = _files(tmp_path, "chain", deny)
    assert main(["check", "-p", p, "-t", t]) == 0
    # Allow w1 -> w3 only: that one pair, nothing about w2.
    one = deny.replace(
        "vms:\n", "    groups:\n      a: {vms: [w1]}\n      c: {vms: [w3]}\n"
                  "    rules:\n      - {from: a, to: c, allow: [tcp/22]}\nvms:\n")
    p, t = _files(tmp_path, "chain", one)
    assert main(["check", "-p", p, "-t", t]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{p}:15: vm w3 (on hv3): the policy lets "
                                               "w1 (hv1) reach it")


def test_a_pair_allowed_in_ipv6_only_needs_a_path_too(tmp_path, capsys):
    dual = POLICY.replace("default: allow", "default: deny").replace(
        "gateway: 10.1.10.1}", 'gateway: 10.1.10.1, subnet6: "2001:db8:10::/64"}')
    one = dual.replace(
        "vms:\n", "    groups:\n      a: {vms: [w1]}\n      c: {vms: [w3]}\n"
                  "    rules:\n      - {from: a, to: c, allow: [tcp/22], family: ipv6}\nvms:\n")
    p, t = _files(tmp_path, "chain", one)
    assert main(["check", "-p", p, "-t", t]) == 2
    assert "vm w3 (on hv3): the policy lets w1 (hv1) reach it" in capsys.readouterr().err


def test_tunnels_connect_hypervisors_for_overlay_segments_only(tmp_path):
    island = TOPOLOGIES["island"].replace(
        "hv1: {dpid: 1, role: hypervisor}",
        "hv1: {dpid: 1, role: hypervisor, tunnel_ip: 198.51.100.1}").replace(
        "hv3: {dpid: 3, role: hypervisor}",
        "hv3: {dpid: 3, role: hypervisor, tunnel_ip: 198.51.100.3}")
    t = tmp_path / "t.yaml"
    t.write_text(island)
    fabric = carriage(load_topology(str(t)))
    assert fabric.connected("hv1", "hv2") and not fabric.connected("hv1", "hv3")
    assert fabric.connected("hv1", "hv3", overlay=True)
    assert not fabric.connected("hv2", "hv3", overlay=True)  # hv2 has no tunnel endpoint
