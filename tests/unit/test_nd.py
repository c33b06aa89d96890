"""Neighbour discovery on the wire and in the controller's responder: solicitations
read strictly (every byte comes from a VM), advertisements written as RFC 4861
says, answers only for the VM bound to the port, RAs with the segment's prefix,
MTU and router, and unsolicited RAs when they are due."""

from __future__ import annotations

import contextlib
import struct
from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdnctl.bindings import planned_bindings
from sdnctl.live.dhcp import RA_EVERY_S, DhcpResponder
from sdnctl.nd.wire import (
    NEIGHBOR_ADVERT,
    ROUTER_ADVERT,
    MalformedNd,
    checksum,
    encode_solicitation,
    parse_solicitation,
)
from sdnctl.pipeline import gateway_mac
from sdnctl.policy.ipv6 import link_local
from sdnctl.policy.load import parse_policy
from sdnctl.topology.load import parse_topology

TOPOLOGY = """\
version: 1
underlay_mtu: 1600
switches:
  hv1: {dpid: 1, role: hypervisor}
  hv2: {dpid: 2, role: hypervisor}
  leaf: {dpid: 16, role: fabric}
links:
  - {a: "hv1:10", b: "leaf:1"}
  - {a: "hv2:10", b: "leaf:2"}
"""
POLICY = """\
version: 1
tenants:
  t:
    segments:
      web: {vlan: 10, subnet: 10.0.10.0/24, gateway: 10.0.10.1,
            subnet6: "2001:db8:10::/64", gateway6: "2001:db8:10::1"}
      lab: {vlan: 20, subnet: 10.0.20.0/24, subnet6: "2001:db8:20::/80"}
      old: {vlan: 30, subnet: 10.0.30.0/24}
vms:
  w1: {tenant: t, segment: web, mac: "02:00:00:00:10:01", ip: 10.0.10.11, host: hv1}
  w2: {tenant: t, segment: web, mac: "02:00:00:00:10:02", ip: 10.0.10.12, host: hv2}
  l1: {tenant: t, segment: lab, mac: "02:00:00:00:20:01", ip: 10.0.20.11,
       ip6: "2001:db8:20::11", host: hv1}
  o1: {tenant: t, segment: old, mac: "02:00:00:00:30:01", ip: 10.0.30.11, host: hv1}
"""


@pytest.fixture(scope="module")
def net():
    topo = parse_topology(TOPOLOGY, "t.yaml")
    policy = parse_policy(POLICY, "p.yaml", topo)
    return policy, topo, planned_bindings(policy, topo)


def _ip6(frame: bytes) -> tuple[IPv6Address, IPv6Address, int, bytes]:
    src, dst = IPv6Address(frame[22:38]), IPv6Address(frame[38:54])
    return src, dst, frame[21], frame[54:]


def _answer(net, vm: str, frame: bytes) -> bytes | None:
    policy, topo, bindings = net
    ref = bindings.ports[vm]
    return DhcpResponder().handle(policy, topo, bindings, ref.switch, ref.port, frame)


def test_a_vm_gets_its_eui64_address_by_default(net):
    assert str(net[0].vms["w1"].ip6) == "2001:db8:10::ff:fe00:1001"
    assert net[0].vms["o1"].ip6 is None


def test_a_neighbour_solicitation_is_answered_with_the_targets_mac(net):
    w1, w2 = net[0].vms["w1"], net[0].vms["w2"]
    out = _answer(net, "w1", encode_solicitation(w1.mac, w1.ip6, w2.ip6))
    assert out is not None
    assert out[:6] == bytes.fromhex("020000001001") and out[6:12] == bytes.fromhex("020000001002")
    src, dst, hlim, msg = _ip6(out)
    assert (src, dst, hlim) == (w2.ip6, w1.ip6, 255)
    assert msg[0] == NEIGHBOR_ADVERT and msg[4] == 0x60  # solicited + override, no router
    assert IPv6Address(msg[8:24]) == w2.ip6
    assert msg[24:32] == bytes.fromhex("0201020000001002")  # target link-layer option
    assert checksum(src, dst, msg[:2] + b"\0\0" + msg[4:]) == struct.unpack("!H", msg[2:4])[0]


def test_the_router_is_answered_with_the_gateway_mac_and_the_router_flag(net):
    w1 = net[0].vms["w1"]
    for target in (IPv6Address("2001:db8:10::1"), link_local(gateway_mac(10))):
        out = _answer(net, "w1", encode_solicitation(w1.mac, link_local(w1.mac), target))
        assert out is not None and out[6:12] == bytes.fromhex(gateway_mac(10).replace(":", ""))
        assert _ip6(out)[3][4] == 0xE0


