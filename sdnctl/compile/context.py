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
SITE_GROUP_BASE = 0xFFF0_0000  # group ids of racks (below OpenFlow's OFPG_MAX)


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
    # What stage modules work out once per compile and share (their own keys).
    memo: dict[str, object] = field(default_factory=dict)

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

    def updated(self, policy: Policy, bindings: Bindings, vms: set[str],
                tenants: set[str], reseg: set[str]) -> NetworkView:
        """This view after an edit that changed only the VMs `vms` (in the policy or
        their binding) and the definitions of `tenants` (`reseg`: those whose
        segments changed): what depends on nothing else is patched, not recomputed,
        so the cost follows the edit. Same topology and down ports.
        """
        view = NetworkView.__new__(NetworkView)
        view.policy, view.topology, view.bindings = policy, self.topology, bindings
        view.down_ports = self.down_ports
        view.memo = {}
        where = dict(self.where)
        switches: set[str] = set()
        for name in vms:
            old = where.pop(name, None)
            if old is not None:
                switches.add(old.switch)
            ref = bindings.ports.get(name)
            if name in policy.vms and ref is not None and ref.switch in self.topology.switches:
                where[name] = ref
                switches.add(ref.switch)
        vm_tenants = {p.vms[n].tenant for n in vms for p in (self.policy, policy) if n in p.vms}
        # Group members of other tenants are as they were.
        view._members = {k: v for k, v in self._members.items()
                         if k[0] not in tenants and k[0] not in vm_tenants}
        if reseg:  # LocalVM holds the segment: re-read the VMs of those tenants
            for switch, held in self.local.items():
                if any(lv.vm.tenant in reseg for lv in held):
                    switches.add(switch)
        view.where = where
        local = dict(self.local)
        arrived: dict[str, set[str]] = defaultdict(set)
        for n in vms:
            if n in where:
                arrived[where[n].switch].add(n)
        for switch in switches:
            names = {lv.vm.name for lv in local.get(switch, ())} - vms
            names |= arrived.get(switch, set())
            fresh = [LocalVM(policy.vms[n], policy.segment_of(policy.vms[n]), where[n].port)
                     for n in sorted(names)]  # (a VM of `reseg` is re-read with its tenant)
            if fresh:
                local[switch] = fresh
            else:
                local.pop(switch, None)
        view.local = local
        for name in ("paths", "fabric_labels", "tunnel_ips", "path_groups", "group_members",
                     "group_sites"):
            if name in self.__dict__:
                view.__dict__[name] = self.__dict__[name]
        if not reseg and self.policy.tenants.keys() == policy.tenants.keys():
            for name in ("tenant_ids", "segments_by_id"):
                if name in self.__dict__:
                    view.__dict__[name] = self.__dict__[name]
        view._patch_indexes(self, reseg | vm_tenants, switches)
        return view

    def _patch_indexes(self, old: NetworkView, tenants: set[str], switches: set[str]) -> None:
        """The by-segment, by-tenant and by-switch indexes of `old`, redone only
        for the segments, tenants and switches an edit touched."""
        policy = self.policy
        segs = {seg.id for t in tenants for p in (old.policy, policy) if t in p.tenants
                for seg in p.tenants[t].segments.values()}
        if "vms_by_segment" in old.__dict__:
            by_seg = dict(old.vms_by_segment)
            for seg in segs:
                by_seg.pop(seg, None)
            for t in tenants:
                for vm in policy.vms_of(t):
                    by_seg.setdefault(policy.segment_of(vm).id, []).append(vm)
            for seg in segs:
                if seg in by_seg:
                    by_seg[seg].sort(key=lambda vm: vm.name)
            self.__dict__["vms_by_segment"] = by_seg
            if "bound_by_segment" in old.__dict__:
                bound = dict(old.bound_by_segment)
                for seg in segs:
                    bound.pop(seg, None)
                    mine = [vm for vm in by_seg.get(seg, ()) if vm.name in self.where]
                    if mine:
                        bound[seg] = mine
                self.__dict__["bound_by_segment"] = bound
        if "vms_by_tenant" in old.__dict__:
            by_tenant = dict(old.vms_by_tenant)
            for t in tenants:
                by_tenant.pop(t, None)
                mine = sorted(policy.vms_of(t), key=lambda vm: vm.name)
                if mine:
                    by_tenant[t] = mine
            self.__dict__["vms_by_tenant"] = by_tenant
        if "local_by_tenant" in old.__dict__:
            per_switch = dict(old.local_by_tenant)
            for switch in switches:
                per: dict[str, list[LocalVM]] = defaultdict(list)
                for lv in self.local.get(switch, ()):
                    per[lv.vm.tenant].append(lv)
                per_switch[switch] = dict(per)
            self.__dict__["local_by_tenant"] = per_switch

    def with_down(self, down_ports: frozenset[PortRef]) -> NetworkView:
        """This view with other links down: everything but the paths is kept."""
        view = NetworkView.__new__(NetworkView)
        view.__dict__.update(self.__dict__)
        view.down_ports = down_ports
        # What depends on links: the paths, and which uplink each tenant goes out by.
        view.memo = {k: v for k, v in self.memo.items() if k != "ns_plan"}
        view.__dict__.pop("paths", None)
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
        """Hypervisor or gateway -> the MPLS label that names it on the fabric.

        16 + dpid when it fits (labels 0..15 are reserved), so a label reads as
        the dpid; otherwise a hash. Collisions are resolved in name order.
        """
        labels: dict[str, int] = {}
        used: set[int] = set()
        for name in sorted(self.topology.switches):
            sw = self.topology.switches[name]
            if not sw.role.edge:
                continue
            label = 16 + sw.dpid if sw.dpid < MPLS_LABELS - 16 else (
                16 + zlib.crc32(name.encode()) % (MPLS_LABELS - 16))
            while label in used:
                label = 16 + (label - 15) % (MPLS_LABELS - 16)
            used.add(label)
            labels[name] = label
        return labels

    @cached_property
    def path_groups(self) -> dict[str, int]:
        """Hypervisor -> the id of the group other hypervisors send it frames through.

        Hypervisors attached to the same fabric switches (a rack) share one group:
        the way there is the same for all of them, so a hypervisor holds a group per
        rack, not per hypervisor. One with a direct link to another hypervisor gets a
        group of its own (the neighbour takes the direct link). Ids are stable while
        the topology is: sites in name order from SITE_GROUP_BASE.
        """
        fabric = {n for n, s in self.topology.switches.items() if not s.role.edge}
        graph = self.topology.graph()
        sites: dict[frozenset[str], list[str]] = defaultdict(list)
        out: dict[str, int] = {}
        for name in sorted(self.fabric_labels):
            neighbours = set(graph.neighbors(name))
            if neighbours - fabric:  # a hypervisor neighbour: a group of its own
                dpid = self.topology.switches[name].dpid
                out[name] = dpid if dpid < SITE_GROUP_BASE else (
                    zlib.crc32(name.encode()) & 0x7FFF_FFFF)
            else:
                sites[frozenset(neighbours)].append(name)
        for i, site in enumerate(sorted(sites, key=lambda s: sorted(s))):
            for name in sites[site]:
                out[name] = SITE_GROUP_BASE + i
        return out

    @cached_property
    def group_sites(self) -> dict[int, frozenset[str]]:
        """Group id of a rack -> the fabric switches its hypervisors attach to."""
        graph = self.topology.graph()
        return {gid: frozenset(graph.neighbors(members[0]))
                for gid, members in self.group_members.items() if gid >= SITE_GROUP_BASE}

    @cached_property
    def group_members(self) -> dict[int, list[str]]:
        """Group id (`path_groups`) -> the hypervisors it leads to, by name."""
        out: dict[int, list[str]] = defaultdict(list)
        for name, gid in sorted(self.path_groups.items()):
            out[gid].append(name)
        return dict(out)

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
    def bound_by_segment(self) -> dict[int, list[VM]]:
        """Segment id -> the VMs of that segment bound to a switch, by name."""
        return {seg: bound for seg, vms in self.vms_by_segment.items()
                if (bound := [vm for vm in vms if vm.name in self.where])}

    @cached_property
    def segments_by_id(self) -> dict[int, Segment]:
        return {seg.id: seg for t in self.policy.tenants.values() for seg in t.segments.values()}

    @cached_property
    def local_by_tenant(self) -> dict[str, dict[str, list[LocalVM]]]:
        """Switch -> tenant -> its VMs bound there."""
        out: dict[str, dict[str, list[LocalVM]]] = {}
        for switch, local in self.local.items():
            per: dict[str, list[LocalVM]] = defaultdict(list)
            for lv in local:
                per[lv.vm.tenant].append(lv)
            out[switch] = dict(per)
        return out

    def local_tenant_vms(self, switch: str, tenant: str) -> list[LocalVM]:
        return self.local_by_tenant.get(switch, {}).get(tenant, [])

    def tunnel_port_of(self, switch: str) -> int | None:
        """The VXLAN port of a hypervisor with a tunnel endpoint, else None."""
        return self.topology.switches[switch].tunnel_port if switch in self.tunnel_ips else None

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

    def is_gateway(self, switch: str) -> bool:
        return self.topology.switches[switch].role is Role.GATEWAY

    def local_vms(self, switch: str) -> list[LocalVM]:
        return self.local.get(switch, [])

    def local_tenants(self, switch: str) -> list[str]:
        return sorted({lv.vm.tenant for lv in self.local_vms(switch)})

    def carried_segments(self, switch: str) -> list[Segment]:
        """Segments a hypervisor forwards for: those of its VMs, plus every segment
        of their tenants routed in a family their own segment is routed in
        (routing happens here, at the first hop)."""
        segs: dict[int, Segment] = {}
        for lv in self.local_vms(switch):
            segs[lv.segment.id] = lv.segment
            for family in (4, 6):  # IPv6 routes between segments with a gateway6
                if lv.segment.routed_in(family):
                    for seg in self.policy.tenants[lv.vm.tenant].segments.values():
                        if seg.routed_in(family):
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
