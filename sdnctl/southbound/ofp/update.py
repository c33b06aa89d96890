"""A FlowSetDiff as the ordered, bundled message list a switch should receive."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from sdnctl.diff import FlowSetDiff
from sdnctl.flows import (
    Flow,
    FlowSet,
    Group,
    MeterBand,
    render_flow_ofctl,
    render_group_ofctl,
    render_meter_ofctl,
)
from sdnctl.southbound.ofp.dump import (
    ForeignFlow,
)
from sdnctl.southbound.ofp.encoded import AddEncoder, bundle_add, next_xid, with_xid
from sdnctl.southbound.ofp.fields import (
    _ALL_COOKIE_BITS,
    BUNDLE_FLAGS,
    Datapath,
    OfpMsg,
    match_to_ofp,
)
from sdnctl.southbound.ofp.messages import (
    barrier,
    flow_mod,
    group_mod,
    meter_mod,
)

# ---- an update, in order -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send and a human label for it (errors from the switch name it).

    The label is `verb` and, rendered only when asked (an error names it), `item`:
    rendering every flow of a first update would cost more than encoding it.

    A flow add may come already encoded (`raw`, see `encoded.py`) instead of as an
    os-ken message; `send_outgoing` sends either kind."""

    msg: OfpMsg | None
    verb: str
    is_flow_mod: bool = False
    item: object = None  # a Flow, Group or MeterBand; None: the verb says it all
    raw: bytes | None = None  # an encoded flow-mod (xid to be written), instead of msg
    bundle_id: int | None = None  # `raw` goes inside this bundle

    @property
    def label(self) -> str:
        match self.item:
            case Flow():
                return f"{self.verb} {render_flow_ofctl(self.item)}"
            case Group():
                return f"{self.verb} {render_group_ofctl(self.item)}"
            case MeterBand():
                return f"{self.verb} {render_meter_ofctl(self.item)}"
        return self.verb


# Below this many adds, finding each flow's fragment costs more than encoding it.
ENCODED_ADDS_FROM = 64


def send_outgoing(dp: Datapath, out: Outgoing) -> int:
    """Send one planned message; its xid (errors and barrier replies carry it)."""
    if out.raw is None:
        dp.send_msg(out.msg)
        return int(out.msg.xid)
    xid = next_xid(dp)
    if out.bundle_id is None:
        dp.send(with_xid(out.raw, xid))
    else:
        dp.send(bundle_add(out.raw, xid, out.bundle_id))
    return xid


def plan_update(
    dp: Datapath,
    diff: FlowSetDiff,
    foreign: Sequence[ForeignFlow] = (),
    bundle_id: int | None = None,
    desired: FlowSet | None = None,
) -> list[Outgoing]:
    """The messages that apply `diff` make-before-break, ending with a barrier.

    Order: meter adds/modifies; groups adds/modifies; flow adds and modifies; flow
    deletes (and foreign flows); group deletes; meter deletes; barrier. With a
    `bundle_id`, the group and flow part is one atomic ONF bundle (OVS refuses meter
    mods inside bundles, so meters stay outside it: added before, deleted after).
    A modify whose cookie changed is sent as an add, which replaces the entry: a
    strict modify keeps the old cookie in OpenFlow 1.3. Given the `desired` FlowSet
    the diff leads to, many adds are taken already encoded from their fragment.
    """
    encoder = (AddEncoder(desired) if desired is not None
               and len(diff.add) + len(diff.recookied) >= ENCODED_ADDS_FROM else None)

    def add(f: Flow, verb: str) -> Outgoing:
        if encoder is None:
            return Outgoing(flow_mod(dp, f, "add"), verb, True, f)
        return Outgoing(None, verb, True, f, raw=encoder.add(f))

    before = [Outgoing(meter_mod(dp, m, "add"), "add-meter", item=m) for m in diff.add_meters]
    before += [Outgoing(meter_mod(dp, m, "modify"), "mod-meter", item=m)
               for m in diff.modify_meters]
    body = [Outgoing(group_mod(dp, g, "add"), "add-group", item=g) for g in diff.add_groups]
    body += [Outgoing(group_mod(dp, g, "modify"), "mod-group", item=g)
             for g in diff.modify_groups]
    body += [add(f, "add-flow") for f in diff.add]
    for f in diff.modify:
        if f.key in diff.recookied:
            body.append(add(f, "mod-flow"))
        else:
            body.append(Outgoing(flow_mod(dp, f, "modify"), "mod-flow", True, f))
    body += [Outgoing(flow_mod(dp, f, "delete"), "del-flow", True, f)
             for f in _deletes_not_readded(diff)]
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
                Outgoing(None, o.verb, o.is_flow_mod, o.item, o.raw, bundle_id)
                if o.raw is not None else
                Outgoing(parser.ONFBundleAddMsg(dp, bundle_id, BUNDLE_FLAGS, o.msg, []),
                         o.verb, o.is_flow_mod, o.item)
                for o in body
            ]
            + [Outgoing(bundle_ctrl(dp, bundle_id, "commit"), f"bundle {bundle_id} commit")]
        )
    return before + body + after + [Outgoing(barrier(dp), "barrier")]


def _deletes_not_readded(diff: FlowSetDiff) -> list[Flow]:
    """The deletes, less any whose entry the adds re-create: a strict delete matches
    table, priority and match only, so it would remove the new flow. Two IR matches
    that differ only in spelling can name one entry: compared as OpenFlow encodes
    them, which is costly, so only when there are deletes."""
    if not diff.delete:
        return []
    readded = {f.key for f in (*diff.add, *diff.modify)}
    candidates = [f for f in diff.delete if f.key not in readded]
    if not readded or not candidates:
        return candidates
    encoded = {(f.table, f.priority, repr(match_to_ofp(f.match).to_jsondict()))
               for f in (*diff.add, *diff.modify)}
    return [f for f in candidates
            if (f.table, f.priority, repr(match_to_ofp(f.match).to_jsondict())) not in encoded]


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
