"""Experiment `link-cut`: cut a fabric link that carries a flow, then bring it back.

A cut sets both of the link's interfaces down (`ip link set DEV down`), which OVS
sees as the ports losing their carrier: a fast-failover group whose watched port
went dead switches to its backup bucket inside the switch, and the controller
hears a port status and recomputes paths without the link. Three cases, each
with its own flow, when the topology has them:

  uplink, dual-homed   a hypervisor with two uplinks: fast failover (backup path)
  fabric link          a link between two fabric switches (leaf-spine): backup path
  uplink, single-homed a hypervisor's only uplink: nothing to fail over to; traffic
                       is lost until the link returns

The link that carries the flow is found by watching the interfaces' packet
counters while the stream runs (a path is the controller's choice, not ours).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from sdnctl.lab.experiments import loss
from sdnctl.lab.experiments.cast import (
    Cast,
    CastError,
    crossing_flow,
    dual_homed_flow,
    fabric_links,
    single_homed_flow,
)
from sdnctl.lab.experiments.result import ExperimentResult, median, ms, worst
from sdnctl.lab.experiments.session import Session, say
from sdnctl.lab.experiments.stream import Flow, streams, warm_up
from sdnctl.lab.plan import LabError, LinkPlan
from sdnctl.topology.model import Link, Role

NAME = "link-cut"
DOWN_S = 1.0  # how long a link stays cut: long enough for the controller to recompute
AFTER_S = 1.0  # watched after the link returns (the controller moves paths back)
SAMPLE_S = 0.5  # counter sampling to find the carrying link


@dataclass(frozen=True, slots=True)
class Case:
    key: str  # figure prefix
    title: str
    flow: Flow
    candidates: tuple[Link, ...]  # the links one of which carries the flow


def cases(cast: Cast) -> tuple[list[Case], list[str]]:
    """The cases this topology offers, and a note for each it does not."""
    found: list[Case] = []
    missing: list[str] = []
    try:
        flow = dual_homed_flow(cast)
        found.append(Case("dual_homed", "uplink of a dual-homed hypervisor (backup)", flow,
                          tuple(cast.uplinks(cast.host_of(flow.src)))))
    except CastError as exc:
        missing.append(f"dual-homed uplink: {exc}")
    links = fabric_links(cast)
    if links:
        found.append(Case("fabric", "link between fabric switches", crossing_flow(cast),
                          tuple(links)))
    else:
        missing.append("fabric link: the topology has no link between two fabric switches")
    try:
        flow = single_homed_flow(cast)
        found.append(Case("single_homed", "only uplink of a single-homed hypervisor", flow,
                          tuple(cast.uplinks(cast.host_of(flow.src)))))
    except CastError as exc:
        missing.append(f"single-homed uplink: {exc}")
    return found, missing


def has_backup(cast: Cast, flow: Flow, cut: Link) -> bool:
    """Is there still a path between the flow's hypervisors without `cut`? Hypervisors
    are never transit nodes (docs/pipeline.md), so other hypervisors are left out."""
    a, b = cast.host_of(flow.src), cast.host_of(flow.dst)
    graph = cast.topology.graph().copy()
    graph.remove_edge(cut.a.switch, cut.b.switch)
    others = [n for n, s in cast.topology.switches.items()
              if s.role is Role.HYPERVISOR and n not in (a, b)]
    graph.remove_nodes_from(others)
    return nx.has_path(graph, a, b)


def _plan_of(session: Session, link: Link) -> LinkPlan:
    a, b = session.bridge(link.a.switch), session.bridge(link.b.switch)
    for lp in session.plan.links:
        if {(lp.a_bridge, lp.a_port), (lp.b_bridge, lp.b_port)} == {(a, link.a.port),
                                                                      (b, link.b.port)}:
            return lp
    raise LabError(f"link {link.a}-{link.b} is not in the lab")


def _packets(intf: str) -> int:
    stats = Path("/sys/class/net", intf, "statistics")
    return sum(int((stats / f).read_text()) for f in ("tx_packets", "rx_packets"))


def carrying_links(session: Session, candidates: tuple[Link, ...]) -> list[Link]:
    """The candidates that carry the running stream: each moved at least a third as
    many packets over SAMPLE_S as the busiest one (requests and replies may take
    different links); the busiest first."""
    plans = {link: _plan_of(session, link) for link in candidates}
    before = {link: _packets(p.a_intf) + _packets(p.b_intf) for link, p in plans.items()}
    time.sleep(SAMPLE_S)
    moved = {link: _packets(p.a_intf) + _packets(p.b_intf) - before[link]
             for link, p in plans.items()}
    busiest = max(moved.values(), default=0)
    if busiest < 10:
        raise LabError(f"no candidate link carries the stream (packets moved: {moved})")
    return sorted((ln for ln in candidates if moved[ln] * 3 >= busiest),
                  key=lambda ln: -moved[ln])


def set_link(session: Session, link: Link, up: bool) -> float:
    """Both interfaces of `link` up or down in one `ip -batch`; monotonic time before it."""
    lp = _plan_of(session, link)
    state = "up" if up else "down"
    script = f"link set dev {lp.a_intf} {state}\nlink set dev {lp.b_intf} {state}\n"
    started = time.monotonic()
    done = subprocess.run(["ip", "-batch", "-"], input=script, text=True, capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise LabError(f"ip link set {state}: {done.stderr.strip()}")
    return started


def _controller_repair_s(session: Session, since_wall: float) -> float | None:
    """The daemon's own figure for its reaction to the cut: the longest `last_update_s`
    (change seen -> barrier acked) among switches updated since `since_wall`."""
    switches = session.status().get("switches", {})
    times = [float(sw["last_update_s"]) for sw in switches.values()
             if sw.get("last_update") and float(sw["last_update"]) >= since_wall
             and sw.get("last_update_s") is not None]
    return max(times, default=None)


def _name(link: Link) -> str:
    return f"{link.a}-{link.b}"


def run(session: Session, runs: int = 3, only: tuple[str, ...] = ()) -> ExperimentResult:
    """`only`: case keys to run (dual_homed, fabric, single_homed); default all there are.

    The fabric case cuts, one after the other, each fabric link the flow crosses in
    either direction, nearest to the flow's source first (keys fabric_NEAR_FAR by the
    link's switches): whether a switch can repair a cut alone depends on where it is."""
    result = ExperimentResult(NAME)
    cast = Cast(session.policy, session.topology, session.plan)
    found, missing = cases(cast)
    result.notes += [f"not measured: {m}" for m in missing]
    for case in found:
        if only and case.key not in only:
            continue
        with streams(session.hosts, session.addresses) as s:
            warm_up(s, case.flow)
            probe = s.start(case.flow)
            links = carrying_links(session, case.candidates)
            probe.stop()
        if case.key != "fabric":
            _run_case(session, cast, case, links[0], case.key, runs, result)
            continue
        hops = nx.single_source_shortest_path_length(cast.topology.graph(),
                                                     cast.host_of(case.flow.src))
        for link in sorted(links, key=lambda ln: sorted(hops.get(e.switch, 99)
                                                        for e in (ln.a, ln.b))):
            near, far = sorted((link.a.switch, link.b.switch), key=lambda n: hops.get(n, 99))
            _run_case(session, cast, case, link, f"fabric_{near}_{far}", runs, result)
    return result


