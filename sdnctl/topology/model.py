"""The validated topology (DESIGN.md §3): switches, links, and the networkx graph."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from types import MappingProxyType

import networkx as nx


class Role(enum.Enum):
    HYPERVISOR = "hypervisor"
    FABRIC = "fabric"
    GATEWAY = "gateway"  # a border switch: uplinks to an external router, NAT

    @property
    def edge(self) -> bool:
        """Hypervisors and gateways sit at the edge of the fabric: frames are
        addressed to them by label, and they are never transit."""
        return self is not Role.FABRIC


# The OpenFlow port of a hypervisor's VXLAN port when the topology names none:
# high, so it never meets planned VM ports (100, 101, ...) or usual trunk numbers.
TUNNEL_PORT = 65000
# The MTU of fabric links and the tunnel underlay when the topology names none.
DEFAULT_UNDERLAY_MTU = 1500


@dataclass(frozen=True, slots=True, order=True)
class PortRef:
    """One OpenFlow port of one switch."""

    switch: str
    port: int

    def __str__(self) -> str:
        return f"{self.switch}:{self.port}"


def uplink_mac(dpid: int, port: int) -> str:
    """The MAC a gateway's uplink answers with: `0e:01:`, the dpid's low 16 bits,
    the port's 16 bits. Locally administered; the policy loader refuses VM MACs
    in `0e:00`-`0e:01`."""
    raw = f"{dpid & 0xFFFF:04x}{port & 0xFFFF:04x}"
    return "0e:01:" + ":".join(raw[i:i + 2] for i in range(0, 8, 2))


@dataclass(frozen=True, slots=True)
class Uplink:
    """One port of a gateway facing the external router (an exit)."""

    switch: str
    port: int
    ip: IPv4Interface  # the gateway's own address and the uplink subnet
    next_hop: IPv4Address  # the external router: every packet going out goes to it
    mac: str  # what the uplink answers ARP with and sends from
    vlan: int | None = None  # the uplink's 802.1Q tag, if the external side is tagged
    next_hop_mac: str | None = None  # configured; None: learned by ARP
    line: int = 0

    @property
    def ref(self) -> PortRef:
        return PortRef(self.switch, self.port)

    @property
    def name(self) -> str:
        return f"{self.switch}:{self.port}"


@dataclass(frozen=True, slots=True)
class Switch:
    name: str
    dpid: int
    role: Role
    line: int = 0
    # A hypervisor's overlay tunnel endpoint: the underlay address of its VXLAN
    # port (None: it carries no overlay traffic) and that port's OpenFlow number.
    tunnel_ip: IPv4Address | None = None
    tunnel_port: int = TUNNEL_PORT
    uplinks: tuple[Uplink, ...] = ()  # a gateway's exits, in file order


@dataclass(frozen=True, slots=True)
class Link:
    a: PortRef
    b: PortRef
    line: int = 0


@dataclass(frozen=True, slots=True)
class Topology:
    switches: Mapping[str, Switch]
    links: tuple[Link, ...]
    source: str = "<topology>"
    underlay_mtu: int = DEFAULT_UNDERLAY_MTU
    # Indexes, not data: link ends by switch and by port, so lookups cost O(1).
    _link_ports: Mapping[str, frozenset[int]] = field(
        init=False, repr=False, compare=False, hash=False
    )
    _peers: Mapping[PortRef, PortRef] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        ports: dict[str, set[int]] = {}
        peers: dict[PortRef, PortRef] = {}
        for link in self.links:
            for end, other in ((link.a, link.b), (link.b, link.a)):
                ports.setdefault(end.switch, set()).add(end.port)
                peers[end] = other
        object.__setattr__(
            self, "_link_ports", MappingProxyType({k: frozenset(v) for k, v in ports.items()})
        )
        object.__setattr__(self, "_peers", MappingProxyType(peers))

    def graph(self) -> nx.Graph[str]:
        """A fresh graph: nodes are switch names, each edge carries `ports={switch: port}`.

        A new graph each call so callers may mutate it (e.g. remove a failed link).
        """
        g: nx.Graph[str] = nx.Graph()
        for sw in self.switches.values():
            g.add_node(sw.name, dpid=sw.dpid, role=sw.role)
        for link in self.links:
            g.add_edge(
                link.a.switch,
                link.b.switch,
                ports={link.a.switch: link.a.port, link.b.switch: link.b.port},
            )
        return g

    def by_dpid(self, dpid: int) -> Switch | None:
        for sw in self.switches.values():
            if sw.dpid == dpid:
                return sw
        return None

    def uplinks(self) -> tuple[Uplink, ...]:
        """Every gateway uplink (exit) of the topology, by switch name then file order."""
        return tuple(u for name in sorted(self.switches) for u in self.switches[name].uplinks)

    def tunnel_endpoints(self) -> dict[str, IPv4Address]:
        """Hypervisor -> its tunnel IP, for those that have one."""
        return {
            name: sw.tunnel_ip for name, sw in self.switches.items()
            if sw.tunnel_ip is not None and sw.role is Role.HYPERVISOR
        }

    def link_ports(self, switch: str) -> frozenset[int]:
        """The ports of `switch` that are fabric links (trunks)."""
        return self._link_ports.get(switch, frozenset())

    def peer(self, end: PortRef) -> PortRef | None:
        """The far end of the link plugged into `end`, if any."""
        return self._peers.get(end)
