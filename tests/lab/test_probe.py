"""The probe machinery on a tiny standalone net: probes pass, and they can fail.

No controller, no daemon: one userspace OVS bridge in standalone mode with a NORMAL
flow forwards everything, so every probe must be reached; a drop flow installed
with ovs-ofctl must then make the same probes fail. A probe that could not fail
would prove nothing about the lab's matrix.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sdnctl.lab.plan import LabError, plan_lab
from sdnctl.lab.probe import ProbeResult
from sdnctl.lab.report import Verdict, format_matrix, judge_probes, report_json
from sdnctl.policy.load import parse_policy
from sdnctl.policy.model import parse_service
from sdnctl.topology.load import parse_topology

SERVICES = tuple(parse_service(s) for s in ("icmp", "tcp/80", "tcp/5432", "udp/53"))


def _ofctl(bridge: str, *args: str) -> None:
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args[:1], bridge, *args[1:]], check=True)


@dataclass
class Tiny:
    bridge: str
    hosts: dict  # VM name -> mininet Host
    addresses: dict[str, str]
    addresses6: dict[str, str]


@pytest.fixture
def tiny() -> Iterator[Tiny]:
    # Only `lab` tests use it: tests/conftest.py has checked root, OVS and Mininet.
    from mininet.net import Mininet
    from mininet.node import OVSSwitch

    existing = set(subprocess.run(["ovs-vsctl", "list-br"], capture_output=True,
                                  text=True).stdout.split())
    bridge = next(b for b in (f"tp{random.randrange(16**4):04x}" for _ in range(100))
                  if b not in existing)
    net = Mininet(topo=None, build=False, controller=None)
    try:
        switch = net.addSwitch(bridge, cls=OVSSwitch, dpid=f"{random.randrange(1, 2**48):016x}",
                               datapath="user", protocols="OpenFlow13", failMode="standalone")
        hosts, addresses, addresses6 = {}, {}, {}
        for i, vm in enumerate(("a", "b", "c"), start=1):
            host = net.addHost(f"{bridge}{vm}", ip=f"10.222.0.{i}/24")
            net.addLink(host, switch, port1=0, port2=i, intfName1="eth0",
                        intfName2=f"{bridge}-eth{i}")
            hosts[vm], addresses[vm] = host, f"10.222.0.{i}"
            addresses6[vm] = f"fd00:222::{i}"
        net.build()
        net.start()
        for vm, host in hosts.items():
            host.cmd("ethtool -K eth0 tx off")
            host.cmd("sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0")
            host.cmd(f"ip -6 addr add {addresses6[vm]}/64 dev eth0 nodad")
        kind = subprocess.run(["ovs-vsctl", "get", "Bridge", bridge, "datapath_type"],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert kind == "netdev"
        _ofctl(bridge, "add-flow", "priority=0,actions=NORMAL")
        yield Tiny(bridge, hosts, addresses, addresses6)
    finally:
        net.stop()
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", bridge], check=False)


def _by_key(results: list[ProbeResult], family: int = 4
            ) -> dict[tuple[str, str, str], ProbeResult]:
    return {(r.src, r.dst, str(r.service)): r for r in results if r.family == family}


@pytest.mark.lab
def test_ipv6_probes_pass_then_fail_when_dropped(tiny: Tiny) -> None:
    """The same probes over IPv6 (ICMPv6 echo, TCP, UDP): all reached on an open
    bridge; with IPv6 to b dropped, exactly b's IPv6 probes fail and IPv4 is untouched."""
    from sdnctl.lab.probe import probe_matrix, start_servers

    servers = start_servers(tiny.hosts, SERVICES)
    try:
        results = probe_matrix(tiny.hosts, tiny.addresses, SERVICES, addresses6=tiny.addresses6)
        open4, open6 = _by_key(results, 4), _by_key(results, 6)
        assert len(open4) == len(open6) == 3 * 2 * len(SERVICES)
        assert [r for r in open6.values() if not r.reached] == []
        assert {r.detail for r in open6.values()} == {"connected", "echoed", "echo reply"}

        _ofctl(tiny.bridge, "add-flow",
               f"priority=100,ipv6,ipv6_dst={tiny.addresses6['b']},actions=drop")
        cut = probe_matrix(tiny.hosts, tiny.addresses, SERVICES, addresses6=tiny.addresses6)
        for (src, dst, service), r in _by_key(cut, 6).items():
            assert r.reached is not ("b" in (src, dst)), (src, dst, service, r)
        assert all(r.reached for r in _by_key(cut, 4).values())
    finally:
        servers.stop()


