"""IR -> os-ken message -> bytes -> os-ken message -> IR is the identity (no switch needed)."""

from __future__ import annotations

import pytest
from os_ken.ofproto import ofproto_parser, ofproto_protocol
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from sdnctl.diff import diff_flowsets
from sdnctl.flows import (
    OFPP_CONTROLLER,
    OFPP_IN_PORT,
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
    Meter,
    MeterBand,
    Move,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    WriteMetadata,
)
from sdnctl.southbound import ofp as sb

DP = ofproto_protocol.ProtocolDesc(version=ofp.OFP_VERSION)


def sample_flowset(switch: str = "hv1") -> FlowSet:
    """A few flows of every action kind, with masked and special match values."""
    flows = [
        Flow("port_security", 200, Match.of(in_port=5, eth_src="02:00:00:00:10:11", vlan_vid=0),
             (Meter(7), SetField("reg5", 5), SetField("reg6", 10),
              WriteMetadata(0x1234, 0xFFFFFFFF), Goto("ct_out")), owner="vm:web1"),
        Flow("port_security", 190, Match.of(in_port=10, vlan_vid=10),
             (PopVlan(), SetField("reg6", 10), Goto("l2_forward")), owner="trunk"),
        Flow("port_security", 0, Match.of(), ()),
        Flow("arp", 100, Match.of(eth_type=0x0806, arp_op=1, arp_tpa="10.1.10.12",
                                  metadata=(0x1234, 0xFFFFFFFF)),
             (Move("eth_src", "eth_dst"), SetField("eth_src", "02:00:00:00:10:12"),
              SetField("arp_op", 2), Move("arp_sha", "arp_tha"), Move("arp_spa", "arp_tpa"),
              SetField("arp_sha", "02:00:00:00:10:12"), SetField("arp_spa", "10.1.10.12"),
              Output(OFPP_IN_PORT)), owner="vm:web2"),
        Flow("ct_out", 100, Match.of(eth_type=0x0800),
             (Ct(zone="reg5", table="acl"),)),
        Flow("acl", 300, Match.of(eth_type=0x0800, ct_state="+est+trk"), (Goto("l3_route"),)),
        Flow("acl", 200, Match.of(eth_type=0x0800, ct_state="+new-est+trk",
                                  ipv4_src=("10.1.10.0", "255.255.255.0")),
             (Conjunction(11, 1, 2),), owner="rule:acme:0"),
        Flow("acl", 200, Match.of(eth_type=0x0800, ct_state="+new-est+trk", ip_proto=6,
                                  tcp_dst=(8000, 0xFFC0)),
             (Conjunction(11, 2, 2),), owner="rule:acme:0"),
        Flow("acl", 190, Match.of(conj_id=11, eth_type=0x0800),
             (Ct(zone="reg5", commit=True), Goto("l3_route")), owner="rule:acme:0"),
        Flow("l3_route", 100, Match.of(eth_type=0x0800, eth_dst="0e:00:00:00:00:0a",
                                       ipv4_dst="10.1.20.0/24"),
             (DecTtl(), SetField("eth_src", "0e:00:00:00:00:14"), SetField("reg6", 20),
              Goto("l2_forward")), owner="segment:20"),
        Flow("l2_forward", 100, Match.of(reg6=20, eth_dst="02:00:00:00:20:21"),
             (PushVlan(), SetField("vlan_vid", 20), GroupAction(3)), owner="vm:app1"),
        # Overlay: out through the VXLAN port keyed by VNI, and back in by key.
        Flow("l2_forward", 100, Match.of(reg6=0x1001389, eth_dst="02:00:00:00:50:01"),
             (SetField("tun_id", 5001), SetField("tun_dst", "192.0.2.2"), Output(65000)),
             owner="vm:ov1"),
        Flow("port_security", 200, Match.of(in_port=65000, tun_id=5001, eth_type=0x0800),
             (SetField("reg6", 0x1001389), WriteMetadata(0x1234, 0xFFFFFFFF),
              Goto("l2_forward")), owner="segment:16782217"),
        Flow("l2_forward", 90, Match.of(reg6=10, eth_dst="02:00:00:00:10:12"),
             (SetField("reg7", 6), Goto("ct_in")), owner="vm:web2"),
        Flow("ct_in", 100, Match.of(eth_type=0x0800, reg7=6),
             (Ct(zone=6, table="deliver"),)),
        Flow("deliver", 100, Match.of(eth_type=0x0800, reg7=6, ct_state="+new+trk"),
             (Ct(zone=6, commit=True), Output(6))),
        Flow("deliver", 1, Match.of(eth_type=0x88CC), (Output(OFPP_CONTROLLER),)),
        Flow("acl", 210, Match.of(eth_type=0x0800, ip_proto=1, icmpv4_type=8,
                                  ct_state="+new-est+trk"), (Conjunction(11, 2, 2),)),
        Flow("acl", 210, Match.of(eth_type=0x0800, ip_proto=17, udp_dst=53,
                                  ct_state="+new-est+trk"), (Conjunction(11, 2, 2),)),
    ]
    groups = [
        Group(3, "ff", (Bucket((Output(10),), watch_port=10), Bucket((Output(11),), watch_port=11)),
              owner="vm:app1"),
        Group(4, "all", (Bucket((Output(1),)), Bucket((PushVlan(), SetField("vlan_vid", 10),
                                                      Output(10))))),
        Group(5, "select", (Bucket((Output(10),)), Bucket((Output(11),)))),
    ]
    meters = [MeterBand(7, 200_000, 20_000, owner="vm:web1")]
    return sb.normalize_flowset(FlowSet.build(switch, flows, groups, meters))


