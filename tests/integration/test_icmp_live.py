"""The ICMP a network needs, on real OVS with the real daemon.

- The distributed router answers "time exceeded": `ping -t 1` from a VM to a VM of
  another segment is answered by the sender's own gateway address (what
  traceroute's first hop shows), through the metered controller path; `ping -t 2`
  reaches the other VM; a TTL-1 ping inside a segment is switched, not answered by
  the router; and the daemon counts what it sent.
- Errors related to an allowed connection come back through conntrack (`+rel`):
  UDP to an allowed port where nothing listens is refused by the server's kernel
  with "port unreachable", routed back to the client, in a default-deny tenant.
"""

from __future__ import annotations

import re

import pytest
from daemon_cmd import one_hypervisor

from sdnctl.client.api import get_metrics, wait_programmed

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
