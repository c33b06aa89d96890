"""The southbound against real Open vSwitch: what we send is what the switch holds.

Talks OpenFlow 1.3 straight to the bridge's management socket (what ovs-ofctl
uses), so no controller connection, daemon or event loop is involved.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
from typing import Any

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

pytestmark = pytest.mark.ovs


class Session:
    """A synchronous OpenFlow 1.3 session on a bridge's unix management socket."""

    def __init__(self, bridge: str) -> None:
        self.dp = ofproto_protocol.ProtocolDesc(version=ofp.OFP_VERSION)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(f"/var/run/openvswitch/{bridge}.mgmt")
        self.sock.settimeout(10)
        self.xid = 0
        self.send(parser.OFPHello(self.dp))
        assert isinstance(self.recv(), parser.OFPHello)

    def close(self) -> None:
        self.sock.close()

    def send(self, msg: Any) -> int:
        self.xid += 1
        msg.set_xid(self.xid)
        msg.serialize()
        self.sock.sendall(bytes(msg.buf))
        return int(msg.xid)

    def send_raw(self, buf: bytes) -> None:
        self.sock.sendall(buf)

    def recv(self) -> Any:
        head = self._read(8)
        version, msg_type, length, xid = struct.unpack("!BBHI", head)
        return ofproto_parser.msg(self.dp, version, msg_type, length, xid,
                                  head + self._read(length - 8))

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("switch closed the connection")
            buf += chunk
        return buf

    def apply(self, plan: list[sb.Outgoing]) -> list[str]:
        """Send a plan (it ends with a barrier); the labels of what the switch refused."""
        labels = {sb.send_outgoing(_AsDatapath(self), o): o.label for o in plan}
        errors = []
        while True:
            msg = self.recv()
            if isinstance(msg, parser.OFPErrorMsg):
                errors.append(f"{labels.get(msg.xid)}: type {msg.type} code {msg.code}")
            if isinstance(msg, parser.OFPBarrierReply):
                return errors

    def dump(self, owners_from: FlowSet) -> tuple[FlowSet, list[sb.ForeignFlow]]:
        bodies: dict[str, list[Any]] = {"flows": [], "groups": [], "meters": []}
        for kind, req in zip(bodies, sb.state_requests(self.dp), strict=True):
            self.send(req)
            while True:
                reply = self.recv()
                bodies[kind].extend(reply.body)
                if not reply.flags & ofp.OFPMPF_REPLY_MORE:
                    break
        fo, go, mo = sb.owners_of(owners_from)
        flows, foreign = sb.parse_flow_stats(bodies["flows"], fo)
        return FlowSet.build(
            owners_from.switch, flows, sb.parse_group_desc(bodies["groups"], go),
            sb.parse_meter_config(bodies["meters"], mo),
        ), foreign


