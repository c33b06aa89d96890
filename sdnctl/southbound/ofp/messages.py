"""OpenFlow messages built from the IR: flow, group and meter mods, barrier, requests."""

from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from sdnctl.flows import (
    Bucket,
    Flow,
    Group,
    MeterBand,
)
from sdnctl.southbound.ofp.actions import (
    action_to_ofp,
    instructions_for,
)
from sdnctl.southbound.ofp.fields import (
    _ALL_COOKIE_BITS,
    GROUP_TYPES,
    Datapath,
    OfpMsg,
    match_to_ofp,
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
    unit = ofp.OFPMF_PKTPS if meter.pktps else ofp.OFPMF_KBPS
    return parser.OFPMeterMod(
        dp, commands[command], unit | ofp.OFPMF_BURST, meter.meter_id, bands
    )


def packet_out(dp: Datapath, port: int, frame: bytes) -> OfpMsg:
    """Send `frame` out of `port` as it is (the DHCP responder's answers)."""
    return parser.OFPPacketOut(
        dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
        actions=[parser.OFPActionOutput(port, 0)], data=frame,
    )


def meter_stats_request(dp: Datapath) -> OfpMsg:
    return parser.OFPMeterStatsRequest(dp, 0, ofp.OFPM_ALL)


def meter_band_drops(body: list[OfpMsg]) -> dict[int, int]:
    """OFPMeterStats entries -> meter id -> packets its (one) band dropped."""
    return {m.meter_id: sum(b.packet_band_count for b in m.band_stats) for m in body}


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
