"""What keeps `verify`, `plan` and lint fast at scale, checked against the slow ways.

- The simulator's indexed tables and fabric memo give the answers of OpenFlow's
  linear scan (a reference copy of it lives here), trace for trace.
- The cross-tenant sweep with an unknown destination finds the leaks that
  sending to every address finds, when tenants have address plans of their own.
- In a scattered data centre (every VM of a tenant alone on its hypervisor), a
  hand-made change on one switch between two VMs of one tenant is found, offline
  and live: no speed-up may skip a pair.
- `plan` through classes equals the exhaustive matrix diff; cached semantics
  equal `reach`; lint's segment counting equals its pairwise definition.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings

from sdnctl.bench.datacentre import datacentre, two_vm_tenants
from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flowjson import lenient_flow
from sdnctl.flows import Conjunction, FlowSet, Goto, Match, SetField, WriteMetadata
from sdnctl.pipeline import REG_SEGMENT, tenant_id
from sdnctl.policy.lint import _may_talk, _Talkers
from sdnctl.policy.model import Default, Policy, Proto, Service
from sdnctl.verify.live import LiveTables, verify_network, verify_offline
from sdnctl.verify.plan import plan_edit
from sdnctl.verify.reach import probe, reachability
from sdnctl.verify.semantics import Semantics, probe_services, reach
from sdnctl.verify.simulate import (
    Conntrack,
    Simulator,
    Trace,
    _compile_match,
    _packet_value,
)
from tests.unit.netgen import networks
from tests.unit.test_verify import ROOT, brute_force, expanded, network, with_flows

# ---- the simulator against OpenFlow's definition ------------------------------------


def _matches(conds, pkt) -> bool:
    for c in conds:
        got = _packet_value(pkt, c.field)
        if got is None:
            return False
        if c.mask is None:
            if got != c.value:
                return False
        elif got & c.mask != c.value & c.mask:
            return False
    return True


def _is_clause(f) -> bool:
    return bool(f.actions) and isinstance(f.actions[0], Conjunction)


class LinearSimulator(Simulator):
    """The simulator as it was: every lookup scans the table in priority order, and
    no switch is memoised. The reference for the indexed one."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._scan: dict[tuple[str, int], list] = {}

    def lookup(self, switch, table, pkt):
        entries = self._scan.get((switch, table))
        if entries is None:
            entries = self._scan[(switch, table)] = [
                (f, _compile_match(f.match)) for f in self.flowsets[switch].flows
                if f.table == table]
        i = 0
        while i < len(entries):
            prio = entries[i][0].priority
            level = []
            while i < len(entries) and entries[i][0].priority == prio:
                level.append(entries[i])
                i += 1
            plain = [f for f, c in level if not _is_clause(f) and _matches(c, pkt)]
            if plain:
                return plain[0]
            seen: dict[int, set[int]] = {}
            sizes: dict[int, int] = {}
            for f, c in level:
                if _is_clause(f) and _matches(c, pkt):
                    for act in f.actions:
                        seen.setdefault(act.id, set()).add(act.clause)
                        sizes[act.id] = act.n_clauses
            done = {cid for cid, cl in seen.items() if len(cl) == sizes[cid]}
            if done:
                with_id = dict(pkt, conj_id=min(done))
                for f, c in entries:
                    if f.match.get("conj_id") is not None and _matches(c, with_id):
                        return f
        return None

    def _run_switch(self, switch, in_port, pkt, ct, trace):
        return self._pipeline(switch, dict(pkt, in_port=in_port), ct, trace)


def _same_probe(fast, slow) -> None:
    assert (fast.reached, fast.delivered, fast.reason) == (slow.reached, slow.delivered,
                                                           slow.reason)
    assert [(w, t.steps, t.delivered) for w, t in fast.traces] == \
        [(w, t.steps, t.delivered) for w, t in slow.traces]


