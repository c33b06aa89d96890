"""Security properties of the compiled pipeline, asked through the simulator, each
written so that one deliberate bug makes it fail (tests/mutate.py runs those bugs):

- port security checks every field (source MAC, IPv4 source, ARP sender MAC and
  IP) on its own, in a default-allow tenant (so the ACL cannot hide a missing
  check), towards a VM on the same hypervisor and across the fabric;
- a connection is committed at both ends: without the commit, the reply is not
  `+est` and TCP breaks (conntrack modelled on OVS: a SYN-ACK opens nothing);
- a packet conntrack calls invalid is dropped by the source's ACL, before it
  crosses the fabric; rules sit below the est/inv flows.
"""

from __future__ import annotations

import pytest

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flows import OFPP_CONTROLLER, FlowSet, Meter
from sdnctl.policy.load import load_policy
from sdnctl.policy.model import Proto, Service
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import PortRef
from sdnctl.verify.reach import probe, reply_packet, service_packet
from sdnctl.verify.simulate import TCP_ACK, TCP_SYN, Conntrack, Simulator

TOPOLOGY = """\
version: 1
switches:
  hv1:  {dpid: 1, role: hypervisor}
  hv2:  {dpid: 2, role: hypervisor}
  leaf: {dpid: 16, role: fabric}
links:
  - {a: "hv1:10", b: "leaf:1"}
  - {a: "hv2:10", b: "leaf:2"}
"""
POLICY = """\
version: 1
tenants:
  open:
    default: allow
    segments:
      lan: {vlan: 10, subnet: 10.0.10.0/24, gateway: 10.0.10.1}
  shop:
    default: deny
    segments:
      front: {vlan: 20, subnet: 10.0.20.0/24, gateway: 10.0.20.1}
      back:  {vlan: 30, subnet: 10.0.30.0/24, gateway: 10.0.30.1}
    groups:
      front: {labels: {tier: front}}
      back:  {labels: {tier: back}}
    rules:
      - {from: front, to: back, allow: [tcp/80, icmp]}
vms:
  o1: {tenant: open, segment: lan, mac: "02:00:00:00:10:01", ip: 10.0.10.11, host: hv1}
  o2: {tenant: open, segment: lan, mac: "02:00:00:00:10:02", ip: 10.0.10.12, host: hv1}
  o3: {tenant: open, segment: lan, mac: "02:00:00:00:10:03", ip: 10.0.10.13, host: hv2}
  f1: {tenant: shop, segment: front, mac: "02:00:00:00:20:01", ip: 10.0.20.11,
       labels: {tier: front}, host: hv1}
  b1: {tenant: shop, segment: back, mac: "02:00:00:00:30:01", ip: 10.0.30.11,
       labels: {tier: back}, host: hv1}
  b2: {tenant: shop, segment: back, mac: "02:00:00:00:30:02", ip: 10.0.30.12,
       labels: {tier: back}, host: hv2}
"""
TCP80 = Service(Proto.TCP, 80, 80)
ICMP = Service(Proto.ICMP, 0, 0)
# (victim on the same hypervisor as o1, victim across the fabric)
VICTIMS = ["o2", "o3"]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    d = tmp_path_factory.mktemp("net")
    (d / "t.yaml").write_text(TOPOLOGY)
    (d / "p.yaml").write_text(POLICY)
    topo = load_topology(d / "t.yaml")
    policy = load_policy(d / "p.yaml", topo)
    bindings = planned_bindings(policy, topo)
    flows = compile_network(policy, topo, bindings)
    return policy, topo, bindings, Simulator(flows, topo)


def _send(net, src: str, pkt: dict, ct: Conntrack | None = None):
    policy, topo, bindings, sim = net
    return sim.inject(bindings.ports[src], pkt, ct if ct is not None else Conntrack())


def _delivered_to(net, trace, vm: str) -> bool:
    _, _, bindings, _ = net
    return any(ref == bindings.ports[vm] for ref, _ in trace.delivered)


def _tcp(net, src: str, dst: str, **changes) -> dict:
    policy = net[0]
    a, b = policy.vms[src], policy.vms[dst]
    return {**service_packet(TCP80, a, str(b.ip), a.mac, b.mac), **changes}


