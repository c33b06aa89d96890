"""`sdnctl plan` is exact: every port of every protocol, in ranges, per VM pair.

The property test compares plan with a brute force that knows nothing of ranges:
for every ordered VM pair it marks, port by port over all 65,536 ports of TCP and
of UDP (and for ICMP echo and for the packets only `any` allows), what each
policy lets the pair open (DESIGN.md §2), and takes the difference, in IPv4 and
in IPv6 (rules of one family, segments gaining or losing `subnet6` and `gateway6`).
"""

from __future__ import annotations

import dataclasses
import re
from ipaddress import IPv4Address
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.policy.load import load_policy
from sdnctl.policy.model import ANY, Default, Policy, Proto, Rule, Service
from sdnctl.policy.services import OTHER, ServiceRange
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import Link, PortRef, Role, Switch, Topology
from sdnctl.verify.plan import parse_service_text, plan_edit
from sdnctl.verify.reach import probe
from sdnctl.verify.semantics import reach
from sdnctl.verify.simulate import Simulator
from tests.unit.netgen import networks

ROOT = Path(__file__).resolve().parents[2]
PORTS = 65536
# Port boundaries that make ranges overlap, touch and nest often.
EDGES = [1, 2, 79, 80, 81, 443, 8000, 8080, 8100, 8101, 9000, 65534, 65535]


@st.composite
def services(draw: st.DrawFn) -> Service:
    kind = draw(st.sampled_from(["tcp", "tcp", "udp", "icmp", "any"]))
    if kind in ("icmp", "any"):
        return Service(Proto(kind))
    port = st.one_of(st.sampled_from(EDGES), st.integers(1, 65535))
    lo, hi = sorted((draw(port), draw(port)))
    return Service(Proto(kind), lo, hi)


@st.composite
def edits(draw: st.DrawFn) -> tuple[Policy, Policy, Topology]:
    """A random network, and two policies over it with random rules (of both
    families or one), defaults and labels (so VMs change groups too); a segment may
    lose its IPv6 (`subnet6`, its VMs' `ip6`) or its `gateway6`, or gain a
    `gateway6`, in either."""
    policy, topo, _ = draw(networks())

    def variant() -> Policy:
        tenants = {}
        no_ip6: set[tuple[str, str]] = set()
        for name, t in policy.tenants.items():
            ends = st.sampled_from([*t.groups, ANY])
            rules = tuple(
                Rule(name, draw(ends), draw(ends), tuple(draw(st.lists(services(), min_size=1,
                                                                     max_size=3))),
                     family=draw(st.sampled_from([None, None, 4, 6])))
                for _ in range(draw(st.integers(0, 4))))
            default = draw(st.sampled_from([Default.DENY, Default.DENY, Default.ALLOW]))
            segments = dict(t.segments)
            for sname, seg in t.segments.items():
                cut = draw(st.sampled_from(["keep", "subnet6", "gateway6", "routed6"]))
                if cut == "subnet6":
                    segments[sname] = dataclasses.replace(seg, subnet6=None, gateway6=None)
                    no_ip6.add((name, sname))
                elif cut == "gateway6":
                    segments[sname] = dataclasses.replace(seg, gateway6=None)
                elif cut == "routed6" and seg.subnet6 is not None:
                    segments[sname] = dataclasses.replace(seg, gateway6=seg.subnet6[1])
            tenants[name] = dataclasses.replace(t, rules=rules, default=default,
                                                segments=MappingProxyType(segments))
        vms = {n: dataclasses.replace(
                   vm, labels=MappingProxyType({"tier": draw(st.sampled_from(["web", "app",
                                                                            "db"]))}),
                   ip6=None if (vm.tenant, vm.segment) in no_ip6 else vm.ip6)
               for n, vm in policy.vms.items()}
        return Policy(MappingProxyType(tenants), MappingProxyType(vms))

    return variant(), variant(), topo


