"""ovs-vsctl and ovs-ofctl for the lab; each failure is a LabError with the tool's stderr.

No mininet here: the experiments, benchmarks and tests that only read or edit OVS
import this, not `build`.
"""

from __future__ import annotations

import re
import subprocess

from sdnctl.lab.plan import LabError

OVS_RUN = "/var/run/openvswitch"


def vsctl(*args: str) -> str:
    """Run ovs-vsctl; its output, stripped."""
    done = subprocess.run(
        ["ovs-vsctl", "--timeout=10", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise LabError(f"ovs-vsctl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def bridges() -> set[str]:
    """The names of every bridge of the machine's Open vSwitch."""
    return set(vsctl("list-br").split())


def ofctl(bridge: str, command: str, *args: str, timeout: float = 60.0) -> str:
    """`ovs-ofctl -O OpenFlow13 COMMAND BRIDGE ARGS`; its output.

    By the bridge's management socket: ovs-ofctl wants it where the bare name fails.
    """
    argv = ["ovs-ofctl", "-O", "OpenFlow13", command, f"unix:{OVS_RUN}/{bridge}.mgmt", *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def flow_count(bridge: str) -> int:
    """Flows on a bridge by dump-aggregate (`dump-flows | wc -l` overcounts)."""
    out = ofctl(bridge, "dump-aggregate")
    found = re.search(r"flow_count=(\d+)", out)
    if not found:
        raise LabError(f"dump-aggregate {bridge}: {out.strip()}")
    return int(found.group(1))
