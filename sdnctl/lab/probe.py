"""Probe the reachability matrix with real traffic between lab hosts.

One server agent per host listens on every probe port (and answers pings itself),
one client agent per source host runs all of that host's probes at once, and all
sources run in parallel, so the whole matrix costs about one timeout plus one retry.

Retries: a failed probe is tried once more (`retries=1`) so that a first packet
lost to ARP resolution or a cold cache is not reported as BLOCKED. A retry can only
turn "not reached" into "reached", never the reverse, so it cannot hide a leak:
a probe that got through on any try counts as reached.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sdnctl.lab.plan import LabError
from sdnctl.lab.session import stop_process
from sdnctl.policy.model import Proto, Service

if TYPE_CHECKING:  # only the hosts' popen/cmd are used; importing mininet is slow
    from mininet.node import Node

AGENT = Path(__file__).with_name("agent.py")
READY_TIMEOUT = 10.0  # seconds for every server agent to be listening


@dataclass(frozen=True, slots=True)
class ProbeResult:
    src: str
    dst: str
    service: Service
    reached: bool
    detail: str  # how it went: "connected", "timeout", "answered by rf1", ...
    tries: int
    family: int = 4  # 4: IPv4, 6: IPv6


def wire_service(service: Service) -> str:
    """The service as the agent takes it: one port, since one probe is one packet."""
    if service.proto is Proto.ICMP:
        return "icmp"
    if service.has_ports and service.port_lo == service.port_hi:
        return f"{service.proto.value}/{service.port_lo}"
    raise ValueError(f"cannot probe {service}: probe one port (see probe_services)")


@dataclass
class ProbeServers:
    """The server agents of a lab, one per host; stop them with `stop()`."""

    procs: dict[str, subprocess.Popen[bytes]]

    def stop(self) -> None:
        for proc in self.procs.values():  # all at once: each then exits within its grace
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            stop_process(proc, grace=2.0)


def start_servers(hosts: Mapping[str, Node], services: Sequence[Service]) -> ProbeServers:
    """Start a server agent in every host and wait until all of them listen."""
    wired = [wire_service(s) for s in services]
    tcp = ",".join(sorted({w.split("/")[1] for w in wired if w.startswith("tcp/")}, key=int))
    udp = ",".join(sorted({w.split("/")[1] for w in wired if w.startswith("udp/")}, key=int))
    servers = ProbeServers({})
    try:
        for vm, host in hosts.items():
            # The agent answers pings itself, naming its VM; the kernel must not.
            host.cmd("sysctl -qw net.ipv4.icmp_echo_ignore_all=1 net.ipv6.icmp.echo_ignore_all=1")
            servers.procs[vm] = host.popen(
                [sys.executable, str(AGENT), "serve", "--name", vm, "--tcp", tcp, "--udp", udp],
                stdin=subprocess.DEVNULL,
            )
        _wait_ready(servers.procs)
    except BaseException:
        servers.stop()
        raise
    return servers


def _wait_ready(procs: Mapping[str, subprocess.Popen[bytes]]) -> None:
    pending = {}
    with selectors.DefaultSelector() as sel:
        for vm, proc in procs.items():
            assert proc.stdout is not None
            sel.register(proc.stdout, selectors.EVENT_READ, vm)
            pending[vm] = proc
        deadline = time.monotonic() + READY_TIMEOUT
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabError(f"probe servers not ready after {READY_TIMEOUT:.0f} s: "
                               + ", ".join(sorted(pending)))
            for key, _ in sel.select(left):
                vm = key.data
                line = os.read(key.fd, 4096)
                proc = pending.pop(vm)
                sel.unregister(key.fileobj)
                if not line.startswith(b"ready"):
                    proc.wait(timeout=5)
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise LabError(f"probe server in {vm} failed to start:\n{err}")


def probe_matrix(
    hosts: Mapping[str, Node],
    addresses: Mapping[str, str],
    services: Sequence[Service],
    timeout: float = 1.0,
    retries: int = 1,
    addresses6: Mapping[str, str] | None = None,
) -> list[ProbeResult]:
    """Probe every ordered pair of distinct VMs in `hosts` for every service.

    `addresses` gives each VM's IPv4 address, `addresses6` the IPv6 address of the
    VMs that have one: each pair of those is probed in IPv6 too (a VM without one
    has nothing to send from or to). Server agents must be running (start_servers).
    """
    wired = {wire_service(s): s for s in services}
    v6 = addresses6 or {}
    clients: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for src, host in hosts.items():
            targets = [
                {"dst": dst, "ip": ip, "service": w}
                for dst in hosts
                if dst != src
                for ip in (addresses[dst], *([v6[dst]] if src in v6 and dst in v6 else []))
                for w in wired
            ]
            clients[src] = host.popen(
                [sys.executable, str(AGENT), "probe", "--timeout", str(timeout),
                 "--retries", str(retries), json.dumps(targets)],
                stdin=subprocess.DEVNULL,
            )
        results: list[ProbeResult] = []
        budget = timeout * (retries + 1) * 2 + 15  # generous: only a hung agent hits it
        for src, proc in clients.items():
            try:
                out, err = proc.communicate(timeout=budget)
            except subprocess.TimeoutExpired as exc:
                raise LabError(f"probe client in {src} still running after {budget:.0f} s") from exc
            if proc.returncode != 0:
                raise LabError(f"probe client in {src} failed:\n{err.decode(errors='replace')}")
            for o in json.loads(out):
                results.append(
                    ProbeResult(src, o["dst"], wired[o["service"]], o["reached"],
                                o["detail"], o["tries"], o.get("family", 4))
                )
    finally:
        for proc in clients.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results