def _allowed_ports(policy: Policy, a: str, b: str, out: dict[str, np.ndarray | bool],
                   family: int = 4) -> dict[str, np.ndarray | bool]:
    """Mark every port of every rule that lets a open to b (DESIGN.md §2)."""
    va, vb = policy.vms[a], policy.vms[b]
    routed = (policy.segment_of(va).routed_in(family)
              and policy.segment_of(vb).routed_in(family))
    if va.tenant != vb.tenant or not (va.segment == vb.segment or routed):
        return out
    if family == 6 and (va.ip6 is None or vb.ip6 is None):
        return out
    tenant = policy.tenants[va.tenant]
    for rule in tenant.rules:
        if a in policy.members(tenant.name, rule.src) and b in policy.members(
                tenant.name, rule.dst) and rule.covers(family):
            for s in rule.services:
                if s.has_ports:
                    out[s.proto.value][s.port_lo:s.port_hi + 1] = True  # type: ignore[index]
    return out


def _painted(triples: tuple[tuple[str, str, str], ...], a: str, b: str, family: int = 4,
             dual: bool = False) -> dict[str, np.ndarray | bool]:
    """The plan's ranges for one pair in one family, painted port by port. An
    unqualified range holds in IPv4, and in IPv6 too when the pair has IPv6 in
    either policy (`dual`)."""
    tcp, udp = np.zeros(PORTS, bool), np.zeros(PORTS, bool)
    out: dict[str, np.ndarray | bool] = {"tcp": tcp, "udp": udp, "icmp": False, OTHER: False}
    for x, y, text in triples:
        if (x, y) != (a, b):
            continue
        r, only = parse_service_text(text)
        if only is not None and only != family or only is None and family == 6 and not dual:
            continue
        if r.proto == "any":
            tcp[:], udp[:] = True, True
            out["icmp"] = out[OTHER] = True
        elif r.proto in ("tcp", "udp"):
            out[r.proto][r.lo:r.hi + 1] = True  # type: ignore[index]
        else:
            out[r.proto] = True
    return out


def _same(x: dict[str, np.ndarray | bool], y: dict[str, np.ndarray | bool]) -> bool:
    return all(np.array_equal(x[k], y[k]) for k in x)


def _minus(x: dict[str, np.ndarray | bool], y: dict[str, np.ndarray | bool]
           ) -> dict[str, np.ndarray | bool]:
    return {k: (x[k] & ~y[k]) if isinstance(x[k], np.ndarray) else bool(x[k] and not y[k])
            for k in x}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits())
def test_plan_equals_brute_force_over_every_port(edit) -> None:
    old, new, topo = edit
    plan = plan_edit(old, new, topo)
    names = sorted(old.vms)
    for a in names:
        for b in names:
            if a == b or old.vms[a].tenant != old.vms[b].tenant:
                assert not any((x, y) == (a, b) for x, y, _ in plan.added + plan.removed)
                continue
            dual = any(p.vms[a].ip6 is not None and p.vms[b].ip6 is not None
                       for p in (old, new))
            for family in (4, 6):
                was, now = _brute(old, a, b, family), _brute(new, a, b, family)
                assert _same(_painted(plan.added, a, b, family, dual), _minus(now, was)), (
                    a, b, family, "added")
                assert _same(_painted(plan.removed, a, b, family, dual), _minus(was, now)), (
                    a, b, family, "removed")


def _brute(policy: Policy, a: str, b: str, family: int = 4) -> dict[str, np.ndarray | bool]:
    """Port by port: reach() asked about single ports where a rule names them (a
    port no rule names is allowed only by `any`, which marks every port)."""
    tcp, udp = np.zeros(PORTS, bool), np.zeros(PORTS, bool)
    out: dict[str, np.ndarray | bool] = {
        "tcp": tcp, "udp": udp, "icmp": reach(policy, a, b, Service(Proto.ICMP), family),
        OTHER: reach(policy, a, b, Service(Proto.ANY), family)}
    if out[OTHER]:
        tcp[:], udp[:] = True, True
        return out
    return _allowed_ports(policy, a, b, out, family)


