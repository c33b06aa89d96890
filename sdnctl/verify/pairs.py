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
    others = _OtherTenants(policy, bindings, classes)
    for a in classes:
        tenant = policy.vms[a.rep].tenant
        for b in by_tenant[tenant]:
            _probe_pair(sim, policy, bindings, a, b, report)
        _sweep_other_tenants(sim, policy, bindings, a, others, tenant, report)
    report.injections = sim.injections
    report.seconds = time.monotonic() - started
    return report


class _OtherTenants:
    """Indexes over every class, built once, so that sweeping the classes of the other
    tenants costs O(distinct destination IPs) per source class, not O(classes): with
    thousands of tenants reusing one address plan, that is the difference between
    linear and quadratic."""

    tenant_of: dict[str, str]  # class representative -> tenant
    by_ip: dict[str, list[VmClass]]  # destination IP -> classes with it, all tenants
    in_tenant: dict[tuple[str, str], int]  # (IP, tenant) -> how many of by_ip[IP]
    rep_at: dict[PortRef, VmClass]  # representative's port -> class
    n_classes: int
    n_vms: int
    tenant_classes: dict[str, int]
    tenant_vms: dict[str, int]

    def __init__(self, policy: Policy, bindings: Bindings, classes: Sequence[VmClass]) -> None:
        self.tenant_of, self.by_ip, self.in_tenant, self.rep_at = {}, {}, {}, {}
        self.tenant_classes, self.tenant_vms = {}, {}
        self.n_classes, self.n_vms = len(classes), 0
        for b in classes:
            vm = policy.vms[b.rep]
            ip = str(vm.ip)
            self.tenant_of[b.rep] = vm.tenant
            self.by_ip.setdefault(ip, []).append(b)
            self.in_tenant[(ip, vm.tenant)] = self.in_tenant.get((ip, vm.tenant), 0) + 1
            self.rep_at[bindings.ports[b.rep]] = b
            self.n_vms += len(b.members)
            self.tenant_classes[vm.tenant] = self.tenant_classes.get(vm.tenant, 0) + 1
            self.tenant_vms[vm.tenant] = self.tenant_vms.get(vm.tenant, 0) + len(b.members)


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
                         others: _OtherTenants, tenant: str, report: PairReport) -> None:
    """Every class pair (a, b) with b in another tenant, exactly as `_probe_pair` would
    judge it, but sending each distinct first packet once.

    The policy never lets tenants meet, so only a probe that succeeds is news, and a
    probe succeeds only if its request reaches the destination's port. The request
    depends on the source, the service and the destination's IP alone (the MAC comes
    from ARP for that IP or the gateway): send it once per distinct IP, see which
    ports it reaches, and probe in full only the pairs whose destination is there."""
    src = policy.vms[a.rep]
    at = bindings.ports[a.rep]
    report.class_pairs += others.n_classes - others.tenant_classes[tenant]
    report.vm_pairs += len(a.members) * (others.n_vms - others.tenant_vms[tenant])
    for ip, holders in others.by_ip.items():
        n_other = len(holders) - others.in_tenant.get((ip, tenant), 0)
        if n_other == 0:
            continue  # only this tenant has the address
        hop = _next_hop_ip(policy, src, ip)
        mac = resolve(sim, bindings, src, hop, Conntrack(), []) if hop is not None else None
        for service in report.services:
            report.probes += n_other
            if mac is None:
                continue  # no route, or ARP unanswered: no probe to this IP goes anywhere
            trace = sim.inject(at, service_packet(service, src, ip, src.mac, mac), Conntrack())
            for ref, pkt in trace.delivered:
                b = others.rep_at.get(ref)
                if b is None or others.tenant_of[b.rep] == tenant:
                    continue
                dst = policy.vms[b.rep]
                if pkt.get("ipv4_dst") == str(dst.ip) and pkt.get("eth_dst") == dst.mac:
                    _probe_pair(sim, policy, bindings, a, b, report, (service,))
