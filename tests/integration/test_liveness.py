"""A dead switch is seen within 3 s, whatever else the daemon is doing, and no
connection leaves threads behind (OpenFlow echoes, sdnctl.tls.configure_os_ken)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from netdata import POLICY

from sdnctl.client.api import get_status, wait_programmed


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def _connected(api: str) -> bool:
    return bool(get_status(api)["switches"]["hv1"]["connected"])


@pytest.mark.ovs
def test_reconnects_leave_no_threads_and_a_deleted_bridge_is_seen_dead(lab) -> None:
    dpid, of_port = lab.random_dpid(), lab.free_port()
    topo = lab.write("topology.yaml", f"""\
        version: 1
        switches:
          hv1: {{dpid: {dpid}, role: hypervisor}}
        links: []
        """)
    policy = lab.write("policy.yaml", POLICY)
    bridge = lab.bridge(dpid, controller_port=of_port)
    # No stats polling: nothing but the echoes would ever write to the switch.
    daemon = lab.daemon(policy, topo, of_port=of_port)
    wait_programmed(daemon.api, ["hv1"], timeout=30)
    lab.wait_for(lambda: _threads(daemon.proc.pid) > 0, 5, "the daemon's threads")
    time.sleep(1)
    before = _threads(daemon.proc.pid)
    for _ in range(10):  # the switch drops the connection and dials again
        lab.sh(["ovs-vsctl", "del-controller", bridge])
        lab.wait_for(lambda: not _connected(daemon.api), 5, "the switch seen gone")
        lab.sh(["ovs-vsctl", "set-controller", bridge, f"tcp:127.0.0.1:{of_port}"])
        wait_programmed(daemon.api, ["hv1"], timeout=30)
    time.sleep(2)  # a leaked connection would keep its threads; a live one has its own
    assert _threads(daemon.proc.pid) <= before + 1, (before, _threads(daemon.proc.pid))

    # The bridge vanishes without a word (as when ovs-vswitchd dies): seen within 3 s.
    lab.sh(["ovs-vsctl", "del-br", bridge])
    gone = time.monotonic()
    lab.wait_for(lambda: not _connected(daemon.api), 4, "the deleted bridge seen dead")
    assert time.monotonic() - gone <= 3.5
