"""IR actions and instructions <-> os-ken actions, and the normal form of a flow."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import replace

from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from sdnctl.flows import (
    OFPP_CONTROLLER,
    OFPVID_PRESENT,
    Action,
    Conjunction,
    Controller,
    Ct,
    DecTtl,
    Flow,
    FlowSet,
    Goto,
    Group,
    GroupAction,
    Meter,
    Move,
    Nat,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    SetField,
    WriteMetadata,
)
from sdnctl.pipeline import STAGE_OF_TABLE, table_id
from sdnctl.southbound.ofp.controller2 import NXActionMeteredController
from sdnctl.southbound.ofp.fields import (
    _CT_ZONE_BITS,
    _IP_FIELDS,
    _MAC_FIELDS,
    FIELD_BITS,
    IR_NAME,
    OFP_NAME,
    OfpMsg,
    Unrepresentable,
    normalize_match,
)

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
            return parser.OFPActionSetField(**{OFP_NAME.get(f, f): v})
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
        case Ct(zone=z, commit=c, table=t, mark=mark, nat=nat):
            # A register zone is "zone_src + bits"; an immediate zone rides in the bits field.
            # nat last: os-ken writes a nested nat without its padding, which only
            # the end of the ct action supplies (OVS then prints it inside exec();
            # the order means nothing to it).
            nested = [] if mark is None else [parser.OFPActionSetField(ct_mark=mark)]
            if nat is not None:
                nested.append(nat_to_ofp(nat))
            return parser.NXActionCT(
                flags=nicira_ext.NX_CT_F_COMMIT if c else 0,
                zone_src=z if isinstance(z, str) else "",
                zone_ofs_nbits=_CT_ZONE_BITS if isinstance(z, str) else z,
                recirc_table=nicira_ext.NX_CT_RECIRC_NONE if t is None else table_id(t),
                alg=0,
                actions=nested,
            )
        case Conjunction(id=i, clause=c, n_clauses=n):
            # The wire counts clauses from 0; ovs-ofctl and the IR from 1.
            return parser.NXActionConjunction(clause=c - 1, n_clauses=n, id_=i)
        case Controller(meter_id=m):
            return NXActionMeteredController(meter_id=m)
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
        name = IR_NAME.get(name, name)
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
    if isinstance(action, NXActionMeteredController):
        if action.other or action.meter_id is None or action.max_len != 0xFFFF:
            raise Unrepresentable("controller action without a meter, or with other options")
        return Controller(action.meter_id)
    raise Unrepresentable(f"action {type(action).__name__}")


def _ct_from_ofp(action: OfpMsg) -> Ct:
    if action.alg or action.flags & ~nicira_ext.NX_CT_F_COMMIT:
        raise Unrepresentable("ct with alg or force")
    nats = [a for a in action.actions if isinstance(a, parser.NXActionNAT)]
    if len(nats) > 1:
        raise Unrepresentable("ct with two nat actions")
    nat = nat_from_ofp(nats[0]) if nats else None
    mark = _ct_mark_of([a for a in action.actions if not isinstance(a, parser.NXActionNAT)])
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
    commit = bool(action.flags & nicira_ext.NX_CT_F_COMMIT)
    if mark is not None and not commit:
        raise Unrepresentable("ct sets a mark without commit")
    if nat is not None and nat.kind is not None and not commit:
        raise Unrepresentable("ct sets up a translation without commit")
    return Ct(zone=zone, commit=commit, table=table, mark=mark, nat=nat)


# NXAST_NAT flags (OVS's nicira-ext.h; os-ken names only the range bits).
NX_NAT_F_SRC = 1 << 0
NX_NAT_F_DST = 1 << 1
_NAT_FLAG_OF = {"src": NX_NAT_F_SRC, "dst": NX_NAT_F_DST}
_NAT_KIND_OF = {v: k for k, v in _NAT_FLAG_OF.items()}


def nat_to_ofp(nat: Nat) -> OfpMsg:
    """`Nat` -> NXActionNAT: plain `nat` has no flags and no range; `first` is the
    range's minimum, `last` (when given) its maximum. OVS keeps both as sent, a
    maximum equal to the minimum too (it prints one address), so the IR's spelling
    reads back unchanged."""
    if nat.kind is None:
        return parser.NXActionNAT(flags=0)
    return parser.NXActionNAT(flags=_NAT_FLAG_OF[nat.kind], range_ipv4_min=nat.first,
                              range_ipv4_max=nat.last or "")


def nat_from_ofp(action: OfpMsg) -> Nat:
    """NXActionNAT -> `Nat`; ports, IPv6 ranges and the persistent/hash/random flags
    are not in the IR."""
    if action.flags == 0:
        if action.range_ipv4_min or action.range_ipv4_max:
            raise Unrepresentable("nat with a range but neither src nor dst")
        return Nat()
    kind = _NAT_KIND_OF.get(action.flags)
    if kind is None:
        raise Unrepresentable(f"nat flags {action.flags:#x}")
    if (action.range_ipv6_min or action.range_ipv6_max
            or action.range_proto_min is not None or action.range_proto_max is not None):
        raise Unrepresentable("nat with an IPv6 or port range")
    if not action.range_ipv4_min:
        raise Unrepresentable(f"nat({kind}) without an address")
    return Nat(kind, str(action.range_ipv4_min), action.range_ipv4_max or None)


def _ct_mark_of(nested: list[OfpMsg]) -> int | None:
    """The one nested action the IR knows besides `nat`: set_field of the whole ct_mark."""
    if not nested:
        return None
    if (len(nested) == 1 and isinstance(nested[0], parser.OFPActionSetField)
            and nested[0].key == "ct_mark" and not isinstance(nested[0].value, tuple)):
        return int(nested[0].value)
    raise Unrepresentable("ct with nested actions other than setting ct_mark")


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
    match, actions = normalize_match(flow.match), normalize_actions(flow.actions)
    if match == flow.match and actions == flow.actions:
        return flow  # already as the switch spells it: most compiled flows are
    return replace(flow, match=match, actions=actions)


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