def handmade() -> FlowSet:
    """A few flows of each action kind, with prefixes and masks spelled as the compiler may."""
    flows = [
        Flow("port_security", 200, Match.of(in_port=5, eth_src="02:00:00:00:10:11", vlan_vid=0),
             (Meter(7), SetField("reg5", 5), SetField("reg6", 10),
              WriteMetadata(0x1234, 0xFFFFFFFF), Goto("ct_out")), owner="vm:w1"),
        Flow("port_security", 190, Match.of(in_port=10, vlan_vid=10),
             (PopVlan(), SetField("reg6", 10), Goto("l2_forward")), owner="trunk"),
        Flow("port_security", 0, Match.of(), ()),
        Flow("arp", 100, Match.of(eth_type=0x0806, arp_op=1, arp_tpa="10.1.10.12"),
             (Move("eth_src", "eth_dst"), SetField("eth_src", "02:00:00:00:10:12"),
              SetField("arp_op", 2), Move("arp_sha", "arp_tha"), Move("arp_spa", "arp_tpa"),
              SetField("arp_sha", "02:00:00:00:10:12"), SetField("arp_spa", "10.1.10.12"),
              Output(OFPP_IN_PORT)), owner="vm:w2"),
        Flow("ct_out", 100, Match.of(eth_type=0x0800), (Ct(zone="reg5", table="acl"),)),
        Flow("acl", 300, Match.of(eth_type=0x0800, ct_state="+est+trk"), (Goto("l3_route"),)),
        Flow("acl", 200, Match.of(eth_type=0x0800, ct_state="+new-est+trk",
                                  ipv4_src="10.1.10.0/24"),
             (Conjunction(11, 1, 2),), owner="rule:t:0"),
        Flow("acl", 200, Match.of(eth_type=0x0800, ct_state="+new-est+trk", ip_proto=6,
                                  tcp_dst=(8000, 0xFFC0)),
             (Conjunction(11, 2, 2),), owner="rule:t:0"),
        Flow("acl", 190, Match.of(conj_id=11, eth_type=0x0800),
             (Ct(zone="reg5", commit=True), Goto("l3_route")), owner="rule:t:0"),
        Flow("l3_route", 100, Match.of(eth_type=0x0800, eth_dst="0e:00:00:00:00:0a",
                                       ipv4_dst="10.1.20.0/24"),
             (DecTtl(), SetField("eth_src", "0e:00:00:00:00:14"), SetField("reg6", 20),
              Goto("l2_forward")), owner="segment:20"),
        Flow("l2_forward", 100, Match.of(reg6=20, eth_dst="02:00:00:00:20:21"),
             (PushVlan(), SetField("vlan_vid", 20), GroupAction(3)), owner="vm:d1"),
        # Overlay: out through the VXLAN port keyed by VNI, and back in by key.
        Flow("l2_forward", 100, Match.of(reg6=0x1001389, eth_dst="02:00:00:00:50:01"),
             (SetField("tun_id", 5001), SetField("tun_dst", "192.0.2.2"), Output(65000)),
             owner="vm:ov1"),
        Flow("port_security", 200, Match.of(in_port=65000, tun_id=5001, eth_type=0x0800),
             (SetField("reg6", 0x1001389), WriteMetadata(0x1234, 0xFFFFFFFF),
              Goto("l2_forward")), owner="segment:16782217"),
        Flow("ct_in", 100, Match.of(eth_type=0x0800, reg7=6), (Ct(zone=6, table="deliver"),)),
        Flow("deliver", 100, Match.of(eth_type=0x0800, reg7=6, ct_state="+new+trk"),
             (Ct(zone=6, commit=True), Output(6))),
        Flow("deliver", 1, Match.of(eth_type=0x88CC), (Output(OFPP_CONTROLLER),)),
    ]
    groups = [
        Group(3, "ff", (Bucket((Output(10),), 10), Bucket((Output(11),), 11)), owner="vm:d1"),
        Group(4, "all", (Bucket((Output(1),)), Bucket((PushVlan(), SetField("vlan_vid", 10),
                                                      Output(10))))),
        Group(5, "select", (Bucket((Output(10),)), Bucket((Output(11),)))),
    ]
    return sb.normalize_flowset(
        FlowSet.build("sw", flows, groups, [MeterBand(7, 200_000, 20_000, "vm:w1")])
    )


