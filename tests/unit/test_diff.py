"""Edits become small diffs: only the flows whose content changed move."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from sdnctl.bindings import Bindings, planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.diff import diff_flowsets
from sdnctl.policy.load import load_policy
from sdnctl.policy.model import Proto, Service
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import PortRef

ROOT = Path(__file__).resolve().parents[2] / "topologies"


def three_tier():
    topo = load_topology(ROOT / "three-tier.topology.yaml")
    policy = load_policy(ROOT / "three-tier.policy.yaml", topo)
    return policy, topo, planned_bindings(policy, topo)


def test_no_change_means_an_empty_diff():
    policy, topo, bindings = three_tier()
    a = compile_network(policy, topo, bindings)
    b = compile_network(policy, topo, bindings)
    assert all(diff_flowsets(a[s], b[s]).empty for s in a)


def test_from_nothing_everything_is_added():
    policy, topo, bindings = three_tier()
    fs = compile_network(policy, topo, bindings)["hv1"]
    d = diff_flowsets(None, fs)
    assert len(d.add) == len(fs.flows) and not d.modify and not d.delete
    # web1's rate, 1 + 2 DHCP meters, 1 + 2 ND meters (web1 and app1 are dual-stack), the log meter
    assert len(d.add_meters) == len(fs.meters) == 8


def test_editing_one_rule_touches_only_that_rules_flows():
    policy, topo, bindings = three_tier()
    before = compile_network(policy, topo, bindings)
    tenant = policy.tenants["acme"]
    rules = list(tenant.rules)
    web_app = next(i for i, r in enumerate(rules) if (r.src, r.dst) == ("web", "app"))
    rules[web_app] = replace(rules[web_app], services=(Service(Proto.TCP, 8081, 8081),))
    edited = replace(policy, tenants=MappingProxyType(
        {"acme": replace(tenant, rules=tuple(rules))}))
    after = compile_network(edited, topo, bindings)
    touched = []
    for sw in before:
        d = diff_flowsets(before[sw], after[sw])
        touched += [(f.owner, f.match.get("tcp_dst")) for f in (*d.add, *d.modify, *d.delete)]
    # Only the rule's service clauses change (one per family: web and app are
    # dual-stack), on the switches where web VMs open connections to app (hv1 holds
    # web1; hv2 holds web2): 8080 goes, 8081 comes.
    assert sorted(touched) == sorted([("rule:acme:web->app", 8080), ("rule:acme:web->app", 8081)]
                                     * 2 * 2)


def test_a_vm_moving_changes_its_own_flows_and_the_paths_to_it():
    policy, topo, bindings = three_tier()
    before = compile_network(policy, topo, bindings)
    moved = dict(bindings.ports, db1=PortRef("hv1", 150))
    after = compile_network(policy, topo, Bindings(MappingProxyType(moved)))
    owners = set()
    for sw in before:
        d = diff_flowsets(before[sw], after[sw])
        owners |= {f.owner for f in (*d.add, *d.modify, *d.delete)}
    # db1's own flows, and the segment's trunk classifier on the hypervisors it
    # joins or leaves; no other VM's flows.
    assert "vm:db1" in owners
    assert owners <= {"vm:db1", "segment:30", "rule:acme:app->db", "base"}


def test_an_own_flow_masking_a_kept_part_is_diffed_like_whole_tables():
    """A switch's own part gains (or loses) a flow with the key of a flow of a shared
    part that did not change: the switch must swap that one flow, nothing more."""
    from sdnctl.flows import Flow, FlowSet, Fragment, Goto, Match, Output

    shared = Fragment.build(("l2", 10, None), [
        Flow("l2_forward", 100, Match.of(reg6=10, eth_dst="02:00:00:00:00:01"), (Output(7),)),
        Flow("l2_forward", 100, Match.of(reg6=10, eth_dst="02:00:00:00:00:02"), (Output(7),)),
    ])
    other = Fragment.build(("arp", 10), [Flow("arp", 10, Match.of(reg6=10), ())])
    own_flow = Flow("l2_forward", 100, Match.of(reg6=10, eth_dst="02:00:00:00:00:02"),
                    (Goto("ct_in"),), "vm:b")
    plain = FlowSet("hv1", Fragment.build(("local", "hv1"), []), (shared, other))
    masking = FlowSet("hv1", Fragment.build(("local", "hv1"), [own_flow]), (shared, other), 1)
    for old, new in ((plain, masking), (masking, plain)):
        fast = diff_flowsets(old, new)
        slow = diff_flowsets(FlowSet.build("hv1", old.flows), FlowSet.build("hv1", new.flows))
        assert (fast.add, fast.modify, fast.delete) == (slow.add, slow.modify, slow.delete)
        assert len(fast.modify) == 1 and not fast.add and not fast.delete
