"""Experiment `controller-restart`: SIGKILL the daemon, start it again, under traffic.

The switches run fail-mode secure: when the controller dies they keep their
flows and keep forwarding; the new daemon reads each switch's tables on connect
and sends only the difference, which is nothing. Expected: no probe lost, on a
long-lived connection nor on new connections opened while no controller runs
(conntrack commits happen in the switch), and zero flow-mods from the new daemon.
"""

from __future__ import annotations

import signal
import time

from sdnctl.lab.experiments import loss
from sdnctl.lab.experiments.cast import Cast, crossing_flow
from sdnctl.lab.experiments.result import ExperimentResult, median, ms, worst
from sdnctl.lab.experiments.session import Session, say
from sdnctl.lab.experiments.stream import streams, warm_up

NAME = "controller-restart"
DOWN_S = 0.5  # how long no controller runs
AFTER_S = 0.5  # traffic watched after the new daemon has programmed every switch


def run(session: Session, runs: int = 3) -> ExperimentResult:
    result = ExperimentResult(NAME)
    cast = Cast(session.policy, session.topology, session.plan)
    flow = crossing_flow(cast)
    result.setup = {"flow": str(flow), "restarts": runs,
                    "controller down": f"{DOWN_S * 1000:.0f} ms per restart"}
    per_run = []
    with streams(session.hosts, session.addresses) as s:
        warm_up(s, flow)
        long_lived = s.start(flow)
        fresh = s.start(flow, fresh=True)
        time.sleep(0.3)
        marks = []
        for _ in range(runs):
            before = session.dump_all()
            killed = time.monotonic()
            session.kill_daemon(signal.SIGKILL)
            time.sleep(DOWN_S)
            session.start_daemon()
            programmed_s = session.wait_programmed()
            mods = session.flow_mods_sent()
            time.sleep(AFTER_S)
            after = session.dump_all()
            changed = sorted(b for b in before if before[b] != after.get(b))
            marks.append((killed, programmed_s, mods, time.monotonic(), changed))
        logs = {"long-lived": long_lived.stop(), "fresh": fresh.stop()}
    for killed, programmed_s, mods, end, changed in marks:
        per_run.append({
            "lost_long_lived": loss.count_lost(logs["long-lived"], killed, end),
            "lost_new_connections": loss.count_lost(logs["fresh"], killed, end),
            "sent": loss.count_sent(logs["long-lived"], killed, end),
            "restart_to_programmed_ms": ms(programmed_s),
            "flow_mods_after_restart": mods,
            "tables_changed_on": changed,
        })
    result.runs = per_run
    result.timelines["long-lived"] = loss.timeline(
        logs["long-lived"], [(m[0], "SIGKILL") for m in marks])
    total = loss.count_lost(logs["long-lived"])
    result.add("lost", total, "packets", "0",
               f"on {flow}, one connection, across {runs} SIGKILL + restarts"
               f" ({loss.count_sent(logs['long-lived'])} sent)")
    result.add("lost_new_connections", loss.count_lost(logs["fresh"]), "packets", "0",
               "a new connection per probe (conntrack commits without a controller)")
    result.add("flow_mods_after_restart", max(r["flow_mods_after_restart"] for r in per_run),
               "", "0", "flow-mods the new daemon sent (worst restart)")
    changed = sorted({b for r in per_run for b in r["tables_changed_on"]})
    result.add("tables_unchanged", not changed, "", "True",
               "every switch's flows, groups and meters identical before the kill and after"
               " the new daemon reconciled")
    if changed:
        result.notes.append(f"tables changed by a restart on: {', '.join(changed)}")
    if changed or total:
        result.notes.append(session.keep_for_inspection("loss or changed tables"))
    times = [r["restart_to_programmed_ms"] for r in per_run]
    result.add("restart_to_programmed_ms", median(times), "ms", "",
               f"median, new daemon started -> every switch reconciled, mostly OVS's"
               f" reconnect backoff (worst {worst(times)})")
    say(f"{NAME}: {runs} restarts, lost {total}")
    return result
