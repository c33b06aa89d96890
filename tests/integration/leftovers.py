"""Run the daemon in this process, then report what it left running.

    python tests/integration/leftovers.py REPORT.json -- [sdnctl run options...]

`run_daemon` returns (a start-up failure, or SIGTERM once running); this process
then waits up to SETTLE_S for threads to end and writes JSON to REPORT.json:
the exit code `run_daemon` returned, the threads still alive, the sockets still
open (listening TCP ports, and any other socket), and the child processes.
The process exiting would close all of that anyway: looking from inside, before
exiting, is what shows whether the daemon's own teardown did.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

SETTLE_S = 5.0


def socket_table() -> dict[str, str]:
    """socket inode -> what it is (`listening tcp port P`, `tcp A -> B`, `udp`, `unix PATH`)."""
    found = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
            found[fields[9]] = (f"listening tcp port {local}" if fields[3] == "0A"
                                else f"tcp port {local} -> {remote}")
    for table in ("udp", "udp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            found[fields[9]] = f"udp port {int(fields[1].rsplit(':', 1)[1], 16)}"
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        found[fields[6]] = "unix " + (fields[7] if len(fields) > 7 else "(unnamed)")
    return found


def open_sockets() -> list[str]:
    table = socket_table()
    sockets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inode = target[len("socket:["):-1]
            sockets.append(f"fd {fd}: {table.get(inode) or describe(int(fd))}")
    return sorted(sockets)


def describe(fd: int) -> str:
    """A socket /proc/net does not list (netlink, packet, ...): its family and type."""
    import socket

    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError as exc:
        return f"socket ({exc})"
    with sock:
        try:
            name = sock.getsockname()
        except OSError:
            name = "?"
        return f"{sock.family.name} {sock.type.name} {name}"


def children() -> list[str]:
    me, kids = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            kids.append(f"{pid} {stat.split('(', 1)[1].rsplit(')', 1)[0]}")
    return kids


def others() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())


def main() -> int:
    report, sep, *options = sys.argv[1:]
    assert sep == "--"
    from sdnctl.cli import main as cli_main

    try:
        code = cli_main(["run", *options])
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    deadline = time.monotonic() + SETTLE_S
    while (others() or open_sockets()) and time.monotonic() < deadline:
        time.sleep(0.1)
    Path(report).write_text(json.dumps({
        "code": code, "threads": others(), "sockets": open_sockets(), "children": children(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
