"""The daemon's state compiles with its lock released: readers keep answering."""

from __future__ import annotations

import threading
from types import MappingProxyType

from sdnctl.bindings import Bindings
from sdnctl.compile.incremental import IncrementalCompiler
from sdnctl.live.state import ControllerState, PolicyInfo
from sdnctl.southbound.ovsdb import BindingSnapshot
from sdnctl.topology.model import PortRef
from tests.unit.test_incremental import _two_tenants_apart


def test_status_answers_while_a_handler_compiles() -> None:
    policy, topo, bindings = _two_tenants_apart()
    started, release = threading.Event(), threading.Event()
    inner = IncrementalCompiler()

    def slow(*args, **kwargs):
        started.set()
        assert release.wait(10), "the test never released the compile"
        return inner(*args, **kwargs)

    state = ControllerState(policy, topo, PolicyInfo("p", "", 0.0),
                            snapshot=BindingSnapshot(bindings), compile_fn=slow)
    release.set()
    state.recompile()
    hv3_before = state.status()["switches"]["hv3"]["flows"]
    release.clear()
    started.clear()
    moved = Bindings(MappingProxyType(dict(bindings.ports, a=PortRef("hv3", 100))))
    result: list[object] = []

    def handler() -> None:  # an app handler: holds the lock, as `_locked` does
        with state.lock, state.lock:  # re-entered, as nested handlers do
            state.snapshot = BindingSnapshot(moved)
            result.append(state.recompile())
            assert state.lock._is_owned()  # held again after the compile

    worker = threading.Thread(target=handler)
    worker.start()
    assert started.wait(5)
    answered: list[object] = []
    reader = threading.Thread(target=lambda: answered.append(state.status()))
    reader.start()
    reader.join(5)
    assert answered, "status() blocked behind the compile"
    release.set()
    worker.join(10)
    # What the switches should hold moved only when the compile was swapped in.
    assert answered[0]["switches"]["hv3"]["flows"] == hv3_before
    assert [sw.name for sw in result[0]] == ["hv1", "hv3"]
    assert state.status()["switches"]["hv3"]["flows"] > hv3_before
