"""The fault suite's continuous prober: allowed probes that must keep being answered,
denied probes that must never arrive.

`choose_probes` (pure) picks them from the policy, on the same hypervisor and across
the fabric, in both directions, TCP (a new connection per probe), UDP and ICMP:

  allowed   a long-lived UDP stream a -> b, an ICMP stream b -> a (the other
            direction), and a new TCP connection per probe for a rule's TCP port;
  denied    the same TCP port b -> a (a rule is one-way: the reverse needs its own)
            and a UDP port no rule allows a -> b; each with a server listening at
            the destination, so a probe that got through would be answered.

`probing(session, probes)` runs them all (`stream.streams`) with tcpdump inside every
VM (`attacks.capture`); `stop()` judges every captured frame as the hostile-VM suite
does (`attacks.judge.explain`: a frame the policy does not explain leaked) and says
which capture was deaf (missed frames, or heard nothing at all).
"""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sdnctl.lab.attacks.capture import Capture, start_captures, stop_captures
from sdnctl.lab.attacks.judge import describe, explain
from sdnctl.lab.attacks.scene import Scene, VmAddr, build_scene
from sdnctl.lab.experiments.cast import Cast, CastError
from sdnctl.lab.experiments.loss import StreamLog
from sdnctl.lab.experiments.stream import Flow, Stream, Streams, streams, warm_up
from sdnctl.lab.plan import HostPlan, LabError
from sdnctl.policy.model import Policy, Proto, Service
from sdnctl.tools import require
from sdnctl.verify.semantics import reach

if TYPE_CHECKING:
    from sdnctl.lab.experiments.session import Session

SAME, ACROSS = "same hypervisor", "across the fabric"
LONG_INTERVAL_S = 0.01  # long-lived streams: a probe every 10 ms
FRESH_INTERVAL_S = 0.02  # a new connection per probe: every 20 ms
DENIED_PORTS = range(7900, 8000)  # where a denied UDP port is looked for


@dataclass(frozen=True, slots=True)
class Probe:
    flow: Flow
    allowed: bool
    where: str  # SAME or ACROSS
    fresh: bool = False  # a new connection per probe (TCP always)
    interval: float = LONG_INTERVAL_S

    @property
    def name(self) -> str:
        return f"{self.flow}{' (new connections)' if self.fresh else ''}"


def _hosts(cast: Cast) -> list[HostPlan]:
    return sorted(cast.plan.hosts, key=lambda h: h.vm)


def _allowed(policy: Policy, a: str, b: str, proto: Proto) -> Service | None:
    """A service of `proto` some rule names that a may open to b (icmp: echo)."""
    if proto is Proto.ICMP:
        svc = Service(Proto.ICMP)
        return svc if reach(policy, a, b, svc) else None
    ports = sorted({s.port_lo for s in policy.services() if s.proto is proto})
    return next((Service(proto, p, p) for p in ports
                 if reach(policy, a, b, Service(proto, p, p))), None)


def _pair_probes(policy: Policy, a: str, b: str, where: str) -> list[Probe] | None:
    """The five probes of one pair, or None if the policy does not allow a pair like it."""
    udp = _allowed(policy, a, b, Proto.UDP)
    icmp = _allowed(policy, b, a, Proto.ICMP)
    tcp = _allowed(policy, a, b, Proto.TCP)
    if udp is None or icmp is None or tcp is None or reach(policy, b, a, tcp):
        return None
    denied_udp = next((Service(Proto.UDP, p, p) for p in DENIED_PORTS
                       if not reach(policy, a, b, Service(Proto.UDP, p, p))), None)
    if denied_udp is None:
        return None
    return [
        Probe(Flow(a, b, udp), True, where),
        Probe(Flow(b, a, icmp), True, where, interval=2 * LONG_INTERVAL_S),
        Probe(Flow(a, b, tcp), True, where, fresh=True, interval=FRESH_INTERVAL_S),
        Probe(Flow(b, a, tcp), False, where, fresh=True, interval=FRESH_INTERVAL_S),
        Probe(Flow(a, b, denied_udp), False, where, fresh=True, interval=FRESH_INTERVAL_S),
    ]


def choose_probes(cast: Cast) -> list[Probe]:
    """Probes for one pair on the same hypervisor and one pair across the fabric (the
    first in name order the policy allows UDP, TCP one way only, and ICMP back)."""
    found: dict[str, list[Probe]] = {}
    for a in _hosts(cast):
        for b in _hosts(cast):
            where = SAME if a.switch == b.switch else ACROSS
            if a.vm == b.vm or where in found:
                continue
            probes = _pair_probes(cast.policy, a.vm, b.vm, where)
            if probes is not None:
                found[where] = probes
    missing = [w for w in (SAME, ACROSS) if w not in found]
    if missing:
        raise CastError(f"no VM pair {' or '.join(missing)} has an allowed UDP port, a"
                        " one-way TCP port and ICMP back (the fault suite probes those)")
    return found[SAME] + found[ACROSS]


