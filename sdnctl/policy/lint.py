"""Warnings about a valid policy: legal, but probably not what the operator meant.

Nothing here is an error (DESIGN.md §2: a group may match no VM; a rule that can
never take effect is a lint warning). Messages name the object as the loader does:
`group T/G` or `rule N of tenant T (FROM -> TO)`, and end with the warning's code
in brackets. An object's `waive: [CODE, ...]` key silences those warnings about
it (`WAIVABLE` says which objects may waive which codes); `lint_all` returns
the waived ones apart, so that `check` can count them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network

from sdnctl.policy.model import (
    ANY,
    VM,
    Default,
    Group,
    Policy,
    Rule,
    Segment,
    Tenant,
    external_net,
)
from sdnctl.policy.services import ServiceSet
from sdnctl.yamlsrc import Problem

# The warning codes (docs/policy.md says what each means), by the kind of object
# that may waive them.
WAIVABLE = {
    "tenant": ("exposure",),
    "group": ("empty-group",),
    "rule": ("no-effect", "duplicate", "covered", "exposure", "ipv4-only"),
    "vm": ("unreachable",),
}


@dataclass
class Lint:
    warnings: list[Problem] = field(default_factory=list)
    waived: list[Problem] = field(default_factory=list)

    def warn(self, owner: Tenant | Group | Rule | VM, code: str, problem: Problem) -> None:
        problem = Problem(problem.file, problem.line, f"{problem.message} [{code}]")
        (self.waived if code in owner.waive else self.warnings).append(problem)


def lint_policy(policy: Policy) -> list[Problem]:
    """Every warning for `policy` not waived, sorted by line then message."""
    return lint_all(policy).warnings


def lint_all(policy: Policy) -> Lint:
    """The warnings and, apart, the waived ones; each list sorted by line."""
    lint = Lint()
    for tenant in policy.tenants.values():
        for owner, code, problem in (
                *_lint_groups(policy, tenant), *_lint_rules(policy, tenant),
                *_lint_overlap(policy, tenant), *_lint_unreachable(policy, tenant),
                *_lint_exposure(policy, tenant), *_lint_ipv6_routing(policy, tenant)):
            lint.warn(owner, code, problem)
    lint.warnings.sort()
    lint.waived.sort()
    return lint


Finding = tuple[Tenant | Group | Rule | VM, str, Problem]


def _lint_overlap(policy: Policy, tenant: Tenant) -> list[Finding]:
    """Rules that allow nothing another rule of the tenant does not: written twice
    (`duplicate`, the later one), or covered by a wider one (`covered`: its sources,
    its destinations and its services each within the other's). Groups compare by
    the VMs they match now, ends outside the tenant by the addresses they name (a
    CIDR is within `external` and within a wider CIDR); a group that matches none is
    `empty-group`'s business."""
    rules = list(enumerate(tenant.rules, start=1))
    if tenant.default is Default.ALLOW:
        # The default allows every VM-to-VM connection: no such rule adds anything,
        # and only rules that name the outside are left to compare.
        rules = [(n, r) for n, r in rules if r.north_south]
    members = {n: _end(policy, tenant.name, n)
               for n in {r.src for r in tenant.rules} | {r.dst for r in tenant.rules}}
    allowed = {id(r): ServiceSet.of(r.services) for r in tenant.rules}
    out: list[Finding] = []
    for number, rule in rules:
        src, dst = members[rule.src], members[rule.dst]
        if not src or not dst:
            continue
        for other_number, other in rules:
            if other is rule:
                continue
            same = (members[other.src], members[other.dst], allowed[id(other)],
                    other.family) == (src, dst, allowed[id(rule)], rule.family)
            if same and other_number > number:
                continue  # the later of two equal rules is the one reported
            within = (_within(src, members[other.src]) and _within(dst, members[other.dst])
                      and not allowed[id(rule)].minus(allowed[id(other)])
                      and other.covers(rule.family or 4) and other.covers(rule.family or 6))
            if not within:
                continue
            where = _where(tenant, number, rule)
            them = f"rule {other_number} ({other.src} -> {other.dst}, line {other.line})"
            message = (f"{where}: allows exactly what {them} allows" if same else
                       f"{where}: allows nothing that {them} does not already allow")
            out.append((rule, "duplicate" if same else "covered",
                        Problem(policy.source, rule.line, message)))
            break
    return out


# What a rule end stands for: the VMs a group matches, or the addresses outside.
End = frozenset[str] | IPv4Network


def _end(policy: Policy, tenant: str, end: str) -> End:
    net = external_net(end)
    return net if net is not None else policy.members(tenant, end)


def _within(a: End, b: End) -> bool:
    if isinstance(a, IPv4Network):
        return isinstance(b, IPv4Network) and a.subnet_of(b)
    return isinstance(b, frozenset) and a <= b


def _where(tenant: Tenant, number: int, rule: Rule) -> str:
    return f"rule {number} of tenant {tenant.name} ({rule.src} -> {rule.dst})"


# Labels with a meaning to lint: a public VM should reach sensitive ones only
# through a tier in between.
PUBLIC = ("exposure", "public")
SENSITIVE = ("sensitivity", "high")


def _lint_unreachable(policy: Policy, tenant: Tenant) -> list[Finding]:
    """VMs of a default-deny tenant that no rule lets any other VM reach, nor the
    outside (a rule from outside reaches the VMs of its `to` with a floating IP)."""
    if tenant.default is Default.ALLOW:
        return []
    reachable: set[str] = set()
    for rule in tenant.rules:
        if rule.inbound:  # from outside: reaches the VMs with a floating IP
            reachable.update(b for b in policy.members(tenant.name, rule.dst)
                             if policy.vms[b].floating_ip is not None)
            continue
        talkers = _Talkers(policy, policy.members(tenant.name, rule.src))
        for b in policy.members(tenant.name, rule.dst) - reachable:
            if talkers.reach(b):
                reachable.add(b)
    return [
        (vm, "unreachable", Problem(policy.source, vm.line,
                                    f"vm {vm.name}: no rule lets any VM reach it (tenant "
                                    f"{tenant.name} denies by default)"))
        for vm in policy.vms_of(tenant.name) if vm.name not in reachable
    ]


def _lint_exposure(policy: Policy, tenant: Tenant) -> list[Finding]:
    """A VM labelled exposure: public that can open connections straight to one
    labelled sensitivity: high."""
    def labelled(kv: tuple[str, str]) -> set[str]:
        return {vm.name for vm in policy.vms_of(tenant.name) if vm.labels.get(kv[0]) == kv[1]}

    public, sensitive = labelled(PUBLIC), labelled(SENSITIVE)
    if not public or not sensitive:
        return []

    def pairs(src: frozenset[str] | set[str], dst: frozenset[str] | set[str]) -> list[str]:
        return sorted(
            f"{a} -> {b}" for a in src & public for b in dst & sensitive
            if _may_talk(policy, policy.vms[a], policy.vms[b])
        )

    if tenant.default is Default.ALLOW:
        found = pairs(public, sensitive)
        return [(tenant, "exposure", Problem(
            policy.source, tenant.line,
            f"tenant {tenant.name}: default allow lets public VMs reach sensitive ones "
            f"directly: {', '.join(found)}"))] if found else []
    warnings: list[Finding] = []
    for number, rule in enumerate(tenant.rules, start=1):
        found = pairs(policy.members(tenant.name, rule.src), policy.members(tenant.name, rule.dst))
        if found:
            where = f"rule {number} of tenant {tenant.name} ({rule.src} -> {rule.dst})"
            warnings.append((rule, "exposure", Problem(
                policy.source, rule.line,
                f"{where}: lets public VMs reach sensitive ones directly: {', '.join(found)}")))
    return warnings


def _lint_groups(policy: Policy, tenant: Tenant) -> list[Finding]:
    return [
        (group, "empty-group",
         Problem(policy.source, group.line, f"group {tenant.name}/{group.name}: matches no VM"))
        for group in tenant.groups.values()
        if not policy.members(tenant.name, group.name)
    ]


def _lint_rules(policy: Policy, tenant: Tenant) -> list[Finding]:
    warnings: list[Finding] = []
    for number, rule in enumerate(tenant.rules, start=1):
        trouble = _rule_trouble(policy, rule)
        if trouble:
            where = _where(tenant, number, rule)
            warnings.append((rule, "no-effect",
                             Problem(policy.source, rule.line, f"{where}: {trouble}")))
    return warnings


def _rule_trouble(policy: Policy, rule: Rule) -> str:
    """Why `rule` can never allow anything; "" when some VM pair may use it."""
    if rule.north_south:
        return _north_south_trouble(policy, rule)
    src = policy.members(rule.tenant, rule.src)
    dst = policy.members(rule.tenant, rule.dst)
    if not src:
        return f"from {_group_text(rule.src)} matches no VM, so the rule has no effect"
    if not dst:
        return f"to {_group_text(rule.dst)} matches no VM, so the rule has no effect"
    if rule.family == 6:
        return _rule_trouble6(policy, rule, src, dst)
    talkers = _Talkers(policy, src)
    if any(talkers.reach(b) for b in dst):
        return ""
    return (
        f"can never take effect: no VM of {_group_text(rule.src, short=True)} shares a "
        f"segment with another VM of {_group_text(rule.dst, short=True)}, and no such pair "
        "is in two routed segments (a segment without a gateway is never routed)"
    )


def _north_south_trouble(policy: Policy, rule: Rule) -> str:
    """Why a rule with an end outside the tenant can never allow anything: none of
    its VMs can go out (outbound) or be reached from outside (inbound)."""
    if rule.outbound:
        src = policy.members(rule.tenant, rule.src)
        if not src:
            return f"from {_group_text(rule.src)} matches no VM, so the rule has no effect"
        if any(can_go_out(policy, policy.vms[a]) for a in src):
            return ""
        tenant = policy.tenants[rule.tenant]
        why = ("none of them has a floating_ip and tenant "
               f"{tenant.name} has no snat") if tenant.snat is None else \
            "none of them is in a routed VLAN segment (gateway and vlan)"
        return (f"no VM of {_group_text(rule.src, short=True)} can go out: {why}, so the "
                "rule has no effect")
    dst = policy.members(rule.tenant, rule.dst)
    if not dst:
        return f"to {_group_text(rule.dst)} matches no VM, so the rule has no effect"
    if any(policy.vms[b].floating_ip is not None for b in dst):
        return ""
    return (f"no VM of {_group_text(rule.dst, short=True)} has a floating_ip, and only "
            "those can be reached from outside, so the rule has no effect")


def can_go_out(policy: Policy, vm: VM) -> bool:
    """Whether `vm` may open connections outside its tenant at all: a routed VLAN
    segment (only those reach the gateways), and an address to leave with."""
    seg = policy.segment_of(vm)
    if seg.gateway is None or seg.vlan is None:
        return False
    return vm.floating_ip is not None or policy.tenants[vm.tenant].snat is not None


class _Talkers:
    """A set of VMs of one tenant, counted by segment, so that "may one of them talk
    to b" (`_may_talk`) costs O(1) rather than O(set): lint stays linear in the
    size of a tenant instead of quadratic. In IPv6 (`family` 6) routed means a
    `gateway6`; the caller passes VMs with an IPv6 address only."""

    def __init__(self, policy: Policy, names: frozenset[str] | set[str], family: int = 4
                 ) -> None:
        self.policy, self.names, self.family = policy, names, family
        self.by_segment: dict[str, int] = {}
        self.routed = 0
        for name in names:
            vm = policy.vms[name]
            self.by_segment[vm.segment] = self.by_segment.get(vm.segment, 0) + 1
            self.routed += policy.segment_of(vm).routed_in(family)

    def reach(self, b: str) -> bool:
        """Some VM of the set other than `b` may talk to `b` (`_may_talk`)."""
        vm = self.policy.vms[b]
        mine = b in self.names  # b itself is no partner
        if self.by_segment.get(vm.segment, 0) - mine > 0:
            return True
        routed = self.policy.segment_of(vm).routed_in(self.family)
        return routed and self.routed - (mine and routed) > 0


def _may_talk(policy: Policy, a: VM, b: VM) -> bool:
    """DESIGN.md §2 reach, minus the rules: distinct VMs, same segment or both routed."""
    if a.name == b.name:
        return False
    if a.segment == b.segment:
        return True
    return policy.segment_of(a).routed and policy.segment_of(b).routed


def _group_text(group: str, short: bool = False) -> str:
    if group == ANY:
        return "any" if short else "any (every VM of the tenant)"
    return f"group {group}"


# ---- IPv6 ------------------------------------------------------------------------------


def _rule_trouble6(policy: Policy, rule: Rule, src: frozenset[str], dst: frozenset[str]
                   ) -> str:
    """Why a `family: ipv6` rule can never allow anything; "" when some pair may use
    it (both VMs with an IPv6 address, in one segment or two with a `gateway6`)."""
    tenant = policy.tenants[rule.tenant]
    if not any(seg.subnet6 is not None for seg in tenant.segments.values()):
        return (f"family ipv6, but no segment of tenant {tenant.name} has a subnet6, so "
                "the rule has no effect")
    src6 = {n for n in src if policy.vms[n].ip6 is not None}
    dst6 = {n for n in dst if policy.vms[n].ip6 is not None}
    for end, ends in ((rule.src, src6), (rule.dst, dst6)):
        if not ends:
            return (f"family ipv6, but no VM of {_group_text(end, short=True)} has an IPv6 "
                    "address (its segments have no subnet6), so the rule has no effect")
    talkers = _Talkers(policy, src6, family=6)
    if any(talkers.reach(b) for b in dst6):
        return ""
    return (
        f"can never take effect: no VM of {_group_text(rule.src, short=True)} shares a "
        f"segment with another VM of {_group_text(rule.dst, short=True)} in IPv6, and no such "
        "pair is in two segments with a gateway6 (a segment without one is never routed in "
        "IPv6)"
    )


def _lint_ipv6_routing(policy: Policy, tenant: Tenant) -> list[Finding]:
    """Rules of both families between VMs with IPv6 addresses in two routed segments,
    one of which has no `gateway6`: what IPv4 routes between them, IPv6 does not
    (`ipv4-only`). A rule written `family: ipv4` says so on purpose."""
    if tenant.default is Default.ALLOW or not any(
            seg.subnet6 is not None for seg in tenant.segments.values()):
        return []
    out: list[Finding] = []
    for number, rule in enumerate(tenant.rules, start=1):
        if rule.family is not None or rule.north_south:
            continue
        ends = [{policy.vms[n].segment for n in policy.members(tenant.name, end)
                 if policy.vms[n].ip6 is not None} for end in (rule.src, rule.dst)]
        pairs = sorted((a, b) for a in ends[0] for b in ends[1] if a != b
                       and _ipv4_only(tenant.segments[a], tenant.segments[b]))
        if not pairs:
            continue
        missing = sorted({n for pair in pairs for n in pair
                          if tenant.segments[n].gateway6 is None})
        shown = ", ".join(f"{a} -> {b}" for a, b in pairs[:3])
        more = f" (and {len(pairs) - 3} more)" if len(pairs) > 3 else ""
        out.append((rule, "ipv4-only", Problem(
            policy.source, rule.line,
            f"{_where(tenant, number, rule)}: VMs of segments {shown}{more} meet in IPv4 only: "
            f"IPv6 is routed between segments with a gateway6, and "
            f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} none (add one, "
            "or write the rule with family: ipv4)")))
    return out


def _ipv4_only(a: Segment, b: Segment) -> bool:
    """Two segments with IPv6 that IPv4 routes between and IPv6 does not."""
    return a.routed and b.routed and not (a.routed6 and b.routed6)
