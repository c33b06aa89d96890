"""The compiled network, simulated, does exactly what DESIGN.md §2 says: no more, no less."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from sdnctl.compile.compiler import compile_network
from sdnctl.policy.model import Proto, Service
from sdnctl.verify.reach import probe
from sdnctl.verify.semantics import reach
from sdnctl.verify.simulate import Conntrack, Simulator
from tests.unit.netgen import SERVICES, networks

# What a probe can send: concrete single packets (a range is probed at both ends).
PROBES = [
    Service(Proto.TCP, 80, 80),
    Service(Proto.TCP, 8000, 8000),
    Service(Proto.TCP, 8100, 8100),
    Service(Proto.TCP, 8101, 8101),
    Service(Proto.UDP, 53, 53),
    Service(Proto.ICMP),
    Service(Proto.TCP, 22, 22),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_every_pair_and_service_matches_the_semantics(net):
    policy, topo, bindings = net
    flowsets = compile_network(policy, topo, bindings)
    sim = Simulator(flowsets, topo)
    for a in sorted(policy.vms):
        for b in sorted(policy.vms):
            if a == b:
                continue
            for service in PROBES:
                for family in (4, 6):  # the same semantics in both families
                    got = probe(sim, policy, bindings, a, b, service, family=family)
                    want = reach(policy, a, b, service, family)
                    assert got.reached == want, (a, b, str(service), family, got.reason)
                    # Not even a one-way leak: a denied first packet never arrives.
                    assert got.delivered == want, (a, b, str(service), family, "one-way")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_replies_pass_but_reverse_connections_need_their_own_rule(net):
    """Stateful: after a->b opens, b's replies pass; b opening to a is still judged alone."""
    policy, topo, bindings = net
    sim = Simulator(compile_network(policy, topo, bindings), topo)
    for a in sorted(policy.vms):
        for b in sorted(policy.vms):
            if a == b:
                continue
            service = Service(Proto.TCP, 80, 80)
            ct = Conntrack()  # shared: the a->b connection is in it when b tries
            for family in (4, 6):
                forward = probe(sim, policy, bindings, a, b, service, ct, family)
                backward = probe(sim, policy, bindings, b, a, service, ct, family)
                assert forward.reached == reach(policy, a, b, service, family)
                assert backward.reached == reach(policy, b, a, service, family), (
                    a, b, family, backward.reason)


def test_the_generator_covers_services_the_rules_use():
    # Guard: the probes above exercise every service kind the generator writes.
    kinds = {s.proto for s in SERVICES}
    assert {p.proto for p in PROBES} | {Proto.ANY} >= kinds
