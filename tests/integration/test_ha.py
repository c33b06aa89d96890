"""Controller replicas on real etcd, real OVS and real daemons (`sdnctl run --etcd`).

One bridge connects to two replicas (both controllers set when it is created). The
replica holding the etcd lease is the switch's OpenFlow MASTER and the only one that
writes; the other is SLAVE. Killing the leader hands over within a few seconds
without a lost packet or a changed flow; a stopped (not dead) leader cannot come
back and write (the lease, then the switch's generation id, prevent it); a follower
whose policy differs from the published revision refuses to take over.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import daemon_cmd
import pytest
from netdata import POLICY

from sdnctl.client.api import ApiError, get_status, wait_programmed
from sdnctl.ha.etcd import EtcdStore
from sdnctl.ha.model import is_newer
from sdnctl.ha.server import EtcdServer, start_etcd

pytestmark = [pytest.mark.ovs, pytest.mark.needs("etcd")]

EDITED = POLICY.replace("allow: [tcp/80, icmp]", "allow: [tcp/80, icmp, udp/53]")
TAKEOVER_TIMEOUT_S = 20.0  # generous: the lease TTL is 2 s, the machine is shared


@dataclass
class Pair:
    """A bridge with two VMs, an etcd, and the files two replicas enforce."""

    lab: object
    etcd: EtcdServer
    bridge: str
    ports: tuple[int, int]
    topology: Path
    policy: Path
    w1: object
    w2: object

    def replica(self, name: str, index: int, policy: Path | None = None
                ) -> daemon_cmd.DaemonProc:
        return daemon_cmd.start(
            self.lab, policy or self.policy, self.topology,
            "--listen", f"127.0.0.1:{self.ports[index]}", "--etcd", self.etcd.url,
            "--replica-id", name, "--stats-interval", "0")


@pytest.fixture
def pair(lab) -> Iterator[Pair]:
    etcd = start_etcd(lab.tmp)
    lab.cleanup.add(f"etcd pid {etcd.proc.pid}", etcd.stop)
    dpid, ports = lab.random_dpid(), (lab.free_port(), lab.free_port())
    topology = lab.write("topology.yaml", f"""\
        version: 1
        switches:
          hv1: {{dpid: {dpid}, role: hypervisor}}
        links: []
        """)
    policy = lab.write("policy.yaml", POLICY)
    bridge = lab.bridge(dpid)
    # Both controllers at creation: changing a bridge's controllers later flushes it.
    targets = [f"tcp:127.0.0.1:{p}" for p in ports]
    lab.sh(["ovs-vsctl", "--", "--id=@a", "create", "Controller", f"target=\"{targets[0]}\"",
            "max_backoff=1000", "--", "--id=@b", "create", "Controller",
            f"target=\"{targets[1]}\"", "max_backoff=1000", "--", "set", "Bridge", bridge,
            "controller=@a,@b"])
    w1 = lab.vm(bridge, 100, "02:00:00:09:10:11", "10.9.10.11/24", "10.9.10.1", vm_id="w1")
    w2 = lab.vm(bridge, 101, "02:00:00:09:10:12", "10.9.10.12/24", "10.9.10.1", vm_id="w2")
    yield Pair(lab, etcd, bridge, ports, topology, policy, w1, w2)


# ---- looking at replicas and the switch -------------------------------------------


def ha(daemon: daemon_cmd.DaemonProc) -> dict:
    return get_status(daemon.api)["ha"]


def status_or_none(daemon: daemon_cmd.DaemonProc) -> dict | None:
    try:
        return get_status(daemon.api)
    except ApiError:
        return None


def leads_switch(daemon: daemon_cmd.DaemonProc) -> dict | None:
    """Its status once it leads, is hv1's acknowledged MASTER and has programmed it."""
    st = status_or_none(daemon)
    if st is None:
        return None
    hv1 = st["switches"]["hv1"]
    return st if st["ha"]["leading"] and hv1["role"] == "master" and hv1["programmed"] else None


def follows(daemon: daemon_cmd.DaemonProc, leader: str) -> dict | None:
    st = status_or_none(daemon)
    if st is None:
        return None
    ok = (not st["ha"]["leading"] and st["ha"]["leader"] == leader
          and st["switches"]["hv1"]["role"] == "slave")
    return st if ok else None


