"""The hostile-VM lab, up and controlled: Mininet on OVS, the real daemon, the agents.

`attack_lab()` opens a `LabSession`: builds the lab, starts `sdnctl run`, waits
until every switch is programmed and every dual-stack VM holds its IPv6 address
and route (from the controller's router advertisement, sdnctl.lab.slaac), starts
the lab's probe servers in every VM and the attacker agent (`hostile`) in the
attacker's VM; on the way out the session removes all of it again, last made
first, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnctl.lab.attacks.scene import ATTACKER, POLICY, TOPOLOGY, Scene, build_scene
from sdnctl.lab.controller import daemon_command, wait_until_programmed
from sdnctl.lab.names import LOCALHOST, free_ports, free_prefix, rebased_topology
from sdnctl.lab.plan import HOST_INTF, LabError, LabPlan, plan_lab
from sdnctl.lab.session import LabSession, stop_process
from sdnctl.lab.slaac import start_ipv6, wait_ipv6
from sdnctl.policy.load import load_policy
from sdnctl.policy.model import Policy, parse_service
from sdnctl.tools import require
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import Topology

if TYPE_CHECKING:
    from mininet.node import Node

    from sdnctl.lab.build import Lab

SERVICES = ("icmp", "tcp/80", "tcp/8080")  # what the probe servers answer
DPID_TAG = 0xA77  # high dpid bits of the attack labs (names.random_dpid_base)
AGENT_READY_TIMEOUT = 30.0  # scapy takes a second or two to import
AGENT_ANSWER_TIMEOUT = 60.0


class AgentClient:
    """Talks to the attacker agent over its stdin/stdout, one JSON line each way."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._buffer = b""

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise LabError(f"the attacker agent said nothing for {timeout:.0f} s")
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    err = self.proc.stderr.read() if self.proc.stderr else b""
                    raise LabError(f"the attacker agent exited:\n{err.decode(errors='replace')}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, command: dict[str, Any], timeout: float = AGENT_ANSWER_TIMEOUT) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        self.proc.stdin.flush()
        answer = self.read(timeout)
        if "error" in answer:
            raise LabError(f"attacker agent: {answer['error']}")
        return answer

    def stop(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):  # quit gets no answer
                self.proc.stdin.write(b'{"op": "quit"}\n')
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2)
        stop_process(self.proc, first=signal.SIGKILL)


@dataclass
class AttackLab:
    """A running hostile-VM lab; `hosts` by VM name, `bridges` by topology switch."""

    policy: Policy
    topology: Topology
    plan: LabPlan
    scene: Scene
    session: LabSession  # what the lab made; its temp dir holds the daemon log, captures
    api: str = ""
    lab: Lab | None = None
    daemon: subprocess.Popen[bytes] | None = None
    agent: AgentClient | None = None

    @property
    def hosts(self) -> dict[str, Node]:
        assert self.lab is not None
        return self.lab.hosts

    def bridge_of(self, vm: str) -> tuple[str, int]:
        h = self.plan.host(vm)
        return h.bridge, h.port

    @property
    def tmp(self) -> Path:
        return self.session.tmp

    @property
    def daemon_log(self) -> Path:
        return self.tmp / "daemon.log"


