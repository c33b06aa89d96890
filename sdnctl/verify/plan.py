"""`sdnctl plan`: the reachability a policy edit adds and removes, before it is applied.

Both policies are compiled over the same topology and simulated; the answer is
what the compiled flows would do, not what the policy text seems to say.

Simulated as `sdnctl verify` simulates (sdnctl.verify.pairs): one representative
pair per class pair. The classes are those of both policies at once (two VMs are
in one class when they are alike before the edit and alike after it), so that a
class pair's representatives stand for all of its VM pairs in both networks.
Pairs across tenants are swept as verify sweeps them. When the edit leaves the VMs
and their segments alone (a rule, a group, a default), the new network is only
simulated where a run over the old one met a flow the edit changed: elsewhere the
new run would take the very same steps (`reached_pairs_both`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sdnctl.bindings import Bindings, planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.policy.model import Policy, Service
from sdnctl.topology.model import Topology
from sdnctl.verify.classes import VmClass, class_keys, group_classes
from sdnctl.verify.pairs import reached_pairs, reached_pairs_both
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


def _reached(policy: Policy, topology: Topology, bindings: Bindings,
             classes: Sequence[VmClass], services: tuple[Service, ...]
             ) -> dict[tuple[VmClass, VmClass], set[Service]]:
    flows = compile_network(policy, topology, bindings)
    return reached_pairs(flows, policy, topology, bindings, classes, services)


def _same_vms(old: Policy, new: Policy) -> bool:
    """The same VMs, with the same addresses in the same segments: what a probe reads
    of the policy besides flows."""
    if dict(old.vms) != dict(new.vms):
        return False
    tenants = {vm.tenant for vm in old.vms.values()}
    return all(old.tenants[t].segments == new.tenants[t].segments for t in tenants)


def _triples(a: VmClass, b: VmClass, services: set[Service]) -> list[Triple]:
    return [(x, y, str(s)) for x in a.members for y in b.members if x != y for s in services]


def plan_edit(old: Policy, new: Policy, topology: Topology) -> Plan:
    services = tuple(sorted(set(probe_services(old)) | set(probe_services(new))))
    bound_old, bound_new = planned_bindings(old, topology), planned_bindings(new, topology)
    keys_old, keys_new = class_keys(old, bound_old), class_keys(new, bound_new)
    classes = group_classes({vm: (keys_old.get(vm), keys_new.get(vm))
                             for vm in keys_old.keys() | keys_new.keys()})
    if _same_vms(old, new) and bound_old == bound_new:
        before, after = reached_pairs_both(
            compile_network(old, topology, bound_old), compile_network(new, topology, bound_new),
            old, new, topology, bound_old, classes, services)
    else:
        before = _reached(old, topology, bound_old,
                          [c for c in classes if c.key[0] is not None], services)
        after = _reached(new, topology, bound_new,
                         [c for c in classes if c.key[1] is not None], services)
    added: list[Triple] = []
    removed: list[Triple] = []
    for pair in before.keys() | after.keys():
        was, now = before.get(pair, set()), after.get(pair, set())
        added += _triples(*pair, now - was)
        removed += _triples(*pair, was - now)
    vms = set(old.vms) | set(new.vms)
    return Plan(
        tuple(sorted(added)), tuple(sorted(removed)),
        len(vms) * (len(vms) - 1) * len(services),
    )
