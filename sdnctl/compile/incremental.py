"""compile_network with a memory: an edit recomputes what it changed, once.

A switch's FlowSet is its local part plus shared parts (`sdnctl.compile.parts`),
each named by what it depends on. When the topology and the down ports are
unchanged, an edit is a set of changed VMs (in the policy or in their binding)
and changed tenant definitions, and it invalidates exactly:

- a tenant's rules' services only: its "acl-svc" parts (service clauses);
- a tenant's rules, groups or default: its "acl" and "acl-svc" parts and its
  source clauses ("acl-src"), and which of its rules are active on the switches
  hosting it;
- a tenant's segments: everything about the tenant, and the local parts of the
  switches hosting it;
- a VM (added, removed, changed or moved): its segments' "arp" and "l2" parts;
  when the policy's VM changed, its tenant's "route" and "acl" parts too; the
  local part, source clauses and plan of the switches it left and joined;
- north–south: a tenant or a VM of it changed in the policy: its "exit" part,
  the plans of its hosts if it started or stopped going out, and every
  gateway's plan and local part (a gateway holds little: its uplinks' NAT).

Each invalidated part is rebuilt once, however many switches hold it, and kept
as the old object when its content is unchanged; only switches holding a
replaced part (or replanned) get a new FlowSet, and every other switch keeps the
very FlowSet object it had (identity says "unchanged"). Anything else (topology,
down ports, first call) compiles all; a link event needs only the "paths" parts,
which depend on the topology alone, and with gateways the "exit" parts and the
gateways' local parts (which uplink each tenant goes out by). A change of the
uplinks' learned next hops (`Bindings.neighbours`) rebuilds the gateways' local
parts only.

`tests/unit/test_incremental.py` checks, over random edit sequences on packed
and scattered placements, that the result always equals a full compile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sdnctl.bindings import Bindings
from sdnctl.compile.acl import rule_ids, tenant_rules
from sdnctl.compile.compiler import compile_all
from sdnctl.compile.context import NetworkView
from sdnctl.compile.exits import NsPlan, ns_plan
from sdnctl.compile.parts import (
    PartKey,
    PartStore,
    build_local,
    build_part,
    part_exists,
    plan_switch,
    replan_acl,
)
from sdnctl.flows import FlowSet, Fragment
from sdnctl.gcpause import gc_paused
from sdnctl.policy.model import Policy
from sdnctl.topology.model import PortRef, Topology


@dataclass(frozen=True, slots=True)
class Scope:
    """What the last compile did: all switches, or only `switches`."""

    full: bool
    switches: tuple[str, ...]
    reason: str
    parts_rebuilt: int = 0

    def describe(self) -> str:
        if self.full:
            return f"full compile ({self.reason})"
        return (f"{len(self.switches)} switches recomposed, {self.parts_rebuilt} parts "
                f"rebuilt ({self.reason})")


@dataclass
class Edit:
    """What changed between two inputs of the same topology."""

    vms: set[str] = field(default_factory=set)  # in the policy or in their binding
    policy_vms: set[str] = field(default_factory=set)  # of those, changed in the policy
    tenants: set[str] = field(default_factory=set)  # definition changed in any way
    reseg: set[str] = field(default_factory=set)  # of those, segments changed (or new/gone)

    def describe(self) -> str:
        parts = []
        if self.tenants:
            parts.append("tenants " + ", ".join(sorted(self.tenants)))
        if self.vms:
            names = sorted(self.vms)
            parts.append(f"{len(names)} VMs ({', '.join(names[:3])}"
                         f"{', ...' if len(names) > 3 else ''})")
        return "; ".join(parts) or "nothing"


def find_edit(old: Policy, new: Policy, old_bindings: Bindings,
              new_bindings: Bindings) -> Edit:
    edit = Edit()
    if old.tenants is not new.tenants:
        for name in old.tenants.keys() | new.tenants.keys():
            a, b = old.tenants.get(name), new.tenants.get(name)
            if a is b or a == b:
                continue
            edit.tenants.add(name)
            if a is None or b is None or a.segments != b.segments:
                edit.reseg.add(name)
    if old.vms is not new.vms:
        edit.policy_vms = set(_differing(old.vms, new.vms))
        edit.vms |= edit.policy_vms
    if old_bindings.ports is not new_bindings.ports:
        edit.vms |= set(_differing(old_bindings.ports, new_bindings.ports))
    return edit


def _differing(old: Mapping[str, object], new: Mapping[str, object]) -> list[str]:
    out = [name for name, value in new.items()
           if (was := old.get(name)) is not value and was != value]
    out += [name for name in old if name not in new]
    return out


class IncrementalCompiler:
    """Callable like `compile_network`; keeps the last inputs, parts and outputs.

    Not thread-safe: one owner at a time."""

    def __init__(self) -> None:
        self._view: NetworkView | None = None
        self._store = PartStore()
        self._out: dict[str, FlowSet] = {}
        self.last_scope: Scope | None = None

    def __call__(
        self,
        policy: Policy,
        topology: Topology,
        bindings: Bindings,
        down_ports: frozenset[PortRef] = frozenset(),
    ) -> dict[str, FlowSet]:
        reason = self._full_reason(topology, down_ports)
        relinked: tuple[str, ...] = ()
        if reason == "links changed":
            relinked = self._relink(down_ports)
            reason = ""
        if reason:
            view = NetworkView(policy, topology, bindings, down_ports)
            store = PartStore()
            out = compile_all(view, store)  # raises before anything is kept
            self._store = store
            scope = Scope(True, tuple(sorted(out)), reason)
        else:
            view, out, scope = self._apply(policy, bindings)
            if relinked:
                scope = Scope(False, tuple(sorted({*relinked, *scope.switches})),
                              f"links changed; {scope.reason}",
                              scope.parts_rebuilt + len(relinked))
            out, renewed = self._renew_next_hops(view, out)
            if renewed:
                scope = Scope(False, tuple(sorted({*renewed, *scope.switches})),
                              f"next hops changed; {scope.reason}",
                              scope.parts_rebuilt + len(renewed))
        self._view, self._out, self.last_scope = view, out, scope
        return dict(out)

    def exits(self) -> NsPlan | None:
        """Where each tenant goes out, as last compiled (None before the first)."""
        return ns_plan(self._view) if self._view is not None else None

    def _full_reason(self, topology: Topology, down_ports: frozenset[PortRef]) -> str:
        last = self._view
        if last is None:
            return "first compile"
        if last.topology is not topology and last.topology != topology:
            return "topology changed"
        if last.down_ports != down_ports:
            return "links changed"
        return ""

    def _relink(self, down_ports: frozenset[PortRef]) -> tuple[str, ...]:
        """Links went down or up: only the "paths" parts depend on them. The
        switches whose paths changed get a new FlowSet; the edit, if any, follows."""
        last = self._view
        assert last is not None
        view = last.with_down(down_ports)
        store = self._store
        gateways = _gateways(view, self._out)
        stale: set[PartKey] = {("paths", s) for s in self._out}
        for tenant in ns_plan(view).tenants:  # a tenant's exit may have moved
            stale |= store.keys_about("exit", tenant)
        with gc_paused():
            new_parts = self._rebuild(view, stale)
            locals_ = {s: build_local(view, s) for s in gateways}
        store.parts.update(new_parts)
        for s, local in locals_.items():
            if not _same_content(local, store.locals[s]):
                store.locals[s] = local
        touched = store.holders_of(new_parts) | gateways
        out = dict(self._out)
        for switch in touched:
            fs = store.compose(switch, self._out[switch], l2_replaced=set())
            out[switch] = self._out[switch] if fs.same_parts(self._out[switch]) else fs
        changed = tuple(sorted(s for s in touched if out[s] is not self._out[s]))
        self._view, self._out = view, out
        return changed

    def _renew_next_hops(self, view: NetworkView, out: dict[str, FlowSet]
                         ) -> tuple[dict[str, FlowSet], tuple[str, ...]]:
        """The uplinks' next-hop MACs (`Bindings.neighbours`, learned by the daemon)
        changed: only the gateways' local parts use them (what leaves by an uplink is
        addressed to its next hop). The switches given a new FlowSet are returned."""
        last = self._view
        assert last is not None
        if last.bindings.neighbours == view.bindings.neighbours:
            return out, ()
        store = self._store
        with gc_paused():
            locals_ = {s: build_local(view, s) for s in sorted(_gateways(view, out))}
        out = dict(out)
        renewed = []
        for switch, local in locals_.items():
            if _same_content(local, store.locals[switch]):
                continue
            store.locals[switch] = local
            out[switch] = store.compose(switch, out[switch], l2_replaced=set())
            renewed.append(switch)
        return out, tuple(renewed)

    def _apply(self, policy: Policy, bindings: Bindings
               ) -> tuple[NetworkView, dict[str, FlowSet], Scope]:
        last = self._view
        assert last is not None
        edit = find_edit(last.policy, policy, last.bindings, bindings)
        if not edit.vms and not edit.tenants:
            view = last.updated(policy, bindings, set(), set(), set())
            return view, self._out, Scope(False, (), "nothing changed")
        view = last.updated(policy, bindings, edit.vms, edit.tenants, edit.reseg)
        store = self._store
        stale: set[PartKey] = set()
        replan: set[str] = set()
        relocal: set[str] = set()

        acl_tenants = set(edit.tenants)
        if edit.tenants:
            acl_tenants |= _renumbered(last, view)
        # Only services changed: the same rules apply on the same switches with the
        # same ids, so only the tenant's shared service clauses change.
        services_only = {t for t in acl_tenants - edit.reseg
                         if _acl_shape(last, t) == _acl_shape(view, t)}
        for tenant in services_only:
            stale |= store.keys_about("acl-svc", tenant)
        acl_tenants -= services_only
        for tenant in edit.reseg:
            segs = _segment_ids(last, tenant) | _segment_ids(view, tenant)
            for seg in segs:
                stale |= store.keys_about("arp", seg) | store.keys_about("l2", seg)
            stale |= store.keys_about("route", tenant)
            hosts = _hosts(store, tenant)
            replan |= hosts
            relocal |= hosts
        member_tenants: set[str] = set()  # a VM of theirs changed in the policy
        for name in edit.vms:
            tenants = {p.vms[name].tenant for p in (last.policy, policy) if name in p.vms}
            for p in (last.policy, policy):
                if name in p.vms:
                    seg = p.segment_of(p.vms[name]).id
                    stale |= store.keys_about("arp", seg) | store.keys_about("l2", seg)
            if name in edit.policy_vms:
                member_tenants |= tenants
                for tenant in tenants:
                    stale |= store.keys_about("route", tenant)
            for where in (last.where.get(name), view.where.get(name)):
                if where is not None:
                    replan.add(where.switch)
                    relocal.add(where.switch)
                    for tenant in tenants:
                        stale.add(("acl-src", where.switch, tenant))
        # A VM changed in the policy changes its tenant's destination clauses (its
        # address, its groups); which rules apply on other switches moves only if a
        # rule's destination group became empty or not.
        for tenant in member_tenants - acl_tenants:
            stale |= store.keys_about("acl", tenant)
            if _open_rules(last, tenant) != _open_rules(view, tenant):
                acl_tenants.add(tenant)
        # North–south: a tenant's way out follows its rules, its pool, its VMs' floating
        # IPs; its hosts hold its "exit" part only while it goes out; gateways hold
        # every going tenant's routes.
        ns_tenants = set(edit.tenants) | member_tenants
        for tenant in ns_tenants:
            stale |= store.keys_about("exit", tenant)
        going_before, going_after = ns_plan(last).tenants, ns_plan(view).tenants
        for tenant in ns_tenants:
            if (tenant in going_before) != (tenant in going_after):
                replan |= _hosts(store, tenant)
        if ns_tenants and (going_before or going_after):
            gateways = _gateways(view, self._out)
            replan |= gateways
            relocal |= gateways
        reacl: dict[str, set[str]] = {}  # switch -> tenants whose active rules may move
        for tenant in acl_tenants:
            stale |= (store.keys_about("acl", tenant) | store.keys_about("acl-svc", tenant)
                      | store.keys_about("acl-src", tenant))
            for host in _hosts(store, tenant):
                reacl.setdefault(host, set()).add(tenant)

        # Everything is built before the store changes: a failure leaves it as it was.
        with gc_paused():
            new_parts = self._rebuild(view, stale)
            touched = store.holders_of(new_parts) | replan | relocal | reacl.keys()
            touched &= self._out.keys()
            plans = {s: plan_switch(view, s) for s in touched & replan}
            for s in touched & reacl.keys() - replan:
                plan = replan_acl(view, store.plans[s], s, reacl[s])
                if plan != store.plans[s]:
                    plans[s] = plan
            locals_ = {s: build_local(view, s) for s in touched & relocal}
            for s, local in list(locals_.items()):
                if _same_content(local, store.locals[s]):
                    del locals_[s]  # the old object says "unchanged" downstream
            for plan in plans.values():
                for key in plan:
                    if key not in store.parts and key not in new_parts:
                        new_parts[key] = build_part(view, key)
        store.parts.update(new_parts)
        store.set_plans(plans)
        store.locals.update(locals_)
        out = dict(self._out)
        l2_replaced = {key[1] for key in new_parts if key[0] == "l2"}
        for switch in touched:
            fs = store.compose(switch, self._out[switch], l2_replaced)
            # A switch recomposed into the very same parts keeps its old FlowSet.
            out[switch] = self._out[switch] if fs.same_parts(self._out[switch]) else fs
        changed = tuple(sorted(s for s in touched if out[s] is not self._out[s]))
        return view, out, Scope(False, changed, edit.describe(), len(new_parts))

    def _rebuild(self, view: NetworkView, stale: set[PartKey]) -> dict[PartKey, Fragment]:
        """The stale parts still held, rebuilt; a part whose content did not change
        is left out (its holders keep the old object)."""
        store = self._store
        rebuilt: dict[PartKey, Fragment] = {}
        for key in stale:
            old = store.parts.get(key)
            if old is None or not part_exists(view, key):
                # Nobody holds it (built on demand if a plan names it), or what it was
                # about is gone (its holders are replanned without it).
                continue
            new = build_part(view, key)
            if not _same_content(new, old):
                rebuilt[key] = new
        return rebuilt


def _acl_shape(view: NetworkView, tenant: str) -> tuple[object, ...] | None:
    """What decides which of a tenant's rules are active where, and their source
    clauses: everything about its rules but their services."""
    t = view.policy.tenants.get(tenant)
    if t is None:
        return None
    ids = rule_ids(view)
    return (t.default, t.groups, t.snat, tenant in ns_plan(view).tenants,
            tuple((r.src, r.dst, ids[r]) for r in tenant_rules(view, tenant)))


def _open_rules(view: NetworkView, tenant: str) -> tuple[int, ...]:
    """Ids of the tenant's rules whose destination names some VM (only those can
    be active anywhere)."""
    if tenant not in view.policy.tenants:
        return ()
    ids = rule_ids(view)
    return tuple(ids[r] for r in tenant_rules(view, tenant)
                 if r.outbound or view.members(tenant, r.dst))


def _same_content(a: Fragment, b: Fragment) -> bool:
    return a.flows == b.flows and a.groups == b.groups and a.meters == b.meters


def _renumbered(old: NetworkView, new: NetworkView) -> set[str]:
    """Tenants whose rules' conjunction ids moved (an id collision resolved anew)."""
    before = {(r.tenant, r.src, r.dst, r.services): cid for r, cid in rule_ids(old).items()}
    after = {(r.tenant, r.src, r.dst, r.services): cid for r, cid in rule_ids(new).items()}
    return {key[0] for key in before.keys() & after.keys() if before[key] != after[key]}


def _segment_ids(view: NetworkView, tenant: str) -> set[int]:
    t = view.policy.tenants.get(tenant)
    return {seg.id for seg in t.segments.values()} if t is not None else set()


def _gateways(view: NetworkView, switches: Mapping[str, object]) -> set[str]:
    return {s for s in switches if view.is_gateway(s)}


def _hosts(store: PartStore, tenant: str) -> set[str]:
    """Switches holding the tenant's routes: every hypervisor with a VM of it."""
    return set(store.holders.get(("route", tenant), set()))
