"""Sprawl warnings from the daemon's view of bindings over time, and the OVSDB rule
that finds ports bound to no VM."""

from __future__ import annotations

import time
from types import MappingProxyType

import pytest

from sdnctl.bindings import Bindings, planned_bindings
from sdnctl.live.state import ControllerState, PolicyInfo
from sdnctl.policy.load import load_policy
from sdnctl.policy.sprawl import parse_duration, sprawl_warnings
from sdnctl.southbound.ovsdb import BindingSnapshot, InterfaceRecord, compute_bindings
from sdnctl.topology.load import load_topology

TOPO = "topologies/three-tier.topology.yaml"
POLICY = "topologies/three-tier.policy.yaml"
DAY = 86400.0


def _state():
    topo = load_topology(TOPO)
    policy = load_policy(POLICY, topo)
    planned = planned_bindings(policy, topo)
    return policy, topo, planned


def test_unbound_vms_are_reported_once_stale_with_their_line():
    policy, topo, planned = _state()
    gone = sorted(planned.ports)[0]
    kept = {n: r for n, r in planned.ports.items() if n != gone}
    state = ControllerState(policy, topo, PolicyInfo(POLICY, "", 0.0),
                            snapshot=BindingSnapshot(Bindings(MappingProxyType(kept))))
    state.recompile()
    status = state.status()
    assert status["vms"][gone]["unbound_since"] is not None
    assert all(status["vms"][n]["unbound_since"] is None for n in kept)

    now = time.time()
    assert sprawl_warnings(policy, status, stale_after_s=DAY, now=now) == []
    later = sprawl_warnings(policy, status, stale_after_s=DAY, now=now + 2 * DAY)
    assert [w.line for w in later] == [policy.vms[gone].line]
    assert f"VM {gone} has not been bound for at least 2.0 d" in later[0].message
    assert later[0].file == policy.source

    # Bound again: the clock stops; unbound again: it restarts from then.
    state.snapshot = BindingSnapshot(planned)
    state.recompile()
    assert state.status()["vms"][gone]["unbound_since"] is None


def test_ovsdb_ports_without_vm_id_on_hypervisors_are_unclaimed():
    policy, topo, _ = _state()
    hv = next(s for s in topo.switches.values() if s.role.value == "hypervisor")
    fabric = next(s for s in topo.switches.values() if s.role.value != "hypervisor")
    link_port = min(topo.link_ports(hv.name))
    records = [
        InterfaceRecord("br", hv.dpid, "tap-stray", 150),  # plugged, bound to nothing
        InterfaceRecord("br", hv.dpid, "vx0", 151, kind="vxlan"),  # a tunnel: not a VM
        InterfaceRecord("br", hv.dpid, "br", 65534, kind="internal"),  # LOCAL
        InterfaceRecord("br", hv.dpid, "uplink", link_port),  # a fabric link
        InterfaceRecord("fab", fabric.dpid, "fab-p9", 9),  # fabric ports are not VMs
        InterfaceRecord("br", hv.dpid, "tap-new", None),  # no ofport yet
    ]
    snap = compute_bindings(records, policy, topo)
    assert [(p.switch, p.port, p.interface) for p in snap.unclaimed] == [
        (hv.name, 150, "tap-stray")]
    assert snap.problems == ()


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("5", 5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "-1h", "soon"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)
