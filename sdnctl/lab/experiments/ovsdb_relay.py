"""An ovsdb-server of the lab's own, to restart under the daemon without touching the machine's.

The machine has one ovsdb-server, shared by ovs-vswitchd and every other lab and test:
restarting it would stall everybody's `ovs-vsctl`. The fault suite restarts this one
instead: an `ovsdb-server` in relay mode (OVS >= 2.16) on a socket in the lab's temp
dir, serving the machine's `Open_vSwitch` database. The daemon reads its bindings
through it (`sdnctl run --ovsdb unix:.../db.sock`), so a restart is, from the
daemon's side, exactly an ovsdb-server restart: the session drops, the socket goes,
comes back, and the next `monitor` starts from a fresh snapshot. What it does not
exercise is ovs-vswitchd losing its own database connection (OVS keeps its running
configuration and forwarding until the database is back; that is OVS's, not ours).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sdnctl.lab.plan import LabError
from sdnctl.lab.session import start_process, stop_process
from sdnctl.tools import require

UPSTREAM = "unix:/var/run/openvswitch/db.sock"
READY_S = 15.0


@dataclass
class OvsdbRelay:
    """`start()`, `stop()` (SIGTERM, as `ovs-ctl stop` does), `start()` again."""

    folder: Path
    upstream: str = UPSTREAM
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def socket(self) -> Path:
        return self.folder / "ovsdb-relay.sock"

    @property
    def remote(self) -> str:
        """What `sdnctl run --ovsdb` takes."""
        return f"unix:{self.socket}"

    def start(self) -> None:
        """Start the relay; return once it serves the database."""
        require("ovsdb-server", "ovsdb-client", what="the lab's OVSDB relay", error=LabError)
        self.starts += 1
        self.proc = start_process(
            ["ovsdb-server", f"--remote=punix:{self.socket}",
             f"--unixctl={self.folder / 'ovsdb-relay.ctl'}", "--no-chdir",
             f"relay:Open_vSwitch:{self.upstream}"],
            self.folder / f"ovsdb-relay-{self.starts}.log")
        deadline = time.monotonic() + READY_S
        while not self._serves():
            if self.proc.poll() is not None:
                raise LabError(f"the OVSDB relay exited ({self.proc.returncode}); see"
                               f" {self.folder}/ovsdb-relay-{self.starts}.log")
            if time.monotonic() > deadline:
                raise LabError(f"the OVSDB relay does not serve the database after"
                               f" {READY_S:.0f} s")
            time.sleep(0.02)

    def _serves(self) -> bool:
        if not self.socket.exists():
            return False
        done = subprocess.run(["ovsdb-client", "--timeout=2", "dump", self.remote,
                               "Open_vSwitch", "Open_vSwitch", "_uuid"],
                              capture_output=True, check=False)
        return done.returncode == 0 and b"_uuid" in done.stdout

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, group=True, grace=5.0)
            self.proc = None
