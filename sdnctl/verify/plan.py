"""`sdnctl plan`: the reachability a policy edit adds and removes, before it is applied.

Both policies are compiled over the same topology and simulated; the answer is
what the compiled flows would do, not what the policy text seems to say.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.policy.model import Policy, Service
from sdnctl.topology.model import Topology
from sdnctl.verify.reach import reachability
from sdnctl.verify.semantics import probe_services

Triple = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Plan:
    added: tuple[Triple, ...]
    removed: tuple[Triple, ...]
    probes: int

    def to_json(self) -> dict[str, object]:
        return {"added": [list(t) for t in self.added], "removed": [list(t) for t in self.removed]}

    def to_text(self) -> str:
        if not self.added and not self.removed:
            return f"no change in reachability ({self.probes} probes)"
        lines = [f"+ {s} -> {d} {svc}" for s, d, svc in self.added]
        lines += [f"- {s} -> {d} {svc}" for s, d, svc in self.removed]
        lines.append(f"{len(self.added)} added, {len(self.removed)} removed ({self.probes} probes)")
        return "\n".join(lines)


def _matrix(policy: Policy, topology: Topology, services: tuple[Service, ...]) -> set[Triple]:
    bindings = planned_bindings(policy, topology)
    flows = compile_network(policy, topology, bindings)
    result = reachability(flows, policy, topology, bindings, services)
    return {(a, b, str(s)) for (a, b, s), ok in result.items() if ok}


def plan_edit(old: Policy, new: Policy, topology: Topology) -> Plan:
    services = tuple(sorted(set(probe_services(old)) | set(probe_services(new))))
    before = _matrix(old, topology, services)
    after = _matrix(new, topology, services)
    vms = set(old.vms) | set(new.vms)
    return Plan(
        tuple(sorted(after - before)), tuple(sorted(before - after)),
        len(vms) * (len(vms) - 1) * len(services),
    )
