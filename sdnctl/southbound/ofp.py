"""The flow IR to and from os-ken OpenFlow 1.3 messages; the only place that knows both.

Forward: `flow_mod`, `group_mod`, `meter_mod`, `barrier` and `plan_update`, which
turns a `FlowSetDiff` into the ordered message list a switch should receive.
Backward: `parse_flow_stats`, `parse_group_desc`, `parse_meter_config` turn what
a switch reports into IR, so the daemon can diff what a switch holds against what
it should hold, and `verify` can simulate dumped flows.

The IR allows a few spellings that mean the same OpenFlow entry (an IPv4 prefix as
`a/len` or `(a, mask)`, a full mask, a meter listed after the actions it precedes).
`normalize_flow` picks the one the switch reports back, so that a compiled flow and
its dump compare equal; compare only normalized flows.

Messages are built for any object with `.ofproto` and `.ofproto_parser` (an os-ken
Datapath, or `ofproto_protocol.ProtocolDesc` in tests).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from sdnctl.diff import FlowSetDiff
from sdnctl.flows import (
    CT_BITS,
    MATCH_FIELDS,
    OFPP_CONTROLLER,
    OFPVID_PRESENT,
    Action,
    Bucket,
    Conjunction,
    Ct,
    DecTtl,
    Flow,
    FlowSet,
    Goto,
    Group,
    GroupAction,
    Match,
    MatchValue,
    Meter,
    MeterBand,
    Move,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    SetField,
    WriteMetadata,
    parse_ct_state,
    render_flow_ofctl,
    render_group_ofctl,
    render_meter_ofctl,
)
from sdnctl.pipeline import STAGE_OF_TABLE, table_id

Datapath = Any  # os-ken Datapath or ProtocolDesc; os-ken ships no type hints
OfpMsg = Any

# Field widths in bits: full masks collapse to exact matches, moves copy whole fields.
FIELD_BITS: dict[str, int] = {
    "in_port": 32, "metadata": 64, "reg5": 32, "reg6": 32, "reg7": 32, "conj_id": 32,
    "ct_state": 32, "eth_type": 16, "eth_src": 48, "eth_dst": 48, "vlan_vid": 13,
    "arp_op": 16, "arp_spa": 32, "arp_tpa": 32, "arp_sha": 48, "arp_tha": 48,
    "ip_proto": 8, "ipv4_src": 32, "ipv4_dst": 32, "tcp_dst": 16, "udp_dst": 16,
    "icmpv4_type": 8, "mpls_label": 20,
}
_MAC_FIELDS = {"eth_src", "eth_dst", "arp_sha", "arp_tha"}
_IP_FIELDS = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"}

# ct_state bits (ovs-fields(7)), in the order flags are printed; one table for the
# simulator and the southbound.
CT_STATE_BITS: dict[str, int] = CT_BITS

GROUP_TYPES: dict[str, int] = {
    "all": ofp.OFPGT_ALL, "select": ofp.OFPGT_SELECT,
    "indirect": ofp.OFPGT_INDIRECT, "ff": ofp.OFPGT_FF,
}
_GROUP_TYPE_NAMES = {v: k for k, v in GROUP_TYPES.items()}

BUNDLE_FLAGS = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
_ALL_COOKIE_BITS = 0xFFFF_FFFF_FFFF_FFFF
_CT_ZONE_BITS = nicira_ext.ofs_nbits(0, 15)


class Unrepresentable(ValueError):
    """A switch entry the IR cannot express (unknown table, field, action or form)."""


# ---- match ------------------------------------------------------------------------


def ct_state_to_ofp(text: str) -> tuple[int, int]:
    """`"+est+trk"` -> (value, mask) as NXM ct_state takes them; ValueError if malformed."""
    try:
        return parse_ct_state(text)
    except (KeyError, IndexError):
        raise ValueError(f"bad ct_state {text!r}") from None


def ct_state_from_ofp(value: int, mask: int) -> str:
    """(value, mask) -> `"+new-est+trk"`, flags in the fixed CT_STATE_BITS order."""
    unknown = mask & ~sum(CT_STATE_BITS.values())
    if unknown:
        raise Unrepresentable(f"ct_state mask {mask:#x} has flags the IR does not name")
    return "".join(
        ("+" if value & bit else "-") + name
        for name, bit in CT_STATE_BITS.items()
        if mask & bit
    )


def _full_mask(name: str) -> int:
    return (1 << FIELD_BITS[name]) - 1


def _normalize_value(name: str, value: MatchValue) -> MatchValue:
    """The form a switch reports: exact when the mask is full, bits outside it zeroed."""
    if name == "ct_state":
        if isinstance(value, tuple):
            return ct_state_from_ofp(int(value[0]), int(value[1]))
        return ct_state_from_ofp(*ct_state_to_ofp(str(value)))
    if name == "vlan_vid":
        return value
    if name in _IP_FIELDS:
        if isinstance(value, str) and "/" in value:
            net = ipaddress.IPv4Network(value, strict=False)
            value = (str(net.network_address), str(net.netmask))
        if isinstance(value, tuple):
            addr = int(ipaddress.IPv4Address(value[0]))
            mask = int(ipaddress.IPv4Address(value[1]))
            if mask == 0xFFFFFFFF:
                return str(ipaddress.IPv4Address(addr))
            return (str(ipaddress.IPv4Address(addr & mask)), str(ipaddress.IPv4Address(mask)))
        return str(ipaddress.IPv4Address(value))
    if name in _MAC_FIELDS:
        if isinstance(value, tuple):
            val, mask = _mac_int(str(value[0])), _mac_int(str(value[1]))
            if mask == _full_mask(name):
                return _mac_str(val)
            return (_mac_str(val & mask), _mac_str(mask))
        return str(value).lower()
    if isinstance(value, tuple):
        val, mask = int(value[0]), int(value[1])
        if mask == _full_mask(name):
            return val
        return (val & mask, mask)
    return value


def _mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def _mac_str(n: int) -> str:
    raw = f"{n:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def normalize_match(match: Match) -> Match:
    return Match.of({name: _normalize_value(name, value) for name, value in match})


def match_to_ofp(match: Match) -> OfpMsg:
    """IR match -> OFPMatch (ct_state as bits, vlan_vid with OFPVID_PRESENT)."""
    fields: dict[str, object] = {}
    for name, value in normalize_match(match):
        if name == "ct_state":
            fields[name] = ct_state_to_ofp(str(value))
        elif name == "vlan_vid":
            fields[name] = _vlan_to_ofp(value)
        else:
            fields[name] = value
    return parser.OFPMatch(**fields)


def _vlan_to_ofp(value: MatchValue) -> int | tuple[int, int]:
    if isinstance(value, tuple):
        return (int(value[0]) | OFPVID_PRESENT, int(value[1]) | OFPVID_PRESENT)
    vid = int(value)
    return vid | OFPVID_PRESENT if vid else 0


def _vlan_from_ofp(value: object) -> MatchValue:
    if isinstance(value, tuple):
        val, mask = int(value[0]), int(value[1])
        if mask & 0x1FFF == 0x1FFF:
            value = val
        elif val & OFPVID_PRESENT and mask & OFPVID_PRESENT:
            return (val & 0xFFF, mask & 0xFFF)
        else:
            raise Unrepresentable(f"vlan_vid match {val:#x}/{mask:#x}")
    vid = int(value)  # type: ignore[call-overload]
    return vid & 0xFFF if vid & OFPVID_PRESENT else 0


def match_from_ofp(ofp_match: OfpMsg) -> Match:
    """OFPMatch -> IR match; raises Unrepresentable for fields the IR does not name."""
    fields: dict[str, MatchValue] = {}
    for raw_name, value in ofp_match.items():
        name = raw_name.removesuffix("_nxm")
        if name not in MATCH_FIELDS:
            raise Unrepresentable(f"match field {raw_name}")
        if name == "ct_state":
            val, mask = value if isinstance(value, tuple) else (value, 0xFFFFFFFF)
            fields[name] = ct_state_from_ofp(val, mask)
        elif name == "vlan_vid":
            fields[name] = _vlan_from_ofp(value)
        else:
            fields[name] = tuple(value) if isinstance(value, (tuple, list)) else value
    return normalize_match(Match.of(fields))


# ---- actions and instructions ------------------------------------------------------


def action_to_ofp(act: Action) -> OfpMsg:
    """One IR action that lives in an apply-actions list (or a bucket) -> os-ken action."""
    match act:
        case Output(port=p):
            # Packets to the controller come whole (no buffering on the switch).
            return parser.OFPActionOutput(p, ofp.OFPCML_NO_BUFFER if p == OFPP_CONTROLLER else 0)
        case GroupAction(group_id=g):
            return parser.OFPActionGroup(g)
        case SetField(field="vlan_vid", value=v):
            return parser.OFPActionSetField(vlan_vid=int(v) | OFPVID_PRESENT)
        case SetField(field=f, value=v):
            return parser.OFPActionSetField(**{f: v})
        case Move(src=s, dst=d):
            if FIELD_BITS[s] != FIELD_BITS[d]:
                raise ValueError(f"move {s}->{d}: fields differ in width")
            return parser.NXActionRegMove(
                src_field=s, dst_field=d, n_bits=FIELD_BITS[s], src_ofs=0, dst_ofs=0
            )
        case PushVlan():
            return parser.OFPActionPushVlan(0x8100)
        case PopVlan():
            return parser.OFPActionPopVlan()
        case PushMpls():
            return parser.OFPActionPushMpls(0x8847)
        case PopMpls(ethertype=e):
            return parser.OFPActionPopMpls(e)
        case DecTtl():
            return parser.OFPActionDecNwTtl()
        case Ct(zone=z, commit=c, table=t):
            # A register zone is "zone_src + bits"; an immediate zone rides in the bits field.
            return parser.NXActionCT(
                flags=nicira_ext.NX_CT_F_COMMIT if c else 0,
                zone_src=z if isinstance(z, str) else "",
                zone_ofs_nbits=_CT_ZONE_BITS if isinstance(z, str) else z,
                recirc_table=nicira_ext.NX_CT_RECIRC_NONE if t is None else table_id(t),
                alg=0,
                actions=[],
            )
        case Conjunction(id=i, clause=c, n_clauses=n):
            # The wire counts clauses from 0; ovs-ofctl and the IR from 1.
            return parser.NXActionConjunction(clause=c - 1, n_clauses=n, id_=i)
    raise TypeError(f"{act!r} is not an apply action")


def instructions_for(actions: Sequence[Action]) -> list[OfpMsg]:
    """IR actions -> instructions in OpenFlow's execution order (meter, apply, metadata, goto)."""
    meters: list[OfpMsg] = []
    apply: list[OfpMsg] = []
    tail: list[OfpMsg] = []
    goto: list[OfpMsg] = []
    for act in actions:
        match act:
            case Meter(meter_id=m):
                meters.append(parser.OFPInstructionMeter(m, ofp.OFPIT_METER))
            case WriteMetadata(value=v, mask=m):
                tail.append(parser.OFPInstructionWriteMetadata(v, m))
            case Goto(stage=s):
                goto.append(parser.OFPInstructionGotoTable(table_id(s)))
            case _:
                apply.append(action_to_ofp(act))
    if apply:
        meters.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, apply))
    return meters + tail + goto


