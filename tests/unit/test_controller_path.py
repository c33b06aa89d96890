"""The controller path is the metered DHCP path and nothing else (docs/threat-model.md):
no flow or group bucket outputs to CONTROLLER except stage `dhcp`'s, which passes
the switch's packets/s meter first; only port security's flows go to `dhcp`, each
for one VM port, one MAC, through that VM's own packets/s meter, and only for UDP
68->67, for the VM's own packets to a gateway MAC with TTL 1 (the router's
"time exceeded"; IPv6 with hop limit 1 through its ND meter), or for its IPv6
neighbour and router solicitations (ICMPv6 135 and 133, through its ND meter). A
gateway also copies its next hop's ARP replies (one port, one sender address)
through a packets/s meter, to learn its MAC.
The connection log's copies (`controller(meter_id=...)`) come only from stage
`acl`, only for new connections, and only through the switch's packets/s log meter.
Nothing outputs to any other reserved port a frame could escape through (NORMAL,
FLOOD, ALL, LOCAL), and every table ends in an explicit drop, so OVS's table-miss
behaviour never matters. Checked over every example network, and over random ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.compile.connlog import LOG_METER
from sdnctl.compile.dhcp import TTL_EXPIRES
from sdnctl.flows import (
    OFPP_CONTROLLER,
    OFPP_IN_PORT,
    Controller,
    Flow,
    FlowSet,
    Goto,
    Match,
    Meter,
    Output,
)
from sdnctl.live.counters import Counters
from sdnctl.pipeline import PIPELINE
from sdnctl.policy.load import load_policy
from sdnctl.policy.model import Default
from sdnctl.southbound.livedump import DropSample
from sdnctl.topology.load import load_topology
from tests.unit.netgen import networks

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name.removesuffix(".topology.yaml")
                  for p in (ROOT / "topologies").glob("*.topology.yaml"))
ICMPV6, SOLICITATIONS = 58, (133, 135)  # router and neighbour solicitations
GATEWAY_MACS = "0e:00:"  # sdnctl.pipeline.gateway_mac: no VM may hold one
MAX_PORT = 0xFFFFFF00  # OFPP_MAX: ports above are reserved (CONTROLLER, NORMAL, FLOOD, ...)


def escapes(fs: FlowSet) -> list[str]:
    """Every output to a reserved port other than IN_PORT (ARP answers go back there)
    and the metered DHCP path's CONTROLLER, and every way into that path that is not
    one VM's metered DHCP requests."""
    found = []
    pktps = {m.meter_id for m in fs.meters if m.pktps}
    actions = [(f"flow {f.stage}/{f.priority}/{f.owner}", f.actions) for f in fs.flows]
    actions += [(f"group {g.group_id}", b.actions) for g in fs.groups for b in g.buckets]
    dhcp_flows = {id(f) for f in fs.flows
                  if _metered_dhcp_exit(f, pktps) or _metered_next_hop_arp(f, pktps)}
    for (where, acts), flow in zip(actions, [*fs.flows, *([None] * (len(actions)))],
                                   strict=False):
        for act in acts:
            if isinstance(act, Controller):
                if not _metered_log_copy(flow, act, pktps):
                    found.append(f"{fs.switch}: {where} copies to the controller outside "
                                 "the connection log's metered path")
                continue
            if not isinstance(act, Output) or act.port <= MAX_PORT or act.port == OFPP_IN_PORT:
                continue
            if act.port == OFPP_CONTROLLER and flow is not None and id(flow) in dhcp_flows:
                continue
            found.append(f"{fs.switch}: {where} outputs to {act.port:#x}")
    meters_in: set[int] = set()
    for f in fs.flows:
        if any(isinstance(a, Goto) and a.stage == "dhcp" for a in f.actions):
            trouble = _dhcp_entry_trouble(f, pktps, meters_in)
            if trouble:
                found.append(f"{fs.switch}: flow {f.stage}/{f.priority}/{f.owner} {trouble}")
    return found


def _metered_log_copy(f: Flow | None, act: Controller, pktps: set[int]) -> bool:
    return (f is not None and f.stage == "acl" and act.meter_id == LOG_METER
            and LOG_METER in pktps and "+new" in str(f.match.get("ct_state")))


