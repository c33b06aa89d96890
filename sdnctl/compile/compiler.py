"""The compiler: (policy, topology, bindings) -> one FlowSet per switch.

A pure function. Each stage module contributes the flows of its stage for one
switch ("restrict to one switch" is the explicit step: every stage is asked
about exactly one switch); this module only concatenates and lets FlowSet sort,
so the output is deterministic.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

from sdnctl.bindings import Bindings
from sdnctl.compile.acl import compile_acl
from sdnctl.compile.arp import compile_arp
from sdnctl.compile.conntrack import compile_ct_in, compile_ct_out, compile_deliver
from sdnctl.compile.context import NetworkView
from sdnctl.compile.l2 import compile_l2
from sdnctl.compile.port_security import compile_meters, compile_port_security
from sdnctl.compile.route import compile_route
from sdnctl.flows import Flow, FlowSet, Match
from sdnctl.pipeline import PIPELINE
from sdnctl.policy.model import Policy
from sdnctl.topology.model import PortRef, Topology


def compile_network(
    policy: Policy,
    topology: Topology,
    bindings: Bindings,
    down_ports: frozenset[PortRef] = frozenset(),
) -> dict[str, FlowSet]:
    """Every switch of the topology, by name -> its FlowSet.

    `down_ports`: link ports known to be down; paths are computed without those
    links (the fast-failover groups carry traffic until this recompile lands).
    """
    view = NetworkView(policy, topology, bindings, down_ports)
    with gc_paused():
        return {name: compile_view(view, name) for name in sorted(topology.switches)}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Compiling allocates hundreds of thousands of small acyclic objects; the cyclic
    collector would rescan all of them over and over (cost growing with the size of
    the network) while finding nothing to free. Pause it for the duration."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compile_switch(policy: Policy, topology: Topology, bindings: Bindings, switch: str) -> FlowSet:
    return compile_view(NetworkView(policy, topology, bindings), switch)


def compile_view(view: NetworkView, switch: str) -> FlowSet:
    flows: list[Flow] = []
    flows += compile_port_security(view, switch)
    flows += compile_arp(view, switch)
    flows += compile_ct_out(view, switch)
    flows += compile_acl(view, switch)
    flows += compile_route(view, switch)
    l2_flows, groups = compile_l2(view, switch)
    flows += l2_flows
    flows += compile_ct_in(view, switch)
    flows += compile_deliver(view, switch)
    # Every table ends in an explicit drop, so `explain` can always name a flow.
    flows += [Flow(stage.name, 0, Match.of(), (), "base") for stage in PIPELINE]
    return FlowSet.build(switch, flows, groups, compile_meters(view, switch))
