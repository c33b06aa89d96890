"""Compile synthetic leaf-spine data centres: time, memory, flows, and what each edit costs.

    .venv/bin/python benchmarks/compile_scale.py                      # 1k, 5k, 20k; both placements
    .venv/bin/python benchmarks/compile_scale.py 5000 --placement scattered --json out.json

Placements (sdnctl.bench.datacentre): `packed`, tenants of 50 VMs on a few
neighbouring hypervisors (a scheduler with affinity), and `scattered`, the
hostile case, tenants of 125 VMs spread over every hypervisor (VM k on
hypervisor k * 7919 mod n). 25 VMs per hypervisor, dual-homed to leaf pairs,
4 spines; web/app (routed) and db segments, label groups, four rules per tenant.

Per data centre:
- the full compile (`compile_network`), wall and CPU time, peak memory
  (tracemalloc, a separate run), flows per hypervisor, and the distinct flows
  actually computed (a part shared by many hypervisors counts once);
- each kind of edit through the daemon's own code: `ControllerState.recompile`
  (the incremental compiler, normalisation, the change check) plus the diff of
  every switch that changed (what the app turns into flow-mods). Each edit is
  applied and reverted, medians of 3 rounds; the figure is compared with the full
  compile measured in the same process. Switches changed and flow-mods are exact.

Figures are printed, not asserted: this is a benchmark, not a test. JSON goes to
benchmarks/results/compile.json unless --json says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bench.datacentre import PLACEMENTS, datacentre, vm_of  # noqa: E402
from sdnctl.bench.report import median, write_json  # noqa: E402
from sdnctl.bindings import Bindings, planned_bindings  # noqa: E402
from sdnctl.compile.compiler import compile_network  # noqa: E402
from sdnctl.diff import diff_flowsets  # noqa: E402
from sdnctl.flows import FlowSet  # noqa: E402
from sdnctl.policy.model import Policy, Proto, Service  # noqa: E402
from sdnctl.topology.model import PortRef, Role, Topology  # noqa: E402

ROUNDS = 3
Inputs = tuple[Policy, Bindings]


def _tenants(policy: Policy, tenant: str, **changes: object) -> Policy:
    t = dataclasses.replace(policy.tenants[tenant], **changes)
    return Policy(MappingProxyType(dict(policy.tenants, **{tenant: t})), policy.vms)


def _vms(policy: Policy, vms: dict) -> Policy:
    return Policy(policy.tenants, MappingProxyType(vms))


OBJECTS = "reread"  # how an edited policy reaches the compiler (--objects)


def reloaded(policy: Policy) -> Policy:
    """`policy` as a reload of its file gives it to the daemon.

    `reread` (the daemon since its policy re-reader, sdnctl/policy/reread.py): the
    tenants and VMs the edit did not touch are the objects of the last read, so a
    comparison stops at identity. `full`: every tenant and VM a new object, as a
    full read gives them (the re-reader falls back to one when in doubt)."""
    if OBJECTS == "reread":  # new mappings, the very same objects where unchanged
        return Policy(MappingProxyType(dict(policy.tenants)), MappingProxyType(dict(policy.vms)))
    return Policy(
        MappingProxyType({n: dataclasses.replace(t) for n, t in policy.tenants.items()}),
        MappingProxyType({n: dataclasses.replace(v) for n, v in policy.vms.items()}),
    )


def edits(policy: Policy, topo: Topology, bindings: Bindings) -> dict[str, Inputs]:
    """Each kind of edit the daemon sees, applied to (policy, bindings)."""
    t0 = policy.tenants["t0"]
    rules = tuple(dataclasses.replace(r, services=(*r.services, Service(Proto.TCP, 9090, 9090)))
                  if (r.src, r.dst) == ("web", "app") else r for r in t0.rules)
    victim = "t0vm3"  # a web VM of t0 (tiers go web, app, db, web, ...)
    relabelled = dict(policy.vms)
    relabelled[victim] = dataclasses.replace(
        policy.vms[victim], labels=MappingProxyType({"tier": "app"}))
    size = sum(1 for vm in policy.vms.values() if vm.tenant == "t0")
    hosts = sorted((n for n, s in topo.switches.items() if s.role is Role.HYPERVISOR),
                   key=lambda n: int(n[2:]))
    newcomer = vm_of("t0", size + 1, len(policy.vms) + 7, hosts[-1])  # an app VM
    added = dict(policy.vms, **{newcomer.name: newcomer})
    bound = Bindings(MappingProxyType(dict(bindings.ports,
                                           **{newcomer.name: PortRef(hosts[-1], 999)})))
    removed = {n: v for n, v in policy.vms.items() if n != victim}
    unbound = Bindings(MappingProxyType({n: r for n, r in bindings.ports.items() if n != victim}))
    where = bindings.ports[victim]
    dest = hosts[-1] if where.switch != hosts[-1] else hosts[0]
    moved = Bindings(MappingProxyType(dict(bindings.ports, **{victim: PortRef(dest, 998)})))
    return {
        "rule edit": (reloaded(_tenants(policy, "t0", rules=rules)), bindings),
        "group membership": (reloaded(_vms(policy, relabelled)), bindings),
        "VM added": (reloaded(_vms(policy, added)), bound),
        "VM removed": (reloaded(_vms(policy, removed)), unbound),
        "VM moved": (policy, moved),
    }


def measure_edits(policy: Policy, topo: Topology, bindings: Bindings) -> dict[str, object]:
    from sdnctl.live.state import ControllerState, PolicyInfo  # the daemon's state
    from sdnctl.southbound.ovsdb import BindingSnapshot

    state = ControllerState(policy, topo, PolicyInfo("bench", "", 0.0),
                            snapshot=BindingSnapshot(bindings))
    state.recompile()  # the daemon's start: a full compile
    out: dict[str, object] = {}
    kinds: dict[str, Callable[[], tuple[Inputs, Inputs]]] = {
        k: (lambda v=v: (v, (policy, bindings))) for k, v in edits(policy, topo, bindings).items()
    }
    for kind, pair in kinds.items():
        applied, reverted = pair()
        took: list[float] = []
        parts_ms: dict[str, list[float]] = {"recompile": [], "diff": []}
        mods: list[int] = []
        changed: list[int] = []
        for _ in range(ROUNDS):
            for new_policy, new_bindings in (applied, reverted):
                current = {n: sw.desired for n, sw in state.switches.items()}
                gc.collect()
                t0 = time.perf_counter()
                state.adopt(dataclasses.replace(state.inputs, policy=new_policy))
                state.snapshot = BindingSnapshot(new_bindings)
                sws = state.recompile()
                t1 = time.perf_counter()
                diffs = [diff_flowsets(current[sw.name], sw.desired) for sw in sws]
                t2 = time.perf_counter()
                took.append(t2 - t0)
                parts_ms["recompile"].append(t1 - t0)
                parts_ms["diff"].append(t2 - t1)
                mods.append(sum(len(d) for d in diffs))
                changed.append(len(sws))
        out[kind] = {
            "ms": round(_ms(median(took)), 2),
            "recompile_ms": round(_ms(median(parts_ms["recompile"])), 2),
            "diff_ms": round(_ms(median(parts_ms["diff"])), 2),
            "switches_changed": max(changed),
            "flow_mods": max(mods),
        }
    # A hypervisor uplink goes down, then up again: only paths are recomputed.
    link = next(ln for ln in topo.links if ln.a.switch == "hv0" or ln.b.switch == "hv0")
    took, mods, changed = [], [], []
    for _ in range(ROUNDS):
        for live in (False, True):
            current = {n: sw.desired for n, sw in state.switches.items()}
            gc.collect()
            t0 = time.perf_counter()
            for end in (link.a, link.b):
                state.links.report_port(end.switch, end.port, live)
            sws = state.recompile()
            diffs = [diff_flowsets(current[sw.name], sw.desired) for sw in sws]
            took.append(time.perf_counter() - t0)
            mods.append(sum(len(d) for d in diffs))
            changed.append(len(sws))
    out["link down/up"] = {"ms": round(_ms(median(took)), 2), "switches_changed": max(changed),
                           "flow_mods": max(mods)}
    return out


def _ms(seconds: float | None) -> float:
    return (seconds or 0.0) * 1000


def measure(n_vms: int, placement: str) -> dict[str, object]:
    policy, topo = datacentre(n_vms, placement)
    bindings = planned_bindings(policy, topo)
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    flowsets = compile_network(policy, topo, bindings)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    hv = [fs.n_flows for n, fs in flowsets.items() if topo.switches[n].role is Role.HYPERVISOR]
    fab = [fs.n_flows for n, fs in flowsets.items() if topo.switches[n].role is Role.FABRIC]
    distinct = _distinct_flows(flowsets)
    del flowsets
    gc.collect()
    tracemalloc.start()
    flowsets = compile_network(policy, topo, bindings)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del flowsets
    gc.collect()
    return {
        "placement": placement, "vms": len(policy.vms), "hypervisors": len(hv),
        "fabric_switches": len(fab), "tenants": len(policy.tenants),
        "compile_s": round(wall, 3), "compile_cpu_s": round(cpu, 3),
        "peak_mem_mb": round(peak / 2**20, 1),
        "flows_total": sum(hv) + sum(fab), "flows_computed": distinct,
        "flows_per_hypervisor": {"min": min(hv), "median": int(statistics.median(hv)),
                                 "max": max(hv)},
        "flows_per_fabric_switch": {"min": min(fab), "median": int(statistics.median(fab)),
                                    "max": max(fab)},
        "edits": measure_edits(policy, topo, bindings),
    }


def _distinct_flows(flowsets: dict[str, FlowSet]) -> int:
    seen: set[int] = set()
    total = 0
    for fs in flowsets.values():
        for frag in fs.fragments():
            if id(frag) not in seen:
                seen.add(id(frag))
                total += len(frag.flows)
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[1000, 5000, 20000])
    ap.add_argument("--placement", choices=[*PLACEMENTS, "both"], default="both")
    ap.add_argument("--json", help="write the results here (default benchmarks/results/)")
    ap.add_argument("--objects", choices=["reread", "full"], default="reread",
                    help="an edited policy as the daemon's re-reader gives it (unchanged "
                    "tenants and VMs are the same objects; default) or as a full read does")
    args = ap.parse_args()
    global OBJECTS
    OBJECTS = args.objects
    placements = PLACEMENTS if args.placement == "both" else (args.placement,)
    rows = [measure(n, p) for p in placements for n in args.sizes]
    print(f"{'placement':>9} {'VMs':>6} {'HVs':>5} {'compile s':>9} {'peak MB':>8} "
          f"{'flows':>9} {'computed':>9} {'hv flows min/med/max':>22}")
    for r in rows:
        h = r["flows_per_hypervisor"]
        print(f"{r['placement']:>9} {r['vms']:>6} {r['hypervisors']:>5} {r['compile_s']:>9} "
              f"{r['peak_mem_mb']:>8} {r['flows_total']:>9} {r['flows_computed']:>9} "
              f"{h['min']:>8}/{h['median']}/{h['max']}")
    print()
    print("edits through the daemon's code (ControllerState.recompile + diff), ms, medians;"
          " switches changed; flow-mods")
    print(f"{'placement':>9} {'VMs':>6} {'edit':>17} {'ms':>8} {'recompile':>10} {'diff':>7} "
          f"{'switches':>9} {'flow-mods':>10} {'vs full':>8}")
    for r in rows:
        for kind, e in r["edits"].items():
            speedup = r["compile_s"] * 1000 / max(e["ms"], 1e-9)
            print(f"{r['placement']:>9} {r['vms']:>6} {kind:>17} {e['ms']:>8} "
                  f"{e.get('recompile_ms', '-'):>10} {e.get('diff_ms', '-'):>7} "
                  f"{e['switches_changed']:>9} {e['flow_mods']:>10} {speedup:>7.0f}x")
    write_json("compile", {"rows": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
