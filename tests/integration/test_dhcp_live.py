"""DHCP on real OVS with the real daemon and a real client (busybox udhcpc).

- A VM with no address boots its network by DHCP and is told its policy address,
  prefix, router, DNS and an MTU that fits (1492 on a default 1500 underlay), and
  can then talk to another VM; a segment without a gateway gets no router.
- A rogue DHCP server VM: its offers (broadcast and unicast) reach no other VM,
  and the victim still gets its lease from the policy.
- A DISCOVER storm from one VM: another VM still gets its lease, the API still
  answers, and /metrics counts the storm's meter drops for the storming VM.
Figures (lease times, API latency, storm rates) are printed, not asserted beyond
sanity: docs/benchmarks.md has the measured ones.
"""

from __future__ import annotations

import re
import signal
import statistics
import subprocess
import time
from ipaddress import IPv4Address

import pytest
from daemon_cmd import one_hypervisor
from dhcpkit import sender_result, start_sender, start_udhcpc, udhcpc

from sdnctl.client.api import get_metrics, get_status
from sdnctl.dhcp.wire import MessageType, encode_request

pytestmark = [pytest.mark.ovs, pytest.mark.needs("udhcpc", "tcpdump")]

POLICY = """\
version: 1
tenants:
  t1:
    default: allow
    dns: [10.9.0.53]
    segments:
      web: {vlan: 10, subnet: 10.9.10.0/24, gateway: 10.9.10.1, dns: [10.9.0.54, 10.9.0.55]}
      db:  {vlan: 20, subnet: 10.9.20.0/26}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:09:10:11", ip: 10.9.10.11, host: hv1}
  w2: {tenant: t1, segment: web, mac: "02:00:00:09:10:12", ip: 10.9.10.12, host: hv1}
  w3: {tenant: t1, segment: web, mac: "02:00:00:09:10:13", ip: 10.9.10.13, host: hv1}
  d1: {tenant: t1, segment: db,  mac: "02:00:00:09:20:11", ip: 10.9.20.11, host: hv1}
"""
PORTS = {"w1": 100, "w2": 101, "w3": 102, "d1": 103}


def setup(lab, *vms: str):
    bridge, daemon = one_hypervisor(lab, POLICY, "--stats-interval", "1")
    return bridge, daemon, {name: bare_vm(lab, bridge, name) for name in vms}


def bare_vm(lab, bridge: str, name: str):
    """A VM as a cloud image boots it: its MAC, no address, bound to its port."""
    mac = re.search(rf'{name}: .*mac: "([0-9a-f:]+)"', POLICY)[1]  # type: ignore[index]
    vm = lab.vm(bridge, PORTS[name], mac, "192.0.2.1/32", vm_id=name)
    vm.run("ip", "addr", "flush", "dev", "eth0")
    return vm


def test_a_vm_gets_its_policy_lease_from_a_real_client(lab) -> None:
    _, daemon, vms = setup(lab, "w1", "w2", "d1")
    lease = udhcpc(vms["w1"].ns, lab.tmp)
    assert lease.fields["ip"] == "10.9.10.11" and lease.fields["mask"] == "24"
    assert lease.fields["router"] == "10.9.10.1"
    assert lease.fields["dns"] == "10.9.0.54,10.9.0.55"  # the segment's, not the tenant's
    assert lease.fields["mtu"] == "1492"  # default underlay 1500 - VLAN tag and label
    assert lease.fields["serverid"] == "10.9.10.1" and lease.fields["hostname"] == "w1"
    assert lease.fields["lease"] == "86400"
    assert "mtu 1492" in vms["w1"].run("ip", "link", "show", "eth0")

    db = udhcpc(vms["d1"].ns, lab.tmp)
    assert (db.fields["ip"], db.fields["mask"], db.fields["router"]) == ("10.9.20.11", "26", "")
    assert db.fields["dns"] == "10.9.0.53" and db.fields["serverid"] == "10.9.20.62"

    # The address works: w2 takes its lease too and the two talk.
    udhcpc(vms["w2"].ns, lab.tmp)
    assert lab.probe(vms["w1"], "10.9.10.12", "icmp")
    metrics = get_metrics(daemon.api)
    assert re.search(r'sdnctl_dhcp_requests_vm_total\{vm="w1",outcome="ack"\} [1-9]', metrics)


def test_renewal_and_release_are_handled(lab) -> None:
    """udhcpc keeps running: SIGUSR1 renews (unicast to the server from the VM's
    address: acked), SIGUSR2 releases (logged, no answer: the address stays the VM's)."""
    _, daemon, vms = setup(lab, "w1")
    client = start_udhcpc(lab.cleanup, vms["w1"].ns, lab.tmp)
    lab.wait_for(lambda: client.events() == ["bound"], 10, "the first lease")
    client.proc.send_signal(signal.SIGUSR1)
    lab.wait_for(lambda: client.events() == ["bound", "renew"], 10, "the renewal acked")
    assert client.last()["ip"] == "10.9.10.11"
    time.sleep(0.3)  # the record is written inside the script: let udhcpc finish the event
    client.proc.send_signal(signal.SIGUSR2)
    lab.wait_for(lambda: "DHCP RELEASE of 10.9.10.11" in daemon.log_text(), 10,
                 "the release logged")
    metrics = get_metrics(daemon.api)
    assert re.search(r'sdnctl_dhcp_requests_vm_total\{vm="w1",outcome="ack"\} 2\b', metrics)
    assert re.search(r'sdnctl_dhcp_requests_vm_total\{vm="w1",outcome="ignored"\} 1\b',
                     metrics)


