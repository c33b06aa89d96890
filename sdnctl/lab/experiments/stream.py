"""Continuous probes between lab hosts: start them, let them run, collect their logs.

The shared probe of every experiment. A `Flow` is (source VM, destination VM,
service); inside `with streams(hosts, addresses) as s:`, `s.start(flow)` runs
`streamer.py send` in the source host (and, for UDP and TCP, one `streamer.py echo`
per port in the destination) and returns a `Stream` whose `stop()` gives back the
`StreamLog` (sdnctl.lab.experiments.loss reads the figures). Every process
started here is stopped by PID when the block ends, also when something fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnctl.lab.experiments.loss import StreamLog
from sdnctl.lab.plan import LabError
from sdnctl.lab.session import stop_process
from sdnctl.policy.model import Proto, Service

if TYPE_CHECKING:
    from mininet.node import Node

STREAMER = Path(__file__).with_name("streamer.py")
INTERVAL_S = 0.01  # a probe every 10 ms, as issue 4 asks
READY_S = 10.0
FRESH_PORTS_LO, FRESH_BLOCK, FRESH_BLOCKS = 20000, 4000, 10  # source ports 20000-59999
_fresh_blocks = itertools.count()


@dataclass(frozen=True, slots=True)
class Flow:
    src: str
    dst: str
    service: Service  # udp/N, tcp/N (a new connection per probe) or icmp

    def __str__(self) -> str:
        return f"{self.src}->{self.dst} {self.service}"


class NetnsNode:
    """A named network namespace as a place to run probes, like a Mininet host: for
    VMs that `sdnctl vm plug --netns` wired, which Mininet does not know."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.name = netns

    def popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        # `ip netns exec` execs the command itself: the PID is the probe's own.
        return subprocess.Popen(["ip", "netns", "exec", self.netns, *args], **kwargs)


def _wait_ready(proc: subprocess.Popen[bytes], what: str) -> None:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(READY_S):
            raise LabError(f"{what}: not ready after {READY_S:.0f} s")
    line = os.read(proc.stdout.fileno(), 64)
    if not line.startswith(b"ready"):
        proc.wait(timeout=5)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise LabError(f"{what} failed to start: {err.strip()}")


@dataclass
class Stream:
    """One running continuous probe; `stop()` returns what it saw."""

    flow: Flow
    sender: subprocess.Popen[bytes]
    started_at: float
    log: StreamLog | None = None

    def stop(self) -> StreamLog:
        if self.log is not None:
            return self.log
        self.sender.terminate()  # the streamer stops sending, lingers, prints its log
        try:
            out, err = self.sender.communicate(timeout=10)
        except subprocess.TimeoutExpired as exc:
            self.sender.kill()
            self.sender.communicate()
            raise LabError(f"stream {self.flow}: sender did not stop") from exc
        try:
            self.log = StreamLog.from_json(json.loads(out))
        except (ValueError, KeyError) as exc:
            raise LabError(f"stream {self.flow}: no log ({err.decode(errors='replace')})"
                           ) from exc
        return self.log


@dataclass
class Streams:
    """Echo servers and streams of one experiment; `close()` ends every process."""

    hosts: Mapping[str, Node | NetnsNode]
    addresses: Mapping[str, str]
    echoes: dict[tuple[str, str, int], subprocess.Popen[bytes]] = field(default_factory=dict)
    running: list[Stream] = field(default_factory=list)

    def serve(self, vm: str, service: Service) -> None:
        """An echo server for `service` (udp/N or tcp/N) in `vm`, if none runs yet: a
        probe there is answered if it arrives (also one the policy should stop)."""
        if service.proto not in (Proto.UDP, Proto.TCP):
            return  # icmp: the kernel answers
        key = (vm, service.proto.value, service.port_lo)
        if key in self.echoes:
            return
        proc = self.hosts[vm].popen(
            [sys.executable, str(STREAMER), "echo", "--port", str(service.port_lo),
             "--proto", service.proto.value], stdin=subprocess.DEVNULL)
        self.echoes[key] = proc
        _wait_ready(proc, f"echo server in {vm}")

    def start(self, flow: Flow, fresh: bool = False, interval: float = INTERVAL_S) -> Stream:
        """Start probing `flow` every `interval` seconds (a new connection each if fresh;
        TCP always is)."""
        svc = flow.service
        self.serve(flow.dst, svc)
        args = _proto_args(svc)
        if fresh or svc.proto is Proto.TCP:
            args += ["--fresh", "--sports", self._sports()]
        command = [sys.executable, str(STREAMER), "send", "--ip", self.addresses[flow.dst],
                   "--interval", str(interval), *args]
        proc = self.hosts[flow.src].popen(command, stdin=subprocess.DEVNULL)
        stream = Stream(flow, proc, time.monotonic())
        self.running.append(stream)
        _wait_ready(proc, f"stream {flow}")
        return stream

    @staticmethod
    def _sports() -> str:
        """Source ports of its own for each fresh stream of this process: a block lasts
        40 s at 10 ms, and the blocks take 400 s to come round, longer than conntrack
        keeps an entry (30-60 s), so no probe meets an earlier probe's 5-tuple."""
        lo = FRESH_PORTS_LO + next(_fresh_blocks) % FRESH_BLOCKS * FRESH_BLOCK
        return f"{lo}-{lo + FRESH_BLOCK - 1}"

    def close(self) -> None:
        for proc in [s.sender for s in self.running] + list(self.echoes.values()):
            stop_process(proc, grace=3.0)
        self.running.clear()
        self.echoes.clear()


@contextlib.contextmanager
def streams(hosts: Mapping[str, Node | NetnsNode], addresses: Mapping[str, str]
            ) -> Iterator[Streams]:
    """Streams whose processes all end when the block does, whatever happens."""
    s = Streams(hosts, addresses)
    try:
        yield s
    finally:
        s.close()


def _proto_args(svc: Service) -> list[str]:
    if svc.proto in (Proto.UDP, Proto.TCP):
        return ["--proto", svc.proto.value, "--port", str(svc.port_lo)]
    if svc.proto is Proto.ICMP:
        return ["--proto", "icmp"]
    raise LabError(f"cannot stream {svc}: streams are udp/N, tcp/N or icmp")


def warm_up(s: Streams, flow: Flow, timeout: float = 5.0) -> float:
    """Probe `flow` until one probe is answered; seconds it took. LabError at `timeout`.

    Run before an experiment acts, so that a flow that never worked is reported as
    such instead of as a loss window.
    """
    start = time.monotonic()
    svc = flow.service
    args = _proto_args(svc)
    if svc.proto is Proto.TCP:
        args += ["--sports", s._sports()]
    s.serve(flow.dst, svc)
    while time.monotonic() - start < timeout:
        proc = s.hosts[flow.src].popen(
            [sys.executable, str(STREAMER), "send", "--ip", s.addresses[flow.dst],
             "--duration", "0.2", "--interval", "0.02", "--linger", "0.1", *args],
            stdin=subprocess.DEVNULL)
        out, _err = proc.communicate(timeout=10)
        log = StreamLog.from_json(json.loads(out.split(b"\n", 1)[1]))
        if log.recv:
            return time.monotonic() - start
    raise LabError(f"flow {flow} does not work before the experiment (no answer in"
                   f" {timeout:.0f} s): check that the policy allows it")
