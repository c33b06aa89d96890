"""North–south, packet by packet through the simulator (which holds NAT to OVS).

Each test names the deliberate bug it catches; tests/mutate.py applies them.
The property test holds every VM against external addresses, and every
floating IP against external clients, to the semantics (`reach_out`,
`reach_in`) on random networks with two gateways.
"""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flows import Ct, FlowSet
from sdnctl.policy.model import Proto, Service, parse_service
from sdnctl.verify.outside import probe_in, probe_out, router_learned
from sdnctl.verify.semantics import outside_address, reach_in, reach_out
from sdnctl.verify.simulate import Conntrack, Simulator
from tests.unit.netgen import networks
from tests.unit.nsnet import net

SERVER = "198.51.100.10"
HTTPS = parse_service("tcp/443")
HTTP = parse_service("tcp/80")
PROBES = [Service(Proto.TCP, 80, 80), Service(Proto.TCP, 22, 22), Service(Proto.UDP, 53, 53),
          Service(Proto.ICMP)]
# One address inside each external CIDR netgen uses, one outside them all, and one
# that is inside every tenant (10.0.0.0/24 is theirs): never external.
ADDRESSES = ["198.51.100.77", "192.0.2.200", "192.0.2.5", "8.8.8.8"]


def _sim(policy, topo, bindings=None):
    bindings = bindings or planned_bindings(policy, topo)
    return Simulator(compile_network(policy, topo, bindings), topo), bindings


def test_a_vm_goes_out_with_its_floating_ip_and_a_tenant_with_its_pool():
    """Bug caught: SNAT with the pool for a VM that has a floating IP (or no SNAT)."""
    policy, topo = net()
    sim, b = _sim(policy, topo)
    assert probe_out(sim, policy, b, "rf1", SERVER, HTTPS).seen_as == "203.0.113.20"
    assert probe_out(sim, policy, b, "bx1", SERVER, HTTPS).seen_as == "203.0.113.12"


def test_the_same_inside_address_in_two_tenants_goes_out_apart():
    """rf1 and bx1 are both 10.0.1.11 inside: each reply finds its own VM (bug
    caught: one NAT zone shared by tenants on the gateway)."""
    policy, topo = net()
    sim, b = _sim(policy, topo)
    ct = Conntrack()
    red = probe_out(sim, policy, b, "rf1", SERVER, HTTPS, ct)
    blue = probe_out(sim, policy, b, "bx1", SERVER, HTTPS, ct)
    assert red.reached and blue.reached
    assert {red.seen_as, blue.seen_as} == {"203.0.113.20", "203.0.113.12"}


def test_north_south_needs_a_rule_even_in_a_default_allow_tenant():
    """blue allows everything between its VMs; going out needs its `external` rule
    (bug caught: the tenant default covering what goes out)."""
    policy, topo = net()
    tenants = dict(policy.tenants)
    tenants["blue"] = dataclasses.replace(tenants["blue"], rules=(
        dataclasses.replace(tenants["blue"].rules[0], dst="192.0.2.0/24"),))
    policy = dataclasses.replace(policy, tenants=MappingProxyType(tenants))
    sim, b = _sim(policy, topo)
    assert probe_out(sim, policy, b, "bx1", "192.0.2.9", HTTPS).reached
    assert not probe_out(sim, policy, b, "bx1", SERVER, HTTPS).reached


def test_a_cidr_end_allows_its_addresses_only():
    """Bug caught: a CIDR destination clause that ignores the prefix."""
    policy, topo = net()
    sim, b = _sim(policy, topo)
    assert probe_out(sim, policy, b, "rf1", "198.51.100.200", HTTPS).reached
    assert not probe_out(sim, policy, b, "rf1", "198.51.101.1", HTTPS).reached


def test_outside_reaches_only_a_floating_ip_and_only_by_rule():
    """Bugs caught: DNAT without the inbound rule; a pool address forwarding in."""
    policy, topo = net()
    sim, b = _sim(policy, topo)
    got = probe_in(sim, policy, b, "203.0.113.1", "rf1", HTTP)
    assert got.reached and got.seen_as == "203.0.113.1"  # the VM sees the real client
    assert not probe_in(sim, policy, b, "203.0.113.1", "rf1", parse_service("tcp/22")).reached
    for pool in ("203.0.113.10", "203.0.113.12"):
        assert not probe_in(sim, policy, b, "203.0.113.1", "rf1", HTTP, to=pool).reached


def test_the_outside_cannot_address_a_vm_by_its_inside_address():
    """The router sends 10.0.1.11 to a gateway: nothing arrives (bug caught: an
    uplink admitting any destination, which the inbound rule's clause on the VM's
    inside address would then let through, untranslated)."""
    policy, topo = net()
    sim, b = _sim(policy, topo)
    for uplink in topo.uplinks():
        got = probe_in(sim, policy, b, "203.0.113.1", "rf1", HTTP, to="10.0.1.11")
        assert not got.reached, uplink
    # and not by sending it to the uplink's MAC either: no uplink answers ARP for it
    assert "no uplink answers" in got.reason


