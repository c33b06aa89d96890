"""Every class pair's verdict, simulated, against the policy's semantics.

For each ordered pair of VM classes (sdnctl.verify.classes) one representative
pair is probed (`sdnctl.verify.reach.probe`) for every service, and compared with
`sdnctl.verify.semantics.reach`. Pairs across tenants are probed too: a leak
between tenants is exactly what a hand-added flow can open.

Two caches keep that affordable on a large data centre, both exact:
- ARP answers: an ARP request's path through the pipeline depends on the packet
  alone (conntrack treats non-IP as invalid whatever it holds), so each (port,
  request) is simulated once.
- First packets: a probe starts from an empty conntrack, so the request's trace
  and the connections it commits depend on (port, packet) alone. Across tenants
  with overlapping addresses many class pairs send the very same packet.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sdnctl.bindings import Bindings
from sdnctl.flows import FlowSet
from sdnctl.policy.model import Policy, Service
from sdnctl.topology.model import PortRef, Topology
from sdnctl.verify.classes import VmClass, pair_count
from sdnctl.verify.reach import _next_hop_ip, probe, resolve, service_packet
from sdnctl.verify.semantics import reach
from sdnctl.verify.simulate import Conntrack, Packet, Simulator, Trace

MAX_LISTED_PAIRS = 50  # VM pairs listed per mismatching class pair in a report


class CachingSimulator(Simulator):
    """The simulator, with the two exact caches of the module docstring."""

    def __init__(self, flowsets: Mapping[str, FlowSet], topology: Topology,
                 down_ports: frozenset[PortRef] = frozenset()) -> None:
        super().__init__(flowsets, topology, down_ports)
        self._arp: dict[tuple[PortRef, tuple[object, ...]], Trace] = {}
        self._first: dict[tuple[PortRef, tuple[object, ...]],
                          tuple[Trace, dict[tuple[str, int], set[tuple[object, ...]]]]] = {}
        self.injections = 0

    def inject(self, at: PortRef, pkt: Packet, ct: Conntrack | None = None) -> Trace:
        key = (at, tuple(sorted(pkt.items())))
        if pkt.get("eth_type") == 0x0806:
            trace = self._arp.get(key)
            if trace is None:
                self.injections += 1
                trace = self._arp[key] = super().inject(at, pkt, Conntrack())
            return trace
        if ct is not None and not ct.tables:
            hit = self._first.get(key)
            if hit is None:
                self.injections += 1
                trace = super().inject(at, pkt, ct)
                self._first[key] = (trace, {k: set(v) for k, v in ct.tables.items()})
                return trace
            trace, tables = hit
            ct.tables.update({k: set(v) for k, v in tables.items()})
            return trace
        self.injections += 1
        return super().inject(at, pkt, ct)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A class pair whose simulated verdict for `service` is not the policy's."""

    src: VmClass
    dst: VmClass
    service: Service
    reached: bool  # what the network does for the representatives (see `verdict`)
    allowed: bool  # what the policy says
    reason: str  # the probe's account when not reached
    pairs: tuple[tuple[str, str], ...]  # VM pairs it stands for (up to MAX_LISTED_PAIRS)
    n_pairs: int

    @property
    def kind(self) -> str:
        return "LEAK" if self.reached else "BLOCKED"

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.lower(), "src": self.src.rep, "dst": self.dst.rep,
            "service": str(self.service), "reached": self.reached, "allowed": self.allowed,
            "reason": self.reason, "pairs": [list(p) for p in self.pairs],
            "n_pairs": self.n_pairs,
        }

    def to_text(self) -> str:
        what = (f"the policy denies it, the network lets it through ({self.reason})"
                if self.reached else
                f"the policy allows it, the network does not: {self.reason}")
        more = f" (and {self.n_pairs - 1} more VM pairs like it)" if self.n_pairs > 1 else ""
        return f"{self.kind:<8} {self.src.rep} -> {self.dst.rep} {self.service}: {what}{more}"


@dataclass
class PairReport:
    classes: list[VmClass]
    services: tuple[Service, ...]
    mismatches: list[Mismatch] = field(default_factory=list)
    class_pairs: int = 0
    probes: int = 0
    vm_pairs: int = 0  # ordered VM pairs covered
    injections: int = 0
    seconds: float = 0.0


def verdict(reached: bool, delivered: bool, allowed: bool) -> bool:
    """What the network does, in the policy's terms: an allowed connection must open
    (request delivered and answered); a denied one must not even deliver its first
    packet (a frame that arrives is a leak, answered or not)."""
    return reached if allowed else delivered


