"""Every class pair's verdict, simulated, against the policy's semantics.

For each ordered pair of VM classes of one tenant (sdnctl.verify.classes) one
representative pair is probed (`sdnctl.verify.reach.probe`) for every service,
in IPv4 and, when both have an IPv6 address, in IPv6, and compared with
`sdnctl.verify.semantics.reach` in that family. Pairs across tenants are
judged too, by a sweep per source class (below): a leak between tenants is
exactly what a hand-added flow can open.

The work is done source class by source class: its probes, then its sweep. What
is cached about a source is dropped when the next one starts, so memory does not
grow with the data centre. The shortcuts, all exact:

- ARP answers: an ARP request's path through the pipeline depends on the packet
  alone (conntrack treats non-IP as invalid whatever it holds), so each (port,
  request) is simulated once.
- First packets: a probe starts from an empty conntrack, so the request's trace
  and the connections it commits depend on (port, packet) alone. Across tenants
  with overlapping addresses the sweep sends the very packets the source's own
  probes sent.
- The sweep. The policy never lets tenants meet, so only a probe whose request
  reaches the destination's port is news. The request depends on the source, the
  service and the destination's IP alone (the MAC comes from ARP for that IP or
  the gateway). Sending it to every address another tenant uses costs
  O(classes x addresses): quadratic once tenants have address plans of their
  own. Instead the sweep sends it once with the destination address `Unknown`
  (sdnctl.verify.simulate): the run records every address a lookup compared it
  with, and for every other address the concrete request takes exactly the same
  steps. So an address of another tenant that the run never compared needs no
  packet of its own: the one run says where its request goes, and a VM of
  another tenant it reached is probed in full. An address that was compared (in
  practice one of the source tenant's own, which other tenants may reuse) is
  sent as before. Addresses in the source's subnet go the same way through one
  ARP request for the unknown address. A run the argument does not cover
  (`Inconclusive`) makes that source fall back to one request per address.
- The sweep in IPv6, from a source with an IPv6 address: the same runs with an
  unknown `ipv6_dst` through the router (when its segment has a `gateway6`). In its
  own prefix a VM learns MACs from the controller's neighbour advertisements,
  which name VMs of its own segment only (`sdnctl.nd.answer`), so the only
  requests there are to those VMs' addresses: each one another tenant reuses is
  sent as it is.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sdnctl.bindings import Bindings
from sdnctl.flows import FlowSet
from sdnctl.nd.answer import router_link_local
from sdnctl.policy.model import VM, Policy, Service
from sdnctl.topology.model import PortRef, Topology
from sdnctl.verify.classes import VmClass, pair_count
from sdnctl.verify.reach import (
    ProbeResult,
    _next_hop_ip,
    arp_request,
    as_ipv6,
    in_subnet,
    ip_text,
    probe,
    resolve,
    resolve6,
    service_packet,
)
from sdnctl.verify.semantics import Semantics
from sdnctl.verify.simulate import Conntrack, Inconclusive, Packet, Simulator, Trace, Unknown

MAX_LISTED_PAIRS = 50  # VM pairs listed per mismatching class pair in a report


class CachingSimulator(Simulator):
    """The simulator, with the two exact caches of the module docstring."""

    MAX_ARP = 50_000  # cached ARP traces; the cache starts afresh beyond (memory)

    def __init__(self, flowsets: Mapping[str, FlowSet], topology: Topology,
                 down_ports: frozenset[PortRef] = frozenset()) -> None:
        super().__init__(flowsets, topology, down_ports)
        self._arp: dict[tuple[PortRef, tuple[object, ...]], Trace] = {}
        self._first: dict[tuple[PortRef, tuple[object, ...]],
                          tuple[Trace, dict[tuple[str, int], set[tuple[object, ...]]]]] = {}
        self.injections = 0

    def forget_first_packets(self) -> None:
        """Drop the first-packet cache (its entries are keyed by the sender's port)."""
        self._first.clear()

    def inject_unknown(self, at: PortRef, pkt: Packet) -> Trace:
        self.injections += 1
        return super().inject_unknown(at, pkt)

    def _fresh(self, at: PortRef, pkt: Packet, ct: Conntrack) -> Trace:
        self.injections += 1
        return super().inject(at, pkt, ct)

    def inject(self, at: PortRef, pkt: Packet, ct: Conntrack | None = None) -> Trace:
        key = (at, tuple(sorted(pkt.items())))
        if pkt.get("eth_type") == 0x0806:
            hit = self._arp.get(key)
            if hit is None:
                if len(self._arp) >= self.MAX_ARP:
                    self._arp.clear()
                hit = self._arp[key] = self._fresh(at, pkt, Conntrack())
            return hit
        if ct is not None and not ct.tables:
            first = self._first.get(key)
            if first is None:
                trace = self._fresh(at, pkt, ct)
                self._first[key] = (trace, {k: set(v) for k, v in ct.tables.items()})
                return trace
            trace, tables = first
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
    family: int = 4

    @property
    def kind(self) -> str:
        return "LEAK" if self.reached else "BLOCKED"

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.lower(), "src": self.src.rep, "dst": self.dst.rep,
            "service": str(self.service), "family": f"ipv{self.family}",
            "reached": self.reached, "allowed": self.allowed,
            "reason": self.reason, "pairs": [list(p) for p in self.pairs],
            "n_pairs": self.n_pairs,
        }

    def to_text(self) -> str:
        what = (f"the policy denies it, the network lets it through ({self.reason})"
                if self.reached else
                f"the policy allows it, the network does not: {self.reason}")
        more = f" (and {self.n_pairs - 1} more VM pairs like it)" if self.n_pairs > 1 else ""
        v6 = " (IPv6)" if self.family == 6 else ""
        return (f"{self.kind:<8} {self.src.rep} -> {self.dst.rep} {self.service}{v6}: "
                f"{what}{more}")


