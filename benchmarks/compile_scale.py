"""Compile synthetic leaf-spine data centres and print time, peak memory and flow counts.

    .venv/bin/python benchmarks/compile_scale.py            # 1k, 5k, 20k VMs
    .venv/bin/python benchmarks/compile_scale.py 5000 --json out.json

Each data centre: 25 VMs per hypervisor, 20 hypervisors per leaf pair (every
hypervisor dual-homed), 4 spines; tenants of 50 VMs, each with routed web/app
segments and an unrouted db segment, label groups and four rules; a tenant's VMs
sit on a few neighbouring hypervisors, as a scheduler with affinity would put them.
Goal (issue 2): 5,000 VMs on 200 hypervisors in under 3 s on one core, cost
linear in VMs. Hypervisor flows depend on the tenants a hypervisor hosts, fabric
flows on the number of hypervisors (forwarding is by hypervisor label), so total
flows grow with the data centre, not with its square. Figures are printed, not
asserted: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import tracemalloc
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bindings import planned_bindings  # noqa: E402
from sdnctl.compile.compiler import compile_network  # noqa: E402
from sdnctl.policy.model import (  # noqa: E402
    ANY,
    VM,
    Default,
    Group,
    Policy,
    Proto,
    Rule,
    Segment,
    Service,
    Tenant,
)
from sdnctl.topology.model import Link, PortRef, Role, Switch, Topology  # noqa: E402

VMS_PER_HV = 25
HVS_PER_LEAF_PAIR = 20
SPINES = 4
VMS_PER_TENANT = 50


def datacentre(n_vms: int) -> tuple[Policy, Topology]:
    n_hv = max(1, n_vms // VMS_PER_HV)
    n_pairs = max(1, -(-n_hv // HVS_PER_LEAF_PAIR))
    switches: dict[str, Switch] = {}
    links: list[Link] = []
    for s in range(SPINES):
        switches[f"spine{s}"] = Switch(f"spine{s}", 0x10000 + s, Role.FABRIC)
    for p in range(n_pairs):
        for side in (0, 1):
            leaf = f"leaf{p}{'ab'[side]}"
            switches[leaf] = Switch(leaf, 0x20000 + 2 * p + side, Role.FABRIC)
            for s in range(SPINES):
                links.append(Link(PortRef(leaf, 1 + s), PortRef(f"spine{s}", 1 + 2 * p + side)))
    for h in range(n_hv):
        hv = f"hv{h}"
        switches[hv] = Switch(hv, 1 + h, Role.HYPERVISOR)
        pair, slot = divmod(h, HVS_PER_LEAF_PAIR)
        for side in (0, 1):
            links.append(Link(PortRef(hv, 1 + side), PortRef(f"leaf{pair}{'ab'[side]}", 10 + slot)))
    topo = Topology(MappingProxyType(switches), tuple(links))

    tenants: dict[str, Tenant] = {}
    vms: dict[str, VM] = {}
    n_tenants = max(1, n_vms // VMS_PER_TENANT)
    tiers = ("web", "app", "db")
    for t in range(n_tenants):
        name = f"t{t}"
        segs = {
            tier: Segment(name, tier, 3 * t + i + 1, IPv4Network(f"10.{i}.0.0/16"),
                          IPv4Address(f"10.{i}.0.1") if tier != "db" else None)
            for i, tier in enumerate(tiers)
        }
        groups = {tier: Group(name, tier, MappingProxyType({"tier": tier})) for tier in tiers}
        rules = (
            Rule(name, ANY, "web", (Service(Proto.TCP, 80, 80), Service(Proto.TCP, 443, 443))),
            Rule(name, "web", "app", (Service(Proto.TCP, 8000, 8100),)),
            Rule(name, "app", "db", (Service(Proto.TCP, 5432, 5432),)),
            Rule(name, "app", "app", (Service(Proto.UDP, 7000, 7000), Service(Proto.ICMP))),
        )
        tenants[name] = Tenant(name, Default.DENY, MappingProxyType(segs),
                               MappingProxyType(groups), rules)
        for v in range(VMS_PER_TENANT):
            idx = t * VMS_PER_TENANT + v
            if idx >= n_vms:
                break
            tier = tiers[v % 3]
            vm_name = f"t{t}vm{v}"
            vms[vm_name] = VM(
                vm_name, name, tier, f"02:00:{idx >> 24 & 0xFF:02x}:{idx >> 16 & 0xFF:02x}:"
                f"{idx >> 8 & 0xFF:02x}:{idx & 0xFF:02x}",
                IPv4Address(f"10.{tiers.index(tier)}.{v // 200}.{10 + v % 200}"),
                MappingProxyType({"tier": tier}), f"hv{idx // VMS_PER_HV % n_hv}",
                100 if v % 5 == 0 else None,
            )
    return Policy(MappingProxyType(tenants), MappingProxyType(vms)), topo


def measure(n_vms: int) -> dict[str, object]:
    policy, topo = datacentre(n_vms)
    bindings = planned_bindings(policy, topo)
    gc.collect()
    t0 = time.process_time()
    flowsets = compile_network(policy, topo, bindings)
    cpu = time.process_time() - t0
    del flowsets
    gc.collect()
    tracemalloc.start()
    flowsets = compile_network(policy, topo, bindings)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    hv = [len(fs.flows) for n, fs in flowsets.items() if topo.switches[n].role is Role.HYPERVISOR]
    fab = [len(fs.flows) for n, fs in flowsets.items() if topo.switches[n].role is Role.FABRIC]
    return {
        "vms": len(policy.vms), "hypervisors": len(hv), "fabric_switches": len(fab),
        "tenants": len(policy.tenants), "compile_cpu_s": round(cpu, 3),
        "us_per_vm": round(cpu / len(policy.vms) * 1e6, 1),
        "us_per_flow": round(cpu / (sum(hv) + sum(fab)) * 1e6, 1),
        "peak_mem_mb": round(peak / 2**20, 1),
        "flows_total": sum(hv) + sum(fab),
        "flows_per_hypervisor": {"min": min(hv), "median": int(statistics.median(hv)),
                                 "max": max(hv)},
        "flows_per_fabric_switch": {"min": min(fab), "median": int(statistics.median(fab)),
                                    "max": max(fab)},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[1000, 5000, 20000])
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    rows = [measure(n) for n in args.sizes]
    print(f"{'VMs':>6} {'HVs':>5} {'cpu s':>7} {'us/VM':>7} {'peak MB':>8} {'flows':>9} "
          f"{'hv flows min/med/max':>22} {'fabric flows min/med/max':>26}")
    for r in rows:
        h, f = r["flows_per_hypervisor"], r["flows_per_fabric_switch"]
        print(f"{r['vms']:>6} {r['hypervisors']:>5} {r['compile_cpu_s']:>7} {r['us_per_vm']:>7} "
              f"{r['peak_mem_mb']:>8} {r['flows_total']:>9} "
              f"{h['min']:>8}/{h['median']}/{h['max']:<8} {f['min']:>10}/{f['median']}/{f['max']}")
    if len(rows) > 1:
        base = rows[0]
        for r in rows[1:]:
            ratio = r["compile_cpu_s"] / max(base["compile_cpu_s"], 1e-9)
            vm_ratio = r["vms"] / base["vms"]
            flow_ratio = r["flows_total"] / base["flows_total"]
            print(f"{r['vms']} VMs vs {base['vms']}: {vm_ratio:.0f}x the VMs, "
                  f"{flow_ratio:.1f}x the flows, {ratio:.1f}x the time "
                  f"({ratio / vm_ratio:.2f}x per VM)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
