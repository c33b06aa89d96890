"""Live bindings from OVSDB: the rule on plain records, and the monitor on real OVSDB."""

from __future__ import annotations

import threading
import time

import pytest

from sdnctl.policy.load import load_policy
from sdnctl.southbound.ovsdb import (
    BindingSnapshot,
    InterfaceRecord,
    OvsdbMonitor,
    compute_bindings,
)
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import PortRef

POLICY = """\
version: 1
tenants:
  t1:
    default: deny
    segments:
      web: {vlan: 10, subnet: 10.9.10.0/24, gateway: 10.9.10.1}
    rules:
      - {from: any, to: any, allow: [icmp]}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:09:10:11", ip: 10.9.10.11, host: hv1}
  w2: {tenant: t1, segment: web, mac: "02:00:00:09:10:12", ip: 10.9.10.12, host: hv1}
"""


def topology_text(hv_dpid: int, leaf_dpid: int) -> str:
    return f"""\
version: 1
switches:
  hv1: {{dpid: {hv_dpid}, role: hypervisor}}
  leaf: {{dpid: {leaf_dpid}, role: fabric}}
links:
  - {{a: "hv1:10", b: "leaf:1"}}
"""


@pytest.fixture
def model(tmp_path):
    hv, leaf = 0x5D7000000001, 0x5D7000000002
    topo_path = tmp_path / "t.yaml"
    topo_path.write_text(topology_text(hv, leaf))
    pol_path = tmp_path / "p.yaml"
    pol_path.write_text(POLICY)
    topo = load_topology(topo_path)
    return load_policy(pol_path, topo), topo, hv


def rec(port: int, dpid: int = 0x5D7000000001, **ids: str) -> InterfaceRecord:
    return InterfaceRecord("br", dpid, f"if{port}", port, {k.replace("_", "-"): v
                                                          for k, v in ids.items()})


# ---- the rule (no OVS needed) --------------------------------------------------------


def test_vm_id_binds_and_everything_doubtful_does_not(model) -> None:
    policy, topo, hv = model
    snap = compute_bindings([
        rec(100, vm_id="w1"),
        rec(101, vm_id="w2", attached_mac="02:00:00:09:10:99"),  # MAC disagrees
        rec(102, vm_id="ghost"),  # not in the policy
        rec(10, vm_id="w2"),  # a fabric link port
        rec(103),  # no vm-id: not a VM port
        rec(104, dpid=0xABC, vm_id="w2"),  # a bridge of no switch of ours
        InterfaceRecord("br", hv, "if105", None, {"vm-id": "w2"}),  # no ofport yet
    ], policy, topo)
    assert dict(snap.bindings.ports) == {"w1": PortRef("hv1", 100)}
    reasons = {p.port: p.reason for p in snap.problems}
    assert set(reasons) == {101, 102, 10}
    assert "attached-mac" in reasons[101] and "no VM" in reasons[102] and "link" in reasons[10]


def test_a_vm_claimed_twice_is_bound_nowhere(model) -> None:
    policy, topo, _ = model
    snap = compute_bindings(
        [rec(100, vm_id="w1"), rec(101, vm_id="w1", attached_mac="02:00:00:09:10:11")],
        policy, topo,
    )
    assert dict(snap.bindings.ports) == {}
    assert {p.port for p in snap.problems} == {100, 101}


# ---- the monitor on real OVSDB -------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.snaps: list[tuple[float, BindingSnapshot]] = []
        self.lock = threading.Lock()

    def __call__(self, snap: BindingSnapshot) -> None:
        with self.lock:
            self.snaps.append((time.monotonic(), snap))

    def latest(self) -> BindingSnapshot | None:
        with self.lock:
            return self.snaps[-1][1] if self.snaps else None


@pytest.mark.ovs
def test_monitor_follows_ovs_vsctl_within_two_seconds(lab) -> None:
    hv, leaf = lab.random_dpid(), lab.random_dpid()
    topo_path = lab.write("t.yaml", topology_text(hv, leaf))
    pol_path = lab.write("p.yaml", POLICY)
    topo = load_topology(topo_path)
    policy = load_policy(pol_path, topo)
    bridge = lab.bridge(hv)
    p1 = lab.port(bridge, 100)
    p2 = lab.port(bridge, 101, vm_id="w2", attached_mac="02:00:00:09:10:12")
    other = lab.bridge(lab.random_dpid())  # not in the topology
    lab.port(other, 100, vm_id="w1")

    seen = Recorder()
    monitor = OvsdbMonitor("unix:/var/run/openvswitch/db.sock", policy, topo, seen)
    monitor.start()
    lab.cleanup.add("ovsdb monitor", monitor.stop)
    assert monitor.wait_ready(5)

    def bound() -> dict[str, PortRef]:
        snap = seen.latest()
        return dict(snap.bindings.ports) if snap else {}

    lab.wait_for(lambda: bound() == {"w2": PortRef("hv1", 101)}, 2, "w2 bound at hv1:101")

    start = time.monotonic()
    lab.sh(["ovs-vsctl", "set", "Interface", p1, "external_ids:vm-id=w1"])
    lab.wait_for(lambda: "w1" in bound(), 2, "w1 bound after set vm-id")
    assert bound()["w1"] == PortRef("hv1", 100)
    assert time.monotonic() - start < 2

    lab.sh(["ovs-vsctl", "set", "Interface", p1, "external_ids:vm-id=nobody"])
    lab.wait_for(lambda: "w1" not in bound(), 2, "w1 unbound after its vm-id changed")
    snap = seen.latest()
    assert snap is not None
    assert [(p.vm, p.port) for p in snap.problems] == [("nobody", 100)]

    lab.sh(["ovs-vsctl", "set", "Interface", p2, "external_ids:attached-mac=02:00:00:09:10:99"])
    lab.wait_for(lambda: "w2" not in bound(), 2, "w2 unbound when its attached-mac disagrees")

    lab.sh(["ovs-vsctl", "remove", "Interface", p2, "external_ids", "attached-mac"])
    lab.wait_for(lambda: "w2" in bound(), 2, "w2 bound again")
    lab.sh(["ovs-vsctl", "del-port", bridge, p2])
    lab.wait_for(lambda: "w2" not in bound(), 2, "w2 unbound when its port goes")
    assert monitor.snapshot() == seen.latest()
