"""The ICMP a network needs, on real OVS with the real daemon.

- The distributed router answers "time exceeded": `ping -t 1` from a VM to a VM of
  another segment is answered by the sender's own gateway address (what
  traceroute's first hop shows), through the metered controller path; `ping -t 2`
  reaches the other VM; a TTL-1 ping inside a segment is switched, not answered by
  the router; and the daemon counts what it sent.
- Errors related to an allowed connection come back through conntrack (`+rel`):
  UDP to an allowed port where nothing listens is refused by the server's kernel
  with "port unreachable", routed back to the client, in a default-deny tenant.
- The same "time exceeded" in IPv6: `ping -6 -t 1` (hop limit 1) to a VM of
  another segment is answered from the sender's `gateway6`; hop limit 2 reaches it;
  inside the segment hop limit 1 is switched.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from daemon_cmd import one_hypervisor

from sdnctl.client.api import get_metrics, wait_programmed
from sdnctl.nd.answer import router_link_local

pytestmark = [pytest.mark.ovs, pytest.mark.needs("ping")]

POLICY = """\
version: 1
tenants:
  t1:
    default: allow
    segments:
      web: {vlan: 10, subnet: 10.8.10.0/24, gateway: 10.8.10.1}
      db:  {vlan: 20, subnet: 10.8.20.0/24, gateway: 10.8.20.1}
  t2:
    default: deny
    segments:
      app: {vlan: 30, subnet: 10.7.30.0/24, gateway: 10.7.30.1}
      db:  {vlan: 40, subnet: 10.7.40.0/24, gateway: 10.7.40.1}
    groups:
      app: {labels: {tier: app}}
      db:  {labels: {tier: db}}
    rules:
      - {from: app, to: db, allow: [udp/5353]}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:08:10:11", ip: 10.8.10.11, host: hv1}
  w2: {tenant: t1, segment: web, mac: "02:00:00:08:10:12", ip: 10.8.10.12, host: hv1}
  d1: {tenant: t1, segment: db,  mac: "02:00:00:08:20:11", ip: 10.8.20.11, host: hv1}
  a2: {tenant: t2, segment: app, mac: "02:00:00:07:30:11", ip: 10.7.30.11, host: hv1,
       labels: {tier: app}}
  b2: {tenant: t2, segment: db,  mac: "02:00:00:07:40:11", ip: 10.7.40.11, host: hv1,
       labels: {tier: db}}
"""
# A connected UDP socket learns of "port unreachable" as ECONNREFUSED on its next call.
UDP_PROBE = """\
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"x")
try:
    s.recv(1)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("silence")
"""


def ping(vm, dst: str, ttl: int) -> str:
    return vm.run("ping", "-n", "-c", "1", "-W", "2", "-t", str(ttl), dst, check=False)


def test_ping_with_ttl_1_is_answered_by_the_senders_gateway(lab) -> None:
    bridge, daemon = one_hypervisor(lab, POLICY)
    w1 = lab.vm(bridge, 100, "02:00:00:08:10:11", "10.8.10.11/24", gateway="10.8.10.1",
                vm_id="w1")
    lab.vm(bridge, 101, "02:00:00:08:10:12", "10.8.10.12/24", gateway="10.8.10.1", vm_id="w2")
    lab.vm(bridge, 102, "02:00:00:08:20:11", "10.8.20.11/24", gateway="10.8.20.1", vm_id="d1")
    wait_programmed(daemon.api, ["hv1"], timeout=30)

    expired = ping(w1, "10.8.20.11", ttl=1)
    assert re.search(r"From 10\.8\.10\.1 icmp_seq=1 Time to live exceeded", expired), expired
    routed = ping(w1, "10.8.20.11", ttl=2)
    assert "1 received" in routed, routed
    switched = ping(w1, "10.8.10.12", ttl=1)  # same segment: no router on the way
    assert "1 received" in switched and "Time to live" not in switched, switched
    metrics = get_metrics(daemon.api)
    assert 'sdnctl_dhcp_requests_vm_total{vm="w1",outcome="time-exceeded"} 1' in metrics
    assert daemon.stop() == 0


def test_port_unreachable_for_an_allowed_connection_comes_back(lab) -> None:
    bridge, daemon = one_hypervisor(lab, POLICY)
    a2 = lab.vm(bridge, 110, "02:00:00:07:30:11", "10.7.30.11/24", gateway="10.7.30.1",
                vm_id="a2")
    b2 = lab.vm(bridge, 111, "02:00:00:07:40:11", "10.7.40.11/24", gateway="10.7.40.1",
                vm_id="b2")
    wait_programmed(daemon.api, ["hv1"], timeout=30)
    probe = lab.write("udp_probe.py", UDP_PROBE)
    # Allowed, nothing listening: b2's kernel answers "port unreachable", a +rel packet.
    assert a2.run("python3", str(probe), "10.7.40.11", "5353").strip() == "refused"
    # Not allowed: the datagram never arrives, so nothing answers it either.
    assert a2.run("python3", str(probe), "10.7.40.11", "5354").strip() == "silence"
    # The other way round is not allowed at all: b2 hears nothing back.
    assert b2.run("python3", str(probe), "10.7.30.11", "5353").strip() == "silence"
    assert daemon.stop() == 0


POLICY6 = """\
version: 1
tenants:
  t1:
    default: allow
    segments:
      web: {vlan: 10, subnet: 10.8.10.0/24, gateway: 10.8.10.1,
            subnet6: "2001:db8:8:10::/64", gateway6: "2001:db8:8:10::1"}
      db:  {vlan: 20, subnet: 10.8.20.0/24, gateway: 10.8.20.1,
            subnet6: "2001:db8:8:20::/64", gateway6: "2001:db8:8:20::1"}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:08:10:11", ip: 10.8.10.11, host: hv1,
       ip6: "2001:db8:8:10::11"}
  w2: {tenant: t1, segment: web, mac: "02:00:00:08:10:12", ip: 10.8.10.12, host: hv1,
       ip6: "2001:db8:8:10::12"}
  d1: {tenant: t1, segment: db,  mac: "02:00:00:08:20:11", ip: 10.8.20.11, host: hv1,
       ip6: "2001:db8:8:20::11"}
