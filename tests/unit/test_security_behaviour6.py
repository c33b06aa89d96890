"""IPv6 security properties of the compiled pipeline, asked through the simulator,
each written so that one deliberate bug makes it fail (tests/mutate.py runs those):

- port security checks the IPv6 source address (only the VM's ip6 for traffic; its
  link-local only for solicitations), the source MAC and the tag, in a
  default-allow tenant, towards a VM beside it and across the fabric;
- ICMPv6 that only routers or the network may send (router advertisements,
  neighbour advertisements, redirects, MLD) and DHCPv6 server messages stop at
  the VM's port, whatever conntrack would say later;
- neighbour solicitations reach the controller only from the VM's own addresses,
  never duplicate address detection probes, and the controller answers with the
  target's MAC from the bindings, to the asker;
- IPv6 fragments never reach conntrack; IPv6 crossing the fabric arrives as IPv6.
"""

from __future__ import annotations

from ipaddress import IPv6Address
from types import MappingProxyType

import pytest

from sdnctl.bindings import Bindings, planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flows import OFPP_CONTROLLER, FlowSet, Meter
from sdnctl.nd.answer import answer_solicitation, router_info
from sdnctl.nd.wire import NEIGHBOR_SOLICIT, ROUTER_SOLICIT, Solicitation
from sdnctl.pipeline import gateway_mac
from sdnctl.policy.ipv6 import link_local
from sdnctl.policy.load import load_policy
from sdnctl.policy.model import Proto, Service
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import PortRef
from sdnctl.verify.reach import as_ipv6, probe, service_packet
from sdnctl.verify.simulate import Conntrack, Simulator
from tests.unit.test_security_behaviour import TOPOLOGY  # the same two hypervisors

POLICY = """\
version: 1
tenants:
  open:
    default: allow
    segments:
      lan: {vlan: 10, subnet: 10.0.10.0/24, gateway: 10.0.10.1,
            subnet6: "2001:db8:10::/64", gateway6: "2001:db8:10::1"}
  shop:
    default: deny
    segments:
      front: {vlan: 20, subnet: 10.0.20.0/24, gateway: 10.0.20.1,
              subnet6: "2001:db8:20::/64", gateway6: "2001:db8:20::1"}
      back:  {vlan: 30, subnet: 10.0.30.0/24, gateway: 10.0.30.1,
              subnet6: "2001:db8:30::/64", gateway6: "2001:db8:30::1"}
      v4only: {vlan: 40, subnet: 10.0.40.0/24, gateway: 10.0.40.1,
               subnet6: "2001:db8:40::/64"}
    groups:
      front: {labels: {tier: front}}
      back:  {labels: {tier: back}}
    rules:
      - {from: front, to: back, allow: [tcp/80, icmp]}
      - {from: front, to: back, allow: [tcp/22], family: ipv4}
vms:
  o1: {tenant: open, segment: lan, mac: "02:00:00:00:10:01", ip: 10.0.10.11, host: hv1}
  o2: {tenant: open, segment: lan, mac: "02:00:00:00:10:02", ip: 10.0.10.12, host: hv1}
  o3: {tenant: open, segment: lan, mac: "02:00:00:00:10:03", ip: 10.0.10.13, host: hv2,
       ip6: "2001:db8:10::13"}
  f1: {tenant: shop, segment: front, mac: "02:00:00:00:20:01", ip: 10.0.20.11,
       labels: {tier: front}, host: hv1}
  b1: {tenant: shop, segment: back, mac: "02:00:00:00:30:01", ip: 10.0.30.11,
       labels: {tier: back}, host: hv1}
  b2: {tenant: shop, segment: back, mac: "02:00:00:00:30:02", ip: 10.0.30.12,
       labels: {tier: back}, host: hv2}
  n1: {tenant: shop, segment: v4only, mac: "02:00:00:00:40:01", ip: 10.0.40.11,
       labels: {tier: back}, host: hv2}
"""
TCP80 = Service(Proto.TCP, 80, 80)
TCP22 = Service(Proto.TCP, 22, 22)
ICMP = Service(Proto.ICMP)
VICTIMS = ["o2", "o3"]  # beside o1, across the fabric
ALL_NODES_MAC = "33:33:00:00:00:01"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    d = tmp_path_factory.mktemp("net6")
    (d / "t.yaml").write_text(TOPOLOGY)
    (d / "p.yaml").write_text(POLICY)
    topo = load_topology(d / "t.yaml")
    policy = load_policy(d / "p.yaml", topo)
    bindings = planned_bindings(policy, topo)
    return policy, topo, bindings, Simulator(compile_network(policy, topo, bindings), topo)


