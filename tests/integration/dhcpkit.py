"""The lab's DHCP client helpers (sdnctl.lab.dhcpclient), bound to a test namespace."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from sdnctl.lab.dhcpclient import (
    Lease,
    client_command,
    netns_runner,
    obtain_leases,
    records,
    sender_result,
    write_script,
)
from sdnctl.lab.dhcpclient import start_sender as _start_sender

IFACE = "eth0"


def udhcpc(ns: str, tmp: Path, timeout_s: float = 10.0) -> Lease:
    """A lease for the VM in `ns` (its eth0 configured as the lease says)."""
    return obtain_leases({ns: netns_runner(ns)}, IFACE, tmp, timeout_s)[ns]


@dataclass
class Client:
    """udhcpc running in the background (SIGUSR1: renew, SIGUSR2: release)."""

    proc: subprocess.Popen[bytes]
    script: Path

    def events(self) -> list[str]:
        return [r["event"] for r in records(self.script)]

    def last(self) -> dict[str, str]:
        return records(self.script)[-1]


def start_udhcpc(cleanup, ns: str, tmp: Path) -> Client:  # cleanup: conftest.Cleanup
    script = write_script(tmp, ns)
    proc = cleanup.process(netns_runner(ns)(client_command(IFACE, script, once=False)))
    return Client(proc, script)


def start_sender(ns: str, frames: list[bytes], rate: float, seconds: float,
                 tmp: Path) -> subprocess.Popen[bytes]:
    return _start_sender(netns_runner(ns), IFACE, frames, rate, seconds, tmp)


__all__ = ["Client", "Lease", "sender_result", "start_sender", "start_udhcpc", "udhcpc"]
