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
from typing import TYPE_CHECKING

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flows import render_flowset_ofctl
from sdnctl.lab.plan import LabError, LabPlan
from sdnctl.policy.model import Policy
from sdnctl.topology.model import Topology

if TYPE_CHECKING:
    from sdnctl.lab.build import Lab
    from sdnctl.lab.session import LabSession


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


def build_static(session: LabSession, plan: LabPlan, policy: Policy,
                 topology: Topology) -> Lab:
    """Build `plan` in `session` and load its compiled flows. The switches' controller
    address is a free port nobody listens on: they keep what we load."""
    from sdnctl.lab.build import check_names_free
    from sdnctl.lab.names import LOCALHOST, free_ports

    clashes = check_names_free(plan)
    if clashes:
        raise LabError("refusing to build the lab:\n  " + "\n  ".join(clashes))
    lab = session.lab(plan, (LOCALHOST, free_ports(1)[0]))
    program_static(plan, policy, topology)
    return lab
