"""Real Open vSwitch, namespaces and daemons for integration tests, each cleaned up.

Every test gets a `cleanup` registry, a `LabSession` (sdnctl/lab/session.py, the
lifecycle every lab uses): whatever it registers (bridges, namespaces, veths,
processes by PID) is removed when the test ends, pass or fail, in reverse order.
Names are unique (`sdt` + random hex) so tests never touch anything else on the
machine, and traffic only flows between namespaces the test created.

Tests marked `ovs` need root and a running Open vSwitch (tests/conftest.py checks
that first: skipped without them, failed under CI=true).
"""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sdnctl.lab.names import free_port, unique_name
from sdnctl.lab.ovs import flow_count, ofctl
from sdnctl.lab.session import LabSession

REPO = Path(__file__).resolve().parents[2]


def sh(cmd: str | list[str], check: bool = True, timeout: float = 20) -> str:
    """Run a command; its stdout. Raise with stderr on failure when `check`."""
    args = cmd if isinstance(cmd, list) else ["sh", "-c", cmd]
    res = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


def random_dpid() -> int:
    """A dpid no lab or colleague's test is likely to use (bit 47 set, random low bits)."""
    return 0x5D7 << 36 | secrets.randbits(32)


# ---- the cleanup registry ---------------------------------------------------------


@pytest.fixture
def cleanup() -> Iterator[LabSession]:
    with LabSession("cleanup") as session:
        yield session


# ---- OVS and namespaces ------------------------------------------------------------


def make_bridge(cleanup: LabSession, dpid: int, controller_port: int | None = None) -> str:
    """A userspace (netdev) bridge, fail_mode=secure, OpenFlow 1.3 only."""
    name = cleanup.bridge(unique_name())
    sh(
        ["ovs-vsctl", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
         "fail_mode=secure", "protocols=OpenFlow13", f"other-config:datapath-id={dpid:016x}"]
    )
    # A bridge without datapath_type=netdev is accepted but forwards nothing here.
    assert sh(["ovs-vsctl", "get", "bridge", name, "datapath_type"]).strip() == "netdev"
    if controller_port is not None:
        # Retry a lost controller every second (default backoff grows to 8 s).
        sh(["ovs-vsctl", "set-controller", name, f"tcp:127.0.0.1:{controller_port}",
            "--", "set", "controller", name, "max_backoff=1000"])
    return name


@dataclass
class VmPort:
    """A namespace standing in for a VM, wired to a bridge port by a veth pair."""

    ns: str
    port: str  # the OVS side of the veth
    ofport: int
    mac: str
    ip: str
    extra: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 20) -> str:
        return sh(["ip", "netns", "exec", self.ns, *args], check=check, timeout=timeout)


def add_vm(
    cleanup: LabSession,
    bridge: str,
    ofport: int,
    mac: str,
    ip_cidr: str,
    gateway: str | None = None,
    vm_id: str | None = None,
    attached_mac: str | None = None,
) -> VmPort:
    """A namespace with eth0 (MAC, IP, default route) whose peer is OVS port `ofport`."""
    ns = cleanup.netns(unique_name())
    port = cleanup.veth(unique_name())
    inner = unique_name()
    sh(["ip", "netns", "add", ns])
    sh(["ip", "link", "add", port, "type", "veth", "peer", "name", inner])
    sh(["ip", "link", "set", inner, "netns", ns])
    sh(["ip", "-n", ns, "link", "set", inner, "name", "eth0"])
    sh(["ip", "-n", ns, "link", "set", "eth0", "address", mac])
    sh(["ip", "-n", ns, "addr", "add", ip_cidr, "dev", "eth0"])
    sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
    sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    if gateway:
        sh(["ip", "-n", ns, "route", "add", "default", "via", gateway])
    # Without this the userspace datapath passes TCP with bad checksums (conntrack: +inv).
    sh(["ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"])
    sh(["ip", "link", "set", port, "up"])
    cleanup.port(bridge, port)
    cmd = ["ovs-vsctl", "add-port", bridge, port, "--", "set", "Interface", port,
           f"ofport_request={ofport}"]
    if vm_id:
        cmd.append(f"external_ids:vm-id={vm_id}")
    if attached_mac:
        cmd.append(f"external_ids:attached-mac={attached_mac}")
    sh(cmd)
    got = int(sh(["ovs-vsctl", "get", "Interface", port, "ofport"]).strip())
    assert got == ofport, f"{port} got ofport {got}, wanted {ofport}"
    return VmPort(ns, port, ofport, mac, ip_cidr.split("/")[0])


# ---- traffic probes (run inside a namespace) ---------------------------------------