"""


def vm6(lab, bridge: str, port: int, name: str, mac: str, ip: str, ip6: str, router: str):
    """A VM with its IPv6 address set by hand (no duplicate address detection wait) and
    the distributed router's link-local address as its default route."""
    vm = lab.vm(bridge, port, mac, f"{ip}/24", vm_id=name)
    for key, value in (("accept_dad", 0), ("addr_gen_mode", 0), ("accept_ra", 0),
                       ("disable_ipv6", 0)):
        subprocess.run(["ip", "netns", "exec", vm.ns, "sysctl", "-qw",
                        f"net.ipv6.conf.eth0.{key}={value}"], check=True)
    vm.run("ip", "-6", "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad")
    vm.run("ip", "-6", "route", "add", "default", "via", router, "dev", "eth0")
    return vm


def ping6(vm, dst: str, hops: int) -> str:
    return vm.run("ping", "-6", "-n", "-c", "1", "-W", "2", "-t", str(hops), dst, check=False)


def test_ping6_with_hop_limit_1_is_answered_by_the_senders_gateway6(lab) -> None:
    from sdnctl.policy.load import parse_policy
    from sdnctl.topology.load import parse_topology

    bridge, daemon = one_hypervisor(lab, POLICY6)
    topo = parse_topology("version: 1\nswitches: {hv1: {dpid: 1, role: hypervisor}}\n", "t")
    policy = parse_policy(POLICY6, "p", topo)
    router = {seg: str(router_link_local(policy.tenants["t1"].segments[seg]))
              for seg in ("web", "db")}
    w1 = vm6(lab, bridge, 100, "w1", "02:00:00:08:10:11", "10.8.10.11", "2001:db8:8:10::11",
             router["web"])
    vm6(lab, bridge, 101, "w2", "02:00:00:08:10:12", "10.8.10.12", "2001:db8:8:10::12",
        router["web"])
    vm6(lab, bridge, 102, "d1", "02:00:00:08:20:11", "10.8.20.11", "2001:db8:8:20::11",
        router["db"])
    wait_programmed(daemon.api, ["hv1"], timeout=30)

    routed = lab.wait_for(lambda: "1 received" in ping6(w1, "2001:db8:8:20::11", hops=2), 15,
                          "w1 -> d1 over IPv6 with hop limit 2")
    assert routed
    expired = ping6(w1, "2001:db8:8:20::11", hops=1)
    assert re.search(r"From 2001:db8:8:10::1 icmp_seq=1 Time exceeded: Hop limit", expired), \
        expired
    switched = ping6(w1, "2001:db8:8:10::12", hops=1)  # same segment: no router on the way
    assert "1 received" in switched and "exceeded" not in switched, switched
    metrics = get_metrics(daemon.api)
    assert 'sdnctl_dhcp_requests_vm_total{vm="w1",outcome="time-exceeded"} 1' in metrics
    assert daemon.stop() == 0
