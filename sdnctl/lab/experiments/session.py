"""A lab for experiments: Mininet on real OVS plus the controller daemon, kept running.

`open_session` opens a `LabSession`, copies the topology and policy into its temp
dir (the experiments edit the policy there, never the caller's file), gives every
switch a datapath id of its own (so the lab cannot be confused with another lab of
the same topology, which the daemon would see in OVSDB under the same dpids),
builds the lab, starts `sdnctl run` and waits until every switch is programmed.
With `ovsdb_relay`, the daemon reads OVSDB through an ovsdb-server of the session's
own (`ovsdb_relay.OvsdbRelay`), which the fault suite restarts.
Everything is undone when the block ends, last made first: what the experiments
registered (`on_teardown`, while the daemon still runs), the daemon (its process
group), the net, the temp dir. Experiments share one session and leave it as they
found it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnctl.client.api import ApiError, get_status
from sdnctl.lab.controller import PROGRAM_TIMEOUT, daemon_command, wait_until_programmed
from sdnctl.lab.experiments import DEFAULT_POLICY, DEFAULT_TOPOLOGY
from sdnctl.lab.experiments.ovsdb_relay import OvsdbRelay
from sdnctl.lab.names import LOCALHOST, free_ports, free_prefix, rebased_topology
from sdnctl.lab.ovs import ofctl
from sdnctl.lab.plan import LabError, LabPlan, plan_lab
from sdnctl.lab.session import LabSession, start_process, stop_process
from sdnctl.policy.load import load_policy
from sdnctl.policy.model import Policy
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import Topology

if TYPE_CHECKING:
    from mininet.node import Host

    from sdnctl.lab.build import Lab

DPID_TAG = 0x5E7  # high dpid bits of the experiments' labs (names.random_dpid_base)


def say(message: str) -> None:
    print(f"experiment: {message}", flush=True)


def dump_tables(bridge: str) -> list[str]:
    """Flows, groups and meters of `bridge` without counters, sorted: equal iff same state."""
    lines: list[str] = []
    for what in ("dump-flows", "dump-groups", "dump-meters"):
        out = ofctl(bridge, what, *(["--no-stats"] if what == "dump-flows" else []))
        entries: list[str] = []
        for line in out.splitlines():
            text = line.strip()
            if not text or line.startswith(("OFPST_", "NXST_")):
                continue
            if what == "dump-meters" and entries and not text.startswith("meter="):
                entries[-1] += text  # a meter's bands come on the lines after it
            else:
                entries.append(text)
        lines += [f"{what}: {entry}" for entry in entries]
    return sorted(lines)


@dataclass
class Session:
    """A running lab and its daemon; what the experiments act on."""

    life: LabSession  # what the lab made, undone at the end; its temp dir
    topology_path: Path  # the session's copy (rebased dpids)
    policy_path: Path  # the session's copy: experiments edit this file
    base_policy_text: str
    policy: Policy
    topology: Topology
    plan: LabPlan
    listen_port: int
    api: str
    lab: Lab | None = None
    daemon: subprocess.Popen[bytes] | None = None
    daemon_starts: int = 0
    replica_ports: tuple[int, ...] = ()  # more controller addresses the switches dial
    relay: OvsdbRelay | None = None  # the daemon's OVSDB, when the session has its own

    @property
    def tmp(self) -> Path:
        return self.life.tmp

    def keep_for_inspection(self, why: str) -> str:
        """Keep the temp dir (daemon logs) at teardown; a note saying where and why."""
        self.life.keep(why)
        return f"{why}: daemon logs kept in {self.tmp}"

    # ---- the lab ----------------------------------------------------------------
    def host(self, vm: str) -> Host:
        assert self.lab is not None
        return self.lab.hosts[vm]

    @property
    def hosts(self) -> dict[str, Host]:
        assert self.lab is not None
        return dict(self.lab.hosts)

    @property
    def addresses(self) -> dict[str, str]:
        return {h.vm: str(h.ip) for h in self.plan.hosts}

    def bridge(self, switch: str) -> str:
        return self.plan.bridges[switch]

    def dump_all(self) -> dict[str, list[str]]:
        return {b: dump_tables(b) for b in sorted(self.plan.bridges.values())}

    def on_teardown(self, what: str, undo: Callable[[], None]) -> None:
        """Run `undo` at teardown (before the daemon and the net go), e.g. to remove an
        extra veth."""
        self.life.add(what, undo)

    # ---- the daemon -------------------------------------------------------------
    @property
    def daemon_log(self) -> Path:
        return self.tmp / f"daemon-{self.daemon_starts}.log"

    def start_daemon(self) -> None:
        """Start the daemon (again); `open_session` stops the one running at the end."""
        self.daemon_starts += 1
        command = self.daemon_command(self.listen_port, self.api)
        self.daemon = start_process(command, self.daemon_log)

    def daemon_command(self, listen_port: int, api: str) -> list[str]:
        """`sdnctl run` on the session's files, OpenFlow on `listen_port` (and the
        session's own OVSDB, if it has one)."""
        command = daemon_command(self.policy_path, self.topology_path,
                                 f"{LOCALHOST}:{listen_port}", api)
        if self.relay is not None:
            command += ["--ovsdb", self.relay.remote]
        return command

    def kill_daemon(self, sig: int = signal.SIGKILL) -> None:
        """Signal the daemon's whole process group and reap it (SIGKILL after 10 s)."""
        if self.daemon is not None:
            stop_process(self.daemon, group=True, first=sig, grace=10.0)
            self.daemon = None

    def wait_programmed(self, timeout: float = PROGRAM_TIMEOUT) -> float:
        """Seconds until the daemon has bound every VM and programmed every switch."""
        assert self.daemon is not None
        start = time.monotonic()
        waiting = wait_until_programmed(self.api, self.plan, self.daemon, timeout)
        if waiting is not None:
            raise LabError(f"daemon not ready {waiting} (log: {self.daemon_log})")
        return time.monotonic() - start

    def wait_reconnected(self, since_wall: float, timeout: float = PROGRAM_TIMEOUT) -> float:
        """Seconds until every switch has connected again after `since_wall` (time.time())
        and been programmed: after its switches restarted, the daemon may still report
        them programmed for a moment from before."""
        start = time.monotonic()
        want = set(self.plan.bridges)
        while True:
            try:
                events = self.status().get("events", [])
            except ApiError:
                events = []
            seen = {str(e.get("message", "")).split(" ", 1)[0] for e in events
                    if e.get("kind") == "connect" and float(e.get("time", 0)) >= since_wall}
            if want <= seen:
                break
            if time.monotonic() - start > timeout:
                raise LabError(f"switches not reconnected within {timeout:.0f} s:"
                               f" {', '.join(sorted(want - seen))}")
            time.sleep(0.02)
        return time.monotonic() - start + self.wait_programmed(timeout)

    def events_since(self, since_wall: float, kinds: tuple[str, ...] = ()) -> list[str]:
        """The daemon's recent events (kind: message) since `since_wall` (time.time())."""
        events = self.status().get("events", [])
        return [f"{e.get('kind')}: {e.get('message')}" for e in events
                if float(e.get("time", 0)) >= since_wall
                and (not kinds or e.get("kind") in kinds)]

    def status(self) -> dict[str, Any]:
        return get_status(self.api)

    def flow_mods_sent(self) -> int:
        """Flow-mods the running daemon has sent since it started, over all switches."""
        switches = self.status().get("switches", {})
        return sum(int(sw.get("flow_mods_sent") or 0) for sw in switches.values())

    # ---- the policy file --------------------------------------------------------
    def write_policy(self, text: str) -> float:
        """Save the policy as an editor would (write aside, rename over); the
        monotonic time right after the rename, i.e. when the edit is saved."""
        aside = self.policy_path.with_suffix(".saving")
        aside.write_text(text)
        os.replace(aside, self.policy_path)
        return time.monotonic()

    def wait_enforced(self, text: str, timeout: float = 10.0) -> dict[str, Any]:
        """Block until the daemon enforces `text` on every switch; that status."""
        want = hashlib.sha256(text.encode()).hexdigest()
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = self.status()
                pol = status.get("policy", {})
                if pol.get("sha256") == want and pol.get("enforced_in_s") is not None:
                    return status
            except ApiError:
                pass
            if time.monotonic() > deadline:
                raise LabError(f"the daemon did not enforce the edited policy within"
                               f" {timeout:.0f} s (log: {self.daemon_log})")
            time.sleep(0.02)

    def restore_policy(self) -> None:
        """Back to the policy the session started with, enforced."""
        if self.policy_path.read_text() != self.base_policy_text:
            self.write_policy(self.base_policy_text)
        self.wait_enforced(self.base_policy_text)


