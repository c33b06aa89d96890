"""Lab experiments: live changes on real OVS, measured with continuous probes.

Each experiment builds on one running lab (`session.open_session`: Mininet,
userspace OVS, the controller daemon) and leaves it as it found it:

policy-edit         edit the policy file under traffic; a refused edit changes nothing
link-cut            cut a fabric link carrying a flow, with and without a backup path
vm-migration        move a VM's binding to another hypervisor; its downtime
controller-restart  SIGKILL the daemon and start it again; loss (expected: none)
leader-kill         two replicas (etcd lease): SIGKILL the leader; takeover time, loss
faults              every fault in turn under allowed and denied probes, each against
                    its promised bound (docs/reliability.md)
vswitchd-restart    restart ovs-vswitchd (machine-wide: only when nobody else uses it)

Shared parts: `streamer` (the in-host probe agent), `stream` (runs it), `loss`
(figures from what it saw), `cast` (who plays which part), `result` (figures,
table, JSON), `runner` (the command line's entry); the fault suite's `prober`
(allowed and denied probes, captures judged for leaks) and `ovsdb_relay`. Nothing
here imports mininet at package import time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdnctl.lab.experiments.result import ExperimentResult
    from sdnctl.lab.experiments.session import Session

MODULES = {
    "policy-edit": "policy_edit",
    "link-cut": "link_cut",
    "vm-migration": "vm_migration",
    "controller-restart": "controller_restart",
    "leader-kill": "leader_kill",
    "faults": "faults",
    "vswitchd-restart": "vswitchd_restart",
}
NAMES = tuple(MODULES)

# Defaults: the repo's leaf-spine example (it has every kind of link the experiments
# cut) and a policy written for the experiments.
DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[3] / "topologies" / "leaf-spine.topology.yaml"
DEFAULT_POLICY = Path(__file__).with_name("data") / "live.policy.yaml"

Experiment = Callable[["Session", int], "ExperimentResult"]


def experiment(name: str) -> Experiment:
    """The `run(session, runs)` of the experiment called `name`."""
    module = importlib.import_module(f"sdnctl.lab.experiments.{MODULES[name]}")
    run: Experiment = module.run
    return run
