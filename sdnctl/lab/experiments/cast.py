"""Who plays which part in an experiment, chosen from the topology and policy. Pure.

The experiments run on any topology/policy pair, not only on their defaults: the
flow to watch, the link to cut, the VM to move are picked here by what they must
be (an allowed flow that crosses the fabric, a hypervisor with two uplinks, ...),
in name order so a run is repeatable. `CastError` says what the files lack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import networkx as nx

from sdnctl.lab.experiments.stream import Flow
from sdnctl.lab.plan import HostPlan, LabError, LabPlan
from sdnctl.policy.model import Default, Policy, Proto, Service
from sdnctl.topology.model import Link, Role, Topology
from sdnctl.verify.semantics import reach

SPARE_UDP = 7999  # streamed when a tenant allows everything and no rule names a UDP port
TOGGLE_PORTS = range(7101, 7200)  # where policy-edit looks for ports no rule allows


class CastError(LabError):
    """The topology or policy has nothing that can play a part the experiment needs."""


@dataclass(frozen=True, slots=True)
class Cast:
    """The lab as the casting sees it."""

    policy: Policy
    topology: Topology
    plan: LabPlan

    def host_of(self, vm: str) -> str:
        return self.plan.host(vm).switch

    def uplinks(self, switch: str) -> list[Link]:
        """The links of a switch, in topology order."""
        return [ln for ln in self.topology.links if switch in (ln.a.switch, ln.b.switch)]

    def hypervisors(self) -> list[str]:
        return sorted(n for n, s in self.topology.switches.items() if s.role is Role.HYPERVISOR)


def stream_service(policy: Policy, src: str, dst: str) -> Service | None:
    """A service a continuous probe can carry from src to dst that the policy allows:
    a UDP port some rule names, else icmp, else any UDP port (default-allow tenants)."""
    udp = sorted({s.port_lo for s in policy.services() if s.proto is Proto.UDP})
    candidates = [Service(Proto.UDP, p, p) for p in udp]
    candidates += [Service(Proto.ICMP), Service(Proto.UDP, SPARE_UDP, SPARE_UDP)]
    return next((s for s in candidates if reach(policy, src, dst, s)), None)


def _pairs(cast: Cast) -> Iterator[tuple[HostPlan, HostPlan]]:
    for a in sorted(cast.plan.hosts, key=lambda h: h.vm):
        for b in sorted(cast.plan.hosts, key=lambda h: h.vm):
            if a.vm != b.vm:
                yield a, b


def find_flow(cast: Cast, want: Callable[[HostPlan, HostPlan], bool], what: str) -> Flow:
    """The first allowed, streamable flow whose (source, destination) hosts satisfy `want`."""
    for a, b in _pairs(cast):
        if want(a, b):
            service = stream_service(cast.policy, a.vm, b.vm)
            if service is not None:
                return Flow(a.vm, b.vm, service)
    raise CastError(f"no VM pair in the policy can play {what}")


def crossing_flow(cast: Cast) -> Flow:
    """An allowed flow between VMs on the two hypervisors farthest apart: it crosses
    the most switches, so the most tables that an edit or a restart could disturb."""
    hops = dict(nx.all_pairs_shortest_path_length(cast.topology.graph()))
    pairs = [(a, b) for a, b in _pairs(cast)
             if a.switch != b.switch and stream_service(cast.policy, a.vm, b.vm) is not None]
    if not pairs:
        raise CastError("no VM pair in the policy can play an allowed flow between two"
                        " hypervisors")
    flows = [Flow(a.vm, b.vm, stream_service(cast.policy, a.vm, b.vm)) for a, b in pairs]
    # Farthest first, then UDP (a stream of one connection) over icmp; first of the ties.
    return max(flows, key=lambda f: (hops[cast.host_of(f.src)].get(cast.host_of(f.dst), 0),
                                     f.service.proto is Proto.UDP))


def toggle_ports(cast: Cast, src: str, dst: str, count: int = 2) -> list[int]:
    """UDP ports the policy does not allow from src to dst (policy-edit allows them one
    at a time); CastError if the tenant allows everything (nothing to toggle)."""
    tenant = cast.policy.tenants[cast.policy.vms[src].tenant]
    if tenant.default is Default.ALLOW:
        raise CastError(f"tenant {tenant.name} allows everything: a rule edit changes nothing")
    free = [p for p in TOGGLE_PORTS if not reach(cast.policy, src, dst, Service(Proto.UDP, p, p))]
    if len(free) < count:
        raise CastError(f"no {count} UDP ports in {TOGGLE_PORTS} are denied from {src} to {dst}")
    return free[:count]


def dual_homed_flow(cast: Cast) -> Flow:
    """A flow from a VM on a hypervisor with two or more uplinks to another hypervisor."""
    return find_flow(cast, lambda a, b: len(cast.uplinks(a.switch)) >= 2 and a.switch != b.switch,
                     "a flow leaving a dual-homed hypervisor")


def single_homed_flow(cast: Cast) -> Flow:
    """A flow from a VM on a hypervisor with exactly one uplink to another hypervisor."""
    return find_flow(cast, lambda a, b: len(cast.uplinks(a.switch)) == 1 and a.switch != b.switch,
                     "a flow leaving a single-homed hypervisor")


def fabric_links(cast: Cast) -> list[Link]:
    """Links between two fabric switches (none in a one-leaf topology)."""
    fabric = {n for n, s in cast.topology.switches.items() if s.role is Role.FABRIC}
    return [ln for ln in cast.topology.links if ln.a.switch in fabric and ln.b.switch in fabric]


@dataclass(frozen=True, slots=True)
class Move:
    """A VM migration: `vm` from its planned hypervisor to `target`, watched by `flow`."""

    vm: str
    target: str
    flow: Flow  # peer -> vm


def migration(cast: Cast) -> Move:
    """A VM, another hypervisor to move it to, and a peer whose flow to it is allowed.

    Prefers a peer on a third hypervisor (so the move changes a remote switch's path
    to the VM, not only the two hypervisors involved)."""
    hvs = cast.hypervisors()
    best: Move | None = None
    for peer, vm in _pairs(cast):
        service = stream_service(cast.policy, peer.vm, vm.vm)
        if service is None:
            continue
        for target in hvs:
            if target == vm.switch:
                continue
            move = Move(vm.vm, target, Flow(peer.vm, vm.vm, service))
            if peer.switch not in (vm.switch, target):
                return move
            best = best or move
    if best is None:
        raise CastError("no VM with an allowed flow to it and a second hypervisor to move to")
    return best
