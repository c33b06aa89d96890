"""`python -m sdnctl.lab.attacks [--attack NAME ...]`: run the hostile-VM suite, print the table.

Exit code: 0 every attack failed to get through and allowed traffic kept
flowing; 1 something leaked, broke or went unchecked; 3 the lab could not run.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from sdnctl.lab.attacks.catalogue import ATTACKS
from sdnctl.lab.plan import LabError


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through `finally`: the lab is torn down


def main(argv: list[str] | None = None) -> int:
    by_name = {a.name: a for a in ATTACKS}
    parser = argparse.ArgumentParser(
        prog="python -m sdnctl.lab.attacks",
        description="Run the hostile-VM suite on real OVS and print the table of attacks.")
    parser.add_argument("--attack", action="append", choices=sorted(by_name),
                        help="run only this attack (repeatable)")
    parser.add_argument("--prefix", help="name prefix for bridges and hosts (default: random)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    attacks = [by_name[n] for n in args.attack] if args.attack else list(ATTACKS)

    from sdnctl.lab.attacks.session import attack_lab
    from sdnctl.lab.attacks.suite import format_problems, format_storm, format_table, run_suite

    try:
        with attack_lab(args.prefix) as lab:
            report = run_suite(lab, attacks)
    except LabError as exc:
        print(f"attacks: {exc}", file=sys.stderr)
        return 3
    print(format_table(report.results))
    for r in report.results:
        if r.storm is not None:
            print(format_storm(r.storm))
    print(f"flows or groups that output to the controller: {len(report.controller_outputs)}")
    print(f"packet-ins sent by the switches during the suite: {report.packet_ins}"
          f" (of {report.snooped} OpenFlow messages snooped)")
    print(f"bridges whose flows or groups changed during the suite: {report.flows_changed or 0}")
    problems = format_problems(report.results)
    if problems:
        print(problems)
    ok = (all(r.passed for r in report.results) and not report.controller_outputs
          and not report.packet_ins and not report.flows_changed)
    print("PASS: no attack got through" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
