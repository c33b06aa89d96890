"""Stage `acl`: stateful micro-segmentation.

Replies and related packets pass; invalid ones drop. A packet in a connection's
original direction, new or established, passes when its tenant's default is
`allow` or some rule matches it: so an edit that removes a rule cuts the
connections it allowed, not only new ones (revocation). An allowed packet is
committed in the source VM's zone with ct_mark `MARK_ALLOWED`; an established one
that is no longer allowed is committed with `MARK_REVOKED` and dropped, and the
`deliver` stage then drops the connection's replies too. What is not allowed
ends in the tenant's own drop flow (owner `tenant:NAME`), so the daemon can count
denials per tenant. A rule is one
OpenFlow conjunction of three clauses (source VM, destination VM, service), so a
rule between groups of N and M VMs with K services costs N + M + K flows, never
N × M × K.

IPv6 has the same flows beside IPv4's (eth_type 0x86dd, `ipv6_src`/`ipv6_dst`
clauses with the VMs' `ip6`, ICMPv6 echo for `icmp`) in tenants with a segment
that has `subnet6`, and a rule's conjunction then gets clauses of both families
(a packet is of one family, so it completes the conjunction with that family's
clauses only). A rule with `family` gets that family's flows only.

North–south (IPv4 only): in a tenant that goes out (`sdnctl.compile.exits`),
`ct_out` has marked a packet for an address outside the tenant with reg4 =
SIDE_OUT. The tenant's default then covers reg4 = 0 only, and a rule to an
external end is a conjunction like the others whose destination clause is
"marked" (and inside the CIDR, for a CIDR end); its source clauses name only
VMs that can go out. Rules from an external end are judged on the gateways
(`sdnctl.compile.northsouth`), where such connections start.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterator
from typing import cast

from sdnctl.compile.connlog import denied_log_flows, logged_rule_flows
from sdnctl.compile.context import NetworkView
from sdnctl.compile.exits import may_go_out, ns_plan
from sdnctl.flows import Conjunction, Ct, Flow, Goto, Match, MatchValue, cidr
from sdnctl.pipeline import MARK_ALLOWED, MARK_REVOKED, REG_SIDE, REG_ZONE, SIDE_INSIDE, SIDE_OUT
from sdnctl.policy.model import Default, Proto, Rule, Service

ETH_IP = 0x0800
ETH_IP6 = 0x86DD
IPPROTO6 = {Proto.TCP: 6, Proto.UDP: 17, Proto.ICMP: 58}
ICMP6_ECHO_REQUEST = 128
PRIO_INVALID = 300
PRIO_TRACKED = 200
PRIO_RULE = 150
PRIO_TENANT_REVOKE = 101
PRIO_TENANT_DEFAULT = 100
IPPROTO = {Proto.TCP: 6, Proto.UDP: 17, Proto.ICMP: 1}
ICMP_ECHO_REQUEST = 8


def port_range_masks(lo: int, hi: int) -> list[tuple[int, int]]:
    """Cover [lo, hi] exactly with (value, mask) prefixes of a 16-bit port.

    >>> port_range_masks(8000, 8003)
    [(8000, 65532)]
    """
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16  # largest aligned block starting at lo
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, 0xFFFF & ~(size - 1)))
        lo += size
    return out


def service_matches(service: Service) -> list[dict[str, MatchValue]]:
    """The matches that together select exactly the first packet of `service`."""
    if service.proto is Proto.ANY:
        return [{"eth_type": ETH_IP}]
    base: dict[str, MatchValue] = {"eth_type": ETH_IP, "ip_proto": IPPROTO[service.proto]}
    if service.proto is Proto.ICMP:
        return [dict(base, icmpv4_type=ICMP_ECHO_REQUEST)]
    field = "tcp_dst" if service.proto is Proto.TCP else "udp_dst"
    out: list[dict[str, MatchValue]] = []
    for value, mask in port_range_masks(service.port_lo, service.port_hi):
        out.append(dict(base, **{field: value if mask == 0xFFFF else (value, mask)}))
    return out


def service_matches6(service: Service) -> list[dict[str, MatchValue]]:
    """`service_matches` in IPv6: `icmp` is ICMPv6 echo request."""
    out = []
    for m in service_matches(service):
        m6: dict[str, MatchValue] = dict(m, eth_type=ETH_IP6)
        if service.proto is Proto.ICMP:
            del m6["icmpv4_type"]
            m6.update(ip_proto=IPPROTO6[Proto.ICMP], icmpv6_type=ICMP6_ECHO_REQUEST)
        out.append(m6)
    return out


def has_ip6(view: NetworkView, tenant: str) -> bool:
    """Whether the tenant carries IPv6 at all (a segment with subnet6)."""
    return any(seg.subnet6 is not None
               for seg in view.policy.tenants[tenant].segments.values())


def conjunction_ids(rules: list[Rule]) -> dict[Rule, int]:
    """Stable ids derived from each rule's tenant, source and destination.

    Not from its services: editing a rule's services then keeps its id, so only the
    service clauses change on the switch, not every VM clause that names the id.
    Adding a rule never renumbers the others; collisions resolve deterministically.
    """
    ids: dict[Rule, int] = {}
    used: set[int] = set()
    ordinal: dict[str, int] = defaultdict(int)
    for rule in unique_rules(rules):
        pair = f"{rule.tenant}|{rule.src}|{rule.dst}"
        seed = f"{pair}|{ordinal[pair]}"  # a second rule for the same pair
        ordinal[pair] += 1
        cid = zlib.crc32(seed.encode()) & 0x7FFF_FFFF or 1
        while cid in used:
            cid = (cid + 1) & 0x7FFF_FFFF or 1
        used.add(cid)
        ids[rule] = cid
    return ids


def unique_rules(rules: list[Rule]) -> list[Rule]:
    """Rules sorted by content, a rule written twice kept once (it allows nothing more)."""
    by_key = {_rule_key(r): r for r in sorted(rules, key=lambda r: r.line, reverse=True)}
    return [by_key[k] for k in sorted(by_key)]


def _rule_key(rule: Rule) -> str:
    family = f"|ipv{rule.family}" if rule.family is not None else ""
    return f"{rule.tenant}|{rule.src}|{rule.dst}|{','.join(map(str, rule.services))}{family}"


def rule_owner(rule: Rule) -> str:
    return f"rule:{rule.tenant}:{rule.src}->{rule.dst}"


def rule_ids(view: NetworkView) -> dict[Rule, int]:
    """Conjunction ids of every rule of the policy, unique network-wide: a tenant's
    ACL part is shared by switches that host different other tenants."""
    ids = cast("dict[Rule, int] | None", view.memo.get("rule_ids"))  # set only here
    if ids is None:
        ids = conjunction_ids([r for t in view.policy.tenants.values() for r in t.rules])
        view.memo["rule_ids"] = ids
    return ids


def tenant_rules(view: NetworkView, tenant: str) -> list[Rule]:
    key = f"rules:{tenant}"
    rules = cast("list[Rule] | None", view.memo.get(key))  # set only here
    if rules is None:
        rules = unique_rules(list(view.policy.tenants[tenant].rules))
        view.memo[key] = rules
    return rules


def compiled_here(view: NetworkView, tenant: str, rule: Rule) -> bool:
    """Whether hypervisors judge `rule`: rules between VMs in a tenant whose
    default is deny, and rules to external ends in a tenant that goes out."""
    if rule.inbound:
        return False  # judged on the gateways
    if rule.outbound:
        return tenant in ns_plan(view).tenants
    return view.policy.tenants[tenant].default is Default.DENY


def has_destination(view: NetworkView, tenant: str, rule: Rule) -> bool:
    """Whether a connection allowed by `rule` has somewhere to go."""
    return rule.outbound or bool(view.members(tenant, rule.dst))


def sources(view: NetworkView, tenant: str, rule: Rule) -> frozenset[str]:
    """The VMs that may open connections by `rule` (to go out, a VM needs a floating
    IP or its tenant's pool)."""
    members = view.members(tenant, rule.src)
    if not rule.outbound:
        return members
    key = f"sources:{tenant}:{rule_ids(view)[rule]}"  # every switch asks: once per compile
    got = cast("frozenset[str] | None", view.memo.get(key))  # set only here
    if got is None:
        got = frozenset(n for n in members if may_go_out(view, view.policy.vms[n]))
        view.memo[key] = got
    return got


def acl_base_flows(view: NetworkView, switch: str) -> Iterator[Flow]:
    """Local: replies and related pass, invalid drops (where VMs are). Established
    packets in the original direction go on to the rules, like new ones."""
    if not view.local_vms(switch):
        return
    yield Flow("acl", PRIO_INVALID, Match.of(ct_state="+inv+trk"), (), "base")
    yield Flow("acl", PRIO_TRACKED, Match.of(ct_state="+est+rpl+trk"), (Goto("l3_route"),),
               "base")
    yield Flow("acl", PRIO_TRACKED, Match.of(ct_state="+rel+trk"), (Goto("l3_route"),), "base")


def active_rules(view: NetworkView, switch: str, tenant: str) -> tuple[int, ...]:
    """Ids of the tenant's rules that a VM bound on `switch` may open connections
    by (a source here, some destination anywhere). Which of a tenant's shared ACL
    parts a switch holds depends on nothing else."""
    here = {lv.vm.name for lv in view.local_tenant_vms(switch, tenant)}
    ids = rule_ids(view)
    return tuple(sorted(
        ids[rule] for rule in tenant_rules(view, tenant)
        if compiled_here(view, tenant, rule)
        and not here.isdisjoint(sources(view, tenant, rule))
        and has_destination(view, tenant, rule)
    ))


def acl_tenant_flows(view: NetworkView, tenant: str, active: tuple[int, ...]) -> Iterator[Flow]:
    """Shared by every switch where the same rules of `tenant` are active: the
    tenant's default, and per active rule its conjunction flow and its destination
    clauses (clause flows with the same match are one flow carrying several
    conjunctions). The service clauses are a part of their own
    (`acl_service_flows`: a change of services rebuilds only those), the source
    clauses each switch's own (`acl_source_flows`). Every match names the tenant,
    so tenants never share a flow and a tenant's part is the same whoever else a
    switch hosts."""
    tid = view.tenant_ids[tenant]
    tenant_match: dict[str, MatchValue] = {"metadata": (tid, 0xFFFF_FFFF), "eth_type": ETH_IP}
    ip6 = has_ip6(view, tenant)
    tenant_match6: dict[str, MatchValue] = {"metadata": (tid, 0xFFFF_FFFF), "eth_type": ETH_IP6}
    goes_out = tenant in ns_plan(view).tenants
    if view.policy.tenants[tenant].default is Default.ALLOW:
        # Between its VMs only: what goes out needs a rule, as in any tenant.
        inside = {REG_SIDE: SIDE_INSIDE} if goes_out else {}
        yield Flow("acl", PRIO_TENANT_DEFAULT, Match.of({**tenant_match, **inside}), _COMMIT,
                   f"tenant:{tenant}")
        if ip6:
            yield Flow("acl", PRIO_TENANT_DEFAULT, Match.of(tenant_match6), _COMMIT,
                       f"tenant:{tenant}")
        if not goes_out:
            return  # its rules allow nothing the default does not
        out = {**tenant_match, REG_SIDE: SIDE_OUT}
        yield Flow("acl", PRIO_TENANT_DEFAULT, Match.of(out), (), f"tenant:{tenant}")
        yield Flow("acl", PRIO_TENANT_REVOKE, Match.of(out, ct_state="+est+trk"), _REVOKE,
                   f"tenant:{tenant}")
        yield from _rule_flows(view, tenant, active, tenant_match, tenant_match6, ip6)
        return
    # What no rule allows ends here rather than in the shared priority-0 drop: the
    # tenant owns the flow, so its counters are the tenant's dropped-by-policy figure.
    yield Flow("acl", PRIO_TENANT_DEFAULT, Match.of(metadata=(tid, 0xFFFF_FFFF)), (),
               f"tenant:{tenant}")
    # An established connection no rule allows any more: marked, so its replies drop
    # where they are delivered, and dropped.
    yield Flow("acl", PRIO_TENANT_REVOKE, Match.of(tenant_match, ct_state="+est+trk"),
               (Ct(zone=REG_ZONE, commit=True, mark=MARK_REVOKED),), f"tenant:{tenant}")
    if ip6:
        yield Flow("acl", PRIO_TENANT_REVOKE, Match.of(tenant_match6, ct_state="+est+trk"),
                   _REVOKE, f"tenant:{tenant}")
    yield from _rule_flows(view, tenant, active, tenant_match, tenant_match6, ip6)


def _rule_flows(view: NetworkView, tenant: str, active: tuple[int, ...],
                tenant_match: dict[str, MatchValue], tenant_match6: dict[str, MatchValue],
                ip6: bool) -> Iterator[Flow]:
    """Per active rule: its conjunction flows and its destination clauses."""
    clauses = Clauses()
    ids = rule_ids(view)
    wanted = set(active)
    for rule in tenant_rules(view, tenant):
        cid = ids[rule]
        if cid not in wanted:
            continue
        if rule.outbound:  # IPv4 only; the destination is "marked, in the CIDR"
            net = rule.dst_net
            assert net is not None
            dst = {**tenant_match, REG_SIDE: SIDE_OUT}
            if net.prefixlen:
                dst["ipv4_dst"] = cidr(net)
            clauses.add(Match.of(dst), Conjunction(cid, 2, 3), rule_owner(rule))
            yield Flow("acl", PRIO_RULE, Match.of(conj_id=cid, eth_type=ETH_IP), _COMMIT,
                       rule_owner(rule))
            continue
        if ip6 and rule.covers(6):
            for n in sorted(view.members(tenant, rule.dst)):
                vm = view.policy.vms[n]
                if vm.ip6 is not None:
                    clauses.add(Match.of(tenant_match6, ipv6_dst=str(vm.ip6)),
                                Conjunction(cid, 2, 3), f"vm:{n}")
            yield Flow("acl", PRIO_RULE, Match.of(conj_id=cid, eth_type=ETH_IP6), _COMMIT,
                       rule_owner(rule))
        if not rule.covers(4):
            continue
        for n in sorted(view.members(tenant, rule.dst)):
            clauses.add(Match.of(tenant_match, ipv4_dst=str(view.policy.vms[n].ip)),
                        Conjunction(cid, 2, 3), f"vm:{n}")
        yield Flow(
            "acl", PRIO_RULE, Match.of(conj_id=cid, eth_type=ETH_IP), _COMMIT, rule_owner(rule)
        )
    yield from clauses.flows()


def acl_service_flows(view: NetworkView, tenant: str, active: tuple[int, ...]
                      ) -> Iterator[Flow]:
    """The service clauses of the tenant's active rules (shared like the rest), and
    its connection-log flows (rebuilt with any change of the tenant)."""
    tid = view.tenant_ids[tenant]
    ip6 = has_ip6(view, tenant)
    clauses = Clauses()
    ids = rule_ids(view)
    wanted = set(active)
    for rule in tenant_rules(view, tenant):
        cid = ids[rule]
        if cid not in wanted:
            continue
        yield from logged_rule_flows(view, rule, cid, ip6, _COMMIT, rule_owner(rule))
        for s in rule.services:
            if ip6 and rule.covers(6) and not rule.outbound:
                for m in service_matches6(s):
                    clauses.add(Match.of(m, metadata=(tid, 0xFFFF_FFFF)),
                                Conjunction(cid, 3, 3), rule_owner(rule))
            if not rule.covers(4):
                continue
            for m in service_matches(s):
                clauses.add(Match.of(m, metadata=(tid, 0xFFFF_FFFF)), Conjunction(cid, 3, 3),
                            rule_owner(rule))
    yield from clauses.flows()
    yield from denied_log_flows(view, tenant)  # connection log (sdnctl.compile.connlog)


def acl_source_flows(view: NetworkView, switch: str, tenant: str) -> Iterator[Flow]:
    """Per switch: the source clauses of the tenant's active rules, one per VM of the
    tenant bound here."""
    tid = view.tenant_ids[tenant]
    tenant_match: dict[str, MatchValue] = {"metadata": (tid, 0xFFFF_FFFF), "eth_type": ETH_IP}
    tenant_match6: dict[str, MatchValue] = {"metadata": (tid, 0xFFFF_FFFF), "eth_type": ETH_IP6}
    ip6 = has_ip6(view, tenant)
    here = {lv.vm.name for lv in view.local_tenant_vms(switch, tenant)}
    clauses = Clauses()
    ids = rule_ids(view)
    for rule in tenant_rules(view, tenant):
        if not compiled_here(view, tenant, rule) or not has_destination(view, tenant, rule):
            continue  # judged elsewhere, or nobody to open a connection to
        for n in sorted(sources(view, tenant, rule) & here):
            vm = view.policy.vms[n]
            if ip6 and rule.covers(6) and vm.ip6 is not None and not rule.outbound:
                clauses.add(Match.of(tenant_match6, ipv6_src=str(vm.ip6)),
                            Conjunction(ids[rule], 1, 3), f"vm:{n}")
            if not rule.covers(4):
                continue
            clauses.add(Match.of(tenant_match, ipv4_src=str(view.policy.vms[n].ip)),
                        Conjunction(ids[rule], 1, 3), f"vm:{n}")
    yield from clauses.flows()


# Every allowed packet of the original direction is (re)committed: that is what
# clears a revoked mark when a rule allows the connection again.
_COMMIT = (Ct(zone=REG_ZONE, commit=True, mark=MARK_ALLOWED), Goto("l3_route"))
_REVOKE = (Ct(zone=REG_ZONE, commit=True, mark=MARK_REVOKED),)


class Clauses:
    """Clause flows by match; several conjunctions share one flow, named after the
    first of its owners."""

    def __init__(self) -> None:
        self._conj: dict[Match, list[Conjunction]] = defaultdict(list)
        self._owners: dict[Match, set[str]] = defaultdict(set)

    def add(self, match: Match, conj: Conjunction, owner: str) -> None:
        if conj not in self._conj[match]:
            self._conj[match].append(conj)
        self._owners[match].add(owner)

    def flows(self) -> Iterator[Flow]:
        for m, conjs in self._conj.items():
            yield Flow("acl", PRIO_RULE, m, tuple(conjs), sorted(self._owners[m])[0])