def _arp(net, src: str, target: str, **changes) -> dict:
    policy = net[0]
    a = policy.vms[src]
    return {"eth_src": a.mac, "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x0806,
            "arp_op": 1, "arp_sha": a.mac, "arp_spa": str(a.ip),
            "arp_tha": "00:00:00:00:00:00", "arp_tpa": str(policy.vms[target].ip), **changes}


# ---- port security, field by field, in a default-allow tenant --------------------


@pytest.mark.parametrize("victim", VICTIMS)
def test_the_honest_packet_gets_through(net, victim):
    """The control: what the spoofing tests change is the only reason they drop."""
    assert _delivered_to(net, _send(net, "o1", _tcp(net, "o1", victim)), victim)


@pytest.mark.parametrize("victim", VICTIMS)
@pytest.mark.parametrize("field,value", [
    ("eth_src", "02:00:00:00:10:03"),  # another VM's MAC, own IP
    ("eth_src", "02:00:00:66:66:66"),  # a made-up MAC
    ("ipv4_src", "10.0.10.13"),  # another VM's IP, own MAC
    ("ipv4_src", "10.0.10.99"),  # a free address of the segment
])
def test_a_forged_source_is_dropped_at_the_port(net, victim, field, value):
    trace = _send(net, "o1", _tcp(net, "o1", victim, **{field: value}))
    assert trace.delivered == []
    assert [s.stage for s in trace.dropped_at] == ["port_security"]


@pytest.mark.parametrize("victim", VICTIMS)
def test_an_honest_arp_request_is_answered(net, victim):
    policy, _, bindings, _ = net
    trace = _send(net, "o1", _arp(net, "o1", victim))
    [(ref, reply)] = trace.delivered
    assert ref == bindings.ports["o1"] and reply["arp_sha"] == policy.vms[victim].mac


@pytest.mark.parametrize("victim", VICTIMS)
@pytest.mark.parametrize("field,value", [
    ("arp_sha", "02:00:00:00:10:03"),  # claims another VM's MAC as sender
    ("arp_spa", "10.0.10.13"),  # claims another VM's IP as sender
    ("eth_src", "02:00:00:00:10:03"),  # honest ARP, forged frame source
])
def test_arp_with_a_forged_sender_is_dropped_not_answered(net, victim, field, value):
    trace = _send(net, "o1", _arp(net, "o1", victim, **{field: value}))
    assert trace.delivered == []
    assert [s.stage for s in trace.dropped_at] == ["port_security"]


# ---- conntrack: commits at both ends, +inv, priorities -----------------------------


@pytest.mark.parametrize("src,dst,service", [
    ("f1", "b1", TCP80), ("f1", "b2", TCP80), ("f1", "b2", ICMP),  # by rule
    ("o1", "o2", TCP80), ("o1", "o3", TCP80),  # by the tenant's default
])
def test_an_allowed_connection_opens_and_its_reply_comes_back(net, src, dst, service):
    """Request delivered and reply back: needs the commit in the source zone (the
    reply must be +est at the source's ct_in) and in the destination zone (the
    SYN-ACK must be +est at the destination's ct_out); a SYN-ACK opens nothing."""
    policy, _, bindings, sim = net
    result = probe(sim, policy, bindings, src, dst, service)
    assert result.delivered and result.reached, result.reason


@pytest.mark.parametrize("dst", ["b1", "b2"])
def test_the_handshake_completes_and_data_flows_both_ways(net, dst):
    ct = Conntrack()
    syn = _tcp(net, "f1", dst, eth_dst="0e:00:00:00:00:14")
    assert _delivered_to(net, _send(net, "f1", syn, ct), dst)
    synack = reply_packet(syn, net[0].vms[dst].mac, "0e:00:00:00:00:1e")
    assert _delivered_to(net, _send(net, dst, synack, ct), "f1")
    ack = dict(syn, tcp_flags=TCP_ACK)
    assert _delivered_to(net, _send(net, "f1", ack, ct), dst)
    data = dict(synack, tcp_flags=TCP_ACK | 0x08)
    assert _delivered_to(net, _send(net, dst, data, ct), "f1")


