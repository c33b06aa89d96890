"""Revocation: an edit that stops allowing a connection cuts it, established or not.

Asked through the simulator, with one conntrack carried from the old tables to the
new ones, as a switch keeps its conntrack across a flow update.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.policy.load import parse_policy
from sdnctl.policy.model import Proto, Service
from sdnctl.topology.load import load_topology
from sdnctl.verify.reach import _send, probe, reply_packet, service_packet
from sdnctl.verify.simulate import Conntrack, Simulator

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
POLICY = (TOPOLOGIES / "three-tier.policy.yaml").read_text()
WEB_TO_APP = "      - {from: web, to: app, allow: [tcp/8080]}\n"
APP = Service(Proto.TCP, 8080, 8080)
DB = Service(Proto.TCP, 5432, 5432)


def compiled(text: str):
    topo = load_topology(TOPOLOGIES / "three-tier.topology.yaml")
    policy = parse_policy(text, "policy.yaml", topo)
    bindings = planned_bindings(policy, topo)
    return policy, bindings, Simulator(compile_network(policy, topo, bindings), topo)


def data(sim, policy, bindings, ct, src: str, dst: str, service: Service, *, reply: bool) -> bool:
    """One mid-stream segment (no SYN) of the connection `src` opened to `dst`
    (`reply`: sent by `dst` back to `src`); delivered?"""
    a, b = policy.vms[src], policy.vms[dst]

    def request(mac: str) -> dict:
        return {**service_packet(service, a, str(b.ip), a.mac, mac), "tcp_syn": 0}

    if not reply:
        return _send(sim, bindings, policy, a, b, request, ct, [], "data")[0]
    first = request("00:00:00:00:00:00")
    return _send(sim, bindings, policy, b, a,
                 lambda mac: {**reply_packet(first, b.mac, mac), "tcp_syn": 0}, ct, [],
                 "reply data")[0]


@pytest.fixture
def revoked():
    """web1 (hv1) and web2 (hv2) each hold a connection to app1 (hv1), and app1 one
    to db1 (hv2); then web -> app is removed."""
    assert WEB_TO_APP in POLICY
    policy, bindings, before = compiled(POLICY)
    ct = Conntrack()
    for src, dst, service in (("web1", "app1", APP), ("web2", "app1", APP), ("app1", "db1", DB)):
        assert probe(before, policy, bindings, src, dst, service, ct).reached
        assert data(before, policy, bindings, ct, src, dst, service, reply=False)
    _, _, after = compiled(POLICY.replace(WEB_TO_APP, ""))
    return policy, bindings, before, after, ct


@pytest.mark.parametrize("web", ["web1", "web2"], ids=["same-hypervisor", "across-fabric"])
def test_a_revoked_connection_stops_in_both_directions(revoked, web):
    policy, bindings, _, after, ct = revoked
    assert not data(after, policy, bindings, ct, web, "app1", APP, reply=False)
    assert not data(after, policy, bindings, ct, web, "app1", APP, reply=True)


def test_a_connection_still_allowed_is_untouched(revoked):
    policy, bindings, _, after, ct = revoked
    for reply in (False, True, False, True):
        assert data(after, policy, bindings, ct, "app1", "db1", DB, reply=reply)


def test_allowing_again_revives_a_revoked_connection(revoked):
    policy, bindings, before, after, ct = revoked
    assert not data(after, policy, bindings, ct, "web2", "app1", APP, reply=False)
    assert data(before, policy, bindings, ct, "web2", "app1", APP, reply=False)
    assert data(before, policy, bindings, ct, "web2", "app1", APP, reply=True)


def test_a_default_allow_tenant_turned_deny_cuts_what_no_rule_allows():
    open_policy = POLICY.replace("default: deny", "default: allow")
    policy, bindings, before = compiled(open_policy)
    ct = Conntrack()
    ssh = Service(Proto.TCP, 22, 22)
    assert probe(before, policy, bindings, "db1", "web2", ssh, ct).reached  # no rule needed
    _, _, after = compiled(POLICY)
    assert not data(after, policy, bindings, ct, "db1", "web2", ssh, reply=False)
    assert not data(after, policy, bindings, ct, "db1", "web2", ssh, reply=True)