@contextlib.contextmanager
def open_session(
    topology_path: str | Path = DEFAULT_TOPOLOGY,
    policy_path: str | Path = DEFAULT_POLICY,
    prefix: str | None = None,
    replicas: int = 1,
    ovsdb_relay: bool = False,
) -> Iterator[Session]:
    """Build the lab, start the daemon, yield the session; tear everything down after.

    `replicas` > 1: every switch also dials that many more controller ports (set when
    the bridges are created) for experiments that run replicas (leader-kill).
    `ovsdb_relay`: the daemon reads OVSDB through a relay of the session's own
    (`session.relay`), so that an experiment can restart it (faults)."""
    with LabSession("experiment", say) as life:
        topo_copy = rebased_topology(Path(topology_path), life.tmp, DPID_TAG)
        policy_copy = life.tmp / "policy.yaml"
        policy_text = Path(policy_path).read_text()
        policy_copy.write_text(policy_text)
        topology = load_topology(topo_copy)
        policy = load_policy(policy_copy, topology)
        plan = plan_lab(policy, topology, free_prefix("x") if prefix is None else prefix)
        listen_port, api_port, *more = free_ports(1 + max(replicas, 1))
        session = Session(life, topo_copy, policy_copy, policy_text, policy, topology, plan,
                          listen_port, f"{LOCALHOST}:{api_port}", replica_ports=tuple(more))
        started = time.monotonic()
        if ovsdb_relay:
            session.relay = OvsdbRelay(life.tmp)
            life.add("OVSDB relay", session.relay.stop)
            session.relay.start()
        session.lab = life.lab(plan, (LOCALHOST, listen_port),
                               [(LOCALHOST, p) for p in session.replica_ports])
        # One undo for whichever daemon runs at the end (experiments restart it), so
        # that what they register later still runs while it is up.
        life.add("controller daemon", session.kill_daemon)
        session.start_daemon()
        session.wait_programmed()
        say(f"lab {plan.prefix}: {len(plan.bridges)} switches, {len(plan.hosts)} VMs, daemon"
            f" programmed in {time.monotonic() - started:.1f} s (files and logs in {life.tmp})")
        yield session
