"""The IR's action vocabulary (`sdnctl.flows.ACTIONS`, declared once) is understood by
every interpreter: the JSON form both ways, the ofctl printer, the OpenFlow encoder
and decoder, and the simulator. A new action class without a case in one of them
fails here (and without an example below, too)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdnctl.flowjson import action_from_json, lenient_flow
from sdnctl.flows import (
    ACTIONS,
    Conjunction,
    Controller,
    Ct,
    DecTtl,
    FlowSet,
    Goto,
    GroupAction,
    Match,
    Meter,
    Move,
    Nat,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    SetField,
    WriteMetadata,
    action_to_json,
    render_action_ofctl,
)
from sdnctl.southbound.ofp.actions import (
    actions_from_instructions,
    instructions_for,
    normalize_actions,
)
from sdnctl.topology.load import load_topology
from sdnctl.verify.simulate import Conntrack, Simulator, Trace, _fields_of

EXAMPLES = {
    Output: Output(5),
    GroupAction: GroupAction(7),
    SetField: SetField("eth_dst", "02:00:00:00:00:09"),
    Move: Move("eth_src", "eth_dst"),
    PushVlan: PushVlan(),
    PopVlan: PopVlan(),
    PushMpls: PushMpls(),
    PopMpls: PopMpls(0x0800),
    DecTtl: DecTtl(),
    Ct: Ct(zone="reg5", commit=True, table="acl", nat=Nat("src", "203.0.113.10")),
    Conjunction: Conjunction(7, 1, 2),
    Meter: Meter(3),
    WriteMetadata: WriteMetadata(0x5, 0xFF),
    Goto: Goto("arp"),
    Controller: Controller(0x3FF00),
}
TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "single.topology.yaml"
PACKET = {"eth_src": "02:00:00:00:00:01", "eth_dst": "02:00:00:00:00:02", "eth_type": 0x0800,
          "ipv4_src": "10.0.0.1", "ipv4_dst": "10.0.0.2", "ip_proto": 6, "tcp_src": 1000,
          "tcp_dst": 80, "ip_ttl": 64}


def test_every_action_has_an_example() -> None:
    assert set(EXAMPLES) == set(ACTIONS)


@pytest.mark.parametrize("cls", ACTIONS, ids=lambda c: c.__name__)
def test_json_round_trip(cls) -> None:
    act = EXAMPLES[cls]
    assert action_from_json(json.loads(json.dumps(action_to_json(act)))) == act


@pytest.mark.parametrize("cls", ACTIONS, ids=lambda c: c.__name__)
def test_ofctl_printer(cls) -> None:
    assert render_action_ofctl(EXAMPLES[cls]) and render_action_ofctl(EXAMPLES[cls], named=True)


@pytest.mark.parametrize("cls", ACTIONS, ids=lambda c: c.__name__)
def test_openflow_round_trip(cls) -> None:
    act = EXAMPLES[cls]
    assert actions_from_instructions(instructions_for([act])) == normalize_actions([act])


@pytest.mark.parametrize("cls", ACTIONS, ids=lambda c: c.__name__)
def test_simulator(cls) -> None:
    act = EXAMPLES[cls]
    _fields_of((act,), set())  # the fabric memo knows what it reads and writes
    flows = [lenient_flow("port_security", 10, Match.of(in_port=1), (act,), "t", 1)]
    if cls is Conjunction:  # a clause: takes effect when every clause matches
        flows += [lenient_flow("port_security", 10, Match.of(eth_type=0x0800),
                               (Conjunction(7, 2, 2),), "t", 1),
                  lenient_flow("port_security", 10, Match.of(conj_id=7), (Output(9),), "t", 1)]
    fs = FlowSet.of("hv1", tuple(flows), (), ())
    sim = Simulator({"hv1": fs}, load_topology(TOPOLOGY))
    trace = Trace()
    outputs = sim._run_switch("hv1", 1, dict(PACKET), Conntrack(), trace)
    assert trace.steps and trace.steps[0].flow is not None
    if cls is Conjunction:
        assert [port for port, _ in outputs] == [9]
