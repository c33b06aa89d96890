"""IPv6 addresses as the policy uses them: reading, checking, and the two a VM
may send from without naming them (its EUI-64 address in a /64, its link-local).

A VM in a segment with `subnet6` and no `ip6` is given the address SLAAC builds
from its MAC (RFC 4291 appendix A): the segment's /64 prefix, then the MAC with
the universal/local bit flipped and ff:fe in the middle. Port security lets only
that address (or the given `ip6`) and the VM's EUI-64 link-local through, so a
VM must not use privacy (RFC 4941) or stable-privacy (RFC 7217) addresses.

>>> str(eui64_address(IPv6Network("2001:db8:10::/64"), "02:00:00:00:10:11"))
'2001:db8:10::ff:fe00:1011'
>>> str(link_local("02:00:00:00:10:11"))
'fe80::ff:fe00:1011'
"""

from __future__ import annotations

from ipaddress import AddressValueError, IPv6Address, IPv6Network, NetmaskValueError
from typing import Any

SLAAC_PREFIX = 64  # SLAAC builds addresses only in a /64
MOST_PREFIX6 = 120  # a smaller subnet6 leaves almost no room for VMs
LINK_LOCAL = IPv6Network("fe80::/64")
# Blocks where no VM can have its (global or unique-local) address.
_RESERVED6 = (
    (IPv6Network("::/8"), "reserved (unspecified, loopback, IPv4-compatible and -mapped)"),
    (IPv6Network("fe80::/10"), "link-local"),
    (IPv6Network("fec0::/10"), "deprecated site-local"),
    (IPv6Network("ff00::/8"), "multicast"),
)


def interface_id(mac: str) -> int:
    """The modified EUI-64 interface identifier of a MAC (64 bits)."""
    raw = bytearray(int(b, 16) for b in mac.split(":"))
    raw[0] ^= 0x02  # the universal/local bit, inverted
    return int.from_bytes(bytes(raw[:3]) + b"\xff\xfe" + bytes(raw[3:]), "big")


def eui64_address(prefix: IPv6Network, mac: str) -> IPv6Address:
    return IPv6Address(int(prefix.network_address) | interface_id(mac))


def link_local(mac: str) -> IPv6Address:
    """The fe80::/64 address a VM with this MAC configures (addr_gen_mode eui64)."""
    return eui64_address(LINK_LOCAL, mac)


def solicited_node(ip: IPv6Address) -> IPv6Address:
    """ff02::1:ffXX:XXXX, where neighbour solicitations for `ip` are sent."""
    return IPv6Address(int(IPv6Address("ff02::1:ff00:0")) | (int(ip) & 0xFF_FFFF))


def parse_address6(value: Any) -> IPv6Address | None:
    if not isinstance(value, str):
        return None
    try:
        return IPv6Address(value.strip())
    except AddressValueError:
        return None


def read_subnet6(value: Any) -> tuple[IPv6Network | None, str]:
    """(network, "") or (None, why not)."""
    example = "an IPv6 network like 2001:db8:10::/64"
    if not isinstance(value, str) or "/" not in value:
        return None, f"must be {example}"
    try:
        net = IPv6Network(value.strip())
    except (AddressValueError, NetmaskValueError):
        return None, f"{value!r} is not {example}"
    except ValueError:
        loose = IPv6Network(value.strip(), strict=False)
        return None, f"{value} has host bits set (did you mean {loose}?)"
    if net.prefixlen > MOST_PREFIX6:
        return None, f"{net} is too small (at most /{MOST_PREFIX6}; a /64 is recommended)"
    for block, what in _RESERVED6:
        if net.overlaps(block):
            return None, f"{net} overlaps {block} ({what})"
    return net, ""


def placement6_trouble(ip: IPv6Address, subnet: IPv6Network) -> str:
    """Why `ip` cannot be a host address in `subnet`; "" if it can."""
    if ip not in subnet:
        return f"is outside subnet6 {subnet}"
    if ip == subnet.network_address:
        return f"is the subnet-router anycast address of {subnet}"
    return ""
