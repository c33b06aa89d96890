"""The daemon's live inputs, without a daemon: the file watcher, the sources it
hands over, link liveness, and which port keeps a VM claimed twice."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sdnctl.bindings import Bindings
from sdnctl.live.links import LinkState
from sdnctl.live.sources import FileVersion, load_sources, read_version
from sdnctl.live.watch import Change, FileWatcher
from sdnctl.topology.load import parse_topology
from sdnctl.topology.model import PortRef
from sdnctl.yamlsrc import LoadError

TOPOLOGY = """\
version: 1
switches:
  hv1: {dpid: 1, role: hypervisor}
  hv2: {dpid: 2, role: hypervisor}
links:
  - {a: "hv1:10", b: "hv2:10"}
"""
POLICY = """\
version: 1
tenants:
  t1:
    segments:
      web: {vlan: 10, subnet: 10.9.10.0/24}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:09:10:11", ip: 10.9.10.11, host: hv1}
  w2: {tenant: t1, segment: web, mac: "02:00:00:09:10:12", ip: 10.9.10.12, host: hv2}
"""


# ---- sources ------------------------------------------------------------------------


def test_sources_validate_the_exact_bytes_read(tmp_path: Path) -> None:
    pol, topo = tmp_path / "p.yaml", tmp_path / "t.yaml"
    pol.write_text(POLICY)
    topo.write_text(TOPOLOGY)
    src = load_sources(read_version(pol), read_version(topo))
    assert set(src.policy.vms) == {"w1", "w2"}
    assert src.policy_file.sha256 == __import__("hashlib").sha256(POLICY.encode()).hexdigest()
    assert src.policy_file.mtime == pytest.approx(os.stat(pol).st_mtime)

    pol.write_text(POLICY.replace("vlan: 10", "vlan: 5000"))
    with pytest.raises(LoadError) as exc:
        load_sources(read_version(pol), read_version(topo))
    assert [str(p) for p in exc.value.problems] == [
        f"{pol}:5: segment t1/web: vlan 5000 is out of range 1..4094"]


def test_unreadable_or_binary_files_are_problems_with_a_line(tmp_path: Path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPOLOGY)
    missing = read_version(tmp_path / "gone.yaml")
    assert missing.data is None and missing.sha256 == ""
    with pytest.raises(LoadError, match=r"gone.yaml:0: cannot read file"):
        load_sources(missing, read_version(topo))
    binary = FileVersion(str(tmp_path / "b.yaml"), b"version: 1\n\xff\n")
    with pytest.raises(LoadError, match=r"b.yaml:2: file is not valid UTF-8"):
        load_sources(binary, read_version(topo))


# ---- the watcher --------------------------------------------------------------------


def _watcher(tmp_path: Path, **kw) -> tuple[FileWatcher, list[Change], Path, Path]:
    pol, topo = tmp_path / "p.yaml", tmp_path / "t.yaml"
    pol.write_text(POLICY)
    topo.write_text(TOPOLOGY)
    seen: list[Change] = []
    kw.setdefault("settle_s", 0.0)
    w = FileWatcher([read_version(pol), read_version(topo)], seen.append, **kw)
    return w, seen, pol, topo


def _bump(path: Path) -> None:
    """Make sure the stat moves even on a coarse clock."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_an_edit_is_reported_once_and_a_touch_not_at_all(tmp_path: Path) -> None:
    w, seen, pol, _ = _watcher(tmp_path)
    assert w.check() is None  # the first look: as loaded
    _bump(pol)  # same text: not a change
    assert w.check() is None and seen == []

    pol.write_text(POLICY + "# comment\n")
    change = w.check()
    assert change is not None and seen == [change]
    assert change.changed == (str(pol),) and not change.forced
    assert change.files[0].data == (POLICY + "# comment\n").encode()
    assert change.files[1].path.endswith("t.yaml")  # every file, in the order given
    assert w.check() is None  # reported once


def test_an_edit_before_start_is_still_seen(tmp_path: Path) -> None:
    """The baseline is what the daemon loaded, not what is on disk when watching starts."""
    pol, topo = tmp_path / "p.yaml", tmp_path / "t.yaml"
    pol.write_text(POLICY)
    topo.write_text(TOPOLOGY)
    loaded = [read_version(pol), read_version(topo)]
    pol.write_text(POLICY + "# edited meanwhile\n")
    seen: list[Change] = []
    w = FileWatcher(loaded, seen.append, settle_s=0.0)
    assert w.check() is not None and seen[0].changed == (str(pol),)


