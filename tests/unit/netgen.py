"""Random small networks (policy + topology + planned bindings) for property tests."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType

from hypothesis import strategies as st

from sdnctl.bindings import Bindings, planned_bindings
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
    Tenant,
)
from sdnctl.topology.model import Link, PortRef, Role, Switch, Topology

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


@st.composite
def networks(draw: st.DrawFn) -> tuple[Policy, Topology, Bindings]:
    shape = draw(st.sampled_from(["single", "star", "leafspine", "ring"]))
    topo = topology_of(shape)
    hosts = sorted(n for n, s in topo.switches.items() if s.role is Role.HYPERVISOR)
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
            segments[f"s{s}"] = Segment(tname, f"s{s}", vlan, net, gw)
            vlan += 1
        n_vms = draw(st.integers(1, 4))
        for v in range(n_vms):
            seg = draw(st.sampled_from(sorted(segments)))
            name = f"{tname}v{v}"
            ip = segments[seg].subnet.network_address + 10 + v
            label = draw(st.sampled_from(LABELS))
            vms[name] = VM(
                name, tname, seg, f"02:00:00:00:00:{mac:02x}", ip,
                MappingProxyType({"tier": label}), draw(st.sampled_from(hosts)),
                draw(st.sampled_from([None, None, 100])),
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
        rules = tuple(
            Rule(tname, draw(ends), draw(ends), tuple(draw(services)))
            for _ in range(draw(st.integers(0, 3)))
        )
        default = draw(st.sampled_from([Default.DENY, Default.DENY, Default.ALLOW]))
        tenants[tname] = Tenant(tname, default, MappingProxyType(segments),
                                MappingProxyType(groups), rules)
    policy = Policy(MappingProxyType(tenants), MappingProxyType(vms))
    return policy, topo, planned_bindings(policy, topo)
