"""The compiler spells every match and action as a switch reads it back, so the daemon
compares compiled tables with dumped ones without normalising what it compiled
(sdnctl.live.state.ControllerState.recompile relies on it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from sdnctl.bench.datacentre import datacentre
from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flows import Flow, FlowSet, Match, SetField
from sdnctl.policy.load import load_policy
from sdnctl.southbound.ofp import normalize_flow, normalize_group
from sdnctl.topology.load import load_topology
from tests.unit.netgen import networks

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name.removesuffix(".topology.yaml")
                  for p in (ROOT / "topologies").glob("*.topology.yaml"))


def not_normal(flowsets: dict[str, FlowSet]) -> list[str]:
    seen: set[int] = set()
    found = []
    for fs in flowsets.values():
        for frag in fs.fragments():
            if id(frag) in seen:
                continue
            seen.add(id(frag))
            found += [f"{fs.switch}: {f}" for f in frag.flows if normalize_flow(f) != f]
            found += [f"{fs.switch}: {g}" for g in frag.groups if normalize_group(g) != g]
    return found


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_networks_compile_to_normal_form(name: str) -> None:
    topo = load_topology(ROOT / "topologies" / f"{name}.topology.yaml")
    policy = load_policy(ROOT / "topologies" / f"{name}.policy.yaml", topo)
    assert not_normal(compile_network(policy, topo, planned_bindings(policy, topo))) == []


@pytest.mark.parametrize("placement", ["packed", "scattered"])
def test_benchmark_data_centres_compile_to_normal_form(placement: str) -> None:
    policy, topo = datacentre(300, placement)
    assert not_normal(compile_network(policy, topo, planned_bindings(policy, topo))) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_random_networks_compile_to_normal_form(net) -> None:
    policy, topo, bindings = net
    assert not_normal(compile_network(policy, topo, bindings)) == []


def test_the_check_can_fail() -> None:
    odd = Flow("arp", 10, Match.of(eth_src="02:00:00:00:00:AB"),
               (SetField("eth_dst", "0E:00:00:00:00:01"),))
    assert not_normal({"x": FlowSet.build("x", [odd])})
