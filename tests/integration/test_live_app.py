"""The app's live-change bookkeeping, driven by hand (no switch, no os-ken event loop):
reloads and refusals, link debounce, the port description before a first update,
holding switches until OVSDB answers, and a topology reload adopting a switch."""

from __future__ import annotations

import time
from types import MappingProxyType

from fakeswitch import Ev, FakeDatapath
from os_ken.controller.handler import CONFIG_DISPATCHER
from os_ken.ofproto import ofproto_v1_3

from sdnctl.app.controller import ControllerApp, EventSources
from sdnctl.bindings import Bindings
from sdnctl.live.sources import FileVersion, load_sources
from sdnctl.live.state import ControllerState, PolicyInfo
from sdnctl.live.watch import Change
from sdnctl.southbound.ovsdb import BindingSnapshot
from sdnctl.topology.model import PortRef

ofp = ofproto_v1_3
TOPOLOGY = """\
version: 1
switches:
  hv1: {dpid: 1, role: hypervisor}
  hv2: {dpid: 2, role: hypervisor}
  leaf: {dpid: 3, role: fabric}
links:
  - {a: "hv1:10", b: "hv2:10"}
  - {a: "hv1:11", b: "leaf:1"}
  - {a: "hv2:11", b: "leaf:2"}
"""
POLICY = """\
version: 1
tenants:
  t1:
    segments:
      web: {vlan: 10, subnet: 10.9.10.0/24}
    rules:
      - {from: any, to: any, allow: [icmp]}
vms:
  a: {tenant: t1, segment: web, mac: "02:00:00:09:10:11", ip: 10.9.10.11, host: hv1}
  b: {tenant: t1, segment: web, mac: "02:00:00:09:10:12", ip: 10.9.10.12, host: hv2}
"""
WITH_TCP = POLICY.replace("[icmp]", "[icmp, tcp/80]")


def version(path: str, text: str) -> FileVersion:
    return FileVersion(path, text.encode(), time.time())


def make_app(policy_text: str = POLICY, ready: bool = True):
    src = load_sources(version("p.yaml", policy_text), version("t.yaml", TOPOLOGY))
    bindings = Bindings(MappingProxyType({"a": PortRef("hv1", 100), "b": PortRef("hv2", 100)}))
    info = PolicyInfo("p.yaml", src.policy_file.sha256, 0.0, policy_text)
    topo_info = PolicyInfo("t.yaml", src.topology_file.sha256, 0.0, TOPOLOGY)
    state = ControllerState(src.policy, src.topology, info, BindingSnapshot(bindings),
                            topology_info=topo_info)
    state.bindings_ready = ready
    return ControllerApp(sdnctl_state=state), state


def port(no: int, live: bool = True) -> Ev:
    return Ev(port_no=no, name=f"p{no}".encode(), config=0,
              state=ofp.OFPPS_LIVE if live else ofp.OFPPS_LINK_DOWN)


def connect(app, dp, ports=None) -> None:
    """Features, an empty dump, and (when given) the port description."""
    app._features(Ev(msg=Ev(datapath=dp)))
    for handler in (app._flow_stats, app._group_desc, app._meter_config):
        handler(Ev(msg=Ev(datapath=dp, body=[], flags=0)))
    if ports is not None:
        app._port_desc(Ev(msg=Ev(datapath=dp, body=ports, flags=0)))


def ack(app, dp) -> None:
    """The barrier reply to the update in flight."""
    sw = app._switch_of(dp)
    app._barrier(Ev(msg=Ev(datapath=dp, xid=sw.batch.barrier_xid)))


def program_all(app) -> dict[str, FakeDatapath]:
    dps = {"hv1": FakeDatapath(1), "hv2": FakeDatapath(2), "leaf": FakeDatapath(3)}
    for name, dp in dps.items():
        connect(app, dp, [port(10), port(11), port(100)] if name != "leaf" else [port(1),
                                                                                  port(2)])
        ack(app, dp)
        dp.take()
    return dps


def change(*texts: str, forced: bool = False) -> Change:
    files = (version("p.yaml", texts[0]), version("t.yaml", texts[1] if len(texts) > 1
                                                  else TOPOLOGY))
    return Change(files, ("p.yaml",), forced, time.monotonic())