def _metered_dhcp_exit(f: Flow, pktps: set[int]) -> bool:
    return (f.stage == "dhcp" and bool(f.actions) and isinstance(f.actions[0], Meter)
            and f.actions[0].meter_id in pktps
            and (f.match.get("udp_dst") == 67 or f.match.get("ip_ttl") == TTL_EXPIRES
                 or f.match.get("ip_proto") == ICMPV6))


def _metered_next_hop_arp(f: Flow, pktps: set[int]) -> bool:
    """A gateway's copy of its next hop's ARP replies: one uplink port, one sender."""
    m = f.match
    return (f.stage == "arp" and bool(f.actions) and isinstance(f.actions[0], Meter)
            and f.actions[0].meter_id in pktps and m.get("in_port") is not None
            and m.get("arp_op") == 2 and isinstance(m.get("arp_spa"), str))


def _dhcp_entry_trouble(f: Flow, pktps: set[int], meters_in: set[int]) -> str:
    """Why a flow into stage dhcp is not one VM port's metered DHCP requests; "" if it is."""
    m = f.match
    if f.stage != "port_security" or m.get("in_port") is None or m.get("eth_src") is None:
        return "enters dhcp without naming a VM port and MAC"
    dhcp = (m.get("udp_src"), m.get("udp_dst"), m.get("ip_proto")) == (68, 67, 17)
    expired = (m.get("ip_ttl") == TTL_EXPIRES
               and (m.get("ipv4_src") is not None or m.get("ipv6_src") is not None)
               and str(m.get("eth_dst")).startswith(GATEWAY_MACS))
    solicitation = m.get("ip_proto") == ICMPV6 and m.get("icmpv6_type") in SOLICITATIONS
    if not (dhcp or expired or solicitation):
        return ("enters dhcp with something other than DHCP requests, expired packets or "
                "ND solicitations")
    meter = f.actions[0]
    if not isinstance(meter, Meter) or meter.meter_id not in pktps:
        return "enters dhcp without a packets/s meter"
    key = (meter.meter_id, m.get("in_port"))
    if any(other != m.get("in_port") for mid, other in meters_in if mid == meter.meter_id):
        return "shares its DHCP meter with another port"
    meters_in.add(key)  # type: ignore[arg-type]
    return ""


def check(flowsets: dict[str, FlowSet]) -> None:
    for fs in flowsets.values():
        assert escapes(fs) == []
        for stage in PIPELINE:  # each table ends in a priority-0 catch-all drop
            assert any(f.priority == 0 and f.match == Match.of() and not f.actions
                       for f in fs.in_stage(stage.name)), f"{fs.switch}/{stage.name}"


