"""DHCP answered from the policy: the wire codec, the answers, and the compiled path.

Each test names what it would catch: a wrong address or option in an answer, a
checksum error a real client would drop, an answer to the wrong MAC, a crash on
hostile bytes, a DHCP request that never reaches the controller path, or a VM's
DHCP answer that reaches another VM.
"""

from __future__ import annotations

import contextlib
import doctest
import struct
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sdnctl.dhcp.lease
import sdnctl.dhcp.wire
from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.dhcp.lease import Lease, answer, lease_of, segment_mtu, server_address
from sdnctl.dhcp.wire import (
    BROADCAST_FLAG,
    BROADCAST_MAC,
    LIMITED_BROADCAST,
    MalformedDhcp,
    MessageType,
    Option,
    decode_reply,
    encode_reply,
    encode_request,
    parse_request,
)
from sdnctl.flows import OFPP_CONTROLLER
from sdnctl.policy.load import parse_policy
from sdnctl.topology.load import load_topology, parse_topology
from sdnctl.topology.model import PortRef
from sdnctl.verify.simulate import Simulator
from sdnctl.yamlsrc import LoadError
from tests.unit.netgen import networks

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
IP = IPv4Address
MAC = "02:00:00:00:10:11"

POLICY = """\
version: 1
tenants:
  acme:
    dns: [10.1.0.2, 10.1.0.3]
    segments:
      web: {vlan: 10, subnet: 10.1.10.0/24, gateway: 10.1.10.1, dns: [9.9.9.9]}
      db:  {vlan: 30, subnet: 10.1.30.0/24}
      ovl: {vlan: 50, vni: 5000, subnet: 10.1.50.0/24, gateway: 10.1.50.1}
vms:
  web1: {tenant: acme, segment: web, mac: "02:00:00:00:10:11", ip: 10.1.10.11, host: hv1}
  web2: {tenant: acme, segment: web, mac: "02:00:00:00:10:12", ip: 10.1.10.12, host: hv2}
  db1:  {tenant: acme, segment: db,  mac: "02:00:00:00:30:11", ip: 10.1.30.11, host: hv2}
"""
TOPOLOGY = """\
version: 1
underlay_mtu: {mtu}
switches:
  hv1: {{dpid: 1, role: hypervisor}}
  hv2: {{dpid: 2, role: hypervisor}}
  leaf: {{dpid: 16, role: fabric}}
links:
  - {{a: "hv1:10", b: "leaf:1"}}
  - {{a: "hv2:10", b: "leaf:2"}}
"""


def network(mtu: int = 1600):
    topo = parse_topology(TOPOLOGY.format(mtu=mtu), "t.yaml")
    return parse_policy(POLICY, "p.yaml", topo), topo


@pytest.fixture
def web1() -> Lease:
    policy, topo = network()
    return lease_of(policy, topo, policy.vms["web1"])


def ask(kind: MessageType, mac: str = MAC, **kw) -> bytes:
    return encode_request(kind, mac, 0x1234, **kw)


def reply_to(frame: bytes, lease: Lease):
    reply = answer(parse_request(frame), lease)
    if reply is None:
        return None
    ip_dst, yiaddr, eth_dst, options = decode_reply(encode_reply(reply))  # checksums checked
    return reply.kind, ip_dst, yiaddr, eth_dst, options


# ---- what a VM is told --------------------------------------------------------------


def test_discover_is_offered_the_vms_policy_address_and_settings(web1):
    kind, ip_dst, yiaddr, eth_dst, opts = reply_to(ask(MessageType.DISCOVER), web1)
    assert kind is MessageType.OFFER and yiaddr == IP("10.1.10.11")
    assert (ip_dst, eth_dst) == (IP("10.1.10.11"), MAC)  # no broadcast flag: unicast
    assert opts[Option.MESSAGE_TYPE] == bytes([MessageType.OFFER])
    assert opts[Option.SERVER_ID] == IP("10.1.10.1").packed
    assert opts[Option.SUBNET_MASK] == IP("255.255.255.0").packed
    assert opts[Option.BROADCAST] == IP("10.1.10.255").packed
    assert opts[Option.ROUTER] == IP("10.1.10.1").packed
    assert opts[Option.DNS] == IP("9.9.9.9").packed  # the segment's dns wins
    assert struct.unpack("!H", opts[Option.INTERFACE_MTU]) == (1500,)
    assert struct.unpack("!I", opts[Option.LEASE_TIME]) == (86400,)
    assert struct.unpack("!I", opts[Option.RENEWAL_TIME]) == (43200,)
    assert struct.unpack("!I", opts[Option.REBINDING_TIME]) == (75600,)
    assert opts[Option.HOST_NAME] == b"web1"