@pytest.mark.lab
def test_probes_pass_then_fail_when_dropped(tiny: Tiny) -> None:
    from sdnctl.lab.probe import probe_matrix, start_servers

    servers = start_servers(tiny.hosts, SERVICES)
    try:
        open_ = _by_key(probe_matrix(tiny.hosts, tiny.addresses, SERVICES))
        assert len(open_) == 3 * 2 * len(SERVICES)
        unreached = [r for r in open_.values() if not r.reached]
        assert unreached == []
        assert {r.detail for r in open_.values()} == {"connected", "echoed", "echo reply"}

        # Cut b off at the switch: everything to or from b must now fail, a<->c not.
        _ofctl(tiny.bridge, "add-flow", f"priority=100,ip,nw_dst={tiny.addresses['b']},"
               "actions=drop")
        cut = _by_key(probe_matrix(tiny.hosts, tiny.addresses, SERVICES))
        for (src, dst, service), r in cut.items():
            touches_b = "b" in (src, dst)
            assert r.reached is not touches_b, (src, dst, service, r)
            if touches_b:
                assert r.tries == 2 and r.detail == "timeout"

        # Only the reply path cut: the request arrives but nothing comes back.
        _ofctl(tiny.bridge, "del-flows", "--strict",
               f"priority=100,ip,nw_dst={tiny.addresses['b']}")
        _ofctl(tiny.bridge, "add-flow", f"priority=100,ip,nw_src={tiny.addresses['c']},"
               f"nw_dst={tiny.addresses['a']},actions=drop")
        one_way = _by_key(probe_matrix(tiny.hosts, tiny.addresses, SERVICES))
        for service in SERVICES:
            assert not one_way[("a", "c", str(service))].reached
            assert not one_way[("c", "a", str(service))].reached
            assert one_way[("a", "b", str(service))].reached
    finally:
        servers.stop()


@pytest.mark.lab
def test_probe_counts_only_the_intended_vm(tiny: Tiny) -> None:
    """An answer from another VM at the same address is not reaching the target."""
    from sdnctl.lab.probe import probe_matrix, start_servers

    servers = start_servers(tiny.hosts, SERVICES)
    try:
        # Pretend c lives at b's address: b answers, naming itself.
        addresses = dict(tiny.addresses, c=tiny.addresses["b"])
        results = _by_key(probe_matrix(tiny.hosts, addresses, SERVICES))
        for service in SERVICES:
            r = results[("a", "c", str(service))]
            assert not r.reached and r.detail == "answered by b", r
            assert results[("a", "b", str(service))].reached
    finally:
        servers.stop()


# ------------------------------------------------------- pure: plan and verdicts

TOPOLOGY = """\
version: 1
switches:
  hv1: {dpid: 1, role: hypervisor}
  hv2: {dpid: 2, role: hypervisor}
links:
  - {a: "hv1:7", b: "hv2:7"}
"""
POLICY = """\
version: 1
tenants:
  t:
    segments:
      s: {vlan: 10, subnet: 10.0.0.0/24}
    groups:
      w: {vms: [w1]}
    rules:
      - {from: any, to: w, allow: [tcp/80]}
vms:
  w1: {tenant: t, segment: s, mac: "02:00:00:00:00:01", ip: 10.0.0.1, host: hv1}
  w2: {tenant: t, segment: s, mac: "02:00:00:00:00:02", ip: 10.0.0.2, host: hv2}
  w3: {tenant: t, segment: s, mac: "02:00:00:00:00:03", ip: 10.0.0.3}
"""


def _models():  # -> (Policy, Topology)
    topology = parse_topology(TOPOLOGY, "t.topology.yaml")
    return parse_policy(POLICY, "t.policy.yaml", topology), topology


def test_plan_uses_planned_ports_and_prefix() -> None:
    policy, topology = _models()
    plan = plan_lab(policy, topology, prefix="x1")
    assert dict(plan.bridges) == {"hv1": "x1hv1", "hv2": "x1hv2"}
    assert plan.host("w1").intf == "x1hv1-eth100" and plan.host("w1").port == 100
    assert plan.host("w1").gateway is None and plan.host("w1").prefixlen == 24
    assert plan.unplaced == ("w3",)
    assert {(lk.a_intf, lk.b_intf) for lk in plan.links} == {("x1hv1-eth7", "x1hv2-eth7")}
    with pytest.raises(LabError, match="15"):
        plan_lab(policy, topology, prefix="much-too-long")


