"""Program a built lab without a controller: the compiled flows, loaded with ovs-ofctl.

For what needs the data plane alone (the north–south proofs, attacks and
benchmarks): the same FlowSets the daemon would send, from the planned bindings,
loaded once. Nothing answers packet-ins, so DHCP and anything learned by the
controller (a next hop's MAC: name it in the topology) are not there. The lab's
switches are fail-mode secure and their controller address leads nowhere, so
nothing else touches their tables.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flows import render_flowset_ofctl
from sdnctl.lab.plan import LabError, LabPlan
from sdnctl.policy.model import Policy
from sdnctl.topology.model import Topology


def _ofctl(*args: str) -> None:
    res = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], capture_output=True,
                         text=True, check=False)
    if res.returncode != 0:
        raise LabError(f"ovs-ofctl {' '.join(args[:2])}: {res.stderr.strip()}")


def load_flowset(bridge: str, text: str) -> int:
    """Meters, groups, then flows of one switch's ofctl rendering; the flow count."""
    flows: list[str] = []
    for line in text.splitlines():
        if line.startswith("# meter: "):
            _ofctl("add-meter", bridge, line[len("# meter: "):])
        elif line.startswith("# group: "):
            _ofctl("add-group", bridge, line[len("# group: "):])
        elif line and not line.startswith("#"):
            flows.append(line)
    with tempfile.NamedTemporaryFile("w", suffix=".flows", delete=False) as f:
        f.write("\n".join(flows) + "\n")
    try:
        _ofctl("--bundle", "add-flows", bridge, f.name)
    finally:
        Path(f.name).unlink()
    return len(flows)


def program_static(plan: LabPlan, policy: Policy, topology: Topology) -> int:
    """Compile the network for the lab's planned bindings and load every switch; the
    number of flows loaded."""
    flowsets = compile_network(policy, topology, planned_bindings(policy, topology))
    return sum(load_flowset(plan.bridges[name], render_flowset_ofctl(fs))
               for name, fs in flowsets.items())
