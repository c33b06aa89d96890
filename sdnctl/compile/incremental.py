"""compile_network with a memory: recompile only the switches an input change can reach.

What a switch holds depends on (see the stage modules):
- every switch: the topology and the ports that are down (paths, labels, trunks);
- a hypervisor, besides: for each tenant with a VM bound on it, that tenant's
  definition (segments, groups, rules) and its VMs with their bindings (ARP
  answers, forwarding, routing and ACL members name VMs anywhere in the tenant).

So when the topology and the down ports are unchanged, an edit changes at most
the hypervisors hosting a VM of a "touched" tenant, before or after the edit: a
tenant whose definition changed, or one of whose VMs was added, removed,
changed or moved. Every other switch keeps the very FlowSet object it had,
which lets callers skip re-normalising and comparing it (identity says
"unchanged"). Anything else (topology, down ports, first call) compiles all.

`tests/unit/test_incremental.py` checks, over random edit sequences, that the
result always equals a full compile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sdnctl.bindings import Bindings
from sdnctl.compile.compiler import compile_view, gc_paused
from sdnctl.compile.context import NetworkView
from sdnctl.flows import FlowSet
from sdnctl.policy.model import Policy
from sdnctl.topology.model import PortRef, Topology


@dataclass(frozen=True, slots=True)
class Scope:
    """What the last compile did: all switches, or only `switches`."""

    full: bool
    switches: tuple[str, ...]
    reason: str

    def describe(self) -> str:
        if self.full:
            return f"full compile ({self.reason})"
        return f"{len(self.switches)} switches recompiled ({self.reason})"


@dataclass(frozen=True, slots=True)
class _Compiled:
    view: NetworkView
    flowsets: Mapping[str, FlowSet]


class IncrementalCompiler:
    """Callable like `compile_network`; keeps the last inputs and outputs.

    Not thread-safe: one owner (the controller state, under its lock)."""

    def __init__(self) -> None:
        self._last: _Compiled | None = None
        self.last_scope: Scope | None = None

    def __call__(
        self,
        policy: Policy,
        topology: Topology,
        bindings: Bindings,
        down_ports: frozenset[PortRef] = frozenset(),
    ) -> dict[str, FlowSet]:
        last = self._last
        reason = _full_reason(last, topology, down_ports)
        if last is None or reason:
            view = NetworkView(policy, topology, bindings, down_ports)
            with gc_paused():
                out = {name: compile_view(view, name) for name in sorted(topology.switches)}
            scope = Scope(True, tuple(sorted(out)), reason or "first compile")
        else:
            view = last.view.reusing(policy, bindings)
            touched = touched_tenants(last.view.policy, policy,
                                      last.view.bindings, bindings)
            switches = sorted(hosting(last.view, touched) | hosting(view, touched))
            out = dict(last.flowsets)
            with gc_paused():
                for name in switches:
                    out[name] = compile_view(view, name)
            scope = Scope(False, tuple(switches),
                          f"tenants touched: {', '.join(sorted(touched)) or 'none'}")
        # Only now: a compile that raised leaves the last good state in place.
        self._last = _Compiled(view, out)
        self.last_scope = scope
        return dict(out)


def _full_reason(last: _Compiled | None, topology: Topology,
                 down_ports: frozenset[PortRef]) -> str:
    if last is None:
        return "first compile"
    if last.view.topology is not topology and last.view.topology != topology:
        return "topology changed"
    if last.view.down_ports != down_ports:
        return "links changed"
    return ""


def touched_tenants(old: Policy, new: Policy, old_bindings: Bindings,
                    new_bindings: Bindings) -> set[str]:
    """Tenants whose definition, VMs or VM bindings differ between old and new."""
    touched: set[str] = set()
    if old.tenants is not new.tenants:
        for name in old.tenants.keys() | new.tenants.keys():
            if old.tenants.get(name) != new.tenants.get(name):
                touched.add(name)
    if old.vms is not new.vms:
        for name in _differing(old.vms, new.vms):
            touched.update(_tenants_of(name, old, new))
    if old_bindings.ports is not new_bindings.ports:
        for name in _differing(old_bindings.ports, new_bindings.ports):
            touched.update(_tenants_of(name, old, new))
    return touched


def _differing(old: Mapping[str, object], new: Mapping[str, object]) -> Iterable[str]:
    for name in old.keys() | new.keys():
        if old.get(name) != new.get(name):
            yield name


def _tenants_of(vm: str, *policies: Policy) -> set[str]:
    return {p.vms[vm].tenant for p in policies if vm in p.vms}


def hosting(view: NetworkView, tenants: set[str]) -> set[str]:
    """Switches where a VM of one of `tenants` is bound, as `view` sees it."""
    if not tenants:
        return set()
    return {ref.switch for name, ref in view.where.items()
            if view.policy.vms[name].tenant in tenants}