def test_verdicts_name_leaks_and_blocks() -> None:
    policy, _ = _models()
    http, ssh = parse_service("tcp/80"), parse_service("tcp/22")
    results = [
        ProbeResult("w2", "w1", http, False, "timeout", 2),  # allowed, not reached
        ProbeResult("w1", "w2", ssh, True, "connected", 1),  # reached, not allowed
        ProbeResult("w2", "w1", ssh, False, "timeout", 2),
        ProbeResult("w1", "w2", http, False, "timeout", 2),
    ]
    report = judge_probes(policy, ("w1", "w2"), (http, ssh), results)
    verdicts = {(j.probe.src, str(j.probe.service)): j.verdict for j in report.judged}
    assert verdicts == {
        ("w2", "tcp/80"): Verdict.BLOCKED,
        ("w1", "tcp/22"): Verdict.LEAK,
        ("w2", "tcp/22"): Verdict.OK,
        ("w1", "tcp/80"): Verdict.OK,
    }
    table = format_matrix(report)
    assert "!LEAK tcp/22" in table and "!BLOCKED tcp/80" in table
    doc = report_json(report)
    assert doc["mismatches"] == 2 and doc["summary"]["leaks"] == 1
    assert {"src", "dst", "service", "reached", "expected"} <= set(doc["probes"][0])
    # A probe that never ran is a failure too, not silently "fine".
    partial = judge_probes(policy, ("w1", "w2"), (http, ssh), results[:3])
    assert partial.missing == (("w1", "w2", http),) and partial.failures == 3


POLICY6 = """\
version: 1
tenants:
  t:
    segments:
      s: {vlan: 10, subnet: 10.0.0.0/24, subnet6: "fd00::/64"}
      u: {vlan: 20, subnet: 10.0.1.0/24}
    groups:
      w: {vms: [w1]}
    rules:
      - {from: any, to: w, allow: [tcp/80]}
      - {from: any, to: w, allow: [tcp/22], family: ipv4}
vms:
  w1: {tenant: t, segment: s, mac: "02:00:00:00:00:01", ip: 10.0.0.1, host: hv1}
  w2: {tenant: t, segment: s, mac: "02:00:00:00:00:02", ip: 10.0.0.2, host: hv2}
  w3: {tenant: t, segment: u, mac: "02:00:00:00:00:03", ip: 10.0.1.3, host: hv2}
"""


def test_ipv6_verdicts_follow_the_rule_family() -> None:
    """An IPv6 probe is judged by reach() in IPv6: a `family: ipv4` rule does not allow
    it (reached = LEAK), a rule for both does; the IPv6 matrix marks a VM without an
    IPv6 address n/a; an IPv6 probe that never ran is missing."""
    topology = parse_topology(TOPOLOGY, "t.topology.yaml")
    policy = parse_policy(POLICY6, "t.policy.yaml", topology)
    http, ssh = parse_service("tcp/80"), parse_service("tcp/22")
    results = [
        ProbeResult("w2", "w1", ssh, True, "connected", 1, family=4),
        ProbeResult("w2", "w1", ssh, True, "connected", 1, family=6),
        ProbeResult("w2", "w1", http, True, "connected", 1, family=6),
        ProbeResult("w1", "w2", ssh, False, "timeout", 2, family=6),
    ]
    report = judge_probes(policy, ("w1", "w2", "w3"), (http, ssh), results, vms6=("w1", "w2"))
    verdicts = {(j.probe.src, str(j.probe.service), j.probe.family): j.verdict
                for j in report.judged}
    assert verdicts == {
        ("w2", "tcp/22", 4): Verdict.OK,
        ("w2", "tcp/22", 6): Verdict.LEAK,
        ("w2", "tcp/80", 6): Verdict.OK,
        ("w1", "tcp/22", 6): Verdict.OK,
    }
    assert report.missing6 == (("w1", "w2", http),)
    matrix6 = format_matrix(report, 6)
    assert "IPv6 reachability" in matrix6 and "!LEAK tcp/22" in matrix6 and "n/a" in matrix6
    assert "!LEAK tcp" not in format_matrix(report, 4)
    doc = report_json(report)
    assert {p["family"] for p in doc["probes"]} == {4, 6}
    assert {"src": "w1", "dst": "w2", "service": "tcp/80", "family": 6} in (
        doc["summary"]["missing"])
