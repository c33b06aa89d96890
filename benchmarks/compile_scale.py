"""Compile synthetic leaf-spine data centres and print time, peak memory and flow counts.

    .venv/bin/python benchmarks/compile_scale.py            # 1k, 5k, 20k VMs
    .venv/bin/python benchmarks/compile_scale.py 5000 --json out.json

Besides the full compile, a one-rule edit (tenant t0's web->app rule gains
tcp/9090) is measured through the daemon's own code (`ControllerState.recompile`
with its incremental compiler, then the diff), against the full recompile it
replaced, run in the same process as a baseline; and the flow-mods the edit
costs (see `measure_edit`). JSON goes to
benchmarks/results/compile.json unless --json says otherwise.

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
import dataclasses
import gc
import statistics
import sys
import time
import tracemalloc
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bench.report import median, write_json  # noqa: E402
from sdnctl.bindings import Bindings, planned_bindings  # noqa: E402
from sdnctl.compile.compiler import compile_network  # noqa: E402
from sdnctl.diff import diff_flowsets  # noqa: E402
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


EDIT_REPEATS = 3


def edit_rule(policy: Policy, tenant: str, extra: Service) -> Policy:
    """The one-rule edit: the tenant's web->app rule also allows `extra`."""
    t = policy.tenants[tenant]
    rules = tuple(
        dataclasses.replace(r, services=(*r.services, extra)) if (r.src, r.dst) == ("web", "app")
        else r for r in t.rules
    )
    tenants = dict(policy.tenants)
    tenants[tenant] = dataclasses.replace(t, rules=rules)
    return Policy(MappingProxyType(tenants), policy.vms)


def reloaded(policy: Policy) -> Policy:
    """`policy` as a reload of its file gives it to the daemon: equal, but every
    tenant and VM a new object (so no comparison can stop at identity)."""
    return Policy(
        MappingProxyType({n: dataclasses.replace(t) for n, t in policy.tenants.items()}),
        MappingProxyType({n: dataclasses.replace(v) for n, v in policy.vms.items()}),
    )


def measure_edit(policy: Policy, topo: Topology, bindings: Bindings) -> dict[str, object]:
    """Time, memory and flow-mods of a one-rule edit, medians of EDIT_REPEATS.

    `daemon`: what the daemon does on a reload, through its own code:
    `ControllerState.recompile` (the incremental compiler recompiles the switches
    the edit can reach, normalises those, compares them with what each switch
    should hold) and then the app's diff of the switches that changed.
    `full`: the baseline, run in the same process: compile every switch,
    normalise every FlowSet, compare and diff (what the daemon did before the
    incremental compiler). Wall clock, one core.
    """
    from sdnctl.live.state import ControllerState, PolicyInfo  # the daemon's state
    from sdnctl.southbound.ofp import normalize_flowset  # the daemon's normalisation
    from sdnctl.southbound.ovsdb import BindingSnapshot

    tenant = "t0"
    edits = [reloaded(edit_rule(policy, tenant, Service(Proto.TCP, 9090, 9090))),
             reloaded(policy)]
    state = ControllerState(policy, topo, PolicyInfo("bench", "", 0.0),
                            snapshot=BindingSnapshot(bindings))
    state.recompile()  # the daemon's start: a full compile
    current = {n: sw.desired for n, sw in state.switches.items()}
    daemon_s: list[float] = []
    parts: dict[str, list[float]] = {"recompile": [], "diff": []}
    full_s: list[float] = []
    mods: list[int] = []
    touched: list[int] = []
    recompiled: list[int] = []
    peak = 0
    for i in range(EDIT_REPEATS * 2):
        new_policy = edits[i % 2]  # edit, then undo: every round is a real change
        gc.collect()
        if i == 0:
            tracemalloc.start()
        t0 = time.perf_counter()
        state.policy = new_policy
        changed = state.recompile()
        t1 = time.perf_counter()
        diffs = {sw.name: diff_flowsets(current[sw.name], sw.desired) for sw in changed}
        t2 = time.perf_counter()
        if i == 0:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        else:
            daemon_s.append(t2 - t0)
            parts["recompile"].append(t1 - t0)
            parts["diff"].append(t2 - t1)
        mods.append(sum(len(d) for d in diffs.values()))
        touched.append(len(changed))
        scope = state.compile_fn.last_scope  # type: ignore[attr-defined]
        recompiled.append(len(scope.switches))

        gc.collect()
        t0 = time.perf_counter()
        new = {n: normalize_flowset(fs)
               for n, fs in compile_network(new_policy, topo, bindings).items()}
        full_diffs = {n: diff_flowsets(current[n], fs) for n, fs in new.items()
                      if fs != current[n]}
        full_s.append(time.perf_counter() - t0)
        if sum(len(d) for d in full_diffs.values()) != mods[-1]:
            raise AssertionError("the incremental recompile missed a switch the edit changes")
        current = new
    daemon_ms = _ms(median(daemon_s))
    full_ms = _ms(median(full_s))
    return {
        "edit": f"{tenant}: rule web->app gains tcp/9090 (then reverted), median of "
                f"{len(daemon_s)}",
        "daemon_recompile_ms": round(daemon_ms, 1),
        "daemon_parts_ms": {k: round(_ms(median(v)), 1) for k, v in parts.items()},
        "full_recompile_ms": round(full_ms, 1),
        "speedup_vs_full": round(full_ms / max(daemon_ms, 1e-9), 1),
        "edit_peak_mem_mb": round(peak / 2**20, 1),
        "switches_recompiled": max(recompiled),
        "switches_changed": max(touched),
        "flow_mods": median(mods),
    }


def _ms(seconds: float | None) -> float:
    return (seconds or 0.0) * 1000


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
    del flowsets
    edit = measure_edit(policy, topo, bindings)
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
        "one_rule_edit": edit,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[1000, 5000, 20000])
    ap.add_argument("--json", help="write the results here (default benchmarks/results/)")
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
    print()
    print("one-rule edit (daemon = ControllerState.recompile, incremental, + diff; "
          "full = compile all + normalise + compare/diff, same process)")
    print(f"{'VMs':>6} {'daemon ms':>10} {'(recompile/diff)':>17} {'full ms':>9} "
          f"{'speed-up':>9} {'recompiled':>11} {'changed':>8} {'flow-mods':>10} "
          f"{'edit peak MB':>13}")
    for r in rows:
        e = r["one_rule_edit"]
        p = e["daemon_parts_ms"]
        split = f"{p['recompile']:.1f}/{p['diff']:.1f}"
        print(f"{r['vms']:>6} {e['daemon_recompile_ms']:>10} {split:>17} "
              f"{e['full_recompile_ms']:>9} {e['speedup_vs_full']:>8}x "
              f"{e['switches_recompiled']:>11} {e['switches_changed']:>8} {e['flow_mods']:>10} "
              f"{e['edit_peak_mem_mb']:>13}")
    write_json("compile", {"rows": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
