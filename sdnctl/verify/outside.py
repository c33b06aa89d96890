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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from types import MappingProxyType

from sdnctl.bindings import Bindings
from sdnctl.flows import FlowSet
from sdnctl.policy.model import Policy, Proto, Service
from sdnctl.topology.model import PortRef, Topology, Uplink
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
from sdnctl.verify.semantics import reach_in, reach_out
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


def router_learned(bindings: Bindings, topology: Topology) -> Bindings:
    """`bindings` as they are once the daemon has learned every next hop's MAC (the
    simulated router's): what offline questions about the outside assume."""
    learned = {u.name: ROUTER_MAC for u in topology.uplinks() if u.next_hop_mac is None}
    return replace(bindings, neighbours=MappingProxyType({**learned, **bindings.neighbours}))


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


@dataclass(frozen=True, slots=True)
class OutsideMismatch:
    direction: str  # "out" (VM -> address) or "in" (address -> VM's floating IP)
    src: str
    dst: str
    service: Service
    measured: bool
    promised: bool
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"direction": self.direction, "from": self.src, "to": self.dst,
                "service": str(self.service), "measured": self.measured,
                "promised": self.promised, "reason": self.reason}

    def to_text(self) -> str:
        said = "allowed" if self.promised else "denied"
        got = "open" if self.measured else "closed"
        return (f"{self.src} -> {self.dst} {self.service}: the policy says {said}, the "
                f"network is {got}{f' ({self.reason})' if self.reason else ''}")


@dataclass
class OutsideReport:
    addresses: tuple[str, ...] = ()
    probes: int = 0
    mismatches: list[OutsideMismatch] = field(default_factory=list)


def sample_addresses(policy: Policy) -> tuple[str, ...]:
    """External addresses that stand for all others: a host of every CIDR a rule
    names, its last address, and one address no rule names (every VM's tenant
    sees it as `external` only)."""
    nets = {r.src_net or r.dst_net for t in policy.tenants.values() for r in t.rules
            if r.north_south}
    out: set[str] = set()
    for net in nets:
        if net is None or net.prefixlen == 0:
            continue
        out.add(str(net.network_address + (1 if net.num_addresses > 2 else 0)))
        out.add(str(net.broadcast_address - (1 if net.num_addresses > 2 else 0)))
    named = [n for n in nets if n is not None and n.prefixlen]
    inside = [s.subnet for t in policy.tenants.values() for s in t.segments.values()]
    for candidate in ("192.0.2.1", "198.18.0.1", "100.64.0.1", "203.0.114.1", "8.8.8.8"):
        ip = IPv4Address(candidate)
        if not any(ip in n for n in named) and not any(ip in s for s in inside):
            out.add(candidate)
            break
    return tuple(sorted(out, key=lambda a: int(IPv4Address(a))))


def check_outside(flowsets: Mapping[str, FlowSet], policy: Policy, topology: Topology,
                  bindings: Bindings, services: Iterable[Service]) -> OutsideReport:
    """Every class of VM against the sample addresses, both ways, measured on
    `flowsets` and held to the semantics. A class: same tenant, segment, groups
    and whether it has a floating IP (they are treated alike outside)."""
    report = OutsideReport()
    if not topology.uplinks() or not any(t.north_south for t in policy.tenants.values()):
        return report
    services = tuple(services)
    report.addresses = sample_addresses(policy)
    sim = Simulator(flowsets, topology)
    for name in _representatives(policy, bindings):
        vm = policy.vms[name]
        for addr in report.addresses:
            for service in services:
                got = probe_out(sim, policy, bindings, name, addr, service)
                want = reach_out(policy, name, IPv4Address(addr), service)
                report.probes += 1
                if got.reached != want:
                    report.mismatches.append(OutsideMismatch(
                        "out", name, addr, service, got.reached, want, got.reason))
                if vm.floating_ip is None:
                    continue
                got = probe_in(sim, policy, bindings, addr, name, service)
                want = reach_in(policy, IPv4Address(addr), name, service)
                report.probes += 1
                if got.reached != want:
                    report.mismatches.append(OutsideMismatch(
                        "in", addr, name, service, got.reached, want, got.reason))
    return report


def _representatives(policy: Policy, bindings: Bindings) -> list[str]:
    seen: set[tuple[object, ...]] = set()
    out = []
    for name in sorted(bindings.ports):
        vm = policy.vms.get(name)
        if vm is None or not policy.tenants[vm.tenant].north_south:
            continue
        groups = frozenset(g for g in policy.tenants[vm.tenant].groups
                           if name in policy.members(vm.tenant, g))
        key = (vm.tenant, vm.segment, groups, vm.floating_ip is None)
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out
