"""IPv6 against IPv4 through sdnctl's pipeline: iperf3 -6 vs -4, same run, same VMs.

    .venv/bin/python benchmarks/ipv6_dataplane.py [--repeats 5] [--seconds 4]

One netdev bridge (a name of its own) holds the compiled flows of a one-hypervisor
dual-stack policy (two VMs in two routed segments, a rule web -> db tcp/5201, so
the traffic is routed, tracked at both ends and judged by a conjunction in both
families). The VMs are network namespaces on veths (`ethtool -K tx off`), with
their policy addresses: IPv4, and IPv6 (EUI-64) with DAD and router
advertisements off. No controller runs, so the routers' IPv6 neighbour entries
are written into the namespaces (what the controller's advertisement would
say); IPv4's ARP is answered by the switch. Each repeat measures -4 and -6 back
to back, in alternating order; the headline is the median of the per-repeat
ratios. Needs root, OVS running, iperf3, ethtool. Everything it makes is removed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bindings import planned_bindings  # noqa: E402
from sdnctl.compile.compiler import compile_network  # noqa: E402
from sdnctl.flows import render_flow_ofctl, render_group_ofctl, render_meter_ofctl  # noqa: E402
from sdnctl.nd.answer import router_link_local  # noqa: E402
from sdnctl.pipeline import gateway_mac  # noqa: E402
from sdnctl.policy.load import parse_policy  # noqa: E402
from sdnctl.topology.load import parse_topology  # noqa: E402

TOPOLOGY = "version: 1\nswitches:\n  hv1: {dpid: 1, role: hypervisor}\n"
POLICY = """\
version: 1
tenants:
  t:
    segments:
      web: {vlan: 10, subnet: 10.61.10.0/24, gateway: 10.61.10.1,
            subnet6: "2001:db8:61:10::/64", gateway6: "2001:db8:61:10::1"}
      db:  {vlan: 20, subnet: 10.61.20.0/24, gateway: 10.61.20.1,
            subnet6: "2001:db8:61:20::/64", gateway6: "2001:db8:61:20::1"}
    groups:
      web: {labels: {tier: web}}
      db:  {labels: {tier: db}}
    rules:
      - {from: web, to: db, allow: [tcp/5201, icmp]}
vms:
  w: {tenant: t, segment: web, mac: "02:00:00:61:10:11", ip: 10.61.10.11,
      labels: {tier: web}, host: hv1}
  d: {tenant: t, segment: db, mac: "02:00:00:61:20:11", ip: 10.61.20.11,
      labels: {tier: db}, host: hv1}
