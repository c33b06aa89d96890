"""`sdnctl plan` for the outside: what an edit changes between VMs and external
addresses, exactly, like `sdnctl.verify.plan` does between VMs.

External addresses are cut into *regions* by every CIDR the tenant's rules name
in either policy: each CIDR less the smaller CIDRs inside it, and the rest of the
outside ("elsewhere"). All addresses of a region are treated alike by both
policies, so one address stands for it. For each VM (by class: tenant, segment,
the rule ends naming it, whether it can go out, its floating IP), the services
it may open to a region, and (with a floating IP) the services a region may open
to it, are compared as whole `ServiceSet`s (`sdnctl.verify.semantics`:
`reach_out`, `reach_in`).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from sdnctl.policy.model import ANY, Policy, Service, external_net
from sdnctl.policy.services import EMPTY, ServiceRange, ServiceSet
from sdnctl.verify.plan import Change
from sdnctl.verify.semantics import is_external, takes_part

ELSEWHERE = "external"
# Addresses tried for "elsewhere" (documentation and benchmark ranges first).
_ELSEWHERE_CANDIDATES = ("192.0.2.1", "198.18.0.1", "100.64.0.1", "203.0.114.1", "8.8.8.8",
                         "1.1.1.1")


@dataclass(frozen=True, slots=True)
class Region:
    label: str
    address: IPv4Address  # stands for every address of the region


def regions(nets: set[IPv4Network], inside: list[IPv4Network]) -> list[Region]:
    """The regions the CIDRs `nets` cut the outside into (each with an address of
    its own), and the rest."""
    out: list[Region] = []
    for net in sorted(nets, key=lambda n: (n.prefixlen, n)):
        children = [c for c in nets if c != net and c.subnet_of(net)]
        left = [net]
        for child in children:
            left = [piece for r in left
                    for piece in (r.address_exclude(child) if child.subnet_of(r) else [r])]
        left = [r for r in left if not any(r.subnet_of(s) for s in inside)]
        if not left:
            continue
        label = str(net) if not children else (
            f"{net} outside {', '.join(str(c) for c in sorted(children))}")
        out.append(Region(label, left[0].network_address + (1 if left[0].prefixlen < 31
                                                              else 0)))
    for candidate in _ELSEWHERE_CANDIDATES:
        ip = IPv4Address(candidate)
        if not any(ip in n for n in nets) and not any(ip in s for s in inside):
            out.append(Region(ELSEWHERE, ip))
            break
    return out


class _Side:
    """One policy's view of a tenant's VMs: each VM's class and what a class may
    open to (or accept from) a region."""

    def __init__(self, policy: Policy, tenant: str) -> None:
        self.policy = policy
        t = policy.tenants.get(tenant)
        self.rules = list(t.rules) if t is not None else []
        ends = sorted({e for r in self.rules for e in (r.src, r.dst)
                       if external_net(e) is None and e != ANY})
        members = {g: policy.members(tenant, g) for g in ends}
        self.key: dict[str, tuple[object, ...]] = {}
        for vm in policy.vms_of(tenant):
            groups = tuple(g for g in ends if vm.name in members[g])
            self.key[vm.name] = (vm.segment, groups, vm.host is not None
                                 and takes_part(policy, vm), vm.floating_ip is not None)
        self.rep = {k: n for n, k in sorted(self.key.items(), reverse=True)}

    def label(self, name: str) -> str:
        segment, groups = self.key[name][0], self.key[name][1]
        assert isinstance(groups, tuple)
        return f"{segment}[{','.join(groups)}]" if groups else str(segment)

    def allowed(self, name: str, region: Region, inbound: bool) -> ServiceSet:
        key = self.key.get(name)
        if key is None or not key[2] or (inbound and not key[3]):
            return EMPTY
        vm = self.policy.vms[name]
        if not is_external(self.policy, vm.tenant, region.address):
            return EMPTY
        groups = {ANY, *key[1]}  # type: ignore[misc]
        services: list[Service] = []
        for rule in self.rules:
            far, near = (rule.src_net, rule.dst) if inbound else (rule.dst_net, rule.src)
            if far is not None and region.address in far and near in groups:
                services += rule.services
        return ServiceSet.of(services)


def outside_changes(old: Policy, new: Policy, tenants: set[str]) -> tuple[Change, ...]:
    found: dict[tuple[bool, ServiceRange, str, str, str], list[tuple[str, str]]] = {}
    for tenant in sorted(tenants):
        rules = [r for p in (old, new) if tenant in p.tenants for r in p.tenants[tenant].rules]
        if not any(r.north_south for r in rules):
            continue
        nets = {n for r in rules for n in (r.src_net, r.dst_net)
                if n is not None and n.prefixlen}
        inside = [s.subnet for p in (old, new) if tenant in p.tenants
                  for s in p.tenants[tenant].segments.values()]
        before, after = _Side(old, tenant), _Side(new, tenant)
        classes: dict[tuple[object, object], list[str]] = {}
        for name in sorted(before.key.keys() | after.key.keys()):
            classes.setdefault((before.key.get(name), after.key.get(name)), []).append(name)
        for region in regions(nets, inside):
            for members in classes.values():
                one = members[0]
                label = (after if one in after.key else before).label(one)
                for inbound in (False, True):
                    was = before.allowed(one, region, inbound)
                    now = after.allowed(one, region, inbound)
                    if was == now:
                        continue
                    src, dst = (region.label, label) if inbound else (label, region.label)
                    pairs = [(region.label, n) if inbound else (n, region.label)
                             for n in members]
                    for added, diff in ((True, now.minus(was)), (False, was.minus(now))):
                        for r in diff.ranges():
                            found.setdefault((added, r, tenant, src, dst), []).extend(pairs)
    return tuple(Change(added, r, t, s, d, tuple(sorted(p)))
                 for (added, r, t, s, d), p in sorted(
                     found.items(), key=lambda kv: (kv[0][2], kv[0][3], kv[0][4],
                                                    not kv[0][0], kv[0][1])))
