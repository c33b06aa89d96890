"""Group-to-group rules cost N + M + K flows, not N x M x K."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType

import pytest

from sdnctl.bindings import planned_bindings
from sdnctl.compile.acl import port_range_masks, service_matches
from sdnctl.compile.compiler import compile_network
from sdnctl.policy.model import VM, Default, Group, Policy, Proto, Rule, Segment, Service, Tenant
from sdnctl.verify.reach import probe
from sdnctl.verify.simulate import Simulator
from tests.unit.netgen import topology_of


def rule_policy(n_src: int, n_dst: int, n_svc: int) -> Policy:
    seg = Segment("t", "s", 10, IPv4Network("10.0.0.0/16"), None)
    vms = {}
    for i in range(n_src + n_dst):
        role = "src" if i < n_src else "dst"
        name = f"{role}{i}"
        vms[name] = VM(name, "t", "s", f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}",
                       IPv4Address("10.0.1.0") + i, MappingProxyType({"role": role}), "hv1", None)
    groups = {r: Group("t", r, MappingProxyType({"role": r})) for r in ("src", "dst")}
    services = tuple(Service(Proto.TCP, 1000 + i, 1000 + i) for i in range(n_svc))
    tenant = Tenant("t", Default.DENY, MappingProxyType({"s": seg}), MappingProxyType(groups),
                    (Rule("t", "src", "dst", services),))
    return Policy(MappingProxyType({"t": tenant}), MappingProxyType(vms))


@pytest.mark.parametrize(("n", "m", "k"), [(10, 10, 3), (40, 10, 1), (10, 40, 7), (60, 60, 5)])
def test_rule_flows_grow_as_n_plus_m_plus_k(n, m, k):
    policy = rule_policy(n, m, k)
    topo = topology_of("single")
    flows = compile_network(policy, topo, planned_bindings(policy, topo))["hv1"]
    rule_flows = [f for f in flows.in_stage("acl") if f.owner.startswith(("rule:", "vm:"))]
    assert len(rule_flows) == n + m + k + 1  # one clause flow each, plus the conj_id flow
    assert sum(f.owner.startswith("vm:") for f in rule_flows) == n + m


def test_a_conjunctive_rule_still_allows_exactly_its_pairs():
    policy = rule_policy(3, 3, 2)
    topo = topology_of("single")
    bindings = planned_bindings(policy, topo)
    sim = Simulator(compile_network(policy, topo, bindings), topo)
    allowed, denied = Service(Proto.TCP, 1001, 1001), Service(Proto.TCP, 1002, 1002)
    assert probe(sim, policy, bindings, "src0", "dst4", allowed).reached
    assert not probe(sim, policy, bindings, "src0", "dst4", denied).reached
    assert not probe(sim, policy, bindings, "dst4", "src0", allowed).reached
    assert not probe(sim, policy, bindings, "src0", "src1", allowed).reached


@pytest.mark.parametrize(("lo", "hi"), [(1, 65535), (8000, 8100), (80, 80), (1023, 1025), (2, 3)])
def test_port_ranges_are_covered_exactly(lo, hi):
    covered = {p for v, m in port_range_masks(lo, hi) for p in range(65536) if p & m == v}
    assert covered == set(range(lo, hi + 1))


def test_service_matches_name_the_protocol():
    assert service_matches(Service(Proto.ICMP)) == [
        {"eth_type": 0x0800, "ip_proto": 1, "icmpv4_type": 8}
    ]
    assert service_matches(Service(Proto.UDP, 53, 53)) == [
        {"eth_type": 0x0800, "ip_proto": 17, "udp_dst": 53}
    ]
    assert service_matches(Service(Proto.ANY)) == [{"eth_type": 0x0800}]
