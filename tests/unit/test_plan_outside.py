"""`sdnctl plan` with the outside: what an edit changes between VMs and external
addresses, held to the semantics address by address and port by port."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdnctl.policy.model import ANY, Policy, Proto, Service, SnatPool
from sdnctl.policy.services import ServiceRange
from sdnctl.topology.model import Topology
from sdnctl.verify.plan import plan_edit
from sdnctl.verify.plan_outside import regions
from sdnctl.verify.semantics import reach_in, reach_out
from tests.unit.netgen import networks, north_south_rule

# Addresses in every CIDR netgen names (nested: 192.0.2.128/25 is not inside the
# others), one elsewhere, and the edges of each.
ADDRESSES = ["198.51.100.1", "198.51.100.255", "192.0.2.129", "192.0.2.255", "192.0.2.5",
             "8.8.8.8", "203.0.113.77"]
PORTS = [22, 53, 80, 443, 8000, 8100, 8101]
SAMPLES = [Service(Proto.ICMP)] + [
    Service(p, n, n) for p in (Proto.TCP, Proto.UDP) for n in PORTS]


@st.composite
def edits(draw: st.DrawFn) -> tuple[Policy, Policy, Topology]:
    policy, topo, _ = draw(networks(shapes=("gateways",)))

    def variant() -> Policy:
        tenants = {}
        for name, t in policy.tenants.items():
            groups = [*t.groups, ANY]
            rules = tuple(north_south_rule(draw, name, groups)
                          for _ in range(draw(st.integers(0, 3))))
            first = IPv4Address("203.0.113.60") + 4 * len(tenants)
            snat = SnatPool(first, first) if draw(st.booleans()) else None
            tenants[name] = dataclasses.replace(t, rules=rules, snat=snat)
        return Policy(MappingProxyType(tenants), policy.vms)

    return variant(), variant(), topo


def _region_label(address: str, *policies: Policy, tenant: str) -> str:
    """The smallest CIDR either policy's rules of `tenant` name around `address`."""
    ip = IPv4Address(address)
    named = {n for p in policies for r in p.tenants[tenant].rules
             for n in (r.src_net, r.dst_net) if n is not None and n.prefixlen and ip in n}
    return str(max(named, key=lambda n: n.prefixlen)) if named else "external"


def _planned(plan, vm: str, label: str, inbound: bool) -> tuple[list[str], list[str]]:
    """(added, removed) ranges the plan names for this VM and region, one direction."""
    out: tuple[list[str], list[str]] = ([], [])
    for c in plan.changes:
        for x, y in c.pairs:
            if (inbound and y == vm and x.split(" ")[0] == label) or (
                    not inbound and x == vm and y.split(" ")[0] == label):
                (out[0] if c.added else out[1]).append(str(c.service))
    return out


def _covers(ranges: list[str], service: Service) -> bool:
    for text in ranges:
        r = ServiceRange.parse(text)
        if r.proto == "any":
            return True
        if r.proto == service.proto.value and (not service.has_ports
                                               or r.lo <= service.port_lo <= r.hi):
            return True
    return False


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits())
def test_plan_equals_the_semantics_for_every_vm_address_and_service(edit) -> None:
    old, new, topo = edit
    plan = plan_edit(old, new, topo)
    for vm in sorted(old.vms):
        if old.vms[vm].host is None:
            continue
        for address in ADDRESSES:
            ip = IPv4Address(address)
            label = _region_label(address, old, new, tenant=old.vms[vm].tenant)
            for inbound in (False, True):
                added, removed = _planned(plan, vm, label, inbound)
                for s in SAMPLES:
                    if inbound:
                        was, now = reach_in(old, ip, vm, s), reach_in(new, ip, vm, s)
                    else:
                        was, now = reach_out(old, vm, ip, s), reach_out(new, vm, ip, s)
                    assert _covers(added, s) == (now and not was), (
                        vm, address, inbound, str(s), "added", added)
                    assert _covers(removed, s) == (was and not now), (
                        vm, address, inbound, str(s), "removed", removed)


def test_regions_cut_nested_cidrs_and_keep_the_rest():
    got = regions({IPv4Network("198.51.100.0/24"), IPv4Network("198.51.100.0/25")},
                  [IPv4Network("10.0.0.0/8")])
    labels = [r.label for r in got]
    assert labels == ["198.51.100.0/24 outside 198.51.100.0/25", "198.51.100.0/25", "external"]
    assert got[0].address in IPv4Network("198.51.100.128/25")
    assert got[1].address in IPv4Network("198.51.100.0/25")
    assert all(got[2].address not in IPv4Network(n) for n in ("198.51.100.0/24", "10.0.0.0/8"))
    # a CIDR wholly inside the tenant is no region at all
    assert [r.label for r in regions({IPv4Network("10.1.0.0/16")},
                                     [IPv4Network("10.0.0.0/8")])] == ["external"]


def test_opening_a_partner_network_reads_as_one_change():
    from pathlib import Path

    from sdnctl.policy.load import load_policy
    from sdnctl.topology.load import load_topology

    root = Path(__file__).resolve().parents[2] / "topologies"
    topo = load_topology(root / "northsouth.topology.yaml")
    old = load_policy(root / "northsouth.policy.yaml", topo)
    shop = old.tenants["shop"]
    wider = dataclasses.replace(shop, rules=tuple(
        dataclasses.replace(r, services=(Service(Proto.TCP, 443, 443),
                                         Service(Proto.TCP, 8443, 8443)))
        if r.dst == "198.51.100.0/24" else r for r in shop.rules))
    new = dataclasses.replace(old, tenants=MappingProxyType({"shop": wider}))
    text = plan_edit(old, new, topo).to_text()
    assert "+ tcp/8443 now allowed shop: app[app]→198.51.100.0/24 (1 VM pair: app1→" in text
    assert "1 added, 0 removed" in text
