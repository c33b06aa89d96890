"""Reachability measured on FlowSets: what a VM really gets, packet by packet.

A probe behaves like the VM's own IP stack: resolve the next hop with ARP (the
peer itself on the same subnet, else the segment's gateway, else give up: no
route), send the first packet of the service, and require the peer's reply to
come back. Both directions run through the simulator with one conntrack state.

In IPv6 (`family=6`) the next hop is the peer on the same /subnet6, else the
router's link-local address (what a router advertisement names) when the segment
has a `gateway6`; it is resolved by a neighbour solicitation, which the switch
must pass to the controller, and the controller's answer is `sdnctl.nd.answer`
given the same bindings.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sdnctl.bindings import Bindings
from sdnctl.flows import OFPP_CONTROLLER, FlowSet
from sdnctl.nd.answer import answer_solicitation, router_link_local
from sdnctl.nd.wire import NEIGHBOR_SOLICIT, Solicitation
from sdnctl.policy.model import VM, Policy, Proto, Service
from sdnctl.topology.model import PortRef, Topology
from sdnctl.verify.simulate import TCP_ACK, TCP_SYN, Conntrack, Packet, Simulator, Trace, Unknown

BROADCAST = "ff:ff:ff:ff:ff:ff"
# What a drop in each stage means, in the policy's words.
DROP_MEANING = {
    "port_security": "not the bound VM's own traffic",
    "arp": "no such address in the segment",
    "ct_out": "not IPv4",
    "acl": "no rule allows it and the tenant default is deny",
    "l3_route": "not routable: the destination is not a VM of a routed segment of the tenant",
    "l2_forward": "destination not in this segment or not bound",
    "ct_in": "not IPv4",
    "deliver": "invalid for conntrack",
}
CLIENT_PORT = 40000


@dataclass
class ProbeResult:
    src: str
    dst: str
    service: Service
    reached: bool
    reason: str
    traces: list[tuple[str, Trace]] = field(default_factory=list)  # (what, trace)
    delivered: bool = False  # the first packet reached dst, whatever became of the reply
    family: int = 4


@functools.lru_cache(maxsize=1 << 16)
def ip_text(ip: ipaddress.IPv4Address) -> str:
    """str(ip), remembered: probes ask for the same few addresses millions of times."""
    return str(ip)


@functools.lru_cache(maxsize=1 << 16)
def in_subnet(ip: str, subnet: ipaddress.IPv4Network) -> bool:
    return ipaddress.IPv4Address(ip) in subnet


def _next_hop_ip(policy: Policy, vm: VM, dst_ip: str) -> str | None:
    seg = policy.segment_of(vm)
    if in_subnet(dst_ip, seg.subnet):
        return dst_ip
    return ip_text(seg.gateway) if seg.gateway is not None else None


def arp_request(vm: VM, ip: str | Unknown) -> Packet:
    """`vm` asks who has `ip` (an Unknown: every address no flow names)."""
    return {
        "eth_src": vm.mac, "eth_dst": BROADCAST, "eth_type": 0x0806, "arp_op": 1,
        "arp_sha": vm.mac, "arp_spa": ip_text(vm.ip), "arp_tha": "00:00:00:00:00:00", "arp_tpa": ip,
    }


def resolve(sim: Simulator, bindings: Bindings, vm: VM, ip: str, ct: Conntrack,
            traces: list[tuple[str, Trace]]) -> str | None:
    """ARP for `ip` from `vm`; the MAC the network answers with, or None."""
    at = bindings.ports[vm.name]
    trace = sim.inject(at, arp_request(vm, ip), ct)
    traces.append((f"arp {vm.name} who-has {ip}", trace))
    for ref, pkt in trace.delivered:
        if ref == at and pkt.get("arp_op") == 2 and pkt.get("arp_spa") == ip:
            return str(pkt["arp_sha"])
    return None


def neighbour_solicitation(vm: VM, target: str) -> Packet:
    """`vm` asks (from its ip6) who has `target`, as the simulator sees the frame."""
    return {
        "eth_src": vm.mac, "eth_dst": "33:33:ff:00:00:01", "eth_type": 0x86DD,
        "ipv6_src": str(vm.ip6), "ipv6_dst": "ff02::1:ff00:1", "ip_ttl": 255,
        "ip_proto": 58, "icmpv6_type": NEIGHBOR_SOLICIT, "ipv6_nd_target": target,
        "ipv6_nd_sll": vm.mac,
    }


def resolve6(sim: Simulator, policy: Policy, bindings: Bindings, vm: VM, ip: str,
             ct: Conntrack, traces: list[tuple[str, Trace]]) -> str | None:
    """Neighbour solicitation for `ip` from `vm`: the MAC the controller answers with,
    if the switch hands the solicitation to it; else None."""
    at = bindings.ports[vm.name]
    trace = sim.inject(at, neighbour_solicitation(vm, ip), ct)
    traces.append((f"nd {vm.name} who-has {ip}", trace))
    if not any(ref == PortRef(at.switch, OFPP_CONTROLLER) for ref, _ in trace.delivered):
        return None
    asked = Solicitation(NEIGHBOR_SOLICIT, vm.mac, ipaddress.IPv6Address(str(vm.ip6)),
                         ipaddress.IPv6Address(ip))
    advert = answer_solicitation(policy, sim.topology, bindings, vm, asked)
    return advert.eth_src if advert is not None else None


def _next_hop6(policy: Policy, vm: VM, dst_ip: str) -> str | None:
    seg = policy.segment_of(vm)
    if seg.subnet6 is None or vm.ip6 is None:
        return None
    if ipaddress.IPv6Address(dst_ip) in seg.subnet6:
        return dst_ip
    return str(router_link_local(seg)) if seg.gateway6 is not None else None


def as_ipv6(pkt: Packet, src_ip: str, dst_ip: str) -> Packet:
    """An IPv4 probe packet as the same packet in IPv6 (ICMP echo -> ICMPv6 echo)."""
    out = {k: v for k, v in pkt.items() if k not in ("ipv4_src", "ipv4_dst", "icmpv4_type")}
    out.update(eth_type=0x86DD, ipv6_src=src_ip, ipv6_dst=dst_ip)
    if pkt.get("ip_proto") == 1:
        out.update(ip_proto=58, icmpv6_type=128 if pkt.get("icmpv4_type") == 8 else 129)
    return out


def service_packet(service: Service, src: VM, dst_ip: str | Unknown, src_mac: str,
                   dst_mac: str) -> Packet:
    pkt: Packet = {
        "eth_src": src_mac, "eth_dst": dst_mac, "eth_type": 0x0800,
        "ipv4_src": ip_text(src.ip), "ipv4_dst": dst_ip, "ip_ttl": 64,
    }
    if service.proto is Proto.TCP:
        pkt.update(ip_proto=6, tcp_src=CLIENT_PORT, tcp_dst=service.port_lo,
                   tcp_flags=TCP_SYN)
    elif service.proto is Proto.UDP:
        pkt.update(ip_proto=17, udp_src=CLIENT_PORT, udp_dst=service.port_lo)
    elif service.proto is Proto.ICMP:
        pkt.update(ip_proto=1, icmpv4_type=8, icmp_id=CLIENT_PORT)
    else:  # "any": probe with a TCP connection to a port no one names
        pkt.update(ip_proto=6, tcp_src=CLIENT_PORT, tcp_dst=9, tcp_flags=TCP_SYN)
    return pkt


def reply_packet(request: Packet, src_mac: str, dst_mac: str) -> Packet:
    """The peer's answer: addresses and ports swapped, SYN-ACK / echo reply."""
    if request.get("eth_type") == 0x86DD:
        v4 = reply_packet(as_ipv4(request), src_mac, dst_mac)
        return as_ipv6(v4, str(request["ipv6_dst"]), str(request["ipv6_src"]))
    reply: Packet = dict(request, eth_src=src_mac, eth_dst=dst_mac,
                         ipv4_src=request["ipv4_dst"], ipv4_dst=request["ipv4_src"], ip_ttl=64)
    if request.get("ip_proto") == 6:
        reply.update(tcp_src=request["tcp_dst"], tcp_dst=request["tcp_src"],
                     tcp_flags=TCP_SYN | TCP_ACK)
    elif request.get("ip_proto") == 17:
        reply.update(udp_src=request["udp_dst"], udp_dst=request["udp_src"])
    elif request.get("ip_proto") == 1:
        reply.update(icmpv4_type=0)
    return reply