_PROBE = textwrap.dedent(
    """
    import os, socket, struct, sys, time
    kind, dst, arg, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    if kind == "tcp":
        s = socket.create_connection((dst, int(arg)), timeout=timeout)
        s.sendall(b"ping\\n"); ok = s.recv(16).startswith(b"pong"); sys.exit(0 if ok else 3)
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(timeout)
        s.sendto(b"ping", (dst, int(arg))); data = s.recv(16); sys.exit(0 if data == b"pong" else 3)
    # icmp echo over a raw socket (no ping binary needed)
    from sdnctl.lab.icmp import ICMP_ECHO_REQUEST, icmp_echo
    ident = os.getpid() & 0xFFFF
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(0.3)
    deadline = time.time() + timeout
    seq = 0
    while time.time() < deadline:
        seq += 1
        s.sendto(icmp_echo(ICMP_ECHO_REQUEST, ident, seq, b"sdnctl"), (dst, 0))
        try:
            while True:
                data, addr = s.recvfrom(2048)
                icmp = data[(data[0] & 0xF) * 4:]
                if addr[0] == dst and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
                    sys.exit(0)
        except socket.timeout:
            pass
    sys.exit(1)
    """
)

_SERVER = textwrap.dedent(
    """
    import socket, sys, threading
    def tcp(port):
        srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port)); srv.listen(16)
        while True:
            c, _ = srv.accept()
            try:
                c.settimeout(2); c.recv(16); c.sendall(b"pong\\n")
            except OSError:
                pass
            c.close()
    def udp(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
        while True:
            data, addr = s.recvfrom(64); s.sendto(b"pong", addr)
    for spec in sys.argv[1:]:
        proto, port = spec.split("/")
        threading.Thread(target=tcp if proto == "tcp" else udp, args=(int(port),)).start()
    print("ready", flush=True)
    """
)


def probe(vm: VmPort, dst: str, service: str, timeout: float = 2.0) -> bool:
    """True if `service` (`tcp/80`, `udp/53`, `icmp`) from `vm` to `dst` gets its answer."""
    kind, _, port = service.partition("/")
    res = subprocess.run(
        ["ip", "netns", "exec", vm.ns, sys.executable, "-c", _PROBE, kind, dst, port or "0",
         str(timeout)],
        capture_output=True, timeout=timeout + 10,
    )
    return res.returncode == 0


def serve(cleanup: LabSession, vm: VmPort, *services: str) -> None:
    """Answer `tcp/PORT` and `udp/PORT` inside the VM's namespace until the test ends."""
    proc = cleanup.process(
        subprocess.Popen(
            ["ip", "netns", "exec", vm.ns, sys.executable, "-c", _SERVER, *services],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
    )
    assert proc.stdout is not None and proc.stdout.readline().startswith(b"ready")


# ---- the daemon --------------------------------------------------------------------


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    of_port: int
    api: str
    log: Path

    def stop(self, timeout: float = 10.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> int:
        """SIGKILL: no goodbye to the switches, sockets closed by the kernel."""
        self.proc.kill()
        return self.proc.wait(5)

    def hup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def reset_switch_connections(self) -> str:
        """Abort the daemon's established OpenFlow connections (a TCP reset to the switch
        side too): `ss -K` on the daemon's own listening port, nothing else."""
        return sh(["ss", "-K", "-t", "state", "established", f"( sport = :{self.of_port} )"])


def start_daemon(
    cleanup: LabSession,
    policy: Path,
    topology: Path,
    log_dir: Path,
    of_port: int | None = None,
    api_port: int | None = None,
    watch: bool = True,
    options: str = "",
) -> Daemon:
    """The real daemon as a subprocess on free ports, stderr to a log file.

    `watch=False`: the daemon does not poll its files (reloads on SIGHUP only).
    `options`: more keyword arguments of `run_daemon`, as Python source (", ipfix=...")."""
    of_port = of_port or free_port()
    api = f"127.0.0.1:{api_port or free_port()}"
    log = log_dir / f"daemon-{of_port}-{time.monotonic_ns()}.log"
    code = (
        "import sys; from sdnctl.daemon import run_daemon; "
        f"sys.exit(run_daemon({str(policy)!r}, {str(topology)!r}, "
        f"listen='127.0.0.1:{of_port}', api={api!r}"
        f"{'' if watch else ', watch_interval_s=None'}{options}))"
    )
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL, stderr=err
        )
    cleanup.process(proc)
    return Daemon(proc, of_port, api, log)


# ---- continuous ping: loss counted by sequence number --------------------------------


@dataclass
class PingStats:
    sent: int  # requests sent, less the last one (its answer may still be in flight)
    received: int
    lost: int  # requests up to `sent` never answered
    longest_gap: int  # most consecutive requests lost
    duration_s: float

    def __str__(self) -> str:
        every = self.duration_s / max(self.sent, 1) * 1000
        return (f"{self.sent} pings in {self.duration_s:.1f} s (one per {every:.0f} ms), "
                f"{self.lost} lost (longest gap {self.longest_gap})")


class Pinger:
    """`ping -i INTERVAL DST` inside a namespace until stopped.

    Loss is counted by sequence number over every request sent but the last, so
    stopping the ping while a request is in flight does not count as a loss, and
    replies that stop coming do."""

    def __init__(self, cleanup: LabSession, vm: VmPort, dst: str, interval_s: float,
                 out: Path) -> None:
        self.out = out
        with out.open("wb") as f:
            self.proc = cleanup.process(subprocess.Popen(
                ["ip", "netns", "exec", vm.ns, "ping", "-n", "-i", str(interval_s), "-W", "1",
                 dst], stdout=f, stderr=subprocess.STDOUT))

    def replies(self) -> list[int]:
        text = self.out.read_text(errors="replace")
        return [int(n) for n in re.findall(r"icmp_seq=(\d+) ttl=", text)]

    def wait_replies(self, n: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.replies()) < n:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"ping: fewer than {n} replies: {self.out.read_text()}")
            time.sleep(0.02)

    def stop(self) -> PingStats:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(5)
        text = self.out.read_text(errors="replace")
        summary = re.search(r"(\d+) packets transmitted, .* time (\d+)ms", text)
        assert summary, f"no ping summary in {text[-300:]!r}"
        seen = set(self.replies())
        top = max(int(summary[1]) - 1, max(seen, default=0))
        gap = longest = 0
        for seq in range(1, top + 1):
            gap = 0 if seq in seen else gap + 1
            longest = max(longest, gap)
        received = len({n for n in seen if n <= top})
        return PingStats(top, received, top - received, longest, int(summary[2]) / 1000)


