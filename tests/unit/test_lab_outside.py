"""The lab's internet (plan) and the matrix's north–south cells (promises, verdicts).

Pure: the data centre of tests/unit/nsnet.py (red: a pool of two, rf1 with a
floating IP and tcp/80 open to anyone outside, front may reach 198.51.100.0/24 on
tcp/443; blue: one pool address, anything out, nothing in).
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType

import pytest

from sdnctl.lab.internet import CLIENT, ROUTER_MAC, SERVER, plan_internet, route_inside
from sdnctl.lab.outside import (
    INTERNET,
    fip_name,
    format_outside,
    judge_outside,
    outcome,
    outside_probes,
)
from sdnctl.lab.plan import LabError, plan_lab
from sdnctl.policy.model import parse_service
from sdnctl.topology.model import Topology
from sdnctl.verify.semantics import probe_services
from tests.unit.nsnet import net

TCP80, TCP443, TCP22 = (parse_service(s) for s in ("tcp/80", "tcp/443", "tcp/22"))


def _with_uplinks(topo: Topology, **changes: object) -> Topology:
    switches = dict(topo.switches)
    for name, sw in topo.switches.items():
        if sw.uplinks:
            switches[name] = replace(sw, uplinks=tuple(replace(u, **changes)
                                                       for u in sw.uplinks))
    return replace(topo, switches=MappingProxyType(switches))


def test_the_internet_faces_every_uplink_on_one_bridge() -> None:
    policy, topo = net()
    plan = plan_lab(policy, _with_uplinks(topo, next_hop_mac="02:bb:00:00:00:09"), "x1")
    inet = plan.internet
    assert inet is not None and inet.name == "x1inet"
    assert [(e.switch, e.port, e.intf) for e in inet.ends] == [
        ("border1", 1, "x1border1-eth1"), ("border2", 1, "x1border2-eth1")]
    assert [str(ip) for ip in inet.router_ips] == ["203.0.113.1/24"]  # one shared next hop
    assert inet.mac == "02:bb:00:00:00:09"  # the uplinks' next_hop_mac
    assert (inet.server, inet.client) == (SERVER, CLIENT)
    # Its switch-side ends are the lab's to check and to remove.
    assert set(inet.interfaces) <= set(plan.interfaces)


def test_no_gateways_no_internet() -> None:
    policy, topo = net()
    bare = replace(topo, switches=MappingProxyType(
        {n: replace(s, uplinks=()) for n, s in topo.switches.items()}))
    assert plan_internet(bare, {n: n for n in bare.switches}, "") is None


def test_an_unnamed_next_hop_mac_gets_the_labs_own() -> None:
    _, topo = net()
    inet = plan_internet(_with_uplinks(topo, next_hop_mac=None),
                         {n: n for n in topo.switches}, "")
    assert inet is not None and inet.mac == ROUTER_MAC


@pytest.mark.parametrize("changes, words", [
    ({"vlan": 7}, "802.1Q"),
    ({"next_hop_mac": "02:aa:00:00:00:01"}, None),
])
def test_uplinks_the_lab_cannot_face_are_refused(changes: dict[str, object],
                                                 words: str | None) -> None:
    policy, topo = net()
    topo = _with_uplinks(topo, **changes)
    if words is None:
        plan_lab(policy, topo, "")
        return
    with pytest.raises(LabError, match=words):
        plan_lab(policy, topo, "")


def test_two_next_hop_macs_are_refused() -> None:
    policy, topo = net()
    switches = dict(topo.switches)
    b2 = switches["border2"]
    switches["border2"] = replace(b2, uplinks=(replace(b2.uplinks[0],
                                                       next_hop_mac="02:aa:00:00:00:02"),))
    with pytest.raises(LabError, match="different next_hop_mac"):
        plan_lab(policy, replace(topo, switches=MappingProxyType(switches)), "")


def test_inside_routes_point_at_a_gateway_once_per_subnet() -> None:
    policy, topo = net()
    inet = plan_internet(topo, {n: n for n in topo.switches}, "")
    assert inet is not None
    routes = route_inside(inet, [IPv4Network("10.0.1.0/24"), IPv4Network("10.0.1.0/24"),
                                 IPv4Network("10.0.2.0/24")])
    assert routes == [["ip", "route", "replace", "10.0.1.0/24", "via", "203.0.113.2"],
                      ["ip", "route", "replace", "10.0.2.0/24", "via", "203.0.113.2"]]


def _cell(probes, src, dst, service):  # type: ignore[no-untyped-def]
    (found,) = [p for p in probes if (p.src, p.dst, p.service) == (src, dst, service)]
    return found


def test_cells_promise_what_the_semantics_say() -> None:
    policy, _ = net()
    vms = ("rf1", "rb1", "bx1", "bx2")
    probes = outside_probes(policy, vms, (TCP80, TCP443, TCP22))
    # Out: red's front to the partner network on tcp/443 only, seen as rf1's floating IP.
    out = _cell(probes, "rf1", INTERNET, TCP443)
    assert out.expected and out.seen_as == (IPv4Address("203.0.113.20"),)
    assert not _cell(probes, "rf1", INTERNET, TCP80).expected
    assert not _cell(probes, "rb1", INTERNET, TCP443).expected  # back: no outbound rule
    # Blue goes anywhere, as its one pool address.
    assert _cell(probes, "bx1", INTERNET, TCP22).seen_as == (IPv4Address("203.0.113.12"),)
    # In: only rf1's floating IP, only tcp/80; inside addresses and pools never.
    assert _cell(probes, INTERNET, fip_name("rf1"), TCP80).expected
    assert not _cell(probes, INTERNET, fip_name("rf1"), TCP22).expected
    assert not any(p.expected for p in probes
                   if p.src == INTERNET and not p.dst.endswith("@fip"))
    assert {p.dst for p in probes if p.src == INTERNET} >= {"red@snat", "blue@snat", "rf1"}
    # Hairpin through the outside: blue out (any) and red in (tcp/80 from anywhere).
    assert _cell(probes, "bx2", fip_name("rf1"), TCP80).expected
    assert not _cell(probes, "rb1", fip_name("rf1"), TCP80).expected  # red: no way out
    # A VM is not probed against its own floating IP.
    assert not [p for p in probes if p.src == "rf1" and p.dst == fip_name("rf1")]


def test_cells_cover_every_service() -> None:
    policy, _ = net()
    vms = ("rf1", "rb1", "rb2", "rops", "bx1", "bx2")
    services = probe_services(policy)
    probes = outside_probes(policy, vms, services)
    per_service = len(vms) * 2 + (len(vms) - 1) + 1 + 2  # out, inside, fip, fip in, pools
    assert len(probes) == per_service * len(services)


def test_the_server_must_see_the_promised_address() -> None:
    policy, _ = net()
    probes = outside_probes(policy, ("rf1", "bx1"), (TCP443, TCP80))
    allowed = _cell(probes, "rf1", INTERNET, TCP443)
    fine = outcome(allowed, True, "connected", "internet 203.0.113.20", 1)
    assert fine.reached and "seen as 203.0.113.20" in fine.detail
    # Through the pool instead of its floating IP, or not translated at all: not
    # the promised connection (BLOCKED when promised).
    for seen in ("203.0.113.10", "10.0.1.11"):
        wrong = outcome(allowed, True, "connected", f"internet {seen}", 1)
        assert not wrong.reached and seen in wrong.detail
    # Not promised: any answer is reached (a LEAK), whatever address it came as.
    denied = _cell(probes, "rf1", INTERNET, TCP80)
    assert outcome(denied, True, "connected", "internet 10.0.1.11", 1).reached


def test_an_answer_from_someone_else_is_a_leak_only_where_nothing_was_promised() -> None:
    policy, _ = net()
    probes = outside_probes(policy, ("rf1", "bx1", "bx2"), (TCP80, TCP22))
    promised = _cell(probes, INTERNET, fip_name("rf1"), TCP80)
    assert not outcome(promised, True, "connected", "bx1", 1).reached
    assert outcome(promised, True, "connected", "rf1", 1).reached
    never = _cell(probes, INTERNET, fip_name("rf1"), TCP22)
    assert outcome(never, True, "connected", "bx1", 1).reached
    inside = _cell(probes, INTERNET, "bx1", TCP80)  # anyone answering an inside address
    assert outcome(inside, True, "connected", "rf1", 1).reached


def test_judged_like_the_matrix_with_missing_probes_counted() -> None:
    policy, _ = net()
    vms = ("rf1", "bx1")
    probes = outside_probes(policy, vms, (TCP80,))
    results = {i: outcome(p, p.expected, "x", "", 1) for i, p in enumerate(probes)}
    report = judge_outside(probes, results, vms, (TCP80,))
    assert report.failures == 0 and report.vms[:3] == ("rf1", "bx1", INTERNET)
    leak = next(i for i, p in enumerate(probes) if not p.expected)
    results[leak] = outcome(probes[leak], True, "connected", "", 1)
    del results[next(i for i, p in enumerate(probes) if p.expected)]
    report = judge_outside(probes, results, vms, (TCP80,))
    assert len(report.mismatches) == 1 and report.mismatches[0].verdict.value == "LEAK"
    assert len(report.missing) == 1 and report.failures == 2


def test_printed_with_rows_for_senders_only() -> None:
    policy, _ = net()
    vms = ("rf1", "bx1")
    probes = outside_probes(policy, vms, (TCP80,))
    results = {i: outcome(p, p.expected, "x", "", 1) for i, p in enumerate(probes)}
    text = format_outside(judge_outside(probes, results, vms, (TCP80,)))
    heads = {line.split(" ", 1)[0] for line in text.splitlines()}
    assert {"rf1", "bx1", "internet"} <= heads and not {"rf1@fip", "red@snat"} & heads
    assert "rf1@fip" in text.splitlines()[3]  # still a column
    assert f"{len(probes)} north–south probes" in text and "PASS" in text
