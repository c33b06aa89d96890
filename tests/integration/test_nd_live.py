"""IPv6 on real OVS with the real daemon and the real Linux IPv6 stack in each VM.

- A VM that solicits a router gets the controller's advertisement: the kernel
  builds its EUI-64 address in the segment's prefix (SLAAC), takes the distributed
  router as its default route and the MTU that fits; it then pings a VM of its
  segment and, routed, one of another segment (neighbour discovery answered by
  the controller both times), in the tenant's rules.
- A rogue router: a VM sending router advertisements (a prefix of its own, itself
  as the default router) changes nothing in its neighbour, which still reaches
  the others; a neighbour advertisement claiming another VM's address reaches no one.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import textwrap
import time
from ipaddress import IPv6Address, IPv6Network

import pytest
from daemon_cmd import one_hypervisor

from sdnctl.client.api import get_metrics
from sdnctl.nd.wire import checksum
from sdnctl.pipeline import gateway_mac
from sdnctl.policy.ipv6 import eui64_address, link_local

pytestmark = [pytest.mark.ovs]

POLICY = """\
version: 1
tenants:
  t1:
    segments:
      web: {vlan: 10, subnet: 10.9.10.0/24, gateway: 10.9.10.1,
            subnet6: "2001:db8:9:10::/64", gateway6: "2001:db8:9:10::1"}
      db:  {vlan: 20, subnet: 10.9.20.0/24, gateway: 10.9.20.1,
            subnet6: "2001:db8:9:20::/64", gateway6: "2001:db8:9:20::1"}
    groups:
      web: {labels: {tier: web}}
      db:  {labels: {tier: db}}
    rules:
      - {from: any, to: web, allow: [icmp]}
      - {from: web, to: db, allow: [icmp], family: ipv6}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:09:10:11", ip: 10.9.10.11,
       labels: {tier: web}, host: hv1}
  w2: {tenant: t1, segment: web, mac: "02:00:00:09:10:12", ip: 10.9.10.12,
       labels: {tier: web}, host: hv1}
  d1: {tenant: t1, segment: db,  mac: "02:00:00:09:20:11", ip: 10.9.20.11,
       labels: {tier: db}, host: hv1}
"""
PORTS = {"w1": 100, "w2": 101, "d1": 103}
MACS = {"w1": "02:00:00:09:10:11", "w2": "02:00:00:09:10:12", "d1": "02:00:00:09:20:11"}
PREFIX = {"w1": "2001:db8:9:10::/64", "w2": "2001:db8:9:10::/64", "d1": "2001:db8:9:20::/64"}


def _address(name: str) -> IPv6Address:
    return eui64_address(IPv6Network(PREFIX[name]), MACS[name])


def setup(lab, *vms: str):
    bridge, daemon = one_hypervisor(lab, POLICY, "--stats-interval", "1")
    return daemon, {name: slaac_vm(lab, bridge, name) for name in vms}


def slaac_vm(lab, bridge: str, name: str):
    """A VM as a Linux guest boots IPv6: EUI-64 addresses, router solicitations
    every second until a router answers (IPv4: a placeholder /32)."""
    vm = lab.vm(bridge, PORTS[name], MACS[name], "192.0.2.1/32", vm_id=name)
    for key, value in (("disable_ipv6", 0), ("addr_gen_mode", 0), ("use_tempaddr", 0),
                       ("accept_ra", 1), ("autoconf", 1), ("router_solicitations", -1),
                       ("router_solicitation_interval", 1),
                       ("router_solicitation_max_interval", 1)):
        subprocess.run(["ip", "netns", "exec", vm.ns, "sysctl", "-qw",
                        f"net.ipv6.conf.eth0.{key}={value}"], check=False)
    vm.run("ip", "link", "set", "eth0", "down")
    vm.run("ip", "link", "set", "eth0", "up")
    return vm


def _ping6(vm, dst: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", vm.ns, "ping", "-6", "-c", "1", "-W", "2", dst],
                          capture_output=True).returncode == 0


def _has_address(vm, name: str) -> bool:
    out = vm.run("ip", "-6", "addr", "show", "dev", "eth0")
    return f"{_address(name)}/64" in out and "tentative" not in out


def test_slaac_from_the_controllers_advert_then_neighbours_and_router(lab) -> None:
    daemon, vms = setup(lab, "w1", "w2", "d1")
    for name, vm in vms.items():
        lab.wait_for(lambda vm=vm, name=name: _has_address(vm, name), 30,
                     f"{name}'s SLAAC address from the controller's router advertisement")
    routes = vms["w1"].run("ip", "-6", "route", "show", "default")
    assert f"via {link_local(gateway_mac(10))}" in routes, routes
    mtu = vms["w1"].run("cat", "/proc/sys/net/ipv6/conf/eth0/mtu").strip()
    assert mtu == "1492", mtu  # what DHCP says too: the default underlay less tag and label
    # Same segment (the neighbour's MAC from the controller), then routed to db.
    assert lab.wait_for(lambda: _ping6(vms["w1"], str(_address("w2"))), 15, "w1 -> w2 over IPv6")
    assert lab.wait_for(lambda: _ping6(vms["w1"], str(_address("d1"))), 15, "w1 -> d1 routed")
    assert _ping6(vms["d1"], str(_address("w1")))  # any -> web icmp
    metrics = get_metrics(daemon.api)
    assert re.search(r'sdnctl_dhcp_requests_vm_total\{vm="w1",outcome="nd-advert"\} [1-9]',
                     metrics), metrics


_SEND = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind(("eth0", 0))
    for _ in range(int(sys.argv[2])):
        s.send(bytes.fromhex(sys.argv[1]))
    """
)