def action_from_ofp(action: OfpMsg) -> Action:
    """os-ken action -> IR action; raises Unrepresentable for anything else."""
    if isinstance(action, parser.OFPActionOutput):
        return Output(action.port)
    if isinstance(action, parser.OFPActionGroup):
        return GroupAction(action.group_id)
    if isinstance(action, parser.OFPActionSetField):
        name = action.key.removesuffix("_nxm")
        if name == "vlan_vid":
            return SetField("vlan_vid", int(action.value) & 0xFFF)
        if isinstance(action.value, tuple):
            raise Unrepresentable(f"masked set_field {action.key}")
        return SetField(name, action.value)
    if isinstance(action, parser.NXActionRegMove):
        src = action.src_field.removesuffix("_nxm")
        dst = action.dst_field.removesuffix("_nxm")
        whole = (
            src in FIELD_BITS and dst in FIELD_BITS
            and action.n_bits == FIELD_BITS[src] == FIELD_BITS[dst]
            and action.src_ofs == 0 and action.dst_ofs == 0
        )
        if not whole:
            raise Unrepresentable(f"partial move {src}->{dst}")
        return Move(src, dst)
    if isinstance(action, parser.OFPActionPushVlan):
        if action.ethertype != 0x8100:
            raise Unrepresentable(f"push_vlan {action.ethertype:#x}")
        return PushVlan()
    if isinstance(action, parser.OFPActionPopVlan):
        return PopVlan()
    if isinstance(action, parser.OFPActionPushMpls):
        if action.ethertype != 0x8847:
            raise Unrepresentable(f"push_mpls {action.ethertype:#x}")
        return PushMpls()
    if isinstance(action, parser.OFPActionPopMpls):
        return PopMpls(action.ethertype)
    if isinstance(action, (parser.OFPActionDecNwTtl, parser.NXActionDecTtl)):
        return DecTtl()
    if isinstance(action, parser.NXActionCT):
        return _ct_from_ofp(action)
    if isinstance(action, parser.NXActionConjunction):
        return Conjunction(action.id, action.clause + 1, action.n_clauses)
    raise Unrepresentable(f"action {type(action).__name__}")