# ---- one fixture for tests to use (test modules import nothing from here) ----------


class Lab:
    """Everything above, bound to one test's cleanup registry and temp folder."""

    def __init__(self, cleanup: LabSession, tmp: Path) -> None:
        self.cleanup = cleanup
        self.tmp = tmp
        self.sh = sh
        self.unique = unique_name
        self.free_port = free_port
        self.random_dpid = random_dpid
        self.ofctl = ofctl
        self.flow_count = flow_count
        self.probe = probe

    def bridge(self, dpid: int, controller_port: int | None = None) -> str:
        return make_bridge(self.cleanup, dpid, controller_port)

    def vm(self, bridge: str, ofport: int, mac: str, ip_cidr: str, gateway: str | None = None,
           vm_id: str | None = None, attached_mac: str | None = None) -> VmPort:
        return add_vm(self.cleanup, bridge, ofport, mac, ip_cidr, gateway, vm_id, attached_mac)

    def serve(self, vm: VmPort, *services: str) -> None:
        serve(self.cleanup, vm, *services)

    def pinger(self, vm: VmPort, dst: str, interval_s: float = 0.01) -> Pinger:
        """A continuous ping from `vm` to `dst`; call `.stop()` for the loss figures."""
        return Pinger(self.cleanup, vm, dst, interval_s, self.tmp / f"ping-{unique_name()}.txt")

    def link(self, bridge_a: str, port_a: int, bridge_b: str, port_b: int) -> tuple[str, str]:
        """A veth pair wired as a fabric link: OpenFlow port `port_a` of `bridge_a` to
        `port_b` of `bridge_b`. `ip link set NAME down` on either end cuts it."""
        a, b = self.cleanup.veth(unique_name()), unique_name()
        sh(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
        for name, bridge, ofport in ((a, bridge_a, port_a), (b, bridge_b, port_b)):
            sh(["ethtool", "-K", name, "tx", "off"])
            sh(["ip", "link", "set", name, "up"])
            self.cleanup.port(bridge, name)
            sh(["ovs-vsctl", "add-port", bridge, name, "--", "set", "Interface", name,
                f"ofport_request={ofport}"])
        return a, b

    @staticmethod
    def flow_table(bridge: str) -> list[str]:
        """Every flow and group without counters or age: what would change if touched."""
        lines = ofctl(bridge, "dump-flows", "--no-stats").splitlines()
        lines += ofctl(bridge, "dump-groups").splitlines()
        return sorted(line.strip() for line in lines if "actions=" in line)

    def port(self, bridge: str, ofport: int, **external_ids: str) -> str:
        """A bare veth end on `bridge` (no namespace) with `external_ids` (`vm_id` -> vm-id)."""
        name = self.cleanup.veth(unique_name())
        sh(["ip", "link", "add", name, "type", "veth", "peer", "name", unique_name()])
        self.cleanup.port(bridge, name)
        ids = [f"external_ids:{k.replace('_', '-')}={v}" for k, v in external_ids.items()]
        sh(["ovs-vsctl", "add-port", bridge, name, "--", "set", "Interface", name,
            f"ofport_request={ofport}", *ids])
        return name

    @staticmethod
    def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
        """Poll `check` until it returns something true; fail naming `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}")
            time.sleep(0.05)

    def daemon(self, policy: Path, topology: Path, of_port: int | None = None,
               api_port: int | None = None, watch: bool = True, options: str = "") -> Daemon:
        return start_daemon(self.cleanup, policy, topology, self.tmp, of_port, api_port, watch,
                            options)

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text))
        return path


@pytest.fixture
def lab(cleanup: LabSession, tmp_path: Path) -> Lab:
    return Lab(cleanup, tmp_path)