def metric(daemon: daemon_cmd.DaemonProc, name: str) -> float:
    with urllib.request.urlopen(f"http://{daemon.api}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, f"no {name} in /metrics"
    return float(found[1])


def controller_roles(lab, bridge: str) -> dict[str, str]:
    """OVS's own view: controller target -> role (master, slave, other)."""
    out = lab.sh(["ovs-vsctl", "--format=csv", "--data=bare", "--no-headings",
                  "--columns=target,role", "list", "Controller"])
    mine = lab.sh(["ovs-vsctl", "get", "Bridge", bridge, "controller"])
    uuids = set(re.findall(r"[0-9a-f-]{36}", mine))
    roles = {}
    for uuid in uuids:
        target = lab.sh(["ovs-vsctl", "get", "Controller", uuid, "target"]).strip().strip('"')
        role = lab.sh(["ovs-vsctl", "get", "Controller", uuid, "role"]).strip()
        roles[target] = role
    assert out is not None
    return roles


def flow_durations(lab, bridge: str) -> dict[str, float]:
    """Each flow (without counters) -> its age: a flow deleted and re-added gets younger."""
    out = lab.ofctl(bridge, "dump-flows")
    ages = {}
    for line in out.splitlines():
        found = re.search(r"duration=([\d.]+)s", line)
        if not found or "actions=" not in line:
            continue
        key = re.sub(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?", "",
                     line).strip()
        ages[key] = float(found[1])
    return ages


def assert_not_flushed(before: dict[str, float], after: dict[str, float]) -> None:
    assert after.keys() == before.keys(), "the flow table changed"
    younger = [k for k in before if after[k] < before[k]]
    assert not younger, f"flows re-created (younger than before): {younger[:3]}"


def start_pair(pair: Pair) -> tuple[daemon_cmd.DaemonProc, daemon_cmd.DaemonProc, dict]:
    """Replica a (leader, programmed), then b (follower); a's status."""
    lab = pair.lab
    a = pair.replica("a", 0)
    st = lab.wait_for(lambda: leads_switch(a), 40, "replica a leads and programmed hv1")
    b = pair.replica("b", 1)
    lab.wait_for(lambda: follows(b, "a"), 40, "replica b follows a, SLAVE of hv1")
    return a, b, st


def role_request_over_mgmt(bridge: str, generation: int, role: int = 2) -> tuple[str, int]:
    """Send ROLE_REQUEST (default MASTER) with `generation` on the bridge's management
    socket; ("reply", generation) or ("error", code of a role-request-failed error)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(f"/var/run/openvswitch/{bridge}.mgmt")
    try:
        sock.sendall(struct.pack("!BBHI", 4, 0, 8, 1))  # HELLO, OpenFlow 1.3
        sock.sendall(struct.pack("!BBHIIIQ", 4, 24, 24, 7, role, 0, generation))
        while True:
            header = _recv(sock, 8)
            version, kind, length, xid = struct.unpack("!BBHI", header)
            body = _recv(sock, length - 8)
            if xid != 7:
                continue
            if kind == 25:  # ROLE_REPLY
                return "reply", struct.unpack("!IIQ", body[:16])[2]
            if kind == 1:  # ERROR
                etype, code = struct.unpack("!HH", body[:4])
                assert etype == 11, f"error type {etype}, not ROLE_REQUEST_FAILED"
                return "error", code
    finally:
        sock.close()


def _recv(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the switch closed the connection")
        data += chunk
    return data


# ---- the tests --------------------------------------------------------------------


def test_two_replicas_one_leader_programs_and_forwards(pair: Pair) -> None:
    lab = pair.lab
    a, b, st = start_pair(pair)
    ha_a, ha_b = st["ha"], ha(b)
    assert ha_a["enabled"] and ha_a["replica"] == "a" and ha_a["role"] == "leader"
    assert ha_b["role"] == "follower" and not ha_b["leading"] and ha_b["leader"] == "a"
    assert ha_b["generation"] == ha_a["generation"] > 0
    assert ha_a["published"]["leader"] == "a"
    assert ha_a["published"]["policy"] == hashlib.sha256(POLICY.encode()).hexdigest()
    assert ha_b["refusal"] is None
    assert st["switches"]["hv1"]["flow_mods_sent"] > 0
    assert get_status(b.api)["switches"]["hv1"]["flow_mods_sent"] == 0  # never writes
    assert metric(a, "sdnctl_leader") == 1 and metric(b, "sdnctl_leader") == 0
    # The switch's own view: one MASTER (a), one SLAVE (b).
    want = {f"tcp:127.0.0.1:{pair.ports[0]}": "master", f"tcp:127.0.0.1:{pair.ports[1]}": "slave"}
    lab.wait_for(lambda: controller_roles(lab, pair.bridge) == want, 20,
                 f"OVS reports roles {want}")
    assert lab.probe(pair.w2, pair.w1.ip, "icmp")
    lab.serve(pair.w1, "tcp/80")
    assert lab.probe(pair.w2, pair.w1.ip, "tcp/80")
    assert not lab.probe(pair.w2, pair.w1.ip, "tcp/81", timeout=1.0)
    assert a.stop() == 0 and b.stop() == 0


def test_sigkill_leader_hands_over_without_loss_or_flush(pair: Pair) -> None:
    lab = pair.lab
    a, b, st = start_pair(pair)
    generation = st["ha"]["generation"]
    lab.serve(pair.w1, "udp/53")
    assert not lab.probe(pair.w2, pair.w1.ip, "udp/53", timeout=1.0)  # not allowed yet
    table, ages = lab.flow_table(pair.bridge), flow_durations(lab, pair.bridge)
    pinger = lab.pinger(pair.w2, pair.w1.ip, interval_s=0.01)
    pinger.wait_replies(20)

    killed = time.time()
    a.proc.kill()  # SIGKILL: no resignation, the lease has to lapse
    a.proc.wait(10)
    st = lab.wait_for(lambda: leads_switch(b), TAKEOVER_TIMEOUT_S,
                      "replica b leads and is hv1's acknowledged MASTER")
    leader_in = st["ha"]["leading_since"] - killed
    master_in = st["switches"]["hv1"]["role_at"] - killed
    time.sleep(0.5)
    stats = pinger.stop()
    print(f"\nSIGKILL of the leader: b won the lease {leader_in:.2f} s after, hv1 acknowledged"
          f" b as MASTER {master_in:.2f} s after; ping w2->w1: {stats}")
    assert is_newer(st["ha"]["generation"], generation)
    assert stats.sent > 100 and stats.lost == 0
    assert st["switches"]["hv1"]["flow_mods_sent"] == 0  # it held the right table already
    assert lab.flow_table(pair.bridge) == table
    assert_not_flushed(ages, flow_durations(lab, pair.bridge))
    assert metric(b, "sdnctl_leader") == 1

    # The next edit is applied by the new leader, and published as its revision.
    pair.policy.write_text(EDITED)
    sha = hashlib.sha256(EDITED.encode()).hexdigest()

    def enforced() -> dict | None:
        s = get_status(b.api)
        return s if s["policy"]["sha256"] == sha and s["policy"].get("enforced_in_s") else None

    st = lab.wait_for(enforced, 20, "b enforces the edited policy")
    assert st["switches"]["hv1"]["flow_mods_sent"] > 0
    assert lab.probe(pair.w2, pair.w1.ip, "udp/53")
    published = lab.wait_for(lambda: ha(b)["published"]["policy"] == sha and ha(b)["published"],
                             10, "b publishes the edited revision")
    assert published["leader"] == "b" and published["generation"] == st["ha"]["generation"]
    assert b.stop() == 0


def test_split_brain_is_impossible_stopped_leader_cannot_write(pair: Pair) -> None:
    lab = pair.lab
    a, b, st = start_pair(pair)
    gen_a = st["ha"]["generation"]
    mods_a = st["switches"]["hv1"]["flow_mods_sent"]
    table = lab.flow_table(pair.bridge)
    store = EtcdStore(pair.etcd.url)

    os.kill(a.proc.pid, signal.SIGSTOP)  # alive, holding its lease until it lapses
    stopped = time.monotonic()
    lab.cleanup.add("SIGCONT a", lambda: a.proc.poll() is None
                    and os.kill(a.proc.pid, signal.SIGCONT))
    held_and_followed = 0
    while True:
        b_status = get_status(b.api)["ha"]  # first b, then etcd: see below
        snap = store.read()
        a_holds = snap.leader is not None and snap.leader.generation == gen_a
        # b leading before a's key was read back would be two leaders at once.
        assert not (b_status["leading"] and a_holds), "b leads while a's lease lives"
        if a_holds:
            held_and_followed += 1
        if b_status["leading"]:
            break
        assert time.monotonic() - stopped < TAKEOVER_TIMEOUT_S, "b never took over"
        time.sleep(0.05)
    lapsed_in = time.monotonic() - stopped
    assert held_and_followed > 0  # b did wait while the lease lived
    st = lab.wait_for(lambda: leads_switch(b), TAKEOVER_TIMEOUT_S, "b is hv1's MASTER")
    gen_b = st["ha"]["generation"]
    assert is_newer(gen_b, gen_a)

    # The switch itself refuses the old generation: a's MASTER claim could not land.
    assert role_request_over_mgmt(pair.bridge, gen_a) == ("error", 0)  # OFPRRFC_STALE

    os.kill(a.proc.pid, signal.SIGCONT)
    st_a = lab.wait_for(lambda: follows(a, "b") or None, 20,
                        "a, resumed, knows it lost and follows b as SLAVE")
    assert not st_a["ha"]["leading"] and st_a["ha"]["generation"] == gen_b
    assert st_a["switches"]["hv1"]["flow_mods_sent"] == mods_a  # wrote nothing after resuming
    assert any(e["kind"] == "ha" and "stepped down" in e["message"] for e in st_a["events"])
    assert metric(a, "sdnctl_leader") == 0
    want = {f"tcp:127.0.0.1:{pair.ports[0]}": "slave", f"tcp:127.0.0.1:{pair.ports[1]}": "master"}
    lab.wait_for(lambda: controller_roles(lab, pair.bridge) == want, 20,
                 f"OVS reports roles {want}")
    assert leads_switch(b) is not None
    assert lab.flow_table(pair.bridge) == table
    assert lab.probe(pair.w2, pair.w1.ip, "icmp")
    print(f"\nSIGSTOP of the leader: its lease lapsed and b took over {lapsed_in:.2f} s later"
          f" (generation {gen_a} -> {gen_b}); the switch refuses generation {gen_a}")
    assert a.stop() == 0 and b.stop() == 0


def test_follower_with_another_policy_refuses_to_take_over(pair: Pair) -> None:
    lab = pair.lab
    a = pair.replica("a", 0)
    lab.wait_for(lambda: leads_switch(a), 40, "replica a leads and programmed hv1")
    other = lab.write("other.yaml", EDITED)
    b = pair.replica("b", 1, policy=other)
    st = lab.wait_for(lambda: (s := status_or_none(b)) and s["ha"]["refusal"] and s, 40,
                      "b says it would not take over")
    assert "policy" in st["ha"]["refusal"] and "differ" in st["ha"]["refusal"]
    # The status API answers from start-up on; the app logs the refusal once running.
    lab.wait_for(lambda: any(e["kind"] == "ha" and "will not take over" in e["message"]
                             for e in get_status(b.api)["events"]), 20,
                 "b's events say it will not take over")
    table = lab.flow_table(pair.bridge)

    a.proc.kill()
    a.proc.wait(10)
    time.sleep(5.0)  # more than twice the lease's TTL
    st = get_status(b.api)
    assert not st["ha"]["leading"] and st["ha"]["leader"] is None  # nobody leads
    assert st["switches"]["hv1"]["flow_mods_sent"] == 0
    assert lab.flow_table(pair.bridge) == table  # the switch kept a's policy, untouched
    assert metric(b, "sdnctl_leader") == 0

    # Once its file matches the published revision, it takes over (nothing to send).
    other.write_text(POLICY)
    st = lab.wait_for(lambda: leads_switch(b), TAKEOVER_TIMEOUT_S,
                      "b, its file fixed, takes over")
    assert st["ha"]["refusal"] is None
    assert st["switches"]["hv1"]["flow_mods_sent"] == 0
    assert lab.flow_table(pair.bridge) == table
    assert b.stop() == 0


def test_replicas_without_etcd_send_no_role_request(lab) -> None:
    """Without --etcd nothing changes: no role is asked, /status says HA is off."""
    dpid, of_port = lab.random_dpid(), lab.free_port()
    topology = lab.write("topology.yaml", f"""\
        version: 1
        switches:
          hv1: {{dpid: {dpid}, role: hypervisor}}
        links: []
        """)
    policy = lab.write("policy.yaml", POLICY)
    lab.bridge(dpid, controller_port=of_port)
    d = lab.daemon(policy, topology, of_port=of_port)
    st = wait_programmed(d.api, ["hv1"], timeout=30)
    assert st["ha"] == {"enabled": False}
    assert st["switches"]["hv1"]["role"] is None
    assert metric(d, "sdnctl_leader") == 1
    assert d.stop() == 0