class _AsDatapath:
    """A Session under the names os-ken's Datapath uses (`send` takes bytes there)."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self.ofproto = ofp

    @property
    def xid(self) -> int:
        return self._s.xid

    @xid.setter
    def xid(self, value: int) -> None:
        self._s.xid = value

    def send_msg(self, msg: Any) -> None:
        self._s.send(msg)

    def send(self, buf: bytes) -> None:
        self._s.send_raw(buf)


@pytest.fixture
def session(lab):
    bridge = lab.bridge(lab.random_dpid())
    s = Session(bridge)
    yield bridge, s
    s.close()


@pytest.mark.parametrize("encoded", [False, True], ids=["messages", "encoded"])
@pytest.mark.parametrize("bundle", [True, False], ids=["bundle", "plain"])
def test_handmade_flowset_installs_and_dumps_back_equal(lab, session, bundle: bool,
                                                        encoded: bool, monkeypatch) -> None:
    bridge, s = session
    fs = handmade()
    if encoded:  # every add from its fragment's cache, sent as bytes
        monkeypatch.setattr(sb.update, "ENCODED_ADDS_FROM", 0)
    plan = sb.plan_update(s.dp, diff_flowsets(None, fs), bundle_id=1 if bundle else None,
                          desired=fs)
    assert all(o.raw is not None for o in plan if o.verb == "add-flow") == encoded
    assert s.apply(plan) == []
    got, foreign = s.dump(fs)
    assert foreign == []
    assert got == fs
    assert diff_flowsets(got, fs).empty
    # OVS's own reading of what we encoded, for the Nicira extensions.
    text = lab.ofctl(bridge, "dump-flows")
    assert "actions=conjunction(11,1/2)" in text
    assert "ct(table=3,zone=NXM_NX_REG5[0..15])" in text
    assert "ct(commit,zone=6),output:6" in text
    assert "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]" in text
    assert "meter:7" in text and "dec_ttl" in text
    assert "tun_id=0x1389,in_port=65000" in text
    assert "set_field:0x1389->tun_id,set_field:192.0.2.2->tun_dst,output:65000" in text
    assert "type=ff,bucket=watch_port:10" in lab.ofctl(bridge, "dump-groups")
    assert "rate=200000 burst_size=20000" in lab.ofctl(bridge, "dump-meters")


def test_diff_brings_the_switch_to_the_new_flowset(lab, session) -> None:
    bridge, s = session
    old = handmade()
    assert s.apply(sb.plan_update(s.dp, diff_flowsets(None, old), bundle_id=1)) == []
    flows = list(old.flows)
    flows[0] = dataclasses.replace(flows[0], actions=(Meter(8),) + flows[0].actions[1:])
    flows[1] = Flow(flows[1].stage, flows[1].priority, flows[1].match, flows[1].actions,
                    owner="renamed")  # same entry, new cookie: must be re-added
    del flows[3]  # the ARP responder goes
    flows.append(Flow("deliver", 50, Match.of(reg7=9), (Output(9),), owner="vm:new"))
    new = sb.normalize_flowset(FlowSet.build(
        "sw", flows,
        [old.groups[0], dataclasses.replace(old.groups[1], buckets=old.groups[1].buckets[:1])],
        [MeterBand(7, 100_000, 10_000, "vm:w1"), MeterBand(8, 5_000, 500, "vm:w1")],
    ))
    diff = diff_flowsets(old, new)
    assert (len(diff.add), len(diff.modify), len(diff.delete)) == (1, 2, 1)
    plan = sb.plan_update(s.dp, diff, bundle_id=2)
    assert s.apply(plan) == []
    got, _ = s.dump(new)
    assert got == new
    assert {f.cookie for f in got.flows} == {f.cookie for f in new.flows}
    assert "group_id=5" not in lab.ofctl(bridge, "dump-groups")


def test_a_refused_bundle_changes_nothing(lab, session) -> None:
    bridge, s = session
    fs = handmade()
    assert s.apply(sb.plan_update(s.dp, diff_flowsets(None, fs), bundle_id=1)) == []
    bad = sb.normalize_flowset(FlowSet.build("sw", list(fs.flows[1:]) + [
        Flow("deliver", 60, Match.of(reg7=7), (Output(7),), owner="ok"),
        Flow("deliver", 61, Match.of(reg7=8), (GroupAction(999),), owner="no such group"),
    ], fs.groups, fs.meters))
    errors = s.apply(sb.plan_update(s.dp, diff_flowsets(fs, bad), bundle_id=2))
    assert errors, "the switch accepted output to a missing group"
    got, _ = s.dump(fs)
    assert got == fs  # all or nothing: not even the valid add or the delete happened


def test_flows_the_ir_cannot_express_are_found_and_deleted(lab, session) -> None:
    bridge, s = session
    fs = handmade()
    assert s.apply(sb.plan_update(s.dp, diff_flowsets(None, fs), bundle_id=1)) == []
    lab.ofctl(bridge, "add-flow", "table=50,priority=5,in_port=1,actions=drop")
    lab.ofctl(bridge, "add-flow", "table=7,priority=9,cookie=0x0,reg7=3,actions=output:3")
    lab.ofctl(bridge, "add-flow", "table=7,priority=9,cookie=0x99,reg7=4,actions=learn(table=1)")
    got, foreign = s.dump(fs)
    assert got == fs
    assert sorted((f.table_id, f.priority) for f in foreign) == [(7, 9), (7, 9), (50, 5)]
    doomed = sb.foreign_to_delete(foreign, fs)
    assert s.apply(sb.plan_update(s.dp, diff_flowsets(got, fs), doomed, bundle_id=2)) == []
    got, foreign = s.dump(fs)
    assert foreign == [] and got == fs
    assert lab.flow_count(bridge) == len(fs.flows)
