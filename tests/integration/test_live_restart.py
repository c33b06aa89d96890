"""Reconciliation on real OVS: killing the daemon (SIGKILL) leaves the data plane
forwarding, a new daemon reads the switch and sends no flow-mod, and a TCP reset of
the OpenFlow connection is the same non-event; allowed traffic loses no packet."""

from __future__ import annotations

import time

import pytest

from sdnctl.client.api import get_status, wait_programmed

POLICY = """\
version: 1
tenants:
  t1:
    default: deny
    segments:
      web: {vlan: 10, subnet: 10.9.10.0/24, gateway: 10.9.10.1}
      db:  {vlan: 20, subnet: 10.9.20.0/24, gateway: 10.9.20.1}
    groups:
      web: {labels: {tier: web}}
    rules:
      - {from: any, to: web, allow: [tcp/80, icmp]}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:09:10:11", ip: 10.9.10.11,
       labels: {tier: web}, host: hv1}
  w2: {tenant: t1, segment: web, mac: "02:00:00:09:10:12", ip: 10.9.10.12,
       labels: {tier: web}, host: hv1}
  d1: {tenant: t1, segment: db, mac: "02:00:00:09:20:11", ip: 10.9.20.11, host: hv1}
"""


@pytest.mark.ovs
def test_sigkill_restart_and_tcp_reset_lose_nothing_and_send_no_flow_mods(lab) -> None:
    dpid, of_port, api_port = lab.random_dpid(), lab.free_port(), lab.free_port()
    topo = lab.write("topology.yaml", f"""\
        version: 1
        switches:
          hv1: {{dpid: {dpid}, role: hypervisor}}
        links: []
        """)
    policy = lab.write("policy.yaml", POLICY)
    bridge = lab.bridge(dpid, controller_port=of_port)
    w1 = lab.vm(bridge, 100, "02:00:00:09:10:11", "10.9.10.11/24", "10.9.10.1", vm_id="w1")
    w2 = lab.vm(bridge, 101, "02:00:00:09:10:12", "10.9.10.12/24", "10.9.10.1", vm_id="w2")
    d1 = lab.vm(bridge, 102, "02:00:00:09:20:11", "10.9.20.11/24", "10.9.20.1", vm_id="d1")

    first = lab.daemon(policy, topo, of_port=of_port, api_port=api_port)
    loaded = wait_programmed(first.api, ["hv1"], timeout=30)["switches"]["hv1"]["flow_mods_sent"]
    table = lab.flow_table(bridge)
    lab.serve(w1, "tcp/80")
    same_segment = lab.pinger(w2, w1.ip)
    routed = lab.pinger(d1, w1.ip)  # through the distributed router
    same_segment.wait_replies(10)
    routed.wait_replies(10)

    # A TCP reset of the OpenFlow connection: the switch redials, is read, gets nothing.
    # (os-ken notices the dead connection only at its next echo; the new one replaces it.)
    reset_at = time.monotonic()
    assert str(of_port) in first.reset_switch_connections()

    def reconnected(daemon, connects: int):
        def check():
            st = get_status(daemon.api)
            n = [e["kind"] for e in st["events"]].count("connect")
            return st if n >= connects and st["switches"]["hv1"]["programmed"] else None
        return check

    status = lab.wait_for(reconnected(first, 2), 10, "switch reconnected and read after a reset")
    redial = time.monotonic() - reset_at
    assert status["switches"]["hv1"]["flow_mods_sent"] == loaded  # nothing since the first load
    assert lab.flow_table(bridge) == table

    # SIGKILL: the switch keeps its flows (fail_mode=secure) and keeps forwarding.
    first.kill()
    time.sleep(0.3)
    assert lab.flow_table(bridge) == table
    assert lab.probe(w2, w1.ip, "tcp/80")  # a new connection, controller-less

    started = time.monotonic()
    second = lab.daemon(policy, topo, of_port=of_port, api_port=api_port)
    status = wait_programmed(second.api, ["hv1"], timeout=30)
    back_in = time.monotonic() - started
    hv1 = status["switches"]["hv1"]
    assert hv1["flow_mods_sent"] == 0
    assert lab.flow_table(bridge) == table
    programmed = [e["message"] for e in status["events"] if e["kind"] == "programmed"]
    assert programmed and "+0 ~0 -0 flows, +0 ~0 -0 groups, +0 ~0 -0 meters" in programmed[-1]

    time.sleep(0.2)
    stats = [same_segment.stop(), routed.stop()]
    print(f"\nTCP reset: switch read back in {redial:.2f} s (OVS's redial backoff), 0 flow-mods;"
          f" SIGKILL + restart: read back {back_in:.2f} s after the restart, 0 flow-mods")
    print(f"w2->w1 (same segment): {stats[0]}\nd1->w1 (routed): {stats[1]}")
    assert all(s.sent > 100 and s.lost == 0 for s in stats)
    assert second.stop() == 0
