"""The controller's responder on the metered path: a packet-in from stage `dhcp` -> the
answer frame. Mostly DHCP; also the distributed router's "time exceeded" for a
VM's packet to its gateway that the router would let expire (sdnctl.icmp), in
IPv4 and in IPv6 (hop limit 1, answered from the segment's `gateway6`).

Everything but the OpenFlow messages: which VM is bound to the port the request
came in on (the live binding, never the frame's claims), what the policy tells
it (`sdnctl.dhcp.lease`), and counters for /metrics, per VM and per switch. A
port bound to no VM, a frame whose source MAC or client hardware address is not
that VM's, or bytes that are not a DHCP request get no answer and are counted.
The switch's meters (`sdnctl.compile.dhcp`, and for IPv6 the ND meters of
`sdnctl.compile.nd`) bound what arrives here; their drops are read from the
switch (`record_meter_drops`) and counted apart, per VM and per switch.

IPv6 neighbour and router solicitations arrive on the same path (stage `dhcp`,
the ND meters of `sdnctl.compile.nd`) and are answered here too, from the same
binding (`sdnctl.nd.answer`), counted as `nd-advert`, `nd-ignored` or
`nd-malformed`. Router advertisements are also sent unsolicited, to every bound
VM with an IPv6 address, with the stats poll at most every `RA_EVERY_S`: a VM
solicits only when its interface comes up, and the router lifetime (9000 s, the
most RFC 4861 allows) would run out without them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from sdnctl.bindings import Bindings
from sdnctl.compile.dhcp import SWITCH_DHCP_METER, vm_dhcp_meter
from sdnctl.compile.nd import SWITCH_ND_METER, vm_nd_meter
from sdnctl.dhcp.lease import answer, lease_of
from sdnctl.dhcp.wire import (
    MalformedDhcp,
    MessageType,
    encode_reply,
    mac_bytes,
    parse_request,
)
from sdnctl.icmp import expired6_at_router, expired_at_router, time_exceeded, time_exceeded6
from sdnctl.nd.answer import answer_solicitation, periodic_advert
from sdnctl.nd.wire import MalformedNd, encode_advert, parse_solicitation
from sdnctl.pipeline import gateway_mac
from sdnctl.policy.model import VM, Policy
from sdnctl.topology.model import PortRef, Topology

log = logging.getLogger("controller")
LOG_EVERY_S = 10.0
RA_EVERY_S = 600.0  # unsolicited RAs: well inside the 9000 s router lifetime

# Outcomes counted per VM (and per switch): what each request came to.
OUTCOMES = ("offer", "ack", "nak", "ignored", "malformed", "time-exceeded", "nd-advert",
            "nd-ignored", "nd-malformed")
ETH_IP6 = b"\x86\xdd"


@dataclass
class _Tally:
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    meter_drops: int = 0  # by the DHCP meter
    nd_meter_drops: int = 0  # by the ND meter (solicitations, expired IPv6)
    _meter_last: dict[int, int] = field(default_factory=dict)  # meter id -> last total

    def add_drops(self, meter_id: int, total: int, nd: bool) -> None:
        """A meter's drop counter read `total`: count its growth (all of it when the
        counter restarted, e.g. the meter was re-added)."""
        last = self._meter_last.get(meter_id, 0)
        grew = total - last if total >= last else total
        self._meter_last[meter_id] = total
        if nd:
            self.nd_meter_drops += grew
        else:
            self.meter_drops += grew


@dataclass
class DhcpCounters:
    by_vm: dict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    by_switch: dict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    unbound: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per switch


class DhcpResponder:
    """Answers DHCP packet-ins; thread-safe (the API reads counters from its threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = DhcpCounters()
        self._index_of: Bindings | None = None
        self._at: dict[PortRef, str] = {}
        self._logged_at: dict[str, float] = {}
        self._advertised_at: dict[str, float] = {}  # switch -> last unsolicited RAs

    def handle(self, policy: Policy, topology: Topology, bindings: Bindings, switch: str,
               in_port: int, frame: bytes) -> bytes | None:
        """The frame to send back out of `in_port`, or None."""
        vm = self._vm_at(policy, bindings, PortRef(switch, in_port))
        if vm is None:
            with self.lock:
                self.counts.unbound[switch] += 1
            self._log(switch, f"{switch}: DHCP from port {in_port}, bound to no VM: ignored")
            return None
        if frame[12:14] == ETH_IP6:
            expired = self._expired6(policy, vm, switch, frame)
            if expired is not None:
                return expired or None
            return self._nd(policy, topology, bindings, vm, switch, frame)
        segment = policy.segment_of(vm)
        gateway = gateway_mac(segment.id)
        if (segment.gateway is not None and not _to_dhcp_server(frame)
                and expired_at_router(frame, gateway)):
            own = frame[6:12] == mac_bytes(vm.mac) and frame[26:30] == vm.ip.packed
            expired = time_exceeded(frame, gateway, segment.gateway) if own else None
            self._count(vm.name, switch, "ignored" if expired is None else "time-exceeded")
            return expired
        try:
            request = parse_request(frame)
        except MalformedDhcp as exc:
            self._count(vm.name, switch, "malformed")
            self._log(vm.name, f"{vm.name}: malformed DHCP request ignored: {exc}")
            return None
        reply = answer(request, lease_of(policy, topology, vm))
        if reply is None:
            self._count(vm.name, switch, "ignored")
            if request.kind in (MessageType.RELEASE, MessageType.DECLINE):
                log.info("%s: DHCP %s of %s (the address stays the VM's by policy)",
                         vm.name, request.kind.name, request.ciaddr or request.requested_ip)
            return None
        frame_out = encode_reply(reply)
        outcome = {MessageType.OFFER: "offer", MessageType.NAK: "nak"}.get(reply.kind, "ack")
        self._count(vm.name, switch, outcome)
        return frame_out

    def _expired6(self, policy: Policy, vm: VM, switch: str, frame: bytes) -> bytes | None:
        """For an IPv6 packet the router would let expire: the time-exceeded answer,
        or b"" when none is due (counted either way); None for any other frame."""
        segment = policy.segment_of(vm)
        gateway = gateway_mac(segment.id)
        if segment.gateway6 is None or not expired6_at_router(frame, gateway):
            return None
        own = (frame[6:12] == mac_bytes(vm.mac) and vm.ip6 is not None
               and frame[22:38] == vm.ip6.packed)
        answer = time_exceeded6(frame, gateway, segment.gateway6) if own else None
        self._count(vm.name, switch, "ignored" if answer is None else "time-exceeded")
        return answer or b""

    def _nd(self, policy: Policy, topology: Topology, bindings: Bindings, vm: VM, switch: str,
            frame: bytes) -> bytes | None:
        try:
            asked = parse_solicitation(frame)
        except MalformedNd as exc:
            self._count(vm.name, switch, "nd-malformed")
            self._log(vm.name, f"{vm.name}: malformed solicitation ignored: {exc}")
            return None
        advert = answer_solicitation(policy, topology, bindings, vm, asked)
        if advert is None:
            self._count(vm.name, switch, "nd-ignored")
            return None
        self._count(vm.name, switch, "nd-advert")
        return encode_advert(advert)

    def due_adverts(self, policy: Policy, topology: Topology, bindings: Bindings, switch: str,
                    now: float | None = None) -> list[tuple[int, bytes]]:
        """(port, frame) of the unsolicited router advertisements `switch` is due: one
        per bound VM with an IPv6 address, at most every RA_EVERY_S."""
        now = time.monotonic() if now is None else now
        with self.lock:
            if now - self._advertised_at.get(switch, float("-inf")) < RA_EVERY_S:
                return []
            self._advertised_at[switch] = now
        out = []
        for name, ref in sorted(bindings.ports.items()):
            vm = policy.vms.get(name)
            if ref.switch != switch or vm is None:
                continue
            advert = periodic_advert(policy, topology, vm)
            if advert is not None:
                out.append((ref.port, encode_advert(advert)))
        return out

    def _vm_at(self, policy: Policy, bindings: Bindings, where: PortRef) -> VM | None:
        with self.lock:
            if self._index_of is not bindings:  # bindings are replaced, never mutated
                self._at = {ref: name for name, ref in bindings.ports.items()}
                self._index_of = bindings
            name = self._at.get(where)
        return policy.vms.get(name) if name is not None else None

    def _count(self, vm: str, switch: str, outcome: str) -> None:
        with self.lock:
            self.counts.by_vm[vm].outcomes[outcome] += 1
            self.counts.by_switch[switch].outcomes[outcome] += 1

    def _log(self, key: str, message: str) -> None:
        now = time.monotonic()
        with self.lock:
            if now - self._logged_at.get(key, float("-inf")) < LOG_EVERY_S:
                return
            self._logged_at[key] = now
        log.warning("%s", message)

    def record_meter_drops(self, switch: str, bindings: Bindings,
                           dropped: dict[int, int]) -> None:
        """A switch's meters reported (meter id -> packets dropped so far): add the
        growth of its DHCP and ND meters since the last report to its VMs' and its
        own totals."""
        with self.lock:
            owners: dict[int, tuple[str, bool]] = {}
            for name, ref in bindings.ports.items():
                if ref.switch == switch:
                    owners[vm_dhcp_meter(ref.port)] = (name, False)
                    owners[vm_nd_meter(ref.port)] = (name, True)
            for meter_id, total in dropped.items():
                if meter_id in (SWITCH_DHCP_METER, SWITCH_ND_METER):
                    tally, nd = self.counts.by_switch[switch], meter_id == SWITCH_ND_METER
                elif meter_id in owners:
                    name, nd = owners[meter_id]
                    tally = self.counts.by_vm[name]
                else:
                    continue
                tally.add_drops(meter_id, total, nd)

    def snapshot(self) -> dict[str, object]:
        """For /status and /metrics: plain JSON."""
        with self.lock:
            c = self.counts

            def tally(t: _Tally) -> dict[str, int]:
                return {**t.outcomes, "meter_drops": t.meter_drops,
                        "nd_meter_drops": t.nd_meter_drops}

            return {
                "by_vm": {vm: tally(t) for vm, t in sorted(c.by_vm.items())},
                "by_switch": {sw: tally(t) for sw, t in sorted(c.by_switch.items())},
                "unbound_port": dict(sorted(c.unbound.items())),
            }


def _to_dhcp_server(frame: bytes) -> bool:
    """IPv4 UDP to port 67: a DHCP request, answered as one even when sent with TTL 1."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return False
    l4 = 14 + (frame[14] & 0x0F) * 4
    return len(frame) >= l4 + 4 and frame[l4 + 2:l4 + 4] == b"\x00\x43"
