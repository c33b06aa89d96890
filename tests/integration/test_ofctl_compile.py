"""`sdnctl compile --format ofctl` loads into a real OVS bridge, flow for flow."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAIRS = sorted(p.name.removesuffix(".topology.yaml") for p in (ROOT / "topologies").glob(
    "*.topology.yaml"))

pytestmark = pytest.mark.ovs


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def bridge():
    name = f"sdc{uuid.uuid4().hex[:8]}"
    sh("ovs-vsctl", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
       "protocols=OpenFlow13", "fail_mode=secure")
    try:
        assert sh("ovs-vsctl", "get", "bridge", name, "datapath_type").strip() == "netdev"
        yield name
    finally:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", name], check=False)


@pytest.mark.parametrize("name", PAIRS)
def test_compiled_flows_load_into_ovs(bridge, name, tmp_path):
    out = sh(sys.executable, "-m", "sdnctl.cli", "compile",
             "-p", str(ROOT / "topologies" / f"{name}.policy.yaml"),
             "-t", str(ROOT / "topologies" / f"{name}.topology.yaml"))
    switches = re.split(r"^# switch ", out, flags=re.M)[1:]
    assert switches
    for text in switches:
        lines = text.splitlines()
        sh("ovs-ofctl", "-O", "OpenFlow13", "del-flows", bridge)
        sh("ovs-ofctl", "-O", "OpenFlow13", "del-groups", bridge)
        sh("ovs-ofctl", "-O", "OpenFlow13", "del-meters", bridge)
        for line in lines:
            if line.startswith("# meter: "):
                sh("ovs-ofctl", "-O", "OpenFlow13", "add-meter", bridge, line[9:])
            elif line.startswith("# group: "):
                sh("ovs-ofctl", "-O", "OpenFlow13", "add-group", bridge, line[9:])
        flows = [ln for ln in lines[1:] if not ln.startswith("#")]
        path = tmp_path / "flows.txt"
        path.write_text("\n".join(flows) + "\n")
        sh("ovs-ofctl", "-O", "OpenFlow13", "add-flows", bridge, str(path))
        agg = sh("ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate", bridge)
        assert f"flow_count={len(flows)}" in agg, (lines[0], agg)
