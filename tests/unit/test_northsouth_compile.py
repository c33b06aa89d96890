"""North–south in the compiler: exits, what each switch holds, and what it costs.

Packets through these tables are in test_northsouth_behaviour.py (simulator) and
tests/integration/test_northsouth_ovs.py (real OVS); here: the choices the
compiler makes and the size of what it writes.
"""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address
from types import MappingProxyType

from sdnctl.bindings import Bindings, planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.compile.context import NetworkView
from sdnctl.compile.exits import NAT_ZONE_BASE, nat_zones, ns_plan
from sdnctl.flows import Conjunction, Ct, Output
from sdnctl.pipeline import REG_SIDE, SIDE_OUT
from sdnctl.policy.model import Default, Policy, Rule, parse_service
from tests.unit.nsnet import net


def _view(policy: Policy, topo, down=frozenset(), bindings: Bindings | None = None):
    return NetworkView(policy, topo, bindings or planned_bindings(policy, topo), down)


def _with_rules(policy: Policy, tenant: str, *rules: Rule) -> Policy:
    tenants = dict(policy.tenants)
    tenants[tenant] = dataclasses.replace(tenants[tenant], rules=rules)
    return dataclasses.replace(policy, tenants=MappingProxyType(tenants))


def test_each_tenant_goes_out_by_a_live_uplink_and_moves_when_it_dies():
    policy, topo = net()
    plan = ns_plan(_view(policy, topo))
    assert set(plan.tenants) == {"red", "blue"}
    for name, t in plan.tenants.items():
        assert t.exit is not None
        down = frozenset({t.exit.ref})
        moved = ns_plan(_view(policy, topo, down)).tenants[name].exit
        assert moved is not None and moved != t.exit
        # and with both uplinks down, nowhere
        both = frozenset(u.ref for u in topo.uplinks())
        assert ns_plan(_view(policy, topo, both)).tenants[name].exit is None


def test_a_gateway_cut_off_from_the_fabric_is_no_exit():
    policy, topo = net()
    plan = ns_plan(_view(policy, topo))
    gateway = plan.tenants["red"].exit.switch
    cut = frozenset(end for link in topo.links for end in (link.a, link.b)
                    if gateway in (link.a.switch, link.b.switch))
    moved = ns_plan(_view(policy, topo, cut)).tenants["red"].exit
    assert moved is not None and moved.switch != gateway


def test_only_the_exit_answers_for_a_tenants_addresses():
    policy, topo = net()
    flows = compile_network(policy, topo, planned_bindings(policy, topo))
    red = ns_plan(_view(policy, topo)).tenants["red"]
    for gateway in ("border1", "border2"):
        answered = {f.match.get("arp_tpa") for f in flows[gateway].in_stage("arp")}
        mine = red.exit.switch == gateway
        assert ("203.0.113.20" in answered) is mine, gateway
        assert ("203.0.113.10" in answered) is mine, gateway
        uplink_ip = str(topo.switches[gateway].uplinks[0].ip.ip)
        assert uplink_ip in answered  # its own address, always


def test_tenants_sharing_addresses_get_distinct_zones_on_the_gateways():
    zones = nat_zones([f"t{i}" for i in range(3000)])
    assert len(set(zones.values())) == 3000
    assert all(NAT_ZONE_BASE <= z < NAT_ZONE_BASE + 0x1000 for z in zones.values())
    # adding a tenant does not move the others (but on a collision it resolves)
    more = nat_zones([*zones, "newcomer"])
    assert sum(more[t] != zones[t] for t in zones) <= 1


def test_a_tenant_without_nat_addresses_or_external_rules_does_not_go_out():
    policy, topo = net()
    tenants = dict(policy.tenants)
    tenants["blue"] = dataclasses.replace(tenants["blue"], snat=None)
    policy = dataclasses.replace(policy, tenants=MappingProxyType(tenants))
    assert "blue" not in ns_plan(_view(policy, topo)).tenants
    only_inside = _with_rules(net()[0], "red", *[r for r in net()[0].tenants["red"].rules
                                                  if not r.north_south])
    assert "red" not in ns_plan(_view(only_inside, topo)).tenants


def test_default_allow_covers_vm_to_vm_only():
    policy, topo = net()
    flows = compile_network(policy, topo, planned_bindings(policy, topo))
    blue_default = [f for f in flows["hv2"].in_stage("acl")
                    if f.owner == "tenant:blue" and f.priority == 100]
    allow = [f for f in blue_default if any(isinstance(a, Ct) for a in f.actions)]
    deny = [f for f in blue_default if not f.actions]
    assert allow and all(f.match.get(REG_SIDE) == 0 for f in allow)
    assert deny and all(f.match.get(REG_SIDE) == SIDE_OUT for f in deny)


def test_a_vm_that_cannot_go_out_gets_no_source_clause():
    """red has a pool: every front VM may go out; without it only rf1 (floating IP)."""
    policy, topo = net()
    tenants = dict(policy.tenants)
    tenants["red"] = dataclasses.replace(tenants["red"], snat=None)
    policy = dataclasses.replace(policy, tenants=MappingProxyType(tenants))
    vms = dict(policy.vms)
    vms["rf2"] = dataclasses.replace(vms["rf1"], name="rf2", mac="02:00:00:0a:01:02",
                                     ip=IPv4Address("10.0.1.12"), floating_ip=None)
    policy = dataclasses.replace(policy, vms=MappingProxyType(vms))
    flows = compile_network(policy, topo, planned_bindings(policy, topo))
    out_rule = next(r for r in policy.tenants["red"].rules if r.outbound)
    cid = next(f.match.get("conj_id") for f in flows["hv1"].in_stage("acl")
               if f.owner.endswith(f"->{out_rule.dst}") and f.match.get("conj_id"))
    sources = {f.match.get("ipv4_src") for f in flows["hv1"].in_stage("acl")
               if Conjunction(cid, 1, 3) in f.actions}
    assert sources == {"10.0.1.11"}