def _stray_flows(policy: Policy, topo) -> dict[str, list]:
    """Hand-made flows of the kinds people add: an allow-all, a masked address, a
    conjunction clause of no conjunction, a priority tie with a compiled flow."""
    first = sorted(policy.tenants)[0]
    hv = sorted(n for n, s in topo.switches.items() if s.role.value == "hypervisor")[0]
    return {hv: [
        lenient_flow("acl", 60000, Match.of(eth_type=0x0800, ip_proto=6, tcp_dst=22),
                     (Goto("l3_route"),), "cookie:0x0", 0),
        lenient_flow("l3_route", 50, Match.of(eth_type=0x0800, ipv4_dst=("10.0.0.0",
                                                                        "255.0.0.0")),
                     (), "cookie:0x0", 0),
        lenient_flow("acl", 150, Match.of(metadata=(tenant_id(first), 0xFFFFFFFF),
                                          eth_type=0x0800, ip_proto=17, udp_dst=53),
                     (Conjunction(77, 1, 2),), "cookie:0x0", 0),
        lenient_flow("acl", 150, Match.of(conj_id=77, eth_type=0x0800),
                     (Goto("l3_route"),), "cookie:0x0", 0),
    ]}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_indexed_tables_answer_as_the_linear_scan(net) -> None:
    policy, topo, bindings = net
    compiled = compile_network(policy, topo, bindings)
    for extra in ({}, _stray_flows(policy, topo)):
        flowsets = dict(compiled)
        for sw, flows in extra.items():
            flowsets[sw] = with_flows(flowsets[sw], *flows)
        fast, slow = Simulator(flowsets, topo), LinearSimulator(flowsets, topo)
        names = sorted(bindings.ports)
        for a in names:
            for b in names:
                for service in (Service(Proto.TCP, 22, 22), Service(Proto.UDP, 53, 53),
                                Service(Proto.ICMP), Service(Proto.TCP, 8000, 8000)):
                    if a != b:
                        _same_probe(probe(fast, policy, bindings, a, b, service),
                                    probe(slow, policy, bindings, a, b, service))


