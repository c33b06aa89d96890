"""Restart the machine's one ovs-vswitchd, and put everything back as it was.

Machine-wide and disruptive: every bridge on the machine loses its datapath and
OpenFlow tables for the duration. So `others_using_ovs()` must come back empty
first (no pytest, lab, daemon or OVS tool run by anyone but this process and its
children), and the restart itself is what `ovs-ctl restart` does for the switch
daemon, without touching ovsdb-server:

  save the OpenFlow tables (flows, groups, meters) of the bridges to keep,
  `ovs-ctl --no-ovsdb-server stop` then `start`, put the saved tables back;
  optionally ("warm") with other_config:flow-restore-wait=true around the start, so
  the tables are back before ovs-vswitchd talks to any controller, as `ovs-ctl
  restart` does (but see restart_vswitchd: OVS then flushes bridges that have one).

Bridges, ports and controllers live in OVSDB and come back by themselves; tables
do not, hence the save. `restart_vswitchd` checks that every kept bridge ends with
exactly the tables it had and that ovs-vswitchd runs with the same command line.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sdnctl.lab.experiments.session import dump_tables
from sdnctl.lab.ovs import bridges, ofctl
from sdnctl.lab.plan import LabError

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"
PIDFILE = Path("/var/run/openvswitch/ovs-vswitchd.pid")
# Command lines that mean someone may be using OVS right now.
OVS_USERS = ("pytest", "py.test", "sdnctl", "mininet:", "mnexec", "benchmarks/", "ovs-ofctl",
             "ovs-vsctl", "ovs-appctl", "ovs-ctl", "faucet", "osken-manager", "ryu-manager",
             "ovn-controller", "ovn-northd", "iperf")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    out: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        out[int(entry.name)] = (ppid, cmdline.strip())
    return out


def others_using_ovs() -> list[str]:
    """`PID command` of every process that may use OVS and is neither this process,
    one of its ancestors (e.g. the pytest that runs it) nor one of its descendants."""
    procs = _processes()
    mine = {os.getpid()}
    pid = os.getpid()
    while pid in procs and procs[pid][0] not in mine and procs[pid][0] > 0:
        pid = procs[pid][0]
        mine.add(pid)
    grew = True
    while grew:  # descendants: the daemon, Mininet shells, probes, ...
        grew = False
        for p, (ppid, _cmd) in procs.items():
            if ppid in mine and p not in mine and ppid != 1:
                mine.add(p)
                grew = True
    return [f"{p} {cmd[:100]}" for p, (_pp, cmd) in sorted(procs.items())
            if p not in mine and any(word in cmd for word in OVS_USERS)]


def vswitchd_cmdline() -> str:
    """The command line of the running ovs-vswitchd ('' if none runs)."""
    try:
        pid = int(PIDFILE.read_text().strip())
        return (Path("/proc", str(pid), "cmdline").read_bytes().replace(b"\0", b" ")
                .decode().strip())
    except (OSError, ValueError):
        return ""


def _run(*args: str, timeout: float = 60.0) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True, check=False,
                          timeout=timeout)
    if done.returncode != 0:
        raise LabError(f"{' '.join(args)}: {(done.stderr or done.stdout).strip()}")


@dataclass(frozen=True, slots=True)
class SavedTables:
    bridge: str
    lines: tuple[str, ...]  # dump_tables() of the bridge


def save_tables(bridges: list[str]) -> list[SavedTables]:
    return [SavedTables(b, tuple(dump_tables(b))) for b in bridges]


def restore_tables(saved: SavedTables, scratch: Path, replace: bool = False) -> None:
    """Groups, meters, then flows (which refer to them) back into the bridge; with
    `replace`, whatever it holds now goes first."""
    by_kind: dict[str, list[str]] = {"dump-flows": [], "dump-groups": [], "dump-meters": []}
    for line in saved.lines:
        kind, _, text = line.partition(": ")
        by_kind[kind].append(text)
    if replace:
        for what in ("del-flows", "del-groups", "del-meters"):
            ofctl(saved.bridge, what)
    if by_kind["dump-groups"]:
        path = scratch / f"{saved.bridge}.groups"
        path.write_text("\n".join(by_kind["dump-groups"]) + "\n")
        ofctl(saved.bridge, "add-groups", str(path))
    for meter in by_kind["dump-meters"]:
        ofctl(saved.bridge, "add-meter", meter)
    if by_kind["dump-flows"]:
        path = scratch / f"{saved.bridge}.flows"
        path.write_text("\n".join(by_kind["dump-flows"]) + "\n")
        ofctl(saved.bridge, "add-flows", str(path))


def _changed(saved: list[SavedTables]) -> list[str]:
    return [t.bridge for t in saved if tuple(dump_tables(t.bridge)) != t.lines]


@dataclass
class Restart:
    """What a restart did, in monotonic times and checks."""

    stop_at: float = 0.0  # `ovs-ctl stop` issued
    started_at: float = 0.0  # `ovs-ctl start` returned
    released_at: float = 0.0  # flow-restore-wait removed (= started_at without it)
    same_cmdline: bool = False
    restored_under_wait: bool | None = None  # warm: tables exact before the release
    kept_intact: bool = False  # every bridge of `keep` holds its tables at the end
    problems: list[str] = field(default_factory=list)


def restart_vswitchd(keep: list[str], scratch: Path, warm: tuple[str, ...] = ()) -> Restart:
    """Restart ovs-vswitchd; every bridge in `keep` ends up with the tables it had.

    `warm` bridges are restored the way `ovs-ctl restart` does it: under
    flow-restore-wait, before ovs-vswitchd talks to their controllers. OVS flushes a
    bridge's flows when it goes from no controller to one (connmgr), which is what
    releasing flow-restore-wait does to a bridge with a controller; so `keep`
    bridges are checked again after the release and restored once more where that
    flush (or anything else) changed them. Whatever fails, ovs-vswitchd is running
    and flow-restore-wait is gone on return.
    """
    r = Restart()
    before_cmdline = vswitchd_cmdline()
    if not before_cmdline:
        raise LabError("ovs-vswitchd is not running")
    present = bridges()
    saved = {t.bridge: t for t in save_tables([b for b in {*keep, *warm} if b in present])}
    early = [saved[b] for b in warm if b in saved]
    try:
        if early:
            _run("ovs-vsctl", "set", "open_vswitch", ".", "other_config:flow-restore-wait=true")
        r.stop_at = time.monotonic()
        _run(OVS_CTL, "--no-ovsdb-server", "stop")
        _run(OVS_CTL, "--no-ovsdb-server", "start")
        r.started_at = time.monotonic()
        for tables in early:
            try:
                restore_tables(tables, scratch)
            except LabError as exc:
                r.problems.append(f"restoring {tables.bridge}: {exc}")
        if early:
            r.restored_under_wait = not _changed(early)
    finally:
        if not vswitchd_cmdline():
            with contextlib.suppress(LabError):
                _run(OVS_CTL, "--no-ovsdb-server", "start")
        with contextlib.suppress(LabError):
            _run("ovs-vsctl", "--if-exists", "remove", "open_vswitch", ".", "other_config",
                 "flow-restore-wait")
        r.released_at = time.monotonic()
    # After `start` returned (and any release), each bridge has its controllers and
    # has had its flush: what is restored now stays.
    late = [saved[b] for b in keep if b in saved]
    for bridge in _changed(late):
        try:
            restore_tables(saved[bridge], scratch, replace=True)
        except LabError as exc:
            r.problems.append(f"restoring {bridge}: {exc}")
    changed = _changed(late)
    r.kept_intact = not changed
    if changed:
        r.problems.append(f"tables not as they were on: {', '.join(changed)}")
    r.same_cmdline = vswitchd_cmdline() == before_cmdline
    if not r.same_cmdline:
        r.problems.append(f"ovs-vswitchd now runs as {vswitchd_cmdline()!r}, was"
                          f" {before_cmdline!r}")
    return r
