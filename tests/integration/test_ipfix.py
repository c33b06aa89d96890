"""`sdnctl run --ipfix`: flow records for a known connection reach a collector.

One netdev bridge stands for hypervisor hv1, with VMs a and b plugged into namespaces
by `sdnctl vm plug`. The daemon, told to export IPFIX to a small collector of the
test's own (tests/integration/ipfix_collector.py, UDP on loopback), configures the
bridge through OVSDB; a sends exactly 5 UDP datagrams from a known port and opens one
TCP connection to b. The records must name both (addresses, ports, protocol), count
the 5 datagrams exactly, carry the switch's observation domain and a's interface, and
the export must be gone from OVSDB when the daemon stops.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from ipfix_collector import Collector

from sdnctl.cli import main
from sdnctl.client.api import get_status, wait_programmed
from sdnctl.southbound.vmwire import host_ifnames

POLICY = """\
version: 1
tenants:
  t1:
    default: allow
    segments:
      web: {{vlan: 21, subnet: 10.21.0.0/24}}
vms:
  {a}: {{tenant: t1, segment: web, mac: "02:00:00:21:00:0a", ip: 10.21.0.10, host: hv1}}
  {b}: {{tenant: t1, segment: web, mac: "02:00:00:21:00:0b", ip: 10.21.0.11, host: hv1}}
"""
SEND = """\
import socket, sys
kind, n = sys.argv[1], int(sys.argv[2])
if kind == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 40001))
    for _ in range(n):
        s.sendto(b"ipfix", ("10.21.0.11", 5353))
else:
    s = socket.socket()
    s.bind(("0.0.0.0", 40002))
    s.settimeout(3)
    s.connect(("10.21.0.11", 80))
    s.sendall(b"ping\\n")
    assert s.recv(16).startswith(b"pong")
    s.close()
"""


@dataclass
class Guest:
    """What `lab.serve` needs of a VM: its namespace."""

    ns: str


def matching(records: list[dict], proto: int, sport: int, dport: int) -> list[dict]:
    return [r for r in records if r.get("protocolIdentifier") == proto
            and r.get("sourceTransportPort") == sport
            and r.get("destinationTransportPort") == dport
            and r.get("sourceIPv4Address") == IPv4Address("10.21.0.10")
            and r.get("destinationIPv4Address") == IPv4Address("10.21.0.11")]


@pytest.mark.ovs
def test_ipfix_records_of_a_known_connection_reach_the_collector(lab, capsys, tmp_path):
    names = {k: f"{k}{secrets.token_hex(3)}" for k in "ab"}
    dpid = lab.random_dpid()
    topo = lab.write("topology.yaml", f"""\
        version: 1
        switches:
          hv1: {{dpid: {dpid}, role: hypervisor}}
        links: []
        """)
    policy = lab.write("policy.yaml", POLICY.format(**names))
    of_port = lab.free_port()
    bridge = lab.bridge(dpid, controller_port=of_port)
    ns = {}
    for key, vm in names.items():
        for ifname in host_ifnames(vm):
            lab.cleanup.veth(ifname)
        ns[key] = lab.cleanup.netns(lab.unique())
        assert main(["vm", "plug", vm, "--netns", ns[key], "-p", str(policy),
                     "-t", str(topo)]) == 0, capsys.readouterr().err
    collector = Collector()
    lab.cleanup.add("the IPFIX collector", collector.close)
    export = (f", ipfix=__import__('sdnctl.southbound.ipfix', fromlist=['_'])"
              f".IpfixExport({collector.address!r}, 1, 1)")
    daemon = lab.daemon(Path(policy), Path(topo), of_port=of_port, options=export)
    wait_programmed(daemon.api, ["hv1"], timeout=30)
    lab.wait_for(lambda: (get_status(daemon.api).get("ipfix") or {}).get("switches") == ["hv1"],
                 10, "the daemon's IPFIX export on hv1")
    assert lab.sh(["ovs-vsctl", "get", "IPFIX",
                   lab.sh(["ovs-vsctl", "get", "Bridge", bridge, "ipfix"]).strip(),
                   "targets"]).strip() == f'["{collector.address}"]'

    lab.serve(Guest(ns["b"]), "tcp/80")
    for kind, n in (("udp", "5"), ("tcp", "1")):
        subprocess.run(["ip", "netns", "exec", ns["a"], sys.executable, "-c", SEND, kind, n],
                       check=True, timeout=20)

    def exported() -> bool:
        udp = [r for r in matching(collector.records, 17, 40001, 5353)
               if r.get("flowDirection") == 0]
        return sum(r["packetDeltaCount"] for r in udp) >= 5 \
            and matching(collector.records, 6, 40002, 80)

    lab.wait_for(exported, 15, "records of a's UDP datagrams and TCP connection")
    time.sleep(1.5)  # a late duplicate would show now
    udp_in = [r for r in matching(collector.records, 17, 40001, 5353)
              if r.get("flowDirection") == 0]
    tcp = [r for r in matching(collector.records, 6, 40002, 80) if r.get("flowDirection") == 0]
    # Each datagram once where it entered hv1, from a's interface, in hv1's domain.
    assert sum(r["packetDeltaCount"] for r in udp_in) == 5
    assert {r["observationDomainId"] for r in udp_in + tcp} == {dpid & 0xFFFFFFFF}
    assert {r.get("interfaceName") for r in udp_in + tcp} == {host_ifnames(names["a"])[0]}
    assert {r.get("sourceMacAddress") for r in udp_in} == {"02:00:00:21:00:0a"}
    assert sum(r["packetDeltaCount"] for r in tcp) >= 4  # SYN, ACK, data, FIN at least
    with capsys.disabled():
        print(f"\nIPFIX: {collector.messages} messages, {len(collector.records)} records; "
              f"a->b udp/5353 from 40001: {len(udp_in)} ingress records, "
              f"{sum(r['packetDeltaCount'] for r in udp_in)} packets; tcp/80 from 40002: "
              f"{sum(r['packetDeltaCount'] for r in tcp)} packets")

    assert daemon.stop() == 0
    assert lab.sh(["ovs-vsctl", "get", "Bridge", bridge, "ipfix"]).strip() == "[]"
