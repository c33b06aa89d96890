"""The established connections a policy edit would cut.

Input is what `ovs-appctl dpctl/dump-conntrack` prints on a hypervisor (one line
per connection: `tcp,orig=(src=…,dst=…,sport=…,dport=…),reply=(…),zone=…,
mark=…,protoinfo=(state=…)`). Each connection is named by its VMs (the opener
is the original direction's source) and judged against the new policy by the
same semantics `verify` checks the tables against: what the new policy does not
allow, the switches will cut once it is enforced (the `acl` stage re-checks
established packets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sdnctl.pipeline import MARK_REVOKED
from sdnctl.policy.model import Policy, Proto, Service
from sdnctl.verify.semantics import Semantics

_FIELDS = re.compile(r"(\w+)=(\([^)]*\)|[^,]*)")
# TCP states in which a connection still carries data (OVS prints state= or, with -m,
# state_orig= and state_reply=).
_LIVE_TCP = {"ESTABLISHED", "SYN_RECV", "CLOSE_WAIT"}


@dataclass(frozen=True, slots=True)
class Connection:
    """One conntrack entry, as the original direction saw it."""

    proto: str  # tcp, udp, icmp (others are not judged)
    src: str
    dst: str
    sport: int
    dport: int
    zone: int
    mark: int
    state: str  # TCP state ("" for other protocols)

    def endpoint_text(self) -> str:
        if self.proto == "icmp":
            return f"{self.src} -> {self.dst}"
        return f"{self.src}:{self.sport} -> {self.dst}:{self.dport}"


@dataclass(frozen=True, slots=True)
class Cut:
    src_vm: str
    dst_vm: str
    service: Service
    connection: Connection

    def to_text(self) -> str:
        return (f"{self.src_vm} -> {self.dst_vm} {self.service} "
                f"({self.connection.endpoint_text()}, zone {self.connection.zone})")

    def to_json(self) -> dict[str, object]:
        c = self.connection
        return {"from": self.src_vm, "to": self.dst_vm, "service": str(self.service),
                "src": c.src, "dst": c.dst, "sport": c.sport, "dport": c.dport,
                "zone": c.zone, "state": c.state}


def parse_conntrack(text: str) -> list[Connection]:
    """Connections of a dump; lines that are not IPv4 tcp/udp/icmp entries are skipped."""
    out = []
    for line in text.splitlines():
        proto, _, rest = line.strip().partition(",")
        if proto not in ("tcp", "udp", "icmp") or "orig=(" not in rest:
            continue
        fields = dict(_FIELDS.findall(rest))
        orig: dict[str, str] = dict(_FIELDS.findall(fields.get("orig", "").strip("()")))
        info = dict(_FIELDS.findall(fields.get("protoinfo", "").strip("()")))
        if ":" in orig.get("src", ":"):
            continue  # IPv6, or not an entry at all
        state = info.get("state") or info.get("state_orig", "")
        out.append(Connection(
            proto=proto, src=orig["src"], dst=orig["dst"],
            sport=int(orig.get("sport", orig.get("id", 0))),
            dport=int(orig.get("dport", orig.get("type", 0))),
            zone=int(fields.get("zone", 0)), mark=int(fields.get("mark", "0"), 0),
            state=state if proto == "tcp" else "",
        ))
    return out


def connection_cuts(connections: Iterable[Connection], policy: Policy) -> list[Cut]:
    """The live connections between VMs of `policy` that it does not allow.

    A connection is found once per zone it is tracked in (the opener's and the
    receiver's); it is reported once. Connections already revoked (marked), TCP
    connections that are closing or closed, and addresses no VM of one tenant
    holds at both ends are left out.
    """
    sem = Semantics(policy)
    by_ip: dict[str, list[str]] = {}
    for name, vm in policy.vms.items():
        by_ip.setdefault(str(vm.ip), []).append(name)
    cuts: dict[tuple[str, str, str, int, int], Cut] = {}
    for conn in connections:
        if conn.mark == MARK_REVOKED or (conn.proto == "tcp" and conn.state not in _LIVE_TCP):
            continue
        service = _service(conn)
        if service is None:
            continue
        for src in by_ip.get(conn.src, ()):
            for dst in by_ip.get(conn.dst, ()):
                if policy.vms[src].tenant != policy.vms[dst].tenant:
                    continue
                if not sem.reach(src, dst, service):
                    key = (src, dst, conn.proto, conn.sport, conn.dport)
                    cuts.setdefault(key, Cut(src, dst, service, conn))
    return sorted(cuts.values(), key=lambda c: (c.src_vm, c.dst_vm, str(c.service),
                                                 c.connection.sport))


def _service(conn: Connection) -> Service | None:
    if conn.proto == "icmp":
        return Service(Proto.ICMP, 0, 0) if conn.dport == 8 else None  # echo only
    proto = Proto.TCP if conn.proto == "tcp" else Proto.UDP
    return Service(proto, conn.dport, conn.dport)