def test_brute_force_is_checked_against_reach_port_by_port() -> None:
    # Guard for the brute force itself: every TCP port of a few pairs (allowed some
    # ports, in unrouted segments) agrees with reach() asked about that single port.
    topo = load_topology(ROOT / "topologies" / "multi-tenant.topology.yaml")
    policy = load_policy(ROOT / "topologies" / "multi-tenant.policy.yaml", topo)
    names = sorted(policy.vms)
    for a, b in [(x, y) for x in names for y in names if x != y][:6]:
        for proto in ("tcp", "udp"):
            got = _brute(policy, a, b)[proto]
            for port in range(PORTS):
                want = reach(policy, a, b, Service(Proto(proto), port, port))
                assert got[port] == want, (a, b, proto, port)


def _three_tier(text_edit: tuple[str, str]) -> tuple[Policy, Policy, Topology]:
    topo = load_topology(ROOT / "topologies" / "three-tier.topology.yaml")
    path = ROOT / "topologies" / "three-tier.policy.yaml"
    old = load_policy(path, topo)
    from sdnctl.policy.load import parse_policy

    text = path.read_text()
    assert text_edit[0] in text
    new = parse_policy(text.replace(*text_edit), "new.yaml", topo)
    return old, new, topo


def test_widening_a_range_is_reported_as_the_range_it_adds() -> None:
    old, new, topo = _three_tier(("{from: web, to: app, allow: [tcp/8080]}",
                                  "{from: web, to: app, allow: [tcp/8000-9000]}"))
    plan = plan_edit(old, new, topo)
    assert {t[2] for t in plan.added} == {"tcp/8000-8079", "tcp/8081-9000"}
    assert plan.removed == ()
    text = plan.to_text()
    assert "+ tcp/8081-9000 now allowed acme: web[web]→app[app]" in text
    # And the network agrees at a port inside the range, which sampling missed.
    for policy, want in ((old, False), (new, True)):
        bindings = planned_bindings(policy, topo)
        sim = Simulator(compile_network(policy, topo, bindings), topo)
        got = probe(sim, policy, bindings, "web1", "app1", Service(Proto.TCP, 8500, 8500))
        assert got.reached is want


def test_narrowing_and_any_are_reported_whole() -> None:
    old, new, topo = _three_tier(("{from: admin, to: any, allow: [tcp/22]}",
                                  "{from: admin, to: any, allow: [any]}"))
    plan = plan_edit(old, new, topo)
    got = {(a, b, s) for a, b, s in plan.added if a == "jump1" and b == "app1"}
    # Everything but tcp/22, which was already allowed: the rest of TCP, all of UDP,
    # ICMP echo and the other IP packets.
    assert got == {("jump1", "app1", s) for s in
                   ("tcp/0-21", "tcp/23-65535", "udp/0-65535", "icmp", OTHER)}
    back = plan_edit(new, old, topo)
    assert {(a, b, s) for a, b, s in back.removed if (a, b) == ("jump1", "app1")} == got


def test_a_new_tenant_default_shows_as_any() -> None:
    old, new, topo = _three_tier(("default: deny", "default: allow"))
    plan = plan_edit(old, new, topo)
    assert ("db1", "app1", "any") in plan.added  # db1 could open nothing to app1 before
    assert ("db1", "web1", "tcp/81-442") in plan.added  # it had tcp/80 and tcp/443
    assert plan.removed == ()


