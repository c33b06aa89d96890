"""North–south under link events: uplink and link cuts, and learned next hops, compiled
incrementally, equal a full compile; the daemon's link state sees uplinks."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdnctl.bindings import Bindings, planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.compile.context import NetworkView
from sdnctl.compile.exits import build_plan
from sdnctl.compile.incremental import IncrementalCompiler
from sdnctl.compile.northsouth import PRIO_EXIT
from sdnctl.flows import Output, SetField
from sdnctl.live.links import LinkState, is_watched
from sdnctl.policy.model import Policy
from sdnctl.topology.model import PortRef, Topology
from tests.unit.nsnet import net

ROUTER_MACS = ("02:aa:00:00:00:01", "02:aa:00:00:00:02")


def _learning_net() -> tuple[Policy, Topology, Bindings]:
    """nsnet's two gateways, border2's next hop not configured (learned by ARP)."""
    policy, topo = net()
    switches = dict(topo.switches)
    b2 = switches["border2"]
    switches["border2"] = dataclasses.replace(
        b2, uplinks=tuple(dataclasses.replace(u, next_hop_mac=None) for u in b2.uplinks))
    topo = Topology(MappingProxyType(switches), topo.links, topo.source, topo.underlay_mtu)
    return policy, topo, planned_bindings(policy, topo)


def _with_neighbours(bindings: Bindings, neighbours: dict[str, str]) -> Bindings:
    return dataclasses.replace(bindings, neighbours=MappingProxyType(dict(neighbours)))


@st.composite
def link_events(draw: st.DrawFn, topo: Topology, down: frozenset[PortRef],
                neighbours: dict[str, str]) -> tuple[frozenset[PortRef], dict[str, str], str]:
    kind = draw(st.sampled_from(["uplink_down", "link_down", "one_up", "all_up", "learn",
                                 "forget"]))
    if kind == "uplink_down":
        down = down | {draw(st.sampled_from(topo.uplinks())).ref}
    elif kind == "link_down":
        link = draw(st.sampled_from(topo.links))
        down = down | {link.a, link.b}
    elif kind == "one_up" and down:
        down = down - {draw(st.sampled_from(sorted(down)))}
    elif kind == "all_up":
        down = frozenset()
    elif kind == "learn":
        neighbours = dict(neighbours, **{"border2:1": draw(st.sampled_from(ROUTER_MACS))})
    elif kind == "forget":
        neighbours = {}
    return down, neighbours, kind


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_link_and_uplink_cuts_and_next_hops_compile_like_a_full_compile(data):
    policy, topo, bindings = _learning_net()
    compiler = IncrementalCompiler()
    down: frozenset[PortRef] = frozenset()
    neighbours: dict[str, str] = {}
    previous = compiler(policy, topo, bindings, down)
    for _ in range(8):
        down, neighbours, kind = data.draw(link_events(topo, down, neighbours))
        now = _with_neighbours(bindings, neighbours)
        got = compiler(policy, topo, now, down)
        assert got == compile_network(policy, topo, now, down), (kind, compiler.last_scope)
        scope = compiler.last_scope
        assert scope is not None and not scope.full, (kind, scope)
        for name, fs in got.items():
            if name not in scope.switches:  # untouched switches keep their very object
                assert fs is previous[name], (kind, name, scope)
        previous = got


def _exit_labels(flows, switch: str) -> set[object]:
    """The MPLS labels a hypervisor pushes on what goes out (its tenants' exits)."""
    return {a.value for f in flows[switch].in_stage("l3_route") if f.priority == PRIO_EXIT
            for a in f.actions if isinstance(a, SetField) and a.field == "mpls_label"}


def test_cutting_the_active_uplink_moves_its_tenants_to_the_other_gateway():
    policy, topo, bindings = _learning_net()
    bindings = _with_neighbours(bindings, {"border2:1": ROUTER_MACS[0]})
    compiler = IncrementalCompiler()
    before = compiler(policy, topo, bindings)
    plan = build_plan(NetworkView(policy, topo, bindings))
    assert {t.exit.name for t in plan.tenants.values() if t.exit} == {"border1:1"}
    assert _exit_labels(before, "hv1") == {16 + 0x30}
    after = compiler(policy, topo, bindings, frozenset({PortRef("border1", 1)}))
    assert _exit_labels(after, "hv1") == {16 + 0x31}
    # border2 now answers ARP for the tenants' addresses and sends them out; border1 not.
    answered = {str(f.match.get("arp_tpa")) for f in after["border2"].in_stage("arp")}
    assert {"203.0.113.10", "203.0.113.20"} <= answered
    gone = {str(f.match.get("arp_tpa")) for f in after["border1"].in_stage("arp")}
    assert "203.0.113.10" not in gone
    back = compiler(policy, topo, bindings, frozenset())
    assert back == before


def _sent_to(fs, port: int) -> set[object]:
    """The destination MACs of what the gateway sends out of `port`."""
    return {a.value for f in fs.flows
            if any(isinstance(a, Output) and a.port == port for a in f.actions)
            for a in f.actions if isinstance(a, SetField) and a.field == "eth_dst"}


def test_a_learned_next_hop_opens_the_way_out_and_recompiles_the_gateways_only():
    policy, topo, bindings = _learning_net()
    compiler = IncrementalCompiler()
    cut = frozenset({PortRef("border1", 1)})
    blind = compiler(policy, topo, bindings, cut)
    # border2 does not know its next hop yet: nothing leaves by it.
    assert _sent_to(blind["border2"], 1) == set()
    learned = _with_neighbours(bindings, {"border2:1": ROUTER_MACS[1]})
    got = compiler(policy, topo, learned, cut)
    assert compiler.last_scope is not None
    assert compiler.last_scope.switches == ("border2",)
    assert _sent_to(got["border2"], 1) == {ROUTER_MACS[1]}
    assert got == compile_network(policy, topo, learned, cut)


def test_link_state_watches_uplinks_too():
    policy, topo, _ = _learning_net()
    links = LinkState()
    assert is_watched(topo, PortRef("border1", 1))  # an uplink
    assert is_watched(topo, PortRef("border1", 2))  # a link to the fabric
    assert not is_watched(topo, PortRef("border1", 7))  # nothing the topology names
    links.report_switch("border1", {1: True, 2: True})
    links.report_port("border1", 1, False)
    assert links.down_ports(topo) == {PortRef("border1", 1)}
    links.report_switch("border2", {2: True})  # border2's uplink port is missing: down
    assert links.down_ports(topo) == {PortRef("border1", 1), PortRef("border2", 1)}
