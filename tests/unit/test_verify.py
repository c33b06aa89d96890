"""`sdnctl verify` without a daemon: flow-table differences, and pair verdicts through
equivalence classes that agree with probing every VM pair (the classes are sound),
on hand-edited flow tables that leak, block, single out a VM or cross tenants; and
the offline mode on the compile benchmark's 5,000-VM data centre within seconds."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import pytest

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flowjson import flowset_from_json, lenient_flow
from sdnctl.flows import FlowSet, Goto, Match, Output, SetField, flowset_to_json
from sdnctl.policy.load import load_policy
from sdnctl.southbound.ofp import normalize_flowset
from sdnctl.topology.load import load_topology
from sdnctl.verify.classes import vm_classes
from sdnctl.verify.live import LiveTables, verify_network, verify_offline
from sdnctl.verify.reach import probe
from sdnctl.verify.semantics import reach
from sdnctl.verify.simulate import Simulator
from sdnctl.verify.tables import compare_switch

ROOT = Path(__file__).resolve().parents[2]


def network(name: str):
    topo = load_topology(ROOT / "topologies" / f"{name}.topology.yaml")
    policy = load_policy(ROOT / "topologies" / f"{name}.policy.yaml", topo)
    bindings = planned_bindings(policy, topo)
    intent = {n: normalize_flowset(fs)
              for n, fs in compile_network(policy, topo, bindings).items()}
    return policy, topo, bindings, intent


def with_flows(fs: FlowSet, *flows, drop=()) -> FlowSet:
    kept = [f for f in fs.flows if f.key not in {d.key for d in drop}]
    ordered = sorted([*kept, *flows], key=lambda f: (f.table, -f.priority, repr(f.match)))
    return FlowSet.of(fs.switch, ordered, fs.groups, fs.meters)


def brute_force(live, policy, topo, bindings, services) -> set[tuple[str, str, str]]:
    """Every bound VM pair x service whose simulated verdict differs from the policy."""
    sim = Simulator(live, topo)
    names = sorted(bindings.ports)
    out = set()
    for a in names:
        for b in names:
            for s in services if a != b else ():
                result, allowed = probe(sim, policy, bindings, a, b, s), reach(policy, a, b, s)
                if (result.reached if allowed else result.delivered) != allowed:
                    out.add((a, b, str(s)))
    return out


def expanded(report) -> set[tuple[str, str, str]]:
    return {(x, y, str(m.service)) for m in report.pairs.mismatches
            for x in m.src.members for y in m.dst.members if x != y}


def run(name: str, edit) -> tuple:
    policy, topo, bindings, intent = network(name)
    live = dict(intent)
    edit(live, policy, bindings)
    report = verify_network(intent, LiveTables(flowsets=live), policy, topo, bindings)
    truth = brute_force(live, policy, topo, bindings, report.pairs.services)
    return report, truth


def test_an_untouched_network_passes() -> None:
    report, truth = run("three-tier", lambda live, p, b: None)
    assert report.ok and truth == set() and report.differences == []
    assert "PASS" in report.to_text()


def test_a_hand_added_allow_all_is_an_extra_flow_and_the_pairs_it_opens_leak() -> None:
    def edit(live, policy, bindings):
        allow = lenient_flow("acl", 60000, Match.of(eth_type=0x0800), (Goto("l3_route"),),
                             "cookie:0x0", 0)
        live["hv1"] = with_flows(live["hv1"], allow)

    report, truth = run("three-tier", edit)
    assert not report.ok
    [extra] = report.differences
    assert (extra.switch, extra.kind) == ("hv1", "extra") and "priority=60000" in extra.text
    assert truth and expanded(report) == truth  # the classes found every leaking pair
    # It also skips the commit in hv1's zones, so the replies of connections that
    # hv1's VMs open (TCP SYN-ACK, echo reply) are +inv there, as on OVS: blocked.
    kinds = {m.kind for m in report.pairs.mismatches}
    assert kinds == {"LEAK", "BLOCKED"}
    for m in report.pairs.mismatches:
        if m.kind == "BLOCKED":
            assert m.src.key[3] == "hv1" and "hv1/deliver: invalid" in m.reason, m
    assert "LEAK" in report.to_text() and "FAIL" in report.to_text()


def test_a_flow_that_singles_out_one_vm_splits_its_class() -> None:
    def edit(live, policy, bindings):
        web1 = policy.vms["web1"]
        allow = lenient_flow("acl", 60000, Match.of(eth_type=0x0800, ipv4_dst=str(web1.ip),
                                                    ip_proto=6, tcp_dst=22),
                             (Goto("l3_route"),), "cookie:0x0", 0)
        for sw in ("hv1", "hv2"):
            live[sw] = with_flows(live[sw], allow)

    report, truth = run("three-tier", edit)
    assert truth and expanded(report) == truth
    assert {dst for _, dst, _ in truth} == {"web1"} and {s for *_, s in truth} == {"tcp/22"}


def test_a_missing_flow_blocks_what_the_policy_allows() -> None:
    def edit(live, policy, bindings):
        hv = bindings.ports["app1"].switch
        gone = [f for f in live[hv].flows if f.owner == "vm:app1" and f.stage == "port_security"
                and f.actions]
        live[hv] = with_flows(live[hv], drop=gone)

    report, truth = run("three-tier", edit)
    assert {d.kind for d in report.differences} == {"missing"}
    assert truth and expanded(report) == truth
    assert all(m.kind == "BLOCKED" for m in report.pairs.mismatches)


def test_a_leak_across_tenants_is_found() -> None:
    def edit(live, policy, bindings):
        # On h3, frames for beta's b1 (172.16.1.10) go to gamma's g1, which has the same
        # address: a beta VM there reaches into gamma (and no longer reaches b1).
        b1, g1 = policy.vms["b1"], policy.vms["g1"]
        ref = bindings.ports["g1"]
        misdirect = lenient_flow("l2_forward", 60000, Match.of(eth_dst=b1.mac),
                                 (SetField("eth_dst", g1.mac), Output(ref.port)),
                                 "cookie:0x0", 0)
        live[ref.switch] = with_flows(live[ref.switch], misdirect)

    report, truth = run("multi-tenant", edit)
    assert ("b2", "g1", "icmp") in truth and ("b2", "b1", "icmp") in truth
    assert expanded(report) == truth
    kinds = {(m.src.rep, m.dst.rep): m.kind for m in report.pairs.mismatches}
    assert kinds[("b2", "g1")] == "LEAK" and kinds[("b2", "b1")] == "BLOCKED"


def test_compare_switch_names_missing_extra_changed_and_unparsed() -> None:
    _, _, _, intent = network("three-tier")
    fs = intent["hv1"]
    first, second, third = fs.flows[0], fs.flows[1], fs.flows[2]
    changed = dataclasses.replace(second, actions=())
    recooked = lenient_flow(third.stage, third.priority, third.match, third.actions,
                            "cookie:0x0", 0)
    extra = lenient_flow("arp", 7, Match.of(eth_type=0x0806), (), "cookie:0x0", 0)
    live = with_flows(fs, changed, recooked, extra, drop=[first, second, third])
    diffs = compare_switch(fs, live, [{"table": 9, "priority": 1, "cookie": 5,
                                       "match": {"in_port": 1}, "reason": "table 9"}])
    kinds = [(d.kind, d.what) for d in diffs]
    assert kinds.count(("missing", "flow")) == 1 and kinds.count(("extra", "flow")) == 1
    assert kinds.count(("changed", "flow")) == 2 and ("unparsed", "flow") in kinds
    cookie = next(d for d in diffs if d.kind == "changed" and "cookie 0x0" in d.detail)
    assert cookie.live is not None and cookie.live.cookie == 0


def test_the_json_form_reads_back() -> None:
    for name in ("three-tier", "leaf-spine", "multi-tenant"):
        for fs in network(name)[3].values():
            assert flowset_from_json(flowset_to_json(fs)) == fs


def test_classes_group_alike_vms() -> None:
    policy, _, bindings, _ = network("single")
    classes = vm_classes(policy, bindings)
    assert sum(len(c.members) for c in classes) == len(bindings.ports)
    assert len(classes) < len(bindings.ports)


def test_offline_on_the_5k_data_centre_within_seconds() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from compile_scale import datacentre
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    policy, topo = datacentre(5000)
    bindings = planned_bindings(policy, topo)
    compiled = compile_network(policy, topo, bindings)
    started = time.monotonic()
    report = verify_offline(policy, topo, bindings, compiled)
    took = time.monotonic() - started
    print(f"\n5k VMs: {len(report.pairs.classes)} classes, {report.pairs.class_pairs} class "
          f"pairs, {report.pairs.vm_pairs} VM pairs, {report.pairs.probes} probes, "
          f"{report.pairs.injections} packets simulated in {took:.1f} s")
    assert report.ok
    assert report.pairs.vm_pairs == 5000 * 4999
    assert len(report.pairs.classes) <= 1000
    assert took < 60, f"{took:.1f} s"


@pytest.mark.parametrize("name", ["single", "leaf-spine", "multi-tenant", "three-tier"])
def test_offline_passes_on_every_example(name) -> None:
    policy, topo, bindings, intent = network(name)
    assert verify_offline(policy, topo, bindings, intent).ok


# ---- IPv6: the same questions in the second family ------------------------------------

SUBNET6 = {"a": ("2001:db8:1::/64", True), "b": ("2001:db8:2::/64", True),
           "c": ("2001:db8:3::/64", False), "x": ("2001:db8:1::/64", True),
           "y": ("2001:db8:9::/64", False), "g": ("2001:db8:1::/64", False)}
SAME_IP6 = {"b1": "2001:db8:1::10", "g1": "2001:db8:1::10"}  # reused across tenants, as in v4


def dual_stack():
    """multi-tenant with IPv6 on every segment (routed where IPv4 is), overlapping
    prefixes across tenants, and b1 and g1 sharing an address as they do in IPv4."""
    import re

    from sdnctl.policy.load import parse_policy

    text = re.sub(r',\s*(?:subnet6|gateway6|ip6): "[^"]*"', "",
                  (ROOT / "topologies" / "multi-tenant.policy.yaml").read_text())
    for seg, (net, routed) in SUBNET6.items():
        gw6 = f', gateway6: "{net.split("/")[0]}1"' if routed else ""
        text = re.sub(rf"( {seg}: \{{vlan: \d+, subnet: [0-9./]+(?:, gateway: [0-9.]+)?)\}}",
                      rf'\1, subnet6: "{net}"{gw6}}}', text)
    for vm, ip6 in SAME_IP6.items():
        text = re.sub(rf"(  {vm}: \{{[^}}]*host: h\d)", rf'\1, ip6: "{ip6}"', text)
    topo = load_topology(ROOT / "topologies" / "multi-tenant.topology.yaml")
    policy = parse_policy(text, "dual.yaml", topo)
    assert all(vm.ip6 is not None for vm in policy.vms.values())
    assert str(policy.vms["g1"].ip6) == str(policy.vms["b1"].ip6)
    bindings = planned_bindings(policy, topo)
    intent = {n: normalize_flowset(fs)
              for n, fs in compile_network(policy, topo, bindings).items()}
    return policy, topo, bindings, intent


def brute_force6(live, policy, topo, bindings, services) -> set[tuple[str, str, str]]:
    sim = Simulator(live, topo)
    names = sorted(bindings.ports)
    out = set()
    for a in names:
        for b in names:
            for s in services if a != b else ():
                result = probe(sim, policy, bindings, a, b, s, family=6)
                allowed = reach(policy, a, b, s, 6)
                if (result.reached if allowed else result.delivered) != allowed:
                    out.add((a, b, str(s)))
    return out


def run6(edit) -> tuple:
    policy, topo, bindings, intent = dual_stack()
    live = dict(intent)
    edit(live, policy, bindings)
    report = verify_network(intent, LiveTables(flowsets=live), policy, topo, bindings)
    services = report.pairs.services
    return (report, brute_force(live, policy, topo, bindings, services),
            brute_force6(live, policy, topo, bindings, services))


def expanded6(report, family: int) -> set[tuple[str, str, str]]:
    return {(x, y, str(m.service)) for m in report.pairs.mismatches if m.family == family
            for x in m.src.members for y in m.dst.members if x != y}


def test_offline_probes_both_families_on_a_dual_stack_network() -> None:
    policy, topo, bindings, intent = dual_stack()
    report = verify_offline(policy, topo, bindings, intent)
    assert report.ok
    v4_policy = dataclasses.replace(policy, vms={n: dataclasses.replace(vm, ip6=None)
                                                 for n, vm in policy.vms.items()})
    v4_only = verify_offline(v4_policy, topo, bindings, intent)
    assert report.pairs.probes > v4_only.pairs.probes  # the IPv6 probes
    # The IPv6 probes were real: the simulated network agrees with the policy in IPv6.
    assert brute_force6(intent, policy, topo, bindings, report.pairs.services) == set()


def test_an_ipv6_only_leak_is_found_in_ipv6_only() -> None:
    def edit(live, policy, bindings):
        allow = lenient_flow("acl", 60000, Match.of(eth_type=0x86DD), (Goto("l3_route"),),
                             "cookie:0x0", 0)
        live["h1"] = with_flows(live["h1"], allow)

    report, truth4, truth6 = run6(edit)
    assert truth6 and expanded6(report, 6) == truth6
    assert truth4 == set() == expanded6(report, 4)
    assert "(IPv6)" in report.to_text()
    assert {m["family"] for m in report.to_json()["mismatches"]} == {"ipv6"}  # type: ignore


def test_an_ipv6_leak_across_tenants_through_a_reused_address_is_found() -> None:
    def edit(live, policy, bindings):
        # IPv6 frames for beta's b1 go to gamma's g1, which has the same IPv6 address.
        b1, g1 = policy.vms["b1"], policy.vms["g1"]
        ref = bindings.ports["g1"]
        misdirect = lenient_flow("l2_forward", 60000, Match.of(eth_type=0x86DD, eth_dst=b1.mac),
                                 (SetField("eth_dst", g1.mac), Output(ref.port)),
                                 "cookie:0x0", 0)
        live[ref.switch] = with_flows(live[ref.switch], misdirect)

    report, truth4, truth6 = run6(edit)
    assert ("b2", "g1", "icmp") in truth6 and ("b2", "b1", "icmp") in truth6
    assert expanded6(report, 6) == truth6 and truth4 == set() == expanded6(report, 4)


def test_an_ipv6_leak_across_tenants_through_the_router_is_found() -> None:
    def edit(live, policy, bindings):
        # On h3, the ACL sends IPv6 for beta's b2 (outside alpha's prefixes, so what
        # alpha's VMs send to their router) straight to b2's port.
        b2 = policy.vms["b2"]
        there = bindings.ports["b2"]
        assert bindings.ports["a2"].switch == there.switch
        hop = lenient_flow("acl", 60000, Match.of(eth_type=0x86DD, ipv6_dst=str(b2.ip6)),
                           (SetField("eth_dst", b2.mac), Output(there.port)), "cookie:0x0", 0)
        live[there.switch] = with_flows(live[there.switch], hop)

    report, truth4, truth6 = run6(edit)
    assert ("a2", "b2", "icmp") in truth6
    assert expanded6(report, 6) == truth6 and truth4 == set() == expanded6(report, 4)


def test_a_deviating_icmpv6_flow_gets_icmp_probed() -> None:
    from sdnctl.policy.model import Proto, Service
    from sdnctl.verify.live import deviation_services

    flow = lenient_flow("acl", 60000, Match.of(eth_type=0x86DD, ip_proto=58, icmpv6_type=128),
                        (Goto("l3_route"),), "cookie:0x0", 0)
    assert deviation_services([("h1", flow)]) == {Service(Proto.ICMP)}
