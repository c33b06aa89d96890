"""ICMPv6 neighbour discovery on the wire (RFC 4861): read a VM's neighbour or
router solicitation, write a neighbour or router advertisement.

`parse_solicitation` takes the whole Ethernet frame a switch hands the controller
and returns a `Solicitation`, or raises `MalformedNd` (and nothing else): the
frame comes from a VM, so every byte is hostile. Only solicitations exactly as
RFC 4861 sends them are read (hop limit 255, ICMP code 0, a valid checksum, no
extension headers). The encoders build complete frames with the ICMPv6
checksum.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from sdnctl.dhcp.wire import checksum as internet_checksum
from sdnctl.dhcp.wire import mac_bytes as _mac_bytes
from sdnctl.dhcp.wire import mac_text as _mac_text

ETH_IP6 = 0x86DD
ICMPV6 = 58
ROUTER_SOLICIT, ROUTER_ADVERT = 133, 134
NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT = 135, 136
OPT_SOURCE_LL, OPT_TARGET_LL, OPT_PREFIX, OPT_MTU = 1, 2, 3, 5
ND_HOP_LIMIT = 255  # RFC 4861: anything else was forwarded, so is not from the link
ALL_NODES = IPv6Address("ff02::1")
UNSPECIFIED = IPv6Address("::")
NA_ROUTER, NA_SOLICITED, NA_OVERRIDE = 0x80, 0x40, 0x20
RA_PREFIX_ON_LINK, RA_PREFIX_AUTONOMOUS = 0x80, 0x40

_ETH = struct.Struct("!6s6sH")
_IP6 = struct.Struct("!IHBB16s16s")


class MalformedNd(ValueError):
    """The frame is not a solicitation this responder can read."""


@dataclass(frozen=True, slots=True)
class Solicitation:
    kind: int  # NEIGHBOR_SOLICIT or ROUTER_SOLICIT
    eth_src: str
    source: IPv6Address  # :: for duplicate address detection (NS) or an early RS
    target: IPv6Address | None  # NS only


@dataclass(frozen=True, slots=True)
class Advert:
    """What to send back: addresses, and the ICMPv6 message after its header."""

    eth_src: str
    eth_dst: str
    source: IPv6Address
    destination: IPv6Address
    kind: int
    body: bytes


def checksum(source: IPv6Address, destination: IPv6Address, message: bytes) -> int:
    """The ICMPv6 checksum over the pseudo-header and `message` (its checksum zero)."""
    return internet_checksum(source.packed + destination.packed
                             + struct.pack("!I3xB", len(message), ICMPV6) + message)


def parse_solicitation(frame: bytes) -> Solicitation:
    if len(frame) < _ETH.size + _IP6.size + 8:
        raise MalformedNd("too short for ICMPv6")
    _dst, src, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_IP6:
        raise MalformedNd(f"ethertype {ethertype:#06x} is not IPv6")
    vtc, length, next_header, hop_limit, raw_src, raw_dst = _IP6.unpack_from(frame, _ETH.size)
    if vtc >> 28 != 6:
        raise MalformedNd("not IP version 6")
    if next_header != ICMPV6:
        raise MalformedNd(f"next header {next_header}: not ICMPv6 right after the header")
    if hop_limit != ND_HOP_LIMIT:
        raise MalformedNd(f"hop limit {hop_limit}, not 255: not from the link")
    start = _ETH.size + _IP6.size
    message = frame[start:start + length]
    if len(message) != length or length < 8:
        raise MalformedNd("ICMPv6 message shorter than its IPv6 payload length says")
    source, destination = IPv6Address(raw_src), IPv6Address(raw_dst)
    kind, code = message[0], message[1]
    if code != 0:
        raise MalformedNd(f"ICMPv6 code {code}")
    zeroed = message[:2] + b"\0\0" + message[4:]
    if struct.unpack_from("!H", message, 2)[0] != checksum(source, destination, zeroed):
        raise MalformedNd("bad ICMPv6 checksum")
    if kind == ROUTER_SOLICIT:
        _check_options(message[8:])
        return Solicitation(kind, _mac_text(src), source, None)
    if kind == NEIGHBOR_SOLICIT:
        if length < 24:
            raise MalformedNd("neighbour solicitation without a target")
        target = IPv6Address(message[8:24])
        if target.is_multicast:
            raise MalformedNd(f"target {target} is multicast")
        _check_options(message[24:])
        return Solicitation(kind, _mac_text(src), source, target)
    raise MalformedNd(f"ICMPv6 type {kind} is not a solicitation")


def _check_options(options: bytes) -> None:
    """Options are (type, length in 8-octet units); a zero length is invalid."""
    i = 0
    while i < len(options):
        if i + 2 > len(options) or options[i + 1] == 0:
            raise MalformedNd("an option of length 0")
        i += 8 * options[i + 1]
    if i != len(options):
        raise MalformedNd("options overrun the message")


def neighbor_advert(asker: Solicitation, mac: str, router: bool) -> Advert:
    """`target is-at mac`, solicited, override, to the asker alone."""
    assert asker.target is not None
    flags = NA_SOLICITED | NA_OVERRIDE | (NA_ROUTER if router else 0)
    body = (struct.pack("!B3x", flags) + asker.target.packed
            + struct.pack("!BB", OPT_TARGET_LL, 1) + _mac_bytes(mac))
    return Advert(mac, asker.eth_src, asker.target, asker.source, NEIGHBOR_ADVERT, body)


@dataclass(frozen=True, slots=True)
class RouterInfo:
    """What a segment's router advertisement says."""

    mac: str  # the distributed router's MAC on the segment
    link_local: IPv6Address  # the router's address on the link (the RA's source)
    prefix: IPv6Network
    mtu: int
    router_lifetime: int  # seconds; 0: not a default router (no gateway6)
    autonomous: bool  # SLAAC in this prefix (a /64)


