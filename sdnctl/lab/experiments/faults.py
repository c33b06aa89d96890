"""Experiment `faults`: one lab, continuous probes, faults injected one after another.

While the prober (`prober.py`) runs allowed probes (TCP, UDP, ICMP; both directions;
on one hypervisor and across the fabric) and denied probes (captured in every VM and
judged like the hostile-VM suite), these faults are injected in turn, each in a
window of its own that ends once the system has recovered and settled:

  daemon-sigkill   SIGKILL the controller daemon, start it again 0.5 s later
  daemon-sigstop   freeze the daemon (SIGSTOP) for 3 s, then SIGCONT
  daemon-sigstop-long  the same for 12 s: past OVS's inactivity probe (5 s, then 5 s
                   for the echo's answer), so the switches drop the frozen controller
                   and dial it again
  ovsdb-restart    restart the ovsdb-server the daemon reads bindings from (the
                   session's relay: the machine's own serves every lab, ovsdb_relay.py)
  link-cut         cut the uplink carrying a dual-homed hypervisor's traffic for 1 s
                   (a backup path exists), then repair it
  bad-edit-syntax  save a policy file that is not YAML, then the good one back
  bad-edit-semantic save a valid YAML policy with an out-of-range VLAN, then the good one
  leader-kill      two replicas behind etcd (leader_kill.replica_pair): SIGKILL the leader

Each fault has a promised bound (`BOUNDS`, the fault matrix of docs/reliability.md):
no leaked frame ever; no allowed probe lost, except on the probes a link cut cuts,
whose longest outage is bounded; the switches' tables as before where the fault
should not change them. `judge_window` (pure) says which bound a window broke.
The ovs-vswitchd restart is not injected here: one ovs-vswitchd serves the whole
machine, so it is the `vswitchd-restart` experiment's, which runs only when nobody
else uses Open vSwitch.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sdnctl.client.api import ApiError
from sdnctl.lab.experiments import loss
from sdnctl.lab.experiments.cast import Cast, CastError, dual_homed_flow
from sdnctl.lab.experiments.leader_kill import replica_pair
from sdnctl.lab.experiments.link_cut import carrying_links, set_link
from sdnctl.lab.experiments.loss import StreamLog
from sdnctl.lab.experiments.prober import ACROSS, Leak, Probe, ProbeRecord, choose_probes, probing
from sdnctl.lab.experiments.result import ExperimentResult, Value, ms
from sdnctl.lab.experiments.session import Session, say
from sdnctl.lab.plan import LabError
from sdnctl.tools import missing

NAME = "faults"
SETTLE_S = 0.5  # watched after the system says it recovered, inside the fault's window
DAEMON_DOWN_S = 0.5
FREEZE_S = 3.0
LONG_FREEZE_S = 12.0  # OVS: inactivity probe after 5 s idle, disconnect 5 s later
OVSDB_DOWN_S = 1.0
CUT_S = 1.0
SEEN_TIMEOUT_S = 10.0
LINK_CUT_WINDOW_MS = 300.0  # the promise with a backup path (typically 10-20 ms here)


@dataclass(frozen=True, slots=True)
class Bound:
    """What a fault may cost: the fault matrix's promise."""

    lost: int  # allowed probes lost at most (on probes the fault does not cut)
    window_ms: float | None = None  # longest outage at most on the probes it cuts
    tables_same: bool = True  # every switch's tables identical before and after
    promise: str = ""


BOUNDS: dict[str, Bound] = {
    "daemon-sigkill": Bound(0, promise="no allowed probe lost (fail_mode=secure keeps the"
                            " flows); the new daemon changes nothing in the tables"),
    "daemon-sigstop": Bound(0, promise="no allowed probe lost; the tables unchanged"),
    "daemon-sigstop-long": Bound(0, promise="no allowed probe lost while the switches drop"
                                 " the frozen controller and reconnect; the tables unchanged"),
    "ovsdb-restart": Bound(0, promise="no allowed probe lost; the bindings and tables"
                           " unchanged; the outage and the return are reported"),
    "link-cut": Bound(0, LINK_CUT_WINDOW_MS, tables_same=False,
                      promise=f"probes through the cut link: longest outage <="
                      f" {LINK_CUT_WINDOW_MS:.0f} ms (fast failover); other probes: none lost"),
    "bad-edit-syntax": Bound(0, promise="refused with file:line, the last good policy"
                             " enforced, no probe lost, the tables unchanged"),
    "bad-edit-semantic": Bound(0, promise="refused with file:line, the last good policy"
                               " enforced, no probe lost, the tables unchanged"),
    "leader-kill": Bound(0, promise="no allowed probe lost; the new leader sends no flow-mod"),
}
FAULTS = tuple(BOUNDS)