@contextlib.contextmanager
def attack_lab(prefix: str | None = None, topology_path: Path = TOPOLOGY,
               policy_path: Path = POLICY) -> Iterator[AttackLab]:
    """Build and start the lab; yield it; tear everything down on the way out."""
    # Captures (capture.py), canaries and neighbour checks (checks.py); the lab's own
    # programs are checked by check_names_free.
    require("tcpdump", "ping", what="the hostile-VM suite", error=LabError)
    from sdnctl.lab.build import check_names_free
    from sdnctl.lab.probe import start_servers

    with LabSession("attacks") as session:
        topology_path = rebased_topology(topology_path, session.tmp, DPID_TAG)
        topology = load_topology(topology_path)
        policy = load_policy(policy_path, topology)
        plan = plan_lab(policy, topology, free_prefix("a") if prefix is None else prefix)
        clashes = check_names_free(plan)
        if clashes:
            raise LabError("refusing to build the attack lab:\n  " + "\n  ".join(clashes))
        running = AttackLab(policy, topology, plan, build_scene(policy, topology, plan), session)
        listen_port, api_port = free_ports(2)
        running.api = f"{LOCALHOST}:{api_port}"
        running.lab = session.lab(plan, (LOCALHOST, listen_port))
        quiet_switch_ports(plan)
        ipv6_vms = start_ipv6(running.hosts, plan.hosts)  # soliciting until programmed
        servers = start_servers(running.hosts, [parse_service(s) for s in SERVICES])
        session.add("probe servers", servers.stop)
        running.daemon = session.spawn(
            "controller daemon",
            daemon_command(policy_path.resolve(), topology_path.resolve(),
                           f"{LOCALHOST}:{listen_port}", running.api),
            running.daemon_log)
        waiting = wait_until_programmed(running.api, plan, running.daemon)
        if waiting is not None:
            raise LabError(f"the daemon did not program the lab {waiting}")
        wait_ipv6(running.hosts, plan.hosts, ipv6_vms)
        running.agent = _start_agent(running.hosts[ATTACKER], running.scene)
        session.add("attacker agent", running.agent.stop)
        warm_neighbours(running)
        yield running


def quiet_switch_ports(plan: LabPlan) -> None:
    """No IPv6 on the switch ends of the lab's veths.

    The hypervisor's own kernel would otherwise send router solicitations out of
    them, straight into the VMs (a veth does not pass through OVS): noise that
    looks like a leak in the victims' captures.
    """
    for name in plan.interfaces:
        knob = Path("/proc/sys/net/ipv6/conf", name, "disable_ipv6")
        with contextlib.suppress(OSError):
            knob.write_text("1")


def _start_agent(host: Node, scene: Scene) -> AgentClient:
    proc = host.popen([sys.executable, "-m", "sdnctl.lab.attacks.hostile", scene.to_json()],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    client = AgentClient(proc)
    try:
        if not client.read(AGENT_READY_TIMEOUT).get("ready"):
            raise LabError("the attacker agent did not get ready")
    except BaseException:
        client.stop()
        raise
    return client


def warm_neighbours(running: AttackLab) -> None:
    """Fill the victims' ARP caches, so a poisoning that got through would show in them.

    Linux ignores unsolicited ARP (and neighbour advertisements) for addresses it
    has no entry for, but overwrites an entry it has: only a warm cache can be
    poisoned, so only a warm one proves anything. IPv6 likewise: the router's
    link-local address (the default route) and the neighbours' addresses.
    """
    s = running.scene
    rf2, bx1, rb1 = s.vm("rf2"), s.vm("bx1"), s.vm("rb1")
    warm = {
        "rf2": [rf2.gateway_ip, s.me.ip, rf2.router6, s.me.ip6],
        "bx1": [bx1.gateway_ip, s.vm("bx2").ip, bx1.router6, s.vm("bx2").ip6],
        "rb1": [rb1.gateway_ip, rb1.router6],
        ATTACKER: [rf2.ip, s.me.gateway_ip, rf2.ip6, s.me.router6],
    }
    procs = [running.hosts[vm].popen(
        ["sh", "-c", "; ".join(_ping_once(ip) for ip in ips if ip)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for vm, ips in warm.items()]
    for proc in procs:
        proc.wait(timeout=10)


def _ping_once(ip: str) -> str:
    """A shell command: one ping to `ip` (a link-local one out of eth0), output dropped.
    An answer is not needed: asking resolves the neighbour."""
    target = f"{ip}%{HOST_INTF}" if ip.startswith("fe80:") else ip
    return f"ping -c1 -W0.3 {target} >/dev/null"
