"""What must still hold after (and during) an attack, checked with real traffic.

- liveness: allowed traffic flows, in IPv4 and IPv6: the blue witnesses wa <-> wb
  (tcp/80, icmp, across the fabric), and the attacker's own allowed traffic (evil
  -> rb1 tcp/8080, routed, evil -> rf2 icmp), answered by the intended VM (the
  lab's agent).
- canaries: an allowed, marked ping to every victim, so each capture is shown
  to be listening while the attack ran.
- DHCP: a real client (udhcpc) in a VM still gets that VM's policy address
  (`check_dhcp`, run during the DHCP starvation storm).
- neighbours: every ARP cache entry of the victims and the attacker maps an
  address to its true MAC, and the switch, asked afresh, still answers right.
  IPv6 (`check_neighbours6`): every neighbour cache entry is true, each VM still
  has only its own addresses, its default route via the distributed router, and
  the MTU the router advertised.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from ipaddress import ip_address
from typing import TYPE_CHECKING

from sdnctl.lab.attacks.judge import truth6
from sdnctl.lab.attacks.scene import ATTACKER, CANARY_SENDER, Scene, VmAddr
from sdnctl.lab.plan import HOST_INTF

if TYPE_CHECKING:
    from mininet.node import Node

PROBE_TIMEOUT = 1.0
DHCP_WITNESSES = ("rf2", "wa")  # one beside the attacker (same segment and switch), one not


def check_dhcp(hosts: Mapping[str, Node], scene: Scene,
               names: tuple[str, ...] = DHCP_WITNESSES) -> tuple[list[float], list[str]]:
    """udhcpc in each of `names` at once, leaving the interface as it is (`-s
    /bin/true`): (seconds each lease took, one line per VM that got none or a wrong one)."""
    started = time.monotonic()
    procs = {name: hosts[name].popen(
        ["udhcpc", "-i", HOST_INTF, "-f", "-q", "-n", "-t", "3", "-T", "1", "-A", "1",
         "-s", "/bin/true"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT) for name in names}
    took, failures = [], []
    for name, proc in procs.items():
        try:
            out = proc.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            failures.append(f"{name}: udhcpc hung")
            continue
        got = re.search(r"lease of (\S+) obtained", out)
        if got is None or got[1] != scene.vm(name).ip:
            failures.append(f"{name}: no DHCP lease for {scene.vm(name).ip}: {out[-200:]!r}")
        else:
            took.append(time.monotonic() - started)
    return took, failures


def liveness_targets(s: Scene) -> dict[str, list[dict[str, str]]]:
    """Source VM -> the allowed probes it runs (the agent's JSON format)."""
    wa, wb, rb1, rf2 = s.vm("wa"), s.vm("wb"), s.vm("rb1"), s.vm("rf2")

    def probes(dst: VmAddr, *services: str) -> list[dict[str, str]]:
        return [{"dst": dst.name, "ip": ip, "service": svc}
                for ip in (dst.ip, dst.ip6) if ip is not None for svc in services]

    return {
        "wa": probes(wb, "tcp/80", "icmp"),
        "wb": probes(wa, "tcp/80", "icmp"),
        ATTACKER: probes(rb1, "tcp/8080") + probes(rf2, "icmp"),
    }


def check_liveness(hosts: Mapping[str, Node], targets: Mapping[str, list[dict[str, str]]],
                   retries: int = 1) -> list[str]:
    """Run the probes from every source at once; one line per probe that failed."""
    from sdnctl.lab.probe import AGENT

    procs = {
        src: hosts[src].popen(
            [sys.executable, str(AGENT), "probe", "--timeout", str(PROBE_TIMEOUT),
             "--retries", str(retries), json.dumps(list(probes))],
            stdin=subprocess.DEVNULL)
        for src, probes in targets.items()
    }
    failures = []
    for src, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            failures.append(f"{src}: probe agent hung")
            continue
        if proc.returncode != 0:
            failures.append(f"{src}: probe agent failed: {err.decode(errors='replace')[-200:]}")
            continue
        for o in json.loads(out):
            if not o["reached"]:
                failures.append(f"{src} -> {o['dst']} {o['service']} IPv{o.get('family', 4)}:"
                                f" {o['detail']}")
    return failures


def send_canaries(hosts: Mapping[str, Node], scene: Scene, victims: list[str],
                  marker: bytes) -> None:
    """A marked ping to each victim from a VM the policy lets ping it."""
    procs = [
        hosts[CANARY_SENDER[v]].popen(
            ["ping", "-c", "2", "-i", "0.1", "-W", "1", "-p", marker.hex(), scene.vm(v).ip],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for v in victims
    ]
    for proc in procs:
        proc.wait(timeout=10)


def _truth(v: VmAddr, scene: Scene) -> dict[str, str]:
    """IP -> MAC that V may rightly believe: VMs of its segment and its gateway."""
    truth = {a.ip: a.mac for a in scene.vms.values() if a.vlan == v.vlan and a.name != v.name}
    if v.gateway_ip and v.gateway_mac:
        truth[v.gateway_ip] = v.gateway_mac
    return truth


def _neigh(host: Node) -> dict[str, str]:
    """The host's resolved IPv4 neighbours: IP -> MAC (entries without a MAC left out)."""
    out = host.cmd(f"ip -4 neigh show dev {HOST_INTF}")
    table = {}
    for line in out.splitlines():
        words = line.split()
        if "lladdr" in words:
            table[words[0]] = words[words.index("lladdr") + 1].lower()
    return table


def check_neighbours(hosts: Mapping[str, Node], scene: Scene) -> list[str]:
    """Poisoned cache entries, then wrong or missing fresh answers from the switch."""
    problems = []
    watched = ("rf2", "bx1", "rb1", ATTACKER)
    for vm in watched:
        truth = _truth(scene.vm(vm), scene)
        for ip, mac in _neigh(hosts[vm]).items():
            if truth.get(ip) != mac:
                problems.append(f"{vm}: cache says {ip} is-at {mac} (truth: {truth.get(ip)})")
    # Ask again from a cold cache: (host, address, expected MAC or None for "no answer").
    me, rf2, bx1 = scene.me, scene.vm("rf2"), scene.vm("bx1")
    asks = {
        "rf2": [(rf2.gateway_ip, rf2.gateway_mac), (me.ip, me.mac)],
        "bx1": [(bx1.gateway_ip, bx1.gateway_mac)],
        ATTACKER: [(rf2.ip, rf2.mac), (me.gateway_ip, me.gateway_mac),
                   (scene.vm("bx2").ip, None)],  # a blue-only address: red gets no answer
    }
    procs = {}
    for vm, pairs in asks.items():
        script = "; ".join(
            f"ip neigh flush to {ip} dev {HOST_INTF}; ping -c1 -W0.3 {ip} >/dev/null;"
            f" echo {ip} $(ip -4 neigh show to {ip} dev {HOST_INTF})"
            for ip, _ in pairs if ip)
        procs[vm] = hosts[vm].popen(["sh", "-c", script], stdin=subprocess.DEVNULL)
    for vm, proc in procs.items():
        out, _ = proc.communicate(timeout=20)
        seen = {}
        for line in out.decode().splitlines():
            words = line.split()
            if words:
                seen[words[0]] = words[words.index("lladdr") + 1] if "lladdr" in words else None
        for ip, expected in asks[vm]:
            if ip and seen.get(ip) != expected:
                problems.append(f"{vm}: asked for {ip}, got {seen.get(ip)} (expected {expected})")
    return problems


# ---- IPv6 ---------------------------------------------------------------------


def check_neighbours6(hosts: Mapping[str, Node], scene: Scene,
                      watched: tuple[str, ...] = ("rf2", "bx1", "rb1", ATTACKER)) -> list[str]:
    """What IPv6 spoofing would have changed in a VM: a neighbour entry with a wrong
    MAC, an address from a prefix that is not its segment's, a default route that is
    not the distributed router, or an MTU other than the advertised one."""
    problems = []
    for vm in watched:
        v, host = scene.vm(vm), hosts[vm]
        if v.ip6 is None:
            continue
        truth = truth6(v, scene)
        for ip, mac in _neigh6(host).items():
            if truth.get(ip) != mac:
                problems.append(f"{vm}: cache says {ip} is-at {mac} (truth: {truth.get(ip)})")
        mine = {str(ip_address(v.ip6)), str(ip_address(v.link_local or "::"))}
        for ip in _addresses6(host):
            if ip not in mine:
                problems.append(f"{vm}: has address {ip}, not its own")
        routes = host.cmd(f"ip -6 route show default dev {HOST_INTF}").split()
        vias = {routes[i + 1] for i, word in enumerate(routes[:-1]) if word == "via"}
        wanted = {v.router6} if v.gateway6 and v.router6 else set()
        if vias != wanted:
            problems.append(f"{vm}: default routes via {sorted(vias)} (expected {sorted(wanted)})")
        mtu = host.cmd(f"cat /proc/sys/net/ipv6/conf/{HOST_INTF}/mtu").strip()
        if v.mtu6 is not None and mtu != str(v.mtu6):
            problems.append(f"{vm}: IPv6 MTU {mtu} (advertised: {v.mtu6})")
    return problems


def _neigh6(host: Node) -> dict[str, str]:
    table = {}
    for line in host.cmd(f"ip -6 neigh show dev {HOST_INTF}").splitlines():
        words = line.split()
        if "lladdr" in words:
            table[str(ip_address(words[0]))] = words[words.index("lladdr") + 1].lower()
    return table


def _addresses6(host: Node) -> list[str]:
    out = host.cmd(f"ip -6 -o addr show dev {HOST_INTF}")
    return [str(ip_address(line.split()[3].split("/")[0])) for line in out.splitlines()
            if len(line.split()) > 3]
