"""Topology file (DESIGN.md §3) → validated `Topology`, or every problem at `file:line`.

Messages read `<object>: <problem>` where the object is `topology`, `switch S` or
`link N` (N counts from 1 in file order).

A hypervisor may name an overlay tunnel endpoint: `tunnel_ip` (its underlay
address, unique) and optionally `tunnel_port` (the OpenFlow number of its VXLAN
port, default TUNNEL_PORT), a port no link may use.

A gateway (`role: gateway`) is a border switch facing an external router through
its `uplink` ports (`sdnctl.topology.load_uplink`); each uplink port is claimed
like a link's, and only gateways have uplinks.

`underlay_mtu` (optional, default 1500) is the MTU of the fabric links and of the
tunnel underlay; DHCP tells VMs what fits inside it (`sdnctl.dhcp.lease`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sdnctl.addresses import parse_address
from sdnctl.topology.load_uplink import UPLINK_KEYS as UPLINK_KEYS  # the uplink's keys
from sdnctl.topology.load_uplink import UplinkSpot, read_uplinks
from sdnctl.topology.model import (
    DEFAULT_UNDERLAY_MTU,
    TUNNEL_PORT,
    Link,
    PortRef,
    Role,
    Switch,
    Topology,
    Uplink,
)
from sdnctl.yamlsrc import LineDict, Report, describe, is_int, load_yaml, read_source

TOP_KEYS = ("version", "switches", "links", "underlay_mtu")
SWITCH_KEYS = ("dpid", "role", "tunnel_ip", "tunnel_port", "uplink")
REQUIRED_SWITCH_KEYS = ("dpid", "role")
LINK_KEYS = ("a", "b")
ROLES = tuple(role.value for role in Role)  # hypervisor, fabric, gateway

# Switch names become OVS bridge names: Linux caps interface names at 15 characters.
_SWITCH_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,14}$")
_PORT_REF_RE = re.compile(r"^([^:\s]+):([0-9]+)$")
# OVS numbers ports in 16 bits and reserves 0xff00 and up (OpenFlow 1.0's OFPP_MAX):
# `ofport_request` accepts 1..65279 only.
MAX_PORT = 0xFEFF
MAX_DPID = 2**64 - 1
# An underlay below IPv6's minimum link MTU would leave VMs too little to be useful.
MIN_UNDERLAY_MTU = 1280
MAX_UNDERLAY_MTU = 65535


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file; LoadError lists every problem (file = `path`)."""
    return parse_topology(read_source(path), str(path))


def parse_topology(text: str, source: str) -> Topology:
    report = Report(source)
    topology = _TopologyReader(report).read(load_yaml(text, source))
    report.raise_if_any()
    assert topology is not None  # built whenever nothing was reported
    return topology


@dataclass(frozen=True, slots=True)
class _Placed:
    """Something already seen, and where: for "already used by ..." messages."""

    what: str
    line: int


