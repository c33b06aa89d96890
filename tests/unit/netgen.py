"""Random small networks (policy + topology + planned bindings) for property tests."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Network
from types import MappingProxyType

from hypothesis import strategies as st

from sdnctl.bindings import Bindings, planned_bindings
from sdnctl.policy.ipv6 import eui64_address
from sdnctl.policy.model import (
    ANY,
    VM,
    Default,
    Group,
    Policy,
    Proto,
    Rule,
    Segment,
    Service,
    SnatPool,
    Tenant,
)
from sdnctl.topology.model import Link, PortRef, Role, Switch, Topology, Uplink, uplink_mac

SERVICES = [
    Service(Proto.TCP, 80, 80),
    Service(Proto.TCP, 8000, 8100),
    Service(Proto.UDP, 53, 53),
    Service(Proto.ICMP),
    Service(Proto.ANY),
]
LABELS = ["web", "app", "db"]


def topology_of(shape: str) -> Topology:
    """A few fabric shapes, loops included."""
    sw: dict[str, Switch] = {}
    links: list[Link] = []

    def add(name: str, dpid: int, role: Role) -> None:
        sw[name] = Switch(name, dpid, role)

    def link(a: str, pa: int, b: str, pb: int) -> None:
        links.append(Link(PortRef(a, pa), PortRef(b, pb)))

    if shape == "single":
        add("hv1", 1, Role.HYPERVISOR)
    elif shape == "star":
        add("hv1", 1, Role.HYPERVISOR)
        add("hv2", 2, Role.HYPERVISOR)
        add("leaf", 16, Role.FABRIC)
        link("hv1", 10, "leaf", 1)
        link("hv2", 10, "leaf", 2)
    elif shape == "leafspine":  # looped, hv3 dual-homed
        for i, name in enumerate(["spine1", "spine2", "leaf1", "leaf2"]):
            add(name, 0x100 + i, Role.FABRIC)
        for i in (1, 2, 3):
            add(f"hv{i}", i, Role.HYPERVISOR)
        link("leaf1", 1, "spine1", 1)
        link("leaf1", 2, "spine2", 1)
        link("leaf2", 1, "spine1", 2)
        link("leaf2", 2, "spine2", 2)
        link("hv1", 1, "leaf1", 10)
        link("hv2", 1, "leaf2", 10)
        link("hv3", 1, "leaf1", 11)
        link("hv3", 2, "leaf2", 11)
    elif shape == "gateways":  # leafspine, and a border gateway on each leaf
        base = topology_of("leafspine")
        sw.update(base.switches)
        links.extend(base.links)
        for i, leaf in ((1, "leaf1"), (2, "leaf2")):
            name = f"border{i}"
            uplink = Uplink(name, 1, IPv4Interface(f"203.0.113.{1 + i}/24"),
                            IPv4Address("203.0.113.1"), uplink_mac(0x30 + i, 1),
                            next_hop_mac="02:aa:00:00:00:01" if i == 1 else None)
            sw[name] = Switch(name, 0x30 + i, Role.GATEWAY, uplinks=(uplink,))
            link(name, 2, leaf, 20)
    elif shape == "ring":  # three fabric switches in a ring, a hypervisor on each
        for i in (1, 2, 3):
            add(f"f{i}", 0x10 + i, Role.FABRIC)
            add(f"hv{i}", i, Role.HYPERVISOR)
            link(f"hv{i}", 1, f"f{i}", 10)
        link("f1", 1, "f2", 2)
        link("f2", 1, "f3", 2)
        link("f3", 1, "f1", 2)
    else:
        raise ValueError(shape)
    return Topology(MappingProxyType(sw), tuple(links))


OUTSIDE = ("external", "198.51.100.0/24", "192.0.2.128/25")


def north_south_rule(draw: st.DrawFn, tenant: str, groups: list[str]) -> Rule:
    """A rule to or from the outside (`external` or a CIDR)."""
    inside = draw(st.sampled_from(groups))
    outside = draw(st.sampled_from(OUTSIDE))
    services = tuple(draw(st.lists(st.sampled_from(SERVICES), min_size=1, max_size=2,
                                   unique=True)))
    if draw(st.booleans()):
        return Rule(tenant, inside, outside, services)
    return Rule(tenant, outside, inside, services)


def floating_ip(vm: VM) -> IPv4Address:
    """A VM's floating IP in the gateways' uplink subnet, unique by its MAC."""
    return IPv4Address(f"203.0.113.{100 + int(vm.mac[-2:], 16)}")


def with_tunnels(topo: Topology, skip: frozenset[str] = frozenset()) -> Topology:
    """`topo` with a tunnel endpoint (198.51.100.N, port 200 + N) on every hypervisor
    but those in `skip`: overlay segments cross those in VXLAN."""
    sw = dict(topo.switches)
    for name, s in topo.switches.items():
        if s.role is Role.HYPERVISOR and name not in skip:
            sw[name] = replace(s, tunnel_ip=IPv4Address(f"198.51.100.{s.dpid}"),
                               tunnel_port=200 + s.dpid)
    return Topology(MappingProxyType(sw), topo.links)


@st.composite
def networks(draw: st.DrawFn, shapes: tuple[str, ...] = ("single", "star", "leafspine", "ring",
                                                          "gateways"),
             ) -> tuple[Policy, Topology, Bindings]:
    shape = draw(st.sampled_from(shapes))
    # Overlay segments: tunnel endpoints on the hypervisors, maybe all but one (so a
    # segment with both a VLAN and a VNI takes the fabric to that one).
    skip = frozenset(draw(st.sampled_from([(), (), ("hv1",), ("hv3",)])))
    topo = with_tunnels(topology_of(shape), skip)
    hosts = sorted(n for n, s in topo.switches.items() if s.role is Role.HYPERVISOR)
    tunnel_hosts = sorted(topo.tunnel_endpoints())
    n_tenants = draw(st.integers(1, 2))
    tenants: dict[str, Tenant] = {}
    vms: dict[str, VM] = {}
    vlan = 10
    mac = 1
    for t in range(n_tenants):
        tname = f"t{t}"
        segments: dict[str, Segment] = {}
        for s in range(draw(st.integers(1, 3))):
            # Tenants reuse the same subnets on purpose: overlap must not leak.
            net = IPv4Network(f"10.0.{s}.0/24")
            routed = draw(st.booleans())
            gw = IPv4Address(f"10.0.{s}.1") if routed else None
            # VLAN only, VXLAN only (when some hypervisor has a tunnel), or both.
            kinds = ["vlan", "vlan", "vni", "both"] if tunnel_hosts else ["vlan"]
            kind = draw(st.sampled_from(kinds))
            # IPv6 on some segments, routed (gateway6) or not, whatever IPv4 does.
            net6 = IPv6Network(f"2001:db8:{s}::/64") if draw(st.booleans()) else None
            gw6 = IPv6Address(f"2001:db8:{s}::1") if net6 and draw(st.booleans()) else None
            segments[f"s{s}"] = Segment(
                tname, f"s{s}", None if kind == "vni" else vlan, net, gw,
                vni=None if kind == "vlan" else 5000 + vlan, subnet6=net6, gateway6=gw6,
            )
            vlan += 1
        # As the loader demands: a VM that may send into an overlay-only segment (it
        # is in one, or routes into a routed one) sits on a tunnel endpoint.
        routes_to_overlay = any(x.vlan is None and x.routed for x in segments.values())
        routes6_to_overlay = any(x.vlan is None and x.routed6 for x in segments.values())
        n_vms = draw(st.integers(1, 4))
        for v in range(n_vms):
            seg = draw(st.sampled_from(sorted(segments)))
            overlay_only = segments[seg].vlan is None or (
                routes_to_overlay and segments[seg].routed) or (
                routes6_to_overlay and segments[seg].routed6)
            name = f"{tname}v{v}"
            ip = segments[seg].subnet.network_address + 10 + v
            label = draw(st.sampled_from(LABELS))
            net6 = segments[seg].subnet6
            mac_text = f"02:00:00:00:00:{mac:02x}"
            ip6 = None if net6 is None else draw(st.sampled_from([
                eui64_address(net6, mac_text), net6.network_address + 10 + v]))
            vms[name] = VM(
                name, tname, seg, f"02:00:00:00:00:{mac:02x}", ip,
                MappingProxyType({"tier": label}),
                draw(st.sampled_from(tunnel_hosts if overlay_only else hosts)),
                draw(st.sampled_from([None, None, 100])), ip6=ip6,
            )
            mac += 1
        groups = {
            label: Group(tname, label, MappingProxyType({"tier": label})) for label in LABELS
        }
        names = [n for n in vms if vms[n].tenant == tname]
        groups["picked"] = Group(tname, "picked", vms=tuple(draw(st.lists(
            st.sampled_from(names), max_size=2, unique=True))) or (names[0],))
        ends = st.sampled_from([*groups, ANY])
        services = st.lists(st.sampled_from(SERVICES), min_size=1, max_size=2, unique=True)
        families = st.sampled_from([None, None, 4, 6])
        rules = tuple(
            Rule(tname, draw(ends), draw(ends), tuple(draw(services)), family=draw(families))
            for _ in range(draw(st.integers(0, 3)))
        )
        snat = None
        if topo.uplinks():  # north–south: a pool, floating IPs, rules to and from outside
            rules += tuple(north_south_rule(draw, tname, [*groups, ANY])
                           for _ in range(draw(st.integers(0, 2))))
            if draw(st.booleans()):
                first = IPv4Address(f"203.0.113.{10 + 4 * t}")
                snat = SnatPool(first, first + draw(st.integers(0, 2)))
            for name in names:
                seg = segments[vms[name].segment]
                if seg.routed and seg.vlan is not None and draw(st.booleans()):
                    vms[name] = replace(vms[name], floating_ip=floating_ip(vms[name]))
        default = draw(st.sampled_from([Default.DENY, Default.DENY, Default.ALLOW]))
        tenants[tname] = Tenant(tname, default, MappingProxyType(segments),
                                MappingProxyType(groups), rules, snat=snat)
    policy = Policy(MappingProxyType(tenants), MappingProxyType(vms))
    return policy, topo, planned_bindings(policy, topo)
