"""IPv6 at the VM port (stage `port_security`) and neighbour discovery through the
controller (stage `dhcp`, the pipeline's one path to the controller).

From a VM with an IPv6 address (its `ip6`, given or EUI-64) only these pass:

- IPv6 from its MAC, untagged, with `ip6` as source, to `ct_out` like IPv4 (the
  segment's `gateway6` decides the routed bit of `metadata`);
- its neighbour solicitations (from `ip6` or its EUI-64 link-local) and router
  solicitations (from the link-local or `::`), through its ND meter to stage
  `dhcp`, then through the switch's ND meter to the controller, which answers
  from the bindings (`sdnctl.nd`). They never reach another VM, so a forged
  source link-layer option poisons nobody.

Every other ICMPv6 message from a VM port is dropped by one flow, whatever its
source: router advertisements (RA guard), neighbour advertisements (the network
answers for every address, a VM never needs to), redirects, MLD, duplicate
address detection probes (source `::`: nobody answers, so the probe succeeds),
except echo (128/129) and the four error types (1-4: they pass only as
conntrack `+rel` of a connection) from `ip6`. DHCPv6 server messages (UDP source port 547)
are dropped as DHCPv4 server messages are. Extension headers: OVS and its
conntrack read through hop-by-hop, routing and destination options headers to the
upper-layer protocol, so these flows judge what is inside them (MLD behind a
hop-by-hop header is still MLD, and dropped); a fragment is dropped before
conntrack (`sdnctl.compile.conntrack`).

Its packets to the gateway MAC with hop limit 1, which the router would discard,
take the same metered path (its ND meter, the switch's), and the controller
answers with ICMPv6 "time exceeded" from the segment's `gateway6` (`sdnctl.icmp`),
as it does for IPv4 with TTL 1 (`sdnctl.compile.dhcp`): traceroute's first hop.

Cost: 13 flows per VM with an IPv6 address (14 on a segment with a `gateway6`),
its ND meter; per hypervisor with one, 2 flows in `dhcp` and the switch's ND
meter. A policy without `subnet6` compiles to exactly what it did before.
"""

from __future__ import annotations

from collections.abc import Iterator

from sdnctl.compile.context import ROUTED_BIT, TENANT_MASK, LocalVM, NetworkView
from sdnctl.flows import (
    OFPP_CONTROLLER,
    Flow,
    Goto,
    Match,
    MatchValue,
    Meter,
    MeterBand,
    Output,
    SetField,
    WriteMetadata,
)
from sdnctl.pipeline import REG_SEGMENT, REG_ZONE, gateway_mac
from sdnctl.policy.ipv6 import link_local

ETH_IP6 = 0x86DD
ICMPV6 = 58
UDP = 17
# What passes from `ip6` to conntrack: the errors RFC 4443 defines (destination
# unreachable, packet too big, time exceeded, parameter problem: conntrack passes
# them only as `+rel`) and echo request and reply. OVS cannot mask icmpv6_type.
ICMP6_PASS = (1, 2, 3, 4, 128, 129)
ND_ROUTER_SOLICIT = 133
ND_NEIGHBOR_SOLICIT = 135
DHCP6_SERVER_PORT = 547
UNSPECIFIED = "::"
PRIO_ICMP6_DROP = 250  # the DHCP flows' level: above the IPv6 allow (200)
PRIO_ICMP6_PASS = 260
# Above the ICMPv6 passes: an echo request with hop limit 1 to the router expires.
PRIO_HOP_LIMIT = 270
HOP_LIMIT_EXPIRES = 1  # as TTL_EXPIRES in sdnctl.compile.dhcp: OVS cannot mask nw_ttl

# Meter ids: above the DHCP meters (0x20000 + port), below OVS's 2**18.
ND_METER_BASE = 0x30000
SWITCH_ND_METER = ND_METER_BASE  # port 0 is no VM's
# A VM solicits a neighbour when it first talks to it and about every 30 s after
# (unreachability detection): 10 a second with a burst of 20 is plenty; a switch
# passes 200 a second.
VM_ND_PPS, VM_ND_BURST = 10, 20
SWITCH_ND_PPS, SWITCH_ND_BURST = 200, 200


def vm_nd_meter(port: int) -> int:
    return ND_METER_BASE + port


def has_ip6(lv: LocalVM) -> bool:
    return lv.vm.ip6 is not None and lv.segment.subnet6 is not None