class _TopologyReader:
    def __init__(self, report: Report) -> None:
        self.r = report
        self.switches: dict[str, Switch | None] = {}  # None: declared but invalid
        self.dpids: dict[int, _Placed] = {}
        self.ports: dict[PortRef, _Placed] = {}
        self.pairs: dict[frozenset[str], _Placed] = {}
        self.tunnel_ips: dict[IPv4Address, _Placed] = {}
        self.uplinks: list[Uplink] = []  # of valid gateways, for the checks across them

    def read(self, data: Any) -> Topology | None:
        top = self.r.top_level(data, "topology", TOP_KEYS, ("version", "switches"),
                               "version: 1, switches, links")
        if top is None:
            return None
        switches = self.r.mapping(top.get("switches"), top.key_line("switches"), "topology",
                                  "switches")
        for name, body, line in self.r.names(switches or LineDict(), "topology", "switch"):
            self.switches[name] = self._switch(name, body, line)
        links = self.r.sequence(top.get("links"), top.key_line("links"), "topology", "links")
        built = [
            self._link(index + 1, body, links.item_line(index))
            for index, body in enumerate(links or ())
        ] if links is not None else []
        mtu = self._underlay_mtu(top)
        self._check_uplinks()
        if self.r.problems:
            return None
        good = {name: sw for name, sw in self.switches.items() if sw is not None}
        return Topology(
            MappingProxyType(good), tuple(b for b in built if b is not None), self.r.source,
            mtu,
        )

    def _underlay_mtu(self, top: LineDict) -> int:
        if "underlay_mtu" not in top:
            return DEFAULT_UNDERLAY_MTU
        value = top["underlay_mtu"]
        if not is_int(value) or not MIN_UNDERLAY_MTU <= value <= MAX_UNDERLAY_MTU:
            self.r.add(top.key_line("underlay_mtu"),
                       f"topology: underlay_mtu must be an integer "
                       f"{MIN_UNDERLAY_MTU}..{MAX_UNDERLAY_MTU} (bytes), got {describe(value)}")
            return DEFAULT_UNDERLAY_MTU
        return int(value)


    # -- switches -------------------------------------------------------------------

    def _switch(self, name: str, body: Any, line: int) -> Switch | None:
        where = f"switch {name}"
        ok = self._check_name(name, line, where)
        if not isinstance(body, LineDict):
            self.r.add(line, f"{where}: must be a mapping with keys "
                             f"{', '.join(REQUIRED_SWITCH_KEYS)}, got {describe(body)}")
            return None
        self.r.check_keys(body, where, SWITCH_KEYS, REQUIRED_SWITCH_KEYS, line)
        dpid = self._dpid(body.get("dpid"), body.key_line("dpid"), where) \
            if "dpid" in body else None
        role = self._role(body.get("role"), body.key_line("role"), where) \
            if "role" in body else None
        tunnel = self._tunnel(name, body, role, where)
        uplinks = self._uplinks(name, body, role, dpid, line)
        if not ok or dpid is None or role is None or tunnel is None or uplinks is None:
            return None
        self.uplinks += uplinks
        return Switch(name, dpid, role, line, *tunnel, uplinks=uplinks)

    def _uplinks(self, name: str, body: LineDict, role: Role | None, dpid: int | None,
                 line: int) -> tuple[Uplink, ...] | None:
        """A gateway's uplinks (it needs one at least); () for another switch."""
        where = f"switch {name}"
        if "uplink" not in body:
            if role is Role.GATEWAY:
                self.r.add(line, f"{where}: a gateway needs an uplink, like uplink: {{port: 1, "
                                 "ip: 203.0.113.2/24, next_hop: 203.0.113.1}")
                return None
            return ()
        key_line = body.key_line("uplink")
        if role is not None and role is not Role.GATEWAY:
            self.r.add(key_line, f"{where}: uplink is for gateways (role: gateway); a "
                                 f"{role.value} switch has none")
            return None
        return read_uplinks(self.r, UplinkSpot(name, dpid, where), body["uplink"], key_line,
                            self._claim_port, MAX_PORT)

    def _check_uplinks(self) -> None:
        """Across gateways: each uplink address once, no uplink's address another's next
        hop, and no two uplink MACs alike (they are built from 16 bits of the dpid)."""
        ips: dict[IPv4Address, Uplink] = {}
        hops = {u.next_hop: u for u in self.uplinks}
        macs: dict[str, Uplink] = {}
        for u in self.uplinks:
            first = ips.setdefault(u.ip.ip, u)
            if first is not u:
                self.r.add(u.line, f"switch {u.switch}: uplink ip {u.ip.ip} is already used "
                                   f"by {first.name} (line {first.line})")
            elif u.ip.ip in hops:
                hop = hops[u.ip.ip]
                self.r.add(u.line, f"switch {u.switch}: uplink ip {u.ip.ip} is the next_hop "
                                   f"of {hop.name} (line {hop.line})")
            twin = macs.setdefault(u.mac, u)
            if twin is not u:
                self.r.add(u.line, f"switch {u.switch}: uplink {u.name} would answer with MAC "
                                   f"{u.mac}, as {twin.name} does (line {twin.line}): uplink "
                                   "MACs are built from the dpid's low 16 bits and the port; "
                                   "give the gateways dpids that differ there")

    def _tunnel(self, name: str, body: LineDict, role: Role | None,
                where: str) -> tuple[IPv4Address | None, int] | None:
        """(tunnel_ip, tunnel_port), or None if either is wrong (reported)."""
        ip: IPv4Address | None = None
        port = TUNNEL_PORT
        ok = True
        if "tunnel_ip" in body:
            line = body.key_line("tunnel_ip")
            ip = parse_address(body["tunnel_ip"])
            if ip is None or ip.is_multicast or ip.is_unspecified or ip.is_loopback \
                    or ip == IPv4Address("255.255.255.255"):
                self.r.add(line, f"{where}: tunnel_ip must be a unicast IPv4 address, "
                                 f"got {describe(body['tunnel_ip'])}")
                ok = False
            elif role is not None and role is not Role.HYPERVISOR:
                self.r.add(line, f"{where}: tunnel_ip is for hypervisors; a {role.value} "
                                 "switch carries no tunnel endpoint")
                ok = False
            else:
                first = self.tunnel_ips.setdefault(ip, _Placed(where, line))
                if first.what != where:
                    self.r.add(line, f"{where}: tunnel_ip {ip} is already used by "
                                     f"{first.what} (line {first.line})")
                    ok = False
        if "tunnel_port" in body:
            line = body.key_line("tunnel_port")
            value = body["tunnel_port"]
            if "tunnel_ip" not in body:
                self.r.add(line, f"{where}: tunnel_port without tunnel_ip")
                ok = False
            elif not is_int(value) or not 1 <= value <= MAX_PORT:
                self.r.add(line, f"{where}: tunnel_port must be an integer 1..{MAX_PORT}, "
                                 f"got {describe(value)}")
                ok = False
            else:
                port = int(value)
        if ok and ip is not None:  # links may not use the tunnel's port
            key = "tunnel_port" if "tunnel_port" in body else "tunnel_ip"
            self.ports[PortRef(name, port)] = _Placed(f"{where}'s tunnel", body.key_line(key))
        return (ip, port) if ok else None

    def _check_name(self, name: str, line: int, where: str) -> bool:
        if _SWITCH_NAME_RE.match(name):
            return True
        self.r.add(line, f"{where}: the name must be a letter then up to 14 letters, digits, "
                         "'_' or '-' (it becomes an OVS bridge name, at most 15 characters)")
        return False

    def _dpid(self, value: Any, line: int, where: str) -> int | None:
        if not is_int(value) or not 0 < value <= MAX_DPID:
            self.r.add(line, f"{where}: dpid must be a positive integer below 2**64, "
                             f"got {describe(value)}")
            return None
        first = self.dpids.setdefault(value, _Placed(where, line))
        if first.what != where:
            self.r.add(line, f"{where}: dpid {value:#x} is already used by {first.what} "
                             f"(line {first.line})")
            return None
        return int(value)

    def _role(self, value: Any, line: int, where: str) -> Role | None:
        if value in ROLES:
            return Role(value)
        self.r.add(line, f"{where}: role must be {', '.join(ROLES[:-1])} or {ROLES[-1]}, "
                         f"got {describe(value)}")
        return None

    # -- links ----------------------------------------------------------------------

    def _link(self, number: int, body: Any, line: int) -> Link | None:
        where = f"link {number}"
        if not isinstance(body, LineDict):
            self.r.add(line, f"{where}: must be a mapping like {{a: \"hv1:10\", b: \"leaf:1\"}}, "
                             f"got {describe(body)}")
            return None
        self.r.check_keys(body, where, LINK_KEYS, LINK_KEYS, line)
        a = self._end(body, "a", where) if "a" in body else None
        b = self._end(body, "b", where) if "b" in body else None
        if a is None or b is None:
            return None
        if a.switch == b.switch:
            self.r.add(line, f"{where}: links switch {a.switch} to itself")
            return None
        ok = all([self._claim_port(a, where, body.key_line("a")),
                  self._claim_port(b, where, body.key_line("b"))])
        pair = frozenset((a.switch, b.switch))
        first = self.pairs.setdefault(pair, _Placed(where, line))
        if first.what != where:
            self.r.add(line, f"{where}: a second link between {min(pair)} and {max(pair)} "
                             f"({first.what} is on line {first.line}); parallel links are "
                             "not supported")
            return None
        return Link(a, b, line) if ok else None

    def _end(self, body: LineDict, key: str, where: str) -> PortRef | None:
        value = body[key]
        line = body.key_line(key)
        match = _PORT_REF_RE.match(value) if isinstance(value, str) else None
        if match is None:
            self.r.add(line, f"{where}: {key} must be \"switch:port\" like \"hv1:10\", "
                             f"got {describe(value)}")
            return None
        switch, port = match.group(1), int(match.group(2))
        ok = True
        if not 1 <= port <= MAX_PORT:
            self.r.add(line, f"{where}: port {switch}:{port} is out of range 1..{MAX_PORT}")
            ok = False
        if switch not in self.switches:
            self.r.add(line, f"{where}: {key} names unknown switch {switch!r}")
            ok = False
        return PortRef(switch, port) if ok else None

    def _claim_port(self, end: PortRef, where: str, line: int, owner: str = "") -> bool:
        """A port carries one link (or uplink): the compiler treats each link port as one
        trunk. `owner` names the claimant in a later clash's message (default: `where`)."""
        owner = owner or where
        first = self.ports.setdefault(end, _Placed(owner, line))
        if first.what != owner:
            self.r.add(line, f"{where}: port {end} is already used by {first.what} "
                             f"(line {first.line})")
            return False
        return True