def test_pairs_the_fabric_cannot_connect_are_not_promised() -> None:
    # hv3 hangs off hv2 only: hypervisors are not transit, so hv1 cannot reach hv3.
    topo = Topology(MappingProxyType({
        "hv1": Switch("hv1", 1, Role.HYPERVISOR), "hv2": Switch("hv2", 2, Role.HYPERVISOR),
        "hv3": Switch("hv3", 3, Role.HYPERVISOR)}),
        (Link(PortRef("hv1", 1), PortRef("hv2", 1)), Link(PortRef("hv2", 2), PortRef("hv3", 1))))
    policy = load_policy(ROOT / "topologies" / "three-tier.policy.yaml", load_topology(
        ROOT / "topologies" / "three-tier.topology.yaml"))
    vms = dict(policy.vms)
    vms["app1"] = dataclasses.replace(vms["app1"], host="hv3")
    old = Policy(policy.tenants, MappingProxyType(vms))
    tenant = dataclasses.replace(old.tenants["acme"], default=Default.ALLOW)
    new = Policy(MappingProxyType({"acme": tenant}), old.vms)
    plan = plan_edit(old, new, topo)
    pairs = {(a, b) for a, b, _ in plan.added}
    assert ("web1", "app1") not in pairs and ("app1", "web1") not in pairs  # hv1 vs hv3
    assert ("web2", "app1") in pairs  # hv2 and hv3 are linked
    # Moved to hv1 (linked to hv2), app1 meets web1 too and still meets web2.
    moved = dict(new.vms)
    moved["app1"] = dataclasses.replace(moved["app1"], host="hv1")
    plan = plan_edit(new, Policy(new.tenants, MappingProxyType(moved)), topo)
    assert ("web1", "app1", "any") in plan.added and ("app1", "web1", "any") in plan.added
    assert not [t for t in plan.added + plan.removed if "web2" in t[:2] and "app1" in t[:2]]


def test_a_segment_moved_into_an_overlay_meets_across_the_tunnel() -> None:
    # hv1 and hv3 share no fabric but both terminate tunnels: VMs in VLAN segments
    # there never meet. Give app a VNI: still not (the replies to web would need
    # the fabric). Give web one too: web1 (hv1) and app1 (hv3) meet, both ways.
    topo = Topology(MappingProxyType({
        "hv1": Switch("hv1", 1, Role.HYPERVISOR, tunnel_ip=IPv4Address("198.51.100.1")),
        "hv2": Switch("hv2", 2, Role.HYPERVISOR),
        "hv3": Switch("hv3", 3, Role.HYPERVISOR, tunnel_ip=IPv4Address("198.51.100.3")),
        "leaf": Switch("leaf", 16, Role.FABRIC)}),
        (Link(PortRef("hv1", 1), PortRef("leaf", 1)), Link(PortRef("hv2", 1), PortRef("leaf", 2))))
    base = load_policy(ROOT / "topologies" / "three-tier.policy.yaml", load_topology(
        ROOT / "topologies" / "three-tier.topology.yaml"))
    vms = dict(base.vms)
    vms["app1"] = dataclasses.replace(vms["app1"], host="hv3")  # web1 on hv1, web2 on hv2
    old = Policy(base.tenants, MappingProxyType(vms))
    acme = old.tenants["acme"]

    def overlaid(*names: str) -> Policy:
        segs = dict(acme.segments)
        for i, n in enumerate(names):
            segs[n] = dataclasses.replace(segs[n], vni=5000 + i)
        return Policy(MappingProxyType({"acme": dataclasses.replace(
            acme, segments=MappingProxyType(segs))}), old.vms)

    assert plan_edit(old, overlaid("app"), topo).changes == ()
    plan = plan_edit(old, overlaid("app", "web"), topo)
    assert plan.removed == ()
    # web2 and jump1 sit on hv2, which has no tunnel endpoint.
    assert set(plan.added) == {("web1", "app1", "tcp/8080"), ("app1", "web1", "tcp/80"),
                               ("app1", "web1", "tcp/443"), ("app1", "web1", "icmp")}
    # What the compiled networks do, probed.
    for policy, want in ((old, False), (overlaid("app"), False), (overlaid("app", "web"), True)):
        bindings = planned_bindings(policy, topo)
        sim = Simulator(compile_network(policy, topo, bindings), topo)
        for a, b, s in (("web1", "app1", Service(Proto.TCP, 8080, 8080)),
                        ("app1", "web1", Service(Proto.TCP, 80, 80))):
            assert probe(sim, policy, bindings, a, b, s).reached is want, (a, b, want)
        assert not probe(sim, policy, bindings, "web2", "app1",
                         Service(Proto.TCP, 8080, 8080)).reached


