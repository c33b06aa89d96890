"""The reference semantics of DESIGN.md §2, straight from the text.

Deliberately naive and independent of the compiler: tests compare what the
simulator (and the lab) measure on compiled flows against this.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from sdnctl.policy.model import VM, Default, Policy, Proto, Service


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


def takes_part(policy: Policy, vm: VM) -> bool:
    """Whether `vm` can talk with the outside at all: its segment is routed and has
    a VLAN (gateways reach VMs by VLAN), and it has an address to do it with."""
    seg = policy.segment_of(vm)
    if not seg.routed or seg.vlan is None:
        return False
    return vm.floating_ip is not None or policy.tenants[vm.tenant].snat is not None


# Nobody's outside: "this network", loopback, link-local, multicast, reserved and
# broadcast addresses are never sent out nor taken in as a source.
NOWHERE = tuple(IPv4Network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16",
                                          "224.0.0.0/4", "240.0.0.0/4"))


def is_external(policy: Policy, tenant: str, addr: IPv4Address) -> bool:
    """Not inside any segment of `tenant`, and somebody's address."""
    if any(addr in net for net in NOWHERE):
        return False
    return all(addr not in seg.subnet for seg in policy.tenants[tenant].segments.values())


def outside_address(policy: Policy, src: str) -> IPv4Address | None:
    """What the outside sees VM `src` as: its floating IP, else its tenant's first
    pool address (a pool hands out any of its addresses), else None."""
    vm = policy.vms[src]
    if vm.floating_ip is not None:
        return vm.floating_ip
    snat = policy.tenants[vm.tenant].snat
    return snat.first if snat is not None else None


def reach_out(policy: Policy, src: str, dst: IPv4Address, service: Service) -> bool:
    """May VM `src` open a connection to the external address `dst`?"""
    a = policy.vms[src]
    if not takes_part(policy, a) or not is_external(policy, a.tenant, dst):
        return False
    return any(
        rule.dst_net is not None and dst in rule.dst_net
        and src in policy.members(a.tenant, rule.src)
        and any(allowed.contains(service) for allowed in rule.services)
        for rule in policy.tenants[a.tenant].rules
    )


def reach_in(policy: Policy, src: IPv4Address, dst: str, service: Service) -> bool:
    """May the external address `src` open a connection to VM `dst` (through its
    floating IP)?"""
    b = policy.vms[dst]
    if b.floating_ip is None or not takes_part(policy, b):
        return False
    if not is_external(policy, b.tenant, src):
        return False
    return any(
        rule.src_net is not None and src in rule.src_net
        and dst in policy.members(b.tenant, rule.dst)
        and any(allowed.contains(service) for allowed in rule.services)
        for rule in policy.tenants[b.tenant].rules
    )


def reach_floating(policy: Policy, src: str, dst: str, service: Service) -> bool:
    """May VM `src` open a connection to VM `dst`'s floating IP? Out through the
    gateway and back in (hairpin when both are of one tenant): both directions'
    rules must allow it."""
    fip = policy.vms[dst].floating_ip
    seen_as = outside_address(policy, src)
    if fip is None or seen_as is None:
        return False
    return reach_out(policy, src, fip, service) and reach_in(policy, seen_as, dst, service)


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
