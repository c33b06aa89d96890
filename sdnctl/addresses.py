"""Addresses as the YAML files write them, read the same way by the policy and the
topology readers (a neutral module, so that neither package imports the other for it)."""

from __future__ import annotations

from ipaddress import AddressValueError, IPv4Address, IPv4Network
from typing import Any

# Address blocks where no VM, NAT address or router can be a unicast host (RFC 6890):
# traffic there is not unicast between hosts, or never leaves a host.
RESERVED_BLOCKS = (
    (IPv4Network("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (IPv4Network("127.0.0.0/8"), "loopback (127.0.0.0/8)"),
    (IPv4Network("169.254.0.0/16"), "link-local (169.254.0.0/16)"),
    (IPv4Network("224.0.0.0/4"), "multicast (224.0.0.0/4)"),
    (IPv4Network("240.0.0.0/4"), "reserved class E and the broadcast address (240.0.0.0/4)"),
)


def parse_address(value: Any) -> IPv4Address | None:
    """An IPv4 address written as text (ipaddress would also take a bare int)."""
    if not isinstance(value, str):
        return None
    try:
        return IPv4Address(value.strip())
    except AddressValueError:
        return None


def unicast_trouble(ip: IPv4Address) -> str:
    """Why `ip` cannot be a unicast host address; "" if it can.

    >>> unicast_trouble(IPv4Address("224.0.0.5"))
    'is not a unicast address: it is in multicast (224.0.0.0/4)'
    >>> unicast_trouble(IPv4Address("203.0.113.10"))
    ''
    """
    for block, name in RESERVED_BLOCKS:
        if ip in block:
            return f"is not a unicast address: it is in {name}"
    return ""