def _send(net, src: str, pkt: dict, ct: Conntrack | None = None):
    _, _, bindings, sim = net
    return sim.inject(bindings.ports[src], pkt, ct if ct is not None else Conntrack())


def _delivered_to(net, trace, vm: str) -> bool:
    return any(ref == net[2].ports[vm] for ref, _ in trace.delivered)


def _to_controller(net, trace, vm: str) -> bool:
    at = net[2].ports[vm]
    return any(ref == PortRef(at.switch, OFPP_CONTROLLER) for ref, _ in trace.delivered)


def _tcp6(net, src: str, dst: str, **changes) -> dict:
    a, b = net[0].vms[src], net[0].vms[dst]
    pkt = as_ipv6(service_packet(TCP80, a, str(b.ip), a.mac, b.mac), str(a.ip6), str(b.ip6))
    return {**pkt, **changes}


def _icmp6(net, src: str, kind: int, eth_dst: str = ALL_NODES_MAC, source: str = "",
           **changes) -> dict:
    a = net[0].vms[src]
    return {"eth_src": a.mac, "eth_dst": eth_dst, "eth_type": 0x86DD,
            "ipv6_src": source or str(a.ip6), "ipv6_dst": "ff02::1", "ip_ttl": 255,
            "ip_proto": 58, "icmpv6_type": kind, **changes}


def _only_port_security(trace) -> bool:
    return (trace.delivered == [] and [s.stage for s in trace.steps] == ["port_security"]
            and [s.stage for s in trace.dropped_at] == ["port_security"])


# ---- port security, field by field, in a default-allow tenant --------------------


@pytest.mark.parametrize("victim", VICTIMS)
def test_the_honest_ipv6_packet_arrives_as_ipv6(net, victim):
    """The control; across the fabric the label must say IPv6, or the far end pops
    the frame to IPv4."""
    trace = _send(net, "o1", _tcp6(net, "o1", victim))
    [(ref, pkt)] = trace.delivered
    assert ref == net[2].ports[victim]
    assert pkt["eth_type"] == 0x86DD and pkt["ipv6_dst"] == str(net[0].vms[victim].ip6)


@pytest.mark.parametrize("victim", VICTIMS)
@pytest.mark.parametrize("field,value", [
    ("ipv6_src", "2001:db8:10::13"),  # another VM's address, own MAC
    ("ipv6_src", "2001:db8:10::99"),  # a free address of the segment
    ("ipv6_src", str(link_local("02:00:00:00:10:01"))),  # its own link-local: ND only
    ("ipv6_src", str(link_local("02:00:00:00:10:03"))),  # another VM's link-local
    ("eth_src", "02:00:00:00:10:03"),  # another VM's MAC, own address
    ("vlan_vid", 10),  # tagged with its own segment's VLAN
])
def test_a_forged_ipv6_source_is_dropped_at_the_port(net, victim, field, value):
    trace = _send(net, "o1", _tcp6(net, "o1", victim, **{field: value}))
    assert trace.delivered == []
    assert [s.stage for s in trace.dropped_at] == ["port_security"]