def test_an_inbound_cidr_end_admits_its_addresses_only():
    """Bug caught: the source clause of an inbound CIDR rule ignoring the prefix."""
    policy, topo = net()
    tenants = dict(policy.tenants)
    red = tenants["red"]
    tenants["red"] = dataclasses.replace(red, rules=tuple(
        dataclasses.replace(r, src="192.0.2.0/25") if r.inbound else r for r in red.rules))
    policy = dataclasses.replace(policy, tenants=MappingProxyType(tenants))
    sim, b = _sim(policy, topo)
    assert probe_in(sim, policy, b, "192.0.2.9", "rf1", HTTP).reached
    assert not probe_in(sim, policy, b, "192.0.2.200", "rf1", HTTP).reached
    assert not probe_in(sim, policy, b, "203.0.113.1", "rf1", HTTP).reached


def test_replies_come_in_but_nothing_else_for_a_vm_without_a_floating_ip():
    """bx1 went out; the server cannot open a connection back to it (bug caught: the
    gateway passing new connections to a pool address)."""
    policy, topo = net()
    sim, b = _sim(policy, topo)
    ct = Conntrack()
    assert probe_out(sim, policy, b, "bx1", SERVER, HTTPS, ct).reached
    assert not probe_in(sim, policy, b, SERVER, "bx1", HTTPS, ct, to="203.0.113.12").reached


def test_a_revoked_inbound_rule_cuts_the_connection_it_allowed():
    """Bug caught: established inbound packets passing without a rule."""
    policy, topo = net()
    sim, b = _sim(policy, topo)
    ct = Conntrack()
    assert probe_in(sim, policy, b, "203.0.113.1", "rf1", HTTP, ct).reached
    tenants = dict(policy.tenants)
    tenants["red"] = dataclasses.replace(tenants["red"], rules=tuple(
        r for r in tenants["red"].rules if not r.inbound))
    edited = dataclasses.replace(policy, tenants=MappingProxyType(tenants))
    sim2 = Simulator(compile_network(edited, topo, b), topo)
    again = probe_in(sim2, edited, b, "203.0.113.1", "rf1", HTTP, ct)
    assert not again.reached


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(shapes=("gateways",)))
def test_every_vm_and_floating_ip_against_the_outside_matches_the_semantics(network):
    policy, topo, bindings = network
    bindings = router_learned(bindings, topo)
    sim = Simulator(compile_network(policy, topo, bindings), topo)
    for name in sorted(policy.vms):
        if name not in bindings.ports:
            continue
        for addr in ADDRESSES:
            for service in PROBES:
                got = probe_out(sim, policy, bindings, name, addr, service)
                want = reach_out(policy, name, IPv4Address(addr), service)
                assert got.reached == want, ("out", name, addr, str(service), got.reason)
                if want:
                    assert got.seen_as == str(outside_address(policy, name)) or (
                        got.seen_as in {str(a) for a in _pool(policy, name)})
        if policy.vms[name].floating_ip is None:
            continue
        for addr in ADDRESSES:
            for service in PROBES:
                got = probe_in(sim, policy, bindings, addr, name, service)
                want = reach_in(policy, IPv4Address(addr), name, service)
                assert got.reached == want, ("in", addr, name, str(service), got.reason)


def _pool(policy, name):
    snat = policy.tenants[policy.vms[name].tenant].snat
    return snat.addresses() if snat is not None else []



def test_a_source_inside_the_tenant_never_comes_in_from_outside():
    """A packet from outside claiming rf2's inside address (10.0.1.12) is dropped on
    the gateway before it reaches rf1 (bug caught: the gateway taking spoofed
    inside sources as external), and so are sources nobody owns."""
    policy, topo = net()
    sim, b = _sim(policy, topo)
    for spoofed in ("10.0.1.12", "10.0.2.11", "127.0.0.1", "224.0.0.5", "0.1.2.3"):
        got = probe_in(sim, policy, b, spoofed, "rf1", HTTP)
        assert "request not delivered" in got.reason, (spoofed, got.reason)
    # blue's inside addresses are external to red
    assert probe_in(sim, policy, b, "203.0.113.1", "rf1", HTTP).reached


def test_nowhere_addresses_are_never_sent_out():
    """blue may go anywhere outside, but not to loopback, multicast or broadcast
    (bug caught: `external` taken as everything but the tenant's subnets)."""
    policy, topo = net()
    sim, b = _sim(policy, topo)
    assert probe_out(sim, policy, b, "bx1", SERVER, HTTPS).reached
    for nowhere in ("127.0.0.1", "224.0.0.251", "255.255.255.255", "169.254.169.254"):
        got = probe_out(sim, policy, b, "bx1", nowhere, HTTPS)
        assert "request not delivered" in got.reason, (nowhere, got.reason)


def test_a_packet_the_gateway_could_not_translate_never_leaves():
    """OVS passes a packet on untranslated when a commit fails (the tenant's NAT
    zone is full): only packets from the tenant's outside addresses leave. Here the
    simulator's commit is made to translate nothing (bug caught: output straight
    after the commit, which put the VM's inside address on the wire)."""
    policy, topo = net()
    flows = compile_network(policy, topo, planned_bindings(policy, topo))
    for name in ("border1", "border2"):
        fs = flows[name]
        kept = [dataclasses.replace(f, actions=tuple(
            dataclasses.replace(a, nat=None) if isinstance(a, Ct) and a.nat is not None
            and a.nat.kind == "src" else a for a in f.actions)) for f in fs.flows]
        flows[name] = FlowSet.of(name, kept, fs.groups, fs.meters)
    sim = Simulator(flows, topo)
    got = probe_out(sim, policy, planned_bindings(policy, topo), "bx1", SERVER, HTTPS)
    assert "request not delivered" in got.reason, got.reason