def test_a_valid_edit_sends_the_minimal_diff_and_is_acknowledged() -> None:
    app, state = make_app()
    dps = program_all(app)
    mods_before = state.switches["hv2"].flow_mods_sent
    ch = change(WITH_TCP)
    app._sources_changed(EventSources(load_sources(*ch.files), [], ch))
    assert state.policy_info.text == WITH_TCP
    sent = dps["hv2"].take()
    assert sent[0] == "ONFBundleCtrlMsg" and sent[-1] == "OFPBarrierRequest"
    assert 0 < state.switches["hv2"].flow_mods_sent - mods_before < 6  # the service clause
    assert dps["leaf"].take() == []  # a fabric switch has no ACL: nothing to change
    assert state.status()["policy"]["enforced_in_s"] is None  # not acknowledged yet
    assert dps["hv1"].take()[-1] == "OFPBarrierRequest"  # its source clause
    for name in ("hv1", "hv2"):
        ack(app, dps[name])
    pol = state.status()["policy"]
    assert pol["enforced_in_s"] is not None and pol["enforced_in_s"] < 1
    assert state.switches["hv2"].last_update_s is not None
    # The same file again (SIGHUP): nothing to send.
    ch = change(WITH_TCP, forced=True)
    app._sources_changed(EventSources(load_sources(*ch.files), [], ch))
    assert [dp.take() for dp in dps.values()] == [[], [], []]
    assert "already enforced" in state.history.events[-1]["message"]


def test_a_refused_edit_sends_nothing_and_is_reported() -> None:
    app, state = make_app()
    dps = program_all(app)
    sha = state.policy_info.sha256
    problems = ["p.yaml:5: segment t1/web: vlan 5000 is out of range 1..4094"]
    app._sources_changed(EventSources(None, problems, change(POLICY.replace("10}", "5000}"))))
    assert [dp.take() for dp in dps.values()] == [[], [], []]
    assert state.policy_info.sha256 == sha and state.policy_info.text == POLICY
    refused = state.status()["policy"]["last_refused"]
    assert refused["problems"] == problems and refused["time"] > 0
    assert state.history.events[-1]["kind"] == "refused"


def test_a_link_down_is_acted_on_at_once_and_other_changes_coalesced() -> None:
    app, state = make_app()
    dps = program_all(app)

    def status(dp, no: int, live: bool, reason: int = ofp.OFPPR_MODIFY) -> None:
        app._port_status(Ev(msg=Ev(datapath=dp, desc=port(no, live), reason=reason)))

    def timer_fires() -> None:
        assert app._relink_timer is not None
        app._relink_timer.cancel()
        app._relink(None)

    status(dps["hv1"], 10, live=False)  # quiet until now: recompute at once
    assert state.status()["down_ports"] == ["hv1:10"]
    for name in ("hv1", "hv2"):  # paths now over the leaf
        assert dps[name].take()[-1] == "OFPBarrierRequest"
        ack(app, dps[name])
    status(dps["hv2"], 10, live=False)  # the other end, within the window: coalesced
    assert dps["hv2"].take() == [] and app._relink_timer is not None
    timer_fires()
    assert state.status()["down_ports"] == ["hv1:10", "hv2:10"]
    assert [dp.take() for dp in dps.values()] == [[], [], []]  # paths avoid it already
    assert state.history.events[-1]["message"].startswith("link ports down: hv2:10")

    app._relinked_at = float("-inf")  # a quiet while later, the link returns
    status(dps["hv1"], 10, live=True)
    status(dps["hv2"], 10, live=True)
    assert [dp.take() for dp in dps.values()] == [[], [], []]  # up: after the window only
    timer_fires()
    assert state.status()["down_ports"] == []
    assert dps["hv1"].take()[-1] == "OFPBarrierRequest"
    assert state.history.events[-1]["message"].startswith("link ports down: none; back up: hv1:10")
    # A VM port going down is not a link failure.
    status(dps["hv1"], 100, live=False)
    assert app._relink_timer is None


def test_the_first_update_waits_for_the_ports_and_avoids_a_dead_link() -> None:
    app, state = make_app()
    dp = FakeDatapath(1, state=CONFIG_DISPATCHER)
    connect(app, dp)
    assert dp.take() == ["OFPFlowStatsRequest", "OFPGroupDescStatsRequest",
                         "OFPMeterConfigStatsRequest"]  # and no update yet
    app._port_desc(Ev(msg=Ev(datapath=dp, body=[port(11), port(100)], flags=0)))  # no port 10
    assert state.status()["down_ports"] == ["hv1:10"]
    sent = dp.take()
    assert sent[-1] == "OFPBarrierRequest" and "ONFBundleAddMsg" in sent
    groups = [g for g in state.switches["hv1"].desired.groups if g.type == "ff"]
    assert groups == []  # no fast-failover over a port that is not there


