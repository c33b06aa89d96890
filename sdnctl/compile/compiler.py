"""The compiler: (policy, topology, bindings) -> one FlowSet per switch.

A pure function. Each switch's FlowSet is its local part plus the shared parts
its plan names (`sdnctl.compile.parts`): what many hypervisors hold alike is
computed once. "Restrict to one switch" is the explicit step: each stage module
answers for one switch (its local flows) or for one shared part; this module only
composes, and FlowSet sorts, so the output is deterministic.
"""

from __future__ import annotations

from sdnctl.bindings import Bindings
from sdnctl.compile.context import NetworkView
from sdnctl.compile.parts import PartStore, compose_switch
from sdnctl.flows import FlowSet
from sdnctl.gcpause import gc_paused
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
    return compile_all(view, PartStore())


def compile_all(view: NetworkView, store: PartStore) -> dict[str, FlowSet]:
    with gc_paused():
        return {name: compose_switch(view, store, name) for name in sorted(view.topology.switches)}


def compile_switch(policy: Policy, topology: Topology, bindings: Bindings, switch: str) -> FlowSet:
    return compose_switch(NetworkView(policy, topology, bindings), PartStore(), switch)
