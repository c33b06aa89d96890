"""The daemon's side of gateway uplinks, without a switch: ARP frames, next hops learned
into the compile, exits announced where they move, connection limits per zone, and
what /status and /metrics say of it."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address
from types import MappingProxyType

from sdnctl.bindings import Bindings
from sdnctl.compile.context import NetworkView
from sdnctl.compile.exits import build_plan
from sdnctl.flows import Output, SetField
from sdnctl.live.arp import ARP_REPLY, ARP_REQUEST, arp_frame, gratuitous, parse_arp, who_has
from sdnctl.live.connlimits import ConnLimits, zone_limits
from sdnctl.live.state import ControllerState, PolicyInfo
from sdnctl.live.uplinks import UplinkState
from sdnctl.metrics import render_metrics
from sdnctl.southbound.ctlimits import ZoneLimiter
from sdnctl.southbound.ovsdb import BindingSnapshot
from sdnctl.topology.model import PortRef, Topology
from tests.unit.nsnet import net
from tests.unit.test_metrics import parse

ROUTER = "02:aa:00:00:00:09"
NEXT_HOP = IPv4Address("203.0.113.1")


def _learning_net():
    """nsnet with border2's next hop learned by ARP (not configured), tagged VLAN 7."""
    policy, topo = net()
    switches = dict(topo.switches)
    b2 = switches["border2"]
    switches["border2"] = dataclasses.replace(b2, uplinks=tuple(
        dataclasses.replace(u, next_hop_mac=None, vlan=7) for u in b2.uplinks))
    topo = Topology(MappingProxyType(switches), topo.links, topo.source, topo.underlay_mtu)
    return policy, topo


def _reply(sender_ip: IPv4Address = NEXT_HOP, op: int = ARP_REPLY) -> bytes:
    return arp_frame(op, ROUTER, sender_ip, "0e:01:00:31:00:01", IPv4Address("203.0.113.3"))


def test_frames_say_what_they_mean():
    ask = parse_arp(who_has("0e:01:00:31:00:01", IPv4Address("203.0.113.3"), NEXT_HOP, vlan=7))
    assert ask is not None and ask.op == ARP_REQUEST and ask.target_ip == NEXT_HOP
    assert who_has("0e:01:00:31:00:01", IPv4Address("203.0.113.3"), NEXT_HOP, 7)[12:16] \
        == b"\x81\x00\x00\x07"
    garp = gratuitous("0e:01:00:31:00:01", IPv4Address("203.0.113.20"))
    assert garp[:6] == b"\xff" * 6
    heard = parse_arp(garp)
    assert heard is not None and heard.sender_ip == heard.target_ip == IPv4Address("203.0.113.20")
    assert heard.sender_mac == "0e:01:00:31:00:01"
    assert parse_arp(b"\x00" * 12 + b"\x08\x00" + b"\x00" * 40) is None  # IPv4, not ARP


def test_only_the_next_hops_reply_on_its_uplink_teaches_a_mac():
    _, topo = _learning_net()
    up = UplinkState()
    b2, b1 = PortRef("border2", 1), PortRef("border1", 1)
    assert not up.learn(topo, b2, parse_arp(_reply(IPv4Address("203.0.113.77"))))  # not it
    assert not up.learn(topo, b2, parse_arp(_reply(op=ARP_REQUEST)))  # a request
    assert not up.learn(topo, b2, None)  # not ARP at all
    assert not up.learn(topo, b1, parse_arp(_reply()))  # border1's next hop is configured
    assert not up.learn(topo, PortRef("border2", 2), parse_arp(_reply()))  # not an uplink
    assert dict(up.neighbours) == {}
    assert up.learn(topo, b2, parse_arp(_reply()))
    assert dict(up.neighbours) == {"border2:1": ROUTER}
    assert not up.learn(topo, b2, parse_arp(_reply()))  # the same again: nothing new
    tally = up.tallies["border2:1"]
    assert (tally.replies, tally.learned, tally.ignored) == (2, 1, 3)


