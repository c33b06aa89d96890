"""Compile and verify overlay data centres with thousands of VXLAN segments (issue 8).

    .venv/bin/python benchmarks/overlay_scale.py                 # 1k, 5k, 10k segments
    .venv/bin/python benchmarks/overlay_scale.py 20000 --json out.json

Each data centre (sdnctl/bench/overlaynet.py): overlay-only segments, two per
tenant, one VM each, 100 VMs per hypervisor, every hypervisor a tunnel endpoint;
far more segments than 802.1Q's 4,094. Measured: the compile (every switch),
the flows it gives, and the verification by equivalence classes
(sdnctl.verify.classes + pairs: every class pair and service simulated against
the policy, cross-tenant leaks included). JSON goes to
benchmarks/results/overlay_scale.json unless --json says otherwise. Figures are
printed, not asserted (tests/unit/test_overlay_scale.py asserts correctness).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bench.overlaynet import overlay_datacentre  # noqa: E402
from sdnctl.bench.report import write_json  # noqa: E402
from sdnctl.bindings import planned_bindings  # noqa: E402
from sdnctl.compile.compiler import compile_network  # noqa: E402
from sdnctl.verify.classes import vm_classes  # noqa: E402
from sdnctl.verify.pairs import check_pairs  # noqa: E402
from sdnctl.verify.semantics import probe_services  # noqa: E402


def measure(n_segments: int) -> dict[str, object]:
    policy, topology = overlay_datacentre(n_segments)
    bindings = planned_bindings(policy, topology)
    started = time.monotonic()
    flowsets = compile_network(policy, topology, bindings)
    compiled = time.monotonic()
    classes = vm_classes(policy, bindings)
    report = check_pairs(flowsets, policy, topology, bindings, classes, probe_services(policy))
    verified = time.monotonic()
    return {
        "segments": n_segments,
        "tenants": len(policy.tenants),
        "vms": len(policy.vms),
        "hypervisors": len(topology.switches),
        "flows": sum(len(fs.flows) for fs in flowsets.values()),
        "compile_s": round(compiled - started, 3),
        "classes": len(classes),
        "class_pairs": report.class_pairs,
        "vm_pairs": report.vm_pairs,
        "probes": report.probes,
        "simulated_packets": report.injections,
        "mismatches": len(report.mismatches),
        "verify_s": round(verified - compiled, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("segments", nargs="*", type=int, default=[1000, 5000, 10000])
    ap.add_argument("--json", help="where to write the results")
    args = ap.parse_args()
    rows = []
    print(f"{'segments':>9} {'VMs':>7} {'hvs':>5} {'flows':>8} {'compile s':>10} "
          f"{'classes':>8} {'probes':>12} {'sim pkts':>9} {'verify s':>9} {'mismatch':>8}")
    for n in args.segments:
        row = measure(n)
        rows.append(row)
        print(f"{row['segments']:>9} {row['vms']:>7} {row['hypervisors']:>5} {row['flows']:>8} "
              f"{row['compile_s']:>10} {row['classes']:>8} {row['probes']:>12} "
              f"{row['simulated_packets']:>9} {row['verify_s']:>9} {row['mismatches']:>8}",
              flush=True)
    write_json("overlay_scale", {"runs": rows}, args.json)


if __name__ == "__main__":
    main()
