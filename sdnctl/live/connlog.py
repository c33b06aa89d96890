"""The connection log: packet-ins from the `acl` stage's metered copies -> JSON records.

A record says when, on which switch, which tenant, which VMs, the 5-tuple, the
verdict and the rule that decided:

    {"time": "2026-12-05T06:01:02.345Z", "switch": "hv1", "tenant": "acme",
     "verdict": "allow", "rule": "web->app", "rule_lines": [23], "src_vm": "web1",
     "dst_vm": "app1", "proto": "tcp", "src_ip": "10.1.10.11", "src_port": 40112,
     "dst_ip": "10.1.20.11", "dst_port": 8080}

The flow that sent the copy names the decision: its cookie is derived from its
owner (`sdnctl.flows.cookie_of`), a rule's (`rule:TENANT:SRC->DST`: verdict
allow) or a tenant's (`tenant:NAME`: verdict deny). The source VM is the one bound
to the port the packet came in on (the live binding, as for DHCP); the destination
is the tenant's VM with the destination address, if any.

Records go to the last `keep` in memory (the API's /connections, the dashboard)
and, with a file, to a queue that a writer thread appends to the file as JSON
lines, moving it to FILE.1 when it passes `max_bytes` (one old file is kept, so
the log takes at most twice that). What is lost is counted, never silent:
`meter_drops` (the switches' log meters refused them: read from meter stats with
each poll), `writer_drops` (the queue was full: the disk is slower than the
meter), `unparsed` (a copy that is not an IP packet of a known flow).
"""

from __future__ import annotations

import collections
import ipaddress
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from sdnctl.bindings import Bindings
from sdnctl.compile.acl import rule_owner
from sdnctl.compile.connlog import LOG_METER
from sdnctl.flows import cookie_of
from sdnctl.policy.model import Policy, Rule

log = logging.getLogger("controller")

KEEP = 1000  # records kept in memory
QUEUE = 10_000  # records waiting for the writer
MAX_BYTES = 10 * 1024 * 1024
PROTOS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


@dataclass(frozen=True, slots=True)
class FiveTuple:
    proto: int
    src_ip: str
    dst_ip: str
    src_port: int | None  # TCP/UDP ports; ICMP: type in src_port, code in dst_port
    dst_port: int | None


def parse_ip(frame: bytes) -> FiveTuple | None:
    """The 5-tuple of an Ethernet frame carrying IPv4 or IPv6 (one 802.1Q tag
    allowed); None for anything else or a truncated frame.

    >>> f = bytes(12) + b"\\x08\\x00" + bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0,
    ...     10, 0, 0, 1, 10, 0, 0, 2]) + (1234).to_bytes(2, "big") + (80).to_bytes(2, "big")
    >>> parse_ip(f)
    FiveTuple(proto=6, src_ip='10.0.0.1', dst_ip='10.0.0.2', src_port=1234, dst_port=80)
    """
    if len(frame) < 14:
        return None
    eth_type, offset = struct.unpack_from("!H", frame, 12)[0], 14
    if eth_type == 0x8100 and len(frame) >= 18:
        eth_type, offset = struct.unpack_from("!H", frame, 16)[0], 18
    if eth_type == 0x0800 and len(frame) >= offset + 20:
        ihl = (frame[offset] & 0x0F) * 4
        proto = frame[offset + 9]
        src = str(ipaddress.IPv4Address(frame[offset + 12:offset + 16]))
        dst = str(ipaddress.IPv4Address(frame[offset + 16:offset + 20]))
        return _ports(frame, offset + ihl, proto, src, dst)
    if eth_type == 0x86DD and len(frame) >= offset + 40:
        proto = frame[offset + 6]
        src = str(ipaddress.IPv6Address(frame[offset + 8:offset + 24]))
        dst = str(ipaddress.IPv6Address(frame[offset + 24:offset + 40]))
        return _ports(frame, offset + 40, proto, src, dst)
    return None


