"""`sdnctl vm plug | unplug | migrate` on real Open vSwitch and namespaces.

Two netdev bridges stand for hypervisors hv1 and hv2 (datapath ids from a topology
written for the test, a patch-port link hv1:10 <-> hv2:10). VMs are plugged into
namespaces by the command itself; the real daemon then programs both bridges and
real packets show the policy holds, that a VM stays reachable while it migrates
(the ping gap is printed), and that unplug leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdnctl.cli import main
from sdnctl.client.api import get_status, wait_programmed
from sdnctl.southbound.vmwire import host_ifnames

POLICY = """\
version: 1
tenants:
  t1:
    default: deny
    segments:
      web: {{vlan: 10, subnet: 10.9.10.0/24, gateway: 10.9.10.1}}
    groups:
      web: {{labels: {{tier: web}}}}
    rules:
      - {{from: any, to: web, allow: [icmp, tcp/80]}}
vms:
  {a}: {{tenant: t1, segment: web, mac: "02:00:00:09:10:11", ip: 10.9.10.11,
        labels: {{tier: web}}, host: hv1}}
  {b}: {{tenant: t1, segment: web, mac: "02:00:00:09:10:12", ip: 10.9.10.12,
        labels: {{tier: web}}, host: hv1}}
  {c}: {{tenant: t1, segment: web, mac: "02:00:00:09:10:13", ip: 10.9.10.13, host: hv2}}
