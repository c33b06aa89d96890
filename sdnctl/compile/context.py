"""What every stage needs to know about the network, computed once per compile.

`NetworkView` is built from (policy, topology, bindings) and then only read:
each stage module asks it questions about one switch.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

from sdnctl.bindings import Bindings
from sdnctl.pipeline import tenant_id
from sdnctl.policy.model import VM, Policy, Segment
from sdnctl.topology.model import PortRef, Role, Topology
from sdnctl.topology.paths import PathFinder

# metadata layout: low 32 bits tenant id; bit 32 set when the source segment is routed.
ROUTED_BIT = 1 << 32
TENANT_MASK = 0xFFFF_FFFF
MPLS_LABELS = 1 << 20


@dataclass(frozen=True, slots=True)
class LocalVM:
    vm: VM
    segment: Segment
    port: int


@dataclass
class NetworkView:
    policy: Policy
    topology: Topology
    bindings: Bindings
    # Ports reported down: links touching them carry nothing and paths avoid them.
    down_ports: frozenset[PortRef] = frozenset()
    # filled in __post_init__
    local: dict[str, list[LocalVM]] = field(default_factory=dict)
    where: dict[str, PortRef] = field(default_factory=dict)
    _members: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        local: dict[str, list[LocalVM]] = defaultdict(list)
        for name in sorted(self.bindings.ports):
            ref = self.bindings.ports[name]
            vm = self.policy.vms.get(name)
            if vm is None or ref.switch not in self.topology.switches:
                continue  # bindings of VMs the policy does not know get nothing
            self.where[name] = ref
            local[ref.switch].append(LocalVM(vm, self.policy.segment_of(vm), ref.port))
        self.local = dict(local)

    def reusing(self, policy: Policy, bindings: Bindings) -> NetworkView:
        """A view of the same topology and down ports with another policy and bindings,
        keeping what depends on those two alone (paths, labels, tunnels) if computed."""
        view = NetworkView(policy, self.topology, bindings, self.down_ports)
        for name in ("paths", "fabric_labels", "tunnel_ips"):
            if name in self.__dict__:  # a cached_property that was computed
                view.__dict__[name] = self.__dict__[name]
        return view

    @cached_property
    def paths(self) -> PathFinder:
        """Next hops towards hypervisors, over the graph less the links that are down."""
        graph = self.topology.graph()
        for link in self.topology.links:
            if link.a in self.down_ports or link.b in self.down_ports:
                graph.remove_edge(link.a.switch, link.b.switch)
        return PathFinder(graph)

    @cached_property
    def fabric_labels(self) -> dict[str, int]:
        """Hypervisor -> the MPLS label that names it on the fabric.

        16 + dpid when it fits (labels 0..15 are reserved), so a label reads as
        the dpid; otherwise a hash. Collisions are resolved in name order.
        """
        labels: dict[str, int] = {}
        used: set[int] = set()
        for name in sorted(self.topology.switches):
            sw = self.topology.switches[name]
            if sw.role is not Role.HYPERVISOR:
                continue
            label = 16 + sw.dpid if sw.dpid < MPLS_LABELS - 16 else (
                16 + zlib.crc32(name.encode()) % (MPLS_LABELS - 16))
            while label in used:
                label = 16 + (label - 15) % (MPLS_LABELS - 16)
            used.add(label)
            labels[name] = label
        return labels

    @cached_property
    def tenant_ids(self) -> dict[str, int]:
        return {t: tenant_id(t) for t in self.policy.tenants}

    @cached_property
    def vms_by_segment(self) -> dict[int, list[VM]]:
        """Segment id (`Segment.id`) -> the VMs of that segment, by name."""
        out: dict[int, list[VM]] = defaultdict(list)
        for name in sorted(self.policy.vms):
            vm = self.policy.vms[name]
            out[self.policy.segment_of(vm).id].append(vm)
        return dict(out)

    @cached_property
    def vms_by_tenant(self) -> dict[str, list[VM]]:
        out: dict[str, list[VM]] = defaultdict(list)
        for name in sorted(self.policy.vms):
            out[self.policy.vms[name].tenant].append(self.policy.vms[name])
        return dict(out)

    def members(self, tenant: str, group: str) -> frozenset[str]:
        """Policy.members, computed once per compile (every switch asks)."""
        key = (tenant, group)
        if key not in self._members:
            self._members[key] = self.policy.members(tenant, group)
        return self._members[key]

    def is_hypervisor(self, switch: str) -> bool:
        return self.topology.switches[switch].role is Role.HYPERVISOR

    def local_vms(self, switch: str) -> list[LocalVM]:
        return self.local.get(switch, [])

    def local_tenants(self, switch: str) -> list[str]:
        return sorted({lv.vm.tenant for lv in self.local_vms(switch)})

    def carried_segments(self, switch: str) -> list[Segment]:
        """Segments a hypervisor forwards for: those of its VMs, plus every routed
        segment of their tenants (routing happens here, at the first hop)."""
        segs: dict[int, Segment] = {}
        for lv in self.local_vms(switch):
            segs[lv.segment.id] = lv.segment
            if lv.segment.routed:
                for seg in self.policy.tenants[lv.vm.tenant].segments.values():
                    if seg.routed:
                        segs[seg.id] = seg
        return [segs[v] for v in sorted(segs)]

    def trunk_ports(self, switch: str) -> list[int]:
        return sorted(self.topology.link_ports(switch))

    def ingress_segments(self, switch: str) -> list[Segment]:
        """Segments whose frames a hypervisor accepts from its trunks: those of its
        own VMs (the only ones it delivers to)."""
        segs = {lv.segment.id: lv.segment for lv in self.local_vms(switch)}
        return [segs[v] for v in sorted(segs)]

    @cached_property
    def tunnel_ips(self) -> dict[str, str]:
        """Hypervisor -> its overlay tunnel endpoint address, for those that have one."""
        return {name: str(ip) for name, ip in self.topology.tunnel_endpoints().items()}

    def tunnels_between(self, a: str, b: str) -> bool:
        """Both hypervisors have a tunnel endpoint: overlay segments may travel a->b."""
        return a in self.tunnel_ips and b in self.tunnel_ips
