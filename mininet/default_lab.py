"""Run the default lab (three-tier) through `run_lab`: `python mininet/default_lab.py`.

Needs root, Open vSwitch running, and the venv's interpreter (it imports sdnctl):

    sudo .venv/bin/python mininet/default_lab.py [--report out.json] [--prefix t1]

Exit code as `sdnctl lab run`: 0 the data plane matches the policy, 1 it does not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sdnctl.lab.run import run_lab

TOPOLOGIES = Path(__file__).resolve().parent.parent / "topologies"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", help="write the JSON report here")
    parser.add_argument("--prefix", default="", help="put this before every switch/host name")
    args = parser.parse_args(argv)
    return run_lab(
        TOPOLOGIES / "three-tier.topology.yaml",
        TOPOLOGIES / "three-tier.policy.yaml",
        report_path=args.report,
        prefix=args.prefix,
    )


if __name__ == "__main__":
    sys.exit(main())
