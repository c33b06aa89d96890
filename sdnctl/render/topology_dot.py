"""The topology with its VMs, segments and tenants, as Graphviz DOT text.

Pure: it only builds text. `sdnctl graph` hands it to Graphviz's `dot`.
"""

from __future__ import annotations

from sdnctl.bindings import Bindings
from sdnctl.policy.model import Policy
from sdnctl.topology.model import Role, Topology

# Tenant fill colours, then segment border colours, assigned in name order.
TENANT_COLOURS = ("#cfe8ff", "#ffe0b3", "#d7f5d0", "#f3d1f4", "#fff3b0", "#d9d9f7")
SEGMENT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _q(text: str) -> str:
    """A quoted DOT string; a backslash-n inside stays DOT's line break."""
    return '"' + text.replace('"', '\\"') + '"'


def topology_dot(topology: Topology, policy: Policy, bindings: Bindings) -> str:
    tenants = sorted(policy.tenants)
    tenant_fill = {t: TENANT_COLOURS[i % len(TENANT_COLOURS)] for i, t in enumerate(tenants)}
    vlans = sorted(s.id for t in policy.tenants.values() for s in t.segments.values())
    seg_colour = {v: SEGMENT_COLOURS[i % len(SEGMENT_COLOURS)] for i, v in enumerate(vlans)}

    out = [
        "graph sdnctl {",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, splines=true, nodesep=0.4];',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=8, color="#555555"];',
    ]
    for name in sorted(topology.switches):
        sw = topology.switches[name]
        hyper = sw.role is Role.HYPERVISOR
        label = f"{name}\\ndpid {sw.dpid:#x}"
        out.append(
            f"  {_q('sw:' + name)} [label={_q(label)}, shape=box, "
            f"style=\"rounded,filled\", fillcolor={_q('#e8e8e8' if hyper else '#b0b0b0')}];"
        )
    # Layers, top to bottom: the fabric by distance from the hypervisors (spines
    # above leaves), then hypervisors, then VMs. dot ranks an edge's tail above its
    # head, so each link is written from the higher end.
    height = _height_above_hypervisors(topology)
    for link in topology.links:
        a, b = link.a, link.b
        if height[a.switch] < height[b.switch]:
            a, b = b, a
        out.append(
            f"  {_q('sw:' + a.switch)} -- {_q('sw:' + b.switch)} "
            f"[taillabel={_q(str(a.port))}, headlabel={_q(str(b.port))}, penwidth=2];"
        )
    hypervisors = [n for n in sorted(topology.switches)
                   if topology.switches[n].role is Role.HYPERVISOR]
    out.append("  { rank=same; " + " ".join(_q("sw:" + h) for h in hypervisors) + " }")
    for name in sorted(policy.vms):
        vm = policy.vms[name]
        seg = policy.segment_of(vm)
        routed = "routed" if seg.routed else "not routed"
        carried = " ".join(f"{k} {v}" for k, v in (("vlan", seg.vlan), ("vni", seg.vni)) if v)
        label = f"{name}\\n{vm.ip}\\n{vm.tenant}/{seg.name} {carried} ({routed})"
        ref = bindings.ports.get(name)
        style = "filled" if ref else "filled,dashed"
        out.append(
            f"  {_q('vm:' + name)} [label={_q(label)}, shape=ellipse, style={_q(style)}, "
            f"fillcolor={_q(tenant_fill[vm.tenant])}, color={_q(seg_colour[seg.id])}, "
            "penwidth=2.5];"
        )
        if ref:
            out.append(f"  {_q('sw:' + ref.switch)} -- {_q('vm:' + name)} "
                       f"[taillabel={_q(str(ref.port))}, style=dashed];")
    out.append("  subgraph cluster_legend {")
    out.append('    label="tenants (fill) / segments (border)"; fontsize=9; color="#cccccc";')
    for t in tenants:
        out.append(f"    {_q('tenant:' + t)} [label={_q(t)}, shape=box, style=filled, "
                   f"fillcolor={_q(tenant_fill[t])}];")
    out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def _height_above_hypervisors(topology: Topology) -> dict[str, int]:
    """0 for hypervisors, then hop count to the nearest hypervisor."""
    graph = topology.graph()
    height = {n: 0 for n in graph.nodes if topology.switches[n].role is Role.HYPERVISOR}
    frontier = sorted(height)
    while frontier:
        nxt = []
        for node in frontier:
            for n in sorted(graph.neighbors(node)):
                if n not in height:
                    height[n] = height[node] + 1
                    nxt.append(n)
        frontier = nxt
    return {n: height.get(n, 0) for n in graph.nodes}
