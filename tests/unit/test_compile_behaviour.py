"""Behaviour of the compiled pipeline, asked through the simulator (not flow text)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from sdnctl.bindings import Bindings, planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.policy.load import load_policy
from sdnctl.policy.model import Proto, Service
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import PortRef
from sdnctl.verify.reach import probe, reachability, resolve, service_packet
from sdnctl.verify.semantics import probe_services, reach
from sdnctl.verify.simulate import Conntrack, Simulator

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
EXAMPLES = sorted(p.name.removesuffix(".topology.yaml") for p in TOPOLOGIES.glob("*.topology.yaml"))
TCP80 = Service(Proto.TCP, 80, 80)


def load(name: str):
    topo = load_topology(TOPOLOGIES / f"{name}.topology.yaml")
    policy = load_policy(TOPOLOGIES / f"{name}.policy.yaml", topo)
    bindings = planned_bindings(policy, topo)
    return policy, topo, bindings, compile_network(policy, topo, bindings)


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_reach_exactly_what_the_policy_promises(name):
    policy, topo, bindings, flows = load(name)
    result = reachability(flows, policy, topo, bindings, probe_services(policy))
    assert len(result) == len(policy.vms) * (len(policy.vms) - 1) * len(probe_services(policy))
    wrong = {k: v for k, v in result.items() if v != reach(policy, *k)}
    assert not wrong
    assert any(result.values()) and not all(result.values())  # the examples allow and deny


def deliveries(sim: Simulator, at: PortRef, pkt: dict) -> list[PortRef]:
    return [ref for ref, _ in sim.inject(at, pkt).delivered]


@pytest.fixture
def three_tier():
    return load("three-tier")


def web1_to_app1(policy, **changes):
    web1, app1 = policy.vms["web1"], policy.vms["app1"]
    pkt = service_packet(Service(Proto.TCP, 8080, 8080), web1, str(app1.ip), web1.mac,
                         "0e:00:00:00:00:0a")
    return {**pkt, **changes}


def test_the_unspoofed_packet_is_delivered(three_tier):
    policy, topo, bindings, flows = three_tier
    sim = Simulator(flows, topo)
    assert deliveries(sim, bindings.ports["web1"], web1_to_app1(policy)) == [
        bindings.ports["app1"]
    ]


@pytest.mark.parametrize(
    "spoof",
    [
        {"eth_src": "02:00:00:00:10:12"},  # another VM's MAC
        {"eth_src": "02:66:66:66:66:66"},  # a made-up MAC
        {"ipv4_src": "10.1.10.12"},  # another VM's IP
        {"ipv4_src": "10.1.20.99"},  # a made-up IP in another segment
        {"vlan_vid": 20},  # tagged into app's VLAN
        {"eth_type": 0x86DD},  # not IPv4
    ],
)
def test_port_security_drops_spoofed_frames(three_tier, spoof):
    policy, topo, bindings, flows = three_tier
    sim = Simulator(flows, topo)
    assert deliveries(sim, bindings.ports["web1"], web1_to_app1(policy, **spoof)) == []


def test_arp_with_a_foreign_sender_is_dropped_not_answered(three_tier):
    policy, topo, bindings, flows = three_tier
    sim = Simulator(flows, topo)
    web1 = policy.vms["web1"]
    poison = {
        "eth_src": web1.mac, "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x0806, "arp_op": 1,
        "arp_sha": web1.mac, "arp_spa": "10.1.10.12",  # claims web2's address
        "arp_tha": "00:00:00:00:00:00", "arp_tpa": "10.1.10.1",
    }
    assert deliveries(sim, bindings.ports["web1"], poison) == []
    # The same request with its own address is answered with the gateway MAC.
    assert resolve(sim, bindings, web1, "10.1.10.1", Conntrack(), []) == "0e:00:00:00:00:0a"


def test_nothing_is_flooded(three_tier):
    policy, topo, bindings, flows = three_tier
    sim = Simulator(flows, topo)
    web1 = policy.vms["web1"]
    unknown_arp = {
        "eth_src": web1.mac, "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x0806, "arp_op": 1,
        "arp_sha": web1.mac, "arp_spa": str(web1.ip), "arp_tha": "00:00:00:00:00:00",
        "arp_tpa": "10.1.10.200",
    }
    assert deliveries(sim, bindings.ports["web1"], unknown_arp) == []
    broadcast_ip = web1_to_app1(policy, eth_dst="ff:ff:ff:ff:ff:ff", ipv4_dst="10.1.10.255")
    assert deliveries(sim, bindings.ports["web1"], broadcast_ip) == []


def test_routing_decrements_ttl_and_rewrites_macs(three_tier):
    policy, topo, bindings, flows = three_tier
    sim = Simulator(flows, topo)
    trace = sim.inject(bindings.ports["web1"], web1_to_app1(policy))
    [(ref, pkt)] = trace.delivered
    assert pkt["ip_ttl"] == 63
    assert pkt["eth_src"] == "0e:00:00:00:00:14"  # app segment's gateway (VLAN 20)
    assert pkt["eth_dst"] == policy.vms["app1"].mac
    assert "vlan_vid" not in pkt  # delivered untagged


def test_same_segment_is_switched_not_routed():
    policy, topo, bindings, flows = load("three-tier")
    sim = Simulator(flows, topo)
    jump1, web2 = policy.vms["jump1"], policy.vms["web2"]
    pkt = service_packet(Service(Proto.TCP, 22, 22), jump1, str(web2.ip), jump1.mac, web2.mac)
    [(ref, out)] = sim.inject(bindings.ports["jump1"], pkt).delivered
    assert ref == bindings.ports["web2"] and out["ip_ttl"] == 64 and out["eth_src"] == jump1.mac


def test_tenants_with_overlapping_addresses_never_meet():
    policy, topo, bindings, flows = load("leaf-spine")
    sim = Simulator(flows, topo)
    # bx2 (blue) talks to 10.0.1.11: that is bx1 in blue and also rf1 in red.
    bx2, bx1 = policy.vms["bx2"], policy.vms["bx1"]
    assert bx1.ip == policy.vms["rf1"].ip
    for service in (TCP80, Service(Proto.ICMP)):
        result = probe(sim, policy, bindings, "bx2", "bx1", service)
        assert result.reached
        request = next(t for what, t in result.traces if what == "request")
        assert [ref for ref, _ in request.delivered] == [bindings.ports["bx1"]]
    # A red VM's MAC as destination from blue is dropped, whatever the IP.
    rf1 = policy.vms["rf1"]
    pkt = service_packet(TCP80, bx2, str(rf1.ip), bx2.mac, rf1.mac)
    assert deliveries(sim, bindings.ports["bx2"], pkt) == []


def test_reverse_connection_needs_its_own_rule(three_tier):
    policy, topo, bindings, flows = three_tier
    sim = Simulator(flows, topo)
    ct = Conntrack()
    service = Service(Proto.TCP, 8080, 8080)
    assert probe(sim, policy, bindings, "web1", "app1", service, ct).reached
    assert not probe(sim, policy, bindings, "app1", "web1", service, ct).reached


def test_fast_failover_carries_traffic_over_the_backup_path():
    policy, topo, bindings, flows = load("leaf-spine")
    # hv3 is dual-homed: every path out of it has a loop-free backup.
    assert flows["hv3"].groups
    assert all(g.type == "ff" and len(g.buckets) == 2 for g in flows["hv3"].groups)
    service = Service(Proto.TCP, 8000, 8000)
    sim = Simulator(flows, topo)
    assert probe(sim, policy, bindings, "rf1", "rb2", service).reached
    # rb2 sits on dual-homed hv3. Cut each of hv3's uplinks in turn, with no
    # recompile: both directions must fail over inside the switches.
    for uplink in (PortRef("hv3", 1), PortRef("hv3", 2)):
        cut = frozenset({uplink, topo.peer(uplink)})
        sim = Simulator(flows, topo, down_ports=cut)
        assert probe(sim, policy, bindings, "rf1", "rb2", service).reached, uplink
        assert probe(sim, policy, bindings, "bx2", "bx1", TCP80).reached, uplink
        assert not probe(sim, policy, bindings, "rb2", "rf1", service).reached  # still denied


def test_single_homed_hypervisor_has_no_backup_to_offer():
    policy, topo, bindings, flows = load("leaf-spine")
    # One uplink: nothing to fail over to, a single output towards each hypervisor.
    assert {g.type for g in flows["hv1"].groups} == {"indirect"}
    assert all(len(g.buckets) == 1 for g in flows["hv1"].groups)
    cut = frozenset({PortRef("hv1", 1), PortRef("leaf1", 10)})
    sim = Simulator(flows, topo, down_ports=cut)
    assert not probe(sim, policy, bindings, "rf1", "rb2", Service(Proto.TCP, 8000, 8000)).reached


def test_rate_limited_vm_is_metered():
    policy, topo, bindings, flows = load("three-tier")
    port = bindings.ports["web1"].port
    [meter] = [m for m in flows["hv1"].meters if not m.pktps]  # the rest are DHCP's
    assert meter.meter_id == port and meter.rate_kbps == 200_000 and meter.burst_kb > 0
    from_web1 = [f for f in flows["hv1"].in_stage("port_security")
                 if f.match.get("in_port") == port and f.actions]
    assert from_web1 and all(type(f.actions[0]).__name__ == "Meter" for f in from_web1)
    assert not [m for m in flows["hv2"].meters if not m.pktps]  # no rate limit on hv2's VMs


def test_unbound_and_unknown_vms_get_nothing(three_tier):
    policy, topo, bindings, _ = three_tier
    ports = dict(bindings.ports)
    del ports["db1"]
    ports["ghost"] = PortRef("hv2", 150)  # a vm-id the policy does not know
    partial = Bindings(MappingProxyType(ports))
    flows = compile_network(policy, topo, partial)
    assert not [f for fs in flows.values() for f in fs.flows if f.owner in ("vm:ghost",)]
    assert not [f for f in flows["hv2"].flows if f.match.get("in_port") == 150]
    sim = Simulator(flows, topo)
    assert not probe(sim, policy, partial, "app1", "db1", Service(Proto.TCP, 5432, 5432)).reached


def test_compile_is_deterministic(three_tier):
    policy, topo, bindings, flows = three_tier
    reordered = replace(policy, vms=MappingProxyType(dict(reversed(list(policy.vms.items())))))
    assert compile_network(reordered, topo, bindings) == flows


def test_recompiling_around_a_down_link_restores_reachability():
    policy, topo, bindings, _ = load("leaf-spine")
    # hv1 is single-homed to leaf1; cut leaf1-spine1 and leaf1-spine2's peer ends
    # one at a time: the recompiled paths avoid the dead link.
    for dead in (PortRef("leaf1", 1), PortRef("leaf2", 2)):
        down = frozenset({dead, topo.peer(dead)})
        flows = compile_network(policy, topo, bindings, down)
        sim = Simulator(flows, topo, down_ports=down)
        assert probe(sim, policy, bindings, "rf1", "rb1", Service(Proto.TCP, 8000, 8000)).reached
        for fs in flows.values():
            for f in fs.flows:
                outs = [a.port for a in f.actions if type(a).__name__ == "Output"]
                assert PortRef(fs.switch, outs[0]) not in down if outs else True