@pytest.mark.parametrize("kind", [
    134,  # router advertisement (RA guard)
    136,  # neighbour advertisement (NA spoofing)
    137,  # redirect
    130, 131, 143,  # MLD query, report, MLDv2 report
])
@pytest.mark.parametrize("source", ["own", "link-local"])
@pytest.mark.parametrize("to", ["all-nodes", "o2", "o3"])
def test_icmpv6_only_the_network_sends_stops_at_the_port(net, kind, source, to):
    """Not left to conntrack: these never leave port security, from the VM's own
    addresses, to all nodes or to one VM (an NA claiming o3's address for o1's MAC,
    an RA naming o1 the router)."""
    o1 = net[0].vms["o1"]
    src = str(o1.ip6) if source == "own" else str(link_local(o1.mac))
    eth_dst = ALL_NODES_MAC if to == "all-nodes" else net[0].vms[to].mac
    changes = {"ipv6_nd_target": str(net[0].vms["o3"].ip6), "ipv6_nd_tll": o1.mac}
    trace = _send(net, "o1", _icmp6(net, "o1", kind, eth_dst, src, **changes))
    assert _only_port_security(trace)


@pytest.mark.parametrize("victim", VICTIMS)
def test_a_dhcpv6_server_message_stops_at_the_port(net, victim):
    """UDP 547 -> 546 from a VM, even where the tenant allows everything."""
    pkt = _tcp6(net, "o1", victim)
    for k in ("tcp_src", "tcp_dst", "tcp_flags"):
        pkt.pop(k)
    pkt.update(ip_proto=17, udp_src=547, udp_dst=546)
    assert _only_port_security(_send(net, "o1", pkt))
    # The control: the same from another port is an ordinary UDP packet.
    assert _delivered_to(net, _send(net, "o1", dict(pkt, udp_src=5470)), victim)


@pytest.mark.parametrize("victim", VICTIMS)
def test_an_echo_reply_nobody_asked_for_is_invalid(net, victim):
    """ICMPv6 echo reply (129) opens nothing: conntrack calls it invalid."""
    pkt = _icmp6(net, "o1", 129, net[0].vms[victim].mac,
                 ipv6_dst=str(net[0].vms[victim].ip6), icmp_id=7)
    trace = _send(net, "o1", pkt)
    assert trace.delivered == []
    assert [s.stage for s in trace.dropped_at] == ["acl"]


# ---- neighbour discovery through the controller ---------------------------------


def _ns(net, src: str, target: str, source: str = "") -> dict:
    a = net[0].vms[src]
    return _icmp6(net, src, 135, "33:33:ff:00:00:01", source, ipv6_nd_target=target,
                  ipv6_nd_sll=a.mac)


@pytest.mark.parametrize("source", ["own", "link-local"])
def test_a_solicitation_from_the_vms_addresses_reaches_the_controller(net, source):
    o1 = net[0].vms["o1"]
    src = str(o1.ip6) if source == "own" else str(link_local(o1.mac))
    trace = _send(net, "o1", _ns(net, "o1", str(net[0].vms["o3"].ip6), src))
    assert _to_controller(net, trace, "o1") and len(trace.delivered) == 1


@pytest.mark.parametrize("source", [
    "2001:db8:10::13",  # another VM's address
    "::",  # duplicate address detection: nobody answers, so it succeeds
    "fe80::1",  # a made-up link-local
])
def test_other_solicitations_never_reach_the_controller(net, source):
    trace = _send(net, "o1", _ns(net, "o1", str(net[0].vms["o3"].ip6), source))
    assert _only_port_security(trace)


def test_router_solicitations_reach_the_controller_from_link_local_or_unspecified(net):
    o1 = net[0].vms["o1"]
    for source in (str(link_local(o1.mac)), "::"):
        assert _to_controller(net, _send(net, "o1", _icmp6(net, "o1", 133, source=source)),
                              "o1")
    assert _only_port_security(_send(net, "o1", _icmp6(net, "o1", 133, source="fe80::1")))


def _asks(net, src: str, target: str, source: str = "") -> Solicitation:
    vm = net[0].vms[src]
    return Solicitation(NEIGHBOR_SOLICIT, vm.mac, IPv6Address(source or str(vm.ip6)),
                        IPv6Address(target))


