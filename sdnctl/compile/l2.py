"""Stage `l2_forward`: by segment and destination MAC, to the VM wherever it is.

A local VM: hand over to `ct_in` with its port in reg7 (the switch's own part).
A VM on another hypervisor, in an overlay segment, when both hypervisors have a
tunnel endpoint: set the tunnel key to the segment's VNI and the tunnel's far end
to that hypervisor's address, and output to the local VXLAN port. Otherwise (a
VLAN segment): tag with the segment's VLAN, push an MPLS label naming that
hypervisor, and hand the frame to the group of the hypervisor's rack, which each
switch defines with its own path (fast failover where the fabric offers a
loop-free backup). Those entries are the same on every hypervisor carrying the
segment: one shared part per segment. Fabric switches forward by label alone.
Unknown destinations are dropped; nothing is flooded. IPv6 towards a VM across
the fabric has a flow of its own that also sets the label's traffic class to 1:
the destination must name the payload when it pops the label.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterator

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
from sdnctl.policy.model import VM, Segment
from sdnctl.topology.paths import NextHop

ETH_MPLS = 0x8847
ETH_IP6 = 0x86DD
MPLS_TC_IP6 = 1  # read back by port_security's trunk ingress
PRIO_IP6 = 110


def group_id_for(view: NetworkView, dest_switch: str) -> int:
    """The destination's dpid when it fits a group id (stable while the topology is)."""
    dpid = view.topology.switches[dest_switch].dpid
    return dpid if dpid <= 0xFFFF_FF00 else zlib.crc32(dest_switch.encode()) & 0x7FFF_FFFF


def l2_local_flows(view: NetworkView, switch: str) -> Iterator[Flow]:
    """Local: a VM bound here is delivered here. Each replaces the entry of the
    segment's shared part that would send it towards its hypervisor."""
    for lv in view.local_vms(switch):
        yield Flow(
            "l2_forward", 100, Match.of({REG_SEGMENT: lv.segment.id}, eth_dst=lv.vm.mac),
            (SetField(REG_OUT_PORT, lv.port), Goto("ct_in")), f"vm:{lv.vm.name}",
        )
        if _ip6_over_fabric(lv.segment, lv.vm):  # replaces the part's IPv6 entry too
            yield Flow(
                "l2_forward", PRIO_IP6,
                Match.of({REG_SEGMENT: lv.segment.id}, eth_dst=lv.vm.mac, eth_type=ETH_IP6),
                (SetField(REG_OUT_PORT, lv.port), Goto("ct_in")), f"vm:{lv.vm.name}",
            )


def _ip6_over_fabric(seg: Segment, vm: VM) -> bool:
    """IPv6 to this VM may cross the VLAN/MPLS fabric, where popping the label must
    name the payload: such frames get their own flow, which marks the label with
    traffic class 1 (the destination pops those to IPv6)."""
    return seg.vlan is not None and seg.subnet6 is not None and vm.ip6 is not None


def l2_segment_flows(view: NetworkView, seg: Segment, tunnel_port: int | None) -> Iterator[Flow]:
    """Shared by every hypervisor that carries `seg` (and, for an overlay segment, has
    the same tunnel port, or none): how to reach each bound VM of the segment.

    Nothing here depends on where the frame starts: the path is the group named
    after the destination hypervisor, which each switch defines for itself.
    """
    for vm in view.bound_by_segment.get(seg.id, ()):
        dest = view.where[vm.name].switch
        owner = f"vm:{vm.name}"
        match = Match.of({REG_SEGMENT: seg.id}, eth_dst=vm.mac)
        if seg.vni is not None and tunnel_port is not None and dest in view.tunnel_ips:
            # Overlay: one VXLAN hop to the hypervisor; the fabric never sees the VNI.
            yield Flow(
                "l2_forward", 100, match,
                (SetField("tun_id", seg.vni), SetField("tun_dst", view.tunnel_ips[dest]),
                 Output(tunnel_port)), owner,
            )
        elif seg.vlan is not None and dest in view.fabric_labels:
            # On the wire: the segment's VLAN tag, then a label naming the hypervisor.
            yield Flow(
                "l2_forward", 100, match,
                (PushVlan(), SetField("vlan_vid", seg.vlan),
                 PushMpls(), SetField("mpls_label", view.fabric_labels[dest]),
                 GroupAction(view.path_groups[dest])), owner,
            )
            if _ip6_over_fabric(seg, vm):
                yield Flow(
                    "l2_forward", PRIO_IP6, Match.of(match.as_dict(), eth_type=ETH_IP6),
                    (PushVlan(), SetField("vlan_vid", seg.vlan),
                     PushMpls(), SetField("mpls_label", view.fabric_labels[dest]),
                     SetField("mpls_tc", MPLS_TC_IP6), GroupAction(view.path_groups[dest])),
                    owner,
                )
        # else: overlay only, and no tunnel between the two: unreachable


def paths_part(view: NetworkView, switch: str) -> tuple[list[Flow], list[Group]]:
    """Per switch: how to reach each hypervisor from here.

    A hypervisor: one group per rack of other hypervisors (`NetworkView.path_groups`),
    fast failover where the fabric offers a loop-free backup, empty (so dropping)
    where no path is left. A fabric switch: one flow per destination hypervisor,
    by its label. Both depend on the topology alone, so a link event changes these
    and nothing else.
    """
    groups: dict[int, Group] = {}
    if view.topology.switches[switch].role.edge:
        for gid, members in view.group_members.items():
            if members == [switch]:
                continue  # its own group: nobody sends to it from here
            owner = f"path:{members[0]}" + (f"+{len(members) - 1}" if members[1:] else "")
            site = view.group_sites.get(gid)
            hop = (view.paths.next_hop(switch, members[0]) if site is None
                   else view.paths.next_hop_to_rack(switch, site, owner))
            groups[gid] = _group(gid, owner, hop)
        return [], list(groups.values())
    # Fabric: O(hypervisors) flows, independent of VMs and bindings.
    flows = []
    for dest, label in sorted(view.fabric_labels.items()):
        hop = view.paths.next_hop(switch, dest)
        if hop is not None:
            action: Output | GroupAction = Output(hop.port)
            if hop.backup_port is not None:
                gid = group_id_for(view, dest)
                groups[gid] = _group(gid, f"path:{dest}", hop)
                action = GroupAction(gid)
            flows.append(Flow(
                "l2_forward", 100, Match.of(eth_type=ETH_MPLS, mpls_label=label),
                (action,), f"path:{dest}",
            ))
    return flows, list(groups.values())


@functools.lru_cache(maxsize=1 << 16)
def _group(gid: int, owner: str, hop: NextHop | None) -> Group:
    """Fast failover when there is a backup, a single output when not, empty (drop)
    when the fabric offers no path at all. Groups are values: switches that reach
    a destination the same way share one."""
    if hop is None:
        return Group(gid, "all", (), owner)
    if hop.backup_port is None:
        return Group(gid, "indirect", (Bucket((Output(hop.port),)),), owner)
    return Group(gid, "ff", (
        Bucket((Output(hop.port),), hop.port),
        Bucket((Output(hop.backup_port),), hop.backup_port),
    ), owner)
