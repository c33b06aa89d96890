"""A real DHCP client (busybox `udhcpc`) in a VM's namespace, and raw frame senders.

`sdnctl lab run` boots its VMs' addresses this way (`boot_addresses`), the tests check what
a client is told, and the DHCP benchmark times it. `udhcpc` runs a script at each
lease event; ours records what it was told (one `key=value` line per event) and
configures the interface as a cloud image would: address, MTU, default route.
`run` says how to start a program inside a VM (a Mininet host's `popen`, or
`ip netns exec NS` for a bare namespace).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Runner = Callable[[list[str]], "subprocess.Popen[bytes]"]

SCRIPT = textwrap.dedent(
    """\
    #!/bin/sh
    # udhcpc's lease events: configure the interface, then record what we were told.
    case "$1" in
      deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
      bound|renew)
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/$mask" dev "$interface"
        [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
        [ -n "$router" ] && ip route replace default via "$router" dev "$interface"
        dns=$(echo $dns | tr ' ' ,)  # one field per word in the record
        echo "event=$1 ip=$ip mask=$mask router=$router dns=$dns mtu=$mtu lease=$lease" \\
             "serverid=$serverid hostname=$hostname" >> "$0.log" ;;
    esac
    exit 0
    """
)


@dataclass(frozen=True, slots=True)
class Lease:
    fields: Mapping[str, str]  # ip, mask, router, dns (comma separated), mtu, lease, ...
    took_s: float  # from starting the client to the lease being configured


class NoLease(RuntimeError):
    """The client gave up without a lease."""


def netns_runner(ns: str) -> Runner:
    def run(cmd: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return run


def write_script(folder: Path, name: str) -> Path:
    """A script of our own per VM (the record goes next to it, `SCRIPT.log`)."""
    script = folder / f"udhcpc-{name}.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    Path(f"{script}.log").unlink(missing_ok=True)
    return script


def records(script: Path) -> list[dict[str, str]]:
    log = Path(f"{script}.log")
    if not log.exists():
        return []
    return [dict(part.split("=", 1) for part in line.split() if "=" in part)
            for line in log.read_text().splitlines()]


def client_command(iface: str, script: Path, *, once: bool = True, tries: int = 10,
                   retry_s: int = 1) -> list[str]:
    """udhcpc in the foreground: with `once`, quit with the lease (or fail after
    `tries` DISCOVERs `retry_s` apart); otherwise keep it (SIGUSR1 renews, SIGUSR2
    releases). `-O mtu` asks for the interface MTU too."""
    cmd = ["udhcpc", "-i", iface, "-f", "-T", str(retry_s), "-A", "1", "-O", "mtu",
           "-s", str(script)]
    if once:
        cmd += ["-q", "-n", "-t", str(tries)]
    return cmd


def obtain_leases(runners: Mapping[str, Runner], iface: str, folder: Path,
                  timeout_s: float = 15.0) -> dict[str, Lease]:
    """Run a client in every VM at once until each holds a lease; NoLease names the
    VMs that got none."""
    scripts = {vm: write_script(folder, vm) for vm in runners}
    tries = max(int(timeout_s), 1)
    started = time.monotonic()
    procs = {vm: run(client_command(iface, scripts[vm], tries=tries))
             for vm, run in runners.items()}
    done: dict[str, float] = {}
    deadline = started + timeout_s + 10
    while len(done) < len(procs) and time.monotonic() < deadline:
        for vm, proc in procs.items():
            if vm not in done and proc.poll() is not None:
                done[vm] = time.monotonic() - started
        time.sleep(0.005)
    leases, failed = {}, []
    for vm, proc in procs.items():
        if vm not in done:
            proc.kill()
        out = proc.communicate()[0] or b""
        got = records(scripts[vm])
        if proc.returncode != 0 or not got:
            failed.append(f"{vm}: {out.decode(errors='replace').strip()[-200:]}")
        else:
            leases[vm] = Lease(got[-1], done[vm])
    if failed:
        raise NoLease("no DHCP lease: " + "; ".join(failed))
    return leases


def boot_addresses(hosts: Mapping[str, Any], expected: Mapping[str, str], iface: str,
                   folder: Path, timeout_s: float = 15.0) -> dict[str, Lease]:
    """What a booting VM does: no IPv4 address, then DHCP. `hosts`: VM -> Mininet host.
    Raises NoLease if a VM got no lease or an address other than `expected[VM]`.
    IPv6 is left alone (DHCPv4 does not configure it)."""
    for host in hosts.values():
        host.cmd(f"ip -4 addr flush dev {iface}")
    runners = {vm: _host_runner(host) for vm, host in hosts.items()}
    leases = obtain_leases(runners, iface, folder, timeout_s)
    wrong = [f"{vm} got {lease.fields.get('ip')}, not {expected[vm]}"
             for vm, lease in leases.items() if lease.fields.get("ip") != expected[vm]]
    if wrong:
        raise NoLease("wrong DHCP lease: " + "; ".join(wrong))
    return leases


def _host_runner(host: Any) -> Runner:
    def run(cmd: list[str]) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = host.popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return proc
    return run


# ---- raw frames out of a VM (storms, rogue servers) ---------------------------------

_SENDER = textwrap.dedent(
    """
    import socket, sys, time
    iface, rate, seconds, path = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    frames = [bytes.fromhex(line) for line in open(path).read().split()]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * rate)
        while sent < due:
            try:
                s.send(frames[sent % len(frames)])
            except OSError:
                pass  # a full queue: the storm only gets thinner
            sent += 1
        time.sleep(0.001)
    print(sent, time.monotonic() - start, flush=True)
    """
)


def start_sender(run: Runner, iface: str, frames: list[bytes], rate: float, seconds: float,
                 folder: Path) -> subprocess.Popen[bytes]:
    """Send `frames` round-robin out of `iface` at `rate`/s for `seconds`; the process
    prints `SENT ELAPSED` when done (`sender_result`)."""
    path = folder / f"frames-{time.monotonic_ns()}.hex"
    path.write_text("\n".join(f.hex() for f in frames))
    return run([sys.executable, "-c", _SENDER, iface, str(rate), str(seconds), str(path)])


def sender_result(proc: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, float]:
    """(frames sent, seconds) once the sender is done."""
    out = proc.communicate(timeout=timeout)[0].decode().split()
    return int(out[0]), float(out[1])