@pytest.mark.parametrize("target,mac", [
    ("o3", "02:00:00:00:10:03"), ("o2", "02:00:00:00:10:02"),
    ("2001:db8:10::1", gateway_mac(10)), (str(link_local(gateway_mac(10))), gateway_mac(10)),
])
def test_the_controller_answers_with_the_targets_mac_to_the_asker(net, target, mac):
    policy, topo, bindings, _ = net
    address = str(policy.vms[target].ip6) if target in policy.vms else target
    advert = answer_solicitation(policy, topo, bindings, policy.vms["o1"],
                                 _asks(net, "o1", address))
    assert advert is not None
    assert (advert.eth_src, advert.eth_dst) == (mac, policy.vms["o1"].mac)
    assert advert.destination == policy.vms["o1"].ip6 and advert.source == IPv6Address(address)


@pytest.mark.parametrize("target,source", [
    ("2001:db8:10::99", ""),  # nobody's
    ("2001:db8:20::1", ""),  # another segment's gateway
    (str(link_local("02:00:00:00:10:03")), ""),  # a VM's link-local: not carried
    ("2001:db8:10::13", "::"),  # duplicate address detection
    ("2001:db8:10::13", "2001:db8:10::12"),  # from an address not its own
])
def test_the_controller_stays_silent_otherwise(net, target, source):
    policy, topo, bindings, _ = net
    asked = _asks(net, "o1", target, source)
    assert answer_solicitation(policy, topo, bindings, policy.vms["o1"], asked) is None


def test_the_controller_never_answers_for_a_vm_that_is_not_bound(net):
    """o3 unplugged: its address is nobody's on the network until it is bound again."""
    policy, topo, bindings, _ = net
    gone = Bindings(MappingProxyType({k: v for k, v in bindings.ports.items() if k != "o3"}))
    asked = _asks(net, "o1", str(policy.vms["o3"].ip6))
    assert answer_solicitation(policy, topo, bindings, policy.vms["o1"], asked) is not None
    assert answer_solicitation(policy, topo, gone, policy.vms["o1"], asked) is None


def test_a_segment_without_gateway6_advertises_no_router(net):
    policy, topo, _, _ = net
    routed = router_info(policy, topo, policy.vms["b1"])
    plain = router_info(policy, topo, policy.vms["n1"])
    assert routed is not None and routed.router_lifetime > 0
    assert plain is not None and plain.router_lifetime == 0
    assert str(plain.prefix) == "2001:db8:40::/64" and plain.autonomous
    rs = Solicitation(ROUTER_SOLICIT, policy.vms["n1"].mac, IPv6Address("::"), None)
    assert answer_solicitation(policy, topo, net[2], policy.vms["n1"], rs) is not None


# ---- rules, routing, fragments -------------------------------------------------


@pytest.mark.parametrize("dst", ["b1", "b2"])
def test_rules_hold_in_ipv6_as_in_ipv4(net, dst):
    policy, _, bindings, sim = net
    for service in (TCP80, ICMP):
        assert probe(sim, policy, bindings, "f1", dst, service, family=6).reached
    # family: ipv4 rule: not in IPv6
    assert probe(sim, policy, bindings, "f1", dst, TCP22, family=4).reached
    assert not probe(sim, policy, bindings, "f1", dst, TCP22, family=6).delivered
    # and no rule the other way
    assert not probe(sim, policy, bindings, dst, "f1", TCP80, family=6).delivered


def test_a_segment_without_gateway6_is_not_routed_in_ipv6(net):
    """v4only has a gateway and no gateway6: routed from front in IPv4 only, and a
    packet sent to the router in IPv6 anyway is dropped there."""
    policy, _, bindings, sim = net
    assert probe(sim, policy, bindings, "f1", "n1", TCP80, family=4).reached  # the control
    assert not probe(sim, policy, bindings, "f1", "n1", TCP80, family=6).delivered
    trace = _send(net, "f1", _tcp6(net, "f1", "n1", eth_dst=gateway_mac(20)))
    assert trace.delivered == []
    assert [(s.switch, s.stage) for s in trace.dropped_at] == [("hv1", "l3_route")]