def metadata6(view: NetworkView, lv: LocalVM) -> WriteMetadata:
    """The tenant, and the routed bit as IPv6 sees it: the segment has a gateway6."""
    value = view.tenant_ids[lv.vm.tenant] | (ROUTED_BIT if lv.segment.routed6 else 0)
    return WriteMetadata(value, ROUTED_BIT | TENANT_MASK)


def nd_port_flows(view: NetworkView, lv: LocalVM) -> Iterator[Flow]:
    """Port security's IPv6 flows for one local VM (stage `port_security`)."""
    if not has_ip6(lv):
        return
    vm, port = lv.vm, lv.port
    owner = f"vm:{vm.name}"
    meter = (Meter(port),) if vm.rate_limit_mbps else ()
    own: dict[str, MatchValue] = {"in_port": port, "eth_src": vm.mac, "vlan_vid": 0,
                                  "eth_type": ETH_IP6}
    to_ct = (*meter, SetField(REG_ZONE, port), SetField(REG_SEGMENT, lv.segment.id),
             metadata6(view, lv), Goto("ct_out"))
    yield Flow("port_security", 200, Match.of(own, ipv6_src=str(vm.ip6)), to_ct, owner)
    icmp: dict[str, MatchValue] = dict(own, ip_proto=ICMPV6)
    for kind in ICMP6_PASS:
        yield Flow("port_security", PRIO_ICMP6_PASS,
                   Match.of(icmp, ipv6_src=str(vm.ip6), icmpv6_type=kind), to_ct, owner)
    to_controller = (Meter(vm_nd_meter(port)), Goto("dhcp"))
    ll = str(link_local(vm.mac))
    for kind, sources in ((ND_NEIGHBOR_SOLICIT, (str(vm.ip6), ll)),
                          (ND_ROUTER_SOLICIT, (ll, UNSPECIFIED))):
        for source in sources:
            yield Flow("port_security", PRIO_ICMP6_PASS,
                       Match.of(icmp, ipv6_src=source, icmpv6_type=kind), to_controller, owner)
    # Any other ICMPv6, from any source: RA, NA, redirect, MLD, DAD, spoofed ND.
    yield Flow("port_security", PRIO_ICMP6_DROP,
               Match.of(in_port=port, eth_type=ETH_IP6, ip_proto=ICMPV6), (), owner)
    yield Flow("port_security", PRIO_ICMP6_DROP,
               Match.of(in_port=port, eth_type=ETH_IP6, ip_proto=UDP, udp_src=DHCP6_SERVER_PORT),
               (), owner)
    yield from hop_limit_port_flows(lv)


def hop_limit_port_flows(lv: LocalVM) -> Iterator[Flow]:
    """The VM's own IPv6 packets to its router that the router would let expire (hop
    limit 1): through its ND meter to stage `dhcp`, for the controller's "time
    exceeded". None on a segment without a `gateway6` (nothing routes there)."""
    if not lv.segment.routed6 or lv.vm.ip6 is None:
        return
    vm, port = lv.vm, lv.port
    yield Flow("port_security", PRIO_HOP_LIMIT,
               Match.of(in_port=port, eth_src=vm.mac, vlan_vid=0, eth_type=ETH_IP6,
                        ipv6_src=str(vm.ip6), eth_dst=gateway_mac(lv.segment.id),
                        ip_ttl=HOP_LIMIT_EXPIRES),
               (Meter(vm_nd_meter(port)), Goto("dhcp")), f"vm:{vm.name}")


def compile_nd(view: NetworkView, switch: str) -> Iterator[Flow]:
    """Stage `dhcp`: solicitations and expired packets through the switch's ND meter
    to the controller."""
    if not any(has_ip6(lv) for lv in view.local_vms(switch)):
        return
    to_controller = (Meter(SWITCH_ND_METER), Output(OFPP_CONTROLLER))
    yield Flow("dhcp", 100, Match.of(eth_type=ETH_IP6, ip_proto=ICMPV6), to_controller, "base")
    yield Flow("dhcp", 90, Match.of(eth_type=ETH_IP6, ip_ttl=HOP_LIMIT_EXPIRES), to_controller,
               "base")


def nd_meters(view: NetworkView, switch: str) -> Iterator[MeterBand]:
    local = [lv for lv in view.local_vms(switch) if has_ip6(lv)]
    if not local:
        return
    yield MeterBand(SWITCH_ND_METER, SWITCH_ND_PPS, SWITCH_ND_BURST, "base", pktps=True)
    for lv in local:
        yield MeterBand(vm_nd_meter(lv.port), VM_ND_PPS, VM_ND_BURST, f"vm:{lv.vm.name}",
                        pktps=True)