def as_ipv4(pkt: Packet) -> Packet:
    """The inverse of `as_ipv6` (addresses left out: the caller's business)."""
    out = {k: v for k, v in pkt.items() if k not in ("ipv6_src", "ipv6_dst", "icmpv6_type")}
    out.update(eth_type=0x0800, ipv4_src="0.0.0.0", ipv4_dst="0.0.0.0")
    if pkt.get("ip_proto") == 58:
        out.update(ip_proto=1, icmpv4_type=8 if pkt.get("icmpv6_type") == 128 else 0)
    return out


def _send(
    sim: Simulator, bindings: Bindings, policy: Policy, src: VM, dst: VM,
    pkt_of: Callable[[str], Packet], ct: Conntrack, traces: list[tuple[str, Trace]], what: str,
    family: int = 4,
) -> tuple[bool, str, Packet]:
    """Resolve, send, and check delivery of one packet src -> dst."""
    if family == 6:
        dst_ip, dst_field = str(dst.ip6), "ipv6_dst"
        hop = _next_hop6(policy, src, dst_ip)
        mac = resolve6(sim, policy, bindings, src, hop, ct, traces) if hop else None
        asked = "ND"
    else:
        dst_ip, dst_field = ip_text(dst.ip), "ipv4_dst"
        hop = _next_hop_ip(policy, src, ip_text(dst.ip))
        mac = resolve(sim, bindings, src, hop, ct, traces) if hop else None
        asked = "ARP"
    if hop is None:
        return False, f"{src.name} has no route to {dst_ip}", {}
    if mac is None:
        return False, f"{asked} for {hop} from {src.name} got no answer", {}
    pkt = pkt_of(mac)
    trace = sim.inject(bindings.ports[src.name], pkt, ct)
    traces.append((what, trace))
    for ref, out in trace.delivered:
        if (ref == bindings.ports.get(dst.name) and out.get(dst_field) == dst_ip
                and out.get("eth_dst") == dst.mac):
            return True, "", pkt
    last = trace.dropped_at[-1] if trace.dropped_at else None
    where = f" (dropped at {last.switch}/{last.stage}: {DROP_MEANING[last.stage]})" if last else ""
    return False, f"{what} not delivered{where}", pkt