def _ct_from_ofp(action: OfpMsg) -> Ct:
    if action.actions or action.alg or action.flags & ~nicira_ext.NX_CT_F_COMMIT:
        raise Unrepresentable("ct with nested actions, alg or force")
    zone: int | str
    if action.zone_src:
        if action.zone_ofs_nbits != _CT_ZONE_BITS:
            raise Unrepresentable(f"ct zone from bits {action.zone_ofs_nbits:#x}")
        zone = action.zone_src.removesuffix("_nxm")
    else:
        zone = action.zone_ofs_nbits
    table = None
    if action.recirc_table != nicira_ext.NX_CT_RECIRC_NONE:
        table = _stage(action.recirc_table)
    return Ct(zone=zone, commit=bool(action.flags & nicira_ext.NX_CT_F_COMMIT), table=table)


def _stage(table: int) -> str:
    if table not in STAGE_OF_TABLE:
        raise Unrepresentable(f"table {table} is not a pipeline stage")
    return STAGE_OF_TABLE[table]


def actions_from_instructions(instructions: Iterable[OfpMsg]) -> tuple[Action, ...]:
    """os-ken instructions -> IR actions in the canonical order `normalize_actions` gives."""
    meters: list[Action] = []
    apply: list[Action] = []
    tail: list[Action] = []
    for inst in instructions:
        if isinstance(inst, parser.OFPInstructionMeter):
            meters.append(Meter(inst.meter_id))
        elif isinstance(inst, parser.OFPInstructionActions):
            if inst.type != ofp.OFPIT_APPLY_ACTIONS:
                raise Unrepresentable("write/clear-actions instruction")
            apply.extend(action_from_ofp(a) for a in inst.actions)
        elif isinstance(inst, parser.OFPInstructionWriteMetadata):
            tail.insert(0, WriteMetadata(inst.metadata, inst.metadata_mask))
        elif isinstance(inst, parser.OFPInstructionGotoTable):
            tail.append(Goto(_stage(inst.table_id)))
        else:
            raise Unrepresentable(f"instruction {type(inst).__name__}")
    return tuple(meters + apply + tail)