def test_switches_are_left_alone_until_ovsdb_answers() -> None:
    from sdnctl.app.controller import EventBindings

    app, state = make_app(ready=False)
    dp = FakeDatapath(1)
    connect(app, dp, [port(10), port(11), port(100)])
    assert dp.take() == ["OFPFlowStatsRequest", "OFPGroupDescStatsRequest",
                         "OFPMeterConfigStatsRequest"]  # read, but nothing written
    app._bindings_changed(EventBindings(state.snapshot))  # OVSDB answers, nothing changed
    assert dp.take()[-1] == "OFPBarrierRequest"


def test_a_topology_reload_adopts_a_connected_stranger() -> None:
    app, state = make_app()
    program_all(app)
    stranger = FakeDatapath(4)
    app._features(Ev(msg=Ev(datapath=stranger)))
    assert stranger.take() == [] and 4 in state.strangers
    topo = TOPOLOGY.replace("links:", "  leaf2: {dpid: 4, role: fabric}\nlinks:")
    ch = change(POLICY, topo)
    app._sources_changed(EventSources(load_sources(*ch.files), [], ch))
    assert "leaf2" in state.switches and state.switches["leaf2"].connected
    assert stranger.take() == ["OFPPortDescStatsRequest", "OFPFlowStatsRequest",
                               "OFPGroupDescStatsRequest", "OFPMeterConfigStatsRequest"]
    assert state.status()["topology"]["sha256"] == ch.files[1].sha256


def test_a_reload_whose_compile_fails_is_refused_and_the_last_policy_stays() -> None:
    app, state = make_app()
    dps = program_all(app)
    enforced, sha = state.policy, state.policy_info.sha256
    compile_fn = state.compile_fn

    def broken(policy, *args, **kwargs):
        if "tcp" in str(policy.tenants["t1"].rules):
            raise RuntimeError("no room for this rule")
        return compile_fn(policy, *args, **kwargs)

    state.compile_fn = broken
    ch = change(WITH_TCP)
    app._sources_changed(EventSources(load_sources(*ch.files), [], ch))
    assert state.policy is enforced and state.policy_info.sha256 == sha
    refused = state.status()["policy"]["last_refused"]
    assert refused is not None and "no room for this rule" in refused["problems"][0]
    assert "enforced_in_s" not in state.status()["policy"] or \
        state.history.rollout is None or state.history.rollout.sha256 == sha
    assert all(dp.take() == [] for dp in dps.values())  # nothing sent anywhere
    # The compiler fixed, the same edit goes through.
    state.compile_fn = compile_fn
    app._sources_changed(EventSources(load_sources(*ch.files), [], ch))
    assert state.policy_info.text == WITH_TCP
    assert dps["hv2"].take()[-1] == "OFPBarrierRequest"


def test_the_stats_poll_reads_one_switch_at_a_time() -> None:
    """Every switch's replies at once would fill the app's queue and stall os-ken's
    receive threads (echoes unanswered, connections dropped): one read in flight."""
    from sdnctl.app.observe import EventPoll

    app, state = make_app()
    dps = program_all(app)
    app._poll(EventPoll())
    asked = [name for name, dp in dps.items() if dp.sent]
    assert len(asked) == 1
    first = dps[asked[0]]
    # The flow stats, and the meter stats for the DHCP meters' drops.
    assert [type(m).__name__ for m in first.sent] == ["OFPFlowStatsRequest",
                                                      "OFPMeterStatsRequest"]
    req = first.sent[0]
    first.take()
    app._poll(EventPoll())  # a new round while one read is in flight asks nobody more
    assert all(not dp.sent for dp in dps.values())
    app._flow_stats(Ev(msg=Ev(datapath=first, body=[], flags=0, xid=req.xid)))
    now_asked = [name for name, dp in dps.items() if dp.sent]
    assert len(now_asked) == 1 and now_asked[0] != asked[0]
    assert state.switches[asked[0]].polling is False
