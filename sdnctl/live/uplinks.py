"""What the daemon knows about gateway uplinks: next hops learned, exits announced.

- **Next hops.** An uplink without a configured `next_hop_mac` learns it: the daemon
  asks (an ARP request from the uplink's address and MAC, `probes`) when its
  gateway is first programmed and every PROBE_EVERY_S after that; the next hop's
  reply reaches the controller through the metered flow the gateway holds
  (`sdnctl.compile.northsouth`), and `learn` records its MAC. The learned MACs are
  the compiler's `Bindings.neighbours`; a new or changed one recompiles the
  gateways only. A MAC is kept until another is learned: a router that stops
  answering keeps the last one it gave.
- **Exits.** After each compile, `note_exits` compares where each tenant's
  addresses (SNAT pool and floating IPs) are answered for with the last compile:
  every address that moved to another uplink (or appeared) is announced there by
  a gratuitous ARP once that uplink's gateway has acknowledged its update
  (`take_announcements`), so the external router sends to the new exit at once
  rather than when its ARP entry ages out.

Counted per uplink for /metrics and shown in /status (`status`). The caller holds
the controller state's lock.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from types import MappingProxyType

from sdnctl.compile.exits import NsPlan
from sdnctl.live.arp import ARP_REPLY, ArpFrame, gratuitous, who_has
from sdnctl.topology.model import PortRef, Topology, Uplink

PROBE_EVERY_S = 30.0


@dataclass
class UplinkTally:
    """One uplink's ARP traffic with the controller."""

    requests: int = 0  # ARP requests sent for its next hop
    replies: int = 0  # the next hop's replies heard
    learned: int = 0  # replies that taught a MAC not known before
    ignored: int = 0  # ARP from the uplink that was not the next hop's reply
    announced: int = 0  # gratuitous ARPs sent
    heard_at: float | None = None  # wall clock of the last reply


@dataclass
class UplinkState:
    neighbours: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    tallies: dict[str, UplinkTally] = field(default_factory=dict)
    # address -> the uplink that answers for it, as last compiled
    answering: dict[IPv4Address, str] = field(default_factory=dict)
    # gateway -> address -> the uplink to announce it on, once the gateway is programmed
    pending: dict[str, dict[IPv4Address, Uplink]] = field(default_factory=dict)
    # tenant -> its exit ("switch:port", or None), as last compiled: /status
    exits: dict[str, str | None] = field(default_factory=dict)

    def tally(self, uplink: str) -> UplinkTally:
        return self.tallies.setdefault(uplink, UplinkTally())

    # ---- next hops ------------------------------------------------------------------
    def probes(self, topology: Topology, switch: str) -> list[tuple[int, bytes]]:
        """(port, frame): an ARP request for the next hop of each uplink of `switch`
        that learns it (none is configured)."""
        sw = topology.switches.get(switch)
        out = []
        for uplink in sw.uplinks if sw is not None else ():
            if uplink.next_hop_mac is None:
                tally = self.tally(uplink.name)
                tally.requests += 1
                out.append((uplink.port, who_has(uplink.mac, uplink.ip.ip, uplink.next_hop,
                                                 uplink.vlan)))
        return out

    def learn(self, topology: Topology, where: PortRef, arp: ArpFrame | None) -> bool:
        """ARP heard on `where`: True if it taught a next-hop MAC not known before."""
        uplink = uplink_at(topology, where)
        if uplink is None:
            return False
        tally = self.tally(uplink.name)
        if (arp is None or arp.op != ARP_REPLY or arp.sender_ip != uplink.next_hop
                or uplink.next_hop_mac is not None):
            tally.ignored += 1
            return False
        tally.replies += 1
        tally.heard_at = time.time()
        if self.neighbours.get(uplink.name) == arp.sender_mac:
            return False
        tally.learned += 1
        self.neighbours = MappingProxyType({**self.neighbours, uplink.name: arp.sender_mac})
        return True

    def forget_gone(self, topology: Topology) -> None:
        """A topology reload: what was learned for uplinks that are gone is dropped."""
        names = {u.name for u in topology.uplinks() if u.next_hop_mac is None}
        if self.neighbours.keys() - names:
            self.neighbours = MappingProxyType(
                {k: v for k, v in self.neighbours.items() if k in names})

    # ---- exits ---------------------------------------------------------------------
    def note_exits(self, plan: NsPlan) -> list[str]:
        """A compile chose these exits: queue announcements of every address whose
        uplink changed; the tenants whose exit moved, as "tenant: a -> b"."""
        answering: dict[IPv4Address, str] = {}
        for t in plan.tenants.values():
            if t.exit is None:
                continue
            for addr in t.addresses:
                answering[addr] = t.exit.name
                if self.answering.get(addr) != t.exit.name:
                    self.pending.setdefault(t.exit.switch, {})[addr] = t.exit
        exits = {name: t.exit.name if t.exit else None for name, t in plan.tenants.items()}
        moved = [f"{name}: {self.exits.get(name)} -> {where}"
                 for name, where in sorted(exits.items())
                 if name in self.exits and self.exits[name] != where]
        self.answering, self.exits = answering, exits
        return moved

    def take_announcements(self, switch: str) -> list[tuple[int, bytes]]:
        """(port, frame): the gratuitous ARPs `switch` is due, now that it holds
        its update (each address once, on the uplink that answers for it now)."""
        out = []
        for addr, uplink in self.pending.pop(switch, {}).items():
            if self.answering.get(addr) != uplink.name:
                continue  # moved on again since
            tally = self.tally(uplink.name)
            tally.announced += 1
            out.append((uplink.port, gratuitous(uplink.mac, addr, uplink.vlan)))
        return out

    # ---- reporting -----------------------------------------------------------------
    def status(self, topology: Topology, down: frozenset[PortRef]) -> dict[str, object]:
        """Per uplink: live or not, its next hop and how it is known, the tenants
        going out by it, and its ARP counts."""
        tenants: dict[str, list[str]] = {}
        for name, where in sorted(self.exits.items()):
            if where is not None:
                tenants.setdefault(where, []).append(name)
        out: dict[str, object] = {}
        for uplink in topology.uplinks():
            key = uplink.name
            tally = self.tally(key)
            learned = self.neighbours.get(key)
            out[key] = {
                "live": uplink.ref not in down,
                "ip": str(uplink.ip),
                "next_hop": str(uplink.next_hop),
                "next_hop_mac": uplink.next_hop_mac or learned,
                "next_hop_from": ("configured" if uplink.next_hop_mac
                                  else "learned" if learned else "unknown"),
                "tenants": tenants.get(key, []),
                "arp_requests": tally.requests,
                "arp_replies": tally.replies,
                "arp_ignored": tally.ignored,
                "next_hop_learned": tally.learned,
                "next_hop_heard_at": tally.heard_at,
                "garps": tally.announced,
            }
        return out


def uplink_at(topology: Topology, where: PortRef) -> Uplink | None:
    sw = topology.switches.get(where.switch)
    return next((u for u in sw.uplinks if u.port == where.port), None) if sw else None
