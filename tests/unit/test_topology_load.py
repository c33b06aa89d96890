"""The topology loader: example files load into the right model; bad input is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdnctl.topology.load import load_topology, parse_topology
from sdnctl.topology.model import Link, PortRef, Role, Switch
from sdnctl.yamlsrc import LoadError

TOPOLOGIES = Path(__file__).resolve().parent.parent.parent / "topologies"


def problems(text: str) -> list[str]:
    with pytest.raises(LoadError) as caught:
        parse_topology(text, "t.yaml")
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("name", ["three-tier", "leaf-spine", "single"])
def test_example_topologies_load(name: str) -> None:
    path = str(TOPOLOGIES / f"{name}.topology.yaml")
    topology = load_topology(path)
    assert topology.source == path
    assert topology.switches


def test_three_tier_values() -> None:
    topology = load_topology(TOPOLOGIES / "three-tier.topology.yaml")
    assert dict(topology.switches) == {
        "hv1": Switch("hv1", 1, Role.HYPERVISOR, 5),
        "hv2": Switch("hv2", 2, Role.HYPERVISOR, 6),
        "leaf": Switch("leaf", 16, Role.FABRIC, 7),
    }
    assert topology.links == (
        Link(PortRef("hv1", 10), PortRef("leaf", 1), 9),
        Link(PortRef("hv2", 10), PortRef("leaf", 2), 10),
    )
    assert sorted(topology.graph().edges) == [("hv1", "leaf"), ("hv2", "leaf")]


def test_hex_dpids_are_integers() -> None:
    topology = load_topology(TOPOLOGIES / "leaf-spine.topology.yaml")
    assert topology.switches["spine1"].dpid == 0x101
    assert topology.by_dpid(0x202) == topology.switches["leaf2"]
    assert len(topology.links) == 8


def test_links_may_be_left_out() -> None:
    topology = parse_topology("version: 1\nswitches:\n  hv1: {dpid: 1, role: hypervisor}\n",
                              "t.yaml")
    assert topology.links == ()


def test_unknown_keys_are_named_with_the_allowed_ones() -> None:
    text = "version: 1\nswitches:\n  hv1: {dpid: 1, role: hypervisor, kind: x}\nlink: []\n"
    assert problems(text) == [
        "t.yaml:3: switch hv1: unknown key 'kind' "
        "(allowed: dpid, role, tunnel_ip, tunnel_port, uplink)",
        "t.yaml:4: topology: unknown key 'link', did you mean 'links'? "
        "(allowed: version, switches, links, underlay_mtu)",
    ]


def test_duplicate_yaml_key_is_an_error() -> None:
    text = "version: 1\nswitches:\n  hv1: {dpid: 1, role: hypervisor}\n" \
           "  hv1: {dpid: 2, role: hypervisor}\n"
    assert problems(text) == ["t.yaml:4: duplicate key 'hv1' (first on line 3)"]


def test_parallel_links_are_refused() -> None:
    text = """\
version: 1
switches:
  a: {dpid: 1, role: fabric}
  b: {dpid: 2, role: fabric}
links: [{a: "a:1", b: "b:1"}, {a: "b:2", b: "a:2"}]
"""
    assert problems(text) == [
        "t.yaml:5: link 2: a second link between a and b (link 1 is on line 5); "
        "parallel links are not supported"
    ]


def test_switch_names_are_bridge_names() -> None:
    ok = "version: 1\nswitches:\n  abcdefghijklmno: {dpid: 1, role: fabric}\n"
    assert list(parse_topology(ok, "t.yaml").switches) == ["abcdefghijklmno"]
    assert len(problems(ok.replace("abcdefghijklmno", "abcdefghijklmnop"))) == 1
