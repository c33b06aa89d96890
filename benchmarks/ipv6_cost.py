"""Flow cost of IPv6 per VM against IPv4's (issue 13's goal: IPv6 <= IPv4).

    .venv/bin/python benchmarks/ipv6_cost.py [--hypervisors 8] [--per-hv 10]

Compiled (pure): one tenant of three routed segments (web, app, db) with rules
web->app tcp/8080, app->db tcp/5432 and any->web tcp/443+icmp, VMs spread over
every hypervisor behind one fabric switch (the hostile layout: every hypervisor
carries every segment). Compiled twice: IPv4 only, and dual-stack (every segment
with subnet6 and gateway6, every VM its EUI-64 address). Prints the flows of all
hypervisors per VM, IPv4 only, and what IPv6 adds per VM, by stage.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bindings import planned_bindings  # noqa: E402
from sdnctl.compile.compiler import compile_network  # noqa: E402
from sdnctl.policy.load import parse_policy  # noqa: E402
from sdnctl.topology.load import parse_topology  # noqa: E402

TIERS = ("web", "app", "db")


def texts(hypervisors: int, per_hv: int, dual: bool) -> tuple[str, str]:
    topo = ["version: 1", "switches:", "  leaf: {dpid: 4096, role: fabric}"]
    links = ["links:"]
    for h in range(1, hypervisors + 1):
        topo.append(f"  hv{h}: {{dpid: {h}, role: hypervisor}}")
        links.append(f'  - {{a: "hv{h}:1000", b: "leaf:{h}"}}')
    segs, vms = [], []
    for i, tier in enumerate(TIERS):
        six = (f', subnet6: "2001:db8:{i + 1}::/64", gateway6: "2001:db8:{i + 1}::1"'
               if dual else "")
        segs.append(f"      {tier}: {{vlan: {10 + i}, subnet: 10.{i + 1}.0.0/16, "
                    f"gateway: 10.{i + 1}.0.1{six}}}")
    n = 0
    for h in range(1, hypervisors + 1):
        for _ in range(per_hv):
            tier = TIERS[n % 3]
            i = TIERS.index(tier)
            mac = f"02:00:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
            vms.append(f"  v{n}: {{tenant: t, segment: {tier}, mac: \"{mac}\", "
                       f"ip: 10.{i + 1}.{n // 250}.{n % 250 + 2}, "
                       f"labels: {{tier: {tier}}}, host: hv{h}}}")
            n += 1
    policy = ["version: 1", "tenants:", "  t:", "    segments:", *segs, "    groups:",
              *[f"      {t}: {{labels: {{tier: {t}}}}}" for t in TIERS], "    rules:",
              "      - {from: web, to: app, allow: [tcp/8080]}",
              "      - {from: app, to: db, allow: [tcp/5432]}",
              "      - {from: any, to: web, allow: [tcp/443, icmp]}", "vms:", *vms]
    return "\n".join(topo + links) + "\n", "\n".join(policy) + "\n"


def count(hypervisors: int, per_hv: int, dual: bool) -> tuple[int, Counter[str]]:
    topo_text, policy_text = texts(hypervisors, per_hv, dual)
    topo = parse_topology(topo_text, "t.yaml")
    policy = parse_policy(policy_text, "p.yaml", topo)
    flowsets = compile_network(policy, topo, planned_bindings(policy, topo))
    stages: Counter[str] = Counter()
    for name, fs in flowsets.items():
        if name.startswith("hv"):
            stages.update(f.stage for f in fs.flows)
    return len(policy.vms), stages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hypervisors", type=int, default=8)
    ap.add_argument("--per-hv", type=int, default=10)
    args = ap.parse_args(argv)
    vms, v4 = count(args.hypervisors, args.per_hv, False)
    _, dual = count(args.hypervisors, args.per_hv, True)
    v4_total, dual_total = sum(v4.values()), sum(dual.values())
    print(f"{vms} VMs on {args.hypervisors} hypervisors (every hypervisor carries every "
          "segment)")
    print(f"{'stage':<15} {'IPv4 only':>10} {'dual-stack':>11} {'IPv6 adds':>10}")
    for stage in sorted(set(v4) | set(dual), key=lambda s: -dual[s]):
        print(f"{stage:<15} {v4[stage]:>10} {dual[stage]:>11} {dual[stage] - v4[stage]:>10}")
    print(f"{'total':<15} {v4_total:>10} {dual_total:>11} {dual_total - v4_total:>10}")
    print(f"per VM: IPv4 {v4_total / vms:.1f} flows, IPv6 adds {(dual_total - v4_total) / vms:.1f}"
          f" (ratio {(dual_total - v4_total) / v4_total:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
