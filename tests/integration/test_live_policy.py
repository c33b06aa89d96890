"""Policy edits while the daemon runs, on real OVS with real packets.

A valid edit is applied as the minimal diff (exactly the flows whose content
changed), quickly, while a continuous ping on an unaffected allowed pair loses
nothing. An invalid edit is refused with its exact `file:line: message` in
/status, changes no flow, and the next valid edit applies normally. SIGHUP
reloads when the file watch is off.
"""

from __future__ import annotations

import hashlib
import time
from types import MappingProxyType

import pytest
from netdata import POLICY

from sdnctl.bindings import Bindings
from sdnctl.client.api import (
    get_policy_text,
    get_status,
    wait_policy,
    wait_programmed,
)
from sdnctl.compile.compiler import compile_network
from sdnctl.diff import diff_flowsets
from sdnctl.policy.load import load_policy
from sdnctl.southbound.ofp import normalize_flowset
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import PortRef

NEW_RULE = "      - {from: db, to: web, allow: [tcp/22]}\n"
WITH_SSH = POLICY.replace("vms:\n", NEW_RULE + "vms:\n")
BAD_VLAN = POLICY.replace("vlan: 20", "vlan: 5000")  # line 7

VMS = {  # name: (ofport, mac, ip/len, gateway)
    "w1": (100, "02:00:00:09:10:11", "10.9.10.11/24", "10.9.10.1"),
    "w2": (101, "02:00:00:09:10:12", "10.9.10.12/24", "10.9.10.1"),
    "d1": (102, "02:00:00:09:20:11", "10.9.20.11/24", "10.9.20.1"),
}


def setup_network(lab):
    dpid, of_port = lab.random_dpid(), lab.free_port()
    topo = lab.write("topology.yaml", f"""\
        version: 1
        switches:
          hv1: {{dpid: {dpid}, role: hypervisor}}
        links: []
        """)
    policy = lab.write("policy.yaml", POLICY)
    bridge = lab.bridge(dpid, controller_port=of_port)
    vms = {name: lab.vm(bridge, port, mac, cidr, gw, vm_id=name)
           for name, (port, mac, cidr, gw) in VMS.items()}
    return bridge, vms, policy, topo, of_port


def expected_flow_mods(topo_path, old_path, new_path) -> int:
    """How many flow-mods the minimal diff between two policy files takes on hv1."""
    topo = load_topology(topo_path)
    bindings = Bindings(MappingProxyType({vm: PortRef("hv1", p) for vm, (p, *_) in VMS.items()}))

    def hv1(path):
        return normalize_flowset(compile_network(load_policy(path, topo), topo, bindings)["hv1"])

    diff = diff_flowsets(hv1(old_path), hv1(new_path))
    return len(diff.add) + len(diff.modify) + len(diff.delete)


def write(path, text: str) -> float:
    """Save as editors do: write aside, rename over (a plain rewrite passes through an
    empty file, which the daemon would rightly refuse if it read it just then)."""
    aside = path.with_name(path.name + ".tmp")
    aside.write_text(text)
    aside.replace(path)
    return time.monotonic()


def wait_enforced(text: str, api: str, timeout: float = 3.0) -> dict:
    """Wait until the daemon enforces `text` and every switch acknowledged it."""
    return wait_policy(api, sha(text), timeout)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def from_save(status: dict) -> str:
    """How long after the file's save the last switch acknowledged the policy."""
    pol = status["policy"]
    return (f"enforced {(pol['enforced_at'] - pol['saved_at']) * 1000:.0f} ms after the save "
            f"({pol['enforced_in_s'] * 1000:.0f} ms after the watch saw it)")


def wait_probe(lab, src, dst: str, service: str, want: bool, timeout: float = 3.0) -> float:
    """Probe until the outcome is `want`; seconds it took."""
    start = time.monotonic()
    lab.wait_for(lambda: lab.probe(src, dst, service, timeout=0.3) == want, timeout,
                 f"{service} to {dst} {'works' if want else 'blocked'}")
    return time.monotonic() - start