@pytest.mark.parametrize("dst", ["b1", "b2"])
def test_the_server_cannot_open_a_connection_back(net, dst):
    """b → f is not allowed: b's SYN is denied, and a SYN-ACK with no connection
    behind it is +inv, not the reply of anything."""
    policy = net[0]
    b, f = policy.vms[dst], policy.vms["f1"]
    back = service_packet(TCP80, b, str(f.ip), b.mac, "0e:00:00:00:00:14")
    assert not _delivered_to(net, _send(net, dst, back), "f1")
    forged = dict(back, tcp_src=80, tcp_dst=40000, tcp_flags=TCP_SYN | TCP_ACK)
    assert not _delivered_to(net, _send(net, dst, forged), "f1")


@pytest.mark.parametrize("flags", [TCP_SYN | TCP_ACK, 0x00, 0x01, TCP_SYN | 0x01])
def test_an_invalid_packet_is_dropped_by_the_source_acl(net, flags):
    """To an allowed service, a segment conntrack calls invalid (no connection
    behind a SYN-ACK; no flags; FIN alone; SYN+FIN) stops in the source's acl, at
    the +inv flow (above the rules), and never crosses the fabric."""
    trace = _send(net, "f1", _tcp(net, "f1", "b2", eth_dst="0e:00:00:00:00:14", tcp_flags=flags))
    assert trace.delivered == []
    [drop] = trace.dropped_at
    assert (drop.switch, drop.stage) == ("hv1", "acl")
    assert drop.flow is not None and drop.flow.match.get("ct_state") == "+inv+trk"
    assert {s.switch for s in trace.steps} == {"hv1"}


def test_a_reply_from_a_denied_direction_is_est_and_passes(net):
    """Priorities: an established reply passes the acl even though no rule allows
    its direction (the est flow sits above the tenant's drop)."""
    ct = Conntrack()
    syn = _tcp(net, "f1", "b2", eth_dst="0e:00:00:00:00:14")
    assert _delivered_to(net, _send(net, "f1", syn, ct), "b2")
    synack = reply_packet(syn, net[0].vms["b2"].mac, "0e:00:00:00:00:1e")
    trace = _send(net, "b2", synack, ct)
    acl = [s for s in trace.steps if s.switch == "hv2" and s.stage == "acl"]
    assert acl and acl[0].flow is not None and "+est" in str(acl[0].flow.match.get("ct_state"))
    assert _delivered_to(net, trace, "f1")


# ---- forwarding details the simulator must get as OVS does -------------------------


def test_a_frame_is_never_sent_back_out_of_the_port_it_came_in_on(net):
    """The leaf gets, from hv1, a frame labelled for hv1 itself: OpenFlow's
    output:N to the in_port sends nothing (only IN_PORT would), so it goes nowhere."""
    policy, topo, bindings, sim = net
    o1, o2 = policy.vms["o1"], policy.vms["o2"]
    label = 16 + topo.switches["hv1"].dpid
    frame = {"eth_src": o1.mac, "eth_dst": o2.mac, "eth_type": 0x8847, "vlan_vid": 10,
             "mpls_label": label, "ipv4_src": str(o1.ip), "ipv4_dst": str(o2.ip),
             "ip_proto": 6, "tcp_src": 40000, "tcp_dst": 80, "ip_ttl": 64}
    back = PortRef("leaf", 1)
    trace = sim.inject(back, frame)
    assert trace.delivered == [] and {s.switch for s in trace.steps} == {"leaf"}
    # The same frame from hv2's side does reach hv1, and o2.
    assert _delivered_to(net, sim.inject(PortRef("leaf", 2), frame), "o2")


