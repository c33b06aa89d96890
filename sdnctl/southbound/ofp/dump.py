"""What a switch reports (flow stats, group and meter descriptions) back into IR."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from sdnctl.flows import (
    Bucket,
    Flow,
    FlowSet,
    Group,
    Match,
    MeterBand,
)
from sdnctl.southbound.ofp.actions import (
    _stage,
    action_from_ofp,
    actions_from_instructions,
)
from sdnctl.southbound.ofp.fields import (
    _GROUP_TYPE_NAMES,
    OfpMsg,
    Unrepresentable,
    match_from_ofp,
)

# ---- parsing what a switch holds ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForeignFlow:
    """A flow on the switch the IR cannot express: it can only be deleted, by raw match.

    `key` is its IR identity when table and match are expressible (only its actions are
    not), so a desired flow with the same identity replaces it instead.
    """

    table_id: int
    priority: int
    cookie: int
    match: OfpMsg
    reason: str
    key: tuple[str, int, Match] | None = None

    def describe(self) -> str:
        head = f"table={self.table_id},priority={self.priority},cookie={self.cookie:#x}"
        return f"{head} ({self.reason})"


def flow_from_stats(stats: OfpMsg, owners: Mapping[int, str] | None = None) -> Flow:
    """One OFPFlowStats -> IR Flow; the owner is looked up by cookie (switches keep no
    owner names). Raises Unrepresentable."""
    cookie = int(stats.cookie)
    if not cookie:
        raise Unrepresentable("cookie 0 (every IR flow has a cookie)")
    owner = (owners or {}).get(cookie, f"cookie:{cookie:#x}")
    return Flow(
        stage=_stage(stats.table_id),
        priority=stats.priority,
        match=match_from_ofp(stats.match),
        actions=actions_from_instructions(stats.instructions),
        owner=owner,
        cookie=cookie,
    )


def parse_flow_stats(
    entries: Iterable[OfpMsg], owners: Mapping[int, str] | None = None
) -> tuple[list[Flow], list[ForeignFlow]]:
    """Flow stats bodies -> (IR flows, flows only deletable raw)."""
    flows: list[Flow] = []
    foreign: list[ForeignFlow] = []
    for st in entries:
        try:
            flows.append(flow_from_stats(st, owners))
        except (Unrepresentable, ValueError) as exc:
            key = None
            with contextlib.suppress(Unrepresentable, ValueError):
                key = (_stage(st.table_id), st.priority, match_from_ofp(st.match))
            foreign.append(
                ForeignFlow(st.table_id, st.priority, st.cookie, st.match, str(exc), key)
            )
    return flows, foreign


def group_from_desc(desc: OfpMsg, owners: Mapping[int, str] | None = None) -> Group:
    """One OFPGroupDescStats -> IR Group. One the IR cannot express becomes a group with no
    buckets, which equals no desired group, so the diff replaces or deletes it."""
    owner = (owners or {}).get(desc.group_id, "foreign")
    try:
        kind = _GROUP_TYPE_NAMES[desc.type]
        buckets = tuple(
            Bucket(
                actions=tuple(action_from_ofp(a) for a in b.actions),
                watch_port=None if b.watch_port == ofp.OFPP_ANY else b.watch_port,
            )
            for b in desc.buckets
        )
    except (KeyError, Unrepresentable, ValueError):
        return Group(desc.group_id, _GROUP_TYPE_NAMES.get(desc.type, "all"), (), "foreign")
    return Group(desc.group_id, kind, buckets, owner)


def parse_group_desc(
    entries: Iterable[OfpMsg], owners: Mapping[int, str] | None = None
) -> list[Group]:
    return [group_from_desc(d, owners) for d in entries]


def meter_from_config(cfg: OfpMsg, owners: Mapping[int, str] | None = None) -> MeterBand:
    """One OFPMeterConfigStats -> IR MeterBand; anything but one kbps or pktps drop
    band with a burst becomes a rate-0 meter, which equals no desired meter."""
    owner = (owners or {}).get(cfg.meter_id, "foreign")
    bands = list(cfg.bands)
    units = cfg.flags & (ofp.OFPMF_KBPS | ofp.OFPMF_PKTPS)
    plain = (
        cfg.flags & ofp.OFPMF_BURST
        and units in (ofp.OFPMF_KBPS, ofp.OFPMF_PKTPS)
        and len(bands) == 1
        and isinstance(bands[0], parser.OFPMeterBandDrop)
    )
    if not plain:
        return MeterBand(cfg.meter_id, 0, 0, "foreign")
    return MeterBand(cfg.meter_id, bands[0].rate, bands[0].burst_size, owner,
                     units == ofp.OFPMF_PKTPS)


def parse_meter_config(
    entries: Iterable[OfpMsg], owners: Mapping[int, str] | None = None
) -> list[MeterBand]:
    return [meter_from_config(c, owners) for c in entries]


def owners_of(fs: FlowSet) -> tuple[dict[int, str], dict[int, str], dict[int, str]]:
    """(cookie -> owner, group id -> owner, meter id -> owner) from a desired FlowSet."""
    return (
        {f.cookie: f.owner for f in fs.flows},
        {g.group_id: g.owner for g in fs.groups},
        {m.meter_id: m.owner for m in fs.meters},
    )
