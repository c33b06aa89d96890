"""Updates as differences between two FlowSets of one switch, never flush-and-reload.

A flow is identified by (stage, priority, match), as OpenFlow does; one whose
actions or cookie changed is modified in place (strict), so the packets it
carries see no gap. Groups and meters are identified by id.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdnctl.flows import Flow, FlowSet, Group, MeterBand


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

    @property
    def empty(self) -> bool:
        return not any(getattr(self, name) for name in self.__slots__)

    def __len__(self) -> int:
        return sum(len(getattr(self, name)) for name in self.__slots__)

    def summary(self) -> str:
        def counts(add: tuple, mod: tuple, dele: tuple) -> str:
            return f"+{len(add)} ~{len(mod)} -{len(dele)}"

        return (
            f"{counts(self.add, self.modify, self.delete)} flows, "
            f"{counts(self.add_groups, self.modify_groups, self.delete_groups)} groups, "
            f"{counts(self.add_meters, self.modify_meters, self.delete_meters)} meters"
        )


def _same_flow(a: Flow, b: Flow) -> bool:
    return a.actions == b.actions and a.cookie == b.cookie


def diff_flowsets(old: FlowSet | None, new: FlowSet) -> FlowSetDiff:
    """What to send to a switch holding `old` so that it holds `new`.

    The southbound applies it make-before-break: meters and groups first, then
    flow adds and modifies, then flow deletes, then group and meter deletes.
    """
    old_flows = {f.key: f for f in old.flows} if old else {}
    new_flows = {f.key: f for f in new.flows}
    add = tuple(f for k, f in new_flows.items() if k not in old_flows)
    modify = tuple(
        f for k, f in new_flows.items() if k in old_flows and not _same_flow(old_flows[k], f)
    )
    delete = tuple(f for k, f in old_flows.items() if k not in new_flows)

    old_groups = {g.group_id: g for g in old.groups} if old else {}
    new_groups = {g.group_id: g for g in new.groups}
    old_meters = {m.meter_id: m for m in old.meters} if old else {}
    new_meters = {m.meter_id: m for m in new.meters}
    return FlowSetDiff(
        add=add,
        modify=modify,
        delete=delete,
        add_groups=tuple(g for i, g in new_groups.items() if i not in old_groups),
        modify_groups=tuple(
            g for i, g in new_groups.items() if i in old_groups and old_groups[i] != g
        ),
        delete_groups=tuple(g for i, g in old_groups.items() if i not in new_groups),
        add_meters=tuple(m for i, m in new_meters.items() if i not in old_meters),
        modify_meters=tuple(
            m for i, m in new_meters.items() if i in old_meters and old_meters[i] != m
        ),
        delete_meters=tuple(m for i, m in old_meters.items() if i not in new_meters),
    )
