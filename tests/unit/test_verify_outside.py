"""`verify` holds the outside cells too: VMs to external addresses and back, and
external addresses to floating IPs, against the policy."""

from __future__ import annotations

from pathlib import Path

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flows import Ct, Flow, FlowSet, Goto, Match
from sdnctl.pipeline import REG_SIDE, REG_ZONE, SIDE_OUT
from sdnctl.policy.load import load_policy
from sdnctl.topology.load import load_topology
from sdnctl.verify.live import verify_offline
from sdnctl.verify.outside import router_learned, sample_addresses

ROOT = Path(__file__).resolve().parents[2] / "topologies"


def _network():
    topo = load_topology(ROOT / "northsouth.topology.yaml")
    policy = load_policy(ROOT / "northsouth.policy.yaml", topo)
    bindings = router_learned(planned_bindings(policy, topo), topo)
    return policy, topo, bindings, compile_network(policy, topo, bindings)


def test_the_example_passes_with_every_outside_cell_checked():
    policy, topo, bindings, flows = _network()
    report = verify_offline(policy, topo, bindings, flows)
    assert report.ok, report.to_text()
    assert report.outside.probes > 0
    # a host of the partner CIDR and an address no rule names
    assert "198.51.100.1" in report.outside.addresses
    assert any(not a.startswith("198.51.100.") for a in report.outside.addresses)


def test_a_gateway_that_drops_a_floating_ip_is_caught():
    policy, topo, bindings, flows = _network()
    broken = {}
    for name, fs in flows.items():
        kept = [f for f in fs.flows if not (f.stage == "l3_route" and f.priority == 250)]
        broken[name] = FlowSet.of(name, kept, fs.groups, fs.meters)
    report = verify_offline(policy, topo, bindings, broken)
    assert not report.ok
    assert {(m.direction, m.dst) for m in report.outside.mismatches} >= {("in", "web1")}
    assert all(m.promised and not m.measured for m in report.outside.mismatches)


def test_a_hypervisor_that_lets_everything_out_is_caught():
    """A rogue flow on hv2 passes whatever is going out: web2 and app1 reach
    addresses no rule gives them."""
    policy, topo, bindings, flows = _network()
    rogue = Flow("acl", 180, Match.of({REG_SIDE: SIDE_OUT}, eth_type=0x0800),
                 (Ct(zone=REG_ZONE, commit=True), Goto("l3_route")), "rogue")
    hv2 = flows["hv2"]
    table = sorted([*hv2.flows, rogue], key=lambda f: f.sort_key)  # as read from a switch
    broken = dict(flows, hv2=FlowSet.of("hv2", table, hv2.groups, hv2.meters))
    report = verify_offline(policy, topo, bindings, broken)
    leaks = {(m.src, m.dst) for m in report.outside.mismatches if m.measured}
    assert ("web2", "192.0.2.1") in leaks
    assert all(m.direction == "out" and not m.promised for m in report.outside.mismatches)


def test_sample_addresses_stand_for_every_cidr_and_the_rest():
    policy, _, _, _ = _network()
    addresses = sample_addresses(policy)
    assert {"198.51.100.1", "198.51.100.254"} <= set(addresses)
    assert len(addresses) == 3