def _wire(msg):
    """Serialize and parse back with os-ken, as a switch connection would."""
    msg.serialize()
    return ofproto_parser.msg(DP, ofp.OFP_VERSION, msg.msg_type, msg.msg_len, 0, bytes(msg.buf))


@pytest.mark.parametrize("flow", sample_flowset().flows, ids=lambda f: f"{f.stage}-{f.priority}")
def test_flow_round_trip(flow: Flow) -> None:
    back = _wire(sb.flow_mod(DP, flow, "add"))
    owners = {flow.cookie: flow.owner}
    assert sb.flow_from_stats(back, owners) == flow
    assert sb.flow_from_stats(back, owners).cookie == flow.cookie


def test_every_action_kind_is_covered() -> None:
    fs = sample_flowset()
    kinds = {type(a) for f in fs.flows for a in f.actions}
    kinds |= {type(a) for g in fs.groups for b in g.buckets for a in b.actions}
    assert kinds == {Output, GroupAction, SetField, Move, PushVlan, PopVlan, DecTtl, Ct,
                     Conjunction, Meter, WriteMetadata, Goto}


@pytest.mark.parametrize("group", sample_flowset().groups, ids=lambda g: g.type)
def test_group_round_trip(group: Group) -> None:
    mod = sb.group_mod(DP, group, "add")
    buckets = []
    for b in mod.buckets:
        buf = bytearray()
        b.serialize(buf, 0)
        buckets.append(parser.OFPBucket.parser(bytes(buf), 0))
    desc = parser.OFPGroupDescStats(type_=mod.type, group_id=mod.group_id, buckets=buckets)
    assert sb.group_from_desc(desc, {group.group_id: group.owner}) == group


def test_meter_round_trip() -> None:
    meter = MeterBand(7, 200_000, 20_000, owner="vm:web1")
    mod = sb.meter_mod(DP, meter, "add")
    buf = bytearray()
    mod.bands[0].serialize(buf, 0)
    band = parser.OFPMeterBandHeader.parser(bytes(buf), 0)
    cfg = parser.OFPMeterConfigStats(flags=mod.flags, meter_id=mod.meter_id, bands=[band])
    assert sb.meter_from_config(cfg, {7: "vm:web1"}) == meter


def test_normalize_spellings_agree() -> None:
    a = Match.of(ipv4_dst="10.1.20.0/24", eth_src=("02:00:00:00:10:11", "ff:ff:ff:ff:ff:ff"),
                 metadata=(0x12, 0xFFFFFFFFFFFFFFFF), ct_state="+trk+est")
    b = Match.of(ipv4_dst=("10.1.20.7", "255.255.255.0"), eth_src="02:00:00:00:10:11",
                 metadata=0x12, ct_state="+est+trk")
    assert sb.normalize_match(a) == sb.normalize_match(b)


def test_ct_state_bits() -> None:
    assert sb.ct_state_to_ofp("+est+trk") == (0x22, 0x22)
    assert sb.ct_state_to_ofp("+new-est+trk") == (0x21, 0x23)
    assert sb.ct_state_from_ofp(0x21, 0x23) == "+new-est+trk"
    with pytest.raises(ValueError):
        sb.ct_state_to_ofp("+bogus")


def test_unknown_table_is_foreign() -> None:
    st = parser.OFPFlowStats(table_id=200, priority=5, cookie=9, match=parser.OFPMatch(in_port=1),
                             instructions=[])
    flows, foreign = sb.parse_flow_stats([st])
    assert flows == [] and len(foreign) == 1 and foreign[0].key is None


def _kinds(plan: list[sb.Outgoing]) -> list[str]:
    return [o.label.split()[0] for o in plan]


