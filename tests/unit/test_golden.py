"""Golden files of compiled flows, keyed by stage name (never by table number).

Regenerate after an intended change with: SDNCTL_REGEN_GOLDEN=1 pytest tests/unit/test_golden.py
and read the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flows import render_flow_named
from sdnctl.pipeline import PIPELINE
from sdnctl.policy.load import load_policy
from sdnctl.topology.load import load_topology

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
CASES = [("three-tier", "hv1"), ("three-tier", "leaf"), ("leaf-spine", "hv3")]


def render_by_stage(name: str, switch: str) -> dict[str, str]:
    topo = load_topology(ROOT / "topologies" / f"{name}.topology.yaml")
    policy = load_policy(ROOT / "topologies" / f"{name}.policy.yaml", topo)
    fs = compile_network(policy, topo, planned_bindings(policy, topo))[switch]
    return {
        stage.name: "".join(render_flow_named(f) + "\n" for f in fs.in_stage(stage.name))
        for stage in PIPELINE
    }


@pytest.mark.parametrize(("name", "switch"), CASES)
def test_flows_per_stage_match_the_golden_files(name, switch):
    for stage, text in render_by_stage(name, switch).items():
        path = GOLDEN / name / switch / f"{stage}.flows"
        if os.environ.get("SDNCTL_REGEN_GOLDEN"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert path.read_text() == text, f"{path} differs"