@dataclass
class Window:
    """One fault: when (monotonic and wall clock), whose probes it cuts, what it showed."""

    fault: str
    start: float = 0.0
    end: float = 0.0
    start_wall: float = 0.0
    end_wall: float = 0.0
    cut: frozenset[str] = frozenset()  # VMs behind the fault's cut (their probes may lose)
    tables_changed: list[str] = field(default_factory=list)
    figures: dict[str, Value] = field(default_factory=dict)  # the fault's own
    problems: list[str] = field(default_factory=list)  # promises other than loss, broken


@dataclass(frozen=True, slots=True)
class WindowVerdict:
    fault: str
    lost: int  # allowed probes lost, on probes the fault does not cut
    lost_on_cut: int  # allowed probes lost on the probes it cuts
    worst_window_ms: float  # longest outage of any allowed probe
    leaks: tuple[Leak, ...]
    broken: tuple[str, ...]  # every bound the window broke, in words
    losses: tuple[str, ...] = ()  # each allowed probe that lost: how many, when, how long


def _cut(probe: Probe, window: Window) -> bool:
    """Whether the fault cuts the probe's path: one end behind the cut, one not."""
    return len({probe.flow.src, probe.flow.dst} & window.cut) == 1


def judge_window(window: Window, logs: Mapping[Probe, StreamLog], leaks: Sequence[Leak],
                 bound: Bound) -> WindowVerdict:
    """The window's figures against its bound. Pure."""
    lost = lost_cut = 0
    worst = 0.0
    broken: list[str] = []
    losses: list[str] = []
    for probe, log in logs.items():
        if not probe.allowed:
            continue
        n = loss.count_lost(log, window.start, window.end)
        found = loss.gaps(log, window.start, window.end)
        gap = loss.longest_window_s(found, log) * 1000
        worst = max(worst, gap)
        if n:
            losses.append(describe_loss(probe, found, gap, window.start))
        if _cut(probe, window) and bound.window_ms is not None:
            lost_cut += n
            if gap > bound.window_ms:
                broken.append(f"{probe.name}: outage {gap:.0f} ms > {bound.window_ms:.0f} ms")
        else:
            lost += n
    if lost > bound.lost:
        broken.append(f"{lost} allowed probes lost (at most {bound.lost})")
    mine = tuple(leak for leak in leaks if window.start_wall <= leak.time < window.end_wall)
    if mine:
        broken.append(f"{len(mine)} frames leaked, first: {mine[0].vm}: {mine[0].what}")
    if bound.tables_same and window.tables_changed:
        broken.append(f"tables changed on {', '.join(window.tables_changed)}")
    broken += window.problems
    return WindowVerdict(window.fault, lost, lost_cut, round(worst, 1), mine, tuple(broken),
                         tuple(losses))


def describe_loss(probe: Probe, found: Sequence[loss.Gap], longest_ms: float, t0: float) -> str:
    """One probe's losses in words: how many, in how many runs, the first one when."""
    n = sum(g.lost for g in found)
    first = found[0].first_lost_t - t0 if found else 0.0
    return (f"{probe.name}: {n} lost in {len(found)} runs, longest {longest_ms:.0f} ms,"
            f" first at +{first:.2f} s")


def lost_between(logs: Mapping[Probe, StreamLog], windows: Sequence[Window]) -> int:
    """Allowed probes lost outside every fault's window (nothing should be). Pure."""
    return sum(len(times) for times in losses_between(logs, windows).values())


