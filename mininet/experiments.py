"""Run the live-change experiments: `python mininet/experiments.py NAME [NAME...]`.

The same as `sdnctl lab experiment`; needs root, Open vSwitch running, and the
venv's interpreter (it imports sdnctl):

    sudo .venv/bin/python mininet/experiments.py all --json out.json
    sudo .venv/bin/python mininet/experiments.py policy-edit link-cut --runs 5

NAME: policy-edit, link-cut, vm-migration, controller-restart, leader-kill, faults,
vswitchd-restart, all.
Default files: topologies/leaf-spine.topology.yaml and the experiments' own policy
(sdnctl/lab/experiments/data/live.policy.yaml); -t/-p pick others.
"""

from __future__ import annotations

import argparse
import sys

from sdnctl.lab.experiments import DEFAULT_POLICY, DEFAULT_TOPOLOGY, NAMES
from sdnctl.lab.experiments.runner import run_experiments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", metavar="NAME",
                        help=f"{', '.join(NAMES)} or all")
    parser.add_argument("-t", "--topology", default=str(DEFAULT_TOPOLOGY))
    parser.add_argument("-p", "--policy", default=str(DEFAULT_POLICY))
    parser.add_argument("--runs", type=int, default=3, help="repetitions (figures are medians)")
    parser.add_argument("--json", metavar="FILE", help="write every figure and run here")
    parser.add_argument("--prefix", help="3-character name prefix (default: a free one)")
    args = parser.parse_args(argv)
    return run_experiments(args.names, args.topology, args.policy, runs=args.runs,
                           json_path=args.json, prefix=args.prefix)


if __name__ == "__main__":
    sys.exit(main())
