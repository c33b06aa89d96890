"""Unicast paths over the topology graph, with loop-free backups for fast failover.

Traffic between hypervisors crosses the fabric only: another hypervisor is never
a transit node (a dual-homed hypervisor would otherwise look like a cheap
bridge between two leaves). Ties are broken by neighbour name, so the choice is
deterministic.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import networkx as nx

from sdnctl.topology.model import Role


@dataclass(frozen=True, slots=True)
class NextHop:
    """How `switch` sends towards a destination hypervisor."""

    port: int
    backup_port: int | None = None  # a loop-free alternate, if the graph has one


def _transit_graph(graph: nx.Graph, dest: str) -> nx.Graph:
    """The graph without hypervisors other than `dest` (they are never transit)."""
    keep = [
        n for n, role in graph.nodes(data="role") if role is not Role.HYPERVISOR or n == dest
    ]
    return graph.subgraph(keep)


def next_hops_towards(graph: nx.Graph, dest: str) -> dict[str, NextHop]:
    """For every switch that can reach hypervisor `dest`: its next hop (and backup).

    Primary: a shortest-path neighbour; ties are spread by a stable hash of
    (switch, dest, neighbour), so two spines do not both lean on the same leaf.
    Backup: another neighbour whose own primary path to `dest` never comes back
    through this switch, so a failover bucket cannot bounce a packet between two
    switches while one link is down (a second failure is for the controller).
    """
    transit = _transit_graph(graph, dest)
    dist: dict[str, int] = nx.single_source_shortest_path_length(transit, dest)

    def ranked(node: str) -> list[str]:
        cands = [n for n in graph.neighbors(node) if n in dist]
        return sorted(cands, key=lambda n: (dist[n], _spread(node, dest, n), n))

    primary: dict[str, str] = {}
    for node in graph.nodes:
        if node != dest:
            cands = ranked(node)
            if cands:
                primary[node] = cands[0]

    def path_avoids(start: str, avoid: str) -> bool:
        node = start
        while node != dest:
            if node == avoid or node not in primary:
                return False
            node = primary[node]
        return True

    hops: dict[str, NextHop] = {}
    for node in sorted(primary):
        ports = graph.edges[node, primary[node]]["ports"]
        backup = next(
            (graph.edges[node, n]["ports"][node]
             for n in ranked(node)[1:] if path_avoids(n, node)),
            None,
        )
        hops[node] = NextHop(ports[node], backup)
    return hops


def _spread(node: str, dest: str, neighbour: str) -> int:
    return zlib.crc32(f"{node}>{dest}>{neighbour}".encode())


def all_next_hops(graph: nx.Graph) -> dict[str, dict[str, NextHop]]:
    """destination hypervisor -> {switch -> NextHop}."""
    hypervisors = [n for n, role in graph.nodes(data="role") if role is Role.HYPERVISOR]
    return {h: next_hops_towards(graph, h) for h in sorted(hypervisors)}