def test_a_router_solicitation_gets_prefix_mtu_and_router(net):
    w1 = net[0].vms["w1"]
    out = _answer(net, "w1", encode_solicitation(w1.mac, IPv6Address("::"), None))
    assert out is not None
    src, dst, hlim, msg = _ip6(out)
    assert (src, dst, hlim) == (link_local(gateway_mac(10)), IPv6Address("ff02::1"), 255)
    assert msg[0] == ROUTER_ADVERT and struct.unpack("!H", msg[6:8])[0] == 9000
    options = _options(msg[16:])
    assert options[5][2:6] == struct.pack("!I", 1500)  # what DHCP says: the most, here
    prefix = options[3]
    assert prefix[0] == 64 and prefix[1] == 0xC0  # on-link, autonomous
    assert IPv6Address(prefix[14:30]) == IPv6Address("2001:db8:10::")


def test_without_gateway6_no_router_and_without_a_64_no_slaac(net):
    l1 = net[0].vms["l1"]
    out = _answer(net, "l1", encode_solicitation(l1.mac, link_local(l1.mac), None))
    assert out is not None
    msg = _ip6(out)[3]
    assert struct.unpack("!H", msg[6:8])[0] == 0  # router lifetime 0: not a default router
    prefix = _options(msg[16:])[3]
    assert prefix[0] == 80 and prefix[1] == 0x80  # on-link only


def _options(raw: bytes) -> dict[int, bytes]:
    out, i = {}, 0
    while i < len(raw):
        out[raw[i]] = raw[i + 2:i + 8 * raw[i + 1]]
        i += 8 * raw[i + 1]
    return out


@pytest.mark.parametrize("case", ["other-vm-mac", "dad", "foreign-source", "unknown-target",
                                  "no-ipv6", "other-port"])
def test_no_answer_otherwise(net, case):
    policy, topo, bindings = net
    w1, w2, o1 = policy.vms["w1"], policy.vms["w2"], policy.vms["o1"]
    vm, frame = "w1", encode_solicitation(w1.mac, w1.ip6, w2.ip6)
    if case == "other-vm-mac":
        frame = encode_solicitation(w2.mac, w1.ip6, w2.ip6)
    elif case == "dad":
        frame = encode_solicitation(w1.mac, IPv6Address("::"), w1.ip6)
    elif case == "foreign-source":
        frame = encode_solicitation(w1.mac, w2.ip6, w2.ip6)
    elif case == "unknown-target":
        frame = encode_solicitation(w1.mac, w1.ip6, IPv6Address("2001:db8:10::99"))
    elif case == "no-ipv6":
        vm, frame = "o1", encode_solicitation(o1.mac, link_local(o1.mac), None)
    elif case == "other-port":
        vm = "o1"  # w1's solicitation arriving on o1's port
    assert _answer(net, vm, frame) is None


@pytest.mark.parametrize("mangle", ["hop-limit", "code", "checksum", "truncated", "zero-option",
                                    "multicast-target", "not-icmp", "ipv4"])
def test_each_malformation_is_refused(mangle):
    good = bytearray(encode_solicitation("02:00:00:00:10:01", IPv6Address("2001:db8::1"),
                                         IPv6Address("2001:db8::2")))
    parse_solicitation(bytes(good))
    if mangle == "hop-limit":
        good[21] = 64
    elif mangle == "code":
        good[55] = 1
    elif mangle == "checksum":
        good[56] ^= 0xFF
    elif mangle == "truncated":
        good = good[:-10]
    elif mangle == "zero-option":
        good[79] = 0
    elif mangle == "multicast-target":
        good = bytearray(encode_solicitation("02:00:00:00:10:01", IPv6Address("2001:db8::1"),
                                             IPv6Address("ff02::1")))
    elif mangle == "not-icmp":
        good[20] = 17
    elif mangle == "ipv4":
        good[12:14] = b"\x08\x00"
    with pytest.raises(MalformedNd):
        parse_solicitation(bytes(good))


@given(st.binary(max_size=200))
def test_random_bytes_are_refused_with_one_error_type(data):
    frame = bytes(12) + b"\x86\xdd" + data
    with contextlib.suppress(MalformedNd):  # anything else escaping fails the test
        parse_solicitation(frame)


def test_unsolicited_advertisements_when_due(net):
    policy, topo, bindings = net
    responder = DhcpResponder()
    first = responder.due_adverts(policy, topo, bindings, "hv1", now=1000.0)
    ports = {bindings.ports[n].port for n in ("w1", "l1")}  # o1 has no IPv6
    assert {port for port, _ in first} == ports
    assert all(_ip6(frame)[3][0] == ROUTER_ADVERT for _, frame in first)
    assert responder.due_adverts(policy, topo, bindings, "hv1", now=1000.0 + RA_EVERY_S / 2) == []
    assert len(responder.due_adverts(policy, topo, bindings, "hv1",
                                     now=1001.0 + RA_EVERY_S)) == 2