@pytest.mark.ovs
def test_policy_edits_apply_hot_and_a_refused_edit_changes_nothing(lab) -> None:
    bridge, vms, policy, topo, of_port = setup_network(lab)
    daemon = lab.daemon(policy, topo, of_port=of_port)
    wait_programmed(daemon.api, ["hv1"], timeout=30)
    w1, w2, d1 = vms["w1"], vms["w2"], vms["d1"]
    lab.serve(w1, "tcp/22", "tcp/80")
    assert not lab.probe(d1, w1.ip, "tcp/22", timeout=0.5)  # no rule yet

    ping = lab.pinger(w2, w1.ip)  # allowed, and no edit below touches it
    ping.wait_replies(10)
    figures = []

    # 1. An added rule: the blocked connection works, with the minimal diff only.
    mods_before = get_status(daemon.api)["switches"]["hv1"]["flow_mods_sent"]
    (lab.tmp / "old.yaml").write_text(POLICY)
    (lab.tmp / "new.yaml").write_text(WITH_SSH)
    minimal = expected_flow_mods(topo, lab.tmp / "old.yaml", lab.tmp / "new.yaml")
    saved = write(policy, WITH_SSH)
    wait_probe(lab, d1, w1.ip, "tcp/22", True)
    works_after = time.monotonic() - saved
    st = wait_enforced(WITH_SSH, daemon.api)
    hv1 = st["switches"]["hv1"]
    assert 0 < minimal == hv1["flow_mods_sent"] - mods_before
    assert get_policy_text(daemon.api) == WITH_SSH
    figures.append(f"add rule: {from_save(st)}, hv1 update {hv1['last_update_s'] * 1000:.0f}"
                   f" ms, {minimal} flow-mods; a tcp/22 probe worked {works_after:.2f} s after "
                   "the save")
    assert works_after < 2.0

    # 2. The rule removed: new connections are blocked again.
    mods_before = hv1["flow_mods_sent"]
    saved = write(policy, POLICY)
    wait_probe(lab, d1, w1.ip, "tcp/22", False)
    blocked_after = time.monotonic() - saved
    st = wait_enforced(POLICY, daemon.api)
    assert st["switches"]["hv1"]["flow_mods_sent"] - mods_before == minimal  # the same flows
    figures.append(f"remove rule: {from_save(st)}; a tcp/22 probe was blocked "
                   f"{blocked_after:.2f} s after the save")
    assert blocked_after < 2.0

    # 3. A refused edit: the exact problem in /status, not one flow touched.
    table = lab.flow_table(bridge)
    before = get_status(daemon.api)
    write(policy, BAD_VLAN)
    st = lab.wait_for(lambda: (s := get_status(daemon.api))["policy"]["last_refused"] and s, 3,
                      "edit refused")
    refused = st["policy"]["last_refused"]
    assert refused["problems"] == [f"{policy}:7: segment t1/db: vlan 5000 is out of range 1..4094"]
    with pytest.raises(ValueError, match="vlan 5000"):
        wait_policy(daemon.api, sha(BAD_VLAN), 1)  # says so at once, no waiting
    time.sleep(0.5)  # give a wrong update every chance to go out
    st = get_status(daemon.api)
    assert st["policy"]["sha256"] == before["policy"]["sha256"]
    assert st["switches"]["hv1"]["flow_mods_sent"] == before["switches"]["hv1"]["flow_mods_sent"]
    assert lab.flow_table(bridge) == table
    assert get_policy_text(daemon.api) == POLICY  # the last good policy, as enforced
    assert f"{policy}:7: segment t1/db: vlan 5000" in daemon.log_text()
    assert lab.probe(w2, w1.ip, "tcp/80")  # and it is still enforced

    # 4. The next good edit applies normally.
    write(policy, WITH_SSH)
    wait_enforced(WITH_SSH, daemon.api)
    wait_probe(lab, d1, w1.ip, "tcp/22", True)

    ping.wait_replies(110)  # a few more after the last edit: losses would show by now
    stats = ping.stop()
    figures.append(f"unaffected w2->w1 ping across 3 edits and a refusal: {stats}")
    print("\n".join(["", *figures]))
    assert stats.sent > 100 and stats.lost == 0
    assert daemon.stop() == 0


@pytest.mark.ovs
def test_sighup_reloads_with_the_watch_off(lab) -> None:
    bridge, vms, policy, topo, of_port = setup_network(lab)
    daemon = lab.daemon(policy, topo, of_port=of_port, watch=False)
    first = wait_programmed(daemon.api, ["hv1"], timeout=30)["switches"]["hv1"]
    lab.serve(vms["w1"], "tcp/22")

    write(policy, WITH_SSH)
    time.sleep(0.6)  # the watch is off: nothing happens on its own
    st = get_status(daemon.api)
    assert st["policy"]["sha256"] == sha(POLICY)
    assert st["switches"]["hv1"]["flow_mods_sent"] == first["flow_mods_sent"]

    daemon.hup()
    st = wait_enforced(WITH_SSH, daemon.api)
    assert lab.probe(vms["d1"], vms["w1"].ip, "tcp/22")
    mods = st["switches"]["hv1"]["flow_mods_sent"]

    daemon.hup()  # nothing changed: nothing sent
    lab.wait_for(lambda: any("already enforced" in e["message"]
                             for e in get_status(daemon.api)["events"]), 3, "second SIGHUP seen")
    assert get_status(daemon.api)["switches"]["hv1"]["flow_mods_sent"] == mods
    assert daemon.stop() == 0

