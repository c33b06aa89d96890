"""The lab lifecycle (sdnctl/lab/session.py) and its helpers, without root or OVS.

What each test would catch: undo in creation order instead of reverse; one failing
undo stopping the rest; a failure in the middle of set-up leaving what was made; the
temp dir removed although something went wrong (or left although nothing did);
stopping a process group's leader but not its children; a process that ignores
SIGTERM surviving teardown; SIGTERM killing the lab instead of unwinding it, or
unwinding a fork's copy of it; a second Ctrl-C cutting the teardown short; signal
handlers not restored. Real OVS
bridges and namespaces: tests/integration/test_lab_session.py and tests/lab/test_lab_teardown.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdnctl.lab.icmp import ICMP_ECHO_REQUEST, checksum, icmp_echo
from sdnctl.lab.names import DPID_BITS, free_ports, rebase_dpid, rebase_dpids, rebased_topology
from sdnctl.lab.plan import LabError
from sdnctl.lab.session import LabSession, Stopped, stop_process
from sdnctl.topology.load import load_topology


def _alive(pid: int) -> bool:
    """Running (not a zombie) or not."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _group(pgid: int) -> list[int]:
    """The live processes of process group `pgid`, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


# ---- order and errors -------------------------------------------------------------


def test_teardown_runs_in_reverse_order_of_creation() -> None:
    done: list[str] = []
    with LabSession("t", say=lambda _m: None) as s:
        for what in ("net", "servers", "daemon", "agent"):
            s.add(what, lambda w=what: done.append(w))
        assert done == []  # nothing undone while the lab runs
    assert done == ["agent", "daemon", "servers", "net"]


def test_a_failing_undo_does_not_stop_the_rest_and_is_reported() -> None:
    done: list[str] = []
    said: list[str] = []

    def broken() -> None:
        raise RuntimeError("bridge busy")

    with LabSession("t", say=said.append) as s:
        s.add("first", lambda: done.append("first"))
        s.add("broken", broken)
        s.add("last", lambda: done.append("last"))
    assert done == ["last", "first"]
    assert s.errors == ["broken: bridge busy"]
    assert "teardown problem: broken: bridge busy" in said


def test_an_error_in_the_middle_of_set_up_undoes_what_was_made_and_keeps_tmp() -> None:
    done: list[str] = []
    said: list[str] = []
    with pytest.raises(LabError, match="daemon did not start"), \
            LabSession("t", say=said.append) as s:
        s.add("net", lambda: done.append("net"))
        (s.tmp / "daemon.log").write_text("why it failed")
        s.add("servers", lambda: done.append("servers"))
        raise LabError("the daemon did not start")
    assert done == ["servers", "net"]
    assert (s.tmp / "daemon.log").read_text() == "why it failed"  # kept for inspection
    assert any("kept" in m and str(s.tmp) in m for m in said)
    (s.tmp / "daemon.log").unlink()
    s.tmp.rmdir()


def test_tmp_goes_after_everything_else_when_all_went_well() -> None:
    seen: list[bool] = []
    with LabSession("t", say=lambda _m: None) as s:
        tmp = s.tmp
        s.add("daemon", lambda: seen.append(tmp.is_dir()))  # its log is still there
    assert seen == [True]
    assert not tmp.exists()


def test_keep_keeps_tmp_and_an_interruption_is_not_a_failure() -> None:
    with LabSession("t", say=lambda _m: None) as kept:
        kept.tmp.joinpath("log").write_text("x")
        kept.keep("probes disagreed")
    assert kept.tmp.joinpath("log").exists()
    kept.tmp.joinpath("log").unlink()
    kept.tmp.rmdir()
    with pytest.raises(KeyboardInterrupt), LabSession("t", say=lambda _m: None) as s:
        tmp = s.tmp
        raise KeyboardInterrupt
    assert not tmp.exists()


def test_close_twice_undoes_once() -> None:
    done: list[str] = []
    s = LabSession("t", say=lambda _m: None)
    s.add("x", lambda: done.append("x"))
    s.close()
    s.close()
    assert done == ["x"]


# ---- processes ----------------------------------------------------------------------


def test_spawned_process_group_is_stopped_children_included(tmp_path: Path) -> None:
    with LabSession("t", say=lambda _m: None) as s:
        proc = s.spawn("daemon", ["sh", "-c", "sleep 60 & sleep 60 & wait"],
                       tmp_path / "log")
        deadline = time.monotonic() + 5
        while len(_group(proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        group = _group(proc.pid)
        assert len(group) == 3  # the shell and its two sleeps
    assert proc.returncode is not None
    assert [pid for pid in group if _alive(pid)] == []
    assert _group(proc.pid) == []


def test_a_process_that_ignores_sigterm_is_killed() -> None:
    proc = subprocess.Popen([sys.executable, "-c",
                             "import signal, sys, time; signal.signal(signal.SIGTERM,"
                             " signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    started = time.monotonic()
    stop_process(proc, grace=0.3)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5
    proc.stdout.close()


def test_registered_process_is_stopped_by_pid_on_error() -> None:
    with pytest.raises(RuntimeError), LabSession("t", say=lambda _m: None) as s:
        proc = s.process(subprocess.Popen(["sleep", "60"]))
        raise RuntimeError("set-up failed")
    assert proc.returncode == -signal.SIGTERM
    assert not _alive(proc.pid)


# ---- signals ------------------------------------------------------------------------


def test_sigterm_unwinds_the_session_and_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    done: list[str] = []
    with pytest.raises(Stopped) as stopped, LabSession("t", say=lambda _m: None) as s:
        s.add("net", lambda: done.append("net"))
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert stopped.value.signum == signal.SIGTERM
    assert done == ["net"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_fork_stopped_by_sigterm_dies_as_by_default() -> None:
    """pyroute2 forks to work in a namespace and stops the fork with SIGTERM: the fork
    must not raise Stopped and run a copy of the lab's teardown."""
    with LabSession("t", say=lambda _m: None):
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the fork
            try:
                os.write(ready_w, b"x")
                time.sleep(10)
            finally:
                os._exit(3)  # reached only if the handler raised (or the sleep ended)
        os.read(ready_r, 1)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGTERM


def test_a_second_ctrl_c_does_not_cut_the_teardown_short() -> None:
    before = signal.getsignal(signal.SIGINT)
    done: list[str] = []
    with LabSession("t", say=lambda _m: None) as s:
        s.add("net", lambda: done.append("net"))
        s.add("impatient user", lambda: os.kill(os.getpid(), signal.SIGINT))
    assert done == ["net"]  # no KeyboardInterrupt in between
    assert signal.getsignal(signal.SIGINT) is before


# ---- names, datapath ids, checksum -----------------------------------------------------


def test_rebase_dpid_is_or_and_add_alike_and_refuses_what_would_overlap() -> None:
    base = 0xBE7C << 32
    assert rebase_dpid(0x10, base) == base | 0x10 == base + 0x10
    with pytest.raises(LabError, match="does not fit"):
        rebase_dpid(1 << DPID_BITS, base)  # would carry into the base's bits
    with pytest.raises(LabError, match="not a multiple"):
        rebase_dpid(0x1, base + 0x100)  # its hv1 would be another block's leaf 0x101


def test_rebased_blocks_of_two_labs_never_meet() -> None:
    a, b = 0x5E7 << 36 | 1 << DPID_BITS, 0x5E7 << 36 | 2 << DPID_BITS
    dpids = [1, 2, 0x10, 0x101, 0x602, (1 << DPID_BITS) - 1]
    assert not {rebase_dpid(d, a) for d in dpids} & {rebase_dpid(d, b) for d in dpids}


def test_rebase_dpids_keeps_the_document_and_names_the_switch() -> None:
    doc = {"version": 1, "switches": {"hv1": {"dpid": 1, "role": "hypervisor"}}, "links": []}
    out = rebase_dpids(doc, 1 << 40)
    assert out == {"version": 1, "switches": {"hv1": {"dpid": 1 << 40 | 1,
                                                      "role": "hypervisor"}}, "links": []}
    assert doc["switches"]["hv1"]["dpid"] == 1  # not mutated
    with pytest.raises(LabError, match="switch big: dpid 0x10000"):
        rebase_dpids({"switches": {"big": {"dpid": 0x10000}}}, 1 << 40)


def test_two_rebased_copies_of_one_topology_share_no_dpid(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "topologies" / "leaf-spine.topology.yaml"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = load_topology(rebased_topology(source, tmp_path / "a", 0x5E7))
    b = load_topology(rebased_topology(source, tmp_path / "b", 0x5E7))
    original = load_topology(source)
    assert set(a.switches) == set(b.switches) == set(original.switches)
    assert [(x.a, x.b) for x in a.links] == [(x.a, x.b) for x in original.links]
    for name, sw in original.switches.items():
        assert a.switches[name].dpid & 0xFFFF == sw.dpid == b.switches[name].dpid & 0xFFFF
    assert not {s.dpid for s in a.switches.values()} & {s.dpid for s in b.switches.values()}


def test_free_ports_are_distinct() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5 and all(1024 <= p < 65536 for p in ports)


def test_internet_checksum() -> None:
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D  # RFC 1071, section 3
    assert checksum(b"\x01") == checksum(b"\x01\x00") == 0xFEFF  # odd: padded with zero
    assert checksum(b"\xff\xff" * 70_000) == 0  # carries folded until none is left
    packet = icmp_echo(ICMP_ECHO_REQUEST, 0x1234, 70_000, b"payload")
    assert checksum(packet) == 0  # a packet with its checksum sums to zero
    assert packet[6:8] == (70_000 & 0xFFFF).to_bytes(2, "big")
