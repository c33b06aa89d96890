"""What the distributed router says itself: ICMP "time exceeded" (RFC 792, RFC 1812),
and ICMPv6 "time exceeded", hop limit exceeded in transit (RFC 4443).

A packet sent to a gateway MAC with TTL 1 (or 0) would be discarded by the router
(dec_ttl). A router then tells the sender, which is what traceroute's first hop
and `ping -t 1` wait for. The switch sends such packets, metered, to the
controller (sdnctl.compile.dhcp); this module builds the answer from the packet
and the gateway it was sent to. Pure: bytes in, bytes out.

Not answered, as RFC 1812 asks: ICMP errors (no error about an error), fragments
other than the first, and packets from a broadcast, multicast or zero source.

IPv6 likewise (RFC 4443 2.4 (e)): a packet sent to the gateway MAC with hop limit
1 (or 0) is answered from the segment's `gateway6` with ICMPv6 type 3 code 0,
quoting as much of the packet as fits in the minimum IPv6 MTU (1280 bytes). Not
answered: ICMPv6 errors and redirects, packets to a multicast address, from an
unspecified, multicast or loopback source, fragments other than the first (their
upper-layer protocol is unknown), and packets whose extension headers do not
end inside the frame.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

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


ETH_IP6 = 0x86DD
ICMPV6 = 58
TIME_EXCEEDED6, HOP_LIMIT_EXCEEDED = 3, 0
ICMP6_REDIRECT = 137
MIN_MTU6 = 1280  # RFC 4443 2.4 (c): the answer must not exceed it
IP6_HEADER = 40
# Extension headers read through to the upper-layer protocol (RFC 8200 4.1):
# hop-by-hop options, routing, destination options (length in 8-octet units after
# the first 8) and fragment (8 octets).
EXT_OPTIONS = frozenset({0, 43, 60})
EXT_FRAGMENT = 44
MAX_EXTENSIONS = 8  # more than a real packet carries: stop reading a crafted chain


def expired6_at_router(frame: bytes, gateway_mac: str) -> bool:
    """Whether `frame` is IPv6 to `gateway_mac` with a hop limit the router would
    discard."""
    return (len(frame) >= 14 + IP6_HEADER and frame[0:6] == mac_bytes(gateway_mac)
            and frame[12:14] == b"\x86\xdd" and frame[14] >> 4 == 6 and frame[21] <= 1)


def upper_layer6(ip: bytes) -> tuple[int, int] | None:
    """(protocol, offset) of the upper-layer header of the IPv6 packet `ip`, read
    through its extension headers; None for a later fragment or a chain that does
    not end inside `ip`."""
    proto, at = ip[6], IP6_HEADER
    for _ in range(MAX_EXTENSIONS):
        if proto == EXT_FRAGMENT:
            if len(ip) < at + 8 or struct.unpack("!H", ip[at + 2:at + 4])[0] >> 3:
                return None  # too short, or not the first fragment
            proto, at = ip[at], at + 8
        elif proto in EXT_OPTIONS:
            if len(ip) < at + 2:
                return None
            proto, at = ip[at], at + 8 * (ip[at + 1] + 1)
        else:
            return (proto, at) if at <= len(ip) else None
    return None


def time_exceeded6(frame: bytes, gateway_mac: str, gateway6: IPv6Address) -> bytes | None:
    """The ICMPv6 answer to an expired `frame` from the gateway, addressed back to
    its sender; None when none is due (see the module docstring)."""
    if not expired6_at_router(frame, gateway_mac):
        return None
    ip = frame[14:]
    payload = struct.unpack("!H", ip[4:6])[0]
    ip = ip[:min(IP6_HEADER + payload, len(ip))]
    source, destination = IPv6Address(ip[8:24]), IPv6Address(ip[24:40])
    if (source.is_multicast or source.is_unspecified or source.is_loopback
            or destination.is_multicast):
        return None
    upper = upper_layer6(ip)
    if upper is None:
        return None
    proto, at = upper
    if proto == ICMPV6 and len(ip) > at and (ip[at] < 128 or ip[at] == ICMP6_REDIRECT):
        return None
    quote = ip[:MIN_MTU6 - IP6_HEADER - 8]
    message = struct.pack("!BBHI", TIME_EXCEEDED6, HOP_LIMIT_EXCEEDED, 0, 0) + quote
    pseudo = (gateway6.packed + source.packed
              + struct.pack("!I3xB", len(message), ICMPV6))
    message = message[:2] + struct.pack("!H", checksum(pseudo + message)) + message[4:]
    header = struct.pack("!IHBB16s16s", 6 << 28, len(message), ICMPV6, ANSWER_TTL,
                         gateway6.packed, source.packed)
    return frame[6:12] + mac_bytes(gateway_mac) + b"\x86\xdd" + header + message
