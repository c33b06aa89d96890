"""Packet-in storm against the real daemon: frames/s, status API latency, daemon memory.

    sudo .venv/bin/python benchmarks/storm.py                    # 5,000 frames/s for 4 s
    sudo .venv/bin/python benchmarks/storm.py --rate 5000 --rate 20000 --seconds 5

Builds the hostile-VM lab (sdnctl/lab/attacks/data/hostile.*), starts `sdnctl
run`, and has the attacker VM send frames with a fresh random source MAC each
(plus true-source TTL-1 and no-route pings) at each rate in turn. Meanwhile
GET /status is timed every 20 ms, the blue witnesses keep probing each other
(tcp/80 and ping across the fabric), the switches' controller connections are
snooped for PACKET_IN, and the victims capture what reaches them. Figures are
printed, not asserted (tests/lab/test_attacks.py asserts at the default rate).
Needs root and a running Open vSwitch; everything is torn down afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.lab.attacks.catalogue import BY_NAME, STORM_RATE, STORM_SECONDS  # noqa: E402
from sdnctl.lab.attacks.measure import controller_outputs  # noqa: E402
from sdnctl.lab.attacks.session import attack_lab  # noqa: E402
from sdnctl.lab.attacks.suite import format_storm, run_attack  # noqa: E402
from sdnctl.tools import LAB_TOOLS, require_or_exit  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, action="append",
                        help=f"frames/s (repeatable; default {STORM_RATE})")
    parser.add_argument("--seconds", type=float, default=STORM_SECONDS)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    require_or_exit(*LAB_TOOLS, "tcpdump", "ping", what="benchmarks/storm.py")
    rates = args.rate or [STORM_RATE]
    storm = BY_NAME["packet-in-storm"]
    rows = []
    with attack_lab() as lab:
        outputs = controller_outputs(lab.plan.bridges.values())
        print(f"flows or groups that output to the controller: {len(outputs)}")
        for rate in rates:
            result = run_attack(lab, dataclasses.replace(storm, rate=rate, seconds=args.seconds))
            assert result.storm is not None
            print(f"\n--- target {rate} frames/s for {args.seconds:g} s")
            print(format_storm(result.storm))
            print(f"frames that reached a victim: {result.leaked};"
                  f" allowed traffic after the storm: "
                  f"{'ok' if not result.liveness else result.liveness};"
                  f" daemon {'up' if result.daemon_alive else 'DOWN'}")
            rows.append({"target_rate": rate, "leaked": result.leaked,
                         "liveness_after": result.liveness, "daemon_alive": result.daemon_alive,
                         **dataclasses.asdict(result.storm),
                         "rate": round(result.storm.rate, 1)})
    if args.json:
        Path(args.json).write_text(json.dumps({"storms": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
