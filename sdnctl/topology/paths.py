"""Unicast paths over the topology graph, with loop-free backups for fast failover.

Traffic between hypervisors crosses the fabric only: another hypervisor is never
a transit node (a dual-homed hypervisor would otherwise look like a cheap
bridge between two leaves). Ties are broken by neighbour name, so the choice is
deterministic.
"""

from __future__ import annotations

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

    A neighbour qualifies as backup when it is strictly closer to `dest` than
    going back through us (the loop-free-alternate condition, RFC 5286), so the
    failover bucket can never bounce a packet back and forth.
    """
    transit = _transit_graph(graph, dest)
    dist: dict[str, int] = nx.single_source_shortest_path_length(transit, dest)
    hops: dict[str, NextHop] = {}
    for node in sorted(graph.nodes):
        if node == dest:
            continue
        # Candidates: neighbours on the transit graph that can reach dest.
        cands = sorted((dist[n], n) for n in graph.neighbors(node) if n in dist)
        if not cands:
            continue
        best_d, best = cands[0]
        my_dist = best_d + 1
        ports = graph.edges[node, best]["ports"]
        backup = None
        # A hypervisor is off the transit graph, so no neighbour's path can come back
        # through it: any other neighbour is loop-free. Otherwise apply the LFA test
        # dist(n, dest) < dist(n, node) + dist(node, dest), with dist(n, node) = 1.
        off_transit = node not in transit
        for d, n in cands[1:]:
            if off_transit or d < 1 + my_dist:
                backup = graph.edges[node, n]["ports"][node]
                break
        hops[node] = NextHop(ports[node], backup)
    return hops


def all_next_hops(graph: nx.Graph) -> dict[str, dict[str, NextHop]]:
    """destination hypervisor -> {switch -> NextHop}."""
    hypervisors = [n for n, role in graph.nodes(data="role") if role is Role.HYPERVISOR]
    return {h: next_hops_towards(graph, h) for h in sorted(hypervisors)}
