"""North–south throughput: iperf3 from a VM to the internet through SNAT, against the
same VM to another VM over as many bridges without NAT, in one run.

    .venv/bin/python benchmarks/northsouth_dataplane.py [--repeats 5] [--seconds 4] [--json F]

The Mininet lab (userspace OVS) of a small data centre: hv1, hv2 and a gateway
`border` behind one `leaf`; VM `a` on hv1, VM `b` on hv2, both in one routed
segment of tenant `t`, which goes out through its SNAT address. The switches hold
the compiled flows (sdnctl.lab.static: no controller in the measured path).

- SNAT: a -> the lab's internet server (198.51.100.10): hv1 -> leaf -> border
  (conntrack in the tenant's gateway zone, source NAT) -> uplink -> the internet's
  router, which delivers locally.
- no NAT: a -> b: hv1 -> leaf -> hv2 -> b. Same number of OVS bridges (three) and
  veths, conntrack at both hypervisors; what differs is the gateway's NAT
  conntrack in place of hv2's, and the router's Linux bridge in place of b's veth.

Each repeat measures both back to back, in alternating order; the headline is the
median of the per-repeat ratios SNAT / no NAT (goal: at least 0.80). Needs root,
OVS, Mininet, iperf3, ethtool. Everything it makes is removed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.lab.names import free_prefix, random_dpid_base, rebase_dpid  # noqa: E402
from sdnctl.lab.plan import LabError, plan_lab  # noqa: E402
from sdnctl.lab.session import LabSession  # noqa: E402
from sdnctl.lab.static import build_static  # noqa: E402
from sdnctl.policy.load import parse_policy  # noqa: E402
from sdnctl.policy.model import Policy  # noqa: E402
from sdnctl.tools import LAB_TOOLS, require_or_exit  # noqa: E402
from sdnctl.topology.load import parse_topology  # noqa: E402
from sdnctl.topology.model import Topology  # noqa: E402
from sdnctl.verify.outside import ROUTER_MAC  # noqa: E402

if TYPE_CHECKING:
    from mininet.node import Node

PORT = 5201
TOPOLOGY = """\
version: 1
switches:
  hv1:    {{dpid: {hv1}, role: hypervisor}}
  hv2:    {{dpid: {hv2}, role: hypervisor}}
  leaf:   {{dpid: {leaf}, role: fabric}}
  border: {{dpid: {border}, role: gateway,
           uplink: {{port: 2, ip: 203.0.113.2/24, next_hop: 203.0.113.1,
                    next_hop_mac: "{router}"}}}}
links:
  - {{a: "hv1:10", b: "leaf:1"}}
  - {{a: "hv2:10", b: "leaf:2"}}
  - {{a: "border:1", b: "leaf:3"}}
"""
POLICY = """\
version: 1
tenants:
  t:
    snat: 203.0.113.10
    segments:
      web: {vlan: 10, subnet: 10.71.10.0/24, gateway: 10.71.10.1}
    rules:
      - {from: any, to: any, allow: [tcp/5201, icmp]}
      - {from: any, to: external, allow: [tcp/5201, icmp]}
vms:
  a: {tenant: t, segment: web, mac: "02:00:00:71:10:11", ip: 10.71.10.11, host: hv1}
  b: {tenant: t, segment: web, mac: "02:00:00:71:10:12", ip: 10.71.10.12, host: hv2}
"""


def network() -> tuple[Policy, Topology]:
    """The files above, with datapath ids of their own (other labs may run)."""
    base = random_dpid_base(0xB75)
    text = TOPOLOGY.format(router=ROUTER_MAC, **{
        name: rebase_dpid(dpid, base)
        for name, dpid in (("hv1", 1), ("hv2", 2), ("leaf", 16), ("border", 0x30))})
    topo = parse_topology(text, "northsouth-bench.topology.yaml")
    return parse_policy(POLICY, "northsouth-bench.policy.yaml", topo), topo


def iperf(client: Node, server: Node, address: str, seconds: float) -> float:
    """Gbit/s the server received from `client`, over TCP."""
    srv = server.popen(["iperf3", "-s", "-1", "-B", address, "-p", str(PORT)],
                       stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = client.cmd(f"iperf3 -c {address} -p {PORT} -t {seconds} -J"
                         " --connect-timeout 3000")
        try:
            doc = json.loads(out[out.index("{"):])
            return float(doc["end"]["sum_received"]["bits_per_second"]) / 1e9
        except (ValueError, KeyError) as exc:
            raise LabError(f"iperf3 to {address}: {out.strip()[-300:]}") from exc
    finally:
        if srv.poll() is None:
            srv.terminate()
        srv.communicate(timeout=5)


def wait_ping(host: Node, address: str) -> None:
    for _ in range(20):
        if " 0% packet loss" in host.cmd(f"ping -n -c 1 -W 1 {address}"):
            return
    raise LabError(f"no ping to {address}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0, help="per iperf3 run")
    ap.add_argument("--json")
    args = ap.parse_args()
    require_or_exit(*LAB_TOOLS, "iperf3", "ping", what="benchmarks/northsouth_dataplane.py")
    policy, topo = network()
    runs: list[dict[str, float]] = []
    with LabSession("bench-ns") as session:
        plan = plan_lab(policy, topo, free_prefix("q"))
        lab = build_static(session, plan, policy, topo)
        assert lab.internet is not None and plan.internet is not None
        a, b, inet = lab.hosts["a"], lab.hosts["b"], lab.internet
        server = str(plan.internet.server)
        wait_ping(a, server)
        wait_ping(a, "10.71.10.12")
        for r in range(args.repeats):
            order = ("snat", "plain") if r % 2 == 0 else ("plain", "snat")
            got = {}
            for kind in order:
                got[kind] = (iperf(a, inet, server, args.seconds) if kind == "snat"
                             else iperf(a, b, "10.71.10.12", args.seconds))
            runs.append(got)
            print(f"repeat {r}: SNAT {got['snat']:.2f} Gbit/s, no NAT {got['plain']:.2f}"
                  f" Gbit/s, ratio {got['snat'] / got['plain']:.2f}", flush=True)
    ratios = [x["snat"] / x["plain"] for x in runs]
    summary = {
        "snat_gbps": round(statistics.median(x["snat"] for x in runs), 3),
        "plain_gbps": round(statistics.median(x["plain"] for x in runs), 3),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
        "repeats": len(runs), "seconds": args.seconds,
    }
    print(f"north–south through SNAT: {summary['snat_gbps']} Gbit/s; same length without"
          f" NAT: {summary['plain_gbps']} Gbit/s; median ratio {summary['ratio']}"
          f" ({summary['ratio_min']}-{summary['ratio_max']}); goal >= 0.80:"
          f" {'met' if summary['ratio'] >= 0.8 else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
