"""Stage `acl`: stateful micro-segmentation.

Established and related packets pass; invalid ones drop. A new connection passes
when its tenant's default is `allow`, or when some rule matches it; it is then
committed in the source VM's zone. Otherwise the tenant's own drop flow (owner
`tenant:NAME`) drops it, so the daemon can count denials per tenant. A rule is one
OpenFlow conjunction of three clauses (source VM, destination VM, service), so a
rule between groups of N and M VMs with K services costs N + M + K flows, never
N × M × K.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterator

from sdnctl.compile.context import NetworkView
from sdnctl.flows import Conjunction, Ct, Flow, Goto, Match, MatchValue
from sdnctl.pipeline import REG_ZONE
from sdnctl.policy.model import Default, Proto, Rule, Service

ETH_IP = 0x0800
PRIO_INVALID = 300
PRIO_TRACKED = 200
PRIO_RULE = 150
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
    return f"{rule.tenant}|{rule.src}|{rule.dst}|{','.join(map(str, rule.services))}"


def rule_owner(rule: Rule) -> str:
    return f"rule:{rule.tenant}:{rule.src}->{rule.dst}"


def compile_acl(view: NetworkView, switch: str) -> Iterator[Flow]:
    local = view.local_vms(switch)
    if not local:
        return
    commit = (Ct(zone=REG_ZONE, commit=True), Goto("l3_route"))
    yield Flow("acl", PRIO_INVALID, Match.of(ct_state="+inv+trk"), (), "base")
    yield Flow("acl", PRIO_TRACKED, Match.of(ct_state="+est+trk"), (Goto("l3_route"),), "base")
    yield Flow("acl", PRIO_TRACKED, Match.of(ct_state="+rel+trk"), (Goto("l3_route"),), "base")

    local_names = {lv.vm.name for lv in local}
    rules: list[Rule] = []
    for tenant_name in view.local_tenants(switch):
        tenant = view.policy.tenants[tenant_name]
        tid = view.tenant_ids[tenant_name]
        if tenant.default is Default.ALLOW:
            yield Flow(
                "acl", PRIO_TENANT_DEFAULT,
                Match.of(metadata=(tid, 0xFFFF_FFFF), eth_type=ETH_IP, ct_state="+new+trk"),
                commit, f"tenant:{tenant_name}",
            )
            continue  # its rules allow nothing the default does not
        # What no rule allows ends here rather than in the shared priority-0 drop: the
        # tenant owns the flow, so its counters are the tenant's dropped-by-policy figure.
        yield Flow("acl", PRIO_TENANT_DEFAULT, Match.of(metadata=(tid, 0xFFFF_FFFF)), (),
                   f"tenant:{tenant_name}")
        rules.extend(tenant.rules)

    # Clause flows with the same match are one flow carrying several conjunctions.
    clauses: dict[Match, list[Conjunction]] = defaultdict(list)
    owners: dict[Match, set[str]] = defaultdict(set)
    ids = conjunction_ids(rules)
    for rule in unique_rules(rules):
        tid = view.tenant_ids[rule.tenant]
        srcs = sorted(view.members(rule.tenant, rule.src) & local_names)
        dsts = sorted(view.members(rule.tenant, rule.dst))
        if not srcs or not dsts:
            continue  # nobody here can open such a connection
        cid = ids[rule]
        tenant_match = {"metadata": (tid, 0xFFFF_FFFF), "eth_type": ETH_IP}
        # (match, owner): a VM's clause belongs to the VM, a service clause to the rule.
        dims: list[list[tuple[Match, str]]] = [
            [(Match.of(tenant_match, ipv4_src=str(view.policy.vms[n].ip)), f"vm:{n}")
             for n in srcs],
            [(Match.of(tenant_match, ipv4_dst=str(view.policy.vms[n].ip)), f"vm:{n}")
             for n in dsts],
            [(Match.of(m), rule_owner(rule)) for s in rule.services for m in service_matches(s)],
        ]
        for clause, matches in enumerate(dims, start=1):
            for m, owner in dict.fromkeys(matches):
                clauses[m].append(Conjunction(cid, clause, len(dims)))
                owners[m].add(owner)
        yield Flow(
            "acl", PRIO_RULE, Match.of(conj_id=cid, eth_type=ETH_IP), commit, rule_owner(rule)
        )
    for m, conjs in clauses.items():
        # A service clause shared by several rules is named after the first of them.
        yield Flow("acl", PRIO_RULE, m, tuple(conjs), sorted(owners[m])[0])