def _vm_pairs(a: VmClass, b: VmClass) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for x in a.members:
        for y in b.members:
            if x != y:
                out.append((x, y))
                if len(out) >= MAX_LISTED_PAIRS:
                    return tuple(out)
    return tuple(out)


def check_pairs(
    flowsets: Mapping[str, FlowSet],
    policy: Policy,
    topology: Topology,
    bindings: Bindings,
    classes: Sequence[VmClass],
    services: Iterable[Service],
    down_ports: frozenset[PortRef] = frozenset(),
) -> PairReport:
    """Probe one representative pair per ordered class pair, for every service."""
    started = time.monotonic()
    sim = CachingSimulator(flowsets, topology, down_ports)
    report = PairReport(list(classes), tuple(services))
    by_tenant: dict[str, list[VmClass]] = {}
    for c in classes:
        by_tenant.setdefault(policy.vms[c.rep].tenant, []).append(c)
    for a in classes:
        tenant = policy.vms[a.rep].tenant
        for b in by_tenant[tenant]:
            _probe_pair(sim, policy, bindings, a, b, report)
        _sweep_other_tenants(sim, policy, bindings, a, classes, tenant, report)
    report.injections = sim.injections
    report.seconds = time.monotonic() - started
    return report


def _rep_pair(a: VmClass, b: VmClass) -> tuple[str, str]:
    return a.rep, b.rep if b.rep != a.rep else b.members[1]


def _probe_pair(sim: Simulator, policy: Policy, bindings: Bindings, a: VmClass, b: VmClass,
                report: PairReport, services: Iterable[Service] | None = None) -> None:
    n = pair_count(a, b)
    if n == 0:
        return
    src, dst = _rep_pair(a, b)
    if services is None:
        report.class_pairs += 1
        report.vm_pairs += n
    for service in report.services if services is None else services:
        report.probes += 1
        result = probe(sim, policy, bindings, src, dst, service)
        allowed = reach(policy, src, dst, service)
        real = verdict(result.reached, result.delivered, allowed)
        if real != allowed:
            listed = ((src, dst),) + tuple(p for p in _vm_pairs(a, b) if p != (src, dst))
            reason = result.reason if allowed else (
                "answered" if result.reached else "its first packet arrives, unanswered")
            report.mismatches.append(Mismatch(a, b, service, real, allowed, reason,
                                              listed[:MAX_LISTED_PAIRS], n))


def _sweep_other_tenants(sim: Simulator, policy: Policy, bindings: Bindings, a: VmClass,
                         classes: Sequence[VmClass], tenant: str, report: PairReport) -> None:
    """Every class pair (a, b) with b in another tenant, exactly as `_probe_pair` would
    judge it, but sending each distinct first packet once.

    The policy never lets tenants meet, so only a probe that succeeds is news, and a
    probe succeeds only if its request reaches the destination's port. The request
    depends on the source, the service and the destination's IP alone (the MAC comes
    from ARP for that IP or the gateway): send it once per distinct IP, see which
    ports it reaches, and probe in full only the pairs whose destination is there."""
    src = policy.vms[a.rep]
    at = bindings.ports[a.rep]
    others = [b for b in classes if policy.vms[b.rep].tenant != tenant]
    by_ip: dict[str, list[VmClass]] = {}
    for b in others:
        by_ip.setdefault(str(policy.vms[b.rep].ip), []).append(b)
        report.class_pairs += 1
        report.vm_pairs += pair_count(a, b)
    rep_at = {bindings.ports[b.rep]: b for b in others}
    for ip in by_ip:
        hop = _next_hop_ip(policy, src, ip)
        mac = resolve(sim, bindings, src, hop, Conntrack(), []) if hop is not None else None
        for service in report.services:
            report.probes += len(by_ip[ip])
            if mac is None:
                continue  # no route, or ARP unanswered: no probe to this IP goes anywhere
            trace = sim.inject(at, service_packet(service, src, ip, src.mac, mac), Conntrack())
            for ref, pkt in trace.delivered:
                b = rep_at.get(ref)
                dst = policy.vms[b.rep] if b is not None else None
                if (dst is not None and pkt.get("ipv4_dst") == str(dst.ip)
                        and pkt.get("eth_dst") == dst.mac):
                    _probe_pair(sim, policy, bindings, a, b, report, (service,))