def test_service_ranges_read_back_and_the_module_examples_hold() -> None:
    import doctest

    import sdnctl.policy.services as services

    assert doctest.testmod(services).failed == 0
    for text in ("tcp/0-21", "tcp/22", "udp/1-65535", "icmp", OTHER, "any"):
        assert str(ServiceRange.parse(text)) == text
    for bad in ("tcp/", "sctp/1", "tcp/a-b", "icmp/8"):
        with pytest.raises(ValueError):
            ServiceRange.parse(bad)


def _without_ipv6(text: str) -> str:
    """An example policy with its IPv6 (subnet6, gateway6, ip6) taken out."""
    return re.sub(r',\s*(?:subnet6|gateway6|ip6): "[^"]*"', "", text)


def _dual_stack(text: str) -> str:
    """three-tier with IPv6 on web and app (routed), none on db."""
    text = _without_ipv6(text)
    for n in (10, 20):
        text = text.replace(f"gateway: 10.1.{n}.1}}",
                            f'gateway: 10.1.{n}.1, subnet6: "2001:db8:{n}::/64", '
                            f'gateway6: "2001:db8:{n}::1"}}', 1)
    return text


def test_ipv6_changes_are_reported_per_family_and_shared_ones_once() -> None:
    topo = load_topology(ROOT / "topologies" / "three-tier.topology.yaml")
    from sdnctl.policy.load import parse_policy

    text = _without_ipv6((ROOT / "topologies" / "three-tier.policy.yaml").read_text())
    v4 = parse_policy(text, "old.yaml", topo)
    dual = parse_policy(_dual_stack(text), "new.yaml", topo)
    # Segments gaining subnet6: what IPv4 allowed, now in IPv6 too, for dual pairs only.
    plan = plan_edit(v4, dual, topo)
    assert plan.removed == ()
    assert ("web1", "app1", "tcp/8080 (ipv6)") in plan.added
    assert ("app1", "web1", "icmp (ipv6)") in plan.added
    assert not [t for t in plan.added if "db1" in t[:2]]  # db has no subnet6
    assert "+ tcp/8080 (ipv6) now allowed acme: web[web]→app[app]" in plan.to_text()
    assert {c["family"] for c in plan.to_json()["changes"]} == {"ipv6"}  # type: ignore
    # A rule narrowed to one family: lost in IPv6 only, where the pair has both.
    narrowed = parse_policy(_dual_stack(text).replace(
        "{from: web, to: app, allow: [tcp/8080]}",
        "{from: web, to: app, allow: [tcp/8080], family: ipv4}"), "new.yaml", topo)
    plan = plan_edit(dual, narrowed, topo)
    assert set(plan.removed) == {("web1", "app1", "tcp/8080 (ipv6)"),
                                 ("web2", "app1", "tcp/8080 (ipv6)")}
    assert plan.added == ()
    # The same service widened in both families is one unqualified change.
    wider = parse_policy(_dual_stack(text).replace(
        "{from: web, to: app, allow: [tcp/8080]}",
        "{from: web, to: app, allow: [tcp/8080-8081]}"), "new.yaml", topo)
    assert set(plan_edit(dual, wider, topo).added) == {("web1", "app1", "tcp/8081"),
                                                      ("web2", "app1", "tcp/8081")}
    # A segment losing its gateway6: routed IPv6 is lost, IPv4 and switched IPv6 stay.
    unrouted = parse_policy(_dual_stack(text).replace(', gateway6: "2001:db8:20::1"', ""),
                            "new.yaml", topo)
    plan = plan_edit(dual, unrouted, topo)
    assert plan.added == () and plan.removed
    assert all(t[2].endswith("(ipv6)") and "app1" in t[:2] for t in plan.removed)
