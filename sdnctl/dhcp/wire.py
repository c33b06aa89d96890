"""DHCPv4 on the wire (RFC 2131/2132): parse a client's frame, encode the answer.

`parse_request` takes a whole Ethernet frame as the switch hands it to the
controller and returns a `Request`, or raises `MalformedDhcp` (and nothing else)
for anything that is not a well-formed DHCP client message: packet-ins come from
VMs, so every byte is hostile. `encode_reply` builds the complete answer frame
(Ethernet, IPv4 and UDP headers with correct checksums).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address

ETH_IP = 0x0800
UDP = 17
CLIENT_PORT = 68
SERVER_PORT = 67
MAGIC_COOKIE = b"\x63\x82\x53\x63"
BROADCAST_FLAG = 0x8000
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ZERO = IPv4Address(0)
LIMITED_BROADCAST = IPv4Address("255.255.255.255")

_BOOTP = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # the fixed 236 bytes
_MIN_BOOTP = 300  # old clients drop replies shorter than a BOOTP packet (RFC 1542)


class MalformedDhcp(ValueError):
    """The frame is not a DHCP client message this server can read."""


class MessageType(enum.IntEnum):
    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Option(enum.IntEnum):
    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS = 6
    HOST_NAME = 12
    INTERFACE_MTU = 26
    BROADCAST = 28
    REQUESTED_IP = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_LIST = 55
    MESSAGE = 56
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    END = 255


@dataclass(frozen=True, slots=True)
class Request:
    """What a client asked, with the headers it came in."""

    eth_src: str
    ip_src: IPv4Address
    ip_dst: IPv4Address
    kind: MessageType
    xid: int
    flags: int
    ciaddr: IPv4Address
    giaddr: IPv4Address
    chaddr: str  # the client's hardware address, as a MAC string
    requested_ip: IPv4Address | None = None
    server_id: IPv4Address | None = None

    @property
    def wants_broadcast(self) -> bool:
        return bool(self.flags & BROADCAST_FLAG)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer, before it is framed: what `encode_reply` writes."""

    kind: MessageType
    request: Request
    yiaddr: IPv4Address
    ciaddr: IPv4Address
    server_ip: IPv4Address
    server_mac: str
    eth_dst: str
    ip_dst: IPv4Address
    options: tuple[tuple[int, bytes], ...] = field(default=())


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`.

    >>> hex(checksum(bytes.fromhex("4500003c1c4640004006 0000 ac100a63ac100a0c".replace(" ", ""))))
    '0xb1e6'
    """
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def parse_request(frame: bytes) -> Request:
    """An Ethernet frame carrying a DHCP client message -> `Request`; MalformedDhcp else."""
    if len(frame) < 14:
        raise MalformedDhcp("shorter than an Ethernet header")
    eth_src = mac_text(frame[6:12])
    (eth_type,) = struct.unpack_from("!H", frame, 12)
    if eth_type != ETH_IP:
        raise MalformedDhcp(f"ethertype {eth_type:#06x} is not IPv4")
    udp_payload, ip_src, ip_dst = _ipv4_udp(frame[14:])
    return _bootp_request(udp_payload, eth_src, ip_src, ip_dst)


def _ipv4_udp(packet: bytes) -> tuple[bytes, IPv4Address, IPv4Address]:
    if len(packet) < 20:
        raise MalformedDhcp("shorter than an IPv4 header")
    version_ihl, _, total, _, frag, _, proto = struct.unpack_from("!BBHHHBB", packet)
    ihl = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or ihl < 20 or total < ihl + 8 or total > len(packet):
        raise MalformedDhcp("bad IPv4 header (version, header or total length)")
    if frag & 0x3FFF:
        raise MalformedDhcp("fragmented")  # a DHCP message fits one frame
    if proto != UDP:
        raise MalformedDhcp(f"IP protocol {proto} is not UDP")
    ip_src = IPv4Address(packet[12:16])
    ip_dst = IPv4Address(packet[16:20])
    sport, dport, length = struct.unpack_from("!HHH", packet, ihl)
    if (sport, dport) != (CLIENT_PORT, SERVER_PORT):
        raise MalformedDhcp(f"UDP {sport}->{dport} is not a DHCP client's 68->67")
    if length < 8 or ihl + length > total:
        raise MalformedDhcp("bad UDP length")
    return packet[ihl + 8:ihl + length], ip_src, ip_dst


def _bootp_request(data: bytes, eth_src: str, ip_src: IPv4Address,
                   ip_dst: IPv4Address) -> Request:
    if len(data) < _BOOTP.size + len(MAGIC_COOKIE):
        raise MalformedDhcp("shorter than a BOOTP message")
    op, htype, hlen, _, xid, _, flags, ciaddr, _, _, giaddr, chaddr, _, _ = (
        _BOOTP.unpack_from(data))
    if op != 1:
        raise MalformedDhcp("not a BOOTREQUEST")
    if htype != 1 or hlen != 6:
        raise MalformedDhcp("hardware address is not Ethernet")
    if data[_BOOTP.size:_BOOTP.size + 4] != MAGIC_COOKIE:
        raise MalformedDhcp("no DHCP magic cookie (plain BOOTP)")
    options = dict(iter_options(data[_BOOTP.size + 4:]))
    kind_raw = options.get(Option.MESSAGE_TYPE)
    if kind_raw is None or len(kind_raw) != 1:
        raise MalformedDhcp("no DHCP message type")
    try:
        kind = MessageType(kind_raw[0])
    except ValueError:
        raise MalformedDhcp(f"unknown DHCP message type {kind_raw[0]}") from None
    return Request(
        eth_src, ip_src, ip_dst, kind, xid, flags, IPv4Address(ciaddr), IPv4Address(giaddr),
        mac_text(chaddr[:6]),
        _address_option(options, Option.REQUESTED_IP),
        _address_option(options, Option.SERVER_ID),
    )


def iter_options(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(code, value) for each option up to END; MalformedDhcp if one runs past the end.

    >>> list(iter_options(bytes([53, 1, 1, 0, 255])))
    [(53, b'\\x01')]
    """
    i = 0
    while i < len(data):
        code = data[i]
        if code == Option.END:
            return
        if code == Option.PAD:
            i += 1
            continue
        if i + 1 >= len(data) or i + 2 + data[i + 1] > len(data):
            raise MalformedDhcp(f"option {code} runs past the end of the message")
        yield code, data[i + 2:i + 2 + data[i + 1]]
        i += 2 + data[i + 1]
    raise MalformedDhcp("options do not end (no END option)")


def _address_option(options: dict[int, bytes], code: Option) -> IPv4Address | None:
    value = options.get(code)
    if value is None:
        return None
    if len(value) != 4:
        raise MalformedDhcp(f"option {int(code)} must be 4 bytes, got {len(value)}")
    return IPv4Address(value)


# ---- the answer --------------------------------------------------------------


def encode_options(options: tuple[tuple[int, bytes], ...]) -> bytes:
    out = bytearray()
    for code, value in options:
        if len(value) > 255:
            raise ValueError(f"option {code} is longer than 255 bytes")
        out += bytes((code, len(value))) + value
    out.append(Option.END)
    return bytes(out)


def encode_reply(reply: Reply) -> bytes:
    """The whole answer frame: Ethernet / IPv4 / UDP 67->68 / BOOTREPLY."""
    req = reply.request
    bootp = _BOOTP.pack(
        2, 1, 6, 0, req.xid, 0, req.flags, reply.ciaddr.packed, reply.yiaddr.packed,
        ZERO.packed, req.giaddr.packed, mac_bytes(req.chaddr).ljust(16, b"\0"),
        b"", b"",
    ) + MAGIC_COOKIE + encode_options(reply.options)
    bootp = bootp.ljust(_MIN_BOOTP, b"\0")
    udp = _udp(reply.server_ip, reply.ip_dst, SERVER_PORT, CLIENT_PORT, bootp)
    ip = _ipv4_header(reply.server_ip, reply.ip_dst, len(udp)) + udp
    eth = mac_bytes(reply.eth_dst) + mac_bytes(reply.server_mac) + struct.pack("!H", ETH_IP)
    return eth + ip


def _udp(src: IPv4Address, dst: IPv4Address, sport: int, dport: int, payload: bytes) -> bytes:
    length = 8 + len(payload)
    pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, UDP, length)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    csum = checksum(pseudo + header + payload) or 0xFFFF  # 0 means "no checksum" in UDP
    return struct.pack("!HHHH", sport, dport, length, csum) + payload


def _ipv4_header(src: IPv4Address, dst: IPv4Address, payload_len: int) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0x10, 20 + payload_len, 0, 0, 64, UDP, 0,
                         src.packed, dst.packed)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:]


def encode_request(kind: MessageType, mac: str, xid: int = 1, *,
                   ciaddr: IPv4Address = ZERO, requested_ip: IPv4Address | None = None,
                   server_id: IPv4Address | None = None, flags: int = 0,
                   ip_src: IPv4Address | None = None,
                   ip_dst: IPv4Address = LIMITED_BROADCAST) -> bytes:
    """A client's frame, as a VM would send it: for tests, benchmarks and the lab's
    hostile VMs (which need no DHCP client library for a storm)."""
    options: list[tuple[int, bytes]] = [(Option.MESSAGE_TYPE, bytes((kind,)))]
    if requested_ip is not None:
        options.append((Option.REQUESTED_IP, requested_ip.packed))
    if server_id is not None:
        options.append((Option.SERVER_ID, server_id.packed))
    bootp = _BOOTP.pack(
        1, 1, 6, 0, xid, 0, flags, ciaddr.packed, ZERO.packed, ZERO.packed, ZERO.packed,
        mac_bytes(mac).ljust(16, b"\0"), b"", b"",
    ) + MAGIC_COOKIE + encode_options(tuple(options))
    bootp = bootp.ljust(_MIN_BOOTP, b"\0")
    src = ip_src if ip_src is not None else ciaddr
    udp = _udp(src, ip_dst, CLIENT_PORT, SERVER_PORT, bootp)
    eth = mac_bytes(BROADCAST_MAC) + mac_bytes(mac) + struct.pack("!H", ETH_IP)
    return eth + _ipv4_header(src, ip_dst, len(udp)) + udp


def decode_reply(frame: bytes) -> tuple[IPv4Address, IPv4Address, str, dict[int, bytes]]:
    """(ip_dst, yiaddr, eth_dst, options) of an answer frame: for tests and the lab.
    Checks both checksums; MalformedDhcp if anything is off."""
    if len(frame) < 14 + 20 + 8 + _BOOTP.size + 4:
        raise MalformedDhcp("too short for a DHCP reply")
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if checksum(ip[:ihl]) != 0:
        raise MalformedDhcp("bad IPv4 header checksum")
    total = struct.unpack_from("!H", ip, 2)[0]
    udp = ip[ihl:total]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, UDP, len(udp))
    if checksum(pseudo + udp) != 0:
        raise MalformedDhcp("bad UDP checksum")
    bootp = udp[8:]
    yiaddr = IPv4Address(bootp[16:20])
    return (IPv4Address(ip[16:20]), yiaddr, mac_text(frame[0:6]),
            dict(iter_options(bootp[_BOOTP.size + 4:])))