def losses_between(logs: Mapping[Probe, StreamLog], windows: Sequence[Window]
                   ) -> dict[Probe, list[float]]:
    """Send times of the allowed probes lost outside every fault's window, per probe."""
    spans = sorted((w.start, w.end) for w in windows)
    out: dict[Probe, list[float]] = {}
    for probe, log in logs.items():
        if probe.allowed:
            times = [t for _s, t, ok in log.between()
                     if not ok and not any(a <= t < b for a, b in spans)]
            if times:
                out[probe] = times
    return out


# ---------------------------------------------------------------- the faults


@contextlib.contextmanager
def _window(session: Session, fault: str, windows: list[Window]) -> Iterator[Window]:
    """A fault's window: tables dumped before it starts and after it settled."""
    before = session.dump_all()
    w = Window(fault, start=time.monotonic(), start_wall=time.time())
    say(f"{NAME}: {fault}")
    yield w
    time.sleep(SETTLE_S)
    w.end, w.end_wall = time.monotonic(), time.time()
    after = session.dump_all()
    w.tables_changed = sorted(b for b in before if before[b] != after.get(b))
    windows.append(w)


def _until(what: str, check: Callable[[], bool], timeout: float = SEEN_TIMEOUT_S) -> float:
    """Seconds until `check()` holds; LabError at `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise LabError(f"{NAME}: {what} not within {timeout:.0f} s")
        time.sleep(0.02)
    return time.monotonic() - start


def _status_or_none(session: Session) -> dict[str, Any] | None:
    try:
        return session.status()
    except ApiError:
        return None


def daemon_sigkill(session: Session, w: Window) -> None:
    session.kill_daemon(signal.SIGKILL)
    time.sleep(DAEMON_DOWN_S)
    session.start_daemon()
    w.figures["recovered_ms"] = ms(DAEMON_DOWN_S + session.wait_programmed())
    w.figures["flow_mods"] = session.flow_mods_sent()
    if w.figures["flow_mods"]:
        w.problems.append(f"the new daemon sent {w.figures['flow_mods']} flow-mods")


def daemon_sigstop(session: Session, w: Window, seconds: float, redial: bool) -> None:
    """Freeze the daemon for `seconds`; `redial`: the freeze outlasts OVS's inactivity
    probe, so wait until every switch has dialled it again and been reconciled."""
    assert session.daemon is not None
    mods_before = session.flow_mods_sent()
    os.kill(session.daemon.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(session.daemon.pid, signal.SIGCONT)
    thawed, thawed_wall = time.monotonic(), time.time()
    if redial:
        w.figures["reconnected_ms"] = ms(session.wait_reconnected(thawed_wall))
    else:
        session.wait_programmed()
    w.figures["programmed_after_ms"] = ms(time.monotonic() - thawed)
    w.figures["switch_reconnects"] = len(session.events_since(w.start_wall, ("connect",)))
    w.figures["flow_mods"] = session.flow_mods_sent() - mods_before
    if w.figures["flow_mods"]:
        w.problems.append(f"the thawed daemon sent {w.figures['flow_mods']} flow-mods")


def ovsdb_restart(session: Session, w: Window) -> None:
    relay = session.relay
    if relay is None:
        raise LabError(f"{NAME}: ovsdb-restart needs the session's own OVSDB (ovsdb_relay)")

    def ovsdb() -> dict[str, Any]:
        st = _status_or_none(session) or {}
        return dict(st.get("ovsdb") or {})

    bindings = session.status().get("bindings")
    reconnects = int(ovsdb().get("reconnects") or 0)
    stopped = time.monotonic()
    relay.stop()
    w.figures["loss_seen_ms"] = ms(_until("the daemon seeing OVSDB gone",
                                          lambda: ovsdb().get("connected") is False))
    time.sleep(max(0.0, OVSDB_DOWN_S - (time.monotonic() - stopped)))
    relay.start()
    started = time.monotonic()
    _until("the daemon back on OVSDB", lambda: int(ovsdb().get("reconnects") or 0) > reconnects
           and ovsdb().get("connected") is True)
    w.figures["back_seen_ms"] = ms(time.monotonic() - started)
    session.wait_programmed()
    if session.status().get("bindings") != bindings:
        w.problems.append("the bindings changed across the OVSDB restart")


def link_cut(session: Session, w: Window, cast: Cast, link_flow: Probe) -> None:
    candidates = tuple(cast.uplinks(cast.host_of(link_flow.flow.src)))
    link = carrying_links(session, candidates)[0]
    hypervisor = link.a.switch if link.a.switch in cast.hypervisors() else link.b.switch
    w.cut = frozenset(h.vm for h in session.plan.hosts if h.switch == hypervisor)
    w.figures["link"] = f"{link.a}-{link.b}"
    session.on_teardown(f"link {link.a}-{link.b} up", lambda: set_link(session, link, True))
    try:
        set_link(session, link, up=False)
        time.sleep(CUT_S)
    finally:
        set_link(session, link, up=True)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def bad_edit(session: Session, w: Window, text: str) -> None:
    """Save `text` (which the daemon must refuse), then the good policy back."""
    good = session.policy_path.read_text()
    policy = session.status().get("policy", {})
    wall = time.time()
    saved = session.write_policy(text)

    def refused() -> dict[str, Any] | None:
        st = _status_or_none(session) or {}
        last = dict(st.get("policy") or {}).get("last_refused")
        return dict(last) if last and float(last.get("time", 0)) >= wall else None

    _until("the refused edit reported", lambda: refused() is not None)
    w.figures["refused_reported_ms"] = ms(time.monotonic() - saved)
    problems = list((refused() or {}).get("problems") or [])
    w.figures["problem"] = str(problems[0]) if problems else ""
    name = re.escape(session.policy_path.name)
    if not problems or not re.search(rf"{name}:\d+: ", str(problems[0])):
        w.problems.append(f"refusal not reported as file:line: message: {problems}")
    enforced = session.status().get("policy", {}).get("sha256")
    if enforced != policy.get("sha256") or enforced != _sha(good):
        w.problems.append("the daemon no longer enforces the last good policy")
    reloads = dict(session.status().get("counters", {}).get("policy_reloads", {}))
    session.write_policy(good)
    _until("the good policy back", lambda: dict(
        session.status().get("counters", {}).get("policy_reloads", {})) != reloads)


def leader_kill(session: Session, w: Window) -> None:
    with replica_pair(session) as pair:
        t = pair.kill_leader()
    w.figures["takeover_ms"] = ms(t.all_master_s)
    w.figures["lease_won_ms"] = ms(t.lease_won_s)
    w.figures["flow_mods_by_new_leader"] = t.flow_mods
    if t.flow_mods:
        w.problems.append(f"the new leader sent {t.flow_mods} flow-mods")


def syntax_error(text: str) -> str:
    """The policy with a line an editor left half-typed: not YAML any more."""
    return text + "\n  oops: [unclosed\n"


def semantic_error(text: str, session: Session) -> str:
    """Valid YAML the loader refuses: the first segment's VLAN out of 1..4094."""
    vlan = next(iter(next(iter(session.policy.tenants.values())).segments.values())).vlan
    edited = re.sub(rf"\bvlan: {vlan}\b", "vlan: 5000", text, count=1)
    if edited == text:
        raise CastError(f"{NAME}: no `vlan: {vlan}` in the policy file to break")
    return edited


