"""The reference semantics of DESIGN.md §2, straight from the text.

Deliberately naive and independent of the compiler: tests compare what the
simulator (and the lab) measure on compiled flows against this.
"""

from __future__ import annotations

from sdnctl.policy.model import Default, Policy, Proto, Service


def reach(policy: Policy, src: str, dst: str, service: Service, family: int = 4) -> bool:
    """May `src` open a connection to `dst` for `service` (and get its replies), in
    IPv4 (`family` 4) or IPv6 (6: both need an IPv6 address; `gateway6` routes)?"""
    if src == dst:
        return False
    a, b = policy.vms[src], policy.vms[dst]
    if a.tenant != b.tenant:
        return False
    if family == 6 and (a.ip6 is None or b.ip6 is None):
        return False
    seg_a, seg_b = policy.segment_of(a), policy.segment_of(b)
    if seg_a.name != seg_b.name and not (seg_a.routed_in(family) and seg_b.routed_in(family)):
        return False
    tenant = policy.tenants[a.tenant]
    if tenant.default is Default.ALLOW:
        return True
    return any(
        src in policy.members(tenant.name, rule.src)
        and dst in policy.members(tenant.name, rule.dst)
        and any(allowed.contains(service) for allowed in rule.services)
        and rule.covers(family)
        for rule in tenant.rules
    )


class Semantics:
    """`reach` for many questions about one policy: the same answers, with each
    group's members computed once (`reach` recomputes them, O(tenant) per rule, for
    every question: fine for a test, quadratic for `verify` on a large tenant)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._members: dict[tuple[str, str], frozenset[str]] = {}

    def members(self, tenant: str, group: str) -> frozenset[str]:
        got = self._members.get((tenant, group))
        if got is None:
            got = self._members[(tenant, group)] = self.policy.members(tenant, group)
        return got

    def reach(self, src: str, dst: str, service: Service, family: int = 4) -> bool:
        policy = self.policy
        if src == dst:
            return False
        a, b = policy.vms[src], policy.vms[dst]
        if a.tenant != b.tenant:
            return False
        if family == 6 and (a.ip6 is None or b.ip6 is None):
            return False
        seg_a, seg_b = policy.segment_of(a), policy.segment_of(b)
        if seg_a.name != seg_b.name and not (seg_a.routed_in(family)
                                             and seg_b.routed_in(family)):
            return False
        tenant = policy.tenants[a.tenant]
        if tenant.default is Default.ALLOW:
            return True
        return any(
            src in self.members(tenant.name, rule.src)
            and dst in self.members(tenant.name, rule.dst)
            and any(allowed.contains(service) for allowed in rule.services)
            and rule.covers(family)
            for rule in tenant.rules
        )


def probe_services(policy: Policy) -> tuple[Service, ...]:
    """The concrete services the lab and `plan` probe.

    Every single-port service a rule names, the low port of every range (a probe
    is one packet, so a range is probed at one port), icmp, and one TCP port that
    no rule allows, so that a leak of unlisted traffic shows. `any` is probed by
    that unlisted port too.
    """
    rules = policy.services()
    probes: set[Service] = {Service(Proto.ICMP)}
    for s in rules:
        if s.has_ports:
            probes.add(Service(s.proto, s.port_lo, s.port_lo))
    for port in (9, 7, 13, 19, 37, 79, 113, 119, 3999, 60999):
        unlisted = Service(Proto.TCP, port, port)
        if not any(s.contains(unlisted) for s in rules if s.proto is not Proto.ANY):
            probes.add(unlisted)
            break
    return tuple(sorted(probes))