def _icmp6_frame(src_mac: str, dst_mac: str, src: IPv6Address, dst: IPv6Address,
                 message: bytes) -> bytes:
    body = message[:2] + struct.pack("!H", checksum(src, dst, message)) + message[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(body), 58, 255) + src.packed + dst.packed
    return (bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
            + b"\x86\xdd" + ip6 + body)


def test_a_rogue_router_and_a_forged_neighbour_change_nothing(lab) -> None:
    _, vms = setup(lab, "w1", "w2", "d1")
    for name, vm in vms.items():
        lab.wait_for(lambda vm=vm, name=name: _has_address(vm, name), 30, f"{name}'s address")
    rogue, victim = vms["w2"], vms["w1"]
    ll = link_local(MACS["w2"])
    # An RA: w2 is the default router, prefix 2001:db8:bad::/64, autonomous.
    ra = (struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 9000, 0, 0)
          + struct.pack("!BB6s", 1, 1, bytes.fromhex(MACS["w2"].replace(":", "")))
          + struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 86400, 86400, 0)
          + IPv6Address("2001:db8:bad::").packed)
    # An NA: w2 claims the router's link-local address, w1's default router, with
    # the override flag, so that w1 would send it everything leaving the segment.
    router = link_local(gateway_mac(10))
    assert lab.wait_for(lambda: _ping6(victim, str(_address("d1"))), 15, "w1 uses its router")
    na = (struct.pack("!BBHB3x", 136, 0, 0, 0xA0) + router.packed
          + struct.pack("!BB6s", 2, 1, bytes.fromhex(MACS["w2"].replace(":", ""))))
    frames = [
        _icmp6_frame(MACS["w2"], "33:33:00:00:00:01", ll, IPv6Address("ff02::1"), ra),
        _icmp6_frame(MACS["w2"], MACS["w1"], ll, IPv6Address("ff02::1"), ra),
        _icmp6_frame(MACS["w2"], "33:33:00:00:00:01", _address("w2"), IPv6Address("ff02::1"),
                     na),
        _icmp6_frame(MACS["w2"], MACS["w1"], _address("w2"), _address("w1"), na),
    ]
    for frame in frames:
        subprocess.run(["ip", "netns", "exec", rogue.ns, sys.executable, "-c", _SEND,
                        frame.hex(), "5"], check=True)
    addresses = victim.run("ip", "-6", "addr", "show", "dev", "eth0")
    assert "2001:db8:bad:" not in addresses, addresses
    routes = victim.run("ip", "-6", "route", "show")
    assert str(ll) not in routes, routes
    neigh = victim.run("ip", "-6", "neigh", "show", str(router))
    assert gateway_mac(10) in neigh and MACS["w2"] not in neigh, neigh
    assert lab.wait_for(lambda: _ping6(victim, str(_address("d1"))), 15, "legit traffic flows")


STORM_RATE, STORM_S = 2000, 3.0  # solicitations a second, for this long


def _nd_drops(metrics: str, vm: str) -> int:
    got = re.search(rf'sdnctl_nd_meter_drops_vm_total\{{vm="{vm}"\}} (\d+)', metrics)
    return int(got[1]) if got else 0


def test_a_solicitation_storm_is_cut_by_the_nd_meter_and_counted(lab) -> None:
    """A storm of neighbour solicitations from one VM: its ND meter (10/s, burst 20)
    drops nearly all of them in the switch, /metrics counts the drops for that VM
    (they rise from where they were), and a neighbour still gets its own answers."""
    from dhcpkit import sender_result, start_sender

    daemon, vms = setup(lab, "w1", "w2", "d1")
    lab.wait_for(lambda: _has_address(vms["w2"], "w2"), 30, "w2's address")
    before = _nd_drops(get_metrics(daemon.api), "w1")
    ns = (struct.pack("!BBHI", 135, 0, 0, 0) + _address("w2").packed
          + struct.pack("!BB6s", 1, 1, bytes.fromhex(MACS["w1"].replace(":", ""))))
    frame = _icmp6_frame(MACS["w1"], "33:33:ff:00:00:01", link_local(MACS["w1"]),
                         IPv6Address("ff02::1:ff00:1"), ns)
    sent, took = sender_result(start_sender(vms["w1"].ns, [frame], rate=STORM_RATE,
                                            seconds=STORM_S, tmp=lab.tmp))
    time.sleep(2.5)  # a stats poll reads the meters
    metrics = get_metrics(daemon.api)
    drops = _nd_drops(metrics, "w1") - before
    answered = sum(int(n) for n in re.findall(
        r'sdnctl_dhcp_requests_vm_total\{vm="w1",outcome="nd-[a-z]+"\} (\d+)', metrics))
    print(f"\nNS storm: {sent} sent in {took:.1f} s ({sent / took:.0f}/s); dropped by w1's "
          f"ND meter {drops}; reached the controller {answered}")
    assert drops > sent // 2, (drops, sent)
    assert answered < sent // 20
    assert lab.wait_for(lambda: _ping6(vms["w2"], str(_address("d1"))), 15,
                        "w2 -> d1 (ND answered) after the storm")
