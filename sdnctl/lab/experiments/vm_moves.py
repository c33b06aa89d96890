"""Two ways to move a VM between hypervisors in the lab, for `vm-migration`.

`VmCliMover` is the product's way: a VM of its own, added to the policy by a live
edit, wired by `sdnctl vm plug --netns` and moved by `sdnctl vm migrate` (which
makes the new interface, then moves vm-id and deletes the old port in one OVSDB
transaction). `RebindMover` needs nothing but OVSDB: a Mininet VM gets a second,
idle link to the other hypervisor, and a move is one OVSDB transaction moving its
vm-id plus the VM switching interfaces (its neighbour cache copied, as a live
migration keeps it). Both leave the lab as they found it in `teardown()`.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sdnctl.client.api import ApiError
from sdnctl.lab.experiments.cast import CastError
from sdnctl.lab.experiments.session import Session
from sdnctl.lab.experiments.stream import NetnsNode
from sdnctl.lab.ovs import vsctl
from sdnctl.lab.plan import HOST_INTF, IFNAMSIZ, LabError, intf_name
from sdnctl.policy.load import parse_policy

if TYPE_CHECKING:
    from mininet.node import Node

BIND_TIMEOUT_S = 10.0
SPARE_INTF = "eth1"  # the VM's second link, inside its host (RebindMover)


def wait_bound(session: Session, vm: str, switch: str, timeout: float = BIND_TIMEOUT_S) -> float:
    """Seconds until the daemon reports `vm` bound on `switch` (polled every 20 ms)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            where = session.status().get("bindings", {}).get(vm, "")
        except ApiError:
            where = ""
        if where.startswith(f"{switch}:"):
            return time.monotonic() - start
        time.sleep(0.02)
    raise LabError(f"the daemon did not bind {vm} on {switch} within {timeout:.0f} s")


def _sdnctl(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "import sys; from sdnctl.cli import main; sys.exit(main())",
               *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


# ---------------------------------------------------------------- sdnctl vm migrate


@dataclass
class VmCliMover:
    session: Session
    template: str  # a VM of the policy whose tenant, segment and labels the new VM copies
    home: str
    name: str = ""
    netns: str = ""
    ip: str = ""
    plugged: bool = False
    edited: bool = False

    def __post_init__(self) -> None:
        prefix = self.session.plan.prefix
        self.name = f"{prefix}mv"  # unique per lab, so labs side by side do not clash
        self.netns = f"sdnctl-{prefix}mv"

    @property
    def vm(self) -> str:
        return self.name

    def nodes(self) -> dict[str, Any]:
        return {self.name: NetnsNode(self.netns)}

    def addresses(self) -> dict[str, str]:
        return {self.name: self.ip}

    def _policy_text(self) -> str:
        policy = self.session.policy
        tpl = policy.vms[self.template]
        segment = policy.segment_of(tpl)
        used = {vm.ip for vm in policy.vms.values()} | {segment.gateway}
        free = next((ip for ip in reversed(list(segment.subnet.hosts())) if ip not in used), None)
        if free is None:
            raise CastError(f"segment {segment.name} has no free address for a migrating VM")
        self.ip = str(free)
        digest = hashlib.sha256(self.name.encode()).digest()
        mac = "02:5e:" + ":".join(f"{b:02x}" for b in digest[:4])
        doc = yaml.safe_load(self.session.base_policy_text)
        doc["vms"][self.name] = {"tenant": tpl.tenant, "segment": tpl.segment, "mac": mac,
                                 "ip": str(IPv4Address(free)), "labels": dict(tpl.labels)}
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)

    def setup(self, peer: str, service: Any) -> None:
        from sdnctl.verify.semantics import reach

        text = self._policy_text()
        edited = parse_policy(text, str(self.session.policy_path), self.session.topology)
        if not reach(edited, peer, self.name, service):
            raise CastError(f"a copy of {self.template} would not be reachable from {peer}")
        self.session.write_policy(text)
        self.edited = True
        self.session.wait_enforced(text)
        done = _sdnctl("vm", "plug", self.name, "--netns", self.netns, "--host", self.home,
                       *self._files())
        self.plugged = True
        if done.returncode != 0:
            raise LabError(f"sdnctl vm plug {self.name}: {done.stderr.strip()}")
        wait_bound(self.session, self.name, self.home)

    def _files(self) -> list[str]:
        return ["-p", str(self.session.policy_path), "-t", str(self.session.topology_path)]

    def move(self, to: str) -> float:
        """`sdnctl vm migrate NAME --to SWITCH`; its wall time in seconds."""
        start = time.monotonic()
        done = _sdnctl("vm", "migrate", self.name, "--to", to, *self._files())
        if done.returncode != 0:
            raise LabError(f"sdnctl vm migrate {self.name} --to {to}: {done.stderr.strip()}")
        return time.monotonic() - start

    def teardown(self) -> None:
        problems = []
        if self.plugged:
            done = _sdnctl("vm", "unplug", self.name, *self._files())
            if done.returncode != 0:
                problems.append(f"sdnctl vm unplug {self.name}: {done.stderr.strip()}")
            if Path("/run/netns", self.netns).exists():
                subprocess.run(["ip", "netns", "del", self.netns], check=False)
        if self.edited:
            self.session.restore_policy()
        if problems:
            raise LabError("; ".join(problems))


