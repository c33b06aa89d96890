"""Updates as differences between two FlowSets of one switch, never flush-and-reload.

A flow is identified by (stage, priority, match), as OpenFlow does; one whose
actions or cookie changed is modified in place (strict), so the packets it
carries see no gap. Groups and meters are identified by id.

FlowSets are compositions of fragments (`sdnctl.flows.FlowSet`). When two
versions of a switch share most fragments (an edit replaced a few), only the
fragments that differ are compared, and the comparison of an old fragment with
its new version is made once however many switches hold the pair: an edit costs
what it changed, not what the switch holds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass
from typing import Generic, TypeVar

from sdnctl.flows import Flow, FlowKey, FlowSet, Fragment, Group, MeterBand

_FIELDS = ("add", "modify", "delete", "add_groups", "modify_groups", "delete_groups",
           "add_meters", "modify_meters", "delete_meters")


@dataclass(frozen=True, slots=True)
class FlowSetDiff:
    add: tuple[Flow, ...] = ()
    modify: tuple[Flow, ...] = ()  # the new version of each changed flow
    delete: tuple[Flow, ...] = ()  # the old version of each removed flow
    add_groups: tuple[Group, ...] = ()
    modify_groups: tuple[Group, ...] = ()
    delete_groups: tuple[Group, ...] = ()
    add_meters: tuple[MeterBand, ...] = ()
    modify_meters: tuple[MeterBand, ...] = ()
    delete_meters: tuple[MeterBand, ...] = ()
    # Keys of the modified flows whose cookie changed: OpenFlow 1.3's strict modify
    # keeps the old cookie, so the southbound sends those as adds (which replace).
    recookied: frozenset[FlowKey] = frozenset()

    @property
    def empty(self) -> bool:
        return not any(getattr(self, name) for name in _FIELDS)

    def __len__(self) -> int:
        return sum(len(getattr(self, name)) for name in _FIELDS)

    def summary(self) -> str:
        def counts(add: Sized, mod: Sized, dele: Sized) -> str:
            return f"+{len(add)} ~{len(mod)} -{len(dele)}"

        return (
            f"{counts(self.add, self.modify, self.delete)} flows, "
            f"{counts(self.add_groups, self.modify_groups, self.delete_groups)} groups, "
            f"{counts(self.add_meters, self.modify_meters, self.delete_meters)} meters"
        )


def _same_flow(a: Flow, b: Flow) -> bool:
    return a.actions == b.actions and a.cookie == b.cookie


K = TypeVar("K")
V = TypeVar("V")


@dataclass
class _Changes(Generic[V]):
    add: list[V]
    modify: list[V]
    delete: list[V]


def _compare(old: Mapping[K, V], new: Mapping[K, V],
             same: Callable[[V, V], bool] | None = None) -> _Changes[V]:
    """Adds, modifies and deletes taking `old` to `new` (both keyed alike)."""
    eq = same if callable(same) else (lambda a, b: a == b)
    return _Changes(
        [v for k, v in new.items() if k not in old],
        [v for k, v in new.items() if k in old and not eq(old[k], v)],
        [v for k, v in old.items() if k not in new],
    )


def diff_flowsets(old: FlowSet | None, new: FlowSet) -> FlowSetDiff:
    """What to send to a switch holding `old` so that it holds `new`.

    The southbound applies it make-before-break: meters and groups first, then
    flow adds and modifies, then flow deletes, then group and meter deletes.
    """
    if old is None:
        return FlowSetDiff(add=new.flows, add_groups=new.groups, add_meters=new.meters)
    if old.same_parts(new):
        return FlowSetDiff()
    if old.local is new.local:
        return _diff_parts(old, new)
    if old.parts and new.parts:
        return _diff_own(old, new)
    return _diff_flat(old, new)


def _diff_own(old: FlowSet, new: FlowSet) -> FlowSetDiff:
    """The switch's own part changed (a VM bound, moved or gone here), and perhaps
    some shared parts: compare only the flows that can differ.

    Those are the own parts' flows, the replaced parts' flows, and the flows of kept
    parts that an own flow masks on either side. Any other key is held by the same
    kept part object on both sides. Parts never overlap, so a key of a replaced part
    is in no kept part.
    """
    old_ids = {id(p) for p in old.parts}
    new_ids = {id(p) for p in new.parts}
    before: dict[FlowKey, Flow] = {}
    after: dict[FlowKey, Flow] = {}
    for part in old.parts:
        if id(part) not in new_ids:
            before.update(part.by_key)
    for part in new.parts:
        if id(part) not in old_ids:
            after.update(part.by_key)
    own_keys = old.local.by_key.keys() | new.local.by_key.keys()
    if old.masked or new.masked:
        for part in new.parts:
            if id(part) in old_ids:
                by_key = part.by_key
                for key in own_keys & by_key.keys():
                    before[key] = after[key] = by_key[key]
    before.update(old.local.by_key)
    after.update(new.local.by_key)
    flows = _compare(before, after, _same_flow)
    groups = _compare({g.group_id: g for g in old.groups}, {g.group_id: g for g in new.groups})
    meters = _compare({m.meter_id: m for m in old.meters}, {m.meter_id: m for m in new.meters})
    recookied = frozenset(f.key for f in flows.modify if before[f.key].cookie != f.cookie)
    return _make(flows, groups, meters, recookied)


def _diff_flat(old: FlowSet, new: FlowSet) -> FlowSetDiff:
    """Every flow compared: for a switch whose own part changed, or one read back."""
    old_flows = _effective(old)
    new_flows = _effective(new)
    flows = _compare(old_flows, new_flows, _same_flow)
    groups = _compare({g.group_id: g for g in old.groups}, {g.group_id: g for g in new.groups})
    meters = _compare({m.meter_id: m for m in old.meters}, {m.meter_id: m for m in new.meters})
    recookied = frozenset(f.key for f in flows.modify if old_flows[f.key].cookie != f.cookie)
    return _make(flows, groups, meters, recookied)


def _effective(fs: FlowSet) -> dict[FlowKey, Flow]:
    """Key -> flow as the switch holds it (a local flow replaces a part's)."""
    out: dict[FlowKey, Flow] = {}
    for part in fs.parts:
        out.update(part.by_key)
    out.update(fs.local.by_key)
    return out


def _diff_parts(old: FlowSet, new: FlowSet) -> FlowSetDiff:
    """Same local part, some parts replaced: compare only the replaced ones.

    Parts never overlap, so a key of a replaced part is in no kept part; the local
    part is the same on both sides, so a key it replaces stays replaced. A flow may
    move from one fragment to another (a VM's groups changed which rules apply
    here): adds and deletes of the same key are netted into a modify, or nothing.
    """
    if len(old.parts) == len(new.parts) and all(
            a is b or a.key == b.key for a, b in zip(old.parts, new.parts, strict=True)):
        # The same plan (the usual edit): compare position by position.
        pairs = [(a, b) for a, b in zip(old.parts, new.parts, strict=True) if a is not b]
        gone = {a.key: a for a, _ in pairs}
        came = {b.key: b for _, b in pairs}
    else:
        old_ids = {id(p) for p in old.parts}
        new_ids = {id(p) for p in new.parts}
        gone = {p.key: p for p in old.parts if id(p) not in new_ids}
        came = {p.key: p for p in new.parts if id(p) not in old_ids}
    flows: _Changes[Flow] = _Changes([], [], [])
    groups: _Changes[Group] = _Changes([], [], [])
    meters: _Changes[MeterBand] = _Changes([], [], [])
    recookied: set[FlowKey] = set()
    for key in gone.keys() & came.keys():  # a new version of the same fragment
        d = fragment_diff(gone[key], came[key])
        _extend(flows, d.flows)
        _extend(groups, d.groups)
        _extend(meters, d.meters)
        recookied |= d.recookied
    for key in gone.keys() - came.keys():
        flows.delete += gone[key].flows
        groups.delete += gone[key].groups
        meters.delete += gone[key].meters
    for key in came.keys() - gone.keys():
        flows.add += came[key].flows
        groups.add += came[key].groups
        meters.add += came[key].meters
    flows, moved = _net(flows, lambda f: f.key, _same_flow)
    recookied |= {new_f.key for old_f, new_f in moved if old_f.cookie != new_f.cookie}
    groups, _ = _net(groups, lambda g: g.group_id, lambda a, b: a == b)
    meters, _ = _net(meters, lambda m: m.meter_id, lambda a, b: a == b)
    if new.masked:
        mine = new.local.by_key  # what this switch holds in place of a part's flow
        flows = _Changes([f for f in flows.add if f.key not in mine],
                         [f for f in flows.modify if f.key not in mine],
                         [f for f in flows.delete if f.key not in mine])
    return _make(flows, groups, meters, recookied)


def _extend(mine: _Changes[V], theirs: _Changes[V]) -> None:
    mine.add += theirs.add
    mine.modify += theirs.modify
    mine.delete += theirs.delete


def _net(changes: _Changes[V], key: Callable[[V], object], same: Callable[[V, V], bool]
         ) -> tuple[_Changes[V], list[tuple[V, V]]]:
    """An add and a delete of the same key become a modify (or nothing if equal);
    also returns the (old, new) pairs that became modifies."""
    if not changes.add or not changes.delete:
        return changes, []
    deleted = {key(v): v for v in changes.delete}
    add: list[V] = []
    modify = list(changes.modify)
    moved: list[tuple[V, V]] = []
    for v in changes.add:
        was = deleted.pop(key(v), None)
        if was is None:
            add.append(v)
        elif not same(was, v):
            modify.append(v)
            moved.append((was, v))
    return _Changes(add, modify, list(deleted.values())), moved


def _make(flows: _Changes[Flow], groups: _Changes[Group], meters: _Changes[MeterBand],
          recookied: Iterable[FlowKey]) -> FlowSetDiff:
    return FlowSetDiff(
        tuple(flows.add), tuple(flows.modify), tuple(flows.delete),
        tuple(groups.add), tuple(groups.modify), tuple(groups.delete),
        tuple(meters.add), tuple(meters.modify), tuple(meters.delete),
        frozenset(recookied),
    )


@dataclass(frozen=True, slots=True)
class FragmentDiff:
    flows: _Changes[Flow]
    groups: _Changes[Group]
    meters: _Changes[MeterBand]
    recookied: frozenset[FlowKey]


_FRAGMENT_DIFFS: OrderedDict[tuple[int, int], tuple[Fragment, Fragment, FragmentDiff]] = (
    OrderedDict())
_FRAGMENT_DIFFS_MAX = 4096


def fragment_diff(old: Fragment, new: Fragment) -> FragmentDiff:
    """`old` -> `new`, computed once per pair (an edit hands the same pair to every
    switch that holds the fragment)."""
    ident = (id(old), id(new))
    hit = _FRAGMENT_DIFFS.get(ident)
    if hit is not None and hit[0] is old and hit[1] is new:
        return hit[2]
    old_flows, new_flows = old.by_key, new.by_key
    flows = _compare(old_flows, new_flows, _same_flow)
    d = FragmentDiff(
        flows,
        _compare({g.group_id: g for g in old.groups}, {g.group_id: g for g in new.groups}),
        _compare({m.meter_id: m for m in old.meters}, {m.meter_id: m for m in new.meters}),
        frozenset(f.key for f in flows.modify if old_flows[f.key].cookie != f.cookie),
    )
    _FRAGMENT_DIFFS[ident] = (old, new, d)
    if len(_FRAGMENT_DIFFS) > _FRAGMENT_DIFFS_MAX:
        _FRAGMENT_DIFFS.popitem(last=False)
    return d