def test_a_rule_to_a_cidr_costs_n_plus_one_plus_k():
    """N sources, one CIDR, K services: N + 1 + K clause flows and one conjunction
    flow, however large the CIDR."""
    policy, topo = net()
    services = tuple(parse_service(s) for s in ("tcp/443", "tcp/8443", "udp/53"))
    rule = Rule("red", "any", "10.128.0.0/9", services)
    policy = _with_rules(policy, "red", rule)
    flows = compile_network(policy, topo, planned_bindings(policy, topo))
    everywhere = [f for name in ("hv1", "hv2", "hv3") for f in flows[name].in_stage("acl")]
    cid = next(f.match.get("conj_id") for f in everywhere
               if f.owner == "rule:red:any->10.128.0.0/9" and f.match.get("conj_id"))
    clauses = {(f.match, a.clause) for f in everywhere for a in f.actions
               if isinstance(a, Conjunction) and a.id == cid}
    red_vms = [v for v in policy.vms.values() if v.tenant == "red"
               and policy.segment_of(v).routed]
    by_clause = {c: sum(1 for _, k in clauses if k == c) for c in (1, 2, 3)}
    assert by_clause == {1: len(red_vms), 2: 1, 3: len(services)}


def test_going_out_is_sent_to_the_exit_gateway_by_label():
    policy, topo = net()
    view = _view(policy, topo)
    red = ns_plan(view).tenants["red"]
    flows = compile_network(policy, topo, planned_bindings(policy, topo))
    exits = [f for f in flows["hv1"].in_stage("l3_route") if f.match.get(REG_SIDE) == SIDE_OUT]
    assert exits
    labels = {a.value for f in exits for a in f.actions if getattr(a, "field", "") == "mpls_label"}
    assert labels == {view.fabric_labels[red.exit.switch]}
    # and the gateway sends red's traffic out of its uplink
    gateway = flows[red.exit.switch]
    outs = {a.port for f in gateway.in_stage("l3_route") for a in f.actions
            if isinstance(a, Output)}
    assert outs == {red.exit.port}


def test_a_gateway_without_the_next_hops_mac_sends_nothing_out_and_asks():
    policy, topo = net()
    sw = dict(topo.switches)
    for name in ("border1", "border2"):
        up = dataclasses.replace(sw[name].uplinks[0], next_hop_mac=None)
        sw[name] = dataclasses.replace(sw[name], uplinks=(up,))
    topo = dataclasses.replace(topo, switches=MappingProxyType(sw))
    bindings = planned_bindings(policy, topo)
    flows = compile_network(policy, topo, bindings)
    for name in ("border1", "border2"):
        assert not any(isinstance(a, Output) and a.port == 1
                       for f in flows[name].flows for a in f.actions)
        learn = [f for f in flows[name].in_stage("arp") if f.match.get("arp_op") == 2]
        assert [f.match.get("arp_spa") for f in learn] == ["203.0.113.1"]
    learned = dataclasses.replace(bindings, neighbours=MappingProxyType(
        {"border1:1": "02:aa:00:00:00:09", "border2:1": "02:aa:00:00:00:09"}))
    flows = compile_network(policy, topo, learned)
    red = ns_plan(_view(policy, topo, bindings=learned)).tenants["red"]
    assert any(isinstance(a, Output) and a.port == 1
               for f in flows[red.exit.switch].flows for a in f.actions)


def test_rules_from_outside_are_judged_on_gateways_not_hypervisors():
    policy, topo = net()
    flows = compile_network(policy, topo, planned_bindings(policy, topo))
    inbound = next(r for r in policy.tenants["red"].rules if r.inbound)
    owner = f"rule:red:{inbound.src}->{inbound.dst}"
    for name in ("hv1", "hv2", "hv3"):
        assert not any(f.owner == owner for f in flows[name].flows)
    red = ns_plan(_view(policy, topo)).tenants["red"]
    held = [n for n in ("border1", "border2") if any(f.owner == owner
                                                      for f in flows[n].flows)]
    assert held == ["border1", "border2"]  # both: either may become the exit
    assert red.exit is not None


def test_a_deny_tenant_without_rules_out_holds_no_exit_flows():
    policy, topo = net()
    red = policy.tenants["red"]
    assert red.default is Default.DENY and red.snat is not None  # it could go out
    policy = _with_rules(policy, "red", *[r for r in red.rules if not r.north_south])
    flows = compile_network(policy, topo, planned_bindings(policy, topo))
    assert not any(f.owner == "tenant:red" and f.stage == "ct_out"
                   for f in flows["hv1"].flows)


def test_no_flow_carries_two_clauses_of_one_conjunction():
    """`from: external, allow: [any]`: the source clause (tenant, from outside) and
    the service clause (tenant, any IPv4) must stay two flows (OVS refuses one flow
    with two clauses of the same conjunction)."""
    policy, topo = net()
    red = policy.tenants["red"]
    rules = tuple(dataclasses.replace(r, services=(parse_service("any"),)) for r in red.rules)
    policy = _with_rules(policy, "red", *rules)
    flows = compile_network(policy, topo, planned_bindings(policy, topo))
    for fs in flows.values():
        for f in fs.flows:
            ids = [a.id for a in f.actions if isinstance(a, Conjunction)]
            assert len(ids) == len(set(ids)), (fs.switch, f)
