"""10,000 overlay segments (more than 802.1Q's 4,094): compiled and verified.

The verifier's equivalence classes simulate one representative pair per class
pair and service, cross-tenant sweeps included, against DESIGN.md §2: no
mismatch may be found. Then the same machinery must find the breakage when one
hypervisor stops accepting tunnelled frames (so the check can fail).
"""

from __future__ import annotations

import pytest

from sdnctl.bench.overlaynet import overlay_datacentre
from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flows import FlowSet
from sdnctl.verify.classes import vm_classes
from sdnctl.verify.pairs import check_pairs
from sdnctl.verify.semantics import probe_services

SEGMENTS = 10_000


@pytest.fixture(scope="module")
def compiled():
    policy, topology = overlay_datacentre(SEGMENTS)
    bindings = planned_bindings(policy, topology)
    return policy, topology, bindings, compile_network(policy, topology, bindings)


def test_ten_thousand_overlay_segments_compile_and_verify(compiled) -> None:
    policy, topology, bindings, flowsets = compiled
    segments = [s for t in policy.tenants.values() for s in t.segments.values()]
    assert len(segments) == SEGMENTS > 4094
    assert all(s.vlan is None and s.vni is not None for s in segments)
    assert len({s.id for s in segments}) == SEGMENTS  # one reg6 value each
    # Every hypervisor accepts exactly its own VMs' segments from its VXLAN port.
    hv = flowsets["hv0"]
    tunnel_in = [f for f in hv.in_stage("port_security") if f.match.get("tun_id") is not None]
    local = {vm for vm, ref in bindings.ports.items() if ref.switch == "hv0"}
    assert len(tunnel_in) == len({policy.segment_of(policy.vms[v]).vni for v in local})
    classes = vm_classes(policy, bindings)
    report = check_pairs(flowsets, policy, topology, bindings, classes, probe_services(policy))
    assert report.mismatches == []
    assert report.vm_pairs == len(policy.vms) * (len(policy.vms) - 1)
    # Every class pair was judged on every service (cross-tenant sweeps included).
    assert report.probes == report.class_pairs * len(probe_services(policy))


def test_a_hypervisor_deaf_to_its_tunnel_is_caught(compiled) -> None:
    policy, topology, bindings, flowsets = compiled
    hv = flowsets["hv0"]
    deaf = FlowSet.of(hv.switch, [f for f in hv.flows if f.match.get("tun_id") is None],
                      hv.groups, hv.meters)
    broken = dict(flowsets, hv0=deaf)
    few = {f"t{t}" for t in range(3)} | {f"t{t}" for t in range(97, 100)}
    classes = [c for c in vm_classes(policy, bindings) if policy.vms[c.rep].tenant in few]
    report = check_pairs(broken, policy, topology, bindings, classes, probe_services(policy))
    blocked = {(m.src.rep, m.dst.rep) for m in report.mismatches if m.kind == "BLOCKED"}
    # t0's web VM lives on hv0: its app VM's replies (and t99's app) no longer arrive.
    assert ("t0web", "t0app") in blocked
    assert all(m.kind == "BLOCKED" for m in report.mismatches)