@pytest.mark.parametrize("ttl,routed", [(1, False), (2, True)])
def test_a_routed_packet_whose_ttl_runs_out_goes_to_the_router_itself(net, ttl, routed):
    """f1 (front) to b1 (back) is routed: at TTL 1 the router would discard it, so it
    goes, through f1's own meter, to the controller (which answers "time exceeded"),
    never to b1 or the fabric; TTL 2 arrives with 1."""
    trace = _send(net, "f1", _tcp(net, "f1", "b1", eth_dst="0e:00:00:00:00:14", ip_ttl=ttl))
    assert _delivered_to(net, trace, "b1") is routed
    if routed:
        [(_, pkt)] = trace.delivered
        assert pkt["ip_ttl"] == ttl - 1
    else:
        assert [ref for ref, _ in trace.delivered] == [PortRef("hv1", OFPP_CONTROLLER)]
        assert [s.stage for s in trace.steps] == ["port_security", "dhcp"]
        assert isinstance(trace.steps[0].flow.actions[0], Meter)


@pytest.mark.parametrize("gateway,ttl", [("0e:00:00:00:00:1e", 1), ("0e:00:00:00:00:14", 0)])
def test_an_expired_packet_the_router_does_not_answer_stops_in_it(net, gateway, ttl):
    """Sent to the back segment's gateway MAC rather than its own (only a VM's own
    gateway is answered for), or with TTL 0 (which OVS cannot tell from 1 in one
    masked match, and no sender uses), an f1 packet is discarded by the router's
    dec_ttl in l3_route, as OVS does, silently."""
    trace = _send(net, "f1", _tcp(net, "f1", "b1", eth_dst=gateway, ip_ttl=ttl))
    assert trace.delivered == []
    assert [(s.switch, s.stage) for s in trace.dropped_at] == [("hv1", "l3_route")]


@pytest.mark.parametrize("victim", VICTIMS)
def test_ttl_one_inside_a_segment_is_switched_not_answered(net, victim):
    """Only the router decrements TTL: a TTL-1 packet to a VM of the same segment is
    delivered as it is, and nothing goes to the controller."""
    trace = _send(net, "o1", _tcp(net, "o1", victim, ip_ttl=1))
    assert [ref for ref, _ in trace.delivered] == [net[2].ports[victim]]
    assert trace.delivered[0][1]["ip_ttl"] == 1


# ---- IP fragments never reach conntrack ------------------------------------------
# OVS 3.1's userspace conntrack holds fragments to reassemble them and later hands
# them to whatever batch passes conntrack next (see sdnctl/compile/conntrack.py), so
# the only safe fragment is one that never gets there.

FIRST_FRAGMENT, LATER_FRAGMENT = 1, 3  # OVS's ip_frag: a fragment; and not the first


@pytest.mark.parametrize("victim", VICTIMS)
@pytest.mark.parametrize("frag", [FIRST_FRAGMENT, LATER_FRAGMENT])
def test_an_ip_fragment_stops_before_conntrack(net, victim, frag):
    """Even under default allow, to a VM beside it or across the fabric: dropped in
    ct_out, with no conntrack action run on the way."""
    later = {"tcp_dst": 0, "tcp_src": 0, "tcp_flags": 0} if frag == LATER_FRAGMENT else {}
    trace = _send(net, "o1", _tcp(net, "o1", victim, ip_frag=frag, **later))
    assert trace.delivered == []
    [drop] = trace.dropped_at
    assert (drop.switch, drop.stage) == ("hv1", "ct_out")
    assert [s.stage for s in trace.steps] == ["port_security", "ct_out"]


def test_the_receiving_end_drops_fragments_on_its_own(net):
    """A fragment that got past the sender's switch (its ct_out drop removed here)
    still stops at the receiver's ct_in, before that switch's conntrack."""
    policy, topo, bindings, sim = net
    hv1 = sim.flowsets["hv1"]
    kept = [f for f in hv1.flows if not (f.stage == "ct_out" and f.match.get("ip_frag"))]
    assert len(kept) == len(hv1.flows) - 1
    flowsets = dict(sim.flowsets, hv1=FlowSet.of("hv1", kept, hv1.groups, hv1.meters))
    leaky = Simulator(flowsets, topo)
    trace = leaky.inject(bindings.ports["o1"], _tcp(net, "o1", "o3", ip_frag=FIRST_FRAGMENT),
                         Conntrack())
    assert trace.delivered == []
    [drop] = trace.dropped_at
    assert (drop.switch, drop.stage) == ("hv2", "ct_in")
    assert not [s for s in trace.steps if s.switch == "hv2" and s.stage == "deliver"]
