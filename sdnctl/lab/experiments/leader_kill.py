"""Experiment `leader-kill`: two replicas behind an etcd lease; SIGKILL the leader.

The session's lab must dial two controller addresses (the runner builds it so when
this experiment is chosen). The experiment replaces the session's daemon by two
replicas (`sdnctl run --etcd`, a throwaway etcd), then, per run, kills whichever
leads with SIGKILL under traffic and measures: the time from the kill to the
follower winning the lease, and to every switch acknowledging it as MASTER
(takeover); probes lost (expected: none, the switches keep forwarding); flow-mods
the new leader sent and tables changed (expected: none). The killed replica is
started again as a follower before the next run. At the end the single daemon is
back, as the session had it.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sdnctl.client.api import ApiError, get_status
from sdnctl.ha.server import EtcdServer, start_etcd
from sdnctl.lab.experiments import loss
from sdnctl.lab.experiments.cast import Cast, crossing_flow
from sdnctl.lab.experiments.result import ExperimentResult, median, ms, worst
from sdnctl.lab.experiments.session import Session, say
from sdnctl.lab.experiments.stream import streams, warm_up
from sdnctl.lab.names import LOCALHOST, free_port
from sdnctl.lab.plan import LabError
from sdnctl.lab.session import start_process, stop_process

NAME = "leader-kill"
READY_S = 60.0  # replicas started and settled (generous: shared machine)
TAKEOVER_S = 30.0
AFTER_S = 0.5  # traffic watched after the takeover


@dataclass
class Replica:
    name: str
    listen_port: int
    api: str
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0


def _start(session: Session, etcd: EtcdServer, r: Replica) -> None:
    r.starts += 1
    command = session.daemon_command(r.listen_port, r.api)
    command += ["--etcd", etcd.url, "--replica-id", r.name, "--stats-interval", "0"]
    r.proc = start_process(command, session.tmp / f"replica-{r.name}-{r.starts}.log")


def _kill(r: Replica) -> None:
    if r.proc is not None:
        stop_process(r.proc, group=True, first=signal.SIGKILL, grace=10.0)
        r.proc = None


def _status(r: Replica) -> dict[str, Any] | None:
    try:
        return get_status(r.api)
    except ApiError:
        return None


def _wait(r: Replica, leading: bool, switches: list[str], timeout: float) -> dict[str, Any]:
    """Until `r` leads with every switch MASTER and programmed (or follows, every switch
    SLAVE); that status."""
    deadline = time.monotonic() + timeout
    while True:
        st = _status(r)
        if st is not None and st["ha"].get("leading") == leading:
            sws = st["switches"]
            role = "master" if leading else "slave"
            if all(sws.get(n, {}).get("role") == role
                   and (sws[n].get("programmed") or not leading) for n in switches):
                return st
        if r.proc is not None and r.proc.poll() is not None:
            raise LabError(f"replica {r.name} exited ({r.proc.returncode})")
        if time.monotonic() > deadline:
            raise LabError(f"replica {r.name} not {'leading' if leading else 'following'}"
                           f" within {timeout:.0f} s")
        time.sleep(0.02)


@dataclass(frozen=True, slots=True)
class Takeover:
    """One leader kill: when, and what the new leader said once every switch was MASTER."""

    killed: float  # monotonic
    lease_won_s: float  # SIGKILL -> the follower created the leadership key
    all_master_s: float  # SIGKILL -> every switch acknowledged the new leader
    flow_mods: int  # flow-mods the new leader had sent by then
    taken_over: float  # monotonic, when the new leader's status said so


@dataclass
class ReplicaPair:
    """Two replicas of the session's daemon behind one etcd; `kill_leader` per run."""

    session: Session
    etcd: EtcdServer
    pair: tuple[Replica, Replica]
    kills: int = 0

    @property
    def switches(self) -> list[str]:
        return sorted(self.session.plan.bridges)

    def kill_leader(self) -> Takeover:
        """SIGKILL whichever leads (they alternate), wait for the other to take every
        switch over, start the killed one again as the follower."""
        leader, follower = self.pair[self.kills % 2], self.pair[(self.kills + 1) % 2]
        self.kills += 1
        killed_wall, killed = time.time(), time.monotonic()
        _kill(leader)
        st = _wait(follower, True, self.switches, TAKEOVER_S)
        taken_over = time.monotonic()
        role_at = max(float(st["switches"][n]["role_at"]) for n in self.switches)
        mods = sum(int(st["switches"][n]["flow_mods_sent"]) for n in self.switches)
        _start(self.session, self.etcd, leader)  # back, as the follower
        _wait(leader, False, self.switches, READY_S)
        return Takeover(killed, st["ha"]["leading_since"] - killed_wall, role_at - killed_wall,
                        mods, taken_over)


