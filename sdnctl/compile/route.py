"""Stage `l3_route`: the distributed router, at the first-hop hypervisor.

A frame sent to a gateway MAC by a VM of a routed segment is routed to the
destination VM's segment if that VM is of the same tenant and its segment is
routed too: TTL decremented, source MAC = the destination segment's gateway,
destination MAC = the VM's. Frames to a gateway that cannot be routed are
dropped; frames to any other MAC stay in their segment.
"""

from __future__ import annotations

from collections.abc import Iterator

from sdnctl.compile.context import ROUTED_BIT, TENANT_MASK, NetworkView
from sdnctl.flows import DecTtl, Flow, Goto, Match, SetField
from sdnctl.pipeline import GATEWAY_MAC_PREFIX, REG_SEGMENT, gateway_mac

ETH_IP = 0x0800
GATEWAY_MAC_MATCH = (GATEWAY_MAC_PREFIX + "00:00", "ff:ff:ff:ff:00:00")


def compile_route(view: NetworkView, switch: str) -> Iterator[Flow]:
    if not view.local_vms(switch):
        return
    for tenant in view.local_tenants(switch):
        tid = view.tenant_ids[tenant]
        for vm in view.vms_by_tenant[tenant]:
            seg = view.policy.segment_of(vm)
            if not seg.routed:
                continue
            yield Flow(
                "l3_route", 200,
                Match.of(
                    metadata=(tid | ROUTED_BIT, ROUTED_BIT | TENANT_MASK),
                    eth_type=ETH_IP, eth_dst=GATEWAY_MAC_MATCH, ipv4_dst=str(vm.ip),
                ),
                (SetField("eth_src", gateway_mac(seg.vlan)), SetField("eth_dst", vm.mac),
                 DecTtl(), SetField(REG_SEGMENT, seg.vlan), Goto("l2_forward")),
                f"vm:{vm.name}",
            )
    yield Flow("l3_route", 100, Match.of(eth_dst=GATEWAY_MAC_MATCH), (), "base")
    yield Flow("l3_route", 50, Match.of(), (Goto("l2_forward"),), "base")