# ---- normalization -----------------------------------------------------------------


def normalize_actions(actions: Sequence[Action]) -> tuple[Action, ...]:
    """OpenFlow runs meter, apply-actions, write-metadata, goto in that order whatever
    order the IR lists them in; put them in that order, and spell values as dumps do."""
    meters = [a for a in actions if isinstance(a, Meter)]
    metadata = [a for a in actions if isinstance(a, WriteMetadata)]
    goto = [a for a in actions if isinstance(a, Goto)]
    apply = [
        _normalize_action(a) for a in actions if not isinstance(a, Meter | WriteMetadata | Goto)
    ]
    return tuple(meters + apply + metadata + goto)


def _normalize_action(act: Action) -> Action:
    if isinstance(act, SetField):
        if act.field in _MAC_FIELDS:
            return SetField(act.field, str(act.value).lower())
        if act.field in _IP_FIELDS:
            return SetField(act.field, str(ipaddress.IPv4Address(act.value)))
        if act.field == "vlan_vid":
            return SetField(act.field, int(act.value) & 0xFFF)
    return act


def normalize_flow(flow: Flow) -> Flow:
    return replace(
        flow, match=normalize_match(flow.match), actions=normalize_actions(flow.actions)
    )


def normalize_group(group: Group) -> Group:
    return replace(
        group,
        buckets=tuple(replace(b, actions=normalize_actions(b.actions)) for b in group.buckets),
    )