# ---------------------------------------------------------------- OVSDB re-binding


@dataclass
class RebindMover:
    session: Session
    vm: str  # a Mininet VM of the lab
    away: str  # the hypervisor it moves to
    spare: str = ""  # root-side interface of its second link
    at_home: bool = True
    removed: bool = False

    @property
    def home(self) -> str:
        return self.session.plan.host(self.vm).switch

    def nodes(self) -> dict[str, Any]:
        return {}

    def addresses(self) -> dict[str, str]:
        return {}

    def _host(self) -> Node:
        return self.session.host(self.vm)

    def setup(self, peer: str, service: Any) -> None:
        del peer, service  # the VM keeps its policy identity: whatever reached it still does
        plan = self.session.plan
        hp = plan.host(self.vm)
        bridge = self.session.bridge(self.away)
        taken = {h.port for h in plan.hosts if h.switch == self.away}
        taken |= self.session.topology.link_ports(self.away)
        port = next(p for p in range(200, 0xFEFF) if p not in taken)
        self.spare = intf_name(bridge, port)
        if len(self.spare) > IFNAMSIZ or Path("/sys/class/net", self.spare).exists():
            raise LabError(f"cannot name the spare link {self.spare!r}")
        host = self._host()
        subprocess.run(["ip", "link", "add", self.spare, "type", "veth", "peer", "name",
                        SPARE_INTF, "netns", str(host.pid)], check=True, capture_output=True)
        self.session.on_teardown(f"spare link {self.spare}", self._remove_spare)
        vsctl("add-port", bridge, self.spare, "--", "set", "Interface", self.spare,
              f"ofport_request={port}")
        subprocess.run(["ip", "link", "set", self.spare, "up"], check=True)
        out = host.cmd(f"ip link set {SPARE_INTF} address {hp.mac} && "
                       f"ethtool -K {SPARE_INTF} tx off >/dev/null && "
                       f"ip addr add {hp.ip}/{hp.prefixlen} dev {SPARE_INTF} && echo ok")
        if "ok" not in out:
            raise LabError(f"{self.vm}: cannot set up {SPARE_INTF}: {out.strip()}")

    def _remove_spare(self) -> None:
        if self.removed:
            return
        if not self.at_home:
            self.move(self.home)
            wait_bound(self.session, self.vm, self.home)
        self.removed = True
        vsctl("--if-exists", "del-port", self.spare)
        if Path("/sys/class/net", self.spare).exists():
            subprocess.run(["ip", "link", "del", self.spare], check=False)

    def move(self, to: str) -> float:
        """One OVSDB transaction moves vm-id; the VM switches links; seconds it took."""
        hp = self.session.plan.host(self.vm)
        going = to != self.home
        new, old = (self.spare, hp.intf) if going else (hp.intf, self.spare)
        new_if, old_if = (SPARE_INTF, HOST_INTF) if going else (HOST_INTF, SPARE_INTF)
        host = self._host()
        neigh = [line.split() for line in host.cmd(f"ip -4 neigh show dev {old_if}").splitlines()]
        copies = [f"ip neigh replace {n[0]} lladdr {n[2]} dev {new_if} nud stale"
                  for n in neigh if len(n) >= 3 and n[1] == "lladdr"]
        route = f"ip route replace default via {hp.gateway} dev {new_if}" if hp.gateway else "true"
        start = time.monotonic()
        vsctl("--", "set", "Interface", new, f'external_ids:vm-id="{self.vm}"',
              f'external_ids:attached-mac="{hp.mac}"',
              "--", "remove", "Interface", old, "external_ids", "vm-id",
              "--", "remove", "Interface", old, "external_ids", "attached-mac")
        host.cmd("; ".join([f"ip link set {old_if} down", f"ip link set {new_if} up", route,
                            *copies]))
        self.at_home = not going
        return time.monotonic() - start

    def teardown(self) -> None:
        """Home again, spare link gone (also registered with the session in setup, so
        that a failure half-way still removes it)."""
        if self.spare:
            self._remove_spare()
