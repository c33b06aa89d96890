"""North–south failover: loss window when a tenant's active uplink is cut (sdnctl).

    .venv/bin/python benchmarks/ns_failover.py [--runs 5] [--json FILE]

The network of sdnctl/bench/gatewaynet.py under the real daemon: one hypervisor,
a leaf, two gateways whose uplinks share the "internet" namespace (a router and
a server), next hops learned by ARP. Each run: blue's VM pings the server every
10 ms and keeps one NATed TCP connection talking (a line every 20 ms); blue's
active uplink is cut (the router's side of the cable down: the gateway sees no
carrier), the daemon moves blue to the other gateway and announces its address
there; then the uplink is repaired and blue moves back.

Figures per run: the longest silence between ping replies across the cut and
across the repair (the loss window, one 10 ms interval included), the daemon's
reaction (port status seen to the last switch's barrier reply) and whether the
TCP connection opened before the cut survived (in this lab both gateways share
one datapath's conntrack, so the NAT entry made through the first gateway is
found through the second; with gateways on separate machines it is not).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bench.gatewaynet import GatewayNet  # noqa: E402
from sdnctl.bench.report import median, print_table, write_json  # noqa: E402
from sdnctl.lab.session import LabSession  # noqa: E402

SWITCHES = ("hv1", "border1", "border2")


def reaction_ms(net: GatewayNet, after: float) -> float | None:
    """Port status seen to the last switch's barrier reply (updates after `after`)."""
    st = net.status()["switches"]
    took = [st[n]["last_update_s"] for n in SWITCHES
            if st[n]["last_update"] and st[n]["last_update"] > after]
    return max(took) * 1000 if took else None


def one_run(net: GatewayNet) -> dict[str, object]:
    active = net.exit_of("blue")
    other = next(u for u in net.status()["uplinks"] if u != active)
    assert active is not None
    talk = net.talk("bx1", 443, seconds=4.0)
    ping = net.ping("bx1")
    ping.wait_replies(50)
    cut_at = time.time()
    net.cut(active)
    net.wait_for(lambda: net.exit_of("blue") == other, 5, "blue moved")
    time.sleep(1.0)
    cut_gap = ping.stop()
    cut_reaction = reaction_ms(net, cut_at)
    tcp_wait, tcp_alive = net.talked(talk)
    ping = net.ping("bx1")
    ping.wait_replies(50)
    up_at = time.time()
    net.repair(active)
    net.wait_for(lambda: net.exit_of("blue") == active, 5, "blue back")
    time.sleep(1.0)
    return {"uplink": active, "to": other, "cut_window_ms": cut_gap,
            "cut_reaction_ms": cut_reaction, "repair_window_ms": ping.stop(),
            "repair_reaction_ms": reaction_ms(net, up_at),
            "tcp_survived": tcp_alive, "tcp_longest_wait_ms": tcp_wait,
            "moved": [e["message"] for e in net.status()["events"] if e["kind"] == "exits"][-2:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    with LabSession("ns-failover") as session:
        net = GatewayNet(session, session.tmp)
        net.build()
        net.wait_for(net.next_hops_learned, 15, "next hops learned by ARP")
        net.serve(443)
        assert net.ask("bx1", 443) == "203.0.113.12", "blue does not go out"
        rows = [one_run(net) for _ in range(args.runs)]
    for i, row in enumerate(rows, 1):
        row["run"] = i
    print_table(rows, [("run", "run"), ("uplink", "cut"), ("cut_window_ms", "cut window ms"),
                       ("cut_reaction_ms", "daemon ms"), ("repair_window_ms", "repair window ms"),
                       ("repair_reaction_ms", "daemon ms"), ("tcp_survived", "TCP survived"),
                       ("tcp_longest_wait_ms", "TCP longest wait ms")],
                "north–south failover (ping every 10 ms; window = longest silence)")
    summary = {key: median(float(r[key]) for r in rows)  # type: ignore[arg-type]
               for key in ("cut_window_ms", "repair_window_ms", "cut_reaction_ms",
                           "repair_reaction_ms")}
    summary["cut_window_max_ms"] = max(float(r["cut_window_ms"]) for r in rows)  # type: ignore[arg-type]
    summary["tcp_survived"] = sum(bool(r["tcp_survived"]) for r in rows)
    print("medians:", ", ".join(f"{k} {v:.0f}" for k, v in summary.items()
                                if isinstance(v, float)),
          f"; TCP survived {summary['tcp_survived']}/{len(rows)}")
    print("tenants moved:", rows[-1]["moved"])
    write_json("ns_failover", {"rows": rows, "summary": summary}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