def normalize_flowset(fs: FlowSet) -> FlowSet:
    return FlowSet.build(
        fs.switch,
        (normalize_flow(f) for f in fs.flows),
        (normalize_group(g) for g in fs.groups),
        fs.meters,
    )


# ---- messages ----------------------------------------------------------------------


def flow_mod(dp: Datapath, flow: Flow, command: str = "add") -> OfpMsg:
    """`add` (also replaces an entry with the same table/priority/match, cookie included),
    `modify` (strict; keeps the entry's cookie and counters), or `delete` (strict, and
    only if the cookie matches)."""
    commands = {
        "add": ofp.OFPFC_ADD, "modify": ofp.OFPFC_MODIFY_STRICT, "delete": ofp.OFPFC_DELETE_STRICT,
    }
    is_delete = command == "delete"
    return parser.OFPFlowMod(
        dp,
        cookie=flow.cookie,
        cookie_mask=_ALL_COOKIE_BITS if is_delete else 0,
        table_id=flow.table,
        command=commands[command],
        idle_timeout=0,
        hard_timeout=0,
        priority=flow.priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        flags=0,
        match=match_to_ofp(flow.match),
        instructions=[] if is_delete else instructions_for(flow.actions),
    )


def bucket_to_ofp(bucket: Bucket, group_type: str) -> OfpMsg:
    return parser.OFPBucket(
        weight=1 if group_type == "select" else 0,
        watch_port=ofp.OFPP_ANY if bucket.watch_port is None else bucket.watch_port,
        watch_group=ofp.OFPG_ANY,
        actions=[action_to_ofp(a) for a in bucket.actions],
    )


def group_mod(dp: Datapath, group: Group, command: str = "add") -> OfpMsg:
    commands = {"add": ofp.OFPGC_ADD, "modify": ofp.OFPGC_MODIFY, "delete": ofp.OFPGC_DELETE}
    buckets = [] if command == "delete" else [bucket_to_ofp(b, group.type) for b in group.buckets]
    return parser.OFPGroupMod(
        dp, commands[command], GROUP_TYPES[group.type], group.group_id, buckets
    )


def meter_mod(dp: Datapath, meter: MeterBand, command: str = "add") -> OfpMsg:
    commands = {"add": ofp.OFPMC_ADD, "modify": ofp.OFPMC_MODIFY, "delete": ofp.OFPMC_DELETE}
    bands = [] if command == "delete" else [
        parser.OFPMeterBandDrop(rate=meter.rate_kbps, burst_size=meter.burst_kb)
    ]
    return parser.OFPMeterMod(
        dp, commands[command], ofp.OFPMF_KBPS | ofp.OFPMF_BURST, meter.meter_id, bands
    )


def barrier(dp: Datapath) -> OfpMsg:
    return parser.OFPBarrierRequest(dp)


def state_requests(dp: Datapath) -> list[OfpMsg]:
    """Ask a switch for every flow, group and meter it holds."""
    return [
        parser.OFPFlowStatsRequest(
            dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0, parser.OFPMatch()
        ),
        parser.OFPGroupDescStatsRequest(dp, 0),
        parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL),
    ]


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
    """One OFPMeterConfigStats -> IR MeterBand; anything but one kbps drop band with a
    burst becomes a rate-0 meter, which equals no desired meter."""
    owner = (owners or {}).get(cfg.meter_id, "foreign")
    bands = list(cfg.bands)
    plain = (
        cfg.flags & (ofp.OFPMF_KBPS | ofp.OFPMF_BURST) == ofp.OFPMF_KBPS | ofp.OFPMF_BURST
        and not cfg.flags & ofp.OFPMF_PKTPS
        and len(bands) == 1
        and isinstance(bands[0], parser.OFPMeterBandDrop)
    )
    if not plain:
        return MeterBand(cfg.meter_id, 0, 0, "foreign")
    return MeterBand(cfg.meter_id, bands[0].rate, bands[0].burst_size, owner)


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


# ---- an update, in order -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send and a human label for it (errors from the switch name it)."""

    msg: OfpMsg
    label: str
    is_flow_mod: bool = False


