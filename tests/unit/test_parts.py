"""Shared parts on a scattered data centre: computed once, and an edit costs what it changed.

The data centre is the benchmarks' hostile placement at a test's size: 5 tenants
of 125 VMs spread over all 24 hypervisors (VM k on hypervisor k * 7919 mod 24).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from types import MappingProxyType

import pytest

from sdnctl.bench.datacentre import datacentre
from sdnctl.bindings import Bindings, planned_bindings
from sdnctl.compile.acl import rule_ids
from sdnctl.compile.compiler import compile_network
from sdnctl.compile.context import NetworkView
from sdnctl.compile.incremental import IncrementalCompiler
from sdnctl.diff import diff_flowsets
from sdnctl.policy.model import Policy, Proto, Service
from sdnctl.topology.model import PortRef, Role


@pytest.fixture(scope="module")
def scattered():
    policy, topo = datacentre(600, "scattered")
    return policy, topo, planned_bindings(policy, topo)


def _with_rule_service(policy: Policy, tenant: str, extra: Service) -> Policy:
    t = policy.tenants[tenant]
    rules = tuple(dataclasses.replace(r, services=(*r.services, extra))
                  if (r.src, r.dst) == ("web", "app") else r for r in t.rules)
    return Policy(MappingProxyType(dict(policy.tenants, **{tenant: dataclasses.replace(
        t, rules=rules)})), policy.vms)


def test_every_tenant_touches_every_hypervisor(scattered):
    policy, topo, bindings = scattered
    hosts = defaultdict(set)
    for name, ref in bindings.ports.items():
        hosts[policy.vms[name].tenant].add(ref.switch)
    n_hv = sum(1 for s in topo.switches.values() if s.role is Role.HYPERVISOR)
    assert n_hv == 24 and all(len(h) == n_hv for h in hosts.values())


def test_a_part_is_one_object_on_every_switch_that_holds_it(scattered):
    policy, topo, bindings = scattered
    flowsets = compile_network(policy, topo, bindings)
    by_key = defaultdict(set)
    for fs in flowsets.values():
        fs.check()
        for part in fs.parts:
            by_key[part.key].add(id(part))
    assert all(len(ids) == 1 for ids in by_key.values())
    shared = [k for k in by_key if k[0] in ("arp", "l2", "route", "acl")]
    assert shared
    # What is held is far more than what is computed: each tenant part is on every
    # hypervisor, built once.
    held = sum(fs.n_flows for fs in flowsets.values())
    distinct = {id(f): f for fs in flowsets.values() for frag in fs.fragments()
                for f in frag.flows}
    assert len(distinct) * 3 < held


def test_a_rule_edit_sends_one_flow_where_the_rule_applies_and_rebuilds_its_parts_once(
        scattered):
    policy, topo, bindings = scattered
    compiler = IncrementalCompiler()
    before = compiler(policy, topo, bindings)
    edited = _with_rule_service(policy, "t0", Service(Proto.TCP, 9090, 9090))
    after = compiler(edited, topo, bindings)
    assert after == compile_network(edited, topo, bindings)

    # Where web->app applies: a web VM of t0 is bound there (and t0 has app VMs).
    web_here = {bindings.ports[n].switch for n, vm in policy.vms.items()
                if vm.tenant == "t0" and vm.labels["tier"] == "web"}
    diffs = {n: diff_flowsets(before[n], after[n]) for n in after}
    assert {n for n, d in diffs.items() if not d.empty} == web_here
    for name in web_here:  # one new service clause: tenant t0, tcp/9090, nothing else
        d = diffs[name]
        assert len(d) == 1 and len(d.add) == 1
        assert d.add[0].match.get("tcp_dst") == 9090
    # Each version of t0's rules in force somewhere was rebuilt once, not per switch.
    view = NetworkView(policy, topo, bindings)
    web_app = next(cid for r, cid in rule_ids(view).items()
                   if r.tenant == "t0" and (r.src, r.dst) == ("web", "app"))
    acl_parts = {p.key for fs in before.values() for p in fs.parts
                 if p.key[:2] == ("acl", "t0") and web_app in p.key[2]}
    scope = compiler.last_scope
    assert scope is not None and not scope.full
    assert scope.parts_rebuilt == len(acl_parts) < len(web_here)
    assert set(scope.switches) == web_here


def test_a_vm_move_changes_one_entry_wherever_its_segment_is_carried(scattered):
    policy, topo, bindings = scattered
    compiler = IncrementalCompiler()
    before = compiler(policy, topo, bindings)
    vm = "t1vm4"  # an app VM: its routed segment is carried by every host of t1
    old = bindings.ports[vm]
    new = PortRef("hv23" if old.switch != "hv23" else "hv22", 299)
    moved = Bindings(MappingProxyType(dict(bindings.ports, **{vm: new})))
    after = compiler(policy, topo, moved)
    assert after == compile_network(policy, topo, moved)
    for name, fs in after.items():
        fs.check()
        d = diff_flowsets(before[name], fs)
        if name in (old.switch, new.switch):
            assert not d.empty
            continue
        holds = any(p.key[0] == "l2" and p.key[1] == policy.segment_of(policy.vms[vm]).id
                    for p in fs.parts)
        # Elsewhere: the one flow that says where the VM is, and only where it is known.
        assert (len(d), len(d.modify)) == ((1, 1) if holds else (0, 0)), name
        if holds:
            assert d.modify[0].owner == f"vm:{vm}"


def test_a_link_cut_rebuilds_paths_and_nothing_else(scattered):
    policy, topo, bindings = scattered
    compiler = IncrementalCompiler()
    before = compiler(policy, topo, bindings)
    link = next(ln for ln in topo.links if ln.a.switch == "hv0" or ln.b.switch == "hv0")
    after = compiler(policy, topo, bindings, frozenset({link.a, link.b}))
    assert after == compile_network(policy, topo, bindings, frozenset({link.a, link.b}))
    scope = compiler.last_scope
    assert scope is not None and not scope.full
    for name, fs in after.items():
        old = {p.key: p for p in before[name].parts}
        for part in fs.parts:
            if part.key[0] != "paths":
                assert part is old[part.key]
        assert fs.local is before[name].local
    # hv0 lost an uplink; everyone else's way to hv0's rack is unchanged (the
    # fabric's own groups fail over), so only hv0 and the fabric change.
    assert "hv0" in scope.switches
    assert all(not n.startswith("hv") or n == "hv0" for n in scope.switches)