def test_plan_is_make_before_break_and_bundled() -> None:
    new = sample_flowset()
    old = FlowSet.build("hv1", new.flows[1:] + (
        Flow("deliver", 7, Match.of(reg7=99), (Output(99),), owner="vm:gone"),),
        groups=[Group(9, "all", (Bucket((Output(1),)),))],
        meters=[MeterBand(8, 1000, 100)])
    plan = sb.plan_update(DP, diff_flowsets(old, new), bundle_id=4)
    assert _kinds(plan) == (
        ["add-meter", "bundle"] + ["add-group"] * 3 + ["add-flow", "del-flow", "del-group",
                                                       "bundle", "del-meter", "barrier"]
    )
    inner = [o.msg for o in plan if isinstance(o.msg, parser.ONFBundleAddMsg)]
    assert len(inner) == 6
    for o in plan:  # every message serializes
        o.msg.serialize()
    assert sum(o.is_flow_mod for o in plan) == 2


def test_modify_with_new_cookie_is_an_add() -> None:
    f = Flow("deliver", 5, Match.of(reg7=6), (Output(6),), owner="vm:a")
    g = Flow("deliver", 5, Match.of(reg7=6), (Output(7),), owner="vm:a")
    h = Flow("deliver", 5, Match.of(reg7=6), (Output(7),), owner="vm:b")
    old = FlowSet.build("s", [f])
    same_cookie = sb.plan_update(DP, diff_flowsets(old, FlowSet.build("s", [g])))
    new_cookie = sb.plan_update(DP, diff_flowsets(old, FlowSet.build("s", [h])))
    assert same_cookie[0].msg.command == ofp.OFPFC_MODIFY_STRICT
    assert new_cookie[0].msg.command == ofp.OFPFC_ADD


def test_empty_diff_is_just_a_barrier() -> None:
    fs = sample_flowset()
    plan = sb.plan_update(DP, diff_flowsets(fs, fs), bundle_id=1)
    assert _kinds(plan) == ["barrier"]


def test_every_compiled_match_survives_the_wire_unchanged():
    """A match that reads back differently makes reconnects delete what they add."""
    from pathlib import Path

    from os_ken.ofproto import ofproto_v1_3_parser as wire

    from sdnctl.bindings import planned_bindings
    from sdnctl.compile.compiler import compile_network
    from sdnctl.policy.load import load_policy
    from sdnctl.topology.load import load_topology

    root = Path(__file__).resolve().parents[2] / "topologies"
    checked = 0
    for topo_path in sorted(root.glob("*.topology.yaml")):
        topo = load_topology(topo_path)
        policy = load_policy(str(topo_path).replace(".topology.", ".policy."), topo)
        for fs in compile_network(policy, topo, planned_bindings(policy, topo)).values():
            for flow in fs.flows:
                buf = bytearray()
                sb.match_to_ofp(flow.match).serialize(buf, 0)
                back = sb.match_from_ofp(wire.OFPMatch.parser(bytes(buf), 0))
                assert back == sb.normalize_match(flow.match), flow
                checked += 1
    assert checked > 300


def test_the_highest_rate_the_loader_accepts_is_the_highest_the_wire_carries() -> None:
    """rate_limit_mbps is refused at load beyond what a meter band (32-bit kbit/s)
    encodes: the largest accepted rate compiles to a meter that serializes and
    reads back; one Mbit/s more would not serialize (the daemon's encoder raised)."""
    import struct
    from pathlib import Path

    from sdnctl.bindings import planned_bindings
    from sdnctl.compile.compiler import compile_network
    from sdnctl.policy.load import MAX_RATE_MBPS, parse_policy
    from sdnctl.topology.load import load_topology

    root = Path(__file__).resolve().parents[2]
    topo = load_topology(root / "topologies" / "three-tier.topology.yaml")
    text = (root / "topologies" / "three-tier.policy.yaml").read_text()
    policy = parse_policy(text.replace("rate_limit_mbps: 200", f"rate_limit_mbps: {MAX_RATE_MBPS}"),
                          "p.yaml", topo)
    meters = compile_network(policy, topo, planned_bindings(policy, topo))["hv1"].meters
    [meter] = [m for m in meters if not m.pktps]  # the others are the DHCP meters
    assert meter.rate_kbps == MAX_RATE_MBPS * 1000 <= 2**32 - 1
    mod = sb.meter_mod(DP, meter, "add")
    mod.serialize()
    buf = bytearray()
    mod.bands[0].serialize(buf, 0)
    band = parser.OFPMeterBandHeader.parser(bytes(buf), 0)
    cfg = parser.OFPMeterConfigStats(flags=mod.flags, meter_id=mod.meter_id, bands=[band])
    assert sb.meter_from_config(cfg, {meter.meter_id: meter.owner}) == meter
    over = MeterBand(meter.meter_id, (MAX_RATE_MBPS + 1) * 1000, meter.burst_kb, meter.owner)
    with pytest.raises(struct.error):
        sb.meter_mod(DP, over, "add").serialize()