def plan_update(
    dp: Datapath,
    diff: FlowSetDiff,
    installed: FlowSet | None = None,
    foreign: Sequence[ForeignFlow] = (),
    bundle_id: int | None = None,
) -> list[Outgoing]:
    """The messages that apply `diff` make-before-break, ending with a barrier.

    Order: meter adds/modifies; groups adds/modifies; flow adds and modifies; flow
    deletes (and foreign flows); group deletes; meter deletes; barrier. With a
    `bundle_id`, the group and flow part is one atomic ONF bundle (OVS refuses meter
    mods inside bundles, so meters stay outside it: added before, deleted after).
    A modify whose cookie changed is sent as an add, which replaces the entry: a
    strict modify keeps the old cookie in OpenFlow 1.3.
    """
    old_cookies = {f.key: f.cookie for f in installed.flows} if installed else {}
    before = [
        Outgoing(meter_mod(dp, m, "add"), "add-meter " + render_meter_ofctl(m))
        for m in diff.add_meters
    ] + [
        Outgoing(meter_mod(dp, m, "modify"), "mod-meter " + render_meter_ofctl(m))
        for m in diff.modify_meters
    ]
    body = [
        Outgoing(group_mod(dp, g, "add"), "add-group " + render_group_ofctl(g))
        for g in diff.add_groups
    ] + [
        Outgoing(group_mod(dp, g, "modify"), "mod-group " + render_group_ofctl(g))
        for g in diff.modify_groups
    ]
    body += [
        Outgoing(flow_mod(dp, f, "add"), "add-flow " + render_flow_ofctl(f), True)
        for f in diff.add
    ]
    for f in diff.modify:
        command = "modify" if old_cookies.get(f.key, f.cookie) == f.cookie else "add"
        body.append(Outgoing(flow_mod(dp, f, command), "mod-flow " + render_flow_ofctl(f), True))
    body += [
        Outgoing(flow_mod(dp, f, "delete"), "del-flow " + render_flow_ofctl(f), True)
        for f in diff.delete
    ]
    body += [Outgoing(foreign_delete(dp, ff), "del-flow " + ff.describe(), True) for ff in foreign]
    body += [
        Outgoing(group_mod(dp, g, "delete"), f"del-group group_id={g.group_id}")
        for g in diff.delete_groups
    ]
    after = [
        Outgoing(meter_mod(dp, m, "delete"), f"del-meter meter={m.meter_id}")
        for m in diff.delete_meters
    ]
    if bundle_id is not None and body:
        body = (
            [Outgoing(bundle_ctrl(dp, bundle_id, "open"), f"bundle {bundle_id} open")]
            + [
                Outgoing(parser.ONFBundleAddMsg(dp, bundle_id, BUNDLE_FLAGS, o.msg, []),
                         o.label, o.is_flow_mod)
                for o in body
            ]
            + [Outgoing(bundle_ctrl(dp, bundle_id, "commit"), f"bundle {bundle_id} commit")]
        )
    return before + body + after + [Outgoing(barrier(dp), "barrier")]


def bundle_ctrl(dp: Datapath, bundle_id: int, what: str) -> OfpMsg:
    kinds = {
        "open": ofp.ONF_BCT_OPEN_REQUEST, "commit": ofp.ONF_BCT_COMMIT_REQUEST,
        "discard": ofp.ONF_BCT_DISCARD_REQUEST,
    }
    return parser.ONFBundleCtrlMsg(dp, bundle_id, kinds[what], BUNDLE_FLAGS, [])


def foreign_delete(dp: Datapath, ff: ForeignFlow) -> OfpMsg:
    return parser.OFPFlowMod(
        dp, cookie=ff.cookie, cookie_mask=_ALL_COOKIE_BITS, table_id=ff.table_id,
        command=ofp.OFPFC_DELETE_STRICT, priority=ff.priority,
        out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, match=ff.match, instructions=[],
    )


def foreign_to_delete(foreign: Iterable[ForeignFlow], desired: FlowSet) -> list[ForeignFlow]:
    """Foreign flows that no desired flow replaces (deleting those would delete ours)."""
    keys = {f.key for f in desired.flows}
    return [ff for ff in foreign if ff.key is None or ff.key not in keys]
