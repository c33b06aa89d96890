"""ARP frames a gateway's uplink sends and hears: a request for its next hop, a
gratuitous ARP for an address it now answers for, and the next hop's reply.

Frames are built whole (Ethernet, an 802.1Q tag when the uplink has a VLAN, ARP
for IPv4 over Ethernet), to be sent as they are by a packet-out on the uplink port.

>>> from ipaddress import IPv4Address
>>> frame = arp_frame(ARP_REPLY, "02:aa:00:00:00:01", IPv4Address("203.0.113.1"),
...                   "0e:01:00:30:00:01", IPv4Address("203.0.113.2"), vlan=7)
>>> heard = parse_arp(frame)
>>> heard.op, heard.sender_mac, str(heard.sender_ip)
(2, '02:aa:00:00:00:01', '203.0.113.1')
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from sdnctl.dhcp.wire import mac_bytes, mac_text

ARP_REQUEST = 1
ARP_REPLY = 2
BROADCAST = "ff:ff:ff:ff:ff:ff"
_ETH_ARP = b"\x08\x06"
_ETH_VLAN = b"\x81\x00"
_ARP_IPV4 = b"\x00\x01\x08\x00\x06\x04"  # Ethernet hardware, IPv4 protocol, 6- and 4-byte addresses
_ZERO_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True, slots=True)
class ArpFrame:
    op: int
    sender_mac: str
    sender_ip: IPv4Address
    target_ip: IPv4Address


def arp_frame(op: int, sender_mac: str, sender_ip: IPv4Address, target_mac: str,
              target_ip: IPv4Address, vlan: int | None = None, eth_dst: str | None = None
              ) -> bytes:
    """An ARP frame from `sender_mac`; to `eth_dst` (default: `target_mac`, or
    broadcast for a request), tagged with `vlan` if given."""
    dst = eth_dst or (BROADCAST if op == ARP_REQUEST else target_mac)
    tag = _ETH_VLAN + struct.pack("!H", vlan) if vlan is not None else b""
    arp = (_ARP_IPV4 + struct.pack("!H", op) + mac_bytes(sender_mac) + sender_ip.packed
           + mac_bytes(target_mac) + target_ip.packed)
    return mac_bytes(dst) + mac_bytes(sender_mac) + tag + _ETH_ARP + arp


def who_has(sender_mac: str, sender_ip: IPv4Address, target_ip: IPv4Address,
            vlan: int | None = None) -> bytes:
    """A broadcast request for `target_ip`'s MAC."""
    return arp_frame(ARP_REQUEST, sender_mac, sender_ip, _ZERO_MAC, target_ip, vlan)


def gratuitous(sender_mac: str, address: IPv4Address, vlan: int | None = None) -> bytes:
    """A broadcast request for `address` from `address` itself: every neighbour that
    knows `address` now sends to `sender_mac` (RFC 5227's announcement)."""
    return arp_frame(ARP_REQUEST, sender_mac, address, _ZERO_MAC, address, vlan)


def parse_arp(frame: bytes) -> ArpFrame | None:
    """An ARP frame for IPv4 over Ethernet (tagged or not), or None."""
    offset = 12
    if frame[offset:offset + 2] == _ETH_VLAN:
        offset += 4
    if frame[offset:offset + 2] != _ETH_ARP or len(frame) < offset + 30:
        return None
    arp = frame[offset + 2:offset + 30]
    if arp[:6] != _ARP_IPV4:
        return None
    (op,) = struct.unpack("!H", arp[6:8])
    return ArpFrame(op, mac_text(arp[8:14]), IPv4Address(arp[14:18]), IPv4Address(arp[24:28]))