def test_a_segment_without_dns_or_gateway_gets_the_tenants_dns_and_no_router():
    policy, topo = network()
    lease = lease_of(policy, topo, policy.vms["db1"])
    frame = ask(MessageType.DISCOVER, "02:00:00:00:30:11", flags=BROADCAST_FLAG)
    kind, ip_dst, yiaddr, eth_dst, opts = reply_to(frame, lease)
    assert yiaddr == IP("10.1.30.11") and Option.ROUTER not in opts
    assert opts[Option.DNS] == IP("10.1.0.2").packed + IP("10.1.0.3").packed
    assert opts[Option.SERVER_ID] == IP("10.1.30.254").packed  # the reserved address
    assert (ip_dst, eth_dst) == (LIMITED_BROADCAST, BROADCAST_MAC)  # the client asked


@pytest.mark.parametrize(("mtu", "vlan", "overlay"), [(1500, 1492, 1450), (1600, 1500, 1500),
                                                      (1530, 1500, 1480)])
def test_mtu_is_what_the_underlay_leaves(mtu, vlan, overlay):
    policy, topo = network(mtu)
    segments = policy.tenants["acme"].segments
    assert segment_mtu(segments["web"], topo) == vlan
    assert segment_mtu(segments["ovl"], topo) == overlay


def test_the_default_underlay_is_1500_so_a_vlan_vm_is_told_1492():
    topo = load_topology(TOPOLOGIES / "three-tier.topology.yaml")
    assert topo.underlay_mtu == 1500
    policy, _ = network()
    assert segment_mtu(policy.tenants["acme"].segments["web"], topo) == 1492


# ---- which answer ------------------------------------------------------------------


def test_request_for_its_own_address_is_acked(web1):
    frame = ask(MessageType.REQUEST, requested_ip=IP("10.1.10.11"), server_id=IP("10.1.10.1"))
    kind, _, yiaddr, _, opts = reply_to(frame, web1)
    assert kind is MessageType.ACK and yiaddr == IP("10.1.10.11") and Option.LEASE_TIME in opts


def test_request_selecting_another_server_gets_no_answer(web1):
    frame = ask(MessageType.REQUEST, requested_ip=IP("10.1.10.11"), server_id=IP("10.1.10.7"))
    assert reply_to(frame, web1) is None


@pytest.mark.parametrize("requested", ["10.1.10.12", "192.168.1.5"])
def test_request_for_another_address_is_naked_by_broadcast(web1, requested):
    kind, ip_dst, yiaddr, eth_dst, opts = reply_to(
        ask(MessageType.REQUEST, requested_ip=IP(requested)), web1)
    assert kind is MessageType.NAK and yiaddr == IP(0)
    assert (ip_dst, eth_dst) == (LIMITED_BROADCAST, BROADCAST_MAC)
    assert Option.LEASE_TIME not in opts and Option.ROUTER not in opts


def test_renewal_is_acked_by_unicast_to_ciaddr(web1):
    frame = ask(MessageType.REQUEST, ciaddr=IP("10.1.10.11"), ip_dst=IP("10.1.10.1"))
    kind, ip_dst, yiaddr, eth_dst, _ = reply_to(frame, web1)
    assert kind is MessageType.ACK and (ip_dst, eth_dst) == (IP("10.1.10.11"), MAC)
    wrong = ask(MessageType.REQUEST, ciaddr=IP("10.1.10.12"), ip_src=IP("10.1.10.11"))
    assert reply_to(wrong, web1)[0] is MessageType.NAK


