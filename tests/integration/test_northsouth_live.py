"""North–south under the real daemon, on real OVS (sdnctl/bench/gatewaynet.py): the
daemon learns both uplinks' next hops by ARP, tenants go out with their NAT
addresses, and when the active uplink is cut its tenants come back through the
other gateway (announced there by gratuitous ARP), and again after the repair.
The loss window is a benchmark's figure (benchmarks/ns_failover.py), printed here
only."""

from __future__ import annotations

import pytest

from sdnctl.bench.gatewaynet import GatewayNet, sh

pytestmark = pytest.mark.ovs


@pytest.fixture
def gw(cleanup, tmp_path) -> GatewayNet:
    net = GatewayNet(cleanup, tmp_path)
    net.build(("--vm-conn-limit", "0", "--tenant-nat-limit", "0"))
    net.wait_for(net.next_hops_learned, 15, "both uplinks' next hops learned by ARP")
    net.serve(443)
    return net


def test_an_uplink_cut_moves_its_tenants_to_the_other_gateway_and_back(gw) -> None:
    assert gw.ask("bx1", 443) == "203.0.113.12"
    assert gw.ask("rf1", 443) == "203.0.113.20"
    active = gw.exit_of("blue")
    other = next(u for u in gw.status()["uplinks"] if u != active)
    assert active is not None and other != active
    garps_before = gw.status()["uplinks"][other]["garps"]

    ping = gw.ping("bx1")
    ping.wait_replies(20)
    gw.cut(active)
    gw.wait_for(lambda: gw.exit_of("blue") == other, 5, f"blue moved to {other}")
    ping.wait_replies(len(ping.replies()) + 20, timeout=5)  # flowing again
    cut_gap = ping.stop()
    st = gw.status()
    assert active in st["down_ports"]
    assert st["uplinks"][active]["live"] is False
    assert st["uplinks"][other]["garps"] > garps_before  # blue's address announced there
    assert gw.ask("bx1", 443) == "203.0.113.12"  # new connections, through the other gateway
    assert any(e["kind"] == "exits" and f"blue: {active} -> {other}" in e["message"]
               for e in st["events"])

    ping = gw.ping("bx1")
    ping.wait_replies(20)
    gw.repair(active)
    gw.wait_for(lambda: gw.exit_of("blue") == active, 5, f"blue back on {active}")
    ping.wait_replies(len(ping.replies()) + 20, timeout=5)
    repair_gap = ping.stop()
    assert gw.ask("bx1", 443) == "203.0.113.12"
    assert gw.ask("rf1", 443) == "203.0.113.20"
    print(f"\nuplink {active} cut: longest silence {cut_gap:.0f} ms; repaired: "
          f"{repair_gap:.0f} ms (ping every 10 ms, loaded machine)")


def test_a_vm_over_its_connection_limit_opens_nothing_more(cleanup, tmp_path) -> None:
    """`--vm-conn-limit 3`: bx1's zone (its port number, random and high: the
    datapath is shared) holds 3 connections; a 4th never opens; the daemon takes
    the limit back when it stops."""
    net = GatewayNet(cleanup, tmp_path)
    net.build(("--vm-conn-limit", "3", "--tenant-nat-limit", "0"))
    net.wait_for(net.next_hops_learned, 15, "next hops learned")
    net.serve(443)
    zone = f"zone={net.vm_ports['bx1']}"
    assert f"{zone},limit=3,count=0" in sh("ovs-appctl", "dpctl/ct-get-limits", zone)
    held = [net.talk("bx1", 443, 4.0) for _ in range(3)]
    assert net.ask("bx1", 443, timeout=1.0) is None  # a 4th: over the limit
    assert all(net.talked(p)[1] for p in held)  # the first three were never disturbed
    net.daemon.terminate()
    net.daemon.wait(10)
    # Taken back: the zone has the datapath's default again (0: none).
    assert f"{zone},limit=0," in sh("ovs-appctl", "dpctl/ct-get-limits", zone)
