"""The validated topology (DESIGN.md §3): switches, links, and the networkx graph."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx


class Role(enum.Enum):
    HYPERVISOR = "hypervisor"
    FABRIC = "fabric"


@dataclass(frozen=True, slots=True)
class Switch:
    name: str
    dpid: int
    role: Role
    line: int = 0


@dataclass(frozen=True, slots=True, order=True)
class PortRef:
    """One OpenFlow port of one switch."""

    switch: str
    port: int

    def __str__(self) -> str:
        return f"{self.switch}:{self.port}"


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

    def graph(self) -> nx.Graph:
        """A fresh graph: nodes are switch names, each edge carries `ports={switch: port}`.

        A new graph each call so callers may mutate it (e.g. remove a failed link).
        """
        g = nx.Graph()
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

    def link_ports(self, switch: str) -> frozenset[int]:
        """The ports of `switch` that are fabric links (trunks)."""
        ports = set()
        for link in self.links:
            for end in (link.a, link.b):
                if end.switch == switch:
                    ports.add(end.port)
        return frozenset(ports)

    def peer(self, end: PortRef) -> PortRef | None:
        """The far end of the link plugged into `end`, if any."""
        for link in self.links:
            if link.a == end:
                return link.b
            if link.b == end:
                return link.a
        return None