def probe(sim: Simulator, policy: Policy, bindings: Bindings, src: str, dst: str,
          service: Service, ct: Conntrack | None = None, family: int = 4) -> ProbeResult:
    """Does a connection src -> dst for `service` open (request delivered, reply back),
    in IPv4 or (`family=6`) IPv6?"""
    ct = ct if ct is not None else Conntrack()
    a, b = policy.vms[src], policy.vms[dst]
    traces: list[tuple[str, Trace]] = []
    if src not in bindings.ports or dst not in bindings.ports:
        return ProbeResult(src, dst, service, False, "not bound", traces, family=family)
    if family == 6 and (a.ip6 is None or b.ip6 is None):
        return ProbeResult(src, dst, service, False, "no IPv6 address", traces, family=6)

    def request_of(mac: str) -> Packet:
        pkt = service_packet(service, a, ip_text(b.ip), a.mac, mac)
        return as_ipv6(pkt, str(a.ip6), str(b.ip6)) if family == 6 else pkt

    ok, why, request = _send(sim, bindings, policy, a, b, request_of, ct, traces, "request",
                             family)
    if not ok:
        return ProbeResult(src, dst, service, False, why, traces, family=family)
    ok, why, _ = _send(
        sim, bindings, policy, b, a,
        lambda mac: reply_packet(request, b.mac, mac), ct, traces, "reply", family,
    )
    return ProbeResult(src, dst, service, ok, why, traces, delivered=True, family=family)


def reachability(
    flowsets: Mapping[str, FlowSet],
    policy: Policy,
    topology: Topology,
    bindings: Bindings,
    services: Iterable[Service],
) -> dict[tuple[str, str, Service], bool]:
    """Every ordered pair of bound VMs x services -> reached?"""
    sim = Simulator(flowsets, topology)
    services = tuple(services)
    out: dict[tuple[str, str, Service], bool] = {}
    names = sorted(n for n in policy.vms if n in bindings.ports)
    for a in names:
        for b in names:
            if a == b:
                continue
            for s in services:
                out[(a, b, s)] = probe(sim, policy, bindings, a, b, s).reached
    return out