def _ports(frame: bytes, at: int, proto: int, src: str, dst: str) -> FiveTuple:
    if proto in (6, 17) and len(frame) >= at + 4:
        sport, dport = struct.unpack_from("!HH", frame, at)
        return FiveTuple(proto, src, dst, sport, dport)
    if proto in (1, 58) and len(frame) >= at + 2:
        return FiveTuple(proto, src, dst, frame[at], frame[at + 1])
    return FiveTuple(proto, src, dst, None, None)


@dataclass(frozen=True)
class Deciders:
    """Cookie -> what decided, for one policy: rules (allow) and tenants (deny)."""

    rules: Mapping[int, tuple[Rule, ...]]
    tenants: Mapping[int, str]
    vms: Mapping[tuple[str, str], str]  # (tenant, IPv4 or IPv6 address) -> VM

    @classmethod
    def of(cls, policy: Policy) -> Deciders:
        rules: dict[int, list[Rule]] = collections.defaultdict(list)
        tenants: dict[int, str] = {}
        for name, tenant in policy.tenants.items():
            tenants[cookie_of(f"tenant:{name}")] = name
            for r in tenant.rules:
                rules[cookie_of(rule_owner(r))].append(r)
        vms = {(vm.tenant, str(ip)): vm.name for vm in policy.vms.values()
               for ip in (vm.ip, vm.ip6) if ip is not None}
        return cls({c: tuple(rs) for c, rs in rules.items()}, tenants, vms)


