"""Every file under broken/ is refused with exactly the problems its `# expect:` lines name.

Each file starts with one `# expect: LINE: message` comment per problem. Policies
are loaded against topologies/three-tier.topology.yaml (so `host` is checked);
files under broken/topology/ are topology files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sdnctl.policy.load import load_policy
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import Topology
from sdnctl.yamlsrc import LoadError

HERE = Path(__file__).parent
BROKEN = HERE / "broken"
REPO = HERE.parent.parent
EXPECT_RE = re.compile(r"^# expect: (\d+): (.+)$")

POLICIES = sorted(BROKEN.glob("*.yaml"))
TOPOLOGIES = sorted((BROKEN / "topology").glob("*.yaml"))


def expected(path: Path) -> set[str]:
    found = set()
    for line in path.read_text().splitlines():
        match = EXPECT_RE.match(line)
        if match:
            found.add(f"{path}:{match.group(1)}: {match.group(2)}")
    assert found, f"{path} has no '# expect: LINE: message' line"
    return found


@pytest.fixture(scope="module")
def three_tier() -> Topology:
    return load_topology(REPO / "topologies" / "three-tier.topology.yaml")


def test_the_corpus_is_big_enough() -> None:
    assert len(POLICIES) >= 40
    assert len(TOPOLOGIES) >= 5


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_broken_policy(path: Path, three_tier: Topology) -> None:
    with pytest.raises(LoadError) as caught:
        load_policy(str(path), three_tier)
    assert {str(p) for p in caught.value.problems} == expected(path)


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_broken_topology(path: Path) -> None:
    with pytest.raises(LoadError) as caught:
        load_topology(str(path))
    assert {str(p) for p in caught.value.problems} == expected(path)


def test_problems_come_sorted_by_line(three_tier: Topology) -> None:
    with pytest.raises(LoadError) as caught:
        load_policy(BROKEN / "many-problems.yaml", three_tier)
    lines = [p.line for p in caught.value.problems]
    assert lines == sorted(lines)
    assert str(caught.value).splitlines() == [str(p) for p in caught.value.problems]
