"""A FlowSetDiff as the ordered, bundled message list a switch should receive."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from sdnctl.diff import FlowSetDiff
from sdnctl.flows import (
    FlowSet,
    render_flow_ofctl,
    render_group_ofctl,
    render_meter_ofctl,
)
from sdnctl.southbound.ofp.dump import (
    ForeignFlow,
)
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
    """One message to send and a human label for it (errors from the switch name it)."""

    msg: OfpMsg
    label: str
    is_flow_mod: bool = False


def plan_update(
    dp: Datapath,
    diff: FlowSetDiff,
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
        command = "add" if f.key in diff.recookied else "modify"
        body.append(Outgoing(flow_mod(dp, f, command), "mod-flow " + render_flow_ofctl(f), True))
    # A delete whose entry the adds re-create would remove the new flow (strict
    # delete matches table, priority and match only): never send one.
    added = {(f.table, f.priority, match_to_ofp(f.match).to_jsondict().__repr__())
             for f in (*diff.add, *diff.modify)}
    body += [
        Outgoing(flow_mod(dp, f, "delete"), "del-flow " + render_flow_ofctl(f), True)
        for f in diff.delete
        if (f.table, f.priority, match_to_ofp(f.match).to_jsondict().__repr__()) not in added
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
