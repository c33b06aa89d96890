"""Data plane: iperf3 TCP throughput and ping RTT, sdnctl's pipeline vs one NORMAL flow.

    .venv/bin/python benchmarks/dataplane.py [--repeats 3] [--seconds 4] [--json FILE]

Two copies of the same Mininet network (the three-tier lab's shape: hv1 and hv2
behind a leaf; VMs a1, a2 on hv1 and b1 on hv2, one segment) exist side by side:
- sdnctl: fail mode secure, the daemon programs the full pipeline (port security,
  ARP responder, conntrack out and in, stateful ACL by conjunction, VLAN + MPLS
  across the fabric); no meter on these VMs;
- normal: fail mode standalone, no controller, one `actions=NORMAL` flow per bridge.
Each repeat measures a1->a2 (one hypervisor) and a1->b1 (across the leaf) on both,
back to back, in alternating order; the headline is the per-repeat ratio
sdnctl / normal, as a median. Needs root, OVS running, iperf3, ethtool.

Fabric MTU: sdnctl adds a VLAN tag and an MPLS label (8 bytes) to every frame
that crosses the fabric, so with the veths' default MTU of 1500 full-size TCP
segments between hypervisors are dropped (small pings pass). The run checks that
first (a 1472-byte ping with DF across the fabric at MTU 1500, reported as
`full_size_across_fabric_at_1500`), then raises the fabric links' MTU to
--fabric-mtu (default 1600, as an overlay underlay would have) on BOTH networks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bench import netgen  # noqa: E402
from sdnctl.bench.labnet import Net, iperf_tcp, open_net, ping_rtt_ms, wait_ping  # noqa: E402
from sdnctl.bench.report import median, print_table, ratio, write_json  # noqa: E402
from sdnctl.lab.names import DPID_BITS, rebase_dpids  # noqa: E402
from sdnctl.lab.plan import plan_lab  # noqa: E402
from sdnctl.tools import LAB_TOOLS, require_or_exit  # noqa: E402

PAIRS = (("a1", "a2", "same hypervisor"), ("a1", "b1", "across the fabric"))


def _measure(net: Net, src: str, dst: str, seconds: float) -> dict[str, float]:
    return {"gbps": iperf_tcp(net, src, dst, seconds) / 1e9,
            "rtt_ms": ping_rtt_ms(net, src, dst)}


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0, help="per iperf3 run")
    ap.add_argument("--fabric-mtu", type=int, default=1600,
                    help="MTU of the fabric links on both nets (0: leave at 1500)")
    ap.add_argument("--json")
    args = ap.parse_args()
    require_or_exit(*LAB_TOOLS, "iperf3", "ping", what="benchmarks/dataplane.py")

    topo_doc = rebase_dpids(netgen.three_tier_topology(), netgen.DPID_BASE)
    pol_doc = netgen.pair_policy({"a1": "hv1", "a2": "hv1", "b1": "hv2"}, ["tcp/5201", "icmp"])
    policy, topology = netgen.load(pol_doc, topo_doc)
    tmp = Path(tempfile.mkdtemp(prefix="sdnctl-bench-dp-"))
    pol_path = netgen.write(pol_doc, tmp / "policy.yaml")
    topo_path = netgen.write(topo_doc, tmp / "topology.yaml")

    runs: list[dict[str, object]] = []
    with open_net(plan_lab(policy, topology, "bds"), "sdnctl") as sd, \
            open_net(plan_lab(policy, netgen.load(pol_doc, rebase_dpids(
                netgen.three_tier_topology(), netgen.DPID_BASE | 1 << DPID_BITS))[1], "bdn"),
                     "normal") as nm:
        sd.start_daemon(pol_path, topo_path, tmp / "daemon.log")
        sd.wait_programmed()
        for net in (sd, nm):
            for src, dst, _ in PAIRS:
                wait_ping(net, src, dst)
        sd.set_fabric_mtu(1500)  # the veths' default (the lab itself may raise it)
        wait_ping(sd, "a1", "b1")
        big = sd.hosts["a1"].cmd(f"ping -n -c 3 -W 1 -M do -s 1472 {sd.addresses['b1']}")
        full_size_ok = " 0% packet loss" in big
        print(f"1500-byte IP packet across the fabric at MTU 1500 (sdnctl): "
              f"{'passes' if full_size_ok else 'DROPPED (VLAN + MPLS need 8 bytes more)'}")
        if args.fabric_mtu:
            for net in (sd, nm):
                net.set_fabric_mtu(args.fabric_mtu)
            for net in (sd, nm):
                wait_ping(net, "a1", "b1")
        for r in range(args.repeats):
            for src, dst, where in PAIRS:
                order = (sd, nm) if r % 2 == 0 else (nm, sd)
                got = {net.mode: _measure(net, src, dst, args.seconds) for net in order}
                runs.append({"repeat": r, "pair": f"{src}->{dst}", "where": where, **got})
                print(f"repeat {r} {where}: sdnctl {got['sdnctl']['gbps']:.2f} Gbit/s "
                      f"{got['sdnctl']['rtt_ms']:.3f} ms, NORMAL {got['normal']['gbps']:.2f} "
                      f"Gbit/s {got['normal']['rtt_ms']:.3f} ms", flush=True)
        flows = {"sdnctl": sd.flows(), "normal": nm.flows()}

    rows = []
    for _src, _dst, where in PAIRS:
        mine = [r for r in runs if r["where"] == where]
        sd_g = [r["sdnctl"]["gbps"] for r in mine]  # type: ignore[index]
        nm_g = [r["normal"]["gbps"] for r in mine]  # type: ignore[index]
        sd_t = [r["sdnctl"]["rtt_ms"] for r in mine]  # type: ignore[index]
        nm_t = [r["normal"]["rtt_ms"] for r in mine]  # type: ignore[index]
        rows.append({
            "where": where,
            "sdnctl_gbps": median(sd_g), "normal_gbps": median(nm_g),
            "throughput_ratio": median(ratio(a, b) for a, b in zip(sd_g, nm_g, strict=True)),
            "ratio_range": _spread([a / b for a, b in zip(sd_g, nm_g, strict=True)]),
            "sdnctl_rtt_ms": median(sd_t), "normal_rtt_ms": median(nm_t),
            "rtt_ratio": median(ratio(a, b) for a, b in zip(sd_t, nm_t, strict=True)),
            "repeats": len(mine),
        })
    print_table(rows, [("where", "path"), ("sdnctl_gbps", "sdnctl Gbit/s"),
                       ("normal_gbps", "NORMAL Gbit/s"), ("throughput_ratio", "ratio"),
                       ("ratio_range", "ratio min-max"),
                       ("sdnctl_rtt_ms", "sdnctl RTT ms"), ("normal_rtt_ms", "NORMAL RTT ms"),
                       ("rtt_ratio", "RTT ratio")],
                "data plane, medians (ratio = sdnctl / NORMAL, per repeat, then median)")
    print(f"flows installed: sdnctl {flows['sdnctl']}, NORMAL {flows['normal']}")
    goal = min(r["throughput_ratio"] or 0 for r in rows)
    print(f"goal >= 0.80 of NORMAL throughput: {'met' if goal >= 0.8 else 'MISSED'} "
          f"(worst path {goal:.2f})")
    write_json("dataplane", {"rows": rows, "runs": runs, "flows": flows,
                             "fabric_mtu": args.fabric_mtu or 1500,
                             "full_size_across_fabric_at_1500": full_size_ok,
                             "goal_throughput_ratio_min": 0.8, "worst_ratio": goal}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
