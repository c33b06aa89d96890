"""Experiment `vswitchd-restart`: restart ovs-vswitchd under traffic (a benchmark only).

Runs only when nobody else uses Open vSwitch on this machine (it is the one
ovs-vswitchd every lab and test shares); otherwise the result says it was skipped
and why. Two modes, one restart each:

  warm  every bridge's tables saved and put back under flow-restore-wait, before
        the switch talks to a controller, as `ovs-ctl restart` does; ideally the
        controller's reconcile then finds nothing to send (measured: OVS flushes a
        bridge's flows when its controller is added on release, so it does not)
  cold  a plain stop and start: the lab's bridges come back empty (fail-mode
        secure drops everything) until the controller reconnects and programs them

Other people's bridges always get their tables back (sdnctl/lab/experiments/vswitchd.py).
With the userspace datapath nothing forwards while ovs-vswitchd is down, whatever
the mode: the datapath lives in the process.
Figures: the loss window and how long after the restart began traffic flowed again.
"""

from __future__ import annotations

import time

from sdnctl.lab.experiments import loss
from sdnctl.lab.experiments.cast import Cast, crossing_flow
from sdnctl.lab.experiments.result import ExperimentResult, ms
from sdnctl.lab.experiments.session import Session, say
from sdnctl.lab.experiments.stream import streams, warm_up
from sdnctl.lab.experiments.vswitchd import bridges, others_using_ovs, restart_vswitchd

NAME = "vswitchd-restart"
MODES = ("warm", "cold")
AFTER_S = 1.0  # watched after every switch is programmed again
RECOVER_TIMEOUT_S = 60.0


def run(session: Session, runs: int = 1, modes: tuple[str, ...] = MODES) -> ExperimentResult:
    del runs  # one restart per mode: it disturbs the whole machine
    result = ExperimentResult(NAME)
    others = others_using_ovs()
    if others:
        result.skipped = (f"{len(others)} other processes may be using Open vSwitch "
                          f"(first: {others[0]}); restarting ovs-vswitchd would break them")
        say(f"{NAME}: skipped: {result.skipped}")
        return result
    cast = Cast(session.policy, session.topology, session.plan)
    flow = crossing_flow(cast)
    result.setup = {"flow": str(flow), "modes": ", ".join(modes)}
    mine = set(session.plan.bridges.values())
    for mode in modes:
        others = others_using_ovs()
        if others:
            result.notes.append(f"{mode}: skipped, another process started using OVS:"
                                f" {others[0]}")
            continue
        foreign = [b for b in bridges() if b not in mine]
        warm = tuple(foreign + sorted(mine)) if mode == "warm" else ()
        with streams(session.hosts, session.addresses) as s:
            warm_up(s, flow)
            stream = s.start(flow)
            time.sleep(0.5)
            mods_before = session.flow_mods_sent()
            tables_before = session.dump_all()
            wall = time.time()
            r = restart_vswitchd(foreign, session.tmp, warm)
            programmed_s = session.wait_reconnected(wall, RECOVER_TIMEOUT_S)
            mods = session.flow_mods_sent() - mods_before
            time.sleep(AFTER_S)
            end = time.monotonic()
            log = stream.stop()
            tables_after = session.dump_all()
            noted = session.events_since(wall, ("bindings", "unknown-port", "error", "links"))
        found = loss.gaps(log, r.stop_at, end)
        back = found[0].resumed_t if found else None
        result.runs.append({
            "mode": mode,
            "loss_window_ms": ms(loss.longest_window_s(found, log)),
            "lost": loss.count_lost(log, r.stop_at, end),
            "traffic_back_ms": ms(back - r.stop_at) if back is not None else 0.0,
            "vswitchd_restart_ms": ms(r.started_at - r.stop_at),
            "tables_restored_ms": ms(r.released_at - r.stop_at),
            "programmed_after_restart_ms": ms(r.released_at - r.stop_at + programmed_s),
            "flow_mods_after_restart": mods,
            "same_cmdline": r.same_cmdline,
            "kept_bridges_intact": r.kept_intact,
            "restored_under_wait": r.restored_under_wait,
            "lab_tables_same_after": sorted(b for b in tables_before
                                            if tables_before[b] != tables_after.get(b)) == [],
            "foreign_bridges_restored": len(foreign),
        })
        result.notes += [f"{mode}: {p}" for p in r.problems]
        result.notes += [f"{mode}: daemon said {n}" for n in noted[:8]]
        if mode == "warm" and mods:
            result.notes.append(
                f"warm: the controller sent {mods} flow-mods although the tables were restored"
                f" (exactly: {r.restored_under_wait}) before flow-restore-wait was released:"
                " OVS flushes a bridge's flows when its controllers are added on release")
        say(f"{NAME} ({mode}): lost {result.runs[-1]['lost']}, traffic back after"
            f" {result.runs[-1]['traffic_back_ms']} ms")
    for run_ in result.runs:
        m = run_["mode"]
        result.add(f"{m}_loss_window_ms", run_["loss_window_ms"], "ms", "",
                   f"longest outage ({run_['lost']} probes lost)")
        result.add(f"{m}_traffic_back_ms", run_["traffic_back_ms"], "ms", "",
                   "from `ovs-ctl stop` to the first answered probe after the outage")
        result.add(f"{m}_vswitchd_restart_ms", run_["vswitchd_restart_ms"], "ms", "",
                   "`ovs-ctl --no-ovsdb-server stop` + `start`")
        result.add(f"{m}_flow_mods_after_restart", run_["flow_mods_after_restart"], "",
                   "0" if m == "warm" else "",
                   "flow-mods the controller sent to bring the tables back")
        result.add(f"{m}_restored_as_before", run_["same_cmdline"] and run_["kept_bridges_intact"],
                   "", "True", "same ovs-vswitchd command line; other bridges' tables as before"
                   f" ({run_['foreign_bridges_restored']} bridges)")
        result.add(f"{m}_lab_tables_same_after", run_["lab_tables_same_after"], "", "True",
                   "the lab's tables once the controller is back: identical to before")
    return result
