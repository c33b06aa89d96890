"""Pictures: the topology graph and the reachability heat maps."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdnctl.bindings import planned_bindings
from sdnctl.cli import main
from sdnctl.policy.load import load_policy
from sdnctl.render.matrix import LEAK, write_lab_heatmap, write_plan_heatmap
from sdnctl.render.topology_dot import topology_dot
from sdnctl.topology.load import load_topology

ROOT = Path(__file__).resolve().parents[2] / "topologies"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_dot_names_every_switch_link_and_vm():
    topo = load_topology(ROOT / "leaf-spine.topology.yaml")
    policy = load_policy(ROOT / "leaf-spine.policy.yaml", topo)
    dot = topology_dot(topo, policy, planned_bindings(policy, topo))
    for name in topo.switches:
        assert f'"sw:{name}"' in dot
    for name in policy.vms:
        assert f'"vm:{name}"' in dot
    assert dot.count(" -- ") == len(topo.links) + len(policy.vms)
    assert "red/mgmt vlan 103 (not routed)" in dot


@pytest.mark.needs("dot")
@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_graph_command_writes_a_picture(tmp_path, suffix, capsys):
    out = tmp_path / f"t.{suffix}"
    code = main(["graph", "-p", str(ROOT / "three-tier.policy.yaml"),
                 "-t", str(ROOT / "three-tier.topology.yaml"), "-o", str(out)])
    assert code == 0
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) if suffix == "png" else b"<svg" in data


def _count(path: Path, colour: tuple[int, int, int]) -> int:
    """Pixels of exactly `colour` in a PNG."""
    import matplotlib.image

    img = matplotlib.image.imread(path)
    return sum(tuple(int(round(c * 255)) for c in px[:3]) == colour for row in img for px in row)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_lab_heatmap_shows_a_leak_in_red(tmp_path):
    probes = [
        {"src": "a", "dst": "b", "service": "tcp/80", "reached": True, "expected": True},
        {"src": "b", "dst": "a", "service": "tcp/80", "reached": False, "expected": False},
    ]
    clean, leaky = tmp_path / "clean.png", tmp_path / "leak.png"
    write_lab_heatmap(probes, clean)
    write_lab_heatmap([*probes, {"src": "b", "dst": "a", "service": "tcp/22", "reached": True,
                                 "expected": False}], leaky)
    assert clean.read_bytes().startswith(PNG_MAGIC)
    # The legend shows a small red patch in both; only the leaky one has a red cell.
    assert _count(leaky, _rgb(LEAK)) > 10 * _count(clean, _rgb(LEAK))


def test_plan_heatmap_renders(tmp_path):
    out = tmp_path / "plan.svg"
    write_plan_heatmap([("a", "b", "udp/53")], [("b", "a", "tcp/22")], ["a", "b"], out)
    assert b"<svg" in out.read_bytes()
