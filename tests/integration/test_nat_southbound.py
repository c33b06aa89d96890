"""`ct(..., nat)` installed through the real southbound reads back equal.

Flows with every NAT form the IR has (source NAT to one address, plain `nat` with a
register zone and a recirculation, destination NAT to a range, NAT beside a ct_mark)
are installed as os-ken messages and as the fast encoder's bytes, in a bundle, then
dumped and decoded back into IR: equal (a one-address range too, however spelt),
and OVS's own reading says the same.
"""

from __future__ import annotations

import pytest

from sdnctl.diff import diff_flowsets
from sdnctl.flows import Ct, Flow, FlowSet, Goto, Match, Nat, Output
from sdnctl.southbound import ofp as sb
from tests.integration.test_southbound import Session

pytestmark = pytest.mark.ovs


def nat_flows() -> FlowSet:
    flows = [
        Flow("acl", 200, Match.of(eth_type=0x0800, reg5=1),
             (Ct(zone=4242, commit=True, nat=Nat("src", "203.0.113.10")), Output(2)),
             owner="nat:snat"),
        Flow("ct_out", 100, Match.of(eth_type=0x0800, reg5=2),
             (Ct(zone="reg5", table="acl", nat=Nat()),), owner="nat:unnat"),
        Flow("ct_out", 100, Match.of(eth_type=0x0800, reg5=3),
             (Ct(zone=4243, commit=True, table="acl",
                 nat=Nat("dst", "10.1.10.11", "10.1.10.14")),), owner="nat:dnat"),
        Flow("acl", 200, Match.of(eth_type=0x0800, reg5=4),
             (Ct(zone="reg5", commit=True, mark=0x2A, nat=Nat("src", "198.51.100.1")),
              Goto("l3_route")), owner="nat:marked"),
        # A one-address range spelt as a range: OVS keeps the maximum, prints one address.
        Flow("acl", 200, Match.of(eth_type=0x0800, reg5=5),
             (Ct(zone=9, commit=True, nat=Nat("dst", "10.1.10.20", "10.1.10.20")), Output(3)),
             owner="nat:one"),
    ]
    return sb.normalize_flowset(FlowSet.build("sw", flows))


@pytest.mark.parametrize("encoded", [False, True], ids=["messages", "encoded"])
def test_nat_flows_install_and_dump_back_equal(lab, encoded: bool, monkeypatch) -> None:
    bridge = lab.bridge(lab.random_dpid())
    s = Session(bridge)
    try:
        fs = nat_flows()
        if encoded:
            monkeypatch.setattr(sb.update, "ENCODED_ADDS_FROM", 0)
        plan = sb.plan_update(s.dp, diff_flowsets(None, fs), bundle_id=1, desired=fs)
        assert s.apply(plan) == []
        got, foreign = s.dump(fs)
    finally:
        s.close()
    assert foreign == []
    assert got == fs
    assert diff_flowsets(got, fs).empty
    text = lab.ofctl(bridge, "dump-flows")
    assert "ct(commit,zone=4242,nat(src=203.0.113.10)),output:2" in text
    assert "ct(table=3,zone=NXM_NX_REG5[0..15],nat)" in text
    assert "ct(commit,table=3,zone=4243,nat(dst=10.1.10.11-10.1.10.14))" in text
    # OVS prints a nat that is not the ct's first nested action inside exec().
    assert ("ct(commit,zone=NXM_NX_REG5[0..15],exec(set_field:0x2a->ct_mark,"
            "nat(src=198.51.100.1)))") in text
    assert "ct(commit,zone=9,nat(dst=10.1.10.20)),output:3" in text