@dataclass
class PairReport:
    classes: list[VmClass]
    services: tuple[Service, ...]
    mismatches: list[Mismatch] = field(default_factory=list)
    class_pairs: int = 0
    probes: int = 0
    vm_pairs: int = 0  # ordered VM pairs covered
    injections: int = 0
    sweep_fallbacks: int = 0  # source classes swept address by address (Inconclusive)
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
    """Probe one representative pair per ordered class pair of a tenant, for every
    service; sweep the other tenants from every class."""
    started = time.monotonic()
    walk = _Checker(CachingSimulator(flowsets, topology, down_ports), Semantics(policy),
                    bindings, classes, PairReport(list(classes), tuple(services)))
    walk.run()
    walk.report.injections = walk.sim.injections
    walk.report.seconds = time.monotonic() - started
    return walk.report


class _Walk:
    """Every class pair, source class by source class: the probes within its tenant,
    then the sweep of the others. What becomes of a probe is `judge`'s business."""

    def __init__(self, sim: CachingSimulator, sem: Semantics, bindings: Bindings,
                 classes: Sequence[VmClass], report: PairReport) -> None:
        self.sim, self.sem, self.bindings, self.report = sim, sem, bindings, report
        self.classes = classes

    def run(self) -> None:
        policy = self.sem.policy
        by_tenant: dict[str, list[VmClass]] = {}
        for c in self.classes:
            by_tenant.setdefault(policy.vms[c.rep].tenant, []).append(c)
        others = _OtherTenants(policy, self.bindings, self.classes)
        for a in self.classes:
            self.sim.forget_first_packets()
            tenant = policy.vms[a.rep].tenant
            for b in by_tenant[tenant]:
                self.probe_pair(a, b)
            self.sweep(a, others, tenant)

    def sweep(self, a: VmClass, others: _OtherTenants, tenant: str) -> None:
        _sweep_other_tenants(self, a, others, tenant)

    def probe_pair(self, a: VmClass, b: VmClass, services: Iterable[Service] | None = None,
                   families: tuple[int, ...] | None = None) -> None:
        """Probe the pair for `services` (default: all) in `families` (default: IPv4,
        and IPv6 when both VMs have an address)."""
        report = self.report
        n = pair_count(a, b)
        if n == 0:
            return
        src, dst = _rep_pair(a, b)
        if services is None:
            report.class_pairs += 1
            report.vm_pairs += n
        if families is None:
            vms = self.sem.policy.vms
            families = (4, 6) if vms[src].ip6 is not None and vms[dst].ip6 is not None else (4,)
        for service in report.services if services is None else services:
            for family in families:
                report.probes += 1
                self.judge(a, b, src, dst, service, probe(
                    self.sim, self.sem.policy, self.bindings, src, dst, service, family=family))

    def judge(self, a: VmClass, b: VmClass, src: str, dst: str, service: Service,
              result: ProbeResult) -> None:
        raise NotImplementedError


