"""Experiment `policy-edit`: edit the policy file under live traffic; a refused edit.

Streams, all from the same source VM to the same destination VM (so every edit
touches the tables that carry the watched flow):
  watched      an allowed flow no edit touches, one long-lived UDP connection;
  toggle P1/P2 two UDP ports of which the policy allows one at a time, each probe a
               new connection (`--fresh`): a rule takes effect on new connections;
  established  one long-lived connection on P1: what happens to a connection that
               was open when its rule went away.
Each edit saves the policy with the allowed port switched (P1 <-> P2), as an editor
saves (write aside, rename over), and the daemon picks it up from its file watch.
Then a refused edit (a rule naming an unknown group): the switches' tables must be
identical before and after, and the watched flow must not notice; the next good
edit must apply normally. Figures are timed from the moment the file is saved.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import yaml

from sdnctl.lab.experiments import loss
from sdnctl.lab.experiments.cast import Cast, crossing_flow, toggle_ports
from sdnctl.lab.experiments.result import ExperimentResult, median, ms, worst
from sdnctl.lab.experiments.session import Session, say
from sdnctl.lab.experiments.stream import Flow, streams, warm_up
from sdnctl.lab.plan import LabError
from sdnctl.policy.model import Proto, Service

NAME = "policy-edit"
SETTLE_S = 0.8  # after an edit is enforced, before the next one
LATE_S = 0.5  # a newly denied flow still answered this long after the save is a leak
GROUP_SRC, GROUP_DST, GROUP_MISSING = "xedit-src", "xedit-dst", "xedit-no-such-group"


def with_rule(base: str, tenant: str, src: str, dst: str, port: int, broken: bool = False) -> str:
    """The base policy plus a rule allowing src -> dst on udp/port (through two groups
    of their own); `broken`: the rule names a group that does not exist."""
    doc = yaml.safe_load(base)
    t = doc["tenants"][tenant]
    t["groups"] = dict(t.get("groups") or {}, **{GROUP_SRC: {"vms": [src]},
                                                 GROUP_DST: {"vms": [dst]}})
    rule = {"from": GROUP_SRC, "to": GROUP_MISSING if broken else GROUP_DST,
            "allow": [f"udp/{port}"]}
    t["rules"] = [*(t.get("rules") or []), rule]
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)


@dataclass(frozen=True, slots=True)
class Edit:
    saved_at: float  # monotonic, right after the rename
    allowed: int  # the toggle port this edit allows
    denied: int  # the toggle port it stops allowing
    daemon_s: float | None  # the daemon's own figure: change seen -> every switch acked
    after_refused: bool = False


def _wait_refused(session: Session, since_wall: float, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        refused = session.status().get("policy", {}).get("last_refused")
        if refused and float(refused.get("time", 0)) >= since_wall:
            return dict(refused)
        time.sleep(0.02)
    raise LabError(f"the daemon did not report the refused edit within {timeout:.0f} s")


def _good_edit(session: Session, texts: dict[int, str], allowed: int, denied: int,
               after_refused: bool = False) -> Edit:
    saved = session.write_policy(texts[allowed])
    status = session.wait_enforced(texts[allowed])
    took = status.get("policy", {}).get("enforced_in_s")
    return Edit(saved, allowed, denied, took, after_refused)


def run(session: Session, runs: int = 3) -> ExperimentResult:
    result = ExperimentResult(NAME)
    cast = Cast(session.policy, session.topology, session.plan)
    watched = crossing_flow(cast)
    src, dst = watched.src, watched.dst
    p1, p2 = toggle_ports(cast, src, dst)
    tenant = session.policy.vms[src].tenant
    base = session.base_policy_text
    texts = {p: with_rule(base, tenant, src, dst, p) for p in (p1, p2)}
    broken = with_rule(base, tenant, src, dst, p1, broken=True)
    toggles = {p: Flow(src, dst, Service(Proto.UDP, p, p)) for p in (p1, p2)}
    result.setup = {"watched flow": str(watched), "toggled": f"{src}->{dst} udp/{p1} <-> udp/{p2}",
                    "edits": runs + 1}

    session.write_policy(texts[p1])  # start from "P1 allowed"
    session.wait_enforced(texts[p1])
    edits: list[Edit] = []
    try:
        with streams(session.hosts, session.addresses) as s:
            warm_up(s, watched)
            warm_up(s, toggles[p1])
            main = s.start(watched)
            fresh = {p: s.start(toggles[p], fresh=True) for p in (p1, p2)}
            established = s.start(toggles[p1])
            time.sleep(0.5)
            allowed, denied = p1, p2
            for _ in range(runs):
                allowed, denied = denied, allowed
                edits.append(_good_edit(session, texts, allowed, denied))
                time.sleep(SETTLE_S)

            tables_before = session.dump_all()
            wall = time.time()
            refused_at = session.write_policy(broken)
            refused = _wait_refused(session, wall)
            refused_seen = time.monotonic()
            time.sleep(SETTLE_S)
            tables_after = session.dump_all()
            enforced_sha = session.status().get("policy", {}).get("sha256")

            allowed, denied = denied, allowed
            edits.append(_good_edit(session, texts, allowed, denied, after_refused=True))
            time.sleep(SETTLE_S)
            logs = {"watched": main.stop(), "established": established.stop(),
                    **{p: st.stop() for p, st in fresh.items()}}
    finally:
        session.restore_policy()

    watched_log = logs["watched"]
    ends: list[float | None] = [e.saved_at for e in edits[1:]] + [None]
    ends[len(edits) - 2] = refused_at  # the last run's window ends at the refused save
    per_run = []
    est_ok = est_sent = 0
    for edit, end in zip(edits, ends, strict=True):
        allow_s = loss.first_ok_after(logs[edit.allowed], edit.saved_at, end)
        deny_s = loss.last_ok_after(logs[edit.denied], edit.saved_at, end)
        after_allow = edit.saved_at + (allow_s or 0.0)
        per_run.append({
            "allowed_port": edit.allowed,
            "new_flow_works_ms": ms(allow_s),
            "denied_flow_stops_ms": ms(deny_s),
            "daemon_enforced_ms": ms(edit.daemon_s),
            "watched_lost": loss.count_lost(watched_log, edit.saved_at, end),
            "new_flow_lost_after_working": loss.count_lost(logs[edit.allowed], after_allow, end),
            "denied_flow_answered_late": loss.ok_after(logs[edit.denied],
                                                       edit.saved_at + LATE_S, end),
            "after_refused_edit": edit.after_refused,
        })
        if edit.denied == p1:  # the established connection's rule is gone: does it go on?
            stopped = edit.saved_at + deny_s + 0.05
            est_ok += loss.ok_after(logs["established"], stopped, end)
            est_sent += loss.count_sent(logs["established"], stopped, end)
    result.runs = per_run
    result.timelines["watched"] = loss.timeline(
        watched_log, [(e.saved_at, "edit") for e in edits] + [(refused_at, "refused edit")])

    allow = [r["new_flow_works_ms"] for r in per_run]
    deny = [r["denied_flow_stops_ms"] for r in per_run]
    result.add("watched_lost", loss.count_lost(watched_log), "packets", "0",
               f"lost on {watched} across {len(edits)} edits and a refused one "
               f"({loss.count_sent(watched_log)} sent)")
    result.add("new_flow_works_ms", median(allow), "ms", "< 200",
               f"median from file save to the first answered probe (worst {worst(allow)} ms)")
    result.add("denied_flow_stops_ms", median(deny), "ms", "< 200",
               f"median from file save to the last answered probe (worst {worst(deny)} ms)")
    result.add("daemon_enforced_ms", median([r["daemon_enforced_ms"] for r in per_run]), "ms",
               "", "median, as the daemon reports it: change seen -> every switch acked")
    result.add("new_flow_lost_after_working", sum(r["new_flow_lost_after_working"]
                                                  for r in per_run), "packets", "0",
               "probes lost on a newly allowed flow once it worked")
    result.add("denied_flow_answered_late",
               sum(r["denied_flow_answered_late"] for r in per_run), "packets", "0",
               f"probes of a newly denied flow answered {LATE_S * 1000:.0f} ms or more"
               " after the save")
    result.add("refused_tables_unchanged", tables_before == tables_after, "", "True",
               "flows, groups and meters of every switch identical before/after the refused edit")
    result.add("refused_policy_kept", enforced_sha == _sha(texts[edits[-2].allowed]), "", "True",
               "the daemon still enforces the last good policy")
    result.add("refused_watched_lost",
               loss.count_lost(watched_log, refused_at, edits[-1].saved_at), "packets", "0")
    result.add("refused_reported_ms", ms(refused_seen - refused_at), "ms", "",
               "file save -> status API shows policy.last_refused (polled every 20 ms)")
    result.add("after_refused_new_flow_works_ms", per_run[-1]["new_flow_works_ms"], "ms",
               "< 200", "the next good edit applies normally")
    result.add("established_survives_deny", est_ok > 0, "", "",
               f"a connection open before its rule was removed: {est_ok}/{est_sent} probes "
               "answered once new connections were refused (conntrack keeps +est)")
    problems = refused.get("problems") or ["?"]
    result.notes.append(f"refused edit reported as: {problems[0]}")
    if tables_before != tables_after:
        changed = sorted(b for b in tables_before if tables_before[b] != tables_after.get(b))
        result.notes.append(f"tables changed by the refused edit on: {', '.join(changed)}")
    say(f"{NAME}: {len(edits)} edits, watched flow lost {result.figure('watched_lost')}")
    return result


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