def test_inform_gets_configuration_without_a_lease(web1):
    frame = ask(MessageType.INFORM, ciaddr=IP("10.1.10.11"))
    kind, ip_dst, yiaddr, _, opts = reply_to(frame, web1)
    assert kind is MessageType.ACK and yiaddr == IP(0) and ip_dst == IP("10.1.10.11")
    assert Option.LEASE_TIME not in opts and Option.RENEWAL_TIME not in opts
    assert opts[Option.ROUTER] == IP("10.1.10.1").packed


@pytest.mark.parametrize("kind", [MessageType.RELEASE, MessageType.DECLINE,
                                  MessageType.OFFER, MessageType.ACK])
def test_release_decline_and_server_messages_get_no_answer(web1, kind):
    assert reply_to(ask(kind, ciaddr=IP("10.1.10.11")), web1) is None


def test_another_mac_gets_nothing(web1):
    assert reply_to(ask(MessageType.DISCOVER, "02:00:00:00:10:12"), web1) is None
    # The frame's source is the VM's, but it asks for another client (starvation).
    frame = bytearray(ask(MessageType.DISCOVER))
    frame[14 + 20 + 8 + 28:14 + 20 + 8 + 34] = bytes.fromhex("02aabbccddee")
    assert parse_request(bytes(frame)).chaddr == "02:aa:bb:cc:dd:ee"
    assert reply_to(bytes(frame), web1) is None


def test_relayed_requests_get_nothing(web1):
    frame = bytearray(ask(MessageType.DISCOVER))
    frame[14 + 20 + 8 + 24:14 + 20 + 8 + 28] = IP("10.9.9.9").packed  # giaddr
    assert reply_to(bytes(frame), web1) is None


# ---- the policy keys ---------------------------------------------------------------


def test_dns_and_underlay_mtu_are_checked_at_their_lines():
    bad = POLICY.replace("dns: [9.9.9.9]", "dns: [9.9.9.9, 224.0.0.1, 9.9.9.9]")
    with pytest.raises(LoadError) as err:
        parse_policy(bad, "p.yaml")
    assert sorted(str(err.value).splitlines()) == [
        "p.yaml:6: segment acme/web: dns lists 9.9.9.9 twice",
        "p.yaml:6: segment acme/web: dns must list unicast IPv4 addresses like 10.1.0.2, "
        "got '224.0.0.1'",
    ]
    with pytest.raises(LoadError) as err:
        parse_topology(TOPOLOGY.format(mtu=9000000), "t.yaml")
    assert str(err.value) == ("t.yaml:2: topology: underlay_mtu must be an integer "
                              "1280..65535 (bytes), got 9000000")


def test_a_vm_may_not_hold_the_dhcp_address_of_a_segment_without_gateway():
    bad = POLICY.replace("ip: 10.1.30.11", "ip: 10.1.30.254")
    with pytest.raises(LoadError) as err:
        parse_policy(bad, "p.yaml")
    assert "p.yaml:12: vm db1: ip 10.1.30.254 is reserved as the DHCP server address" in str(
        err.value)
    policy, _ = network()
    assert server_address(policy.tenants["acme"].segments["web"]) == IP("10.1.10.1")


# ---- hostile bytes -----------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_are_refused_with_one_error_type(data):
    with contextlib.suppress(MalformedDhcp):  # any other exception fails the test
        parse_request(data)


def test_the_docstring_examples_hold():
    for module in (sdnctl.dhcp.wire, sdnctl.dhcp.lease):
        result = doctest.testmod(module)
        assert result.attempted and not result.failed


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_mangled_requests_parse_or_are_refused_with_one_error_type(data):
    frame = bytearray(ask(MessageType.REQUEST, requested_ip=IP("10.1.10.11"),
                          server_id=IP("10.1.10.1")))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    try:
        req = parse_request(bytes(frame[:cut]))
    except MalformedDhcp:
        return
    reply = answer(req, lease_of(*_web1_args()))
    if reply is not None:
        decode_reply(encode_reply(reply))  # what we send is always well formed


def _web1_args():
    policy, topo = network()
    return policy, topo, policy.vms["web1"]