def test_a_rogue_dhcp_server_reaches_no_one(lab) -> None:
    _, daemon, vms = setup(lab, "w1", "w2")
    rogue, victim = vms["w1"], vms["w2"]
    udhcpc(rogue.ns, lab.tmp)  # the rogue has its own valid address and MAC
    capture = lab.tmp / "victim.pcap"
    dump = lab.cleanup.process(subprocess.Popen(
        ["ip", "netns", "exec", victim.ns, "tcpdump", "-i", "eth0", "-Q", "in", "-n", "-U",
         "--immediate-mode", "-Z", "root", "-w", str(capture), "udp port 67 or udp port 68"],
        stderr=subprocess.PIPE))
    assert dump.stderr is not None and b"listening" in dump.stderr.readline()
    offers = [_offer(rogue.mac, victim.mac, broadcast) for broadcast in (True, False)]
    sender = start_sender(rogue.ns, offers, rate=200, seconds=4, tmp=lab.tmp)
    lease = udhcpc(victim.ns, lab.tmp)
    assert lease.fields["ip"] == "10.9.10.12" and lease.fields["serverid"] == "10.9.10.1"
    sent, _ = sender_result(sender)
    time.sleep(0.3)
    dump.send_signal(signal.SIGINT)
    dump.wait(5)
    seen = subprocess.run(["tcpdump", "-n", "-e", "-r", str(capture)], capture_output=True,
                          text=True).stdout
    from_rogue = [line for line in seen.splitlines() if rogue.mac in line.split(">")[0]]
    answers = [line for line in seen.splitlines() if "10.9.10.1.67 >" in line]
    print(f"\nrogue server: {sent} offers sent; the victim saw "
          f"{len(from_rogue)} frames from the rogue and {len(answers)} answers from the "
          "policy")
    assert from_rogue == [] and answers


def _offer(rogue_mac: str, victim_mac: str, broadcast: bool) -> bytes:
    """A DHCPOFFER the rogue sends: udp 67 -> 68 from its own valid addresses."""
    frame = bytearray(encode_request(MessageType.OFFER, victim_mac, 7,
                                     ip_src=IPv4Address("10.9.10.11"),
                                     ip_dst=IPv4Address("255.255.255.255" if broadcast
                                                        else "10.9.10.12")))
    frame[0:6] = bytes.fromhex("ff" * 6 if broadcast else victim_mac.replace(":", ""))
    frame[6:12] = bytes.fromhex(rogue_mac.replace(":", ""))
    frame[34:38] = bytes.fromhex("00430044")  # sport 67, dport 68
    frame[40:42] = b"\0\0"  # no UDP checksum: the ports changed
    return bytes(frame)


STORM_RATE = 10_000


def test_a_discover_storm_leaves_others_their_lease_and_the_api_answering(lab) -> None:
    _, daemon, vms = setup(lab, "w1", "w2", "w3")
    storm = vms["w1"]
    discover = encode_request(MessageType.DISCOVER, storm.mac, 0x5151)
    sender = start_sender(storm.ns, [discover], rate=STORM_RATE, seconds=8, tmp=lab.tmp)
    time.sleep(1.0)  # the storm is on
    latencies = []
    leases = []
    deadline = time.monotonic() + 5
    for name in ("w2", "w3"):
        leases.append(udhcpc(vms[name].ns, lab.tmp))
    while time.monotonic() < deadline:
        t = time.monotonic()
        get_status(daemon.api, timeout=5)
        latencies.append(time.monotonic() - t)
        time.sleep(0.02)
    sent, elapsed = sender_result(sender)
    rate = sent / elapsed
    assert [lease.fields["ip"] for lease in leases] == ["10.9.10.12", "10.9.10.13"]
    p99 = statistics.quantiles(latencies, n=100)[98]
    time.sleep(2.5)  # a stats poll reads the meters
    metrics = get_metrics(daemon.api)
    drops = re.search(r'sdnctl_dhcp_meter_drops_vm_total\{vm="w1"\} (\d+)', metrics)
    answered = sum(int(n) for n in re.findall(
        r'sdnctl_dhcp_requests_vm_total\{vm="w1",outcome="\w+"\} (\d+)', metrics))
    print(f"\nDISCOVER storm: {sent} sent in {elapsed:.1f} s ({rate:.0f}/s); "
          f"reached the controller {answered}, dropped by w1's meter "
          f"{drops[1] if drops else '?'}; others' leases in "
          f"{', '.join(f'{lease.took_s:.2f} s' for lease in leases)}; API /status p99 "
          f"{p99 * 1000:.1f} ms over {len(latencies)} calls")
    assert drops and int(drops[1]) > sent // 2
    assert answered < sent // 20  # the meter holds the storm in the switch


def test_lease_time_after_the_port_is_bound(lab) -> None:
    """Median over a few VMs of: port bound in OVSDB -> udhcpc holds the lease."""
    bridge, daemon, _ = setup(lab)
    times = []
    for name in ("w1", "w2", "w3", "d1"):
        vm = bare_vm(lab, bridge, name)  # bound as the port is added
        times.append(udhcpc(vm.ns, lab.tmp).took_s)
    print(f"\nlease after binding: median {statistics.median(times):.2f} s "
          f"({', '.join(f'{t:.2f}' for t in times)})")
    assert all(t < 10 for t in times)