def test_probes_ask_only_for_next_hops_not_configured():
    _, topo = _learning_net()
    up = UplinkState()
    assert up.probes(topo, "border1") == []
    [(port, frame)] = up.probes(topo, "border2")
    ask = parse_arp(frame)
    assert port == 1 and ask is not None
    assert (ask.op, ask.sender_ip, ask.target_ip) == (ARP_REQUEST, IPv4Address("203.0.113.3"),
                                                      NEXT_HOP)
    assert frame[12:16] == b"\x81\x00\x00\x07"  # the uplink's VLAN


def _state(topo, policy, limiter=None):
    from sdnctl.bindings import planned_bindings

    state = ControllerState(policy, topo, PolicyInfo("p.yaml", "", 0.0),
                            snapshot=BindingSnapshot(planned_bindings(policy, topo)))
    if limiter is not None:
        state.daemon.limiter = limiter
        state.daemon.conn_limits = ConnLimits(vm=7, tenant_nat=70)
    return state


def _sent_to(fs, port: int) -> set[object]:
    return {a.value for f in fs.flows
            if any(isinstance(a, Output) and a.port == port for a in f.actions)
            for a in f.actions if isinstance(a, SetField) and a.field == "eth_dst"}


def test_a_learned_next_hop_reaches_the_gateway_and_only_it():
    policy, topo = _learning_net()
    state = _state(topo, policy)
    state.recompile()
    state.links.report_switch("border1", {1: False, 2: True})  # red and blue's exit dies
    state.recompile()
    assert _sent_to(state.switches["border2"].desired, 1) == set()  # next hop unknown
    before = {name: sw.desired for name, sw in state.switches.items()}
    assert state.uplinks.learn(topo, PortRef("border2", 1), parse_arp(_reply()))
    changed = state.recompile()
    assert [sw.name for sw in changed] == ["border2"]
    assert _sent_to(state.switches["border2"].desired, 1) == {ROUTER}
    assert all(state.switches[n].desired is before[n] for n in before if n != "border2")
    st = state.status()["uplinks"]
    assert st["border2:1"]["next_hop_mac"] == ROUTER
    assert st["border2:1"]["next_hop_from"] == "learned"
    assert st["border1:1"]["next_hop_from"] == "configured"
    assert st["border1:1"]["live"] is False


def test_exits_moving_are_announced_by_the_new_exit_once():
    policy, topo = _learning_net()
    state = _state(topo, policy)
    state.recompile()
    plan = build_plan(NetworkView(policy, topo, state.compile_bindings()))
    addresses = {str(a) for t in plan.tenants.values() for a in t.addresses}
    assert addresses == {"203.0.113.10", "203.0.113.11", "203.0.113.12", "203.0.113.20"}
    # First compile: the exit (border1) announces what it answers for.
    first = state.uplinks.take_announcements("border1")
    assert {str(parse_arp(f).sender_ip) for _, f in first} == addresses
    assert state.uplinks.take_announcements("border1") == []  # once
    state.links.report_switch("border1", {1: False, 2: True})
    state.recompile()
    assert any(e["kind"] == "exits" and "red: border1:1 -> border2:1" in e["message"]
               for e in state.status()["events"])
    assert state.uplinks.take_announcements("border1") == []
    moved = state.uplinks.take_announcements("border2")
    assert {port for port, _ in moved} == {1}
    heard = [parse_arp(f) for _, f in moved]
    assert {str(a.sender_ip) for a in heard if a} == addresses
    assert all(a is not None and a.sender_mac == "0e:01:00:31:00:01" for a in heard)
    assert all(f[12:16] == b"\x81\x00\x00\x07" for _, f in moved)  # tagged as the uplink is
    assert state.status()["uplinks"]["border2:1"]["tenants"] == ["blue", "red"]


def test_an_address_that_moved_on_again_is_not_announced_where_it_left():
    policy, topo = _learning_net()
    state = _state(topo, policy)
    state.recompile()
    state.uplinks.take_announcements("border1")
    state.links.report_switch("border1", {1: False, 2: True})
    state.recompile()  # border2 is due announcements...
    state.links.report_switch("border1", {1: True, 2: True})
    state.recompile()  # ...but the tenants are back on border1 before it acknowledged
    assert state.uplinks.take_announcements("border2") == []
    assert len(state.uplinks.take_announcements("border1")) == 4


