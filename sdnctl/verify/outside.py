"""Reachability with the outside, measured on FlowSets like `sdnctl.verify.reach`.

The outside is the external router behind every gateway uplink, as the lab
builds it: it answers ARP for its `next_hop` address with `ROUTER_MAC`, and it
forwards a packet for an address of the uplink subnet back out (hairpin).

- `probe_out`: a VM opens a connection to an external address. The request must
  leave through an uplink (with the address the outside sees it as), and the
  reply, sent back to that address, must reach the VM.
- `probe_in`: an external address opens a connection to a VM's floating IP:
  the router finds which uplink answers ARP for it; the request must reach the
  VM with its real source; the VM's reply must leave through an uplink from
  the floating IP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from sdnctl.bindings import Bindings
from sdnctl.policy.model import Policy, Proto, Service
from sdnctl.topology.model import PortRef, Uplink
from sdnctl.verify.reach import (
    BROADCAST,
    CLIENT_PORT,
    DROP_MEANING,
    _next_hop_ip,
    ip_text,
    reply_packet,
    resolve,
    service_packet,
)
from sdnctl.verify.simulate import TCP_SYN, Conntrack, Packet, Simulator, Trace

ROUTER_MAC = "02:aa:00:00:00:01"  # the lab's external router


@dataclass
class OutsideResult:
    src: str  # a VM name or an external address
    dst: str
    service: Service
    reached: bool
    reason: str
    seen_as: str | None = None  # the address the far end saw the opener as
    traces: list[tuple[str, Trace]] = field(default_factory=list)


def _uplinks(sim: Simulator) -> dict[PortRef, Uplink]:
    return {u.ref: u for u in sim.topology.uplinks()}


def _left(trace: Trace, uplinks: dict[PortRef, Uplink], dst: str) -> tuple[Uplink, Packet] | None:
    for ref, pkt in trace.delivered:
        if ref in uplinks and pkt.get("ipv4_dst") == dst:
            return uplinks[ref], pkt
    return None


def _why(trace: Trace, what: str) -> str:
    last = trace.dropped_at[-1] if trace.dropped_at else None
    where = (f" (dropped at {last.switch}/{last.stage}: {DROP_MEANING.get(last.stage, '')})"
             if last else "")
    return f"{what} not delivered{where}"


def probe_out(sim: Simulator, policy: Policy, bindings: Bindings, src: str, dst: str,
              service: Service, ct: Conntrack | None = None) -> OutsideResult:
    """Does VM `src` get a connection to the external address `dst` for `service`?"""
    ct = ct if ct is not None else Conntrack()
    vm = policy.vms[src]
    traces: list[tuple[str, Trace]] = []
    if src not in bindings.ports:
        return OutsideResult(src, dst, service, False, "not bound", traces=traces)
    hop = _next_hop_ip(policy, vm, dst)
    if hop is None:
        return OutsideResult(src, dst, service, False, f"{src} has no route to {dst}",
                             traces=traces)
    mac = resolve(sim, bindings, vm, hop, ct, traces)
    if mac is None:
        return OutsideResult(src, dst, service, False, f"ARP for {hop} got no answer",
                             traces=traces)
    request = service_packet(service, vm, dst, vm.mac, mac)
    trace = sim.inject(bindings.ports[src], request, ct)
    traces.append(("request", trace))
    uplinks = _uplinks(sim)
    left = _left(trace, uplinks, dst)
    if left is None:
        return OutsideResult(src, dst, service, False, _why(trace, "request"), traces=traces)
    uplink, out = left
    seen_as = str(out["ipv4_src"])
    reply = reply_packet(out, ROUTER_MAC, uplink.mac)
    back = sim.inject(uplink.ref, _tagged(reply, uplink), ct)
    traces.append(("reply", back))
    home = bindings.ports[src]
    ok = any(ref == home and pkt.get("ipv4_dst") == ip_text(vm.ip)
             and pkt.get("ipv4_src") == dst for ref, pkt in back.delivered)
    return OutsideResult(src, dst, service, ok, "" if ok else _why(back, "reply"), seen_as,
                         traces)


def _tagged(pkt: Packet, uplink: Uplink) -> Packet:
    return dict(pkt, vlan_vid=uplink.vlan) if uplink.vlan is not None else pkt


def answering_uplink(sim: Simulator, address: IPv4Address | str, ct: Conntrack,
                     traces: list[tuple[str, Trace]]) -> Uplink | None:
    """The uplink that answers the router's ARP for `address`, if any."""
    for uplink in sim.topology.uplinks():
        ask: Packet = {
            "eth_src": ROUTER_MAC, "eth_dst": BROADCAST, "eth_type": 0x0806, "arp_op": 1,
            "arp_sha": ROUTER_MAC, "arp_spa": str(uplink.next_hop),
            "arp_tha": "00:00:00:00:00:00", "arp_tpa": str(address),
        }
        trace = sim.inject(uplink.ref, _tagged(ask, uplink), ct)
        traces.append((f"arp router who-has {address} on {uplink.name}", trace))
        if any(ref == uplink.ref and pkt.get("arp_op") == 2 for ref, pkt in trace.delivered):
            return uplink
    return None