def test_a_file_still_being_written_waits_to_settle(tmp_path: Path) -> None:
    w, seen, pol, _ = _watcher(tmp_path, settle_s=30.0)
    old = time.time() - 60
    os.utime(pol, (old, old))
    assert w.check() is None
    pol.write_text(POLICY + "# half")
    assert w.check() is None  # modified just now: not read yet
    old = time.time() - 60
    os.utime(pol, (old, old))
    assert w.check() is not None


def test_a_file_missing_briefly_is_not_reported(tmp_path: Path) -> None:
    w, seen, pol, _ = _watcher(tmp_path, missing_s=30.0)
    assert w.check() is None
    pol.unlink()
    assert w.check() is None  # an editor between delete and write
    pol.write_text(POLICY)
    assert w.check() is None and seen == []  # back as it was


def test_trigger_reports_even_without_a_change_and_without_polling(tmp_path: Path) -> None:
    w, seen, pol, _ = _watcher(tmp_path, interval_s=None)
    pol.write_text(POLICY + "# edit\n")
    assert w.check() is None  # not polled
    w.trigger()
    change = w.check()
    assert change is not None and change.forced and change.changed == (str(pol),)
    w.trigger()
    change = w.check()
    assert change is not None and change.forced and change.changed == ()
    assert "SIGHUP" in change.describe()


def test_the_thread_reports_and_stops(tmp_path: Path) -> None:
    w, seen, pol, _ = _watcher(tmp_path, interval_s=0.01)
    w.start()
    try:
        pol.write_text(POLICY + "# edit\n")
        deadline = time.monotonic() + 2
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        w.stop()
    assert len(seen) == 1


# ---- links --------------------------------------------------------------------------


def test_a_link_is_down_when_either_end_is_or_when_a_reported_switch_lacks_it() -> None:
    topo = parse_topology(TOPOLOGY, "t.yaml")
    links = LinkState()
    assert links.down_ports(topo) == frozenset()  # nothing reported: assumed up
    links.report_switch("hv1", {10: True, 100: True})
    links.report_port("hv2", 10, False)
    assert links.down_ports(topo) == {PortRef("hv2", 10)}
    links.report_port("hv2", 10, True)
    links.report_switch("hv1", {100: True})  # port 10 gone from hv1
    assert links.down_ports(topo) == {PortRef("hv1", 10)}
    links.forget_switch("hv1")
    assert links.down_ports(topo) == frozenset()
    links.report_port("hv2", 100, False)  # not a link port: not a link down
    assert links.down_ports(topo) == frozenset()


# ---- a VM claimed twice -------------------------------------------------------------


def test_a_second_claim_leaves_the_vm_where_it_was_bound(tmp_path: Path) -> None:
    from types import MappingProxyType

    from sdnctl.policy.load import parse_policy
    from sdnctl.southbound.ovsdb import InterfaceRecord, compute_bindings

    topo = parse_topology(TOPOLOGY, "t.yaml")
    policy = parse_policy(POLICY, "p.yaml", topo)
    old = InterfaceRecord("br1", 1, "old", 101, {"vm-id": "w1"})
    new = InterfaceRecord("br2", 2, "new", 101, {"vm-id": "w1"})
    held = Bindings(MappingProxyType({"w1": PortRef("hv1", 101)}))

    snap = compute_bindings([old, new], policy, topo, previous=held)
    assert dict(snap.bindings.ports) == {"w1": PortRef("hv1", 101)}
    assert [(p.switch, p.reason) for p in snap.problems] == [
        ("hv2", "vm-id already bound at hv1:101")]
    # The old port goes: the VM moves.
    assert dict(compute_bindings([new], policy, topo, previous=snap.bindings).bindings.ports) \
        == {"w1": PortRef("hv2", 101)}
    # Nobody held it (e.g. a daemon starting mid-move): ambiguous, so neither binds.
    assert dict(compute_bindings([old, new], policy, topo).bindings.ports) == {}
