"""Reading and validating a policy file: what a reload costs before anything compiles.

    .venv/bin/python benchmarks/policy_load.py            # 1k, 5k, 20k VMs
    .venv/bin/python benchmarks/policy_load.py 5000 --json out.json

The daemon re-reads the whole file on every save (it validates exactly the bytes
it hashes), so at thousands of VMs the read, not the compile, is most of an
edit's reaction time. Each size is timed two ways in the same process: the
loader as it runs (libyaml's parser with sdnctl's line-aware constructors) and
the pure-Python parser it falls back to, as the baseline. Medians of 3, wall
clock, one core. Policies from sdnctl.bench.netgen.tiered_policy: 25 VMs per
hypervisor (at most 250 hypervisors), 100 per tenant. JSON goes to
benchmarks/results/policy_load.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl import yamlsrc  # noqa: E402
from sdnctl.bench import netgen  # noqa: E402
from sdnctl.bench.report import median, print_table, write_json  # noqa: E402
from sdnctl.policy.load import parse_policy  # noqa: E402
from sdnctl.topology.load import parse_topology  # noqa: E402

REPEATS = 3
VMS_PER_HYPERVISOR = 25
VMS_PER_TENANT = 100


def _timed(fn: object, repeats: int = REPEATS) -> float:
    took = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        took.append(time.perf_counter() - t0)
    return median(took) or 0.0


def measure(n_vms: int) -> dict[str, object]:
    # at most 250 hypervisors: the generator numbers dpids below the leaves' 0x101
    topo_doc = netgen.leaf_pair_topology(min(250, max(1, n_vms // VMS_PER_HYPERVISOR)))
    hosts = sorted(n for n, s in topo_doc["switches"].items() if s["role"] == "hypervisor")
    tenants = min(250, max(1, n_vms // VMS_PER_TENANT))  # 10.T.0.0/16 per tenant
    text = netgen.dump(netgen.tiered_policy(n_vms, hosts, tenants=tenants))
    topo = parse_topology(netgen.dump(topo_doc), "topology.yaml")
    fast = _timed(lambda: parse_policy(text, "policy.yaml", topo))
    fast_yaml = _timed(lambda: yamlsrc.load_yaml(text, "policy.yaml"))
    saved = yamlsrc._FastLineLoader
    yamlsrc._FastLineLoader = None  # the pure-Python path, as the baseline
    try:
        slow = _timed(lambda: parse_policy(text, "policy.yaml", topo))
    finally:
        yamlsrc._FastLineLoader = saved
    return {
        "vms": n_vms, "file_kib": len(text.encode()) // 1024,
        "load_ms": round(fast * 1000, 1), "yaml_ms": round(fast_yaml * 1000, 1),
        "validate_ms": round((fast - fast_yaml) * 1000, 1),
        "pure_python_load_ms": round(slow * 1000, 1),
        "speedup": round(slow / max(fast, 1e-9), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[1000, 5000, 20000])
    ap.add_argument("--json", help="write the results here (default benchmarks/results/)")
    args = ap.parse_args()
    rows = [measure(n) for n in args.sizes]
    print_table(rows, [("vms", "VMs"), ("file_kib", "file KiB"), ("load_ms", "load ms"),
                       ("yaml_ms", "(yaml"), ("validate_ms", "validate)"),
                       ("pure_python_load_ms", "pure-Python load ms"), ("speedup", "speed-up")],
                "policy file read + validate (libyaml parser vs pure-Python baseline)")
    write_json("policy_load", {"rows": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
