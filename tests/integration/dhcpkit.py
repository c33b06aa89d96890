"""Real DHCP clients and hostile DHCP senders inside test namespaces.

`udhcpc` (Debian's busybox client) obtains a lease with a script that records what
it was told and configures the interface as a cloud image would; `send_frames` sends
raw Ethernet frames from a namespace at a chosen rate (a storm, a rogue server).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# What udhcpc hands its script, recorded; then the interface set up as the lease says.
_SCRIPT = textwrap.dedent(
    """\
    #!/bin/sh
    case "$1" in
      deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
      bound|renew)
        ip addr flush dev "$interface"
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


@dataclass
class Lease:
    fields: dict[str, str]
    took_s: float  # from starting the client to the lease being configured


def _script(ns: str, tmp: Path) -> tuple[Path, Path]:
    script = tmp / f"udhcpc-{ns}.sh"
    script.write_text(_SCRIPT)
    script.chmod(0o755)
    log = Path(f"{script}.log")
    log.unlink(missing_ok=True)
    return script, log


def _fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def udhcpc(ns: str, tmp: Path, timeout_s: float = 10.0, retry_s: float = 1.0) -> Lease:
    """Run udhcpc once in `ns` (eth0) until it holds a lease; AssertionError if none."""
    script, log = _script(ns, tmp)
    tries = max(int(timeout_s / retry_s), 1)
    started = time.monotonic()
    res = subprocess.run(
        ["ip", "netns", "exec", ns, "udhcpc", "-i", "eth0", "-f", "-q", "-n",
         "-t", str(tries), "-T", str(int(retry_s)), "-A", "1", "-O", "mtu",
         "-s", str(script)],
        capture_output=True, text=True, timeout=timeout_s + 10)
    took = time.monotonic() - started
    assert res.returncode == 0 and log.exists(), (
        f"udhcpc in {ns} got no lease (exit {res.returncode}): {res.stderr[-500:]}")
    return Lease(_fields(log.read_text().splitlines()[-1]), took)


@dataclass
class Client:
    """udhcpc running in the background (SIGUSR1: renew, SIGUSR2: release)."""

    proc: subprocess.Popen[bytes]
    log: Path

    def events(self) -> list[str]:
        if not self.log.exists():
            return []
        return [_fields(line)["event"] for line in self.log.read_text().splitlines()]

    def last(self) -> dict[str, str]:
        return _fields(self.log.read_text().splitlines()[-1])


def start_udhcpc(cleanup, ns: str, tmp: Path) -> Client:  # cleanup: conftest.Cleanup
    script, log = _script(ns, tmp)
    proc = cleanup.process(subprocess.Popen(
        ["ip", "netns", "exec", ns, "udhcpc", "-i", "eth0", "-f", "-T", "1", "-A", "1",
         "-O", "mtu", "-s", str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return Client(proc, log)


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


def start_sender(ns: str, frames: list[bytes], rate: float, seconds: float,
                 tmp: Path) -> subprocess.Popen[str]:
    """Send `frames` round-robin out of eth0 in `ns` at `rate`/s for `seconds`; the
    process prints `SENT ELAPSED` when done."""
    path = tmp / f"frames-{ns}-{time.monotonic_ns()}.hex"
    path.write_text("\n".join(f.hex() for f in frames))
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", _SENDER, "eth0", str(rate),
         str(seconds), str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