def link_probe(cast: Cast) -> Probe:
    """A long-lived stream out of a dual-homed hypervisor (requests one way, answers
    the other): what the link cut cuts."""
    return Probe(dual_homed_flow(cast), True, ACROSS)


def inject_all(session: Session, cast: Cast, link: Probe, windows: list[Window],
               result: ExperimentResult) -> None:
    base = session.policy_path.read_text()
    steps: list[tuple[str, Callable[[Window], None]]] = [
        ("daemon-sigkill", lambda w: daemon_sigkill(session, w)),
        ("daemon-sigstop", lambda w: daemon_sigstop(session, w, FREEZE_S, redial=False)),
        ("daemon-sigstop-long",
         lambda w: daemon_sigstop(session, w, LONG_FREEZE_S, redial=True)),
        ("ovsdb-restart", lambda w: ovsdb_restart(session, w)),
        ("link-cut", lambda w: link_cut(session, w, cast, link)),
        ("bad-edit-syntax", lambda w: bad_edit(session, w, syntax_error(base))),
        ("bad-edit-semantic", lambda w: bad_edit(session, w, semantic_error(base, session))),
    ]
    if session.replica_ports and not missing(["etcd"]):
        steps.append(("leader-kill", lambda w: leader_kill(session, w)))
    else:
        result.notes.append("leader-kill not injected: it needs etcd and switches that dial"
                            " a second controller (`sdnctl lab experiment faults` builds"
                            " the lab so)")
    for fault, inject in steps:
        with _window(session, fault, windows) as w:
            inject(w)


