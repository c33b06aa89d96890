"""SwitchState owns its transitions (sdnctl/live/state.py): a new connection and a
lost one reset the same things, an update's barrier ends it, and nothing outside
the class writes its fields."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from sdnctl.flows import FlowSet
from sdnctl.live.reads import Read
from sdnctl.live.state import Batch, SwitchState

PKG = Path(__file__).resolve().parents[2] / "sdnctl"
# The code that holds SwitchStates: the app, the daemon, the state's readers.
HOLDERS = ["app", "live", "dashboard", "daemon.py", "api.py", "metrics.py"]
# What outlives a connection: what it should and does hold, counters, role history.
KEPT = {"name", "dpid", "desired", "installed", "foreign", "flow_mods_sent", "last_update",
        "last_update_s", "updates", "last_flow_mods", "packet_ins", "role_generation",
        "role_at"}
CONNECTION = {"datapath", "connected_at", "connected_since", "address", "pending_since"}


class Ask:
    master, generation = True, 3


def busy_switch() -> tuple[SwitchState, Read]:
    """A switch in the middle of everything a connection can be doing."""
    sw = SwitchState("hv1", 1)
    sw.on_connect(object(), "10.0.0.1:40000")
    sw.want(FlowSet.of("hv1", ()), 1.0)
    sw.start_dump()
    sw.collect_dump("flows", ["part"], more=True)
    sw.collect_ports(["port-part"], more=True)
    sw.hold_for_ports()
    sw.on_port_status(7, up=False)
    sw.on_sent(Batch(None, FlowSet.of("hv1", ()), {}, 99, 1.0, "x", 1.0), 5, [])
    sw.mark_dirty()
    sw.unprogram(reread=True)
    sw.on_role_asked(12, Ask())
    read = Read("hv1", {"flows"}, lambda _r: None)
    sw.add_read(13, read)
    sw.add_read(14, read)
    sw.start_poll()
    sw.on_packet_in()
    return sw, read


def differences(a: SwitchState, b: SwitchState, skip: set[str]) -> dict[str, tuple]:
    return {f.name: (getattr(a, f.name), getattr(b, f.name))
            for f in dataclasses.fields(SwitchState)
            if f.name not in skip and getattr(a, f.name) != getattr(b, f.name)}


def test_a_lost_connection_leaves_nothing_of_itself() -> None:
    sw, read = busy_switch()
    assert sw.on_disconnect() == [read]  # once, though it waited on two requests
    assert not sw.connected
    assert differences(sw, SwitchState("hv1", 1), KEPT) == {}


def test_a_new_connection_starts_from_the_same_clean_slate() -> None:
    sw, read = busy_switch()
    dp = object()
    assert sw.on_connect(dp, "10.0.0.1:40001") == [read]  # a reconnect without a loss seen
    assert sw.datapath is dp and sw.address == "10.0.0.1:40001"
    assert sw.pending_since is not None  # its first update counts from the connection
    assert differences(sw, SwitchState("hv1", 1), KEPT | CONNECTION) == {}
    assert sw.packet_ins == 1 and sw.flow_mods_sent == 5  # counters go on


def test_a_barrier_ends_its_own_update_only() -> None:
    sw = SwitchState("hv1", 1)
    sw.on_connect(object(), "a:1")
    target = FlowSet.of("hv1", ())
    batch = Batch(None, target, {}, 42, 10.0, "1 add", since=9.0)
    sw.on_sent(batch, 1, [])
    assert sw.on_barrier(41) is None and sw.batch is batch
    assert sw.on_barrier(42) is batch and sw.batch is None
    assert sw.on_update_done(batch, now=9.5) is True  # the first: now programmed
    assert sw.programmed and sw.installed is target and sw.updates == 1
    assert sw.last_update_s == 0.5
    assert sw.on_update_done(batch, now=9.5) is False


def test_a_failed_update_reads_the_switch_again() -> None:
    sw = SwitchState("hv1", 1)
    sw.on_connect(object(), "a:1")
    before = FlowSet.of("hv1", ())
    batch = Batch(before, FlowSet.of("hv1", ()), {}, 7, 10.0, "", since=3.0)
    sw.on_sent(batch, 1, [])
    sw.on_error("hv1: switch error BAD_MATCH")
    assert batch.errors == ["hv1: switch error BAD_MATCH"]
    sw.take_pending_since(10.0)
    sw.on_update_failed(sw.on_barrier(7))
    assert not sw.programmed and sw.needs_dump and sw.installed is before
    assert sw.pending_since == 3.0  # the change still waits, from when it was seen


def test_nothing_outside_writes_a_switch_states_fields() -> None:
    fields = {f.name for f in dataclasses.fields(SwitchState)}
    offenders = []
    files = [p for entry in HOLDERS
             for p in (sorted((PKG / entry).rglob("*.py")) if (PKG / entry).is_dir()
                       else [PKG / entry])]
    assert len(files) > 8
    for path in files:
        if path == PKG / "live" / "state.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = (node.targets if isinstance(node, ast.Assign) else
                       [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else [])
            for target in targets:
                for t in ast.walk(target):
                    if (isinstance(t, ast.Attribute) and t.attr in fields
                            and not (isinstance(t.value, ast.Name) and t.value.id == "self")):
                        offenders.append(f"{path.relative_to(PKG)}:{t.lineno}: "
                                         f"{ast.unparse(t)}")
    assert offenders == []
