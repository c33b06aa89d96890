"""A gateway's `uplink:` key (one mapping or a list of them) → `Uplink`s, or every
problem at its line. Called by `sdnctl.topology.load` with its report, so messages
read like the rest: `switch S: uplink: <problem>` (`uplink N:` in a list, N from 1).

An uplink is a port facing the external router: the gateway's own address on the
uplink subnet (`ip`, with its prefix), the router's (`next_hop`, inside that
subnet), an optional 802.1Q tag (`vlan`) and the router's MAC if it is not to be
learned by ARP (`next_hop_mac`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address, IPv4Interface, NetmaskValueError
from typing import Any

from sdnctl.addresses import parse_address, unicast_trouble
from sdnctl.topology.model import PortRef, Uplink, uplink_mac
from sdnctl.yamlsrc import LineDict, LineList, Report, describe, is_int

UPLINK_KEYS = ("port", "ip", "next_hop", "vlan", "next_hop_mac")
REQUIRED_UPLINK_KEYS = ("port", "ip", "next_hop")
# Room on the uplink subnet for the gateway, the next hop and the network and
# broadcast addresses: a /30 at least.
SMALLEST_UPLINK_SUBNET = 30
MAX_VLAN = 4094
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$")

# Claims an OpenFlow port at `line` for an owner (named so in others' messages), and
# reports a clash as `where`'s problem: False if the port is taken.
ClaimPort = Callable[[PortRef, str, int, str], bool]


@dataclass(frozen=True, slots=True)
class UplinkSpot:
    """A switch's place for uplinks: who it is, for messages and the uplink MAC."""

    switch: str
    dpid: int | None  # None: the switch's dpid is wrong (reported): no MAC is built
    where: str  # "switch S"


def read_uplinks(r: Report, spot: UplinkSpot, value: Any, line: int,
                 claim_port: ClaimPort, max_port: int) -> tuple[Uplink, ...] | None:
    """The uplinks `value` describes, in file order; None if any is wrong (reported)."""
    if isinstance(value, LineDict):
        items: list[tuple[str, Any, int]] = [("uplink", value, line)]
    elif isinstance(value, LineList) and value:
        items = [(f"uplink {n + 1}", item, value.item_line(n)) for n, item in enumerate(value)]
    else:
        r.add(line, f"{spot.where}: uplink must be a mapping like {{port: 1, ip: "
                    f"203.0.113.2/24, next_hop: 203.0.113.1}} or a non-empty list of them, "
                    f"got {describe(value)}")
        return None
    reader = _UplinkReader(r, spot, claim_port, max_port)
    built = [reader.read(label, body, item_line) for label, body, item_line in items]
    if any(u is None for u in built):
        return None
    return tuple(u for u in built if u is not None)