@pytest.mark.parametrize("hops,routed", [(1, False), (2, True)])
def test_the_router_decrements_the_hop_limit(net, hops, routed):
    pkt = _tcp6(net, "f1", "b2", eth_dst=gateway_mac(20), ip_ttl=hops)
    trace = _send(net, "f1", pkt)
    assert _delivered_to(net, trace, "b2") is routed
    if routed:
        [(_, out)] = trace.delivered
        assert out["ip_ttl"] == hops - 1 and out["eth_src"] == gateway_mac(30)


FIRST_FRAGMENT, LATER_FRAGMENT = 1, 3


@pytest.mark.parametrize("victim", VICTIMS)
@pytest.mark.parametrize("frag", [FIRST_FRAGMENT, LATER_FRAGMENT])
def test_an_ipv6_fragment_stops_before_conntrack(net, victim, frag):
    later = {"tcp_dst": 0, "tcp_src": 0, "tcp_flags": 0} if frag == LATER_FRAGMENT else {}
    trace = _send(net, "o1", _tcp6(net, "o1", victim, ip_frag=frag, **later))
    assert trace.delivered == []
    assert [s.stage for s in trace.steps] == ["port_security", "ct_out"]


def test_the_receiving_end_drops_ipv6_fragments_on_its_own(net):
    policy, topo, bindings, sim = net
    hv1 = sim.flowsets["hv1"]
    kept = [f for f in hv1.flows if not (f.stage == "ct_out" and f.match.get("ip_frag"))]
    leaky = Simulator(dict(sim.flowsets, hv1=FlowSet.of("hv1", kept, hv1.groups, hv1.meters)),
                      topo)
    trace = leaky.inject(bindings.ports["o1"], _tcp6(net, "o1", "o3", ip_frag=FIRST_FRAGMENT),
                         Conntrack())
    assert trace.delivered == []
    [drop] = trace.dropped_at
    assert (drop.switch, drop.stage) == ("hv2", "ct_in")


# ---- the router's "time exceeded" in IPv6 ---------------------------------------------


@pytest.mark.parametrize("dst", ["b1", "b2"])  # beside f1, across the fabric
def test_hop_limit_one_to_the_router_goes_to_the_controller_not_onwards(net, dst):
    """f1 -> back, routed, with hop limit 1: the router would discard it, so it goes
    through f1's ND meter to the controller (which answers "time exceeded"), never
    towards the destination; a ping (ICMPv6 echo, passed to conntrack above other
    IPv6) too. The same packet to a VM beside it is switched, not answered."""
    policy, _, bindings, sim = net
    f1 = policy.vms["f1"]
    for pkt in (_tcp6(net, "f1", dst, eth_dst=gateway_mac(20), ip_ttl=1),
                {**_tcp6(net, "f1", dst, eth_dst=gateway_mac(20), ip_ttl=1), "ip_proto": 58,
                 "icmpv6_type": 128, "tcp_dst": 0, "tcp_src": 0, "tcp_flags": 0}):
        trace = _send(net, "f1", pkt)
        assert _to_controller(net, trace, "f1") and not _delivered_to(net, trace, dst)
        meters = [a.meter_id for s in trace.steps if s.flow is not None
                  for a in s.flow.actions if isinstance(a, Meter)]
        assert meters[0] == 0x30000 + bindings.ports["f1"].port  # f1's ND meter first
        assert f1.mac == pkt["eth_src"]
    beside = _send(net, "o1", _tcp6(net, "o1", "o2", ip_ttl=1))
    assert _delivered_to(net, beside, "o2") and not _to_controller(net, beside, "o1")


def test_hop_limit_one_is_not_the_controllers_without_a_gateway6(net):
    """v4only has no gateway6: nothing routes there, so nothing to answer."""
    policy, _, bindings, sim = net
    b = policy.vms["n1"]
    pkt = {**_tcp6(net, "n1", "b2", eth_dst=gateway_mac(40), ip_ttl=1), "eth_src": b.mac}
    trace = _send(net, "n1", pkt)
    assert not _to_controller(net, trace, "n1") and trace.delivered == []