def test_zone_limits_cover_bound_vms_and_going_tenants():
    policy, topo = _learning_net()
    state = _state(topo, policy)
    bindings = state.compile_bindings()
    plan = build_plan(NetworkView(policy, topo, bindings))
    limits = zone_limits(bindings, plan, ConnLimits(vm=5, tenant_nat=50))
    vm_zones = {ref.port for ref in bindings.ports.values()}
    nat = {t.zone for t in plan.tenants.values()}
    assert len(nat) == 2 and not nat & vm_zones
    assert limits == {**dict.fromkeys(vm_zones, 5), **dict.fromkeys(nat, 50)}
    assert zone_limits(bindings, plan, ConnLimits(vm=0, tenant_nat=50)) == dict.fromkeys(nat, 50)
    assert zone_limits(Bindings(), None, ConnLimits()) == {}


class _Recording(ZoneLimiter):
    """Records the ovs-appctl commands instead of running them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        super().__init__()

    def _call(self, command: str, args: list[str]) -> bool:
        self.calls.append((command, *args))
        return True


def test_the_limiter_sets_what_changed_and_takes_back_what_went():
    limiter = _Recording()
    try:
        limiter.submit({100: 5, 101: 5})
        assert limiter.wait_idle(5)
        limiter.submit({100: 5, 101: 9, 102: 5})
        assert limiter.wait_idle(5)
        limiter.submit({102: 5})
        assert limiter.wait_idle(5)
    finally:
        limiter.stop()
    assert limiter.calls == [
        ("dpctl/ct-set-limits", "zone=100,limit=5", "zone=101,limit=5"),
        ("dpctl/ct-set-limits", "zone=101,limit=9", "zone=102,limit=5"),
        ("dpctl/ct-del-limits", "zone=100,101"),
        ("dpctl/ct-del-limits", "zone=102"),  # stopping
    ]


def test_the_daemon_limits_zones_when_bindings_or_exits_change():
    policy, topo = _learning_net()
    limiter = _Recording()
    try:
        state = _state(topo, policy, limiter)
        state.recompile()
        assert limiter.wait_idle(5)
        state.recompile()  # nothing moved: nothing sent
        assert limiter.wait_idle(5)
        [(command, *args)] = limiter.calls
        assert command == "dpctl/ct-set-limits"
        assert "zone=100,limit=7" in args and sum(a.endswith("limit=70") for a in args) == 2
        assert state.status()["conn_limits"] == {"enabled": True, "vm": 7, "tenant_nat": 70,
                                                 "zones": len(args), "error": None}
    finally:
        limiter.stop()


def test_metrics_show_each_uplink():
    policy, topo = _learning_net()
    state = _state(topo, policy)
    state.recompile()
    state.uplinks.probes(topo, "border2")
    state.uplinks.learn(topo, PortRef("border2", 1), parse_arp(_reply()))
    fams = parse(render_metrics(state))
    assert fams["sdnctl_uplink_arp_requests_total"]["samples"] == {
        (("uplink", "border1:1"),): 0, (("uplink", "border2:1"),): 1}
    assert fams["sdnctl_uplink_next_hop_learned_total"]["samples"][
        (("uplink", "border2:1"),)] == 1
    assert fams["sdnctl_uplink_tenants"]["samples"] == {
        (("uplink", "border1:1"),): 2, (("uplink", "border2:1"),): 0}
    assert fams["sdnctl_uplink_live"]["samples"][(("uplink", "border1:1"),)] == 1


def test_the_failover_networks_files_load_and_go_out_as_meant():
    """sdnctl/bench/gatewaynet.py's files (the live test's and the benchmark's)."""
    from sdnctl.bench.gatewaynet import SWITCHES, network

    policy, topo = network({name: 0x5D8 << 36 | i for i, name in enumerate(SWITCHES)})
    assert all(u.next_hop_mac is None for u in topo.uplinks())  # learned by ARP
    plan = build_plan(NetworkView(policy, topo, Bindings()))
    assert {n: [str(a) for a in t.addresses] for n, t in plan.tenants.items()} == {
        "blue": ["203.0.113.12"], "red": ["203.0.113.10", "203.0.113.11", "203.0.113.20"]}
