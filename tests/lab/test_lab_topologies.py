"""Every example topology/policy pair in topologies/, run as a Mininet lab on real OVS.

Each run uses its own name prefix, so it neither clashes with nor touches anyone
else's bridges, and must leave nothing behind: no bridge, no interface, no
`mininet:` host shell of its prefix.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labkit import assert_nothing_left

from sdnctl.lab.names import bridges, free_prefix, rebased_topology
from sdnctl.lab.plan import plan_lab
from sdnctl.policy.load import load_policy
from sdnctl.topology.load import load_topology
from sdnctl.verify.semantics import probe_services

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
PAIRS = sorted(TOPOLOGIES.glob("*.topology.yaml"))

pytestmark = pytest.mark.lab
DPID_TAG = 0x7E5  # high dpid bits of these labs (names.random_dpid_base)


def _pair_id(path: Path) -> str:
    return path.name.removesuffix(".topology.yaml")


@pytest.mark.parametrize("topology_path", PAIRS, ids=_pair_id)
def test_lab_matches_policy(topology_path: Path, tmp_path: Path) -> None:
    from sdnctl.lab.run import run_lab

    policy_path = topology_path.with_name(_pair_id(topology_path) + ".policy.yaml")
    topology = load_topology(topology_path)
    policy = load_policy(policy_path, topology)
    prefix = free_prefix("t")
    plan = plan_lab(policy, topology, prefix)
    report_path = tmp_path / "report.json"

    # dpids of its own: the same example may run in another lab on the machine.
    own = rebased_topology(topology_path, tmp_path, DPID_TAG)
    code = run_lab(own, policy_path, report_path=report_path, prefix=prefix)

    assert_nothing_left(prefix, plan.interfaces)
    report = json.loads(report_path.read_text())
    probed = {(p["src"], p["dst"], p["service"], p["family"]) for p in report["probes"]}
    vms = [h.vm for h in plan.hosts]
    vms6 = [h.vm for h in plan.hosts if h.ip6 is not None]
    wanted = {(a, b, str(s), family)
              for family, names in ((4, vms), (6, vms6))
              for a in names for b in names if a != b for s in probe_services(policy)}
    assert probed == wanted
    assert len(report["probes"]) == len(wanted)
    mismatches = [p for p in report["probes"] if p["reached"] != p["expected"]]
    assert report["mismatches"] == len(mismatches) == 0, json.dumps(mismatches, indent=1)
    assert code == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_tears_everything_down(signum: int, tmp_path: Path) -> None:
    """Stopped while waiting for the controller, the lab still removes all it made.

    The daemon is replaced by a sleeper so this holds whatever state the real
    daemon is in; the sleeper must die with the lab too (its process group).
    """
    topology_path = rebased_topology(TOPOLOGIES / "three-tier.topology.yaml", tmp_path, DPID_TAG)
    policy_path = TOPOLOGIES / "three-tier.policy.yaml"
    prefix = free_prefix("t")
    marker = f"sleeper-{prefix}-{os.getpid()}"
    # The marker is glued together at run time so that only the sleeper's command
    # line contains it, not this script's.
    script = f"""
import sys
import sdnctl.lab.run as run
mark = "sleeper-" + {prefix!r} + "-" + {str(os.getpid())!r}
run.daemon_command = lambda *a: [sys.executable, "-c", "import time; time.sleep(120)", mark]
sys.exit(run.run_lab({str(topology_path)!r}, {str(policy_path)!r}, prefix={prefix!r}))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sleeper = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
            if sleeper.stdout.strip():
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        else:
            pytest.fail("the lab never started its daemon")
        assert {f"{prefix}hv1", f"{prefix}hv2", f"{prefix}leaf"} <= bridges()
        proc.send_signal(signum)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 128 + signum
    topology = load_topology(topology_path)
    plan = plan_lab(load_policy(policy_path, topology), topology, prefix)
    assert_nothing_left(prefix, plan.interfaces)
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1