def _time(wall: float) -> str:
    millis = int(wall * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{millis:03d}Z"


@dataclass
class _Tally:
    allow: int = 0
    deny: int = 0
    unparsed: int = 0
    writer_drops: int = 0
    meter_drops: int = 0
    meter_last: dict[str, int] = field(default_factory=dict)  # switch -> meter's count


class ConnectionLog:
    """Turns copies into records; keeps the last `keep`, writes them to `path`.
    Thread-safe: the app adds, the API reads, the writer thread drains."""

    def __init__(self, path: Path | None = None, keep: int = KEEP,
                 max_bytes: int = MAX_BYTES, queue: int = QUEUE) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self.recent: collections.deque[dict[str, object]] = collections.deque(maxlen=keep)
        self.tally = _Tally()
        self._queue: collections.deque[str] = collections.deque()
        self._queue_max = queue
        self._wake = threading.Condition(self.lock)
        self._deciders: tuple[Policy, Deciders] | None = None
        self._at: tuple[Bindings, dict[tuple[str, int], str]] | None = None
        self._stopping = False
        self._writer: threading.Thread | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = threading.Thread(target=self._write_loop, name="connection-log",
                                            daemon=True)
            self._writer.start()

    # ---- in: a copy from a switch -------------------------------------------------
    def add(self, policy: Policy, bindings: Bindings, switch: str, in_port: int | None,
            cookie: int, frame: bytes, wall: float | None = None) -> dict[str, object] | None:
        """One metered copy: its record (also kept and queued), or None if it is not
        an IP packet sent by a log flow of this policy (counted as unparsed)."""
        record = self._record(policy, bindings, switch, in_port, cookie, frame,
                              time.time() if wall is None else wall)
        with self.lock:
            if record is None:
                self.tally.unparsed += 1
                return None
            if record["verdict"] == "allow":
                self.tally.allow += 1
            else:
                self.tally.deny += 1
            self.recent.append(record)
            if self.path is not None:
                if len(self._queue) >= self._queue_max:
                    self.tally.writer_drops += 1
                else:
                    self._queue.append(json.dumps(record, separators=(",", ":")))
                    self._wake.notify()
        return record

    def _record(self, policy: Policy, bindings: Bindings, switch: str, in_port: int | None,
                cookie: int, frame: bytes, wall: float) -> dict[str, object] | None:
        five = parse_ip(frame)
        if five is None:
            return None
        deciders = self._deciders_of(policy)
        rules = deciders.rules.get(cookie)
        if rules:
            tenant, verdict = rules[0].tenant, "allow"
        elif cookie in deciders.tenants:
            tenant, verdict = deciders.tenants[cookie], "deny"
        else:
            return None
        src_vm = self._vm_at(bindings, switch, in_port)
        dst_vm = deciders.vms.get((tenant, five.dst_ip))
        record: dict[str, object] = {
            "time": _time(wall), "switch": switch, "tenant": tenant, "verdict": verdict,
            "rule": f"{rules[0].src}->{rules[0].dst}" if rules else None,
            "rule_lines": sorted(r.line for r in rules) if rules else [],
            "src_vm": src_vm, "dst_vm": dst_vm, "proto": PROTOS.get(five.proto, five.proto),
            "src_ip": five.src_ip, "src_port": five.src_port,
            "dst_ip": five.dst_ip, "dst_port": five.dst_port,
        }
        return record

    def _deciders_of(self, policy: Policy) -> Deciders:
        cached = self._deciders
        if cached is None or cached[0] is not policy:
            cached = self._deciders = (policy, Deciders.of(policy))
        return cached[1]

    def _vm_at(self, bindings: Bindings, switch: str, port: int | None) -> str | None:
        cached = self._at
        if cached is None or cached[0] is not bindings:
            index = {(ref.switch, ref.port): vm for vm, ref in bindings.ports.items()}
            cached = self._at = (bindings, index)
        return cached[1].get((switch, port)) if port is not None else None

    # ---- what the meters refused --------------------------------------------------
    def record_meter_drops(self, switch: str, dropped: Mapping[int, int]) -> None:
        """A switch's meter stats (meter id -> packets dropped so far): add its log
        meter's growth since the last report (a restarted count counts from zero)."""
        total = dropped.get(LOG_METER)
        if total is None:
            return
        with self.lock:
            last = self.tally.meter_last.get(switch, 0)
            self.tally.meter_drops += total - last if total >= last else total
            self.tally.meter_last[switch] = total

    # ---- out ----------------------------------------------------------------------
    def records(self, limit: int = KEEP, verdict: str | None = None) -> list[dict[str, object]]:
        """The most recent records first."""
        with self.lock:
            picked = [r for r in reversed(self.recent)
                      if verdict is None or r["verdict"] == verdict]
        return picked[:limit]

    def snapshot(self) -> dict[str, object]:
        """Counters for /status and /metrics."""
        with self.lock:
            t = self.tally
            return {"file": str(self.path) if self.path else None,
                    "records": {"allow": t.allow, "deny": t.deny},
                    "meter_drops": t.meter_drops, "writer_drops": t.writer_drops,
                    "unparsed": t.unparsed, "queued": len(self._queue)}

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and stop the writer."""
        with self.lock:
            self._stopping = True
            self._wake.notify()
        if self._writer is not None:
            self._writer.join(timeout)

    def _write_loop(self) -> None:
        assert self.path is not None
        out = self.path.open("a", encoding="utf-8")
        try:
            while True:
                with self.lock:
                    while not self._queue and not self._stopping:
                        self._wake.wait(1.0)
                    lines = list(self._queue)
                    self._queue.clear()
                    stopping = self._stopping
                if lines:
                    out.write("\n".join(lines) + "\n")
                    out.flush()
                    if out.tell() >= self.max_bytes:
                        out = self._rotate(out)
                if stopping:
                    return
        except OSError as exc:
            log.error("connection log %s: %s; records are kept in memory only", self.path, exc)
            with self.lock:
                self.path = None
                self.tally.writer_drops += len(self._queue)
                self._queue.clear()
        finally:
            out.close()

    def _rotate(self, out: TextIO) -> TextIO:
        """FILE -> FILE.1 (replacing the older one), and a new FILE."""
        assert self.path is not None
        out.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        return self.path.open("a", encoding="utf-8")
