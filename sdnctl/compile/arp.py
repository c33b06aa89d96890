"""Stage `arp`: answer ARP requests from the bindings, in the switch.

A VM asking for another VM of its segment, or for its segment's gateway, gets
the answer straight back on its port; nothing is ever flooded, so looped
fabrics need no spanning tree and a VM cannot poison anyone's cache (every
other ARP frame is dropped here).
"""

from __future__ import annotations

from collections.abc import Iterator

from sdnctl.compile.context import NetworkView
from sdnctl.dhcp.lease import server_address
from sdnctl.flows import OFPP_IN_PORT, Flow, Match, Move, Output, SetField
from sdnctl.pipeline import REG_SEGMENT, gateway_mac
from sdnctl.policy.model import Segment

ETH_ARP = 0x0806
ARP_REQUEST = 1
ARP_REPLY = 2
PRIO_SELF = 300
PRIO_ANSWER = 200


def arp_reply_actions(mac: str, ip: str) -> tuple[Move | SetField | Output, ...]:
    """Turn the request into the reply `ip is-at mac` and send it back out."""
    return (
        Move("eth_src", "eth_dst"),
        SetField("eth_src", mac),
        SetField("arp_op", ARP_REPLY),
        Move("arp_sha", "arp_tha"),
        SetField("arp_sha", mac),
        Move("arp_spa", "arp_tpa"),
        SetField("arp_spa", ip),
        Output(OFPP_IN_PORT),
    )


def arp_self_flows(view: NetworkView, switch: str) -> Iterator[Flow]:
    """Local: a VM probing its own address (duplicate-address detection) must hear
    nothing."""
    for lv in view.local_vms(switch):
        yield Flow(
            "arp", PRIO_SELF,
            Match.of(in_port=lv.port, eth_type=ETH_ARP, arp_tpa=str(lv.vm.ip)),
            (), f"vm:{lv.vm.name}",
        )


def arp_segment_flows(view: NetworkView, seg: Segment) -> Iterator[Flow]:
    """Shared by every hypervisor with a VM of `seg`: its gateway and its bound VMs."""
    request = {REG_SEGMENT: seg.id, "eth_type": ETH_ARP, "arp_op": ARP_REQUEST}
    if seg.gateway is not None:
        yield Flow(
            "arp", PRIO_ANSWER, Match.of(request, arp_tpa=str(seg.gateway)),
            arp_reply_actions(gateway_mac(seg.id), str(seg.gateway)), f"segment:{seg.id}",
        )
    else:
        # A segment without a gateway: its DHCP server address, so that a renewing
        # VM can unicast to it (the request then goes to stage dhcp like any other).
        server = str(server_address(seg))
        yield Flow(
            "arp", PRIO_ANSWER, Match.of(request, arp_tpa=server),
            arp_reply_actions(gateway_mac(seg.id), server), f"segment:{seg.id}",
        )
    for vm in view.bound_by_segment.get(seg.id, ()):  # only VMs that are really there
        yield Flow(
            "arp", PRIO_ANSWER, Match.of(request, arp_tpa=str(vm.ip)),
            arp_reply_actions(vm.mac, str(vm.ip)), f"vm:{vm.name}",
        )
