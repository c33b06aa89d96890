"""Checks of single policy values, with no reader state: addresses, MACs, labels."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

from sdnctl.addresses import RESERVED_BLOCKS, parse_address
from sdnctl.pipeline import GATEWAY_MAC_PREFIX, OVERLAY_GATEWAY_MAC_PREFIX
from sdnctl.yamlsrc import LineDict, Report, describe, show_key

# What sdnctl.topology.model.uplink_mac builds every gateway uplink's MAC in.
UPLINK_MAC_PREFIX = "0e:01:"


def subnet_trouble(subnet: IPv4Network) -> str:
    """Why `subnet` cannot be a segment's; "" if it can."""
    for block, name in RESERVED_BLOCKS:
        if subnet.overlaps(block):
            return f"overlaps {name}: VMs cannot be unicast addresses there"
    return ""


def placement_trouble(ip: IPv4Address, subnet: IPv4Network, name: str = "") -> str:
    """Why `ip` cannot be a host address in `subnet`; "" if it can."""
    if ip not in subnet:
        return f"is outside {name} ({subnet})" if name else f"is outside subnet {subnet}"
    if ip == subnet.network_address:
        return f"is the network address of {subnet}"
    if ip == subnet.broadcast_address:
        return f"is the broadcast address of {subnet}"
    return ""


def mac_trouble(mac: str) -> str:
    """Why a well-formed, lower-case MAC cannot be a VM's; "" if it can."""
    if int(mac[:2], 16) & 1:
        return "is a multicast address"
    if mac == "00:00:00:00:00:00":
        return "is all zeros"
    if mac.startswith(GATEWAY_MAC_PREFIX):
        return f"is in the range reserved for gateway MACs ({GATEWAY_MAC_PREFIX}xx:xx)"
    if mac.startswith(OVERLAY_GATEWAY_MAC_PREFIX):
        return ("is in the range reserved for overlay gateway MACs "
                f"({OVERLAY_GATEWAY_MAC_PREFIX}xx:xx:xx)")
    if mac.startswith(UPLINK_MAC_PREFIX):
        return f"is in the range reserved for gateway uplink MACs ({UPLINK_MAC_PREFIX}xx:xx:xx:xx)"
    return ""


MAX_DNS_SERVERS = 8  # DHCP carries them in one option; resolvers read three


def read_dns(report: Report, value: Any, line: int, where: str) -> tuple[IPv4Address, ...]:
    """`dns: [10.1.0.2, ...]`: unicast IPv4 addresses, each once."""
    items = report.sequence(value, line, where, "dns")
    if items is None:
        return ()
    found: dict[IPv4Address, None] = {}
    for index, item in enumerate(items):
        item_line = items.item_line(index)
        ip = parse_address(item)
        if ip is None or ip.is_multicast or ip.is_unspecified or ip == IPv4Address(
            "255.255.255.255"
        ):
            report.add(item_line, f"{where}: dns must list unicast IPv4 addresses like "
                                  f"10.1.0.2, got {describe(item)}")
        elif ip in found:
            report.add(item_line, f"{where}: dns lists {ip} twice")
        else:
            found[ip] = None
    if len(found) > MAX_DNS_SERVERS:
        report.add(line, f"{where}: dns lists {len(found)} servers, at most "
                         f"{MAX_DNS_SERVERS}")
    return tuple(found)


def read_labels(report: Report, value: Any, line: int, where: str) -> dict[str, str]:
    mapping = report.mapping(value, line, where, "labels")
    labels: dict[str, str] = {}
    for key, item in (mapping or LineDict()).items():
        key_line = mapping.key_line(key) if mapping is not None else line
        if not isinstance(key, str):
            report.add(key_line, f"{where}: label names must be strings, got "
                                 f"{show_key(key)}; quote it")
        elif not isinstance(item, str):
            report.add(key_line, f"{where}: label {key!r} has value {describe(item)}: label "
                                 "values must be strings; quote it")
        else:
            labels[key] = item
    return labels


def listing(names: Any) -> str:
    return ", ".join(sorted(str(n) for n in names)) or "none"
