"""The compiler's garbage-collector pause always ends, and ends as it began."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.gcpause import gc_paused
from sdnctl.policy.load import load_policy
from sdnctl.topology.load import load_topology

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_nested_pauses_end_with_the_outer_one():
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlapping_pauses_end_with_the_last_one():
    """Two threads' pauses overlap without nesting: the first to end must not turn the
    collector back on under the second (a pause that restores "what it saw" does)."""
    first, second = gc_paused(), gc_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_restored_when_the_body_raises():
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("compile failed")
    assert gc.isenabled()


def test_compiles_in_threads_leave_the_collector_on():
    topology = load_topology(ROOT / "topologies/three-tier.topology.yaml")
    policy = load_policy(ROOT / "topologies/three-tier.policy.yaml", topology)
    bindings = planned_bindings(policy, topology)
    results: list[int] = []

    def compile_once() -> None:
        results.append(len(compile_network(policy, topology, bindings)))

    threads = [threading.Thread(target=compile_once) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert gc.isenabled()
