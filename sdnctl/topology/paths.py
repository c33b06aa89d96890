"""Unicast paths over the topology graph, with loop-free backups for fast failover.

Paths lead to the edge: hypervisors and gateways (below, "hypervisor" means
either). Traffic between them crosses the fabric only: another hypervisor is never
a transit node (a dual-homed hypervisor would otherwise look like a cheap bridge
between two leaves). So distances towards a hypervisor depend only on which
fabric switches it hangs off: hypervisors behind the same leaves share one
breadth-first search, which keeps path computation linear in practice.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import networkx as nx

from sdnctl.topology.model import Role, Topology


def _roles(graph: nx.Graph[str]) -> Iterable[tuple[str, Role]]:
    """(switch, role) for every node of a `Topology.graph()`, which gives each a role."""
    # networkx's stubs type `nodes(data=key)` as yielding the whole attribute dict.
    return cast("Iterable[tuple[str, Role]]", graph.nodes(data="role"))


@dataclass(frozen=True, slots=True)
class NextHop:
    """How a switch sends towards a destination hypervisor."""

    port: int
    backup_port: int | None = None  # a loop-free alternate, if the graph has one


@dataclass
class PathFinder:
    """Next hops towards hypervisors, computed on demand and cached.

    Primary: a shortest-path neighbour; equal-cost ties are spread by a stable
    hash of (switch, dest, neighbour), so two spines do not both lean on the same
    leaf. Backup: another neighbour whose own primary path to the destination
    never comes back through this switch, so a failover bucket cannot bounce a
    packet between two switches while one link is down (a second failure is for
    the controller to repair).
    """

    graph: nx.Graph[str]
    _fabric: set[str] = field(default_factory=set)
    _dist_by_attachment: dict[frozenset[str], dict[str, int]] = field(default_factory=dict)
    _hops: dict[tuple[str, str], NextHop | None] = field(default_factory=dict)
    _primary: dict[tuple[str, str], str | None] = field(default_factory=dict)

    _fabric_neighbours: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._fabric = {n for n, r in _roles(self.graph) if not r.edge}
        # Only fabric neighbours can be transit; a leaf's many hypervisors are skipped.
        self._fabric_neighbours = {
            node: tuple(n for n in self.graph.neighbors(node) if n in self._fabric)
            for node in self.graph.nodes
        }

    def _dist(self, dest: str) -> dict[str, int]:
        """Hop count from each fabric switch (and dest itself) to hypervisor `dest`."""
        return self._dist_to(frozenset(n for n in self.graph.neighbors(dest) if n in self._fabric))

    def next_hop_to_rack(self, node: str, attach: frozenset[str], key: str) -> NextHop | None:
        """How hypervisor `node` sends towards the fabric switches `attach` (a rack's
        leaves): the nearest of its fabric neighbours, ties spread by `key`, and
        another as backup (a hypervisor is never transit, so any is loop-free)."""
        dist = self._dist_to(frozenset(attach & self._fabric))
        ranked = sorted((n for n in self._fabric_neighbours[node] if n in dist),
                        key=lambda n: (dist[n], _spread(node, key, n), n))
        if not ranked:
            return None
        ports = [self.graph.edges[node, n]["ports"][node] for n in ranked[:2]]
        return NextHop(ports[0], ports[1] if len(ports) > 1 else None)

    def _dist_to(self, attach: frozenset[str]) -> dict[str, int]:
        """Hop count from each fabric switch to the nearest of `attach`."""
        if attach not in self._dist_by_attachment:
            dist = {n: 1 for n in attach}
            queue = deque(sorted(attach))
            while queue:
                node = queue.popleft()
                for n in self.graph.neighbors(node):
                    if n in self._fabric and n not in dist:
                        dist[n] = dist[node] + 1
                        queue.append(n)
            self._dist_by_attachment[attach] = dist
        return self._dist_by_attachment[attach]

    def _ranked(self, node: str, dest: str) -> list[str]:
        dist = self._dist(dest)
        cands = [n for n in self._fabric_neighbours[node] if n in dist]
        ranked = sorted(cands, key=lambda n: (dist[n], _spread(node, dest, n), n))
        # Adjacent to dest: the direct link first, fabric neighbours as backups.
        return [dest, *ranked] if self.graph.has_edge(node, dest) else ranked

    def primary(self, node: str, dest: str) -> str | None:
        key = (node, dest)
        if key not in self._primary:
            ranked = self._ranked(node, dest) if node != dest else []
            self._primary[key] = ranked[0] if ranked else None
        return self._primary[key]

    def _path_avoids(self, start: str, dest: str, avoid: str) -> bool:
        node: str | None = start
        while node != dest:
            if node is None or node == avoid:
                return False
            node = self.primary(node, dest)
        return True

    def next_hop(self, node: str, dest: str) -> NextHop | None:
        """How `node` sends towards hypervisor `dest`; None if it cannot."""
        key = (node, dest)
        if key not in self._hops:
            self._hops[key] = self._compute(node, dest)
        return self._hops[key]

    def _compute(self, node: str, dest: str) -> NextHop | None:
        first = self.primary(node, dest)
        if first is None:
            return None
        ports = self.graph.edges[node, first]["ports"]
        backup = next(
            (self.graph.edges[node, n]["ports"][node]
             for n in self._ranked(node, dest)[1:] if self._path_avoids(n, dest, node)),
            None,
        )
        return NextHop(ports[node], backup)


def _spread(node: str, dest: str, neighbour: str) -> int:
    return zlib.crc32(f"{node}>{dest}>{neighbour}".encode())


@dataclass(frozen=True, slots=True)
class Carriage:
    """Which hypervisors the fabric connects, hypervisors never being transit: two
    are connected when they are linked to each other or hang off one connected
    piece of fabric. (A chain hv1–hv2–hv3 connects hv1 to hv2 and hv2 to hv3, not
    hv1 to hv3.) VXLAN tunnels are the other way between hypervisors: both ends
    need a `tunnel_ip`, and the segments a connection is delivered into (the
    destination's, and the source's for the replies) overlays (`vni`)."""

    pieces: dict[str, frozenset[int]]  # hypervisor -> the fabric pieces it hangs off
    direct: frozenset[frozenset[str]]  # hypervisor pairs linked to each other
    tunnel: frozenset[str]  # hypervisors with a tunnel endpoint

    def connected(self, a: str, b: str, overlay: bool = False) -> bool:
        """Can traffic between hypervisors `a` and `b` pass (in overlay segments
        only, when `overlay`)?"""
        if a == b or not self.pieces.get(a, frozenset()).isdisjoint(self.pieces.get(b, ())):
            return True
        if frozenset((a, b)) in self.direct:
            return True
        return overlay and a in self.tunnel and b in self.tunnel


def carriage(topology: Topology) -> Carriage:
    graph = topology.graph()
    fabric = graph.subgraph(n for n, r in _roles(graph) if not r.edge)
    piece_of = {n: i for i, comp in enumerate(nx.connected_components(fabric)) for n in comp}
    pieces: dict[str, frozenset[int]] = {}
    direct: set[frozenset[str]] = set()
    tunnel: set[str] = set()
    for node, role in _roles(graph):
        if not role.edge:
            continue
        pieces[node] = frozenset(piece_of[n] for n in graph.neighbors(node) if n in piece_of)
        direct.update(frozenset((node, n)) for n in graph.neighbors(node) if n not in piece_of)
        if topology.switches[node].tunnel_ip is not None:
            tunnel.add(node)
    return Carriage(pieces, frozenset(direct), frozenset(tunnel))
