"""Connection logs in the `acl` stage: what the daemon records, and the meter that bounds it.

Two kinds of packet are copied to the controller, which writes one record each
(`sdnctl.live.connlog`):

- The first packet of a connection that a rule with `log: true` allows: the
  rule's conjunction flow has a twin one priority above it that also matches
  `ct_state=+new`, with the same actions plus `controller(meter_id=LOG_METER)`.
  The packet goes on as it would have; only the copy is metered. The flow's owner
  is the rule's, so the packet-in's cookie names the rule.
- The first packet of a connection that nothing allows, in a tenant with
  `log_denied: true`: one flow per tenant (and family-free: only IP reaches `acl`)
  just above the tenant's drop, matching `ct_state=+new`, whose only action is the
  metered copy, so the packet is still dropped. Its owner is the tenant's
  (`tenant:NAME`), like the drop's: the packet-in names the tenant, and the
  dropped-by-policy counters count it (a flow that forwards nothing is a drop).

A flood of denied packets costs the switch a meter lookup each and the controller
at most `LOG_PPS` packet-ins a second per switch (burst `LOG_BURST`); the meter's
own drop counter, read with each stats poll, says how many records were lost.
Established packets are never copied, so a long connection costs one record.

Both kinds live in the tenant's "acl-svc" part (`acl_service_flows`), which is
rebuilt on any change of the tenant's definition: turning logging on or off
rebuilds exactly that part. Cost: one flow per logged rule (two with IPv6), one
per tenant with `log_denied`, and one meter per hypervisor with VMs.
"""

from __future__ import annotations

from collections.abc import Iterator

from sdnctl.compile.context import NetworkView
from sdnctl.compile.exits import ns_plan
from sdnctl.flows import Action, Controller, Flow, Goto, Match, MatchValue, MeterBand
from sdnctl.pipeline import REG_SIDE, SIDE_OUT
from sdnctl.policy.model import Default, Rule

# Above the ND meters (0x30000 + port, ports < 0xFF00), below OVS's 2**18.
LOG_METER = 0x3FF00
# Records a second per switch, and the burst the meter lets through at once: a
# Python controller writes a few thousand a second, so this leaves it most of its time.
LOG_PPS, LOG_BURST = 100, 200
PRIO_LOGGED_RULE = 151  # one above a rule's conjunction flow (acl.PRIO_RULE)
PRIO_LOGGED_DENY = 102  # above the tenant's drop (100) and revocation (101), below rules
ETH_IP, ETH_IP6 = 0x0800, 0x86DD


def log_copy() -> Controller:
    return Controller(LOG_METER)


def rule_logs(rule: Rule, rules: tuple[Rule, ...]) -> bool:
    """Whether `rule`, or a rule written the same way (the compiler keeps one of
    them), asks for logging."""
    return any(r.log and _same(r, rule) for r in rules)


def _same(a: Rule, b: Rule) -> bool:
    return (a.src, a.dst, a.services, a.family) == (b.src, b.dst, b.services, b.family)


def logged_rule_flows(view: NetworkView, rule: Rule, cid: int, ip6: bool,
                      allowed: tuple[Action, ...], owner: str) -> Iterator[Flow]:
    """A rule with `log` (or its twin written the same way): the twin of its
    conjunction flow (`conj_id=cid`) for new connections, in each family the rule
    has flows in (`ip6`: the tenant carries IPv6), with the actions `allowed` plus
    the metered copy before the goto."""
    if not rule_logs(rule, view.policy.tenants[rule.tenant].rules):
        return
    *head, last = allowed
    actions = (*head, log_copy(), last) if isinstance(last, Goto) else (*allowed, log_copy())
    # North–south rules are IPv4 only (sdnctl.compile.acl).
    families = ((ETH_IP, rule.covers(4)),
                (ETH_IP6, ip6 and rule.covers(6) and not rule.north_south))
    for eth in (e for e, wanted in families if wanted):
        yield Flow("acl", PRIO_LOGGED_RULE,
                   Match.of(conj_id=cid, eth_type=eth, ct_state="+new+trk"), actions, owner)


def denied_log_flows(view: NetworkView, tenant: str) -> Iterator[Flow]:
    """A tenant with `log_denied`: its new connections that no rule allowed are
    copied (metered) before they are dropped."""
    t = view.policy.tenants[tenant]
    if not t.log_denied:
        return
    match: dict[str, MatchValue] = {"metadata": (view.tenant_ids[tenant], 0xFFFF_FFFF)}
    if t.default is Default.ALLOW:
        if tenant not in ns_plan(view).tenants:
            return  # it denies nothing
        match[REG_SIDE] = SIDE_OUT  # it denies only what goes out without a rule
    yield Flow("acl", PRIO_LOGGED_DENY, Match.of(match, ct_state="+new+trk"),
               (log_copy(),), f"tenant:{tenant}")


def logging_meters(view: NetworkView, switch: str) -> Iterator[MeterBand]:
    """The log meter of a hypervisor with VMs (there whether or not anything logs,
    so turning logging on changes no switch's meters)."""
    if view.local_vms(switch):
        yield MeterBand(LOG_METER, LOG_PPS, LOG_BURST, "base", pktps=True)
