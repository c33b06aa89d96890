"""`sdnctl run` on thousands of bound VMs: no start-up limit, the API up meanwhile.

A private `ovsdb-server` (no ovs-vswitchd, nothing shared with the machine's Open
vSwitch) binds every VM of a 2,000-VM scattered data centre. The daemon used to
give os-ken 10 s to start while the start-up compile ran inside it, and OVSDB 5 s
for its first read: a big enough network exited with "os-ken did not start". Now
/status answers from the first second, says which start-up phase the daemon is in,
and the timeline ends in "running" however long each phase takes
(benchmarks/daemon_scale.py runs the same at 5,000 and 20,000 VMs).
"""

from __future__ import annotations

import time

import pytest
from daemon_cmd import start

from sdnctl.bench import netgen
from sdnctl.bench.boundnet import (
    DPID_BASE,
    PrivateOvsdb,
    move_vm,
    policy_doc,
    populate,
    topology_doc,
)
from sdnctl.bench.datacentre import datacentre
from sdnctl.client.api import ApiError, get_status

N_VMS = 2000


@pytest.mark.needs("ovsdb-tool", "ovsdb-server")
def test_a_big_network_starts_and_its_api_answers_meanwhile(lab) -> None:
    policy, topology = datacentre(N_VMS, "scattered")
    pol = netgen.write(policy_doc(policy), lab.tmp / "policy.yaml")
    topo = netgen.write(topology_doc(topology), lab.tmp / "topology.yaml")
    db = PrivateOvsdb(lab.tmp)
    lab.cleanup.add("private ovsdb-server", db.stop)
    plugged = populate(db, policy, topology, DPID_BASE)

    daemon = start(lab, pol, topo, "--ovsdb", db.remote,
                   "--listen", f"127.0.0.1:{lab.free_port()}")
    phases: list[str] = []
    deadline = time.monotonic() + 180
    while not phases or phases[-1] != "running":
        assert daemon.proc.poll() is None, daemon.log_text()[-3000:]
        assert time.monotonic() < deadline, f"not running after 180 s: {phases}"
        try:
            status = get_status(daemon.api, timeout=10)
        except ApiError:
            time.sleep(0.05)
            continue
        phases.append(status["daemon"]["startup"]["phase"])
        time.sleep(0.05)

    # The API answered before the daemon was running: during the OVSDB read or compile.
    assert phases[0] in ("reading OVSDB", "compiling", "starting OpenFlow"), phases
    startup = status["daemon"]["startup"]
    assert startup["bound"] == N_VMS
    assert status["bindings_ready"] and len(status["bindings"]) == N_VMS
    assert 0 < startup["bindings_s"] <= startup["compiled_s"] <= startup["openflow_s"] \
        <= startup["running_s"]
    assert startup["switches"] == len(topology.switches) and startup["flows"] > 0
    assert status["last_compile"] is not None
    assert all(sw["flows"] > 0 for sw in status["switches"].values())

    # A VM moved in one OVSDB commit (its Port leaves one bridge, a new one joins
    # another): the monitor follows within a poll.
    vm = "t0vm0"
    port = move_vm(db, plugged, policy, vm, "hv1")
    lab.wait_for(lambda: get_status(daemon.api, timeout=10)["bindings"].get(vm)
                 == f"hv1:{port}", 5, f"{vm} bound at hv1:{port}")
    assert daemon.stop(20) == 0
