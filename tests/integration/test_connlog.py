"""Connection logs on real OVS with the real daemon (`sdnctl run --connection-log`).

- A connection opened under a rule with `log: true` is recorded once (not per
  packet), naming the rule, the VMs and the 5-tuple, in the API and in the file;
  a connection under a rule without `log` is not recorded.
- A denied first packet in a tenant with `log_denied: true` is recorded with
  verdict deny, and still dropped.
- A flood of denied packets is cut by the switch's log meter: the records stay
  within the meter's budget, and the meter's drops are counted, so records plus
  drops account for the flood.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from conftest import probe
from daemon_cmd import one_hypervisor

from sdnctl.client.api import get_json, get_metrics, wait_programmed
from sdnctl.compile.connlog import LOG_BURST, LOG_PPS
from sdnctl.pipeline import table_id

pytestmark = [pytest.mark.ovs]

POLICY = """\
version: 1
tenants:
  t1:
    log_denied: true
    segments:
      web: {vlan: 10, subnet: 10.9.10.0/24, gateway: 10.9.10.1}
      app: {vlan: 20, subnet: 10.9.20.0/24, gateway: 10.9.20.1}
    groups:
      web: {labels: {tier: web}}
      app: {labels: {tier: app}}
    rules:
      - {from: web, to: app, allow: [tcp/8080], log: true}
      - {from: app, to: web, allow: [icmp]}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:09:10:11", ip: 10.9.10.11, host: hv1,
       labels: {tier: web}}
  a1: {tenant: t1, segment: app, mac: "02:00:00:09:20:11", ip: 10.9.20.11, host: hv1,
       labels: {tier: app}}
"""
# UDP from one socket to one port: every packet is the first of a connection that
# is never committed (denied), so each is a denied first packet.
FLOOD = """\
import socket, sys, time
n, dst, rate = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
for i in range(n):
    s.sendto(b"x" * 18, (dst, 9999))
    if i % 50 == 49:  # paced: a veth loses most of an unpaced burst
        time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
print(time.monotonic() - start)
"""


def _network(lab, *options: str):
    log_file = lab.tmp / "connections.jsonl"
    bridge, daemon = one_hypervisor(lab, POLICY, "--connection-log", str(log_file),
                                    "--stats-interval", "1", *options)
    w1 = lab.vm(bridge, 100, "02:00:00:09:10:11", "10.9.10.11/24", gateway="10.9.10.1",
                vm_id="w1")
    a1 = lab.vm(bridge, 101, "02:00:00:09:20:11", "10.9.20.11/24", gateway="10.9.20.1",
                vm_id="a1")
    wait_programmed(daemon.api, ["hv1"], timeout=30)
    return daemon, log_file, w1, a1, bridge


def _records(api: str, want: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        records = get_json(api, "/connections?limit=1000")["records"]
        if len(records) >= want or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def test_logged_rule_records_each_new_connection_once_and_denials_with_their_verdict(lab):
    daemon, log_file, w1, a1, _ = _network(lab)
    lab.serve(a1, "tcp/8080")
    assert probe(w1, "10.9.20.11", "tcp/8080")  # allowed, and logged
    assert probe(a1, "10.9.10.11", "icmp")  # allowed by a rule without log
    assert not probe(w1, "10.9.20.11", "tcp/22", timeout=1.0)  # denied, logged

    records = _records(daemon.api, 2)
    allowed = [r for r in records if r["verdict"] == "allow"]
    denied = [r for r in records if r["verdict"] == "deny"]
    # One record for the connection (its SYN), none for its other packets, none for
    # the ping under the rule without log.
    assert len(allowed) == 1, records
    rec = allowed[0]
    assert (rec["tenant"], rec["rule"], rec["src_vm"], rec["dst_vm"]) == ("t1", "web->app",
                                                                         "w1", "a1")
    assert (rec["proto"], rec["src_ip"], rec["dst_ip"], rec["dst_port"]) == (
        "tcp", "10.9.10.11", "10.9.20.11", 8080)
    assert rec["rule_lines"] == [12]  # where the rule is written
    # The SYN is retried while it is refused: every copy is a first packet, denied.
    assert denied and all((r["tenant"], r["rule"], r["src_vm"], r["dst_vm"], r["dst_port"])
                          == ("t1", None, "w1", "a1", 22) for r in denied), denied
    # The file holds the same records, as JSON lines.
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(x) for x in log_file.read_text().splitlines()] \
            if log_file.exists() else []
        if len(lines) >= len(records) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(map(json.dumps, lines)) == sorted(map(json.dumps, records))
    counters = get_json(daemon.api, "/status")["connection_log"]
    assert counters["records"] == {"allow": 1, "deny": len(denied)}
    assert counters["writer_drops"] == 0 and counters["unparsed"] == 0
    # The switch holds the log flows as compiled: read back (the metered controller
    # action decoded), they equal intent.
    res = subprocess.run([sys.executable, "-m", "sdnctl.cli", "verify", "--api", daemon.api],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "0 differences" in res.stdout, res.stdout + res.stderr


def _copied(lab, bridge: str) -> int:
    """Packets the switch's denied-first-packet log flow took (each one copied or
    refused by the meter)."""
    for line in lab.ofctl(bridge, "dump-flows", f"table={table_id('acl')}").splitlines():
        if "priority=102" in line and "controller(meter_id=" in line:
            return int(line.split("n_packets=")[1].split(",")[0])
    raise AssertionError("no log flow for denied packets")


def test_a_flood_of_denied_packets_is_cut_by_the_meter_and_counted(lab):
    daemon, _, w1, a1, bridge = _network(lab)
    sent = 6000
    took = float(w1.run("python3", "-c", FLOOD, str(sent), "10.9.20.11", "3000", timeout=60))
    copied, deadline = -1, time.monotonic() + 15
    while time.monotonic() < deadline:  # OVS pushes datapath counters to flows lazily
        time.sleep(1.5)
        now = _copied(lab, bridge)
        if now == copied:
            break
        copied = now
    budget = LOG_BURST + LOG_PPS * (took + 1) + 50  # what the meter lets through, and slack
    assert copied > 2 * budget, (copied, sent)  # the flood reached the switch
    deadline = time.monotonic() + 15
    while True:  # a stats poll (every 1 s here) reads the meter after the flood
        status = get_json(daemon.api, "/status")
        counters = status["connection_log"]
        logged, dropped = counters["records"]["deny"], counters["meter_drops"]
        by_policy = status["counters"]["dropped_packets"].get("t1", {}).get("acl", 0)
        if (logged + dropped >= copied and by_policy >= copied) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # A logged denial is still a denial in the dropped-by-policy counters.
    assert by_policy >= copied, (by_policy, copied)
    metrics = get_metrics(daemon.api)
    assert f'sdnctl_connection_log_lost_total{{reason="meter"}} {dropped}' in metrics
    assert f'sdnctl_connection_log_records_total{{verdict="deny"}} {logged}' in metrics
    # What the meter lets through: its burst plus its rate over the flood (and slack
    # for timing); every other packet the flow took is counted as the meter's drop.
    assert logged <= budget, (logged, took)
    assert logged + dropped == copied, (logged, dropped, copied)
    # The flood's packets were dropped, and the rest of the network is unhurt.
    assert probe(a1, "10.9.10.11", "icmp")