class _Checker(_Walk):
    def judge(self, a: VmClass, b: VmClass, src: str, dst: str, service: Service,
              result: ProbeResult) -> None:
        allowed = self.sem.reach(src, dst, service, result.family)
        real = verdict(result.reached, result.delivered, allowed)
        if real != allowed:
            listed = ((src, dst),) + tuple(p for p in _vm_pairs(a, b) if p != (src, dst))
            reason = result.reason if allowed else (
                "answered" if result.reached else "its first packet arrives, unanswered")
            self.report.mismatches.append(Mismatch(
                a, b, service, real, allowed, reason, listed[:MAX_LISTED_PAIRS],
                pair_count(a, b), result.family))


class _OtherTenants:
    """Indexes over every class, built once, so that sweeping the classes of the other
    tenants costs O(addresses the source's flows name) per source class, not
    O(classes)."""

    tenant_of: dict[str, str]  # class representative -> tenant
    by_ip: dict[str, list[VmClass]]  # destination IP -> classes with it, all tenants
    ip_of: dict[int, str]  # the keys of by_ip, as numbers
    in_tenant: dict[tuple[str, str], int]  # (IP, tenant) -> how many of by_ip[IP]
    rep_at: dict[PortRef, VmClass]  # representative's port -> class
    n_classes: int
    n_vms: int
    tenant_classes: dict[str, int]
    tenant_vms: dict[str, int]
    by_ip6: dict[str, list[VmClass]]  # the same three for IPv6 addresses
    ip6_of: dict[int, str]
    in_tenant6: dict[tuple[str, str], int]

    def __init__(self, policy: Policy, bindings: Bindings, classes: Sequence[VmClass]) -> None:
        self.tenant_of, self.by_ip, self.in_tenant, self.rep_at = {}, {}, {}, {}
        self.by_ip6, self.in_tenant6 = {}, {}
        self._reused6: dict[tuple[str, str], list[str]] = {}
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
            if vm.ip6 is not None:
                ip6 = str(vm.ip6)
                self.by_ip6.setdefault(ip6, []).append(b)
                self.in_tenant6[(ip6, vm.tenant)] = self.in_tenant6.get((ip6, vm.tenant), 0) + 1
        self.ip_of = {int(ipaddress.IPv4Address(ip)): ip for ip in self.by_ip}
        self.ip6_of = {int(ipaddress.IPv6Address(ip)): ip for ip in self.by_ip6}

    def others_have(self, ip: str, tenant: str, family: int = 4) -> bool:
        if family == 6:
            return len(self.by_ip6[ip]) > self.in_tenant6.get((ip, tenant), 0)
        return len(self.by_ip[ip]) > self.in_tenant.get((ip, tenant), 0)

    def reused6(self, policy: Policy, tenant: str, segment: str) -> list[str]:
        """The IPv6 addresses of the segment's VMs that another tenant's VM has too."""
        key = (tenant, segment)
        got = self._reused6.get(key)
        if got is None:
            got = self._reused6[key] = sorted(
                str(vm.ip6) for vm in policy.vms_of(tenant)
                if vm.segment == segment and vm.ip6 is not None
                and str(vm.ip6) in self.by_ip6 and self.others_have(str(vm.ip6), tenant, 6))
        return got

    def excluded(self, unknown: Unknown, family: int = 4) -> set[str]:
        """The addresses of by_ip (by_ip6) that a run with `unknown` compared it with."""
        ip_of = self.ip_of if family == 4 else self.ip6_of
        if unknown.masked:
            return {ip for n, ip in ip_of.items() if unknown.excluded(n)}
        out: set[str] = set()
        for values in unknown.exact:
            if len(values) < len(ip_of):
                out.update(ip_of[n] for n in values if n in ip_of)
            else:
                out.update(ip for n, ip in ip_of.items() if n in values)
        return out


def _rep_pair(a: VmClass, b: VmClass) -> tuple[str, str]:
    return a.rep, b.rep if b.rep != a.rep else b.members[1]


