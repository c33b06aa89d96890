"""The distributed router's "time exceeded", in IPv4 and IPv6: the answer itself
(sdnctl.icmp), and the controller's responder that sends it only to the VM bound
to the port, for packets to that VM's own gateway (sdnctl.live.dhcp). The path there is in
tests/unit/test_security_behaviour.py and tests/unit/test_controller_path.py."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6ND_Redirect,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPerror6,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import Ether

from sdnctl.bindings import planned_bindings
from sdnctl.dhcp.wire import MessageType, checksum, decode_reply, encode_request
from sdnctl.icmp import MAX_ANSWER_IP, time_exceeded, time_exceeded6
from sdnctl.live.dhcp import DhcpResponder
from sdnctl.policy.ipv6 import eui64_address
from sdnctl.policy.load import parse_policy
from sdnctl.topology.load import parse_topology
from tests.unit.test_dhcp import MAC, network

GATEWAY_MAC = "0e:00:00:00:00:0a"  # web's (VLAN 10)
GATEWAY_IP = IPv4Address("10.1.10.1")


def frame(ttl: int = 1, dst_mac: str = GATEWAY_MAC, payload=None, **ip) -> bytes:
    ip = {"src": "10.1.10.11", "dst": "10.1.30.11", "ttl": ttl, **ip}
    l4 = payload if payload is not None else ICMP(type=8, id=7, seq=1) / (b"p" * 56)
    return bytes(Ether(src=MAC, dst=dst_mac) / IP(**ip) / l4)


def test_the_answer_comes_from_the_gateway_and_quotes_the_packet():
    sent = frame()
    got = Ether(time_exceeded(sent, GATEWAY_MAC, GATEWAY_IP))
    assert (got.src, got.dst) == (GATEWAY_MAC, MAC)
    assert (got[IP].src, got[IP].dst, got[IP].proto) == ("10.1.10.1", "10.1.10.11", 1)
    assert (got[ICMP].type, got[ICMP].code) == (11, 0)
    raw_ip = bytes(got[IP])
    assert checksum(raw_ip[:20]) == 0 and checksum(raw_ip[20:]) == 0
    assert raw_ip[28:] == sent[14:]  # the whole expired packet, it is short
    assert got[IPerror].dst == "10.1.30.11"


def test_a_long_packet_is_quoted_up_to_576_bytes():
    got = time_exceeded(frame(payload=UDP(sport=5, dport=33434) / (b"x" * 1400)),
                        GATEWAY_MAC, GATEWAY_IP)
    assert got is not None and len(got) - 14 == MAX_ANSWER_IP


@pytest.mark.parametrize("why,sent", [
    ("TTL 2 is routed", frame(ttl=2)),
    ("not sent to the gateway", frame(dst_mac="02:00:00:00:10:12")),
    ("an ICMP error", frame(payload=ICMP(type=3, code=3) / IPerror(src="1.1.1.1", dst="2.2.2.2"))),
    ("a later fragment", frame(frag=10, proto=6, payload=b"y" * 16)),
    ("a multicast source", frame(src="224.0.0.5")),
    ("not IPv4", bytes(Ether(src=MAC, dst=GATEWAY_MAC, type=0x86DD) / (b"\x60" + b"\0" * 60))),
])
def test_no_answer_where_a_router_gives_none(why, sent):
    assert time_exceeded(sent, GATEWAY_MAC, GATEWAY_IP) is None, why


def test_ttl_zero_and_the_first_fragment_are_answered():
    assert time_exceeded(frame(ttl=0), GATEWAY_MAC, GATEWAY_IP) is not None
    first = frame(flags="MF", payload=TCP(dport=22) / (b"z" * 8))
    assert time_exceeded(first, GATEWAY_MAC, GATEWAY_IP) is not None


def test_the_responder_answers_the_bound_vm_for_its_own_gateway_only():
    policy, topo = network()
    bindings = planned_bindings(policy, topo)
    at, web2 = bindings.ports["web1"], bindings.ports["web2"]
    responder = DhcpResponder()

    def handle(where, sent: bytes) -> bytes | None:
        return responder.handle(policy, topo, bindings, where.switch, where.port, sent)

    got = handle(at, frame())
    assert got is not None and Ether(got)[ICMP].type == 11
    assert handle(web2, frame()) is None  # web1's frame heard on web2's port: not web2's
    assert handle(at, frame(ttl=5)) is None  # not expired: then it is no DHCP either
    # A DHCP renewal sent to the gateway with TTL 1 is DHCP, answered as such.
    renew = bytearray(encode_request(MessageType.REQUEST, MAC, 9, ciaddr=IPv4Address("10.1.10.11")))
    renew[0:6] = bytes.fromhex(GATEWAY_MAC.replace(":", ""))
    renew[22] = 1
    renew[24:26] = b"\0\0"
    renew[24:26] = checksum(bytes(renew[14:34])).to_bytes(2, "big")
    answer = handle(at, bytes(renew))
    assert answer is not None and decode_reply(answer)[1] == IPv4Address("10.1.10.11")
    counts = responder.snapshot()["by_vm"]
    assert counts["web1"]["time-exceeded"] == 1 and counts["web1"]["ack"] == 1


# ---- IPv6: hop limit exceeded in transit (RFC 4443) -----------------------------------

GATEWAY6_MAC = "0e:00:00:00:00:14"  # front's (VLAN 20) in tests/unit/test_security_behaviour6.py
GATEWAY6 = IPv6Address("2001:db8:20::1")
MAC6 = "02:00:00:00:20:01"  # f1
SRC6 = str(eui64_address(IPv6Network("2001:db8:20::/64"), MAC6))


def frame6(hlim: int = 1, dst_mac: str = GATEWAY6_MAC, payload=None, src: str = SRC6,
           dst: str = "2001:db8:30::11", ext=()) -> bytes:
    l4 = payload if payload is not None else ICMPv6EchoRequest(id=7, seq=1, data=b"p" * 56)
    pkt = IPv6(src=src, dst=dst, hlim=hlim)
    for header in ext:
        pkt = pkt / header
    return bytes(Ether(src=MAC6, dst=dst_mac) / pkt / l4)


def _valid_icmp6_checksum(answer: bytes) -> bool:
    got = Ether(answer)
    sent_sum = got[ICMPv6TimeExceeded].cksum
    del got[ICMPv6TimeExceeded].cksum
    return Ether(bytes(got))[ICMPv6TimeExceeded].cksum == sent_sum


def test_the_ipv6_answer_comes_from_gateway6_and_quotes_the_packet():
    sent = frame6()
    answer = time_exceeded6(sent, GATEWAY6_MAC, GATEWAY6)
    assert answer is not None
    got = Ether(answer)
    assert (got.src, got.dst) == (GATEWAY6_MAC, MAC6)
    assert (got[IPv6].src, got[IPv6].dst, got[IPv6].nh) == (str(GATEWAY6), SRC6, 58)
    assert (got[ICMPv6TimeExceeded].type, got[ICMPv6TimeExceeded].code) == (3, 0)
    assert _valid_icmp6_checksum(answer)
    assert answer[14 + 40 + 8:] == sent[14:]  # the whole expired packet: it is short
    assert got[IPv6].plen == len(answer) - 14 - 40


def test_a_long_ipv6_packet_is_quoted_up_to_the_minimum_mtu():
    got = time_exceeded6(frame6(payload=UDP(sport=5, dport=33434) / (b"x" * 1400)),
                         GATEWAY6_MAC, GATEWAY6)
    assert got is not None and len(got) - 14 == 1280 and _valid_icmp6_checksum(got)


@pytest.mark.parametrize("why,sent", [
    ("hop limit 2 is routed", frame6(hlim=2)),
    ("not sent to the gateway", frame6(dst_mac="02:00:00:00:20:02")),
    ("an ICMPv6 error", frame6(payload=ICMPv6DestUnreach() / IPerror6(src="::1", dst="::2"))),
    ("an ICMPv6 error behind a hop-by-hop header",
     frame6(ext=[IPv6ExtHdrHopByHop()], payload=ICMPv6PacketTooBig())),
    ("a redirect", frame6(payload=ICMPv6ND_Redirect(tgt="::1", dst="::2"))),
    ("a later fragment", frame6(ext=[IPv6ExtHdrFragment(offset=10, nh=17)], payload=b"y" * 16)),
    ("to a multicast address", frame6(dst="ff02::1")),
    ("from a multicast source", frame6(src="ff02::2")),
    ("from the unspecified address", frame6(src="::")),
    ("an extension header chain that ends past the frame",
     frame6(ext=[IPv6ExtHdrDestOpt(nh=17, len=200, autopad=0)], payload=b"")),
    ("not IPv6", frame(dst_mac=GATEWAY6_MAC)),
])
def test_no_ipv6_answer_where_a_router_gives_none(why, sent):
    assert time_exceeded6(sent, GATEWAY6_MAC, GATEWAY6) is None, why


def test_hop_limit_zero_the_first_fragment_and_extension_headers_are_answered():
    for sent in (frame6(hlim=0),
                 frame6(ext=[IPv6ExtHdrFragment(offset=0, m=1, nh=6)], payload=TCP(dport=22)),
                 frame6(ext=[IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt()],
                        payload=UDP(dport=33434))):
        assert time_exceeded6(sent, GATEWAY6_MAC, GATEWAY6) is not None


def test_the_responder_answers_ipv6_for_the_vms_own_gateway6_only():
    from tests.unit.test_security_behaviour6 import POLICY as POLICY6
    from tests.unit.test_security_behaviour6 import TOPOLOGY as TOPOLOGY6

    topo = parse_topology(TOPOLOGY6, "t.yaml")
    policy = parse_policy(POLICY6, "p.yaml", topo)
    assert str(policy.vms["f1"].ip6) == SRC6
    bindings = planned_bindings(policy, topo)
    responder = DhcpResponder()

    def handle(vm: str, sent: bytes) -> bytes | None:
        at = bindings.ports[vm]
        return responder.handle(policy, topo, bindings, at.switch, at.port, sent)

    got = handle("f1", frame6())
    assert got is not None and Ether(got)[ICMPv6TimeExceeded].type == 3
    assert Ether(got)[IPv6].src == "2001:db8:20::1"
    assert handle("b1", frame6()) is None  # f1's frame heard on b1's port: not b1's
    assert handle("f1", frame6(hlim=2)) is None  # not expired
    assert handle("f1", frame6(src="2001:db8:20::99")) is None  # not f1's own address
    counts = responder.snapshot()["by_vm"]
    assert counts["f1"]["time-exceeded"] == 1 and counts["b1"]["time-exceeded"] == 0
