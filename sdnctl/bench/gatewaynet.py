"""Two gateways on real OVS under the real daemon: north–south failover, measured.

    VM rf1 (red)  ─┐                ┌─ border1 ─ uplink 203.0.113.2 ─┐
                   ├─ hv1 ─ leaf ──┤                                ├─ "internet"
    VM bx1 (blue) ─┘                └─ border2 ─ uplink 203.0.113.3 ─┘

Netdev bridges joined by veths, VMs as namespaces, and one "internet" namespace:
a Linux bridge over both uplinks holding the router (203.0.113.1) and a server
(198.51.100.10). The two tenants share the inside address 10.0.1.11; red goes
out with its pool 203.0.113.10-11 (rf1 with its floating IP 203.0.113.20), blue
with 203.0.113.12. Neither uplink configures its next hop's MAC: the daemon
learns both by ARP.

The daemon is `python -m sdnctl.daemon` on the two files (`POLICY` and
`topology_text`, with this network's random dpids).
`tests/integration/test_northsouth_live.py` and `benchmarks/ns_failover.py` use it.
"""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdnctl.lab.names import free_port, unique_name
from sdnctl.lab.session import LabSession
from sdnctl.policy.load import parse_policy
from sdnctl.policy.model import Policy
from sdnctl.topology.load import parse_topology
from sdnctl.topology.model import Role, Topology

ROUTER = "203.0.113.1"
SERVER = "198.51.100.10"
UPLINK_PORT, FABRIC_PORT = 1, 2  # on each gateway
UPLINK_IPS = {"border1": "203.0.113.2/24", "border2": "203.0.113.3/24"}
SWITCHES = {"hv1": Role.HYPERVISOR, "leaf": Role.FABRIC, "border1": Role.GATEWAY,
            "border2": Role.GATEWAY}
LINKS = (("hv1", 1, "leaf", 1), ("border1", FABRIC_PORT, "leaf", 2),
         ("border2", FABRIC_PORT, "leaf", 3))
VMS = {"rf1": "02:00:00:0a:01:01", "bx1": "02:00:00:0b:01:01"}
VM_IP = "10.0.1.11"
POLICY = """\
version: 1
tenants:
  red:
    snat: "203.0.113.10-203.0.113.11"
    segments: {front: {vlan: 101, subnet: 10.0.1.0/24, gateway: 10.0.1.1}}
    rules:
      - {from: any, to: external, allow: [any]}
      - {from: external, to: any, allow: [tcp/80]}
  blue:
    snat: 203.0.113.12
    segments: {net: {vlan: 201, subnet: 10.0.1.0/24, gateway: 10.0.1.1}}
    rules:
      - {from: any, to: external, allow: [any]}
vms:
  rf1: {tenant: red, segment: front, mac: "02:00:00:0a:01:01", ip: 10.0.1.11, host: hv1,
        floating_ip: 203.0.113.20}
  bx1: {tenant: blue, segment: net, mac: "02:00:00:0b:01:01", ip: 10.0.1.11, host: hv1}
"""


def topology_text(dpids: dict[str, int]) -> str:
    """The topology file, with these dpids; neither uplink names its next hop's MAC."""
    lines = ["version: 1", "switches:"]
    for name, role in SWITCHES.items():
        uplink = (f", uplink: {{port: {UPLINK_PORT}, ip: {UPLINK_IPS[name]}, "
                  f"next_hop: {ROUTER}}}" if role is Role.GATEWAY else "")
        lines.append(f"  {name}: {{dpid: {dpids[name]:#x}, role: {role.value}{uplink}}}")
    lines.append("links:")
    lines += [f'  - {{a: "{a}:{pa}", b: "{b}:{pb}"}}' for a, pa, b, pb in LINKS]
    return "\n".join(lines) + "\n"


def network(dpids: dict[str, int]) -> tuple[Policy, Topology]:
    """The policy and topology as the daemon loads them, with these dpids."""
    topology = parse_topology(topology_text(dpids), "<gatewaynet>")
    return parse_policy(POLICY, "<gatewaynet>", topology), topology


# ---- the network on this machine --------------------------------------------------


def sh(*args: str, check: bool = True) -> str:
    res = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


_WHOAMI = textwrap.dedent("""
    import socket, sys, threading
    def serve(port):
        srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port)); srv.listen(64)
        while True:
            c, peer = srv.accept()
            threading.Thread(target=talk, args=(c, peer), daemon=True).start()
    def talk(c, peer):
        try:
            while c.recv(64):
                c.sendall(peer[0].encode() + b"\\n")
        except OSError:
            pass
        c.close()
    for p in sys.argv[1:]:
        threading.Thread(target=serve, args=(int(p),)).start()
    print("ready", flush=True)
    """)

_ASK = textwrap.dedent("""
    import socket, sys
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
        s.sendall(b"who\\n"); print(s.recv(64).decode().strip())
    except OSError:
        sys.exit(1)
    """)

