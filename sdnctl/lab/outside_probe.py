"""Run the north–south probes of a built lab: the internet's server, then every
host's probe client at once (sdnctl.lab.outside says which probes and why).

Effectful edge, like sdnctl.lab.probe, whose server agents must already run in
the VMs (they answer the internet's probes and the floating-IP probes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sdnctl.lab.internet import InternetPlan, route_inside
from sdnctl.lab.outside import (
    INTERNET,
    OutsideProbe,
    judge_outside,
    outcome,
    outside_probes,
    targets,
)
from sdnctl.lab.plan import LabError
from sdnctl.lab.probe import ProbeResult, wire_service
from sdnctl.lab.report import LabReport
from sdnctl.lab.session import LabSession, stop_process
from sdnctl.policy.model import Policy, Service

if TYPE_CHECKING:
    from mininet.node import Node

    from sdnctl.lab.build import Lab

AGENT = Path(__file__).with_name("outside_agent.py")


class InternetServer:
    """The internet's server agent; `stop()` it (a LabSession undo)."""

    def __init__(self, host: Node, plan: InternetPlan, services: Sequence[Service]) -> None:
        wired = [wire_service(s) for s in services]
        tcp = ",".join(sorted({w[4:] for w in wired if w.startswith("tcp/")}, key=int))
        udp = ",".join(sorted({w[4:] for w in wired if w.startswith("udp/")}, key=int))
        self.proc = host.popen([sys.executable, str(AGENT), "serve", "--name", INTERNET,
                                "--address", str(plan.server), "--tcp", tcp, "--udp", udp],
                               stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(b"ready"):
            self.stop()
            raise LabError("the internet's server agent did not start")

    def stop(self) -> None:
        stop_process(self.proc, grace=2.0)


def prepare_internet(host: Node, plan: InternetPlan, policy: Policy) -> None:
    """Point the data centre's subnets at a gateway, as an attacker outside would."""
    subnets = [seg.subnet for t in policy.tenants.values() for seg in t.segments.values()]
    for command in route_inside(plan, subnets):
        host.cmd(" ".join(command))


def run_outside(hosts: Mapping[str, Node], internet: Node, plan: InternetPlan,
                probes: Sequence[OutsideProbe], timeout: float = 1.0,
                retries: int = 1) -> dict[int, ProbeResult]:
    """Every probe, each from its host; results by index into `probes`."""
    by_host: dict[str, list[tuple[int, OutsideProbe]]] = {}
    for i, p in enumerate(probes):
        by_host.setdefault(p.runs_in, []).append((i, p))
    clients: dict[str, subprocess.Popen[bytes]] = {}
    results: dict[int, ProbeResult] = {}
    try:
        for name, mine in by_host.items():
            host = internet if name == INTERNET else hosts[name]
            source = plan.client if name == INTERNET else None
            clients[name] = host.popen(
                [sys.executable, str(AGENT), "probe", "--timeout", str(timeout),
                 "--retries", str(retries), json.dumps(targets(mine, source))],
                stdin=subprocess.DEVNULL)
        budget = timeout * (retries + 1) * 2 + 15
        for name, proc in clients.items():
            try:
                out, err = proc.communicate(timeout=budget)
            except subprocess.TimeoutExpired as exc:
                raise LabError(f"probe client in {name} still running after {budget:.0f} s"
                               ) from exc
            if proc.returncode != 0:
                raise LabError(f"probe client in {name} failed:\n{err.decode(errors='replace')}")
            for (i, p), o in zip(by_host[name], json.loads(out), strict=True):
                results[i] = outcome(p, o["reached"], o["detail"], o["answer"], o["tries"])
    finally:
        for proc in clients.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def probe_north_south(session: LabSession, lab: Lab, policy: Policy,
                      services: Sequence[Service]) -> LabReport | None:
    """The lab's north–south rows and columns, probed and judged; None without an
    internet (no gateways). The VMs' probe servers must already run."""
    plan = lab.plan.internet
    if plan is None or lab.internet is None:
        return None
    server = InternetServer(lab.internet, plan, services)
    session.add("internet server", server.stop)
    prepare_internet(lab.internet, plan, policy)
    vms = tuple(h.vm for h in lab.plan.hosts)
    probes = outside_probes(policy, vms, services)
    return judge_outside(probes, run_outside(lab.hosts, lab.internet, plan, probes),
                         vms, services)
