"""The distributed router's "time exceeded": the answer itself (sdnctl.icmp), and the
controller's responder that sends it only to the VM bound to the port, for packets
to that VM's own gateway (sdnctl.live.dhcp). The path there is in
tests/unit/test_security_behaviour.py and tests/unit/test_controller_path.py."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror
from scapy.layers.l2 import Ether

from sdnctl.bindings import planned_bindings
from sdnctl.dhcp.wire import MessageType, checksum, decode_reply, encode_request
from sdnctl.icmp import MAX_ANSWER_IP, time_exceeded
from sdnctl.live.dhcp import DhcpResponder
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