@pytest.mark.parametrize(("what", "mangle"), [
    ("not IPv4", lambda f: f[:12] + b"\x86\xdd" + f[14:]),
    ("UDP 68->68", lambda f: f[:36] + struct.pack("!H", 68) + f[38:]),
    ("an option runs past the end", lambda f: f[:-60] + bytes([12, 200]) + b"x" * 10),
    ("no cookie", lambda f: f[:14 + 28 + 236] + b"\0\0\0\0" + f[14 + 28 + 240:]),
    ("truncated", lambda f: f[:100]),
])
def test_each_malformation_is_refused(what, mangle):
    frame = ask(MessageType.DISCOVER)
    with pytest.raises(MalformedDhcp):
        parse_request(mangle(frame))


# ---- the compiled path, through the simulator ------------------------------------------


def dhcp_packet(src_mac: str, sport: int = 68, dport: int = 67, src: str = "0.0.0.0") -> dict:
    return {"eth_src": src_mac, "eth_dst": BROADCAST_MAC, "eth_type": 0x0800,
            "ipv4_src": src, "ipv4_dst": "255.255.255.255", "ip_ttl": 64,
            "ip_proto": 17, "udp_src": sport, "udp_dst": dport}


@pytest.fixture(scope="module")
def compiled():
    policy, topo = network()
    bindings = planned_bindings(policy, topo)
    return policy, topo, bindings, Simulator(compile_network(policy, topo, bindings), topo)


def test_a_bound_vms_discover_reaches_the_controller_at_its_switch(compiled):
    _, _, bindings, sim = compiled
    at = bindings.ports["web1"]
    trace = sim.inject(at, dhcp_packet(MAC))
    assert [ref for ref, _ in trace.delivered] == [PortRef(at.switch, OFPP_CONTROLLER)]
    assert [s.stage for s in trace.steps] == ["port_security", "dhcp"]
    renew = dhcp_packet(MAC, src="10.1.10.11")
    assert [r for r, _ in sim.inject(at, renew).delivered] == [PortRef(at.switch,
                                                                       OFPP_CONTROLLER)]


@pytest.mark.parametrize("spoof", [{"eth_src": "02:00:00:00:10:12"},  # web2's MAC
                                   {"src": "10.1.10.12"},  # web2's address
                                   {"dport": 68}])  # not to a server
def test_other_dhcp_from_a_vm_port_reaches_nothing(compiled, spoof):
    _, _, bindings, sim = compiled
    pkt = dhcp_packet(spoof.get("eth_src", MAC), dport=spoof.get("dport", 67),
                      src=spoof.get("src", "0.0.0.0"))
    assert sim.inject(bindings.ports["web1"], pkt).delivered == []


def test_a_vms_dhcp_offer_reaches_no_one(compiled):
    """web1 plays DHCP server towards web2 with its own, valid addresses: dropped."""
    policy, _, bindings, sim = compiled
    offer = dhcp_packet(MAC, sport=67, dport=68, src="10.1.10.11")
    assert sim.inject(bindings.ports["web1"], offer).delivered == []
    unicast = dict(offer, eth_dst=policy.vms["web2"].mac, ipv4_dst="10.1.10.12")
    assert sim.inject(bindings.ports["web1"], unicast).delivered == []
    # The same frame from another port still reaches nothing either.
    assert sim.inject(bindings.ports["web2"], dict(unicast, eth_src="02:00:00:00:10:12",
                                                   ipv4_src="10.1.10.12",
                                                   eth_dst=MAC, ipv4_dst="10.1.10.11")
                      ).delivered == []


# ---- the daemon's responder and its counters -------------------------------------------


