"""`sdnctl explain`: say, table by table, why a connection is allowed or denied, or
(`--dhcp`) whether a VM's DHCP request is answered and what the answer says."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address

from sdnctl.bindings import Bindings
from sdnctl.dhcp.lease import Lease, lease_of
from sdnctl.flows import (
    OFPP_CONTROLLER,
    Flow,
    FlowSet,
    render_action_ofctl,
    render_match_ofctl,
)
from sdnctl.policy.model import Policy, Service
from sdnctl.topology.model import PortRef, Topology
from sdnctl.verify.outside import probe_in, probe_out
from sdnctl.verify.reach import ProbeResult, probe
from sdnctl.verify.semantics import reach, reach_in, reach_out
from sdnctl.verify.simulate import Packet, Simulator, Trace


@dataclass(frozen=True, slots=True)
class Explanation:
    result: ProbeResult
    promised: bool  # what the policy semantics say
    seen_as: str | None = None  # north–south: the address the far end saw the opener as

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
            "from": r.src, "to": r.dst, "service": str(r.service), "family": f"ipv{r.family}",
            "verdict": self.verdict, "reason": r.reason or _decider(r),
            "promised": "allowed" if self.promised else "denied",
            **({"seen_as": self.seen_as} if self.seen_as else {}),
            "steps": self.steps_json(),
        }

    def to_text(self) -> str:
        r = self.result
        lines = [f"{r.src} -> {r.dst} {r.service}" + (" (IPv6)" if r.family == 6 else "")]
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
        if self.seen_as and r.reached:
            lines.append(f"the far end sees the connection come from {self.seen_as}")
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
    src: str, dst: str, service: Service, family: int = 4,
) -> Explanation:
    result = probe(Simulator(flowsets, topology), policy, bindings, src, dst, service,
                   family=family)
    return Explanation(result, reach(policy, src, dst, service, family))


def explain_outside(
    flowsets: Mapping[str, FlowSet], policy: Policy, topology: Topology, bindings: Bindings,
    src: str, dst: str, service: Service,
) -> Explanation:
    """A connection between a VM and an external address, either way: from a VM to
    an address outside its tenant (out through a gateway), or from an external
    address to a VM (through its floating IP)."""
    sim = Simulator(flowsets, topology)
    if src in policy.vms:
        got = probe_out(sim, policy, bindings, src, dst, service)
        promised = reach_out(policy, src, IPv4Address(dst), service)
    else:
        got = probe_in(sim, policy, bindings, src, dst, service)
        promised = reach_in(policy, IPv4Address(src), dst, service)
    result = ProbeResult(src, dst, service, got.reached, got.reason, got.traces,
                         delivered=got.seen_as is not None)
    return Explanation(result, promised, got.seen_as)


@dataclass(frozen=True, slots=True)
class DhcpExplanation:
    """`explain --dhcp`: a VM's DHCP DISCOVER through its switch, and what it is told."""

    vm: str
    trace: Trace
    answered: bool  # the request reaches the controller path on the VM's own switch
    lease: Lease | None  # what the answer says (None: the VM is not bound)

    def to_json(self) -> dict[str, object]:
        lease = self.lease
        return {
            "from": self.vm, "service": "dhcp",
            "verdict": "answered" if self.answered else "unanswered",
            "lease": None if lease is None else {
                "ip": str(lease.ip), "prefixlen": lease.network.prefixlen,
                "router": str(lease.router) if lease.router else None,
                "dns": [str(a) for a in lease.dns], "mtu": lease.mtu,
                "lease_s": lease.seconds, "server": str(lease.server_ip)},
            "steps": [{"phase": "discover", "switch": s.switch, "table": s.stage,
                       **_flow_json(s.flow)} for s in self.trace.steps],
        }

    def to_text(self) -> str:
        lines = [f"{self.vm} -> DHCP DISCOVER (0.0.0.0:68 -> 255.255.255.255:67)"]
        for step in self.trace.steps:
            f = step.flow
            if f is None:
                lines.append(f"    {step.switch:<8} {step.stage:<14} no flow matched: drop")
                continue
            acts = ",".join(render_action_ofctl(a) for a in f.actions) or "drop"
            lines.append(f"    {step.switch:<8} {step.stage:<14} prio {f.priority:<4} "
                         f"{f.owner:<28} {render_match_ofctl(f.match) or '*'} -> {acts}")
        if not self.answered or self.lease is None:
            lines.append("verdict: UNANSWERED (the request does not reach the controller)")
            return "\n".join(lines)
        lease = self.lease
        lines.append(
            f"verdict: ANSWERED by the controller from the policy: {lease.ip}/"
            f"{lease.network.prefixlen}, router {lease.router or 'none'}, dns "
            f"{', '.join(map(str, lease.dns)) or 'none'}, mtu {lease.mtu}, lease "
            f"{lease.seconds} s, server {lease.server_ip}")
        return "\n".join(lines)


def explain_dhcp(flowsets: Mapping[str, FlowSet], policy: Policy, topology: Topology,
                 bindings: Bindings, vm: str) -> DhcpExplanation:
    at = bindings.ports.get(vm)
    if at is None:
        return DhcpExplanation(vm, Trace(), False, None)
    v = policy.vms[vm]
    discover: Packet = {"eth_src": v.mac, "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x0800,
                "ipv4_src": "0.0.0.0", "ipv4_dst": "255.255.255.255", "ip_ttl": 64,
                "ip_proto": 17, "udp_src": 68, "udp_dst": 67}
    trace = Simulator(flowsets, topology).inject(at, discover)
    answered = [ref for ref, _ in trace.delivered] == [PortRef(at.switch, OFPP_CONTROLLER)]
    return DhcpExplanation(vm, trace, answered, lease_of(policy, topology, v))
