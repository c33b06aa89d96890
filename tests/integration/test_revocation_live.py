"""Revocation on real OVS: removing a rule cuts the connections it allowed.

Long-lived TCP streams run while the policy file is edited under the daemon. The
stream the edit no longer allows stops in both directions, within the edit's
enforcement time; a stream still allowed and a ping beside it lose nothing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from netdata import POLICY

from sdnctl.client.api import wait_policy, wait_programmed

WEB_TO_DB = "      - {from: web, to: db, allow: [tcp/5432]}\n"
VMS = {  # name: (ofport, mac, ip/len, gateway)
    "w1": (100, "02:00:00:09:10:11", "10.9.10.11/24", "10.9.10.1"),
    "w2": (101, "02:00:00:09:10:12", "10.9.10.12/24", "10.9.10.1"),
    "d1": (102, "02:00:00:09:20:11", "10.9.20.11/24", "10.9.20.1"),
}

# Both ends send a byte every 5 ms and log the monotonic time of everything they
# receive (CLOCK_MONOTONIC is one clock for every namespace of the machine).
_STREAM = textwrap.dedent(
    """
    import socket, sys, threading, time
    role, addr, port, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if role == "server":
        srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port)); srv.listen(1)
        print("ready", flush=True)
        conn, _ = srv.accept()
    else:
        conn = socket.create_connection((addr, port), timeout=3)
        conn.settimeout(None)
        print("ready", conn.getsockname()[1], flush=True)
    def receive():
        with open(log, "a") as out:
            while conn.recv(4096):
                out.write(f"{time.monotonic()}\\n"); out.flush()
    threading.Thread(target=receive, daemon=True).start()
    while True:
        conn.sendall(b"x"); time.sleep(0.005)
    """
)


class Stream:
    """A TCP stream from `client` to `server`:`port`, logged at both ends."""

    def __init__(self, lab, client, server, port: int) -> None:
        self.logs: dict[str, Path] = {}
        for role, vm, addr in (("server", server, "0.0.0.0"), ("client", client, server.ip)):
            log = lab.tmp / f"stream-{port}-{role}.log"
            log.touch()
            self.logs[role] = log
            proc = lab.cleanup.process(subprocess.Popen(
                ["ip", "netns", "exec", vm.ns, sys.executable, "-c", _STREAM, role, addr,
                 str(port), str(log)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
            assert proc.stdout is not None
            ready = proc.stdout.readline().split()
            assert ready[:1] == [b"ready"]
        self.client_port = int(ready[1])

    def received(self, role: str) -> list[float]:
        return [float(t) for t in self.logs[role].read_text().split()]

    def last(self) -> float:
        """When either end last received anything."""
        return max(max(self.received(r), default=0.0) for r in self.logs)

    def flowing(self, since: float) -> bool:
        """Both ends received since `since`."""
        return all(any(t > since for t in self.received(r)) for r in self.logs)

    def longest_gap(self, start: float, end: float) -> float:
        """The longest silence at either end between `start` and `end`."""
        gaps = []
        for role in self.logs:
            times = [start, *(t for t in self.received(role) if start < t < end), end]
            gaps.append(max(b - a for a, b in zip(times, times[1:], strict=False)))
        return max(gaps)


@pytest.mark.ovs
def test_removing_a_rule_cuts_its_established_connections_and_nothing_else(lab) -> None:
    dpid, of_port = lab.random_dpid(), lab.free_port()
    topo = lab.write("topology.yaml", f"""\
        version: 1
        switches:
          hv1: {{dpid: {dpid}, role: hypervisor}}
        links: []
        """)
    assert WEB_TO_DB in POLICY
    policy = lab.write("policy.yaml", POLICY)
    bridge = lab.bridge(dpid, controller_port=of_port)
    vms = {name: lab.vm(bridge, port, mac, cidr, gw, vm_id=name)
           for name, (port, mac, cidr, gw) in VMS.items()}
    w1, w2, d1 = vms["w1"], vms["w2"], vms["d1"]
    daemon = lab.daemon(policy, topo, of_port=of_port)
    wait_programmed(daemon.api, ["hv1"], timeout=30)

    revoked = Stream(lab, w1, d1, 5432)  # web -> db: the edit removes this rule
    kept = Stream(lab, d1, w1, 80)  # any -> web: untouched
    ping = lab.pinger(w2, w1.ip)  # any -> web icmp: untouched
    ping.wait_replies(20)
    start = time.monotonic()
    lab.wait_for(lambda: revoked.flowing(start + 0.3) and kept.flowing(start + 0.3), 5,
                 "both streams flowing")

    # Before the edit: plan against the daemon names the connection it will cut.
    edited = lab.write("edited.yaml", POLICY.replace(WEB_TO_DB, ""))
    plan = subprocess.run(
        [sys.executable, "-m", "sdnctl.cli", "plan", "-t", str(topo), str(edited), "--api",
         daemon.api, "--json", "--connections"], capture_output=True, text=True, timeout=60)
    assert plan.returncode == 0, plan.stderr
    # (The machine's conntrack may still hold other tests' closed or idle
    # connections between the same addresses: look for ours.)
    cut = {(c["from"], c["to"], c["service"], c["sport"]) for c in json.loads(plan.stdout)["cut"]}
    assert ("w1", "d1", "tcp/5432", revoked.client_port) in cut
    assert not {c for c in cut if c[:3] in {("d1", "w1", "tcp/80"), ("w2", "w1", "icmp")}}

    aside = policy.with_name("policy.yaml.tmp")
    aside.write_text(edited.read_text())
    aside.replace(policy)
    saved = time.monotonic()
    status = wait_policy(daemon.api, _sha(POLICY.replace(WEB_TO_DB, "")), timeout=5)
    enforced_ms = (status["policy"]["enforced_at"] - status["policy"]["saved_at"]) * 1000
    time.sleep(1.5)  # a cut connection stays cut; a live one keeps flowing

    cut_after = revoked.last() - saved
    assert cut_after < 1.0, f"the revoked stream still passed {cut_after:.3f} s after the save"
    assert revoked.flowing(saved - 0.2) and not revoked.flowing(saved + 1.0)
    assert kept.flowing(saved + 1.0)
    kept_gap = kept.longest_gap(saved - 0.5, saved + 1.0)
    ping.wait_replies(len(ping.replies()) + 20)
    stats = ping.stop()
    print(f"\nrevoked stream: last byte {cut_after * 1000:.0f} ms after the save "
          f"(policy enforced {enforced_ms:.0f} ms after the save); kept stream's longest "
          f"silence around the edit {kept_gap * 1000:.0f} ms; ping beside: {stats}")
    assert stats.lost == 0
    assert kept_gap < 0.5  # no stall: a TCP retransmission would take >= 200 ms
    assert daemon.stop() == 0


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
