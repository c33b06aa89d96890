"""The Internet checksum and ICMP echo messages, for the agents that run inside lab hosts.

Standard library only: the probe agent (`agent.py`) and the stream agent
(`experiments/streamer.py`) run as scripts inside Mininet hosts and import this
module, so it must start fast and need nothing but Python.
"""

from __future__ import annotations

import struct

ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's-complement sum
    of the 16-bit words (an odd byte is padded with a zero).

    >>> hex(checksum(bytes.fromhex("0001f203f4f5f6f7")))  # RFC 1071's example: sum ddf2
    '0x220d'
    """
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:  # fold the carries back in until none is left
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp_echo(kind: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request or reply (`kind`) with its checksum; `seq` wraps at 16 bits."""
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq & 0xFFFF)
    return header[:2] + struct.pack("!H", checksum(header + payload)) + header[4:] + payload
