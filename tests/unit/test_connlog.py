"""Connection logs, in the compiled tables (through the simulator) and in the
controller's records (sdnctl.live.connlog), without a switch.

The tables: a new connection under a rule with `log` is delivered *and* copied to
the controller, by a flow the rule owns (its cookie names the rule); its later
packets and its replies are not copied; a rule without `log` copies nothing; a
denied first packet is copied, by the tenant's flow, only with `log_denied`, and
still dropped; every copy goes through the switch's log meter.

The records: what a copy becomes (rule, VMs, 5-tuple, verdict), the file and its
rotation, and what is lost being counted (unparsed copies, a full writer queue,
the meters' drops).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdnctl.bindings import planned_bindings
from sdnctl.compile.acl import rule_owner
from sdnctl.compile.compiler import compile_network
from sdnctl.compile.connlog import LOG_METER
from sdnctl.flows import OFPP_CONTROLLER, Controller, cookie_of
from sdnctl.live.connlog import ConnectionLog, parse_ip
from sdnctl.policy.load import parse_policy
from sdnctl.policy.model import Proto, Service
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import PortRef
from sdnctl.verify.reach import _send, reply_packet, service_packet
from sdnctl.verify.simulate import Conntrack, Simulator, Trace

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
POLICY = (TOPOLOGIES / "three-tier.policy.yaml").read_text()
WEB_TO_APP = "      - {from: web, to: app, allow: [tcp/8080]}\n"
LOGGED = POLICY.replace(WEB_TO_APP, WEB_TO_APP.replace("]}", "], log: true}")).replace(
    "    default: deny\n", "    default: deny\n    log_denied: true\n")
APP = Service(Proto.TCP, 8080, 8080)
DB = Service(Proto.TCP, 5432, 5432)
TOPOLOGY = load_topology(TOPOLOGIES / "three-tier.topology.yaml")


def compiled(text: str):
    policy = parse_policy(text, "policy.yaml", TOPOLOGY)
    bindings = planned_bindings(policy, TOPOLOGY)
    return policy, bindings, Simulator(compile_network(policy, TOPOLOGY, bindings), TOPOLOGY)


def send(sim, policy, bindings, ct, src: str, dst: str, service: Service, *, syn: int = 1,
         reply: bool = False) -> tuple[bool, Trace]:
    """One packet of `src`'s connection to `dst` (a SYN, a later segment, or the
    reply): delivered?, and its trace."""
    a, b = policy.vms[src], policy.vms[dst]
    traces: list = []
    if not reply:
        ok = _send(sim, bindings, policy, a, b,
                   lambda mac: {**service_packet(service, a, str(b.ip), a.mac, mac),
                                "tcp_syn": syn}, ct, traces, "request")[0]
    else:
        first = service_packet(service, a, str(b.ip), a.mac, "00:00:00:00:00:00")
        ok = _send(sim, bindings, policy, b, a,
                   lambda mac: {**reply_packet(first, b.mac, mac), "tcp_syn": 0}, ct, traces,
                   "reply")[0]
    return ok, traces[-1][1]


def copies(trace: Trace) -> list[str]:
    """Owners of the flows that copied the packet to the controller."""
    sent = [ref for ref, _ in trace.delivered if ref.port == OFPP_CONTROLLER]
    owners = [s.flow.owner for s in trace.steps
              if s.flow is not None and any(isinstance(a, Controller) for a in s.flow.actions)]
    assert len(sent) == len(owners)
    return owners


@pytest.mark.parametrize("web", ["web1", "web2"], ids=["same-hypervisor", "across-fabric"])
def test_a_logged_rules_new_connection_is_delivered_and_copied_once(web):
    policy, bindings, sim = compiled(LOGGED)
    rule = next(r for r in policy.tenants["acme"].rules if r.dst == "app")
    ct = Conntrack()
    ok, trace = send(sim, policy, bindings, ct, web, "app1", APP)
    assert ok and copies(trace) == [rule_owner(rule)]
    # Conntrack calls a connection new until its first reply: after that, nothing
    # of it is copied (a retransmitted SYN before any reply is, as on a switch).
    for syn, reply in ((0, True), (0, False), (0, True), (0, False)):
        ok, trace = send(sim, policy, bindings, ct, web, "app1", APP, syn=syn, reply=reply)
        assert ok and copies(trace) == []


def test_a_rule_without_log_copies_nothing():
    policy, bindings, sim = compiled(LOGGED)
    ok, trace = send(sim, policy, bindings, Conntrack(), "app1", "db1", DB)
    assert ok and copies(trace) == []


def test_a_denied_first_packet_is_copied_by_the_tenants_flow_and_dropped():
    policy, bindings, sim = compiled(LOGGED)
    ok, trace = send(sim, policy, bindings, Conntrack(), "web1", "db1", DB)
    assert not ok and copies(trace) == ["tenant:acme"]


def test_without_log_keys_nothing_is_copied():
    policy, bindings, sim = compiled(POLICY)
    assert copies(send(sim, policy, bindings, Conntrack(), "web1", "app1", APP)[1]) == []
    assert copies(send(sim, policy, bindings, Conntrack(), "web1", "db1", DB)[1]) == []


def test_every_copy_goes_through_the_log_meter_every_hypervisor_has():
    policy, bindings, _ = compiled(LOGGED)
    flowsets = compile_network(policy, TOPOLOGY, bindings)
    for name, fs in flowsets.items():
        meters = {m.meter_id for m in fs.meters}
        has_vms = any(ref.switch == name for ref in bindings.ports.values())
        assert (LOG_METER in meters) == has_vms, name
        for f in fs.flows:
            for a in f.actions:
                if isinstance(a, Controller):
                    assert a.meter_id == LOG_METER


# ---- the records --------------------------------------------------------------------

def _frame(src: str, dst: str, proto: int, sport: int, dport: int) -> bytes:
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, proto, 0, 0])
    ip += bytes(int(x) for x in src.split(".")) + bytes(int(x) for x in dst.split("."))
    return bytes(12) + b"\x08\x00" + ip + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")


def test_a_copy_becomes_a_record_naming_the_rule_vms_and_five_tuple(tmp_path):
    policy, bindings, _ = compiled(LOGGED)
    rule = next(r for r in policy.tenants["acme"].rules if r.dst == "app")
    at: PortRef = bindings.ports["web1"]
    log = ConnectionLog(tmp_path / "c.jsonl")
    rec = log.add(policy, bindings, at.switch, at.port, cookie_of(rule_owner(rule)),
                  _frame("10.1.10.11", "10.1.20.11", 6, 40000, 8080), wall=0.25)
    assert rec is not None
    assert {k: rec[k] for k in ("time", "tenant", "verdict", "rule", "src_vm", "dst_vm",
                                "proto", "src_port", "dst_port")} == {
        "time": "1970-01-01T00:00:00.250Z", "tenant": "acme", "verdict": "allow",
        "rule": "web->app", "src_vm": "web1", "dst_vm": "app1", "proto": "tcp",
        "src_port": 40000, "dst_port": 8080}
    denied = log.add(policy, bindings, at.switch, at.port, cookie_of("tenant:acme"),
                     _frame("10.1.10.11", "10.1.30.11", 17, 5000, 53))
    assert denied is not None and (denied["verdict"], denied["rule"], denied["dst_vm"]) == (
        "deny", None, "db1")
    # Not an IP packet, or not from a log flow: counted, not recorded.
    assert log.add(policy, bindings, at.switch, at.port, cookie_of("tenant:acme"), b"x") is None
    assert log.add(policy, bindings, at.switch, at.port, 12345,
                   _frame("10.1.10.11", "10.1.30.11", 17, 5000, 53)) is None
    log.close()
    assert [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()] == [
        rec, denied]
    assert log.records() == [denied, rec]
    assert log.records(verdict="allow") == [rec]
    snap = log.snapshot()
    assert snap["records"] == {"allow": 1, "deny": 1} and snap["unparsed"] == 2


def test_the_file_moves_aside_past_its_size_and_a_full_queue_counts_drops(tmp_path):
    policy, bindings, _ = compiled(LOGGED)
    at = bindings.ports["web1"]
    frame = _frame("10.1.10.11", "10.1.30.11", 17, 5000, 53)
    log = ConnectionLog(tmp_path / "c.jsonl", max_bytes=2000)
    for _ in range(40):
        log.add(policy, bindings, at.switch, at.port, cookie_of("tenant:acme"), frame)
    log.close()
    assert (tmp_path / "c.jsonl.1").exists()
    kept = [*(tmp_path / "c.jsonl.1").read_text().splitlines(),
            *(tmp_path / "c.jsonl").read_text().splitlines()]
    assert len((tmp_path / "c.jsonl.1").read_text()) >= 2000
    assert 0 < len(kept) <= 40
    # A writer that cannot keep up: the queue is bounded, what does not fit is counted.
    slow = ConnectionLog(tmp_path / "d.jsonl", queue=0)
    slow.add(policy, bindings, at.switch, at.port, cookie_of("tenant:acme"), frame)
    slow.close()
    assert slow.snapshot()["writer_drops"] == 1 and len(slow.records()) == 1


def test_meter_drops_add_up_growth_per_switch_and_survive_a_reset():
    log = ConnectionLog()
    log.record_meter_drops("hv1", {LOG_METER: 10, 0x20000: 99})
    log.record_meter_drops("hv2", {LOG_METER: 5})
    log.record_meter_drops("hv1", {LOG_METER: 25})
    log.record_meter_drops("hv1", {LOG_METER: 3})  # the meter was re-added: from zero
    assert log.snapshot()["meter_drops"] == 10 + 5 + 15 + 3


def test_parse_ip_reads_ipv6_and_a_vlan_tag_and_refuses_the_rest():
    v6 = (bytes(12) + b"\x86\xdd" + bytes([0x60, 0, 0, 0, 0, 8, 58, 64])
          + bytes(15) + b"\x01" + bytes(15) + b"\x02" + bytes([128, 0, 0, 0]))
    got = parse_ip(v6)
    assert got is not None and (got.proto, got.src_ip, got.dst_ip, got.src_port) == (
        58, "::1", "::2", 128)
    tagged = _frame("10.0.0.1", "10.0.0.2", 6, 1, 2)
    tagged = tagged[:12] + b"\x81\x00\x00\x0a" + tagged[12:]
    assert parse_ip(tagged) is not None and parse_ip(tagged).dst_port == 2
    assert parse_ip(bytes(12) + b"\x08\x06" + bytes(28)) is None  # ARP
    assert parse_ip(bytes(20)) is None


def test_sdnctl_status_prints_the_logs_counters_when_it_logs() -> None:
    from sdnctl.render.status import render_status

    log = ConnectionLog().snapshot()
    assert "conn log" not in render_status({"connection_log": log})  # nothing to say
    log.update(records={"allow": 3, "deny": 7}, meter_drops=40, file="/var/log/c.jsonl")
    assert ("conn log  3 allowed, 7 denied recorded; lost 40 to the switches' meters, "
            "0 to the writer (/var/log/c.jsonl)") in render_status({"connection_log": log})
