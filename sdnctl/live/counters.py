"""Counters the daemon keeps for /status and /metrics (locked by their own lock).

- Policy reloads by outcome (`ok`, `refused`, `unchanged`).
- Packet-ins per switch, other than the metered DHCP and connection-log paths
  (stages `dhcp` and `acl`, handled elsewhere). The pipeline sends nothing else to
  the controller (every table ends in a drop), so such a packet-in means a flow
  outside the policy put it there; it is counted, dropped, and logged at most once
  per `LOG_EVERY_S` per switch, however many arrive.
- Packets dropped by policy, per tenant and stage, from the switches' flow stats:
  each poll reads every drop flow's `n_packets`, and the growth since the last poll
  is added to the totals. The flows' counters restart when a flow is re-added,
  so the totals are sums of deltas (a counter that went down counts from zero),
  which keeps them monotonic as Prometheus counters must be.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdnctl.southbound.livedump import DropSample

log = logging.getLogger("controller")

LOG_EVERY_S = 10.0
RELOAD_OUTCOMES = ("ok", "refused", "unchanged")


@dataclass
class PacketIns:
    """Packet-ins from one switch."""

    total: int = 0
    since_log: int = 0
    logged_at: float = float("-inf")  # monotonic
    last: str = ""  # what the last one looked like (reason, table, in_port)


@dataclass
class Counters:
    reloads: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RELOAD_OUTCOMES, 0))
    packet_ins: dict[str, PacketIns] = field(default_factory=dict)
    drops_packets: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    drops_bytes: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    polls: int = 0
    poll_failures: int = 0
    last_poll: float | None = None  # wall clock of the last complete flow-stats poll
    flows_reported: dict[str, int] = field(default_factory=dict)  # switch -> flows it holds
    tls_refused: int = 0
    _last: dict[str, dict[object, tuple[int, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reload(self, outcome: str) -> None:
        with self.lock:
            self.reloads[outcome] += 1

    def tls_refusal(self) -> None:
        with self.lock:
            self.tls_refused += 1

    def packet_in(self, switch: str, what: str) -> None:
        """Count one packet-in; log a summary line at most once per LOG_EVERY_S."""
        now = time.monotonic()
        with self.lock:
            pins = self.packet_ins.setdefault(switch, PacketIns())
            pins.total += 1
            pins.since_log += 1
            pins.last = what
            if now - pins.logged_at < LOG_EVERY_S:
                return
            count, pins.since_log, pins.logged_at = pins.since_log, 0, now
        log.warning("%s: %d packet-in(s) dropped (nothing in the policy sends to the controller "
                    "from there; a flow outside it does); last: %s", switch, count, what)

    def packet_ins_of(self, switch: str) -> int:
        with self.lock:
            pins = self.packet_ins.get(switch)
            return pins.total if pins else 0

    def record_poll(self, switch: str, n_flows: int, drops: Iterable[DropSample]) -> None:
        """One switch's flow stats arrived: add each drop flow's growth to the totals."""
        with self.lock:
            last = self._last.get(switch, {})
            seen: dict[object, tuple[int, int]] = {}
            for d in drops:
                prev_p, prev_b = last.get(d.key, (0, 0))
                grew_p = d.packets - prev_p if d.packets >= prev_p else d.packets
                grew_b = d.bytes - prev_b if d.bytes >= prev_b else d.bytes
                self.drops_packets[(d.tenant, d.stage)] += grew_p
                self.drops_bytes[(d.tenant, d.stage)] += grew_b
                seen[d.key] = (d.packets, d.bytes)
            self._last[switch] = seen
            self.flows_reported[switch] = n_flows
            self.polls += 1
            self.last_poll = time.time()

    def forget_switch(self, switch: str) -> None:
        """It disconnected: what it reports next starts afresh (its counters may have too)."""
        with self.lock:
            self._last.pop(switch, None)
            self.flows_reported.pop(switch, None)

    def snapshot(self) -> dict[str, object]:
        """For /status: plain JSON."""
        with self.lock:
            drops: dict[str, dict[str, int]] = {}
            for (tenant, stage), n in sorted(self.drops_packets.items()):
                drops.setdefault(tenant or "(shared)", {})[stage] = n
            return {
                "policy_reloads": dict(self.reloads),
                "packet_ins": {s: p.total for s, p in sorted(self.packet_ins.items())},
                "dropped_packets": drops,
                "flow_stats_polls": self.polls,
                "flow_stats_last_poll": self.last_poll,
                "tls_handshakes_refused": self.tls_refused,
            }