def run(session: Session, runs: int = 1) -> ExperimentResult:
    del runs  # one pass: each fault once, in one lab
    result = ExperimentResult(NAME)
    cast = Cast(session.policy, session.topology, session.plan)
    link = link_probe(cast)
    probes = [*choose_probes(cast), link]
    result.setup = {"probes": "; ".join(f"{'allowed' if p.allowed else 'denied'} {p.name}"
                                        f" ({p.where}, every {p.interval * 1000:.0f} ms)"
                                        for p in probes)}
    windows: list[Window] = []
    started = time.monotonic()
    with probing(session, probes) as prober:
        inject_all(session, cast, link, windows, result)
        record = prober.stop()
    result.setup["took_s"] = round(time.monotonic() - started, 1)
    add_figures(result, windows, record)
    if any(r["broken"] for r in result.runs) or record.leaks:
        result.notes.append(session.keep_for_inspection("a fault broke its bound"))
    return result


def add_figures(result: ExperimentResult, windows: Sequence[Window], record: ProbeRecord
                ) -> None:
    """Each window's verdict as figures and a run; the whole run's leaks and losses."""
    first = min((w.start for w in windows), default=0.0)
    for w in windows:
        bound = BOUNDS[w.fault]
        v = judge_window(w, record.logs, record.leaks, bound)
        result.runs.append({"fault": w.fault, "lost": v.lost, "lost_on_cut": v.lost_on_cut,
                            "worst_window_ms": v.worst_window_ms, "leaks": len(v.leaks),
                            "tables_changed": w.tables_changed, "broken": list(v.broken),
                            "losses": list(v.losses), "from_s": round(w.start - first, 2),
                            "to_s": round(w.end - first, 2),
                            "took_ms": ms(w.end - w.start), **w.figures})
        result.add(f"{w.fault}_lost", v.lost, "packets", str(bound.lost), bound.promise)
        if bound.window_ms is not None:
            result.add(f"{w.fault}_window_ms", v.worst_window_ms, "ms",
                       f"<= {bound.window_ms:.0f}", f"longest outage of a cut probe"
                       f" ({v.lost_on_cut} probes lost)")
        for name, value in w.figures.items():
            result.add(f"{w.fault}_{name}", value)
        result.notes += [f"{w.fault}: {b}" for b in v.broken]
        if v.broken:
            result.notes += [f"{w.fault}: {line}" for line in v.losses]
    sent = sum(loss.count_sent(log) for p, log in record.logs.items() if p.allowed)
    for probe, times in losses_between(record.logs, windows).items():
        result.notes.append(f"between faults: {probe.name}: {len(times)} lost, at"
                            f" +{', +'.join(f'{t - first:.2f}' for t in times[:8])} s")
    result.add("lost_between_faults", lost_between(record.logs, windows), "packets", "0",
               f"allowed probes lost outside every fault's window ({sent} allowed sent)")
    result.add("leaked", len(record.leaks), "frames", "0",
               f"frames the policy does not explain, captured in {len(record.frames)} VMs"
               f" ({sum(record.frames.values())} frames)")
    result.add("deaf_captures", len(record.deaf), "", "0", "; ".join(record.deaf))
    result.notes += [f"leak: {leak.vm}: {leak.what}" for leak in record.leaks[:10]]
