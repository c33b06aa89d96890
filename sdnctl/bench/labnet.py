"""Mininet networks for the lab benchmarks: sdnctl's lab, a NORMAL baseline, a peer's.

Effectful (mininet, ovs-ofctl, processes). Each net is a `LabSession`: everything
started here is stopped by PID and every bridge and interface removed by name,
whatever happens; nothing here runs `mn -c` or touches ovs-vswitchd.

`open_net` builds a LabPlan in one of three modes:
- "sdnctl": fail mode secure, controller = the sdnctl daemon this module starts;
- "peer": fail mode secure, controller = a port another controller (Faucet) uses;
- "normal": fail mode standalone, no controller, one `priority=0 actions=NORMAL`
  flow per bridge: the baseline for the data plane.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sdnctl.bindings import Bindings
from sdnctl.client.api import get_status
from sdnctl.lab.controller import PROGRAM_TIMEOUT, daemon_command, wait_until_programmed
from sdnctl.lab.names import LOCALHOST, free_port
from sdnctl.lab.ovs import flow_count, ofctl, vsctl
from sdnctl.lab.plan import LabError, LabPlan
from sdnctl.lab.session import LabSession, stop_process
from sdnctl.topology.model import PortRef

if TYPE_CHECKING:
    from mininet.node import Host

    from sdnctl.lab.build import Lab


def _build_normal(plan: LabPlan) -> Lab:
    """The plan's switches, links and hosts; standalone bridges with one NORMAL flow."""
    from sdnctl.lab.build import build_standalone, stop_lab

    lab = build_standalone(plan)
    try:
        for bridge in plan.bridges.values():
            ofctl(bridge, "del-flows")
            ofctl(bridge, "add-flow", "priority=0,actions=NORMAL")
    except BaseException:
        stop_lab(lab)
        raise
    return lab


@dataclass
class Net:
    """A built network and, in "sdnctl" mode, its daemon."""

    lab: Lab
    mode: str
    controller_port: int
    session: LabSession
    api: str = ""
    daemon: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    started_at: float = 0.0  # monotonic, when the daemon was started
    started_wall: float = 0.0

    @property
    def hosts(self) -> dict[str, Host]:
        return self.lab.hosts

    @property
    def addresses(self) -> dict[str, str]:
        return {h.vm: str(h.ip) for h in self.lab.plan.hosts}

    def bridges(self) -> list[str]:
        return list(self.lab.plan.bridges.values())

    def set_fabric_mtu(self, mtu: int) -> None:
        """MTU of both ends of every fabric link (OVS's mtu_request, as an operator would).

        sdnctl pushes a VLAN tag and an MPLS label (8 bytes) onto frames crossing the
        fabric, so a full 1500-byte IP packet needs a fabric MTU of at least 1508.
        """
        args: list[str] = []
        for link in self.lab.plan.links:
            for intf in (link.a_intf, link.b_intf):
                args += ["--", "set", "Interface", intf, f"mtu_request={mtu}"]
        if args:
            vsctl(*args[1:])

    def flows(self) -> dict[str, int]:
        return {sw: flow_count(b) for sw, b in self.lab.plan.bridges.items()}

    def start_daemon(self, policy: Path, topology: Path, log: Path) -> None:
        listen = f"{LOCALHOST}:{self.controller_port}"
        self.api = f"{LOCALHOST}:{free_port()}"
        self.log = log
        self.started_wall = time.time()
        self.started_at = time.monotonic()
        self.daemon = self.session.spawn(
            "controller daemon", daemon_command(policy, topology, listen, self.api), log)

    def wait_programmed(self, timeout: float = PROGRAM_TIMEOUT,
                        vms: Collection[str] | None = None) -> dict[str, Any]:
        """Block until the daemon has bound every VM (or those in `vms`: the ones its
        policy names) and programmed every switch."""
        assert self.daemon is not None
        waiting = wait_until_programmed(self.api, self.lab.plan, self.daemon, timeout, vms)
        if waiting is not None:
            raise LabError(f"daemon not ready {waiting}")
        return get_status(self.api)

    def bindings(self) -> Bindings:
        """Where the lab plugged each VM, as the controller will see it."""
        return Bindings(MappingProxyType(
            {h.vm: PortRef(h.switch, h.port) for h in self.lab.plan.hosts}))

    def status(self) -> dict[str, Any]:
        return get_status(self.api)

    def stop_daemon(self) -> None:
        if self.daemon is not None:
            stop_process(self.daemon, group=True)
            self.daemon = None


@contextlib.contextmanager
def open_net(plan: LabPlan, mode: str, controller_port: int | None = None) -> Iterator[Net]:
    """Build the plan in `mode`; on leaving, stop the daemon and remove the net."""
    from sdnctl.lab.build import check_names_free, stop_lab

    if mode not in ("sdnctl", "peer", "normal"):
        raise ValueError(f"unknown mode {mode!r}")
    clashes = check_names_free(plan)
    if clashes:
        raise LabError("refusing to build: " + "; ".join(clashes))
    port = controller_port or free_port()
    with LabSession("bench") as session:
        if mode == "normal":
            lab = _build_normal(plan)
            session.add("network", lambda: stop_lab(lab))
        else:
            lab = session.lab(plan, (LOCALHOST, port))
        yield Net(lab, mode, port, session)


# ---- traffic ----------------------------------------------------------------------


def iperf_tcp(net: Net, client: str, server: str, seconds: float = 4.0,
              port: int = 5201) -> float:
    """TCP throughput client -> server in bit/s (what the receiver got)."""
    srv = net.hosts[server].popen(["iperf3", "-s", "-1", "-p", str(port)],
                                  stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.3)  # the server binds
        out = net.hosts[client].cmd(
            f"iperf3 -c {net.addresses[server]} -p {port} -t {seconds} -J --connect-timeout 3000")
        try:
            doc = json.loads(out[out.index("{"):])
            return float(doc["end"]["sum_received"]["bits_per_second"])
        except (ValueError, KeyError) as exc:
            raise LabError(f"iperf3 {client}->{server}: {out.strip()[-300:]}") from exc
    finally:
        if srv.poll() is None:
            srv.terminate()
        try:
            srv.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.communicate()


def ping_rtt_ms(net: Net, src: str, dst: str, count: int = 100,
                interval: float = 0.01) -> float:
    """Median-free but robust enough: ping's average RTT in ms over `count` echoes."""
    out = net.hosts[src].cmd(f"ping -q -n -c {count} -i {interval} -W 1 {net.addresses[dst]}")
    found = re.search(r"= [\d.]+/([\d.]+)/", out)
    if not found:
        raise LabError(f"ping {src}->{dst}: {out.strip()[-300:]}")
    return float(found.group(1))


def wait_ping(net: Net, src: str, dst: str, timeout: float = 20.0) -> float:
    """Seconds until one ping src -> dst is answered (LabError at timeout)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        out = net.hosts[src].cmd(f"ping -n -c 1 -W 0.2 {net.addresses[dst]}")
        if " 0% packet loss" in out:
            return time.monotonic() - start
    raise LabError(f"no ping answer {src}->{dst} within {timeout:.0f} s")