@contextlib.contextmanager
def replica_pair(session: Session) -> Iterator[ReplicaPair]:
    """The session's single daemon replaced by two replicas (`sdnctl run --etcd`, a
    throwaway etcd), r0 leading, r1 following; the single daemon back at the end, as
    the session had it. The switches keep their flows throughout."""
    if not session.replica_ports:
        raise LabError(f"{NAME} needs switches that dial a second controller (run it through"
                       " `sdnctl lab experiment`, which builds the lab so)")
    etcd = start_etcd(session.tmp)
    api2 = free_port()
    pair = (Replica("r0", session.listen_port, session.api),
            Replica("r1", session.replica_ports[0], f"{LOCALHOST}:{api2}"))
    switches = sorted(session.plan.bridges)
    try:
        session.kill_daemon(signal.SIGTERM)  # the single daemon; the flows stay
        _start(session, etcd, pair[0])
        _wait(pair[0], True, switches, READY_S)
        _start(session, etcd, pair[1])
        _wait(pair[1], False, switches, READY_S)
        yield ReplicaPair(session, etcd, pair)
    finally:
        for r in pair:
            if r.proc is not None:
                stop_process(r.proc, group=True)
                r.proc = None
        etcd.stop()
        session.start_daemon()
        session.wait_programmed()


def run(session: Session, runs: int = 3) -> ExperimentResult:
    result = ExperimentResult(NAME)
    flow = crossing_flow(Cast(session.policy, session.topology, session.plan))
    result.setup = {"flow": str(flow), "kills": runs, "replicas": 2, "lease_ttl_s": 2}
    marks = []
    with replica_pair(session) as replicas, streams(session.hosts, session.addresses) as s:
        warm_up(s, flow)
        long_lived = s.start(flow)
        fresh = s.start(flow, fresh=True)
        time.sleep(0.3)
        for _ in range(runs):
            before = session.dump_all()
            t = replicas.kill_leader()
            end = time.monotonic()
            time.sleep(AFTER_S)
            after = session.dump_all()
            changed = sorted(b for b in before if before[b] != after.get(b))
            marks.append((t.killed, end + AFTER_S, t.lease_won_s, t.all_master_s, t.flow_mods,
                          changed))
        logs = {"long-lived": long_lived.stop(), "fresh": fresh.stop()}
    per_run = [{
        "lost_long_lived": loss.count_lost(logs["long-lived"], start, end),
        "lost_new_connections": loss.count_lost(logs["fresh"], start, end),
        "sent": loss.count_sent(logs["long-lived"], start, end),
        "kill_to_lease_won_ms": ms(lease_s),
        "kill_to_all_master_ms": ms(master_s),
        "flow_mods_by_new_leader": mods,
        "tables_changed_on": changed,
    } for start, end, lease_s, master_s, mods, changed in marks]
    result.runs = per_run
    total = loss.count_lost(logs["long-lived"])
    result.add("lost", total, "packets", "0",
               f"on {flow}, one connection, across {runs} leader kills"
               f" ({loss.count_sent(logs['long-lived'])} sent)")
    result.add("lost_new_connections", loss.count_lost(logs["fresh"]), "packets", "0",
               "a new connection per probe")
    takeover = [r["kill_to_all_master_ms"] for r in per_run]
    result.add("takeover_ms", median(takeover), "ms", "< 5000",
               f"median, SIGKILL -> every switch acknowledged the new leader as MASTER"
               f" (worst {worst(takeover)}); the lease TTL is 2 s")
    result.add("kill_to_lease_won_ms", median([r["kill_to_lease_won_ms"] for r in per_run]),
               "ms", "", "median, SIGKILL -> the follower created the leadership key")
    result.add("flow_mods_by_new_leader", max(r["flow_mods_by_new_leader"] for r in per_run),
               "", "0", "flow-mods the new leader sent (worst kill)")
    changed = sorted({b for r in per_run for b in r["tables_changed_on"]})
    result.add("tables_unchanged", not changed, "", "True",
               "every switch's flows, groups and meters identical before the kill and after"
               " the takeover")
    if changed or total:
        result.notes.append(session.keep_for_inspection("loss or changed tables"))
    say(f"{NAME}: {runs} kills, lost {total}, takeover median {median(takeover)} ms")
    return result
