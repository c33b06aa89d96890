"""Measurements around an attack: switch counters, packet-ins, API latency, daemon memory.

All read-only: ovs-ofctl dump/snoop on the lab's own bridges, GET /status on the
daemon's API, /proc/PID/status of the daemon.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sdnctl.client.api import ApiError, get_status
from sdnctl.lab.ovs import ofctl

OVS_RUN = Path("/var/run/openvswitch")
NETDEV_DATAPATH = "netdev@ovs-netdev"  # the one userspace datapath every lab bridge is on
API_INTERVAL = 0.02  # seconds between status requests while sampling
API_TIMEOUT = 1.0


def port_rx(bridge: str, port: int) -> int:
    """Frames the switch received on `port` (what reached OVS, whatever it did next)."""
    found = re.search(r"rx pkts=(\d+)", ofctl(bridge, "dump-ports", str(port), timeout=10))
    return int(found.group(1)) if found else 0


def controller_outputs(bridges: Iterable[str]) -> list[str]:
    """Every flow or group on these bridges that can send a packet to a controller."""
    hits = []
    for bridge in bridges:
        for what in ("dump-flows", "dump-groups"):
            for line in ofctl(bridge, what, timeout=10).splitlines():
                if "CONTROLLER" in line.upper():
                    hits.append(f"{bridge}: {line.strip()}")
    return hits


def flow_tables(bridges: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each bridge's flows and groups without counters, sorted: to compare before/after."""
    tables = {}
    for bridge in bridges:
        lines = (ofctl(bridge, "dump-flows", "--no-stats", timeout=10).splitlines()
                 + ofctl(bridge, "dump-groups", timeout=10).splitlines())
        tables[bridge] = tuple(sorted(
            line.strip() for line in lines
            if line.strip() and not line.startswith(("OFPST", "NXST"))))
    return tables


@dataclass(frozen=True, slots=True)
class SnoopCount:
    packet_ins: int
    messages: int  # every OpenFlow message seen: echoes every few seconds prove it listened


@dataclass
class PacketInSnoop:
    """Count OpenFlow PACKET_IN messages between the lab's switches and the daemon.

    `ovs-ofctl snoop` taps a bridge's controller connection read-only, so this
    counts what the switches sent whether or not the daemon handles it.
    """

    bridges: tuple[str, ...]
    procs: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def start(self) -> PacketInSnoop:
        for bridge in self.bridges:
            # snoop prints the decoded messages on stderr.
            self.procs[bridge] = subprocess.Popen(
                ["ovs-ofctl", "snoop", bridge], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
        time.sleep(0.2)  # let every snoop connect before the traffic starts
        return self

    def stop(self) -> SnoopCount:
        packet_ins = messages = 0
        for proc in self.procs.values():
            proc.terminate()
            try:
                out, _ = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            packet_ins += out.count("OFPT_PACKET_IN") + out.count("NXT_PACKET_IN")
            messages += len(re.findall(r"^(?:OFPT|NXT|ONFT)_\w+", out, flags=re.MULTILINE))
        self.procs.clear()
        return SnoopCount(packet_ins, messages)


def provoke_packet_in(bridge: str) -> None:
    """Make the switch send the controller one packet-in (a packet-out with output:CONTROLLER).

    The control for PacketInSnoop and for the daemon: the frame (broadcast, local
    experimental ethertype) goes only to the controller, never onto a port.
    """
    frame = "ffffffffffff" + "02deadbeef01" + "88b5" + "00" * 46
    ofctl(bridge, "packet-out", f"in_port=controller packet={frame} actions=controller",
          timeout=10)


@dataclass
class ApiSampler:
    """GET /status again and again in a thread; latencies in milliseconds."""

    api: str
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ApiSampler:
        self._thread = threading.Thread(target=self._run, name="api-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                get_status(self.api, timeout=API_TIMEOUT)
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
            except ApiError as exc:
                self.failures.append(str(exc))
            self._stop.wait(API_INTERVAL)

    def stop(self) -> ApiSampler:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=API_TIMEOUT + 1)
        return self


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ranked = sorted(values)
    rank = max(1, round(pct / 100 * len(ranked) + 0.5 - 1e-9))
    return ranked[min(rank, len(ranked)) - 1]


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB; {} if it is gone."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def vswitchd_cpu_seconds() -> float | None:
    """CPU time ovs-vswitchd has used so far (user + system), None if not found.

    The machine has one ovs-vswitchd for every bridge, so this includes whatever
    else it switches meanwhile.
    """
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((OVS_RUN / "ovs-vswitchd.pid").read_text().split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        # After the command name: state is field 3, utime and stime are fields 14 and 15.
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")
    return None


def ipf_accepted() -> int:
    """IPv4 fragments OVS's userspace conntrack has taken in to reassemble so far.

    A held fragment is the danger: OVS 3.1 later hands it to whatever passes
    conntrack next (sdnctl/compile/conntrack.py). Machine-wide, like the datapath.
    """
    out = subprocess.run(["ovs-appctl", "dpctl/ipf-get-status", NETDEV_DATAPATH],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    found = re.search(r"v4 frags accepted: (\d+)", out)
    if found is None:
        raise RuntimeError(f"dpctl/ipf-get-status: no v4 count in {out!r}")
    return int(found.group(1))
