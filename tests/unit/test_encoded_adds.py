"""Flow adds encoded once per shared fragment are the bytes os-ken would send."""

from __future__ import annotations

from pathlib import Path

from os_ken.ofproto import ofproto_protocol
from os_ken.ofproto import ofproto_v1_3 as ofp

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.diff import diff_flowsets
from sdnctl.policy.load import load_policy
from sdnctl.southbound import ofp as sb
from sdnctl.southbound.ofp import encoded
from sdnctl.topology.load import load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


class FakeDatapath(ofproto_protocol.ProtocolDesc):
    """What `send_outgoing` uses of os-ken's Datapath: xids, send_msg, send(bytes)."""

    def __init__(self) -> None:
        super().__init__(ofp.OFP_VERSION)
        self.xid = 100
        self.sent: list[bytes] = []

    def set_xid(self, msg) -> int:
        self.xid = (self.xid + 1) & self.ofproto.MAX_XID
        msg.set_xid(self.xid)
        return self.xid

    def send_msg(self, msg) -> None:
        if msg.xid is None:
            self.set_xid(msg)
        msg.serialize()
        self.send(bytes(msg.buf))

    def send(self, buf: bytes) -> None:
        self.sent.append(buf)


def network(name: str = "leaf-spine"):
    topo = load_topology(TOPOLOGIES / f"{name}.topology.yaml")
    policy = load_policy(TOPOLOGIES / f"{name}.policy.yaml", topo)
    return compile_network(policy, topo, planned_bindings(policy, topo))


def sent(fs, bundle_id, desired, monkeypatch, threshold: int) -> list[bytes]:
    monkeypatch.setattr(sb.update, "ENCODED_ADDS_FROM", threshold)
    dp = FakeDatapath()
    plan = sb.plan_update(dp, diff_flowsets(None, fs), bundle_id=bundle_id, desired=desired)
    for out in plan:
        sb.send_outgoing(dp, out)
    return dp.sent


def test_encoded_adds_are_byte_for_byte_what_os_ken_sends(monkeypatch):
    flows = network()
    for name, fs in flows.items():
        for bundle_id in (None, 7):
            as_messages = sent(fs, bundle_id, None, monkeypatch, 0)
            as_bytes = sent(fs, bundle_id, fs, monkeypatch, 0)
            assert len(as_bytes) > 10 and as_bytes == as_messages, name


def test_a_fragment_shared_by_switches_is_encoded_once(monkeypatch):
    flows = network()
    calls: list[object] = []
    real = encoded.encode_add
    monkeypatch.setattr(encoded, "encode_add", lambda f: calls.append(f) or real(f))
    hypervisors = [fs for name, fs in flows.items() if name.startswith("hv")]
    shared = {id(p) for p in hypervisors[0].parts} & {id(p) for p in hypervisors[1].parts}
    assert shared, "the example's hypervisors share fragments"
    for fs in hypervisors:
        sent(fs, 1, fs, monkeypatch, 0)
    assert len(calls) == len({id(f) for f in calls})  # no flow object encoded twice
    distinct = {id(f) for fs in hypervisors for frag in fs.fragments() for f in frag.flows}
    assert len(calls) <= len(distinct)


def test_each_add_is_os_kens_bytes_for_every_example_flow():
    """The add built from cached TLVs and instructions equals os-ken's whole message,
    for every flow of every example network and of the hostile lab (masked fields,
    ip_frag after its prerequisite, conjunctions, ct with marks, groups, meters)."""
    hostile = TOPOLOGIES.parent / "sdnctl" / "lab" / "attacks" / "data"
    pairs = [(p.with_name(p.name.replace(".policy.", ".topology.")), p)
             for p in [*sorted(TOPOLOGIES.glob("*.policy.yaml")), hostile / "hostile.policy.yaml"]]
    seen = 0
    for topo_path, policy_path in pairs:
        topo = load_topology(topo_path)
        policy = load_policy(policy_path, topo)
        for fs in compile_network(policy, topo, planned_bindings(policy, topo)).values():
            for f in fs.flows:
                assert encoded.encode_add(f) == encoded.encode_add_os_ken(f), f
                seen += 1
    assert seen > 500


def test_nat_flows_are_os_kens_bytes_alone_and_in_bundles(monkeypatch):
    """ct with nat nested (os-ken leaves the nested action's padding to what follows
    it in a whole message): each add alone, and a FlowSet's plan as and without bytes."""
    from sdnctl.flows import FlowSet
    from tests.unit.test_nat_actions import _nat_flows

    flows = _nat_flows()
    for f in flows:
        assert encoded.encode_add(f) == encoded.encode_add_os_ken(f), f
    fs = FlowSet.build("gw", flows)
    for bundle_id in (None, 7):
        as_messages = sent(fs, bundle_id, None, monkeypatch, 0)
        as_bytes = sent(fs, bundle_id, fs, monkeypatch, 0)
        assert len(as_bytes) >= len(flows) and as_bytes == as_messages