# One TCP connection kept open: a line every 20 ms, its answer awaited; prints the
# longest wait for an answer (ms) and whether the connection lived to the end.
_TALK = textwrap.dedent("""
    import socket, sys, time
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print("open", flush=True)
    end = time.monotonic() + float(sys.argv[3]); longest = 0.0; alive = True
    s.settimeout(float(sys.argv[4]))
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            s.sendall(b"x\\n")
            if not s.recv(64):
                alive = False; break
        except OSError:
            alive = False; break
        longest = max(longest, time.monotonic() - t); time.sleep(0.02)
    print(f"{longest * 1000:.0f} {'alive' if alive else 'dead'}", flush=True)
    """)


@dataclass
class Ping:
    """`ping -D -i INTERVAL` inside a namespace; the longest gap between replies."""

    proc: subprocess.Popen[bytes]
    out: Path
    interval_s: float

    def replies(self) -> list[float]:
        text = self.out.read_text(errors="replace")
        return [float(t) for t in re.findall(r"^\[(\d+\.\d+)\] .*icmp_seq=\d+ ttl=", text, re.M)]

    def wait_replies(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.replies()) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {n} ping replies: {self.out.read_text()[-400:]}")
            time.sleep(0.02)

    def stop(self) -> float:
        """The longest silence between two replies, in ms (what was lost, plus one
        interval)."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(5)
        times = self.replies()
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        return max(gaps, default=float("inf")) * 1000


class GatewayNet:
    """The network, built in `session` (torn down with it), and the daemon over it."""

    def __init__(self, session: LabSession, tmp: Path) -> None:
        self.session, self.tmp = session, tmp
        # Random low bits: no lab or colleague's test is likely to hold these dpids.
        self.dpids = {name: 0x5D8 << 36 | secrets.randbits(32) for name in SWITCHES}
        self.bridges: dict[str, str] = {}
        self.uplink_ends: dict[str, str] = {}  # "border1:1" -> its end in the internet ns
        self.vm_ns: dict[str, str] = {}
        # VM ports are conntrack zones, one datapath for every bridge on this machine:
        # random high numbers keep this network's zones (and their limits) its own.
        first = 20000 + secrets.randbelow(20000)
        self.vm_ports = {vm: first + i for i, vm in enumerate(VMS)}
        self.inet = ""
        self.api = ""

    # ---- building -----------------------------------------------------------------
    def build(self, daemon_options: tuple[str, ...] = ()) -> None:
        of_port = free_port()
        for name, dpid in self.dpids.items():
            self.bridges[name] = self._bridge(dpid, of_port)
        for a, pa, b, pb in LINKS:
            self._link(self.bridges[a], pa, self.bridges[b], pb)
        self._internet()
        for vm, mac in VMS.items():
            self.vm_ns[vm] = self._vm(vm, mac, self.vm_ports[vm])
        self._daemon(of_port, daemon_options)

    def _bridge(self, dpid: int, of_port: int) -> str:
        name = self.session.bridge(unique_name())
        sh("ovs-vsctl", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
           "fail_mode=secure", "protocols=OpenFlow13", f"other-config:datapath-id={dpid:016x}")
        assert sh("ovs-vsctl", "get", "bridge", name, "datapath_type").strip() == "netdev"
        sh("ovs-vsctl", "set-controller", name, f"tcp:127.0.0.1:{of_port}", "--", "set",
           "controller", name, "max_backoff=1000")
        return name

    def _port(self, bridge: str, name: str, ofport: int, *extra: str) -> None:
        self.session.port(bridge, name)
        sh("ovs-vsctl", "add-port", bridge, name, "--", "set", "Interface", name,
           f"ofport_request={ofport}", *extra)

    def _link(self, bridge_a: str, port_a: int, bridge_b: str, port_b: int) -> None:
        a, b = self.session.veth(unique_name()), unique_name()
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        for end, bridge, ofport in ((a, bridge_a, port_a), (b, bridge_b, port_b)):
            sh("ethtool", "-K", end, "tx", "off")
            sh("ip", "link", "set", end, "up")
            self._port(bridge, end, ofport)

    def _internet(self) -> None:
        inet = self.inet = self.session.netns(unique_name())
        sh("ip", "netns", "add", inet)
        sh("ip", "-n", inet, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", inet, "addr", "add", f"{ROUTER}/24", "dev", "br0")
        sh("ip", "-n", inet, "addr", "add", f"{SERVER}/32", "dev", "lo")
        for gateway in ("border1", "border2"):
            outer, inner = self.session.veth(unique_name()), unique_name()
            sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            sh("ip", "link", "set", inner, "netns", inet)
            sh("ip", "-n", inet, "link", "set", inner, "master", "br0", "up")
            sh("ip", "netns", "exec", inet, "ethtool", "-K", inner, "tx", "off")
            sh("ethtool", "-K", outer, "tx", "off")
            sh("ip", "link", "set", outer, "up")
            self._port(self.bridges[gateway], outer, UPLINK_PORT)
            self.uplink_ends[f"{gateway}:{UPLINK_PORT}"] = inner
        for dev in ("lo", "br0"):
            sh("ip", "-n", inet, "link", "set", dev, "up")
        sh("ip", "netns", "exec", inet, "ethtool", "-K", "br0", "tx", "off")

    def _vm(self, vm: str, mac: str, ofport: int) -> str:
        ns = self.session.netns(unique_name())
        port, inner = self.session.veth(unique_name()), unique_name()
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", port, "type", "veth", "peer", "name", inner)
        sh("ip", "link", "set", inner, "netns", ns)
        sh("ip", "-n", ns, "link", "set", inner, "name", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "address", mac)
        sh("ip", "-n", ns, "addr", "add", f"{VM_IP}/24", "dev", "eth0")
        for dev in ("eth0", "lo"):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", "10.0.1.1")
        sh("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off")
        sh("ip", "link", "set", port, "up")
        self._port(self.bridges["hv1"], port, ofport, f"external_ids:vm-id={vm}")
        return ns

    def _daemon(self, of_port: int, options: tuple[str, ...]) -> None:
        from sdnctl.client.api import wait_programmed

        policy, topology = self.tmp / "policy.yaml", self.tmp / "topology.yaml"
        policy.write_text(POLICY)
        topology.write_text(topology_text(self.dpids))
        self.api = f"127.0.0.1:{free_port()}"
        self.log = self.tmp / "daemon.log"
        with self.log.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sdnctl.daemon", "-p", str(policy), "-t", str(topology),
                 "--listen", f"127.0.0.1:{of_port}", "--api", self.api, "--no-watch",
                 "--stats-interval", "0", *options], stdout=subprocess.DEVNULL, stderr=err)
        self.daemon = self.session.process(proc, "daemon")
        wait_programmed(self.api, list(SWITCHES), timeout=60)

    # ---- asking -------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        from sdnctl.client.api import get_status

        return get_status(self.api)

    def exit_of(self, tenant: str) -> str | None:
        for name, uplink in self.status()["uplinks"].items():
            if tenant in uplink["tenants"]:
                return str(name)
        return None

    def wait_for(self, check: Callable[[], object], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            got = check()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}\n"
                                     + self.log.read_text(errors="replace")[-2000:])
            time.sleep(0.05)

    def next_hops_learned(self) -> bool:
        return all(u["next_hop_from"] == "learned" for u in self.status()["uplinks"].values())

    def serve(self, *ports: int) -> None:
        proc = self.session.process(subprocess.Popen(
            ["ip", "netns", "exec", self.inet, sys.executable, "-c", _WHOAMI,
             *map(str, ports)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        assert proc.stdout is not None and proc.stdout.readline().startswith(b"ready")

    def ask(self, vm: str, port: int, timeout: float = 2.0) -> str | None:
        """Connect from `vm` to the server; the address the server saw, or None."""
        res = subprocess.run(["ip", "netns", "exec", self.vm_ns[vm], sys.executable, "-c",
                              _ASK, SERVER, str(port), str(timeout)],
                             capture_output=True, text=True, timeout=timeout + 10)
        return res.stdout.strip() if res.returncode == 0 else None

    def ping(self, vm: str, interval_s: float = 0.01) -> Ping:
        out = self.tmp / f"ping-{unique_name()}.txt"
        with out.open("wb") as f:
            proc = self.session.process(subprocess.Popen(
                ["ip", "netns", "exec", self.vm_ns[vm], "ping", "-D", "-n", "-i",
                 str(interval_s), "-W", "1", SERVER], stdout=f, stderr=subprocess.STDOUT))
        return Ping(proc, out, interval_s)

    def talk(self, vm: str, port: int, seconds: float, patience_s: float = 2.0
             ) -> subprocess.Popen[str]:
        """A TCP connection kept talking for `seconds`; `talked` reads the outcome."""
        proc = self.session.process(subprocess.Popen(
            ["ip", "netns", "exec", self.vm_ns[vm], sys.executable, "-c", _TALK, SERVER,
             str(port), str(seconds), str(patience_s)], stdout=subprocess.PIPE, text=True))
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        return proc

    @staticmethod
    def talked(proc: subprocess.Popen[str]) -> tuple[float, bool]:
        """(longest wait for an answer in ms, whether the connection survived)."""
        out, _ = proc.communicate(timeout=30)
        longest, state = out.split()
        return float(longest), state == "alive"

    # ---- failing --------------------------------------------------------------------
    def cut(self, uplink: str) -> None:
        """The uplink's cable pulled (on the router's side: the gateway sees no carrier)."""
        sh("ip", "-n", self.inet, "link", "set", self.uplink_ends[uplink], "down")

    def repair(self, uplink: str) -> None:
        sh("ip", "-n", self.inet, "link", "set", self.uplink_ends[uplink], "up")

