"""Warnings about a valid policy: legal, but probably not what the operator meant.

Nothing here is an error (DESIGN.md §2: a group may match no VM; a rule that can
never take effect is a lint warning). Messages name the object as the loader does:
`group T/G` or `rule N of tenant T (FROM -> TO)`.
"""

from __future__ import annotations

from sdnctl.policy.model import ANY, VM, Default, Policy, Rule, Tenant
from sdnctl.yamlsrc import Problem


def lint_policy(policy: Policy) -> list[Problem]:
    """Every warning for `policy`, sorted by line then message."""
    warnings: list[Problem] = []
    for tenant in policy.tenants.values():
        warnings += _lint_groups(policy, tenant)
        warnings += _lint_rules(policy, tenant)
        warnings += _lint_unreachable(policy, tenant)
        warnings += _lint_exposure(policy, tenant)
    return sorted(warnings)


# Labels with a meaning to lint: a public VM should reach sensitive ones only
# through a tier in between.
PUBLIC = ("exposure", "public")
SENSITIVE = ("sensitivity", "high")


def _lint_unreachable(policy: Policy, tenant: Tenant) -> list[Problem]:
    """VMs of a default-deny tenant that no rule lets any other VM reach."""
    if tenant.default is Default.ALLOW:
        return []
    reachable: set[str] = set()
    for rule in tenant.rules:
        talkers = _Talkers(policy, policy.members(tenant.name, rule.src))
        for b in policy.members(tenant.name, rule.dst) - reachable:
            if talkers.reach(b):
                reachable.add(b)
    return [
        Problem(policy.source, vm.line,
                f"vm {vm.name}: no rule lets any VM reach it (tenant {tenant.name} "
                "denies by default)")
        for vm in policy.vms_of(tenant.name) if vm.name not in reachable
    ]


def _lint_exposure(policy: Policy, tenant: Tenant) -> list[Problem]:
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
        return [Problem(policy.source, tenant.line,
                        f"tenant {tenant.name}: default allow lets public VMs reach sensitive "
                        f"ones directly: {', '.join(found)}")] if found else []
    warnings = []
    for number, rule in enumerate(tenant.rules, start=1):
        found = pairs(policy.members(tenant.name, rule.src), policy.members(tenant.name, rule.dst))
        if found:
            where = f"rule {number} of tenant {tenant.name} ({rule.src} -> {rule.dst})"
            warnings.append(Problem(
                policy.source, rule.line,
                f"{where}: lets public VMs reach sensitive ones directly: {', '.join(found)}"))
    return warnings


def _lint_groups(policy: Policy, tenant: Tenant) -> list[Problem]:
    return [
        Problem(policy.source, group.line, f"group {tenant.name}/{group.name}: matches no VM")
        for group in tenant.groups.values()
        if not policy.members(tenant.name, group.name)
    ]


def _lint_rules(policy: Policy, tenant: Tenant) -> list[Problem]:
    warnings = []
    for number, rule in enumerate(tenant.rules, start=1):
        trouble = _rule_trouble(policy, rule)
        if trouble:
            where = f"rule {number} of tenant {tenant.name} ({rule.src} -> {rule.dst})"
            warnings.append(Problem(policy.source, rule.line, f"{where}: {trouble}"))
    return warnings


def _rule_trouble(policy: Policy, rule: Rule) -> str:
    """Why `rule` can never allow anything; "" when some VM pair may use it."""
    src = policy.members(rule.tenant, rule.src)
    dst = policy.members(rule.tenant, rule.dst)
    if not src:
        return f"from {_group_text(rule.src)} matches no VM, so the rule has no effect"
    if not dst:
        return f"to {_group_text(rule.dst)} matches no VM, so the rule has no effect"
    talkers = _Talkers(policy, src)
    if any(talkers.reach(b) for b in dst):
        return ""
    return (
        f"can never take effect: no VM of {_group_text(rule.src, short=True)} shares a "
        f"segment with another VM of {_group_text(rule.dst, short=True)}, and no such pair "
        "is in two routed segments (a segment without a gateway is never routed)"
    )


class _Talkers:
    """A set of VMs of one tenant, counted by segment, so that "may one of them talk
    to b" (`_may_talk`) costs O(1) rather than O(set): lint stays linear in the
    size of a tenant instead of quadratic."""

    def __init__(self, policy: Policy, names: frozenset[str] | set[str]) -> None:
        self.policy, self.names = policy, names
        self.by_segment: dict[str, int] = {}
        self.routed = 0
        for name in names:
            vm = policy.vms[name]
            self.by_segment[vm.segment] = self.by_segment.get(vm.segment, 0) + 1
            self.routed += policy.segment_of(vm).routed

    def reach(self, b: str) -> bool:
        """Some VM of the set other than `b` may talk to `b` (`_may_talk`)."""
        vm = self.policy.vms[b]
        mine = b in self.names  # b itself is no partner
        if self.by_segment.get(vm.segment, 0) - mine > 0:
            return True
        routed = self.policy.segment_of(vm).routed
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
