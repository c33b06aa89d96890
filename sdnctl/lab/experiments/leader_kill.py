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

import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from sdnctl.client.api import ApiError, get_status
from sdnctl.ha.server import EtcdServer, start_etcd
from sdnctl.lab.controller import daemon_command
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
    command = daemon_command(session.policy_path, session.topology_path,
                             f"{LOCALHOST}:{r.listen_port}", r.api)
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


def run(session: Session, runs: int = 3) -> ExperimentResult:
    if not session.replica_ports:
        raise LabError(f"{NAME} needs switches that dial a second controller (run it through"
                       " `sdnctl lab experiment`, which builds the lab so)")
    result = ExperimentResult(NAME)
    flow = crossing_flow(Cast(session.policy, session.topology, session.plan))
    switches = sorted(session.plan.bridges)
    result.setup = {"flow": str(flow), "kills": runs, "replicas": 2, "lease_ttl_s": 2}
    etcd = start_etcd(session.tmp)
    api2 = free_port()
    pair = [Replica("r0", session.listen_port, session.api),
            Replica("r1", session.replica_ports[0], f"{LOCALHOST}:{api2}")]
    marks = []
    try:
        session.kill_daemon(signal.SIGTERM)  # the single daemon; the flows stay
        _start(session, etcd, pair[0])
        _wait(pair[0], True, switches, READY_S)
        _start(session, etcd, pair[1])
        _wait(pair[1], False, switches, READY_S)
        with streams(session.hosts, session.addresses) as s:
            warm_up(s, flow)
            long_lived = s.start(flow)
            fresh = s.start(flow, fresh=True)
            time.sleep(0.3)
            for i in range(runs):
                leader, follower = pair[i % 2], pair[(i + 1) % 2]
                before = session.dump_all()
                killed_wall, killed = time.time(), time.monotonic()
                _kill(leader)
                st = _wait(follower, True, switches, TAKEOVER_S)
                role_at = max(float(st["switches"][n]["role_at"]) for n in switches)
                mods = sum(int(st["switches"][n]["flow_mods_sent"]) for n in switches)
                time.sleep(AFTER_S)
                after = session.dump_all()
                changed = sorted(b for b in before if before[b] != after.get(b))
                marks.append((killed, time.monotonic(), st["ha"]["leading_since"] - killed_wall,
                               role_at - killed_wall, mods, changed))
                _start(session, etcd, leader)  # back, as the follower
                _wait(leader, False, switches, READY_S)
            logs = {"long-lived": long_lived.stop(), "fresh": fresh.stop()}
    finally:
        for r in pair:
            if r.proc is not None:
                stop_process(r.proc, group=True)
                r.proc = None
        etcd.stop()
        session.start_daemon()
        session.wait_programmed()
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