def test_the_responder_answers_only_the_vm_bound_to_the_port(compiled):
    from sdnctl.live.dhcp import DhcpResponder
    from sdnctl.metrics import _dhcp_families, render

    policy, topo, bindings, _ = compiled
    at = bindings.ports["web1"]
    responder = DhcpResponder()
    reply = responder.handle(policy, topo, bindings, at.switch, at.port,
                             ask(MessageType.DISCOVER))
    assert reply is not None and decode_reply(reply)[1] == IP("10.1.10.11")
    # web2's port hears web1's request: nothing (the binding decides, not the frame).
    web2 = bindings.ports["web2"]
    assert responder.handle(policy, topo, bindings, web2.switch, web2.port,
                            ask(MessageType.DISCOVER)) is None
    assert responder.handle(policy, topo, bindings, at.switch, 999,
                            ask(MessageType.DISCOVER)) is None  # bound to no VM
    assert responder.handle(policy, topo, bindings, at.switch, at.port, b"\x00" * 60) is None
    snap = responder.snapshot()
    assert snap["by_vm"]["web1"]["offer"] == 1 and snap["by_vm"]["web1"]["malformed"] == 1
    assert snap["by_vm"]["web2"]["ignored"] == 1
    assert snap["unbound_port"] == {at.switch: 1}
    # Meter drops: growth between reads, a counter that restarted counts from zero.
    from sdnctl.compile.dhcp import SWITCH_DHCP_METER, vm_dhcp_meter
    meter = vm_dhcp_meter(at.port)
    responder.record_meter_drops(at.switch, bindings, {meter: 100, SWITCH_DHCP_METER: 7})
    responder.record_meter_drops(at.switch, bindings, {meter: 150, SWITCH_DHCP_METER: 7})
    responder.record_meter_drops(at.switch, bindings, {meter: 20, SWITCH_DHCP_METER: 9})
    snap = responder.snapshot()
    assert snap["by_vm"]["web1"]["meter_drops"] == 170
    assert snap["by_switch"][at.switch]["meter_drops"] == 9
    text = render(_dhcp_families(snap))
    assert 'sdnctl_dhcp_requests_vm_total{vm="web1",outcome="offer"} 1' in text
    assert 'sdnctl_dhcp_meter_drops_vm_total{vm="web1"} 170' in text
    # The ND meters beside them, counted apart (each meter's counter on its own).
    from sdnctl.compile.nd import SWITCH_ND_METER, vm_nd_meter
    nd = vm_nd_meter(at.port)
    responder.record_meter_drops(at.switch, bindings, {nd: 40, SWITCH_ND_METER: 3, meter: 20})
    responder.record_meter_drops(at.switch, bindings, {nd: 45, SWITCH_ND_METER: 5, meter: 21})
    snap = responder.snapshot()
    assert snap["by_vm"]["web1"]["nd_meter_drops"] == 45
    assert snap["by_vm"]["web1"]["meter_drops"] == 171
    assert snap["by_switch"][at.switch]["nd_meter_drops"] == 5
    assert snap["by_switch"][at.switch]["meter_drops"] == 9
    text = render(_dhcp_families(snap))
    assert 'sdnctl_nd_meter_drops_vm_total{vm="web1"} 45' in text
    assert f'sdnctl_nd_meter_drops_switch_total{{switch="{at.switch}"}} 5' in text
    assert f'sdnctl_dhcp_unbound_port_total{{switch="{at.switch}"}} 1' in text


@settings(max_examples=30, deadline=None)
@given(networks())
def test_on_random_networks_only_a_vms_own_requests_reach_the_controller(net):
    """For every bound VM: its DISCOVER (from 0.0.0.0) and renewal (from its IP) reach
    the controller at its own switch and nowhere else; the same with a neighbour's
    MAC, and any DHCP answer it sends, reach nothing at all."""
    policy, topo, bindings = net
    sim = Simulator(compile_network(policy, topo, bindings), topo)
    bound = [policy.vms[name] for name in sorted(bindings.ports) if name in policy.vms]
    for vm in bound:
        at = bindings.ports[vm.name]
        controller = [PortRef(at.switch, OFPP_CONTROLLER)]
        for src in ("0.0.0.0", str(vm.ip)):
            assert [r for r, _ in sim.inject(at, dhcp_packet(vm.mac, src=src)).delivered] \
                == controller
        other = next((o for o in bound if o.mac != vm.mac), None)
        if other is not None:
            assert sim.inject(at, dhcp_packet(other.mac)).delivered == []
        offer = dhcp_packet(vm.mac, sport=67, dport=68, src=str(vm.ip))
        for dst in bound:
            unicast = dict(offer, eth_dst=dst.mac, ipv4_dst=str(dst.ip))
            assert sim.inject(at, unicast).delivered == []
