"""`sdnctl explain`: say, table by table, why a connection is allowed or denied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sdnctl.bindings import Bindings
from sdnctl.flows import Flow, FlowSet, render_action_ofctl, render_match_ofctl
from sdnctl.policy.model import Policy, Service
from sdnctl.topology.model import Topology
from sdnctl.verify.reach import ProbeResult, probe
from sdnctl.verify.semantics import reach
from sdnctl.verify.simulate import Simulator


@dataclass(frozen=True, slots=True)
class Explanation:
    result: ProbeResult
    promised: bool  # what the policy semantics say

    @property
    def verdict(self) -> str:
        return "allowed" if self.result.reached else "denied"

    def steps_json(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for phase, trace in self.result.traces:
            for step in trace.steps:
                out.append({"phase": phase, "switch": step.switch, "table": step.stage,
                            **_flow_json(step.flow)})
        return out

    def to_json(self) -> dict[str, object]:
        r = self.result
        return {
            "from": r.src, "to": r.dst, "service": str(r.service),
            "verdict": self.verdict, "reason": r.reason or _decider(r),
            "promised": "allowed" if self.promised else "denied",
            "steps": self.steps_json(),
        }

    def to_text(self) -> str:
        r = self.result
        lines = [f"{r.src} -> {r.dst} {r.service}"]
        for phase, trace in r.traces:
            lines.append(f"  {phase}:")
            for step in trace.steps:
                f = step.flow
                if f is None:
                    lines.append(f"    {step.switch:<8} {step.stage:<14} no flow matched: drop")
                    continue
                acts = ",".join(render_action_ofctl(a) for a in f.actions) or "drop"
                lines.append(
                    f"    {step.switch:<8} {step.stage:<14} prio {f.priority:<4} {f.owner:<28}"
                    f" {render_match_ofctl(f.match) or '*'} -> {acts}"
                )
        verdict = self.verdict.upper()
        why = r.reason or _decider(r)
        lines.append(f"verdict: {verdict} ({why})")
        if r.reached != self.promised:
            lines.append(f"WARNING: the policy promises {'allowed' if self.promised else 'denied'}")
        return "\n".join(lines)


def _flow_json(flow: Flow | None) -> dict[str, object]:
    if flow is None:
        return {"flow": None}
    return {
        "priority": flow.priority, "owner": flow.owner, "cookie": hex(flow.cookie),
        "match": render_match_ofctl(flow.match),
        "actions": ",".join(render_action_ofctl(a) for a in flow.actions) or "drop",
    }


def _decider(r: ProbeResult) -> str:
    """Name what let the connection through: the acl flow of the request."""
    for phase, trace in r.traces:
        if phase != "request":
            continue
        for step in trace.steps:
            if step.stage == "acl" and step.flow is not None:
                return f"acl: {step.flow.owner} on {step.switch}"
    return "delivered"


def explain(
    flowsets: Mapping[str, FlowSet], policy: Policy, topology: Topology, bindings: Bindings,
    src: str, dst: str, service: Service,
) -> Explanation:
    result = probe(Simulator(flowsets, topology), policy, bindings, src, dst, service)
    return Explanation(result, reach(policy, src, dst, service))
