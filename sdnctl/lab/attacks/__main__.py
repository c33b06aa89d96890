"""`python -m sdnctl.lab.attacks [--attack NAME ...]`: run the hostile-VM suite, print the table.

Exit code: 0 every attack failed to get through and allowed traffic kept
flowing; 1 something leaked, broke or went unchecked; 3 the lab could not run;
128+N when stopped by signal N (the lab is torn down first).
"""

from __future__ import annotations

import argparse
import sys

from sdnctl.lab.attacks.catalogue import ATTACKS
from sdnctl.lab.plan import LabError
from sdnctl.lab.session import Stopped, exit_code


def _say(message: str) -> None:
    print(f"attacks: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    by_name = {a.name: a for a in ATTACKS}
    parser = argparse.ArgumentParser(
        prog="python -m sdnctl.lab.attacks",
        description="Run the hostile-VM suite on real OVS and print the table of attacks.")
    parser.add_argument("--attack", action="append", choices=sorted(by_name),
                        help="run only this attack (repeatable)")
    parser.add_argument("--prefix", help="name prefix for bridges and hosts (default: random)")
    args = parser.parse_args(argv)
    attacks = [by_name[n] for n in args.attack] if args.attack else list(ATTACKS)

    from sdnctl.lab.attacks.session import attack_lab
    from sdnctl.lab.attacks.suite import (
        format_problems,
        format_storm,
        format_table,
        packet_in_budget,
        run_suite,
    )

    try:
        with attack_lab(args.prefix) as lab:
            report = run_suite(lab, attacks)
            ipv6_vms = sum(v.ip6 is not None for v in lab.scene.vms.values())
    except LabError as exc:
        _say(str(exc))
        return 3
    except (KeyboardInterrupt, Stopped) as exc:  # the lab session has torn down
        return exit_code(exc, _say)
    print(format_table(report.results))
    for r in report.results:
        if r.storm is not None:
            print(format_storm(r.storm))
    print(f"flows or groups that output to the controller: {len(report.controller_outputs)}")
    budget = packet_in_budget(report, ipv6_vms)
    print(f"packet-ins sent by the switches during the suite: {report.packet_ins}"
          f" (of {report.snooped} OpenFlow messages snooped; the VMs' meters allow {budget})")
    print(f"bridges whose flows or groups changed during the suite: {report.flows_changed or 0}")
    problems = format_problems(report.results)
    if problems:
        print(problems)
    ok = (all(r.passed for r in report.results) and not report.controller_outputs
          and report.packet_ins <= budget and not report.flows_changed)
    print("PASS: no attack got through" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