@dataclass(frozen=True, slots=True)
class Leak:
    vm: str  # where it arrived
    time: float  # capture time (wall clock); 0.0 for an answered denied probe
    what: str


@dataclass
class ProbeRecord:
    """What the prober saw: every probe's log, every leak, and the captures' health."""

    logs: dict[Probe, StreamLog] = field(default_factory=dict)
    leaks: list[Leak] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=dict)  # VM -> frames captured
    deaf: list[str] = field(default_factory=list)  # captures whose verdict cannot hold

    def leaks_between(self, start_wall: float, end_wall: float) -> list[Leak]:
        return [leak for leak in self.leaks if start_wall <= leak.time < end_wall]


class _Judge:
    """`explain` with its answers remembered per header: the captures hold thousands of
    frames of a few flows, and only the headers decide."""

    def __init__(self, scene: Scene, policy: Policy) -> None:
        self.scene, self.policy = scene, policy
        self.known: dict[tuple[str, bytes], bool] = {}

    def explained(self, frame: bytes, v: VmAddr) -> bool:
        key = self._key(frame)
        if key is None:
            return explain(frame, v, self.scene, self.policy)
        if (v.name, key) not in self.known:
            self.known[(v.name, key)] = explain(frame, v, self.scene, self.policy)
        return self.known[(v.name, key)]

    @staticmethod
    def _key(frame: bytes) -> bytes | None:
        """The bytes `explain` reads of an IPv4 TCP, UDP or ICMP frame (not DHCP);
        None for anything else, which is judged afresh."""
        if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4:
            return None
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        l4 = ip[ihl:ihl + 4]
        if ip[9] not in (1, 6, 17) or len(l4) < 4:
            return None
        if ip[9] == 17 and struct.unpack("!H", l4[:2])[0] in (67, 68):
            return None
        l4_key = l4[:1] if ip[9] == 1 else l4
        return frame[:14] + ip[0:1] + ip[6:8] + ip[9:10] + ip[12:20] + l4_key


@dataclass
class Running:
    """The prober while it runs; `stop()` once."""

    session: Session
    probes: list[Probe]
    streams: Streams
    captures: dict[str, Capture]
    running: dict[Probe, Stream] = field(default_factory=dict)

    def stop(self) -> ProbeRecord:
        record = ProbeRecord()
        for probe, stream in self.running.items():
            record.logs[probe] = stream.stop()
        caught = stop_captures(self.captures)
        self.captures = {}
        policy = self.session.policy
        scene = build_scene(policy, self.session.topology, self.session.plan,
                            attacker=self.session.plan.hosts[0].vm)
        judge = _Judge(scene, policy)
        for vm, cap in caught.items():
            v = scene.vm(vm)
            record.frames[vm] = len(cap.frames)
            explained = 0
            for t, frame in zip(cap.times, cap.frames, strict=True):
                if judge.explained(frame, v):
                    explained += 1
                else:
                    record.leaks.append(Leak(vm, t, describe(frame)))
            if cap.kernel_dropped != 0 or explained == 0:
                record.deaf.append(f"{vm}: {explained} allowed frames heard,"
                                   f" {cap.kernel_dropped} dropped by the kernel")
        for probe, log in record.logs.items():
            if not probe.allowed and log.recv:
                record.leaks.append(Leak(probe.flow.dst, 0.0, f"{probe.name}: {len(log.recv)}"
                                         " probes answered"))
        return record


@contextlib.contextmanager
def probing(session: Session, probes: Sequence[Probe]) -> Iterator[Running]:
    """Every probe running (each allowed one answered once first) and every VM captured;
    everything stopped by PID when the block ends, whatever happens."""
    require("tcpdump", what="the fault suite's leak captures", error=LabError)
    with streams(session.hosts, session.addresses) as s:
        for probe in probes:
            if probe.allowed:
                warm_up(s, probe.flow)
            else:
                s.serve(probe.flow.dst, probe.flow.service)
        captures = start_captures(session.hosts, session.tmp, "faults")
        run = Running(session, list(probes), s, captures)
        try:
            for probe in probes:
                run.running[probe] = s.start(probe.flow, fresh=probe.fresh,
                                             interval=probe.interval)
            time.sleep(0.2)
            yield run
        finally:
            if run.captures:  # stop() did not run: an error on the way
                stop_captures(run.captures)
