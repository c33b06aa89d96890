"""The daemon on real Open vSwitch: it programs the switch, the data plane obeys the
policy with real packets between namespaces, it follows OVSDB binding changes, and a
restart on a programmed switch changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from fakeswitch import Ev, FakeDatapath
from netdata import POLICY

from sdnctl.client.api import get_flows, get_policy_text, get_status, wait_programmed

VMS = {  # name: (ofport, mac, ip/len, gateway)
    "w1": (100, "02:00:00:09:10:11", "10.9.10.11/24", "10.9.10.1"),
    "w2": (101, "02:00:00:09:10:12", "10.9.10.12/24", "10.9.10.1"),
    "d1": (102, "02:00:00:09:20:11", "10.9.20.11/24", "10.9.20.1"),
}


def setup_network(lab, bind: tuple[str, ...] = ("w1", "w2", "d1")):
    """hv1 as a fresh bridge, one namespace per VM (vm-id set for those in `bind`),
    policy and topology files, and the controller port the bridge dials."""
    dpid = lab.random_dpid()
    of_port = lab.free_port()
    topo = lab.write("topology.yaml", f"""\
        version: 1
        switches:
          hv1: {{dpid: {dpid}, role: hypervisor}}
        links: []
        """)
    policy = lab.write("policy.yaml", POLICY)
    bridge = lab.bridge(dpid, controller_port=of_port)
    vms = {
        name: lab.vm(bridge, ofport, mac, cidr, gw, vm_id=name if name in bind else None)
        for name, (ofport, mac, cidr, gw) in VMS.items()
    }
    return bridge, vms, policy, topo, of_port


def http(api: str, path: str, method: str = "GET") -> int:
    req = urllib.request.Request(f"http://{api}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_bad_input_is_refused_with_file_line_and_exit_2(tmp_path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text("version: 1\nswitches:\n  hv1: {dpid: 1, role: hypervisor}\nlinks: []\n")
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY.replace("vlan: 20", "vlan: 5000"))
    code = (
        "import sys; from sdnctl.daemon import run_daemon; "
        f"sys.exit(run_daemon({str(policy)!r}, {str(topo)!r}, api='127.0.0.1:1'))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert f"{policy}:7: " in res.stderr


@pytest.mark.ovs
def test_daemon_programs_the_switch_and_packets_obey_the_policy(lab) -> None:
    bridge, vms, policy, topo, of_port = setup_network(lab)
    # A bridge whose dpid is not in the topology: the daemon must leave it alone.
    stranger = lab.bridge(lab.random_dpid(), controller_port=of_port)
    lab.ofctl(stranger, "add-flow", "priority=7,actions=drop")

    daemon = lab.daemon(policy, topo, of_port=of_port)
    status = wait_programmed(daemon.api, ["hv1"], timeout=30)
    hv1 = status["switches"]["hv1"]
    assert hv1["connected"] and hv1["programmed"]
    assert hv1["flows"] == lab.flow_count(bridge) > 0
    assert hv1["flow_mods_sent"] == hv1["flows"]  # an empty switch: every flow is an add
    assert status["bindings"] == {"w1": "hv1:100", "w2": "hv1:101", "d1": "hv1:102"}
    assert status["policy"]["file"].endswith("policy.yaml")
    assert len(status["policy"]["sha256"]) == 64
    assert any(e["kind"] == "programmed" for e in status["events"])
    flows = get_flows(daemon.api, "hv1")
    assert flows["switch"] == "hv1" and len(flows["flows"]) == hv1["flows"]
    assert http(daemon.api, "/flows/nosuch") == 404
    assert http(daemon.api, "/nope") == 404
    assert http(daemon.api, "/status", "POST") == 405
    assert get_policy_text(daemon.api) == policy.read_text()

    lab.serve(vms["w1"], "tcp/80", "tcp/22")
    lab.serve(vms["d1"], "tcp/5432", "tcp/80")
    w1, w2, d1 = vms["w1"], vms["w2"], vms["d1"]
    expect = [
        (w2, w1.ip, "tcp/80", True),  # any -> web
        (w2, w1.ip, "icmp", True),
        (w2, w1.ip, "tcp/22", False),  # no rule
        (w1, d1.ip, "tcp/5432", True),  # web -> db, routed between segments
        (d1, w1.ip, "icmp", True),  # routed, any -> web
        (w1, d1.ip, "icmp", False),  # nothing allows icmp to db
        (w1, d1.ip, "tcp/80", False),  # nor tcp/80 to db
    ]
    got = [(src.ns, dst, svc, lab.probe(src, dst, svc)) for src, dst, svc, _ in expect]
    assert got == [(src.ns, dst, svc, want) for src, dst, svc, want in expect]

    assert "priority=7" in lab.ofctl(stranger, "dump-flows")  # untouched
    assert any(e["kind"] == "unknown-switch" for e in get_status(daemon.api)["events"])
    assert daemon.stop() == 0


@pytest.mark.ovs
def test_binding_change_in_ovsdb_updates_the_flows(lab) -> None:
    bridge, vms, policy, topo, of_port = setup_network(lab, bind=("w1",))
    daemon = lab.daemon(policy, topo, of_port=of_port)
    before = wait_programmed(daemon.api, ["hv1"], timeout=30)["switches"]["hv1"]
    w1, w2 = vms["w1"], vms["w2"]
    lab.serve(w1, "tcp/80")
    assert not lab.probe(w2, w1.ip, "tcp/80", timeout=1.0)  # w2 is no VM yet: dropped

    lab.sh(["ovs-vsctl", "set", "Interface", w2.port, "external_ids:vm-id=w2"])

    def w2_programmed():
        st = get_status(daemon.api)
        return st if st["bindings"].get("w2") == "hv1:101" and any(
            e["kind"] == "update" for e in st["events"]) else None

    after = lab.wait_for(w2_programmed, 3, "flows updated for w2")["switches"]["hv1"]
    assert after["flows"] > before["flows"]
    assert after["flow_mods_sent"] > before["flow_mods_sent"]
    assert after["flows"] == lab.flow_count(bridge)
    assert lab.probe(w2, w1.ip, "tcp/80")

    lab.sh(["ovs-vsctl", "set", "Interface", w2.port, "external_ids:vm-id=intruder"])
    st = lab.wait_for(lambda: (s := get_status(daemon.api))["unknown_ports"] and s, 3,
                      "intruder reported")
    assert st["unknown_ports"][0]["vm"] == "intruder" and "w2" not in st["bindings"]
    lab.wait_for(lambda: get_status(daemon.api)["switches"]["hv1"]["flows"]
                 == before["flows"] == lab.flow_count(bridge), 3, "w2's flows removed")
    assert not lab.probe(w2, w1.ip, "tcp/80", timeout=1.0)
    assert daemon.stop() == 0


@pytest.mark.ovs
def test_restart_on_a_programmed_switch_sends_no_flow_mods(lab) -> None:
    bridge, vms, policy, topo, of_port = setup_network(lab)
    first = lab.daemon(policy, topo, of_port=of_port)
    programmed = wait_programmed(first.api, ["hv1"], timeout=30)["switches"]["hv1"]
    assert programmed["flow_mods_sent"] > 0
    table = _flow_table(lab, bridge)

    assert first.stop() == 0  # SIGTERM: clean exit
    assert "stopped" in first.log_text()
    assert _flow_table(lab, bridge) == table  # fail_mode=secure keeps the flows
    lab.serve(vms["w1"], "tcp/80")
    assert lab.probe(vms["w2"], vms["w1"].ip, "tcp/80")  # and they still work, controller-less

    second = lab.daemon(policy, topo, of_port=of_port)
    status = wait_programmed(second.api, ["hv1"], timeout=30)
    hv1 = status["switches"]["hv1"]
    assert hv1["flow_mods_sent"] == 0
    assert hv1["flows"] == programmed["flows"]
    assert _flow_table(lab, bridge) == table
    msg = [e["message"] for e in status["events"] if e["kind"] == "programmed"]
    assert msg and "+0 ~0 -0 flows" in msg[-1]
    assert second.stop() == 0


def _flow_table(lab, bridge: str) -> list[str]:
    """Every flow without its counters and age: what would change if we touched it."""
    lines = lab.ofctl(bridge, "dump-flows", "--no-stats").splitlines()
    return sorted(line.strip() for line in lines if "actions=" in line)


def test_status_json_shape_is_stable() -> None:
    """The lab and `sdnctl status` read these keys; keep them."""
    from sdnctl.app.controller import SwitchState

    sw = SwitchState("hv1", 1).status()
    assert {"dpid", "connected", "programmed", "flows", "last_update",
            "flow_mods_sent"} <= set(sw)
    json.dumps(sw)


# ---- the app's bookkeeping, driven by hand (no switch, no os-ken event loop) ----------


def _app(tmp_path, bind: dict[str, int]):
    from types import MappingProxyType

    from sdnctl.app.controller import ControllerApp, ControllerState, PolicyInfo
    from sdnctl.bindings import Bindings
    from sdnctl.policy.load import load_policy
    from sdnctl.southbound.ovsdb import BindingSnapshot
    from sdnctl.topology.load import load_topology
    from sdnctl.topology.model import PortRef

    (tmp_path / "t.yaml").write_text(
        "version: 1\nswitches:\n  hv1: {dpid: 7, role: hypervisor}\nlinks: []\n")
    (tmp_path / "p.yaml").write_text(POLICY)
    topo = load_topology(tmp_path / "t.yaml")
    policy = load_policy(tmp_path / "p.yaml", topo)

    def snap(b: dict[str, int]) -> BindingSnapshot:
        return BindingSnapshot(Bindings(MappingProxyType(
            {vm: PortRef("hv1", port) for vm, port in b.items()})))

    state = ControllerState(policy, topo, PolicyInfo("p.yaml", "0" * 64, 0.0), snap(bind))
    return ControllerApp(sdnctl_state=state), state, snap


def _connect(app, dp, state_flows=()) -> None:
    """Switch features, then empty (or given) flow/group/meter stats replies."""
    app._features(Ev(msg=Ev(datapath=dp)))
    assert dp.take() == ["OFPFlowStatsRequest", "OFPGroupDescStatsRequest",
                         "OFPMeterConfigStatsRequest"]
    for handler, body in ((app._flow_stats, list(state_flows)), (app._group_desc, []),
                          (app._meter_config, [])):
        handler(Ev(msg=Ev(datapath=dp, body=body, flags=0)))


def _barrier(app, dp, xid: int) -> None:
    app._barrier(Ev(msg=Ev(datapath=dp, xid=xid)))


def test_app_programs_once_and_queues_changes_behind_the_barrier(tmp_path) -> None:
    from sdnctl.app.controller import EventBindings

    app, state, snap = _app(tmp_path, {"w1": 100})
    sw = state.switches["hv1"]
    dp = FakeDatapath(7)
    _connect(app, dp)
    sent = dp.take()
    # w1's DHCP meter, the switch's and its connection-log meter: before the bundle.
    meters = len(sw.desired.meters)
    assert meters == 3 and sent[:meters] == ["OFPMeterMod"] * meters
    sent = sent[meters:]
    assert sent[0] == "ONFBundleCtrlMsg" and sent[-2] == "ONFBundleCtrlMsg"
    assert sent[-1] == "OFPBarrierRequest" and set(sent[1:-2]) == {"ONFBundleAddMsg"}
    assert sw.flow_mods_sent == len(sw.desired.flows) == len(sent) - 3
    first_barrier = sw.batch.barrier_xid
    assert not sw.programmed

    # A binding change while the first update is in flight waits for its barrier.
    app._bindings_changed(EventBindings(snap({"w1": 100, "w2": 101})))
    assert dp.take() == [] and sw.dirty
    _barrier(app, dp, first_barrier)
    assert sw.programmed
    sent = dp.take()
    assert sent and sent[-1] == "OFPBarrierRequest"  # the queued diff went out at once
    _barrier(app, dp, sw.batch.barrier_xid)
    assert sw.installed == sw.desired and sw.batch is None
    assert [e["kind"] for e in state.history.events] == ["connect", "bindings", "programmed",
                                                         "update"]


def test_a_rejected_update_unprograms_and_rereads_the_switch(tmp_path) -> None:
    from os_ken.ofproto import ofproto_v1_3 as ofp

    from sdnctl.app.controller import EventBindings

    app, state, snap = _app(tmp_path, {"w1": 100})
    sw = state.switches["hv1"]
    dp = FakeDatapath(7)
    _connect(app, dp)
    # The first flow-mod (after the meters and the bundle's opening).
    xids = [m.xid for m in dp.sent if type(m).__name__ != "OFPMeterMod"]
    dp.take()
    app._error(Ev(msg=Ev(datapath=dp, xid=xids[1], type=ofp.OFPET_BAD_ACTION, code=4)))
    _barrier(app, dp, sw.batch.barrier_xid)
    assert not sw.programmed and sw.needs_dump and sw.installed.flows == ()  # as dumped
    assert "OFPBAC_BAD_OUT_PORT" in state.history.events[-1]["message"]
    assert "add-flow" in state.history.events[-1]["message"]  # names the refused flow
    # The next change first reads the switch again instead of trusting a guess.
    app._bindings_changed(EventBindings(snap({"w1": 100, "w2": 101})))
    assert dp.take() == ["OFPFlowStatsRequest", "OFPGroupDescStatsRequest",
                         "OFPMeterConfigStatsRequest"]


def test_a_disconnect_forgets_the_connection_and_unknown_dpids_are_left_alone(tmp_path) -> None:
    app, state, _ = _app(tmp_path, {})
    stranger = FakeDatapath(99)
    app._features(Ev(msg=Ev(datapath=stranger)))
    assert stranger.take() == []
    assert state.history.events[-1]["kind"] == "unknown-switch"
    dp = FakeDatapath(7)
    _connect(app, dp)
    ofp = dp.ofproto
    desc = Ev(port_no=100, name=b"tap1", state=ofp.OFPPS_LINK_DOWN, config=0)
    app._port_status(Ev(msg=Ev(datapath=dp, desc=desc, reason=ofp.OFPPR_MODIFY)))
    assert state.status()["switches"]["hv1"]["ports_down"] == [100]
    assert state.history.events[-1]["message"] == "hv1 port 100 (tap1) modified, link down"
    app._dead(Ev(datapath=dp))
    sw = state.switches["hv1"]
    assert not sw.connected and not sw.programmed and sw.batch is None
    assert state.status()["switches"]["hv1"]["connected"] is False


@pytest.mark.ovs
def test_check_live_reports_sprawl_from_the_daemon(lab) -> None:
    """`sdnctl check --live`: VMs of the policy that are not bound, ports bound to no VM
    and ports claiming a VM the policy does not name, as the running daemon sees them."""
    bridge, vms, policy, topo, of_port = setup_network(lab, bind=("w1",))
    daemon = lab.daemon(policy, topo, of_port=of_port)
    wait_programmed(daemon.api, ["hv1"], timeout=30)
    lab.sh(["ovs-vsctl", "set", "Interface", vms["d1"].port, "external_ids:vm-id=ghost"])
    lab.wait_for(lambda: get_status(daemon.api)["unknown_ports"], 3, "ghost reported")

    def check(*extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "sdnctl.cli", "check", "-p", str(policy), "-t", str(topo),
             "--live", "--api", daemon.api, *extra],
            capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    status = get_status(daemon.api)
    assert status["vms"]["w1"]["unbound_since"] is None
    assert status["vms"]["w2"]["unbound_since"] is not None
    assert [p["port"] for p in status["unclaimed_ports"]] == [101]

    fresh = check()  # default --stale-after 7d: nothing has been unbound that long
    assert "has not been bound" not in fresh
    assert f"port hv1:101 ({vms['w2'].port}) is bound to no VM" in fresh
    assert f"port hv1:102 ({vms['d1'].port}) claims vm-id=ghost" in fresh

    stale = check("--stale-after", "0s")
    unbound = sorted(n for n in status["vms"] if n != "w1")
    for name in unbound:
        assert f"VM {name} has not been bound for at least" in stale
    assert "VM w1 " not in stale
    assert daemon.stop() == 0
