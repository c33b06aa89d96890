"""A private ovsdb-server (no ovs-vswitchd, nothing shared with the machine's Open
vSwitch) on a socket path of the test's own, to stop and start again on that path."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class Ovsdb:
    """A private ovsdb-server on one socket path, to stop and start again."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.db, self.sock = tmp, tmp / "conf.db", tmp / "db.sock"
        self.remote = f"unix:{self.sock}"
        self.proc: subprocess.Popen[bytes] | None = None
        subprocess.run(["ovsdb-tool", "create", str(self.db), SCHEMA], check=True)

    def start(self) -> None:
        self.sock.unlink(missing_ok=True)  # a stale one would pass for the new server's
        self.proc = subprocess.Popen(
            ["ovsdb-server", str(self.db), f"--remote=punix:{self.sock}",
             f"--unixctl={self.tmp / 'ovsdb.ctl'}", "--no-chdir"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.sock.exists():
            assert self.proc.poll() is None and time.monotonic() < deadline, "no ovsdb-server"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None