def _run_case(session: Session, cast: Cast, case: Case, link: Link, key: str, runs: int,
              result: ExperimentResult) -> None:
    marks: list[tuple[float, float, float, float | None]] = []
    backup = has_backup(cast, case.flow, link)
    with streams(session.hosts, session.addresses) as s:
        warm_up(s, case.flow)
        stream = s.start(case.flow)
        time.sleep(0.2)
        session.on_teardown(f"link {_name(link)} up", lambda: set_link(session, link, True))
        try:
            for _ in range(runs):
                wall = time.time()
                cut = set_link(session, link, up=False)
                time.sleep(DOWN_S)
                repair = _controller_repair_s(session, wall)
                back = set_link(session, link, up=True)
                time.sleep(AFTER_S)
                marks.append((cut, back, time.monotonic(), repair))
        finally:
            set_link(session, link, up=True)
        log = stream.stop()
    per_run = []
    for cut, back, end, repair in marks:
        down_gaps = loss.gaps(log, cut, back)
        resumed = loss.first_ok_after(log, back, end) if not backup else None
        per_run.append({
            "case": key,
            "loss_window_ms": ms(loss.longest_window_s(down_gaps, log)),
            "lost_while_cut": loss.count_lost(log, cut, back),
            "lost_on_return": loss.count_lost(log, back, end),
            "resumed_after_link_up_ms": ms(resumed),
            "sent": loss.count_sent(log, cut, end),
            "controller_repair_ms": ms(repair),
        })
    result.runs += per_run
    result.timelines[key] = loss.timeline(
        log, [(m[0], "cut") for m in marks] + [(m[1], "up") for m in marks])
    result.setup[key] = (f"{case.title}: {case.flow}, cut {_name(link)}"
                         f" ({'backup path exists' if backup else 'no backup path'})"
                         f" for {DOWN_S * 1000:.0f} ms, {runs} times")
    windows = [r["loss_window_ms"] for r in per_run]
    goal = "< 50" if backup else ""
    result.add(f"{key}_loss_window_ms", median(windows), "ms", goal,
               f"median longest outage while cut (worst {worst(windows)} ms)")
    result.add(f"{key}_lost_while_cut", median([r["lost_while_cut"] for r in per_run]),
               "packets", "", f"median of {runs} cuts, {DOWN_S * 1000:.0f} ms each, a probe"
               f" every {log.interval * 1000:.0f} ms")
    result.add(f"{key}_lost_on_return", sum(r["lost_on_return"] for r in per_run), "packets",
               "0", f"over {runs} returns, {AFTER_S * 1000:.0f} ms watched after each")
    repairs = [r["controller_repair_ms"] for r in per_run]
    result.add(f"{key}_controller_repair_ms", median(repairs), "ms", "",
               "median, as the daemon reports it: port status seen -> last switch acked the"
               " new paths")
    if not backup:
        resumed = [r["resumed_after_link_up_ms"] for r in per_run]
        result.add(f"{key}_resumed_after_up_ms", median(resumed), "ms", "",
                   f"median from link up to the first answered probe (worst {worst(resumed)})")
    say(f"{NAME}: {case.title}: windows {windows} ms")
