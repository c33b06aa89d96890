"""Stage `l2_forward`: by segment and destination MAC, to the VM wherever it is.

A local VM: hand over to `ct_in` with its port in reg7. A VM on another
hypervisor, in an overlay segment, when both hypervisors have a tunnel endpoint:
set the tunnel key to the segment's VNI and the tunnel's far end to that
hypervisor's address, and output to the local VXLAN port. Otherwise (a VLAN
segment): tag with the segment's VLAN, push an MPLS label naming that
hypervisor, and send along the shortest path, through a fast-failover group where
the fabric offers a loop-free backup. Fabric switches forward by label alone.
Unknown destinations are dropped; nothing is flooded.
"""

from __future__ import annotations

import zlib

from sdnctl.compile.context import NetworkView
from sdnctl.flows import (
    Bucket,
    Flow,
    Goto,
    Group,
    GroupAction,
    Match,
    Output,
    PushMpls,
    PushVlan,
    SetField,
)
from sdnctl.pipeline import REG_OUT_PORT, REG_SEGMENT
from sdnctl.topology.paths import NextHop

ETH_MPLS = 0x8847


def group_id_for(view: NetworkView, dest_switch: str) -> int:
    """The destination's dpid when it fits a group id (stable while the topology is)."""
    dpid = view.topology.switches[dest_switch].dpid
    return dpid if dpid <= 0xFFFF_FF00 else zlib.crc32(dest_switch.encode()) & 0x7FFF_FFFF


def compile_l2(view: NetworkView, switch: str) -> tuple[list[Flow], list[Group]]:
    flows: list[Flow] = []
    groups: dict[int, Group] = {}
    if not view.is_hypervisor(switch):
        # Fabric: one flow per destination hypervisor, by its label. Independent of
        # VMs and bindings, so a fabric switch holds O(hypervisors) flows.
        for dest, label in sorted(view.fabric_labels.items()):
            hop = view.paths.next_hop(switch, dest)
            if hop is not None:
                flows.append(Flow(
                    "l2_forward", 100, Match.of(eth_type=ETH_MPLS, mpls_label=label),
                    (_towards(view, dest, hop, groups),), f"path:{dest}",
                ))
        return flows, list(groups.values())
    for seg in view.carried_segments(switch):
        for vm in view.vms_by_segment.get(seg.id, ()):
            ref = view.where.get(vm.name)
            if ref is None:
                continue  # not bound anywhere: nothing to forward to
            owner = f"vm:{vm.name}"
            match = Match.of({REG_SEGMENT: seg.id}, eth_dst=vm.mac)
            if ref.switch == switch:
                flows.append(Flow(
                    "l2_forward", 100, match,
                    (SetField(REG_OUT_PORT, ref.port), Goto("ct_in")), owner,
                ))
                continue
            if seg.vni is not None and view.tunnels_between(switch, ref.switch):
                # Overlay: one VXLAN hop to the hypervisor; the fabric never sees the VNI.
                flows.append(Flow(
                    "l2_forward", 100, match,
                    (SetField("tun_id", seg.vni), SetField("tun_dst", view.tunnel_ips[ref.switch]),
                     Output(view.topology.switches[switch].tunnel_port)), owner,
                ))
                continue
            if seg.vlan is None:
                continue  # overlay only, and no tunnel between the two: unreachable
            hop = view.paths.next_hop(switch, ref.switch)
            if hop is None:
                continue  # no path: the fabric is partitioned
            # On the wire: the segment's VLAN tag, then a label naming the hypervisor.
            encap = (PushVlan(), SetField("vlan_vid", seg.vlan),
                     PushMpls(), SetField("mpls_label", view.fabric_labels[ref.switch]))
            flows.append(Flow(
                "l2_forward", 100, match, (*encap, _towards(view, ref.switch, hop, groups)), owner
            ))
    return flows, list(groups.values())


def _towards(
    view: NetworkView, dest: str, hop: NextHop, groups: dict[int, Group]
) -> Output | GroupAction:
    """Output to the next hop, or to a fast-failover group when there is a backup."""
    if hop.backup_port is None:
        return Output(hop.port)
    gid = group_id_for(view, dest)
    if gid in groups:
        return GroupAction(gid)
    buckets = (
        Bucket((Output(hop.port),), hop.port),
        Bucket((Output(hop.backup_port),), hop.backup_port),
    )
    groups[gid] = Group(gid, "ff", buckets, f"path:{dest}")
    return GroupAction(gid)
