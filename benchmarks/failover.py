"""Failover: loss window on a link cut, with and without a backup path (sdnctl).

    .venv/bin/python benchmarks/failover.py [--runs 3] [--json FILE]

Reuses the lab experiment `link-cut` (sdnctl/lab/experiments/link_cut.py) on its
default lab (topologies/leaf-spine with the experiments' policy): a flow's
carrying link is cut (both interfaces down) for 1 s, `--runs` times, probes
every 10 ms. Cases: a dual-homed hypervisor's uplink and fabric links (a backup
path exists: fast-failover groups switch inside OVS) and a single-homed
hypervisor's only uplink (no backup: traffic stops until the link returns).
This script only runs it and turns its figures into the benchmarks' table and
JSON; the side-by-side with Faucet on one lab is in benchmarks/convergence.py (E3).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bench.report import print_table, write_json  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        from sdnctl.lab.experiments.runner import run_experiments
    except ImportError as exc:
        print(f"failover not measured: the link-cut experiment is not there ({exc})")
        write_json("failover", {"skipped": str(exc)}, args.json)
        return 0
    raw = Path(tempfile.mkdtemp(prefix="sdnctl-bench-failover-")) / "link_cut.json"
    code = run_experiments(["link-cut"], runs=args.runs, json_path=raw)
    doc = json.loads(raw.read_text()) if raw.exists() else {}
    results = doc.get("results", doc.get("experiments", []))
    found = next((r for r in results if r.get("experiment") == "link-cut"), None) \
        if isinstance(results, list) else None
    rows = []
    if found:
        figures = found.get("figures", {})
        cases = sorted({k.rsplit("_loss_window_ms", 1)[0] for k in figures
                        if k.endswith("_loss_window_ms")})
        for case in cases:
            rows.append({
                "case": case, "setup": found.get("setup", {}).get(case, ""),
                "loss_window_ms": figures[f"{case}_loss_window_ms"]["value"],
                "lost_while_cut": figures.get(f"{case}_lost_while_cut", {}).get("value"),
                "lost_on_return": figures.get(f"{case}_lost_on_return", {}).get("value"),
                "controller_repair_ms": figures.get(f"{case}_controller_repair_ms",
                                                    {}).get("value"),
                "resumed_after_up_ms": figures.get(f"{case}_resumed_after_up_ms",
                                                   {}).get("value"),
            })
        print_table(rows, [("case", "case"), ("loss_window_ms", "loss window ms"),
                           ("lost_while_cut", "lost while cut"),
                           ("lost_on_return", "lost on return"),
                           ("controller_repair_ms", "controller repair ms"),
                           ("resumed_after_up_ms", "resumed after up ms")],
                    "link cut (1 s), medians; probes every 10 ms")
        for r in rows:
            print(f"  {r['case']}: {r['setup']}")
    write_json("failover", {"exit_code": code, "rows": rows, "link_cut": found or doc},
               args.json)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
