"""Nothing the compiler emits reaches the controller, so the controller path needs no
meter (docs/threat-model.md): no flow or group bucket outputs to CONTROLLER or to
any other reserved port a frame could escape through (NORMAL, FLOOD, ALL, LOCAL),
and every table ends in an explicit drop, so OVS's table-miss behaviour never
matters. Checked over every example network, and over random ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flows import OFPP_IN_PORT, FlowSet, Match, Output
from sdnctl.live.counters import Counters
from sdnctl.pipeline import PIPELINE
from sdnctl.policy.load import load_policy
from sdnctl.southbound.livedump import DropSample
from sdnctl.topology.load import load_topology
from tests.unit.netgen import networks

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name.removesuffix(".topology.yaml")
                  for p in (ROOT / "topologies").glob("*.topology.yaml"))
MAX_PORT = 0xFFFFFF00  # OFPP_MAX: ports above are reserved (CONTROLLER, NORMAL, FLOOD, ...)


def escapes(fs: FlowSet) -> list[str]:
    """Every output to a reserved port other than IN_PORT (ARP answers go back there)."""
    found = []
    actions = [(f"flow {f.stage}/{f.priority}/{f.owner}", f.actions) for f in fs.flows]
    actions += [(f"group {g.group_id}", b.actions) for g in fs.groups for b in g.buckets]
    for where, acts in actions:
        for act in acts:
            if isinstance(act, Output) and act.port > MAX_PORT and act.port != OFPP_IN_PORT:
                found.append(f"{fs.switch}: {where} outputs to {act.port:#x}")
    return found


def check(flowsets: dict[str, FlowSet]) -> None:
    for fs in flowsets.values():
        assert escapes(fs) == []
        for stage in PIPELINE:  # each table ends in a priority-0 catch-all drop
            assert any(f.priority == 0 and f.match == Match.of() and not f.actions
                       for f in fs.in_stage(stage.name)), f"{fs.switch}/{stage.name}"


def test_there_are_examples() -> None:
    assert {"three-tier", "leaf-spine", "multi-tenant", "single"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_no_example_flow_reaches_the_controller(name: str) -> None:
    topo = load_topology(ROOT / "topologies" / f"{name}.topology.yaml")
    policy = load_policy(ROOT / "topologies" / f"{name}.policy.yaml", topo)
    check(compile_network(policy, topo, planned_bindings(policy, topo)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_no_random_network_flow_reaches_the_controller(net) -> None:
    policy, topo, bindings = net
    check(compile_network(policy, topo, bindings))


def test_the_check_can_fail() -> None:
    from sdnctl.flows import OFPP_CONTROLLER, Flow

    fs = FlowSet.build("x", [Flow("arp", 10, Match.of(), (Output(OFPP_CONTROLLER),))])
    assert escapes(fs) == ["x: flow arp/10/base outputs to 0xfffffffd"]


# ---- the counters behind /metrics ------------------------------------------------------


def test_drop_totals_add_growth_and_survive_counter_resets() -> None:
    c = Counters()
    c.record_poll("hv1", 10, [DropSample("a", "acme", "acl", 5, 500),
                              DropSample("b", "", "acl", 1, 60)])
    c.record_poll("hv1", 10, [DropSample("a", "acme", "acl", 8, 800),
                              DropSample("b", "", "acl", 1, 60)])
    assert c.drops_packets[("acme", "acl")] == 8 and c.drops_packets[("", "acl")] == 1
    # The flow was re-added (its counter restarted): the new count is growth, not a loss.
    c.record_poll("hv1", 10, [DropSample("a", "acme", "acl", 2, 200)])
    assert c.drops_packets[("acme", "acl")] == 10 and c.drops_bytes[("acme", "acl")] == 1000
    c.forget_switch("hv1")  # reconnected: its counters start afresh
    c.record_poll("hv1", 10, [DropSample("a", "acme", "acl", 1, 100)])
    assert c.drops_packets[("acme", "acl")] == 11
    assert c.snapshot()["dropped_packets"] == {"(shared)": {"acl": 1}, "acme": {"acl": 11}}


def test_packet_ins_are_counted_and_logged_once_per_window(caplog) -> None:
    c = Counters()
    with caplog.at_level("WARNING", logger="controller"):
        for _ in range(500):
            c.packet_in("hv1", "table miss, table 0, in_port 3")
    assert c.packet_ins_of("hv1") == 500
    lines = [r for r in caplog.records if "packet-in" in r.getMessage()]
    assert len(lines) == 1 and "in_port 3" in lines[0].getMessage()
