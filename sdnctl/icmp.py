"""What the distributed router says itself: ICMP "time exceeded" (RFC 792, RFC 1812).

A packet sent to a gateway MAC with TTL 1 (or 0) would be discarded by the router
(dec_ttl). A router then tells the sender, which is what traceroute's first hop
and `ping -t 1` wait for. The switch sends such packets, metered, to the
controller (sdnctl.compile.dhcp); this module builds the answer from the packet
and the gateway it was sent to. Pure: bytes in, bytes out.

Not answered, as RFC 1812 asks: ICMP errors (no error about an error), fragments
other than the first, and packets from a broadcast, multicast or zero source.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

from sdnctl.dhcp.wire import checksum, mac_bytes

ETH_IP = 0x0800
ICMP = 1
TIME_EXCEEDED, TTL_EXCEEDED_IN_TRANSIT = 11, 0
ICMP_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})  # unreachable, quench, redirect, time, parameter
MAX_ANSWER_IP = 576  # RFC 1812 4.3.2.3: the quote fills the answer up to 576 bytes
ANSWER_TTL = 64


def expired_at_router(frame: bytes, gateway_mac: str) -> bool:
    """Whether `frame` is IPv4 to `gateway_mac` with a TTL the router would discard."""
    return (len(frame) >= 34 and frame[0:6] == mac_bytes(gateway_mac)
            and frame[12:14] == b"\x08\x00" and frame[14] >> 4 == 4 and frame[22] <= 1)


def time_exceeded(frame: bytes, gateway_mac: str, gateway_ip: IPv4Address) -> bytes | None:
    """The answer to an expired `frame` from the gateway, addressed back to its
    sender (Ethernet and IPv4 sources swapped in); None when none is due."""
    if not expired_at_router(frame, gateway_mac):
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    if ihl < 20 or len(ip) < ihl or total < ihl:
        return None
    ip = ip[:min(total, len(ip))]
    source = IPv4Address(ip[12:16])
    if source.is_multicast or source.is_unspecified or source == IPv4Address("255.255.255.255"):
        return None
    if struct.unpack("!H", ip[6:8])[0] & 0x1FFF:  # a later fragment
        return None
    if ip[9] == ICMP and len(ip) > ihl and ip[ihl] in ICMP_ERROR_TYPES:
        return None
    quote = ip[:MAX_ANSWER_IP - 20 - 8]
    body = struct.pack("!BBHI", TIME_EXCEEDED, TTL_EXCEEDED_IN_TRANSIT, 0, 0) + quote
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(body), 0, 0, ANSWER_TTL, ICMP, 0,
                         gateway_ip.packed, source.packed)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return frame[6:12] + mac_bytes(gateway_mac) + b"\x08\x00" + header + body
