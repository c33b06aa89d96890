"""The Internet checksum and ICMP echo messages, for the agents that run inside lab hosts.

Standard library and sdnctl's core only: the probe agent (`agent.py`) and the stream agent
(`experiments/streamer.py`) run as scripts inside Mininet hosts and import this
module, so it must start fast and need nothing but Python.
"""

from __future__ import annotations

import struct

from sdnctl.dhcp.wire import checksum  # the one copy (core, standard library only)

ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129


def icmp_echo(kind: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request or reply (`kind`) with its checksum; `seq` wraps at 16 bits."""
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq & 0xFFFF)
    return header[:2] + struct.pack("!H", checksum(header + payload)) + header[4:] + payload