def test_the_fabric_memo_keeps_every_field_it_does_not_touch() -> None:
    policy, topo, bindings, intent = network("leaf-spine")
    sim, ref = Simulator(intent, topo), LinearSimulator(intent, topo)
    for a in sorted(bindings.ports):
        for b in sorted(bindings.ports):
            if a != b:
                for service in probe_services(policy):
                    _same_probe(probe(sim, policy, bindings, a, b, service),
                                probe(ref, policy, bindings, a, b, service))
    assert any(sw.memo for sw in sim._switches.values())  # the fabric was memoised
    # A packet that differs only in fields the fabric never reads comes out with them.
    spine = next(n for n in intent if n.startswith("spine"))
    labels = [f.match.get("mpls_label") for f in intent[spine].flows
              if f.match.get("mpls_label") is not None]
    # A label the spine sends on through another port than 1 (never back out of it).
    pkt = next(p for label in labels
               if sim._run_switch(spine, 1, p := {"eth_type": 0x8847, "vlan_vid": 10,
                                                  "mpls_label": label, "ipv4_dst": "10.0.0.1"},
                                  Conntrack(), Trace()))
    trace = Trace()
    out1 = sim._run_switch(spine, 1, pkt, Conntrack(), trace)
    out2 = sim._run_switch(spine, 1, dict(pkt, ipv4_dst="10.9.9.9", odd=2), Conntrack(), trace)
    assert out1 and trace.steps[:len(trace.steps) // 2] == trace.steps[len(trace.steps) // 2:]
    assert [(p, dict(o, ipv4_dst="10.9.9.9", odd=2)) for p, o in out1] == out2
    assert out2 == [(p, o) for p, o in LinearSimulator(intent, topo)._run_switch(
        spine, 1, dict(pkt, ipv4_dst="10.9.9.9", odd=2), Conntrack(), Trace())]


# ---- the sweep across tenants ------------------------------------------------------


def _own_plans(n: int):
    policy, topo = two_vm_tenants(n, shared_plan=False)
    bindings = planned_bindings(policy, topo)
    return policy, topo, bindings, compile_network(policy, topo, bindings)


def _hijack(live, policy, bindings, src: str, dst: str, address: bool) -> None:
    """On src's hypervisor, let src's tenant through the acl and route into dst's
    segment, to dst: for dst's address only, or (address=False) for everything."""
    a, b = policy.vms[src], policy.vms[dst]
    mine = {"metadata": (tenant_id(a.tenant), 0xFFFFFFFF), "eth_type": 0x0800}
    if address:
        mine["ipv4_dst"] = str(b.ip)
    flows = [
        lenient_flow("acl", 60000, Match.of(mine), (Goto("l3_route"),), "cookie:0x0", 0),
        lenient_flow("l3_route", 60000, Match.of(mine),
                     (SetField("eth_dst", b.mac), SetField(REG_SEGMENT, policy.segment_of(b).id),
                      WriteMetadata(tenant_id(b.tenant), 0xFFFFFFFF), Goto("l2_forward")),
                     "cookie:0x0", 0),
    ]
    sw = bindings.ports[src].switch
    live[sw] = with_flows(live[sw], *flows)


def _check(policy, topo, bindings, intent, live) -> None:
    report = verify_network(intent, LiveTables(flowsets=live), policy, topo, bindings)
    truth = brute_force(live, policy, topo, bindings, report.pairs.services)
    assert truth and expanded(report) == truth
    offline = verify_offline(policy, topo, bindings, live)  # no deviations to go by
    assert expanded(offline) == truth


def test_a_leak_to_another_tenants_own_address_is_found() -> None:
    """t0's router sends one address of t1's plan (which t0 does not use) to t1's VM."""
    policy, topo, bindings, intent = _own_plans(12)
    live = dict(intent)
    _hijack(live, policy, bindings, "t0a", "t1b", address=True)
    _check(policy, topo, bindings, intent, live)


def test_a_leak_that_names_no_address_is_found_by_the_unknown_run() -> None:
    """Everything t0 routes goes to t1's VM: the flow names no address, so the one run
    with an unknown destination must see the packet arrive there."""
    policy, topo, bindings, intent = _own_plans(12)
    live = dict(intent)
    _hijack(live, policy, bindings, "t0a", "t1b", address=False)
    _check(policy, topo, bindings, intent, live)
    report = verify_offline(policy, topo, bindings, live)
    assert ("t0a", "t1b") in {(m.src.rep, m.dst.rep) for m in report.pairs.mismatches}


def test_many_small_tenants_are_swept_in_linear_work() -> None:
    """1,000 two-VM tenants with plans of their own: a handful of packets per class,
    not one per address of every other tenant."""
    policy, topo, bindings, compiled = _own_plans(1000)
    report = verify_offline(policy, topo, bindings, compiled)
    assert report.ok and report.pairs.sweep_fallbacks == 0
    assert report.pairs.vm_pairs == 2000 * 1999
    assert report.pairs.injections < 20 * len(report.pairs.classes)


# ---- a scattered data centre: nothing skipped --------------------------------------


def _scattered():
    policy, topo = datacentre(600, "scattered")
    bindings = planned_bindings(policy, topo)
    return policy, topo, bindings, compile_network(policy, topo, bindings)


def test_scattered_classes_are_one_vm_per_hypervisor_and_tier() -> None:
    policy, topo, bindings, compiled = _scattered()
    report = verify_offline(policy, topo, bindings, compiled)
    assert report.ok and report.pairs.vm_pairs == 600 * 599
    hosts = {(policy.vms[c.rep].tenant, bindings.ports[c.rep].switch)
             for c in report.pairs.classes}
    assert len(hosts) == len({(c.key[0], c.key[3]) for c in report.pairs.classes})


def test_a_service_clause_removed_on_one_switch_blocks_exactly_its_web_vms() -> None:
    """t0's web -> app rule loses its tcp/8000-8100 clause on the hypervisor of one of
    t0's web VMs: every t0 web VM there, and no other, loses tcp/8000 to every t0 app
    VM (on other hypervisors too); verify finds each such pair, live and offline."""
    policy, topo, bindings, intent = _scattered()
    web = next(n for n in sorted(bindings.ports) if n.startswith("t0vm")
               and policy.vms[n].segment == "web")
    hv = bindings.ports[web].switch
    gone = [f for f in intent[hv].flows if f.owner == "rule:t0:web->app"
            and _is_clause(f) and f.match.get("tcp_dst") is not None]  # its service clauses
    assert gone
    live = dict(intent)
    live[hv] = with_flows(live[hv], drop=gone)
    webs = [n for n, r in bindings.ports.items() if r.switch == hv
            and policy.vms[n].tenant == "t0" and policy.vms[n].segment == "web"]
    apps = [n for n in bindings.ports if policy.vms[n].tenant == "t0"
            and policy.vms[n].segment == "app"]
    assert any(bindings.ports[a].switch != hv for a in apps)
    sim = Simulator(live, topo)
    for report in (verify_network(intent, LiveTables(flowsets=live), policy, topo, bindings),
                   verify_offline(policy, topo, bindings, live)):
        ports = [s for s in report.pairs.services
                 if s.proto is Proto.TCP and 8000 <= s.port_lo <= 8100]
        assert Service(Proto.TCP, 8000, 8000) in ports  # live adds the ports the clauses name
        want = {(w, a, str(s)) for w in webs for a in apps for s in ports}
        assert expanded(report) == want
        assert all(m.kind == "BLOCKED" for m in report.pairs.mismatches)
    for w, a, s in sorted(want)[:50]:  # really blocked, and promised
        service = Service(Proto.TCP, int(s[4:]), int(s[4:]))
        assert reach(policy, w, a, service)
        assert not probe(sim, policy, bindings, w, a, service).reached


def test_an_allow_all_on_one_switch_leaks_every_pair_it_opens() -> None:
    """An allow-all in the acl of one hypervisor: each VM there now opens connections
    the policy denies, to VMs of its tenant on other hypervisors. Compared with every
    pair from some VMs there, probed one by one."""
    policy, topo, bindings, intent = _scattered()
    hv = bindings.ports["t0vm2"].switch  # a db VM: db is not routed
    allow = lenient_flow("acl", 60000, Match.of(eth_type=0x0800), (Goto("l3_route"),),
                         "cookie:0x0", 0)
    live = dict(intent)
    live[hv] = with_flows(live[hv], allow)
    services = probe_services(policy)
    sim = Simulator(live, topo)
    here = sorted(n for n, r in bindings.ports.items() if r.switch == hv)
    assert len(here) > 20
    judged = ["t0vm2", *here[:5]]  # the brute force is slow: a few sources, every pair
    truth = set()
    for a in judged:
        for b in sorted(bindings.ports):
            for s in services if a != b else ():
                result, allowed = probe(sim, policy, bindings, a, b, s), reach(policy, a, b, s)
                if (result.reached if allowed else result.delivered) != allowed:
                    truth.add((a, b, str(s)))
    assert ("t0vm2", "t0vm5", "tcp/5432") in truth  # db -> db, on another hypervisor
    assert {bindings.ports[b].switch for _, b, _ in truth} - {hv}
    for report in (verify_network(intent, LiveTables(flowsets=live), policy, topo, bindings),
                   verify_offline(policy, topo, bindings, live)):
        found = expanded(report)
        assert {t for t in found if t[0] in judged} == truth
        assert {a for a, _, _ in found} == set(here)  # every VM there leaks, none elsewhere
        # Without the commit in hv's zones, replies of what its VMs open are +inv
        # there (as on OVS): those pairs are blocked, not leaked.
        assert {m.kind for m in report.pairs.mismatches} == {"LEAK", "BLOCKED"}
        assert all(f"{hv}/deliver: invalid" in m.reason
                   for m in report.pairs.mismatches if m.kind == "BLOCKED")


# ---- plan, semantics, lint ---------------------------------------------------------


def _edited(policy: Policy, tenant: str, **changes) -> Policy:
    t = dataclasses.replace(policy.tenants[tenant], **changes)
    return Policy(MappingProxyType(dict(policy.tenants, **{tenant: t})), policy.vms)


def _exhaustive_plan(old: Policy, new: Policy, topo) -> tuple[set, set]:
    services = tuple(sorted(set(probe_services(old)) | set(probe_services(new))))

    def matrix(policy):
        bindings = planned_bindings(policy, topo)
        result = reachability(compile_network(policy, topo, bindings), policy, topo,
                              bindings, services)
        return {(a, b, str(s)) for (a, b, s), ok in result.items() if ok}

    before, after = matrix(old), matrix(new)
    return after - before, before - after


def test_plan_equals_the_simulated_networks_at_every_probe() -> None:
    for name in ("three-tier", "multi-tenant", "leaf-spine"):
        policy, topo, _, _ = network(name)
        edits = []
        for tname, tenant in sorted(policy.tenants.items()):
            if tenant.rules:
                first = tenant.rules[0]
                wider = dataclasses.replace(
                    first, services=(*first.services, Service(Proto.TCP, 9090, 9090)))
                edits.append(_edited(policy, tname, rules=(wider, *tenant.rules[1:])))
                edits.append(_edited(policy, tname, rules=tenant.rules[1:]))
            flipped = Default.ALLOW if tenant.default is Default.DENY else Default.DENY
            edits.append(_edited(policy, tname, default=flipped))
        vm = sorted(policy.vms)[0]
        moved = dict(policy.vms)
        moved[vm] = dataclasses.replace(policy.vms[vm], labels=MappingProxyType({}))
        edits.append(Policy(policy.tenants, MappingProxyType(moved)))
        for new in edits:
            plan = plan_edit(policy, new, topo)
            added, removed = _exhaustive_plan(policy, new, topo)
            # Plan speaks in ranges; at every probed service the simulated networks
            # change exactly where one of plan's ranges says they do.
            assert _at_probes(plan.added, policy, new) == added, name
            assert _at_probes(plan.removed, policy, new) == removed, name


def _at_probes(triples, old: Policy, new: Policy) -> set:
    from sdnctl.policy.services import ServiceRange

    services = set(probe_services(old)) | set(probe_services(new))
    # The simulated networks are probed in IPv4: a change plan gives as IPv6's
    # alone is not theirs; one given as IPv4's alone is.
    ipv4 = [(a, b, text.removesuffix(" (ipv4)")) for a, b, text in triples
            if not text.endswith(" (ipv6)")]
    return {(a, b, str(s)) for a, b, text in ipv4 for s in services
            if ServiceRange.parse(text).contains(s)}


def test_cached_semantics_equal_reach() -> None:
    for name in ("three-tier", "multi-tenant", "leaf-spine", "single"):
        policy = network(name)[0]
        sem = Semantics(policy)
        for a in policy.vms:
            for b in policy.vms:
                for s in probe_services(policy):
                    assert sem.reach(a, b, s) == reach(policy, a, b, s)


def test_lint_counts_partners_as_its_pairwise_definition() -> None:
    from sdnctl.policy.load import load_policy
    from sdnctl.topology.load import load_topology

    policies = [datacentre(600, "scattered")[0]]
    for name in ("three-tier", "multi-tenant", "leaf-spine", "single"):
        topo = load_topology(ROOT / "topologies" / f"{name}.topology.yaml")
        policies.append(load_policy(ROOT / "topologies" / f"{name}.policy.yaml", topo))
    for policy in policies:
        for tenant in policy.tenants.values():
            groups = ["any", *tenant.groups]
            for g in groups:
                src = policy.members(tenant.name, g)
                talkers = _Talkers(policy, src)
                for b in (vm.name for vm in policy.vms_of(tenant.name)):
                    want = any(_may_talk(policy, policy.vms[a], policy.vms[b]) for a in src)
                    assert talkers.reach(b) == want, (tenant.name, g, b)


def test_flowsets_given_flat_or_composed_simulate_alike() -> None:
    policy, topo, bindings, compiled = _scattered()
    flat = {n: FlowSet.of(n, fs.flows, fs.groups, fs.meters) for n, fs in compiled.items()}
    a = verify_offline(policy, topo, bindings, compiled)
    b = verify_offline(policy, topo, bindings, flat)
    assert a.ok and b.ok and a.pairs.probes == b.pairs.probes
