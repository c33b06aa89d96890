"""Whatever the input, the loaders return a model or raise LoadError with `file:line:` problems.

Never a traceback: random YAML-shaped documents (built from the real keys and
plausible values, so they get past the first checks), random text, and random
edits of the example files.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdnctl.policy.lint import lint_policy
from sdnctl.policy.load import (
    GROUP_KEYS,
    RULE_KEYS,
    SEGMENT_KEYS,
    TENANT_KEYS,
    TOP_KEYS,
    VM_KEYS,
    parse_policy,
)
from sdnctl.topology.load import LINK_KEYS, SWITCH_KEYS, UPLINK_KEYS, parse_topology
from sdnctl.topology.load import TOP_KEYS as TOPOLOGY_KEYS
from sdnctl.topology.model import Topology
from sdnctl.yamlsrc import LoadError

TOPOLOGIES = Path(__file__).resolve().parent.parent.parent / "topologies"
SOURCE = "fuzz.yaml"
PROBLEM_RE = re.compile(rf"^{re.escape(SOURCE)}:\d+: \S.*$", re.S)
# SDNCTL_FUZZ_EXAMPLES=5000 for a longer hunt; the default keeps the suite fast.
FUZZ = settings(
    max_examples=int(os.environ.get("SDNCTL_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

THREE_TIER = (TOPOLOGIES / "three-tier.topology.yaml").read_text()
EXAMPLES = [
    (TOPOLOGIES / f"{name}.policy.yaml").read_text()
    for name in ("three-tier", "leaf-spine", "single", "northsouth")
]
TOPOLOGY_EXAMPLES = [
    (TOPOLOGIES / f"{name}.topology.yaml").read_text()
    for name in ("three-tier", "leaf-spine", "single", "northsouth")
]

KEYS = sorted({*TOP_KEYS, *TENANT_KEYS, *SEGMENT_KEYS, *GROUP_KEYS, *RULE_KEYS, *VM_KEYS,
               *TOPOLOGY_KEYS, *SWITCH_KEYS, *LINK_KEYS, *UPLINK_KEYS,
               "acme", "web", "app", "web1", "tier", "hv1", "leaf", "any"})
PLAUSIBLE = ["acme", "web", "web1", "any", "allow", "deny", "tcp/80", "icmp", "udp/1-2",
             "10.1.10.0/24", "10.1.10.11", "10.1.10.1", "02:00:00:00:10:11", "hv1", "leaf",
             "hv1:10", "leaf:1", "hypervisor", "fabric", "tier", "gateway", "external",
             "203.0.113.2/24", "203.0.113.1", "198.51.100.0/24", "203.0.113.10-203.0.113.12"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=0, max_value=5000),
    st.floats(allow_nan=True), st.text(max_size=12), st.sampled_from(PLAUSIBLE),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(), st.none(),
                 st.booleans())
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(keys, inner, max_size=5)),
    max_leaves=30,
)


@functools.cache
def topology() -> Topology:
    """The three-tier lab's, plus a gateway: NAT addresses get checked against it."""
    gateway = ("  border1: {dpid: 0x31, role: gateway,\n"
               "            uplink: {port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.1}}\n"
               "links:")
    return parse_topology(THREE_TIER.replace("links:", gateway, 1), "three-tier.topology.yaml")


def check(parse: Callable[[str], Any], text: str) -> None:
    """`parse` returns, or raises LoadError whose problems all read `fuzz.yaml:N: ...`."""
    try:
        result = parse(text)
    except LoadError as exc:
        assert exc.problems, "a LoadError must say what is wrong"
        for problem in exc.problems:
            assert PROBLEM_RE.match(str(problem)), str(problem)
    else:
        if hasattr(result, "vms"):
            lint_policy(result)  # warnings on whatever loaded must not crash either


def parse_any_policy(text: str) -> Any:
    return parse_policy(text, SOURCE, topology())


def parse_any_topology(text: str) -> Any:
    return parse_topology(text, SOURCE)


def dump(doc: Any, flow: bool) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: faster
    return yaml.dump(doc, Dumper=dumper, default_flow_style=flow, allow_unicode=True)


@FUZZ
@given(doc=documents, flow=st.booleans())
def test_random_documents(doc: Any, flow: bool) -> None:
    check(parse_any_policy, dump(doc, flow))
    check(parse_any_topology, dump(doc, flow))


@FUZZ
@given(tenants=documents, vms=documents, switches=documents, links=documents)
def test_random_sections(tenants: Any, vms: Any, switches: Any, links: Any) -> None:
    check(parse_any_policy, dump({"version": 1, "tenants": tenants, "vms": vms}, False))
    check(parse_any_topology, dump({"version": 1, "switches": switches, "links": links}, False))


@FUZZ
@given(text=st.text(max_size=200))
def test_random_text(text: str) -> None:
    check(parse_any_policy, text)
    check(parse_any_topology, text)


@st.composite
def perturbed(draw: st.DrawFn, examples: list[Any]) -> str:
    """An example document with a few of its values (at any depth) replaced by random ones."""
    doc = copy.deepcopy(draw(st.sampled_from(examples)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        doc = replace_somewhere(draw, doc)
    return dump(doc, draw(st.booleans()))


def replace_somewhere(draw: st.DrawFn, node: Any) -> Any:
    """`node` with one value somewhere inside it replaced, or a key added or removed."""
    children = list(node) if isinstance(node, dict) else list(range(len(node))) \
        if isinstance(node, list) else []
    if not children or draw(st.integers(min_value=0, max_value=4)) == 0:
        return draw(documents)
    if isinstance(node, dict) and draw(st.integers(min_value=0, max_value=5)) == 0:
        if draw(st.booleans()):
            del node[draw(st.sampled_from(children))]
        else:
            node[draw(keys)] = draw(documents)
        return node
    child = draw(st.sampled_from(children))
    node[child] = replace_somewhere(draw, node[child])
    return node


@FUZZ
@given(text=perturbed([yaml.safe_load(text) for text in EXAMPLES]))
def test_perturbed_example_policies(text: str) -> None:
    check(parse_any_policy, text)


@FUZZ
@given(text=perturbed([yaml.safe_load(text) for text in TOPOLOGY_EXAMPLES]))
def test_perturbed_example_topologies(text: str) -> None:
    check(parse_any_topology, text)


@st.composite
def mutated(draw: st.DrawFn, examples: list[str]) -> str:
    """An example file after a few line deletions/duplications and character edits."""
    lines = draw(st.sampled_from(examples)).splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["delete", "duplicate", "replace", "insert"]))
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1)) if lines else 0
        if not lines:
            break
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        else:
            line = lines[i]
            j = draw(st.integers(min_value=0, max_value=len(line)))
            char = draw(st.one_of(st.sampled_from(list(" :-,{}[]#\"'\t\n0123456789abcxyz/.")),
                                  st.characters()))
            end = j + 1 if op == "replace" else j
            lines[i] = line[:j] + char + line[end:]
    return "".join(lines)


@FUZZ
@given(text=mutated(EXAMPLES))
def test_mutated_example_policies(text: str) -> None:
    check(parse_any_policy, text)


@FUZZ
@given(text=mutated(TOPOLOGY_EXAMPLES))
def test_mutated_example_topologies(text: str) -> None:
    check(parse_any_topology, text)
