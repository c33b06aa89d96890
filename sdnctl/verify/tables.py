"""What a switch holds against what it should hold, entry by entry.

Flows are matched by identity (stage, priority, match), as OpenFlow does: one only
in intent is *missing*, one only on the switch is *extra* (for instance added by
hand with ovs-ofctl), one in both with other actions or another cookie is
*changed*. Groups and meters are matched by id. Entries the daemon could not even
parse into the IR (`unparsed`: an unknown table, field or action) are extra by
definition. Both sides must be normalized (`sdnctl.southbound.ofp.normalize_*`),
which the daemon's intent and its live dumps are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sdnctl.flows import Flow, FlowSet, render_flow_named, render_group_ofctl, render_meter_ofctl


@dataclass(frozen=True, slots=True)
class Difference:
    switch: str
    kind: str  # "missing" | "extra" | "changed" | "unparsed" | "unread"
    what: str  # "flow" | "group" | "meter" | "switch"
    text: str  # the entry, as ovs-ofctl-like text with stage names
    detail: str = ""
    intent: Flow | None = None
    live: Flow | None = None
    packets: int | None = None  # the live entry's packet count, when known

    def to_json(self) -> dict[str, object]:
        return {"switch": self.switch, "kind": self.kind, "what": self.what, "entry": self.text,
                "detail": self.detail, "n_packets": self.packets}

    def to_text(self) -> str:
        seen = f", {self.packets} packets" if self.packets else ""
        detail = f" ({self.detail}{seen})" if self.detail or seen else ""
        return f"{self.switch:<8} {self.kind.upper():<8} {self.what} {self.text}{detail}"


def _cookie(flow: Flow) -> str:
    return f"cookie {flow.cookie:#x}" + (f" = {flow.owner}" if not flow.owner.startswith(
        "cookie:") else "")


def compare_switch(intent: FlowSet, live: FlowSet, unparsed: Iterable[Mapping[str, Any]] = (),
                   packets: Mapping[tuple[str, int, object], int] | None = None
                   ) -> list[Difference]:
    """Every difference between `intent` and `live` for one switch (sorted by table)."""
    name = intent.switch
    packets = packets or {}
    want = {f.key: f for f in intent.flows}
    have = {f.key: f for f in live.flows}
    out: list[Difference] = []
    for key, f in want.items():
        got = have.get(key)
        if got is None:
            out.append(Difference(name, "missing", "flow", render_flow_named(f), _cookie(f),
                                  intent=f))
        elif got.actions != f.actions:
            out.append(Difference(
                name, "changed", "flow", render_flow_named(got),
                "intent: actions=" + render_flow_named(f).split(" actions=", 1)[1],
                intent=f, live=got, packets=packets.get(key)))
        elif got.cookie != f.cookie:
            out.append(Difference(name, "changed", "flow", render_flow_named(got),
                                  f"{_cookie(got)}, intent {_cookie(f)}", intent=f, live=got,
                                  packets=packets.get(key)))
    for key, f in have.items():
        if key not in want:
            out.append(Difference(name, "extra", "flow", render_flow_named(f), _cookie(f),
                                  live=f, packets=packets.get(key)))
    for entry in unparsed:
        match = ",".join(f"{k}={v}" for k, v in dict(entry.get("match") or {}).items())
        out.append(Difference(
            name, "unparsed", "flow",
            f"table={entry.get('table')} priority={entry.get('priority')} {match or '*'}",
            f"cookie {int(entry.get('cookie', 0)):#x}, {entry.get('reason')}",
            packets=int(entry.get("n_packets", 0))))
    out += _compare_ids(name, "group", {g.group_id: g for g in intent.groups},
                        {g.group_id: g for g in live.groups},
                        lambda g: (g.type, g.buckets), render_group_ofctl)
    out += _compare_ids(name, "meter", {m.meter_id: m for m in intent.meters},
                        {m.meter_id: m for m in live.meters},
                        lambda m: (m.rate_kbps, m.burst_kb, m.pktps), render_meter_ofctl)
    order = {"missing": 0, "extra": 1, "changed": 2, "unparsed": 3}
    return sorted(out, key=lambda d: (d.what != "flow", order.get(d.kind, 9),
                                      f.table if (f := d.intent or d.live) else 99))


def _compare_ids(switch: str, what: str, want: Mapping[int, Any], have: Mapping[int, Any],
                 body: Any, render: Any) -> list[Difference]:
    out = []
    for i, entry in want.items():
        if i not in have:
            out.append(Difference(switch, "missing", what, render(entry)))
        elif body(have[i]) != body(entry):
            out.append(Difference(switch, "changed", what, render(have[i]),
                                  "intent: " + render(entry)))
    out += [Difference(switch, "extra", what, render(e)) for i, e in have.items()
            if i not in want]
    return out


def deviating_flows(diffs: Iterable[Difference]) -> list[tuple[str, Flow]]:
    """(switch, flow) for every flow that makes the live network differ from intent: the
    live version of extra and changed flows, the intended version of missing ones."""
    out = []
    for d in diffs:
        for flow in (d.live, d.intent):
            if flow is not None:
                out.append((d.switch, flow))
    return out