def _external_request(service: Service, src: str, dst: str, dst_mac: str) -> Packet:
    pkt: Packet = {"eth_src": ROUTER_MAC, "eth_dst": dst_mac, "eth_type": 0x0800,
                   "ipv4_src": src, "ipv4_dst": dst, "ip_ttl": 64}
    if service.proto is Proto.TCP:
        pkt.update(ip_proto=6, tcp_src=CLIENT_PORT, tcp_dst=service.port_lo, tcp_flags=TCP_SYN)
    elif service.proto is Proto.UDP:
        pkt.update(ip_proto=17, udp_src=CLIENT_PORT, udp_dst=service.port_lo)
    elif service.proto is Proto.ICMP:
        pkt.update(ip_proto=1, icmpv4_type=8, icmp_id=CLIENT_PORT)
    else:
        pkt.update(ip_proto=6, tcp_src=CLIENT_PORT, tcp_dst=9, tcp_flags=TCP_SYN)
    return pkt


def probe_in(sim: Simulator, policy: Policy, bindings: Bindings, src: str, dst: str,
             service: Service, ct: Conntrack | None = None, to: str | None = None
             ) -> OutsideResult:
    """Does the external address `src` get a connection to VM `dst` for `service`,
    sent to `to` (default: the VM's floating IP; any address may be tried)?"""
    ct = ct if ct is not None else Conntrack()
    vm = policy.vms[dst]
    traces: list[tuple[str, Trace]] = []
    target = to if to is not None else (str(vm.floating_ip) if vm.floating_ip else None)
    if target is None:
        return OutsideResult(src, dst, service, False, f"{dst} has no floating IP")
    if dst not in bindings.ports:
        return OutsideResult(src, dst, service, False, "not bound")
    uplink = answering_uplink(sim, target, ct, traces)
    if uplink is None:
        return OutsideResult(src, dst, service, False, f"no uplink answers ARP for {target}",
                             traces=traces)
    request = _external_request(service, src, target, uplink.mac)
    trace = sim.inject(uplink.ref, _tagged(request, uplink), ct)
    traces.append(("request", trace))
    home = bindings.ports[dst]
    got = next((pkt for ref, pkt in trace.delivered
                if ref == home and pkt.get("ipv4_dst") == ip_text(vm.ip)), None)
    if got is None:
        return OutsideResult(src, dst, service, False, _why(trace, "request"), traces=traces)
    seen_as = str(got["ipv4_src"])
    hop = _next_hop_ip(policy, vm, seen_as)
    mac = resolve(sim, bindings, vm, hop, ct, traces) if hop else None
    if mac is None:
        return OutsideResult(src, dst, service, False, f"{dst} cannot answer: no route back",
                             seen_as, traces)
    reply = reply_packet(got, vm.mac, mac)
    back = sim.inject(home, reply, ct)
    traces.append(("reply", back))
    left = _left(back, _uplinks(sim), src)
    ok = left is not None and left[1].get("ipv4_src") == target
    return OutsideResult(src, dst, service, ok, "" if ok else _why(back, "reply"), seen_as,
                         traces)