def test_there_are_examples() -> None:
    assert {"three-tier", "leaf-spine", "multi-tenant", "single"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_no_example_flow_reaches_the_controller(name: str) -> None:
    topo = load_topology(ROOT / "topologies" / f"{name}.topology.yaml")
    policy = load_policy(ROOT / "topologies" / f"{name}.policy.yaml", topo)
    check(compile_network(policy, topo, planned_bindings(policy, topo)))


@pytest.mark.parametrize("name", EXAMPLES)
def test_with_every_rule_and_tenant_logged_only_the_metered_log_copies_are_added(name) -> None:
    topo = load_topology(ROOT / "topologies" / f"{name}.topology.yaml")
    policy = load_policy(ROOT / "topologies" / f"{name}.policy.yaml", topo)
    logged = dataclasses.replace(policy, tenants=MappingProxyType({
        n: dataclasses.replace(t, log_denied=True,
                               rules=tuple(dataclasses.replace(r, log=True) for r in t.rules))
        for n, t in policy.tenants.items()}))
    flowsets = compile_network(logged, topo, planned_bindings(logged, topo))
    check(flowsets)
    copies = any(isinstance(a, Controller) for fs in flowsets.values() for f in fs.flows
                 for a in f.actions)
    # Default-allow tenants deny nothing and their rules decide nothing: no copies.
    assert copies == any(t.default is Default.DENY for t in policy.tenants.values())


def test_the_check_refuses_a_log_copy_of_every_packet_or_unmetered() -> None:
    from sdnctl.flows import MeterBand

    meter = [MeterBand(LOG_METER, 100, 200, pktps=True)]
    every = Flow("acl", 102, Match.of(ct_state="+trk"), (Controller(LOG_METER),))
    other = Flow("acl", 102, Match.of(ct_state="+new+trk"), (Controller(7),))
    elsewhere = Flow("l2_forward", 5, Match.of(ct_state="+new+trk"), (Controller(LOG_METER),))
    for flow in (every, other, elsewhere):
        assert escapes(FlowSet.build("x", [flow], meters=meter)), flow
    fine = Flow("acl", 102, Match.of(ct_state="+new+trk"), (Controller(LOG_METER),))
    assert escapes(FlowSet.build("x", [fine], meters=meter)) == []
    assert escapes(FlowSet.build("x", [fine]))  # the meter is missing


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_no_random_network_flow_reaches_the_controller(net) -> None:
    policy, topo, bindings = net
    check(compile_network(policy, topo, bindings))


def test_the_check_can_fail() -> None:
    fs = FlowSet.build("x", [Flow("arp", 10, Match.of(), (Output(OFPP_CONTROLLER),))])
    assert escapes(fs) == ["x: flow arp/10/base outputs to 0xfffffffd"]


def test_the_check_refuses_an_unmetered_or_wide_dhcp_path() -> None:
    from sdnctl.flows import MeterBand

    to_controller = Flow("dhcp", 100, Match.of(eth_type=0x800, ip_proto=17, udp_dst=67),
                         (Output(OFPP_CONTROLLER),))
    fs = FlowSet.build("x", [to_controller])
    assert escapes(fs) == ["x: flow dhcp/100/base outputs to 0xfffffffd"]
    # Metered at the switch, but entered by all of a port's UDP (no VM meter, no MAC).
    metered = Flow("dhcp", 100, to_controller.match,
                   (Meter(9), Output(OFPP_CONTROLLER)))
    wide = Flow("port_security", 250, Match.of(in_port=3, eth_type=0x800, ip_proto=17),
                (Goto("dhcp"),))
    fs = FlowSet.build("x", [metered, wide], meters=[MeterBand(9, 100, 100, pktps=True)])
    assert escapes(fs) == ["x: flow port_security/250/base enters dhcp without naming a "
                           "VM port and MAC"]


# ---- the counters behind /metrics ------------------------------------------------------


def test_drop_totals_add_growth_and_survive_counter_resets() -> None:
    c = Counters()
    c.record_poll("hv1", 10, [DropSample("a", "acme", "acl", 5, 500),
                              DropSample("b", "", "acl", 1, 60)])
    c.record_poll("hv1", 10, [DropSample("a", "acme", "acl", 8, 800),
                              DropSample("b", "", "acl", 1, 60)])
    assert c.drops_packets[("acme", "acl")] == 8 and c.drops_packets[("", "acl")] == 1
    # The flow was re-added (its counter restarted): the new count is growth, not a loss.
    c.record_poll("hv1", 10, [DropSample("a", "acme", "acl", 2, 200)])
    assert c.drops_packets[("acme", "acl")] == 10 and c.drops_bytes[("acme", "acl")] == 1000
    c.forget_switch("hv1")  # reconnected: its counters start afresh
    c.record_poll("hv1", 10, [DropSample("a", "acme", "acl", 1, 100)])
    assert c.drops_packets[("acme", "acl")] == 11
    assert c.snapshot()["dropped_packets"] == {"(shared)": {"acl": 1}, "acme": {"acl": 11}}


def test_packet_ins_are_counted_and_logged_once_per_window(caplog) -> None:
    c = Counters()
    with caplog.at_level("WARNING", logger="controller"):
        for _ in range(500):
            c.packet_in("hv1", "table miss, table 0, in_port 3")
    assert c.packet_ins_of("hv1") == 500
    lines = [r for r in caplog.records if "packet-in" in r.getMessage()]
    assert len(lines) == 1 and "in_port 3" in lines[0].getMessage()