"""


@dataclass
class Guest:
    """A plugged VM's namespace, as the lab's probe helpers want it."""

    ns: str
    ip: str


@dataclass
class Net:
    files: list[str]  # -p POLICY -t TOPOLOGY
    bridges: dict[str, str]  # switch -> bridge
    vms: dict[str, str]  # a, b, c -> the VM's (unique) name
    of_port: int
    dpids: dict[str, int]  # switch -> dpid


@pytest.fixture
def net(lab) -> Net:
    names = {k: f"{k}{secrets.token_hex(3)}" for k in "abc"}
    dpids = {sw: lab.random_dpid() for sw in ("hv1", "hv2")}
    topo = lab.write("topology.yaml", f"""\
        version: 1
        switches:
          hv1: {{dpid: {dpids['hv1']}, role: hypervisor}}
          hv2: {{dpid: {dpids['hv2']}, role: hypervisor}}
        links:
          - {{a: "hv1:10", b: "hv2:10"}}
        """)
    policy = lab.write("policy.yaml", POLICY.format(**names))
    of_port = lab.free_port()
    bridges = {sw: lab.bridge(dpid, controller_port=of_port) for sw, dpid in dpids.items()}
    a, b = bridges["hv1"], bridges["hv2"]
    lab.sh(["ovs-vsctl",
            "add-port", a, f"{a}-l", "--", "set", "Interface", f"{a}-l", "type=patch",
            f"options:peer={b}-l", "ofport_request=10", "--",
            "add-port", b, f"{b}-l", "--", "set", "Interface", f"{b}-l", "type=patch",
            f"options:peer={a}-l", "ofport_request=10"])
    for vm in names.values():  # whatever a test leaves plugged goes with the bridges
        for ifname in host_ifnames(vm):
            lab.cleanup.veth(ifname)
    return Net(["-p", str(policy), "-t", str(topo)], bridges, names, of_port, dpids)


def vm(capsys, net: Net, *argv: str) -> tuple[int, str, str]:
    code = main(["vm", *argv, *net.files])
    out, err = capsys.readouterr()
    return code, out, err


def plug_ns(lab, capsys, net: Net, key: str, switch: str = "hv1") -> Guest:
    ns = lab.cleanup.netns(lab.unique())
    code, out, err = vm(capsys, net, "plug", net.vms[key], "--host", switch, "--netns", ns)
    assert code == 0, err
    assert f"{net.vms[key]}: plugged on {switch}" in out
    ip = {"a": "10.9.10.11", "b": "10.9.10.12", "c": "10.9.10.13"}[key]
    return Guest(ns, ip)


def ovs_ids(iface: str) -> dict[str, str]:
    out = subprocess.run(["ovs-vsctl", "get", "Interface", iface,
                          "external_ids"], capture_output=True, text=True, check=True).stdout
    # ovs-vsctl prints the map as {key=value, ...}; values may be quoted.
    return {k: v.strip('"') for k, v in re.findall(r'([\w-]+)=("[^"]*"|[^,}]*)', out)}


def ip_json(ns: str, *args: str) -> list[dict]:
    out = subprocess.run(["ip", "-n", ns, "-j", *args], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out or "[]")


def bridge_of(iface: str) -> str:
    return subprocess.run(["ovs-vsctl", "iface-to-br", iface], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.ovs
def test_plug_wires_the_namespace_and_binds_the_port_in_ovsdb(lab, net, capsys) -> None:
    a = plug_ns(lab, capsys, net, "a")
    name = net.vms["a"]
    host_if = host_ifnames(name)[0]
    assert host_if == f"vm-{name}"
    assert bridge_of(host_if) == net.bridges["hv1"]
    ids = ovs_ids(host_if)
    assert ids["vm-id"] == name and ids["attached-mac"] == "02:00:00:09:10:11"
    assert ids["sdnctl-netns"] == a.ns and ids["sdnctl-netns-created"] == "true"

    (link,) = ip_json(a.ns, "addr", "show", "eth0")
    assert link["address"] == "02:00:00:09:10:11" and link["mtu"] == 1500
    assert "UP" in link["flags"]
    assert [(x["local"], x["prefixlen"]) for x in link["addr_info"] if x["family"] == "inet"] \
        == [("10.9.10.11", 24)]
    routes = ip_json(a.ns, "route", "show", "default")
    assert [(r["gateway"], r["dev"]) for r in routes] == [("10.9.10.1", "eth0")]
    features = lab.sh(["ip", "netns", "exec", a.ns, "ethtool", "-k", "eth0"])
    assert re.search(r"^tx-checksumming: off", features, re.M)

    # Plugging again changes nothing, and says so.
    ofport = lab.sh(["ovs-vsctl", "get", "Interface", host_if, "ofport"]).strip()
    code, out, _ = vm(capsys, net, "plug", name, "--netns", a.ns)
    assert code == 0 and out.startswith(f"{name}: already plugged on hv1") \
        and "nothing changed" in out and out.count("\n") == 1
    assert lab.sh(["ovs-vsctl", "get", "Interface", host_if, "ofport"]).strip() == ofport

    # A drifted piece is repaired, and only that piece.
    lab.sh(["ip", "-n", a.ns, "route", "del", "default"])
    code, out, _ = vm(capsys, net, "plug", name, "--netns", a.ns)
    assert code == 0 and out.splitlines()[1:] == [f"  {a.ns}:eth0: default route via 10.9.10.1"]

    # Unplug removes the port, the veth and the namespace plug created.
    code, out, _ = vm(capsys, net, "unplug", name)
    assert code == 0 and f"removed namespace {a.ns}" in out
    assert lab.sh(["ovs-vsctl", "--if-exists", "get", "Interface", host_if, "name"]) == ""
    assert not Path("/sys/class/net", host_if).exists()
    assert a.ns not in lab.sh(["ip", "netns", "list"]).split()
    code, out, _ = vm(capsys, net, "unplug", name)
    assert code == 0 and out == f"{name}: not plugged; nothing to do\n"


@pytest.mark.ovs
def test_plug_a_tap_and_refusals_that_need_ovsdb(lab, net, capsys) -> None:
    name = net.vms["c"]
    tap = host_ifnames(name)[0]
    code, out, err = vm(capsys, net, "plug", name, "--tap", "--mtu", "1400")
    assert code == 0, err
    assert out.startswith(f"{name}: plugged on hv2 (bridge {net.bridges['hv2']}, port {tap}")
    info = json.loads(lab.sh(["ip", "-d", "-j", "link", "show", tap]))[0]
    assert info["linkinfo"]["info_kind"] == "tun" and info["linkinfo"]["info_data"]["type"] == "tap"
    assert info["address"] == "02:00:00:09:10:13" and info["mtu"] == 1400
    assert ovs_ids(tap)["vm-id"] == name and ovs_ids(tap)["sdnctl-kind"] == "tap"

    # Plugged as a tap: neither a namespace plug nor a plug on another switch goes through.
    code, _, err = vm(capsys, net, "plug", name, "--netns", lab.unique())
    assert code == 2 and "plugged as tap" in err and "unplug it first" in err
    code, _, err = vm(capsys, net, "plug", name, "--host", "hv1", "--tap")
    assert code == 2 and f"use `sdnctl vm migrate {name} --to hv1`" in err
    assert vm(capsys, net, "unplug", name)[0] == 0
    assert not Path("/sys/class/net", tap).exists()

    # A port that sdnctl did not make already claims the VM: a second claim would unbind it.
    other = lab.port(net.bridges["hv2"], 77, vm_id=name)
    code, _, err = vm(capsys, net, "plug", name, "--tap")
    assert code == 2 and f"{name} is bound by port {other} on bridge" in err
    assert not Path("/sys/class/net", tap).exists()

    # No bridge carries the switch's dpid: refused before anything is created.
    lab.sh(["ovs-vsctl", "remove", "Bridge", net.bridges["hv1"], "other_config", "datapath-id"])
    lab.wait_for(lambda: lab.sh(["ovs-vsctl", "get", "Bridge", net.bridges["hv1"],
                                 "datapath_id"]).strip('"\n') != f"{net.dpids['hv1']:016x}",
                 5, "a datapath id other than hv1's")
    code, _, err = vm(capsys, net, "plug", net.vms["a"], "--netns", lab.unique())
    assert code == 2 and "no OVS bridge has datapath id" in err
    assert not Path("/sys/class/net", host_ifnames(net.vms["a"])[0]).exists()


def default_routes(ns: str) -> list[tuple[str, str, int]]:
    return [(r["gateway"], r["dev"], r.get("metric", 0))
            for r in ip_json(ns, "route", "show", "default")]


@pytest.mark.ovs
def test_an_interrupted_migration_is_finished_by_running_migrate_again(lab, net, capsys):
    a = plug_ns(lab, capsys, net, "a")
    name = net.vms["a"]
    old_if, new_if = host_ifnames(name)

    # Interrupted before the move: the new port is on hv2, unbound, its veth half made.
    lab.sh(["ip", "link", "add", new_if, "type", "veth", "peer", "name", lab.unique()])
    lab.sh(["ovs-vsctl", "add-port", net.bridges["hv2"], new_if])
    code, _, err = vm(capsys, net, "plug", name, "--netns", a.ns)
    assert code == 2 and "half-way through a migration" in err
    code, out, err = vm(capsys, net, "migrate", name, "--to", "hv2")
    assert code == 0, err
    assert f"deleted {new_if} (not paired with {a.ns}:eth1)" in out
    assert f"removed port {new_if} (its interface was recreated)" in out
    assert bridge_of(new_if) == net.bridges["hv2"] and ovs_ids(new_if)["vm-id"] == name
    assert not Path("/sys/class/net", old_if).exists()
    assert [x["ifname"] for x in ip_json(a.ns, "link", "show")] == ["lo", "eth1"]
    assert default_routes(a.ns) == [("10.9.10.1", "eth1", 0)]

    # Interrupted after the move: the old veth is still there and its route still wins.
    lab.sh(["ip", "link", "add", old_if, "type", "veth", "peer", "name", "eth0", "netns", a.ns])
    for cmd in (["link", "set", "eth0", "up"], ["addr", "add", "10.9.10.11/24", "dev", "eth0"],
                ["route", "del", "default"],
                ["route", "add", "default", "via", "10.9.10.1", "dev", "eth1", "metric", "1"],
                ["route", "add", "default", "via", "10.9.10.1", "dev", "eth0"]):
        lab.sh(["ip", "-n", a.ns, *cmd])
    code, out, err = vm(capsys, net, "migrate", name, "--to", "hv2")
    assert code == 0, err
    assert out.splitlines() == [
        f"{name}: already on hv2 (bridge {net.bridges['hv2']}, port {new_if}, OpenFlow port "
        f"{lab.sh(['ovs-vsctl', 'get', 'Interface', new_if, 'ofport']).strip()}); "
        "finished an interrupted migration",
        f"  deleted {old_if} (left over)",
        f"  {a.ns}:eth1: default route via 10.9.10.1",
    ]
    assert default_routes(a.ns) == [("10.9.10.1", "eth1", 0)]
    code, out, _ = vm(capsys, net, "migrate", name, "--to", "hv2")
    assert code == 0 and out.endswith("; nothing changed\n")


def moved_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if "moved vm-id" in line), "")


def _ping(ns: str, dst: str, out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as f:
        return subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-n", "-i", "0.01", "-W",
                                 "1", dst], stdout=f, stderr=subprocess.STDOUT)


def _longest_gap(proc: subprocess.Popen[bytes], out: Path) -> tuple[int, int]:
    """Stop the ping; (most consecutive requests unanswered, requests sent)."""
    proc.send_signal(signal.SIGINT)
    proc.wait(5)
    text = out.read_text()
    seen = {int(n) for n in re.findall(r"icmp_seq=(\d+) ttl=", text)}
    sent = int(re.search(r"(\d+) packets transmitted", text)[1]) - 1  # last may be in flight
    gap = longest = 0
    for seq in range(1, sent + 1):
        gap = 0 if seq in seen else gap + 1
        longest = max(longest, gap)
    return longest, sent


@pytest.mark.ovs
def test_daemon_binds_plugged_vms_and_a_migration_keeps_them_reachable(
        lab, net, capsys, tmp_path) -> None:
    a = plug_ns(lab, capsys, net, "a")
    b = plug_ns(lab, capsys, net, "b")
    name_a, name_b = net.vms["a"], net.vms["b"]
    policy, topo = Path(net.files[1]), Path(net.files[3])
    daemon = lab.daemon(policy, topo, of_port=net.of_port)
    status = wait_programmed(daemon.api, ["hv1", "hv2"], timeout=30)
    assert set(status["bindings"]) == {name_a, name_b}
    assert status["bindings"][name_a].startswith("hv1:")

    lab.serve(b, "tcp/80", "tcp/22")
    assert lab.probe(a, b.ip, "icmp") and lab.probe(b, a.ip, "icmp")
    assert lab.probe(a, b.ip, "tcp/80")
    assert not lab.probe(a, b.ip, "tcp/22", timeout=1.0)  # no rule: the policy still rules

    gaps = []
    for dest in ("hv2", "hv1", "hv2"):
        out = tmp_path / f"ping-{dest}-{len(gaps)}.txt"
        ping = lab.cleanup.process(_ping(a.ns, b.ip, out))
        lab.wait_for(lambda out=out: out.read_text().count("ttl=") >= 20, 5, "ping going")
        code, text, err = vm(capsys, net, "migrate", name_b, "--to", dest)
        assert code == 0, err
        assert f"{name_b}: migrated to {dest}" in text
        lab.wait_for(lambda d=dest: get_status(daemon.api)["bindings"].get(name_b, "")
                     .startswith(f"{d}:"), 5, f"{name_b} bound on {dest}")
        time.sleep(0.5)  # let the ping run on at the new place
        longest, sent = _longest_gap(ping, out)
        gaps.append(longest * 10)
        with capsys.disabled():
            print(f"\nmigration to {dest}: {sent} pings at 10 ms, longest gap {longest} "
                  f"({longest * 10} ms); {moved_line(text)}")
        assert longest < 100, f"{name_b} unreachable for {longest} pings during the migration"
        assert lab.probe(a, b.ip, "tcp/80")  # the server never noticed the move
    with capsys.disabled():
        print(f"migration ping gap (10 ms interval): {gaps} ms, "
              f"median {statistics.median(gaps)} ms")

    # Exactly one port carries the VM: the second name slot, on hv2.
    new_if = host_ifnames(name_b)[1]
    assert bridge_of(new_if) == net.bridges["hv2"]
    assert not Path("/sys/class/net", host_ifnames(name_b)[0]).exists()
    assert [x["ifname"] for x in ip_json(b.ns, "link", "show") if x["ifname"] != "lo"] == ["eth1"]
    code, text, _ = vm(capsys, net, "migrate", name_b, "--to", "hv2")
    assert code == 0 and "nothing changed" in text

    code, text, _ = vm(capsys, net, "unplug", name_a)
    assert code == 0 and f"removed namespace {a.ns}" in text
    # b's namespace still runs the test's server: unplug keeps it, and says why.
    code, text, _ = vm(capsys, net, "unplug", name_b)
    assert code == 0 and f"note: kept namespace {b.ns}: it still has 1 processes" in text
    lab.wait_for(lambda: not get_status(daemon.api)["bindings"], 5, "bindings gone")
    for name in (name_a, name_b):
        for ifname in host_ifnames(name):
            assert not Path("/sys/class/net", ifname).exists()
    namespaces = set(lab.sh(["ip", "netns", "list"]).split())
    assert a.ns not in namespaces and b.ns in namespaces
    assert [x["ifname"] for x in ip_json(b.ns, "link", "show")] == ["lo"]
    ports = lab.sh(["ovs-vsctl", "list-ports", net.bridges["hv1"]]).split()
    ports += lab.sh(["ovs-vsctl", "list-ports", net.bridges["hv2"]]).split()
    assert all(p.endswith("-l") for p in ports)  # only the link is left
    assert daemon.stop() == 0
