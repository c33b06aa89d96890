"""Stage `l3_route`: the distributed router, at the first-hop hypervisor.

A frame sent to a gateway MAC by a VM of a routed segment is routed to the
destination VM's segment if that VM is of the same tenant and its segment is
routed too: TTL decremented, source MAC = the destination segment's gateway,
destination MAC = the VM's. Frames to a gateway that cannot be routed are
dropped; frames to any other MAC stay in their segment.

IPv6 is routed the same way between the tenant's segments that have a
`gateway6`, by exact `ipv6_dst` per VM, hop limit decremented, with the same
gateway MACs: `metadata`'s routed bit, as port security sets it for an IPv6
frame, says that the source segment has a gateway6.
"""

from __future__ import annotations

from collections.abc import Iterator

from sdnctl.compile.context import ROUTED_BIT, TENANT_MASK, NetworkView
from sdnctl.flows import DecTtl, Flow, Goto, Match, SetField
from sdnctl.pipeline import (
    GATEWAY_MAC_PREFIX,
    OVERLAY_GATEWAY_MAC_PREFIX,
    REG_SEGMENT,
    gateway_mac,
)
from sdnctl.policy.model import Segment

ETH_IP = 0x0800
ETH_IP6 = 0x86DD
# Gateway MACs come in two ranges (sdnctl.pipeline.gateway_mac): a frame to a
# gateway was sent to its source segment's gateway, so the routing flows match the
# ranges of the tenant's routed segments; a VLAN-only policy needs only the first.
GATEWAY_MAC_MATCH = (GATEWAY_MAC_PREFIX + "00:00", "ff:ff:ff:ff:00:00")
OVERLAY_GATEWAY_MAC_MATCH = (OVERLAY_GATEWAY_MAC_PREFIX + "00:00:00", "ff:ff:ff:00:00:00")


def gateway_range(seg: Segment) -> tuple[str, str]:
    return GATEWAY_MAC_MATCH if seg.vlan is not None else OVERLAY_GATEWAY_MAC_MATCH


def route_tenant_flows(view: NetworkView, tenant: str) -> Iterator[Flow]:
    """Shared by every hypervisor with a VM of `tenant`: a route to each of its VMs
    in a routed segment (bound or not: the route is the tenant's, not the VM's)."""
    tid = view.tenant_ids[tenant]
    segments = view.policy.tenants[tenant].segments.values()
    tenant_ranges = sorted({gateway_range(seg) for seg in segments if seg.routed})
    ranges6 = sorted({gateway_range(seg) for seg in segments if seg.routed6})
    for vm in view.vms_by_tenant.get(tenant, ()):
        seg = view.policy.segment_of(vm)
        routes: list[tuple[list[tuple[str, str]], int, dict[str, str]]] = []
        if seg.routed:
            routes.append((tenant_ranges, ETH_IP, {"ipv4_dst": str(vm.ip)}))
        if seg.routed6 and vm.ip6 is not None:
            routes.append((ranges6, ETH_IP6, {"ipv6_dst": str(vm.ip6)}))
        for ranges, eth, to_vm in routes:
            for gateways in ranges:
                yield Flow(
                    "l3_route", 200,
                    Match.of(
                        to_vm, metadata=(tid | ROUTED_BIT, ROUTED_BIT | TENANT_MASK),
                        eth_type=eth, eth_dst=gateways,
                    ),
                    (SetField("eth_src", gateway_mac(seg.id)), SetField("eth_dst", vm.mac),
                     DecTtl(), SetField(REG_SEGMENT, seg.id), Goto("l2_forward")),
                    f"vm:{vm.name}",
                )


def route_base_flows(view: NetworkView, switch: str) -> Iterator[Flow]:
    """Local: frames to a gateway that no route took are dropped; others go on."""
    if not view.local_vms(switch):
        return
    ranges = {gateway_range(seg) for tenant in view.local_tenants(switch)
              for seg in view.policy.tenants[tenant].segments.values()}  # routed or not
    yield Flow("l3_route", 100, Match.of(eth_dst=GATEWAY_MAC_MATCH), (), "base")
    if OVERLAY_GATEWAY_MAC_MATCH in ranges:
        yield Flow("l3_route", 100, Match.of(eth_dst=OVERLAY_GATEWAY_MAC_MATCH), (), "base")
    yield Flow("l3_route", 50, Match.of(), (Goto("l2_forward"),), "base")
