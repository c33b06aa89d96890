"""Every live-change experiment on real OVS, figures as JSON and a table (issue 4).

    sudo .venv/bin/python benchmarks/live_changes.py                 # 5 runs each
    sudo .venv/bin/python benchmarks/live_changes.py --runs 9 --json out.json
    sudo .venv/bin/python benchmarks/live_changes.py policy-edit link-cut

One lab (topologies/leaf-spine.topology.yaml with the experiments' own policy, the
real daemon, userspace OVS) runs policy-edit, link-cut, vm-migration,
controller-restart and, if no one else uses Open vSwitch on this machine right now,
vswitchd-restart (otherwise it is reported as skipped). Figures are medians over
`--runs` repetitions, probes every 10 ms; each experiment prints its own block and
a table of every figure ends the run. Goals from the issue are in the `goal`
column: 0 packets lost on unaffected flows during edits and controller restarts,
an edit enforced in under 200 ms from file save, a link-cut loss window under 50 ms
where a backup path exists, VM migration downtime under 200 ms. Printed, not
asserted: this is a benchmark (tests/lab/test_experiments.py asserts invariants).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.lab.experiments import DEFAULT_POLICY, DEFAULT_TOPOLOGY, NAMES  # noqa: E402
from sdnctl.lab.experiments.runner import ALL, run_experiments  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=[ALL], metavar="NAME",
                        help=f"experiments to run (default all): {', '.join(NAMES)}")
    parser.add_argument("--runs", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--json", default="live_changes.json",
                        help="where to write the figures (default live_changes.json)")
    parser.add_argument("-t", "--topology", default=str(DEFAULT_TOPOLOGY))
    parser.add_argument("-p", "--policy", default=str(DEFAULT_POLICY))
    args = parser.parse_args(argv)
    return run_experiments(args.names or [ALL], args.topology, args.policy, runs=args.runs,
                           json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