def _sweep_other_tenants(walk: _Walk, a: VmClass, others: _OtherTenants, tenant: str
                         ) -> None:
    """Every class pair (a, b) with b in another tenant, judged as `_Walk.probe_pair`
    would judge it, as the module docstring says."""
    sim, sem, bindings, report = walk.sim, walk.sem, walk.bindings, walk.report
    src = sem.policy.vms[a.rep]
    n_other = others.n_classes - others.tenant_classes[tenant]
    report.class_pairs += n_other
    report.vm_pairs += len(a.members) * (others.n_vms - others.tenant_vms[tenant])
    report.probes += n_other * len(report.services)  # each stands for its class pairs
    if n_other == 0:
        return
    try:
        by_address, reached = _generic_sweep(sim, sem, bindings, src, others, tenant,
                                             report.services)
    except Inconclusive:
        report.sweep_fallbacks += 1
        by_address = {ip: report.services for ip in others.by_ip}
        reached = []
    done: set[tuple[str, Service]] = set()
    for ip, services in by_address.items():
        if others.others_have(ip, tenant):
            reached += _sweep_address(sim, sem, bindings, src, ip, others, tenant, services)
    for b, service in reached:
        if (b.rep, service) not in done:
            done.add((b.rep, service))
            walk.probe_pair(a, b, (service,), (4,))
    _sweep_other_tenants6(walk, a, others, tenant)


def _sweep_other_tenants6(walk: _Walk, a: VmClass, others: _OtherTenants, tenant: str
                          ) -> None:
    """The same in IPv6 (the module docstring says how)."""
    sim, sem, bindings, report = walk.sim, walk.sem, walk.bindings, walk.report
    src = sem.policy.vms[a.rep]
    seg = sem.policy.segment_of(src)
    prefix = seg.subnet6
    if src.ip6 is None or prefix is None or not others.by_ip6:
        return
    at = bindings.ports[src.name]

    def request(service: Service, dst: str | Unknown, mac: str) -> Packet:
        pkt = as_ipv6(service_packet(service, src, "0.0.0.0", src.mac, mac), str(src.ip6), "::")
        pkt["ipv6_dst"] = dst
        return pkt

    def reaches(b: VmClass | None, out: Packet) -> VM | None:
        if b is None or others.tenant_of[b.rep] == tenant:
            return None
        vm = sem.policy.vms[b.rep]
        if out.get("eth_dst").__class__ is Unknown:
            raise Inconclusive("an unknown address became a MAC")
        return vm if vm.ip6 is not None and out.get("eth_dst") == vm.mac else None

    reached: list[tuple[VmClass, Service]] = []

    def send(ip: str, mac: str, services: Iterable[Service]) -> None:
        for service in services:
            trace = sim.inject(at, request(service, ip, mac), Conntrack())
            for ref, out in trace.delivered:
                b = others.rep_at.get(ref)
                if reaches(b, out) is not None and b is not None and out.get("ipv6_dst") == ip:
                    reached.append((b, service))

    # In its prefix: the addresses of its segment's VMs that another tenant reuses.
    for ip in others.reused6(sem.policy, tenant, seg.name):
        mac = resolve6(sim, sem.policy, bindings, src, ip, Conntrack(), [])
        if mac is not None:
            send(ip, mac, report.services)
    # Beyond it: through the router.
    theirs = {ip for ip in others.by_ip6 if others.others_have(ip, tenant, 6)
              and ipaddress.IPv6Address(ip) not in prefix}
    router = (resolve6(sim, sem.policy, bindings, src, str(router_link_local(seg)), Conntrack(),
                       []) if seg.routed6 and theirs else None)
    if router is not None:
        report.probes += len(report.services) * len({c.rep for ip in theirs
                                                     for c in others.by_ip6[ip]})
        by_address: dict[str, set[Service]] = {}
        found: list[tuple[VmClass, Service]] = []
        try:
            for service in report.services:
                dst = Unknown("ipv6_dst")
                trace = sim.inject_unknown(at, request(service, dst, router))
                for ip in others.excluded(dst, 6):
                    by_address.setdefault(ip, set()).add(service)
                for ref, out in trace.delivered:
                    b = others.rep_at.get(ref)
                    vm = reaches(b, out)
                    if vm is None or b is None:
                        continue
                    got = out.get("ipv6_dst")
                    if got is dst:  # the unknown stands for this VM's address unless excluded
                        if vm.ip6 in prefix or dst.excluded(int(ipaddress.IPv6Address(vm.ip6))):
                            continue
                    elif got != str(vm.ip6):
                        continue
                    found.append((b, service))
        except Inconclusive:
            report.sweep_fallbacks += 1
            by_address = {ip: set(report.services) for ip in theirs}
            found = []
        reached += found
        for ip, services in sorted(by_address.items()):
            if ip in theirs:
                send(ip, router, [s for s in report.services if s in services])
    done: set[tuple[str, Service]] = set()
    for b, service in reached:
        if (b.rep, service) not in done:
            done.add((b.rep, service))
            walk.probe_pair(a, b, (service,), (6,))


