"""A switch's tables as a composition: its own local part plus shared parts.

What a hypervisor holds about a tenant is mostly the same on every hypervisor
hosting the tenant: a segment's ARP answers, the tenant's routes, the way to
each VM of a segment, the tenant's rules. Each such part is named by a key that
says exactly what it depends on, computed once, and shared (the same object) by
every switch whose plan names it:

    ("arp", segment id)                   ARP answers of a segment
    ("route", tenant)                     routes to the tenant's VMs
    ("l2", segment id, tunnel port|None)  how to reach each bound VM of a segment
    ("acl", tenant, active rule ids)      default, conjunctions, destination clauses
    ("acl-svc", tenant, active rule ids)  service clauses of those rules
    ("acl-src", switch, tenant)           source clauses of the tenant's VMs here
    ("paths", switch)                     groups (hypervisor) or label flows (fabric)
    ("exit", tenant)                      how the tenant's VMs go out (north–south)

and the local part: port security, self-ARP, conntrack, delivery, meters, trunk
and tunnel ingress, and a delivery flow per local VM that replaces that VM's
entry in its segment's "l2" part. A gateway holds its paths, and the "route" and
"l2" parts of every tenant that goes out (to reach its VMs from outside); its
local part is its uplinks, NAT and inbound rules (`sdnctl.compile.northsouth`).

`PartStore` keeps the parts; `plan_switch` says which parts a switch holds;
`compose_switch` builds its FlowSet. The incremental compiler drops the parts an
edit invalidates and recomposes only the switches that hold them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sdnctl.compile.acl import (
    acl_base_flows,
    acl_service_flows,
    acl_source_flows,
    acl_tenant_flows,
    active_rules,
)
from sdnctl.compile.arp import arp_segment_flows, arp_self_flows
from sdnctl.compile.conntrack import compile_ct_in, compile_ct_out, compile_deliver
from sdnctl.compile.context import NetworkView
from sdnctl.compile.dhcp import compile_dhcp
from sdnctl.compile.exits import ns_plan
from sdnctl.compile.l2 import l2_local_flows, l2_segment_flows, paths_part
from sdnctl.compile.nd import compile_nd
from sdnctl.compile.northsouth import exit_flows, gateway_flows, gateway_meters
from sdnctl.compile.port_security import compile_meters, compile_port_security
from sdnctl.compile.route import route_base_flows, route_tenant_flows
from sdnctl.flows import Flow, FlowSet, Fragment, Match
from sdnctl.pipeline import PIPELINE, REG_SEGMENT

PartKey = tuple[object, ...]


def plan_switch(view: NetworkView, switch: str) -> tuple[PartKey, ...]:
    """The parts `switch` holds besides its local part, in a fixed order."""
    keys: list[PartKey] = [("paths", switch)]
    if view.is_gateway(switch):
        for t in ns_plan(view).tenants.values():
            keys.append(("route", t.name))
            keys += [("l2", seg.id, None) for seg in t.segments]
        return tuple(keys)
    if not view.is_hypervisor(switch):
        return tuple(keys)
    local_segments = sorted({lv.segment.id for lv in view.local_vms(switch)})
    keys += [("arp", seg) for seg in local_segments]
    tunnel_port = view.tunnel_port_of(switch)
    for seg in view.carried_segments(switch):
        keys.append(("l2", seg.id, tunnel_port if seg.vni is not None else None))
    for tenant in view.local_tenants(switch):
        keys.append(("route", tenant))
        active = active_rules(view, switch, tenant)
        keys.append(("acl", tenant, active))
        keys.append(("acl-svc", tenant, active))
        keys.append(("acl-src", switch, tenant))
        if tenant in ns_plan(view).tenants:
            keys.append(("exit", tenant))
    return tuple(keys)


def replan_acl(view: NetworkView, plan: tuple[PartKey, ...], switch: str,
               tenants: set[str]) -> tuple[PartKey, ...]:
    """`plan` with the "acl" parts of `tenants` chosen anew (their rules or members
    changed, not what is bound here)."""
    active = {t: active_rules(view, switch, t) for t in tenants}
    return tuple(
        (key[0], key[1], active[str(key[1])])
        if key[0] in ("acl", "acl-svc") and key[1] in tenants else key
        for key in plan
    )


def part_exists(view: NetworkView, key: PartKey) -> bool:
    """Whether what `key` is about (a segment, a tenant, a switch) still exists."""
    kind = key[0]
    if kind in ("arp", "l2"):
        return key[1] in view.segments_by_id
    if kind in ("route", "acl", "acl-svc", "exit"):
        return key[1] in view.policy.tenants
    if kind == "acl-src":
        return key[2] in view.policy.tenants and key[1] in view.topology.switches
    return key[1] in view.topology.switches


def build_part(view: NetworkView, key: PartKey) -> Fragment:
    kind = key[0]
    if kind == "arp":
        return Fragment.build(key, arp_segment_flows(view, view.segments_by_id[_int(key[1])]))
    if kind == "l2":
        seg = view.segments_by_id[_int(key[1])]
        return Fragment.build(key, l2_segment_flows(view, seg, _opt_int(key[2])))
    if kind == "route":
        return Fragment.build(key, route_tenant_flows(view, str(key[1])))
    if kind == "acl":
        active = key[2]
        assert isinstance(active, tuple)
        return Fragment.build(key, acl_tenant_flows(view, str(key[1]), active))
    if kind == "acl-svc":
        active = key[2]
        assert isinstance(active, tuple)
        return Fragment.build(key, acl_service_flows(view, str(key[1]), active))
    if kind == "acl-src":
        return Fragment.build(key, acl_source_flows(view, str(key[1]), str(key[2])))
    if kind == "exit":
        return Fragment.build(key, exit_flows(view, str(key[1])))
    if kind == "paths":
        flows, groups = paths_part(view, str(key[1]))
        return Fragment.build(key, flows, groups)
    raise ValueError(f"unknown part {key!r}")


def build_local(view: NetworkView, switch: str) -> Fragment:
    if view.is_gateway(switch):
        edge = list(gateway_flows(view, switch))
        edge += [Flow(stage.name, 0, Match.of(), (), "base") for stage in PIPELINE]
        return Fragment.build(("local", switch), edge, (), gateway_meters(view, switch))
    flows: list[Flow] = []
    flows += compile_port_security(view, switch)
    flows += arp_self_flows(view, switch)
    flows += compile_ct_out(view, switch)
    flows += acl_base_flows(view, switch)
    flows += route_base_flows(view, switch)
    flows += l2_local_flows(view, switch)
    flows += compile_ct_in(view, switch)
    flows += compile_deliver(view, switch)
    flows += compile_dhcp(view, switch)
    flows += compile_nd(view, switch)
    # Every table ends in an explicit drop, so `explain` can always name a flow.
    flows += [Flow(stage.name, 0, Match.of(), (), "base") for stage in PIPELINE]
    return Fragment.build(("local", switch), flows, (), compile_meters(view, switch))


def subject_of(key: PartKey) -> tuple[object, object]:
    """(kind, the segment or tenant it is about); per-switch parts: the switch."""
    kind = key[0]
    if kind == "acl-src":
        return (kind, key[2])
    return (kind, key[1])


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _opt_int(value: object) -> int | None:
    return None if value is None else _int(value)


@dataclass
class PartStore:
    """Parts by key, and which switches hold each (to know whom an edit reaches)."""

    parts: dict[PartKey, Fragment] = field(default_factory=dict)
    holders: dict[PartKey, set[str]] = field(default_factory=dict)
    plans: dict[str, tuple[PartKey, ...]] = field(default_factory=dict)
    locals: dict[str, Fragment] = field(default_factory=dict)

    # (kind, segment or tenant) -> the keys held of that kind about it
    by_subject: dict[tuple[object, object], set[PartKey]] = field(default_factory=dict)
    _composed: dict[str, tuple[PartKey, ...]] = field(default_factory=dict)  # plan composed

    def get(self, view: NetworkView, key: PartKey) -> Fragment:
        part = self.parts.get(key)
        if part is None:
            part = self.parts[key] = build_part(view, key)
        return part

    def set_plans(self, plans: Mapping[str, tuple[PartKey, ...]]) -> None:
        """Adopt new plans; a part nobody holds any more is dropped. All holds are
        taken before any is released, so a part moving between switches stays."""
        released: list[tuple[str, PartKey]] = []
        for switch, plan in plans.items():
            old = self.plans.get(switch, ())
            if old == plan:
                continue
            for key in plan:
                users = self.holders.get(key)
                if users is None:
                    users = self.holders[key] = set()
                    self.by_subject.setdefault(subject_of(key), set()).add(key)
                users.add(switch)
            released += [(switch, key) for key in set(old) - set(plan)]
            self.plans[switch] = plan
        for switch, key in released:
            users = self.holders.get(key)
            if users is None:
                continue
            users.discard(switch)
            if not users:  # nobody holds it any more
                del self.holders[key]
                self.parts.pop(key, None)
                self.by_subject[subject_of(key)].discard(key)

    def compose(self, switch: str, previous: FlowSet | None = None,
                l2_replaced: set[object] | None = None) -> FlowSet:
        """The FlowSet of `switch` from its local part and its plan's parts (all built).

        With `previous` (its last FlowSet) and the segments whose "l2" part was
        replaced: what the local part replaces is counted again only if the local
        part or the plan changed, or the "l2" part of a segment with a VM here."""
        local = self.locals[switch]
        plan = self.plans[switch]
        parts = tuple(map(self.parts.__getitem__, plan))
        if (previous is not None and l2_replaced is not None and previous.local is local
                and self._composed.get(switch) is plan
                # a local VM's own segment is one of the switch's "arp" parts
                and not any(switch in self.holders.get(("arp", seg), ()) for seg in l2_replaced)):
            fs = FlowSet(switch, local, parts, previous.masked)
        else:
            fs = FlowSet(switch, local, parts, _masked(local, parts))
        self._composed[switch] = plan
        return fs

    def keys_about(self, kind: str, subject: object) -> set[PartKey]:
        return self.by_subject.get((kind, subject), set())

    def holders_of(self, keys: Iterable[PartKey]) -> set[str]:
        out: set[str] = set()
        for key in keys:
            out |= self.holders.get(key, set())
        return out


def compose_switch(view: NetworkView, store: PartStore, switch: str) -> FlowSet:
    """Plan `switch`, build its local part and any part it names not built yet."""
    plan = plan_switch(view, switch)
    for key in plan:
        store.get(view, key)
    store.set_plans({switch: plan})
    store.locals[switch] = build_local(view, switch)
    return store.compose(switch)


def _masked(local: Fragment, parts: tuple[Fragment, ...]) -> int:
    """How many flows of `parts` a local flow replaces: only a local VM's delivery
    flow does (its segment's "l2" part sends it towards its hypervisor)."""
    l2 = {p.key[1]: p.by_key for p in parts if p.key[0] == "l2"}
    masked = 0
    for f in local.flows:
        if f.stage == "l2_forward":
            by_key = l2.get(f.match.get(REG_SEGMENT))
            masked += by_key is not None and f.key in by_key
    return masked
