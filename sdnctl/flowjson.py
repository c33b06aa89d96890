"""The IR's JSON form read back: the inverse of `sdnctl.flows.flowset_to_json`.

`sdnctl verify` receives what a switch holds as JSON from the daemon and rebuilds
the FlowSet here, to diff it against intent and simulate it.

Flows read from a switch may break the rules the compiler keeps (someone added
them by hand): a `goto` the pipeline does not declare, cookie 0. Such a flow is
still what the switch does, so `lenient_flow` builds it without those checks:
the simulator needs only stage, priority, match and actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sdnctl.flows import (
    ACTION_BY_NAME,
    Action,
    Bucket,
    Ct,
    Flow,
    FlowSet,
    Group,
    Match,
    MatchValue,
    MeterBand,
    Nat,
)
from sdnctl.pipeline import TABLE_ID


def action_from_json(data: Mapping[str, Any]) -> Action:
    fields = dict(data)
    kind = fields.pop("type", None)
    cls = ACTION_BY_NAME.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown action type {kind!r}")
    if cls is Ct and isinstance(fields.get("nat"), Mapping):
        fields["nat"] = Nat(**fields["nat"])
    action: Action = cls(**fields)
    return action


def match_from_json(data: Mapping[str, Any]) -> Match:
    values: dict[str, MatchValue] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
    }
    return Match.of(values)


def lenient_flow(stage: str, priority: int, match: Match, actions: Sequence[Action],
                 owner: str, cookie: int) -> Flow:
    """A Flow, even one the compiler would refuse (undeclared goto, cookie 0: kept as 0,
    where a checked Flow would derive one from its owner)."""
    if cookie:
        try:
            return Flow(stage, priority, match, tuple(actions), owner, cookie)
        except ValueError:
            pass
    flow = object.__new__(Flow)
    for name, value in (("stage", stage), ("priority", priority), ("match", match),
                        ("actions", tuple(actions)), ("owner", owner), ("cookie", cookie),
                        ("key", (stage, priority, match)),
                        ("sort_key", (TABLE_ID.get(stage, -1), -priority, repr(match)))):
        object.__setattr__(flow, name, value)
    return flow


def flow_from_json(data: Mapping[str, Any]) -> Flow:
    return lenient_flow(
        str(data["stage"]), int(data["priority"]), match_from_json(data.get("match", {})),
        [action_from_json(a) for a in data.get("actions", [])],
        str(data.get("owner", "base")), int(data.get("cookie", 0)),
    )


def group_from_json(data: Mapping[str, Any]) -> Group:
    buckets = tuple(
        Bucket(tuple(action_from_json(a) for a in b.get("actions", [])), b.get("watch_port"))
        for b in data.get("buckets", [])
    )
    return Group(int(data["group_id"]), str(data["type"]), buckets,
                 str(data.get("owner", "base")))


def meter_from_json(data: Mapping[str, Any]) -> MeterBand:
    return MeterBand(int(data["meter_id"]), int(data["rate_kbps"]), int(data["burst_kb"]),
                     str(data.get("owner", "base")), bool(data.get("pktps", False)))


def flowset_from_json(data: Mapping[str, Any]) -> FlowSet:
    """One switch's JSON (`flowset_to_json`'s shape) -> FlowSet, in FlowSet's order.

    Two flows with the same table, priority and match cannot both be on a switch,
    so no check is needed (and `FlowSet.build`'s would refuse lenient flows)."""
    flows = sorted((flow_from_json(f) for f in data.get("flows", [])),
                   key=lambda f: (f.table, -f.priority, repr(f.match)))
    return FlowSet.of(
        str(data["switch"]),
        tuple(flows),
        tuple(sorted((group_from_json(g) for g in data.get("groups", [])),
                     key=lambda g: g.group_id)),
        tuple(sorted((meter_from_json(m) for m in data.get("meters", [])),
                     key=lambda m: m.meter_id)),
    )