def _generic_sweep(sim: CachingSimulator, sem: Semantics, bindings: Bindings, src: VM,
                   others: _OtherTenants, tenant: str, services: tuple[Service, ...]
                   ) -> tuple[dict[str, tuple[Service, ...]], list[tuple[VmClass, Service]]]:
    """The runs with an unknown destination: (the addresses still to send to, with
    the services to send them, and the other tenants' classes the runs reached)."""
    at = bindings.ports[src.name]
    seg = sem.policy.segment_of(src)
    by_address: dict[str, set[Service]] = {}
    # In the source's subnet: the address is ARPed for.
    unknown = Unknown("arp_tpa")
    trace = sim.inject_unknown(at, arp_request(src, unknown))
    if any(ref == at and pkt.get("arp_op") == 2 for ref, pkt in trace.delivered):
        raise Inconclusive("an ARP request for an unknown address was answered")
    for ip in others.excluded(unknown):
        if in_subnet(ip, seg.subnet):
            by_address[ip] = set(services)
    # Beyond it: through the gateway, if there is one and it answers.
    reached: list[tuple[VmClass, Service]] = []
    mac = (resolve(sim, bindings, src, str(seg.gateway), Conntrack(), [])
           if seg.gateway is not None else None)
    if mac is not None:
        for service in services:
            dst = Unknown("ipv4_dst")
            trace = sim.inject_unknown(
                at, service_packet(service, src, dst, src.mac, mac))
            for ip in others.excluded(dst):
                if not in_subnet(ip, seg.subnet):
                    by_address.setdefault(ip, set()).add(service)
            for ref, pkt in trace.delivered:
                b = others.rep_at.get(ref)
                if b is None or others.tenant_of[b.rep] == tenant:
                    continue
                vm = sem.policy.vms[b.rep]
                if pkt.get("eth_dst").__class__ is Unknown:
                    raise Inconclusive("an unknown address became a MAC")
                if pkt.get("eth_dst") != vm.mac:
                    continue
                got = pkt.get("ipv4_dst")
                if got is dst:  # for the one address that is this VM's, if it is covered
                    if (vm.ip in seg.subnet or dst.excluded(int(vm.ip))):
                        continue  # not this run's: sent on its own above
                elif got != ip_text(vm.ip):
                    continue
                reached.append((b, service))
    ordered = tuple(services)
    return ({ip: tuple(s for s in ordered if s in wanted)
             for ip, wanted in sorted(by_address.items())}, reached)


def _sweep_address(sim: Simulator, sem: Semantics, bindings: Bindings, src: VM, ip: str,
                   others: _OtherTenants, tenant: str, services: Iterable[Service]
                   ) -> list[tuple[VmClass, Service]]:
    """Send the request to `ip` for each service; the other tenants' classes it reaches."""
    at = bindings.ports[src.name]
    hop = _next_hop_ip(sem.policy, src, ip)
    mac = resolve(sim, bindings, src, hop, Conntrack(), []) if hop is not None else None
    if mac is None:
        return []  # no route, or ARP unanswered: no probe to this IP goes anywhere
    reached = []
    for service in services:
        trace = sim.inject(at, service_packet(service, src, ip, src.mac, mac), Conntrack())
        for ref, pkt in trace.delivered:
            b = others.rep_at.get(ref)
            if b is None or others.tenant_of[b.rep] == tenant:
                continue
            dst = sem.policy.vms[b.rep]
            if pkt.get("ipv4_dst") == ip_text(dst.ip) and pkt.get("eth_dst") == dst.mac:
                reached.append((b, service))
    return reached