class _UplinkReader:
    def __init__(self, r: Report, spot: UplinkSpot, claim_port: ClaimPort,
                 max_port: int) -> None:
        self.r, self.spot, self.claim_port, self.max_port = r, spot, claim_port, max_port

    def read(self, label: str, body: Any, line: int) -> Uplink | None:
        where = f"{self.spot.where}: {label}"
        if not isinstance(body, LineDict):
            self.r.add(line, f"{where}: must be a mapping with keys {', '.join(UPLINK_KEYS)}, "
                             f"got {describe(body)}")
            return None
        self.r.check_keys(body, where, UPLINK_KEYS, REQUIRED_UPLINK_KEYS, line)
        port = self._port(body, where, label) if "port" in body else None
        ip = self._ip(body, where) if "ip" in body else None
        next_hop = self._next_hop(body, where, ip) if "next_hop" in body else None
        vlan = self._vlan(body, where) if "vlan" in body else None
        mac = self._mac(body, where) if "next_hop_mac" in body else None
        ok = (port is not None and ip is not None and next_hop is not None
              and ("vlan" not in body or vlan is not None)
              and ("next_hop_mac" not in body or mac is not None))
        if not ok or self.spot.dpid is None:
            return None
        assert port is not None and ip is not None and next_hop is not None
        return Uplink(self.spot.switch, port, ip, next_hop, uplink_mac(self.spot.dpid, port),
                      vlan, mac, line)

    def _port(self, body: LineDict, where: str, label: str) -> int | None:
        value, line = body["port"], body.key_line("port")
        if not is_int(value) or not 1 <= value <= self.max_port:
            self.r.add(line, f"{where}: port must be an integer 1..{self.max_port}, "
                             f"got {describe(value)}")
            return None
        claimed = self.claim_port(PortRef(self.spot.switch, int(value)), where, line,
                                  f"{self.spot.where}'s {label}")
        return int(value) if claimed else None

    def _ip(self, body: LineDict, where: str) -> IPv4Interface | None:
        value, line = body["ip"], body.key_line("ip")
        shape = ("an IPv4 address with the uplink subnet's prefix length like "
                 "203.0.113.2/24")
        if not isinstance(value, str) or "/" not in value:
            self.r.add(line, f"{where}: ip must be {shape}, got {describe(value)}")
            return None
        try:
            ip = IPv4Interface(value.strip())
        except (AddressValueError, NetmaskValueError, ValueError):
            self.r.add(line, f"{where}: ip must be {shape}, got {describe(value)}")
            return None
        net = ip.network
        trouble = unicast_trouble(ip.ip)
        if not trouble and net.prefixlen > SMALLEST_UPLINK_SUBNET:
            trouble = (f"has a /{net.prefixlen} prefix: the uplink subnet needs room for "
                       f"the gateway and the next hop (at most /{SMALLEST_UPLINK_SUBNET})")
        elif not trouble and ip.ip == net.network_address:
            trouble = f"is the network address of {net}"
        elif not trouble and ip.ip == net.broadcast_address:
            trouble = f"is the broadcast address of {net}"
        if trouble:
            self.r.add(line, f"{where}: ip {ip} {trouble}")
            return None
        return ip

    def _next_hop(self, body: LineDict, where: str,
                  ip: IPv4Interface | None) -> IPv4Address | None:
        value, line = body["next_hop"], body.key_line("next_hop")
        hop = parse_address(value)
        if hop is None:
            self.r.add(line, f"{where}: next_hop must be an IPv4 address like 203.0.113.1, "
                             f"got {describe(value)}")
            return None
        if ip is None:
            return hop  # its subnet is unknown: said already
        net = ip.network
        trouble = ""
        if hop not in net:
            trouble = f"is outside the uplink subnet {net} (ip {ip})"
        elif hop == ip.ip:
            trouble = "is the uplink's own ip: it must be the external router's address"
        elif hop in (net.network_address, net.broadcast_address):
            kind = "network" if hop == net.network_address else "broadcast"
            trouble = f"is the {kind} address of {net}"
        if trouble:
            self.r.add(line, f"{where}: next_hop {hop} {trouble}")
            return None
        return hop

    def _vlan(self, body: LineDict, where: str) -> int | None:
        value, line = body["vlan"], body.key_line("vlan")
        if not is_int(value) or not 1 <= value <= MAX_VLAN:
            self.r.add(line, f"{where}: vlan must be an integer 1..{MAX_VLAN}, "
                             f"got {describe(value)}")
            return None
        return int(value)

    def _mac(self, body: LineDict, where: str) -> str | None:
        value, line = body["next_hop_mac"], body.key_line("next_hop_mac")
        if not isinstance(value, str) or not _MAC_RE.match(value):
            self.r.add(line, f"{where}: next_hop_mac must look like \"02:00:5e:00:01:01\" "
                             f"(quote it), got {describe(value)}")
            return None
        mac = value.lower()
        if int(mac[:2], 16) & 1 or mac == "00:00:00:00:00:00":
            kind = "all zeros" if mac == "00:00:00:00:00:00" else "a multicast address"
            self.r.add(line, f"{where}: next_hop_mac {mac} is {kind}: the external router's "
                             "MAC is a unicast one")
            return None
        return mac