PREFIX_VALID = PREFIX_PREFERRED = 0xFFFF_FFFF  # infinite: the policy says when it changes


def router_advert(info: RouterInfo, eth_dst: str, destination: IPv6Address) -> Advert:
    flags = RA_PREFIX_ON_LINK | (RA_PREFIX_AUTONOMOUS if info.autonomous else 0)
    body = struct.pack("!BBHII", 64, 0, info.router_lifetime, 0, 0)
    body += struct.pack("!BB", OPT_SOURCE_LL, 1) + _mac_bytes(info.mac)
    body += struct.pack("!BBHI", OPT_MTU, 1, 0, info.mtu)
    body += struct.pack("!BBBBII4x", OPT_PREFIX, 4, info.prefix.prefixlen, flags,
                        PREFIX_VALID, PREFIX_PREFERRED) + info.prefix.network_address.packed
    return Advert(info.mac, eth_dst, info.link_local, destination, ROUTER_ADVERT, body)


def encode_advert(advert: Advert) -> bytes:
    header = struct.pack("!BBH", advert.kind, 0, 0)
    message = header + advert.body
    csum = checksum(advert.source, advert.destination, message)
    message = message[:2] + struct.pack("!H", csum) + message[4:]
    ip6 = _IP6.pack(6 << 28, len(message), ICMPV6, ND_HOP_LIMIT, advert.source.packed,
                    advert.destination.packed)
    eth = _ETH.pack(_mac_bytes(advert.eth_dst), _mac_bytes(advert.eth_src), ETH_IP6)
    return eth + ip6 + message


def encode_solicitation(eth_src: str, source: IPv6Address, target: IPv6Address | None,
                        eth_dst: str = "33:33:00:00:00:02") -> bytes:
    """A VM's solicitation (NS when `target` is given, else RS): what tests and the
    lab send."""
    if target is None:
        kind, destination, body = ROUTER_SOLICIT, IPv6Address("ff02::2"), b"\0" * 4
    else:
        kind = NEIGHBOR_SOLICIT
        destination = IPv6Address(int(IPv6Address("ff02::1:ff00:0")) | (int(target) & 0xFFFFFF))
        body = b"\0" * 4 + target.packed
    if source != UNSPECIFIED:
        body += struct.pack("!BB", OPT_SOURCE_LL, 1) + _mac_bytes(eth_src)
    header = struct.pack("!BBH", kind, 0, 0)
    message = header + body
    csum = checksum(source, destination, message)
    message = message[:2] + struct.pack("!H", csum) + message[4:]
    ip6 = _IP6.pack(6 << 28, len(message), ICMPV6, ND_HOP_LIMIT, source.packed,
                    destination.packed)
    return _ETH.pack(_mac_bytes(eth_dst), _mac_bytes(eth_src), ETH_IP6) + ip6 + message