"""


def sh(*cmd: str, check: bool = True) -> str:
    return subprocess.run(cmd, check=check, capture_output=True, text=True).stdout


def ns(name: str, *cmd: str, check: bool = True) -> str:
    return sh("ip", "netns", "exec", name, *cmd, check=check)


class Bench:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.bridge = f"b6{tag}"
        self.netns = {"w": f"v6w{tag}", "d": f"v6d{tag}"}
        self.veths: list[str] = []
        self.topo = parse_topology(TOPOLOGY, "t.yaml")
        self.policy = parse_policy(POLICY, "p.yaml", self.topo)
        self.bindings = planned_bindings(self.policy, self.topo)

    def build(self) -> None:
        fs = compile_network(self.policy, self.topo, self.bindings)["hv1"]
        sh("ovs-vsctl", "add-br", self.bridge, "--", "set", "bridge", self.bridge,
           "datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure")
        assert sh("ovs-vsctl", "get", "bridge", self.bridge, "datapath_type").strip() == "netdev"
        of = ["ovs-ofctl", "-O", "OpenFlow13"]
        for m in fs.meters:
            sh(*of, "add-meter", self.bridge, render_meter_ofctl(m))
        for g in fs.groups:
            sh(*of, "add-group", self.bridge, render_group_ofctl(g))
        subprocess.run([*of, "add-flows", self.bridge, "-"], check=True, text=True,
                       capture_output=True,
                       input="\n".join(render_flow_ofctl(f) for f in fs.flows) + "\n")
        for name, netns in self.netns.items():
            vm = self.policy.vms[name]
            seg = self.policy.segment_of(vm)
            port = self.bindings.ports[name].port
            outer, inner = f"{netns}o", f"{netns}i"
            sh("ip", "netns", "add", netns)
            sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            self.veths.append(outer)
            sh("ip", "link", "set", inner, "netns", netns)
            sh("ip", "link", "set", outer, "up")
            sh("ovs-vsctl", "add-port", self.bridge, outer, "--", "set", "interface", outer,
               f"ofport_request={port}")
            for key in ("accept_ra=0", "accept_dad=0", "dad_transmits=0", "use_tempaddr=0"):
                ns(netns, "sysctl", "-qw", f"net.ipv6.conf.{inner}.{key}", check=False)
                ns(netns, "sysctl", "-qw", f"net.ipv6.conf.default.{key}", check=False)
            ns(netns, "ip", "link", "set", inner, "address", vm.mac)
            ns(netns, "ip", "link", "set", "lo", "up")
            ns(netns, "ip", "link", "set", inner, "up")
            ns(netns, "ethtool", "-K", inner, "tx", "off", check=False)
            ns(netns, "ip", "addr", "add", f"{vm.ip}/{seg.subnet.prefixlen}", "dev", inner)
            ns(netns, "ip", "route", "add", "default", "via", str(seg.gateway))
            assert seg.subnet6 is not None and vm.ip6 is not None
            ns(netns, "ip", "-6", "addr", "add", f"{vm.ip6}/64", "dev", inner, "nodad")
            router = str(router_link_local(seg))
            ns(netns, "ip", "-6", "neigh", "replace", router, "lladdr", gateway_mac(seg.id),
               "dev", inner, "nud", "permanent")
            ns(netns, "ip", "-6", "route", "add", "default", "via", router, "dev", inner)

    def iperf(self, family: int, seconds: float) -> float:
        dst = self.policy.vms["d"]
        address = str(dst.ip6 if family == 6 else dst.ip)
        server = subprocess.Popen(["ip", "netns", "exec", self.netns["d"], "iperf3", "-s", "-1",
                                   "-p", "5201"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            out = ns(self.netns["w"], "iperf3", f"-{family}", "-c", address, "-p", "5201",
                     "-t", str(seconds), "-J", "--connect-timeout", "3000", check=False)
            return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9
        finally:
            if server.poll() is None:
                server.terminate()
            server.wait(timeout=5)

    def remove(self) -> None:
        for netns in self.netns.values():
            pids = sh("ip", "netns", "pids", netns, check=False).split()
            for pid in pids:
                subprocess.run(["kill", pid], check=False)
            subprocess.run(["ip", "netns", "del", netns], check=False)
        for veth in self.veths:
            subprocess.run(["ip", "link", "del", veth], check=False, capture_output=True)
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", self.bridge], check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args(argv)
    bench = Bench()
    try:
        bench.build()
        ratios, v4s, v6s = [], [], []
        for i in range(args.repeats):
            order = (4, 6) if i % 2 == 0 else (6, 4)
            got = {family: bench.iperf(family, args.seconds) for family in order}
            v4s.append(got[4])
            v6s.append(got[6])
            ratios.append(got[6] / got[4])
            print(f"repeat {i + 1}: IPv4 {got[4]:.2f} Gbit/s, IPv6 {got[6]:.2f} Gbit/s, "
                  f"ratio {got[6] / got[4]:.2f}")
        print(f"median: IPv4 {statistics.median(v4s):.2f} Gbit/s, IPv6 "
              f"{statistics.median(v6s):.2f} Gbit/s; ratio median {statistics.median(ratios):.2f}"
              f" (range {min(ratios):.2f}-{max(ratios):.2f})")
    finally:
        bench.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
