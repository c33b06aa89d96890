"""North–south in the file formats: gateway uplinks in the topology; snat, floating
IPs and rule ends outside the tenant in the policy. The accepted forms build the
model the compiler reads; every refusal is checked by its exact `file:line: message`."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from sdnctl.cli import main
from sdnctl.policy.lint import lint_policy
from sdnctl.policy.load import load_policy, parse_policy
from sdnctl.policy.model import SnatPool
from sdnctl.policy.reread import PolicyRereader
from sdnctl.policy.values import UPLINK_MAC_PREFIX
from sdnctl.topology.load import load_topology, parse_topology
from sdnctl.topology.model import Role, Topology, Uplink, uplink_mac
from sdnctl.yamlsrc import LoadError

TOPOLOGIES = Path(__file__).resolve().parent.parent.parent / "topologies"

TOPOLOGY = """\
version: 1
switches:
  hv1: {dpid: 1, role: hypervisor, tunnel_ip: 198.51.100.1}
  leaf: {dpid: 16, role: fabric}
  gw1: {dpid: 0x31, role: gateway,
        uplink: {port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.1}}
  gw2:
    dpid: 0x32
    role: gateway
    uplink:
      - {port: 1, ip: 203.0.113.3/24, next_hop: 203.0.113.1}
      - {port: 2, ip: 192.0.2.2/29, next_hop: 192.0.2.1, vlan: 300,
         next_hop_mac: "02:AA:00:00:00:01"}
links:
  - {a: "hv1:10", b: "leaf:1"}
  - {a: "gw1:10", b: "leaf:2"}
  - {a: "gw2:10", b: "leaf:3"}
"""


def edited(text: str, changes: dict[str, str]) -> str:
    for old, new in changes.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def topology_problems(text: str) -> list[str]:
    with pytest.raises(LoadError) as caught:
        parse_topology(text, "t.yaml")
    return [str(p) for p in caught.value.problems]


# -- topology: accepted ------------------------------------------------------------


def test_gateways_and_their_uplinks_load_in_file_order() -> None:
    topology = parse_topology(TOPOLOGY, "t.yaml")
    assert topology.switches["gw1"].role is Role.GATEWAY
    assert topology.switches["gw1"].uplinks == (
        Uplink("gw1", 1, IPv4Interface("203.0.113.2/24"), IPv4Address("203.0.113.1"),
               "0e:01:00:31:00:01", None, None, 6),
    )
    assert topology.switches["gw2"].uplinks == (
        Uplink("gw2", 1, IPv4Interface("203.0.113.3/24"), IPv4Address("203.0.113.1"),
               "0e:01:00:32:00:01", None, None, 11),
        Uplink("gw2", 2, IPv4Interface("192.0.2.2/29"), IPv4Address("192.0.2.1"),
               "0e:01:00:32:00:02", 300, "02:aa:00:00:00:01", 12),
    )
    assert [u.name for u in topology.uplinks()] == ["gw1:1", "gw2:1", "gw2:2"]
    assert topology.switches["hv1"].uplinks == ()


def test_uplink_macs_are_in_the_range_vm_macs_may_not_use() -> None:
    assert uplink_mac(0x1234_0031, 7).startswith(UPLINK_MAC_PREFIX)


def test_the_example_loads_with_two_gateways_on_one_uplink_subnet() -> None:
    topology = load_topology(TOPOLOGIES / "northsouth.topology.yaml")
    uplinks = topology.uplinks()
    assert [u.switch for u in uplinks] == ["border1", "border2"]
    assert {str(u.ip.network) for u in uplinks} == {"203.0.113.0/24"}
    assert {str(u.next_hop) for u in uplinks} == {"203.0.113.1"}


# -- topology: refused -------------------------------------------------------------

GW1 = ("gw1: {dpid: 0x31, role: gateway,\n"
       "        uplink: {port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.1}}")
GW1_UPLINK = "uplink: {port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.1}"


def _gw1(uplink: str) -> dict[str, str]:
    return {GW1_UPLINK: f"uplink: {{{uplink}}}"}


TOPOLOGY_REFUSALS = {
    "uplink on a hypervisor": (
        {"role: hypervisor,": "role: hypervisor, uplink: {port: 3, ip: 198.18.0.2/24, "
                              "next_hop: 198.18.0.1},"},
        "t.yaml:3: switch hv1: uplink is for gateways (role: gateway); a hypervisor switch "
        "has none"),
    "uplink on a fabric switch": (
        {"leaf: {dpid: 16, role: fabric}":
         "leaf: {dpid: 16, role: fabric, uplink: {port: 9, ip: 198.51.100.2/24, "
         "next_hop: 198.51.100.1}}"},
        "t.yaml:4: switch leaf: uplink is for gateways (role: gateway); a fabric switch "
        "has none"),
    "a gateway without uplink": (
        {GW1: "gw1: {dpid: 0x31, role: gateway}"},
        "t.yaml:5: switch gw1: a gateway needs an uplink, like uplink: {port: 1, ip: "
        "203.0.113.2/24, next_hop: 203.0.113.1}"),
    "uplink null": (
        {GW1_UPLINK: "uplink:"},
        "t.yaml:6: switch gw1: uplink must be a mapping like {port: 1, ip: 203.0.113.2/24, "
        "next_hop: 203.0.113.1} or a non-empty list of them, got nothing"),
    "an empty uplink list": (
        {GW1_UPLINK: "uplink: []"},
        "t.yaml:6: switch gw1: uplink must be a mapping like {port: 1, ip: 203.0.113.2/24, "
        "next_hop: 203.0.113.1} or a non-empty list of them, got an empty list"),
    "an uplink item not a mapping": (
        {"      - {port: 1, ip: 203.0.113.3/24, next_hop: 203.0.113.1}": "      - 1"},
        "t.yaml:11: switch gw2: uplink 1: must be a mapping with keys port, ip, next_hop, "
        "vlan, next_hop_mac, got 1"),
    "an unknown uplink key": (
        _gw1("port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.1, mtu: 9000"),
        "t.yaml:6: switch gw1: uplink: unknown key 'mtu' (allowed: port, ip, next_hop, "
        "vlan, next_hop_mac)"),
    "an uplink without next_hop": (
        _gw1("port: 1, ip: 203.0.113.2/24"),
        "t.yaml:6: switch gw1: uplink: missing required key 'next_hop'"),
    "port taken by a link": (
        _gw1("port: 10, ip: 203.0.113.2/24, next_hop: 203.0.113.1"),
        "t.yaml:16: link 2: port gw1:10 is already used by switch gw1's uplink (line 6)"),
    "port taken by another uplink": (
        {"      - {port: 2, ip: 192.0.2.2/29": "      - {port: 1, ip: 192.0.2.2/29"},
        "t.yaml:12: switch gw2: uplink 2: port gw2:1 is already used by switch gw2's "
        "uplink 1 (line 11)"),
    "port out of range": (
        _gw1("port: 65280, ip: 203.0.113.2/24, next_hop: 203.0.113.1"),
        "t.yaml:6: switch gw1: uplink: port must be an integer 1..65279, got 65280"),
    "ip without prefix": (
        _gw1("port: 1, ip: 203.0.113.2, next_hop: 203.0.113.1"),
        "t.yaml:6: switch gw1: uplink: ip must be an IPv4 address with the uplink subnet's "
        "prefix length like 203.0.113.2/24, got '203.0.113.2'"),
    "ip the network address": (
        _gw1("port: 1, ip: 203.0.113.0/24, next_hop: 203.0.113.1"),
        "t.yaml:6: switch gw1: uplink: ip 203.0.113.0/24 is the network address of "
        "203.0.113.0/24"),
    "ip the broadcast address": (
        _gw1("port: 1, ip: 203.0.113.255/24, next_hop: 203.0.113.1"),
        "t.yaml:6: switch gw1: uplink: ip 203.0.113.255/24 is the broadcast address of "
        "203.0.113.0/24"),
    "ip in a /31": (
        _gw1("port: 1, ip: 203.0.113.2/31, next_hop: 203.0.113.3"),
        "t.yaml:6: switch gw1: uplink: ip 203.0.113.2/31 has a /31 prefix: the uplink "
        "subnet needs room for the gateway and the next hop (at most /30)"),
    "ip multicast": (
        _gw1("port: 1, ip: 224.0.0.2/24, next_hop: 224.0.0.1"),
        "t.yaml:6: switch gw1: uplink: ip 224.0.0.2/24 is not a unicast address: it is in "
        "multicast (224.0.0.0/4)"),
    "next_hop outside the subnet": (
        _gw1("port: 1, ip: 203.0.113.2/24, next_hop: 198.51.100.1"),
        "t.yaml:6: switch gw1: uplink: next_hop 198.51.100.1 is outside the uplink subnet "
        "203.0.113.0/24 (ip 203.0.113.2/24)"),
    "next_hop the uplink's own ip": (
        _gw1("port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.2"),
        "t.yaml:6: switch gw1: uplink: next_hop 203.0.113.2 is the uplink's own ip: it "
        "must be the external router's address"),
    "next_hop the broadcast address": (
        _gw1("port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.255"),
        "t.yaml:6: switch gw1: uplink: next_hop 203.0.113.255 is the broadcast address of "
        "203.0.113.0/24"),
    "next_hop not an address": (
        _gw1("port: 1, ip: 203.0.113.2/24, next_hop: router"),
        "t.yaml:6: switch gw1: uplink: next_hop must be an IPv4 address like 203.0.113.1, "
        "got 'router'"),
    "vlan 0": (
        _gw1("port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.1, vlan: 0"),
        "t.yaml:6: switch gw1: uplink: vlan must be an integer 1..4094, got 0"),
    "vlan 4095": (
        _gw1("port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.1, vlan: 4095"),
        "t.yaml:6: switch gw1: uplink: vlan must be an integer 1..4094, got 4095"),
    "next_hop_mac malformed": (
        _gw1("port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.1, next_hop_mac: '02:aa'"),
        "t.yaml:6: switch gw1: uplink: next_hop_mac must look like \"02:00:5e:00:01:01\" "
        "(quote it), got '02:aa'"),
    "next_hop_mac multicast": (
        _gw1("port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.1, "
             "next_hop_mac: '01:00:5E:00:00:01'"),
        "t.yaml:6: switch gw1: uplink: next_hop_mac 01:00:5e:00:00:01 is a multicast "
        "address: the external router's MAC is a unicast one"),
    "next_hop_mac all zeros": (
        _gw1("port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.1, "
             "next_hop_mac: '00:00:00:00:00:00'"),
        "t.yaml:6: switch gw1: uplink: next_hop_mac 00:00:00:00:00:00 is all zeros: the "
        "external router's MAC is a unicast one"),
    "tunnel_ip on a gateway": (
        {"gw1: {dpid: 0x31, role: gateway,": "gw1: {dpid: 0x31, role: gateway, "
                                            "tunnel_ip: 198.51.100.9,"},
        "t.yaml:5: switch gw1: tunnel_ip is for hypervisors; a gateway switch carries no "
        "tunnel endpoint"),
    "two uplinks with one ip": (
        {"ip: 203.0.113.3/24": "ip: 203.0.113.2/24"},
        "t.yaml:11: switch gw2: uplink ip 203.0.113.2 is already used by gw1:1 (line 6)"),
    "an uplink ip that is another's next hop": (
        {"ip: 203.0.113.3/24, next_hop: 203.0.113.1": "ip: 203.0.113.3/24, "
                                                      "next_hop: 203.0.113.2"},
        "t.yaml:6: switch gw1: uplink ip 203.0.113.2 is the next_hop of gw2:1 (line 11)"),
    "two gateways whose uplink MACs collide": (
        {"dpid: 0x32": "dpid: 0x10031"},
        "t.yaml:11: switch gw2: uplink gw2:1 would answer with MAC 0e:01:00:31:00:01, as "
        "gw1:1 does (line 6): uplink MACs are built from the dpid's low 16 bits and the "
        "port; give the gateways dpids that differ there"),
}


@pytest.mark.parametrize("case", list(TOPOLOGY_REFUSALS))
def test_topology_refusal(case: str) -> None:
    changes, message = TOPOLOGY_REFUSALS[case]
    assert topology_problems(edited(TOPOLOGY, changes)) == [message]


def test_a_role_that_does_not_exist_names_the_three() -> None:
    text = edited(TOPOLOGY, {"role: fabric": "role: border"})
    assert topology_problems(text) == [
        "t.yaml:4: switch leaf: role must be hypervisor, fabric or gateway, got 'border'"]


# -- policy ------------------------------------------------------------------------

POLICY = """\
version: 1
tenants:
  acme:
    snat: 203.0.113.10
    segments:
      web: {vlan: 10, subnet: 10.1.10.0/24, gateway: 10.1.10.1}
      db: {vlan: 30, subnet: 10.1.30.0/24}
      ovl: {vni: 5000, subnet: 10.1.40.0/24, gateway: 10.1.40.1}
    groups:
      web: {labels: {tier: web}}
    rules:
      - {from: external, to: web, allow: [tcp/443]}
      - {from: web, to: "198.51.100.0/24", allow: [tcp/443]}
      - {from: any, to: external, allow: [udp/53]}
  beta:
    snat: "203.0.113.100 - 203.0.113.103"
    segments:
      web: {vlan: 11, subnet: 10.1.10.0/24, gateway: 10.1.10.1}
vms:
  web1: {tenant: acme, segment: web, mac: "02:00:00:00:10:11", ip: 10.1.10.11,
         labels: {tier: web}, host: hv1, floating_ip: 203.0.113.20}
  web2: {tenant: acme, segment: web, mac: "02:00:00:00:10:12", ip: 10.1.10.12,
         labels: {tier: web}, host: hv1}
  db1: {tenant: acme, segment: db, mac: "02:00:00:00:30:11", ip: 10.1.30.11, host: hv1}
  b1: {tenant: beta, segment: web, mac: "02:00:00:01:10:11", ip: 10.1.10.11, host: hv1,
       floating_ip: 203.0.113.30}
"""


@pytest.fixture(scope="module")
def topology() -> Topology:
    return parse_topology(TOPOLOGY, "t.yaml")


def policy_problems(text: str, topology: Topology | None) -> list[str]:
    with pytest.raises(LoadError) as caught:
        parse_policy(text, "p.yaml", topology)
    return [str(p) for p in caught.value.problems]


def test_nat_addresses_and_outside_ends_load(topology: Topology) -> None:
    policy = parse_policy(POLICY, "p.yaml", topology)
    acme, beta = policy.tenants["acme"], policy.tenants["beta"]
    assert acme.snat == SnatPool(IPv4Address("203.0.113.10"), IPv4Address("203.0.113.10"))
    assert beta.snat == SnatPool(IPv4Address("203.0.113.100"), IPv4Address("203.0.113.103"))
    assert str(beta.snat) == "203.0.113.100-203.0.113.103"
    assert policy.vms["web1"].floating_ip == IPv4Address("203.0.113.20")
    assert policy.vms["web2"].floating_ip is None
    assert [(r.src, r.dst, r.inbound, r.outbound) for r in acme.rules] == [
        ("external", "web", True, False),
        ("web", "198.51.100.0/24", False, True),
        ("any", "external", False, True),
    ]
    assert str(acme.rules[1].dst_net) == "198.51.100.0/24"
    # IPv4 only, said once in the model so that no IPv6 flow is ever built for them.
    assert [(r.covers(4), r.covers(6)) for r in acme.rules] == [(True, False)] * 3


def test_cidr_ends_are_normalised(topology: Topology) -> None:
    text = edited(POLICY, {'to: "198.51.100.0/24"': "to: 198.51.100.7"})
    rule = parse_policy(text, "p.yaml", topology).tenants["acme"].rules[1]
    assert rule.dst == "198.51.100.7/32"
    text = edited(POLICY, {'to: "198.51.100.0/24"': "to: 198.51.100.0/255.255.255.0"})
    assert parse_policy(text, "p.yaml", topology).tenants["acme"].rules[1].dst == \
        "198.51.100.0/24"


def test_without_a_topology_the_topology_checks_wait(topology: Topology) -> None:
    """An address outside every uplink subnet is the topology's business."""
    text = edited(POLICY, {"floating_ip: 203.0.113.20": "floating_ip: 198.18.0.20"})
    assert parse_policy(text, "p.yaml").vms["web1"].floating_ip == IPv4Address("198.18.0.20")
    assert policy_problems(text, topology) == [
        "p.yaml:21: vm web1: floating_ip 198.18.0.20 is outside every gateway uplink's "
        "subnet (192.0.2.0/29, 203.0.113.0/24): the external router would send it to no "
        "gateway"]


SNAT = "    snat: 203.0.113.10\n"
FIP = "floating_ip: 203.0.113.20}"
FIP_B1 = "floating_ip: 203.0.113.30}"
RULE_IN = "      - {from: external, to: web, allow: [tcp/443]}"
RULE_CIDR = '      - {from: web, to: "198.51.100.0/24", allow: [tcp/443]}'

POLICY_REFUSALS = {
    # snat: the value itself
    "snat not an address": (
        {SNAT: "    snat: nat.example\n"},
        "p.yaml:4: tenant acme: snat must be an IPv4 address like 203.0.113.10 or a range "
        "like \"203.0.113.10-203.0.113.19\", got 'nat.example'"),
    "snat a list": (
        {SNAT: "    snat: [203.0.113.10]\n"},
        "p.yaml:4: tenant acme: snat must be an IPv4 address like 203.0.113.10 or a range "
        "like \"203.0.113.10-203.0.113.19\", got a list"),
    "snat range reversed": (
        {SNAT: "    snat: 203.0.113.12-203.0.113.10\n"},
        "p.yaml:4: tenant acme: snat range 203.0.113.12-203.0.113.10 is reversed (first "
        "address first)"),
    "snat range too big": (
        {SNAT: "    snat: 203.0.112.0-203.0.113.0\n"},
        "p.yaml:4: tenant acme: snat range 203.0.112.0-203.0.113.0 has 257 addresses, at "
        "most 256"),
    "snat multicast": (
        {SNAT: "    snat: 224.0.0.10\n"},
        "p.yaml:4: tenant acme: snat 224.0.0.10 is not a unicast address: it is in "
        "multicast (224.0.0.0/4)"),
    "snat range across loopback": (
        {SNAT: "    snat: 126.255.255.250-127.0.0.5\n"},
        "p.yaml:4: tenant acme: snat 127.0.0.5 is not a unicast address: it is in loopback "
        "(127.0.0.0/8)"),
    # floating_ip: the value itself, and the VM's segment
    "floating_ip not an address": (
        {FIP: "floating_ip: 203.0.113.20/32}"},
        "p.yaml:21: vm web1: floating_ip must be an IPv4 address like 203.0.113.20, got "
        "'203.0.113.20/32'"),
    "floating_ip broadcast": (
        {FIP: "floating_ip: 255.255.255.255}"},
        "p.yaml:21: vm web1: floating_ip 255.255.255.255 is not a unicast address: it is "
        "in reserved class E and the broadcast address (240.0.0.0/4)"),
    "floating_ip in a segment without gateway": (
        {"ip: 10.1.30.11, host: hv1}": "ip: 10.1.30.11, host: hv1, floating_ip: 203.0.113.30}"},
        "p.yaml:24: vm db1: floating_ip 203.0.113.30, but segment acme/db has no gateway "
        "(it is never routed): only VMs of routed VLAN segments reach the outside"),
    "floating_ip in an overlay-only segment": (
        {'db1: {tenant: acme, segment: db, mac: "02:00:00:00:30:11", ip: 10.1.30.11, host: hv1}':
         'db1: {tenant: acme, segment: ovl, mac: "02:00:00:00:30:11", ip: 10.1.40.11, '
         'floating_ip: 203.0.113.30}'},
        "p.yaml:24: vm db1: floating_ip 203.0.113.30, but segment acme/ovl has no vlan (an "
        "overlay-only segment does not reach the gateways): only VMs of routed VLAN "
        "segments reach the outside"),
    # NAT addresses across the policy
    "two VMs with one floating IP": (
        {FIP_B1: "floating_ip: 203.0.113.20}"},
        "p.yaml:26: vm b1: floating_ip 203.0.113.20 is already used by vm web1's "
        "floating_ip 203.0.113.20 (line 21)"),
    "a floating IP in another tenant's pool": (
        {FIP_B1: "floating_ip: 203.0.113.102}"},
        "p.yaml:26: vm b1: floating_ip 203.0.113.102 is already used by tenant beta's snat "
        "203.0.113.100-203.0.113.103 (line 16)"),
    "a floating IP that is its own tenant's snat": (
        {FIP: "floating_ip: 203.0.113.10}"},
        "p.yaml:21: vm web1: floating_ip 203.0.113.10 is already used by tenant acme's "
        "snat 203.0.113.10 (line 4)"),
    "two pools that overlap": (
        {SNAT: "    snat: 203.0.113.98-203.0.113.100\n"},
        "p.yaml:16: tenant beta: snat 203.0.113.100-203.0.113.103 (203.0.113.100) is "
        "already used by tenant acme's snat 203.0.113.98-203.0.113.100 (line 4)"),
    "snat inside a segment of another tenant": (
        {'    snat: "203.0.113.100 - 203.0.113.103"\n': "    snat: 10.1.30.5\n"},
        "p.yaml:16: tenant beta: snat 10.1.30.5 lies inside segment acme/db (10.1.30.0/24, "
        "line 7): NAT addresses are outside every tenant's segments"),
    "floating IP inside its own segment": (
        {FIP: "floating_ip: 10.1.10.99}"},
        "p.yaml:21: vm web1: floating_ip 10.1.10.99 lies inside segment acme/web "
        "(10.1.10.0/24, line 6): NAT addresses are outside every tenant's segments"),
    # NAT addresses against the topology
    "snat the uplink's own address": (
        {SNAT: "    snat: 203.0.113.3\n"},
        "p.yaml:4: tenant acme: snat 203.0.113.3 is the address of gateway uplink gw2:1 "
        "(topology line 11)"),
    "floating IP the next hop": (
        {FIP_B1: "floating_ip: 192.0.2.1}"},
        "p.yaml:26: vm b1: floating_ip 192.0.2.1 is the next hop of gateway uplink gw2:2 "
        "(topology line 12)"),
    "one tenant's NAT addresses in two uplink subnets": (
        {FIP: "floating_ip: 192.0.2.4}"},
        "p.yaml:21: vm web1: floating_ip 192.0.2.4 and tenant acme's snat 203.0.113.10 "
        "(line 4) are in different uplink subnets (192.0.2.0/29, 203.0.113.0/24): tenant "
        "acme goes out through one uplink, whose subnet must hold all its snat and "
        "floating_ip addresses"),
    "a pool reaching out of the uplink subnet": (
        {SNAT: "    snat: 192.0.2.5-192.0.2.9\n", FIP_B1: "floating_ip: 203.0.113.21}"},
        "p.yaml:4: tenant acme: snat 192.0.2.8 is outside every gateway uplink's subnet "
        "(192.0.2.0/29, 203.0.113.0/24): the external router would send it to no gateway"),
    # rule ends
    "both ends outside": (
        {RULE_CIDR: '      - {from: external, to: "198.51.100.0/24", allow: [tcp/443]}'},
        "p.yaml:13: rule 2 of tenant acme: from external and to 198.51.100.0/24 are both "
        "outside the tenant: a rule needs the tenant's VMs at one end"),
    "an outside end in IPv6": (
        {RULE_IN: "      - {from: external, to: web, allow: [tcp/443], family: ipv6}"},
        "p.yaml:12: rule 1 of tenant acme: family ipv6 with external at one end: traffic "
        "to and from outside the tenant is IPv4 only"),
    "a CIDR over the tenant's segment": (
        {RULE_CIDR: '      - {from: web, to: "10.1.0.0/16", allow: [tcp/443]}'},
        "p.yaml:13: rule 2 of tenant acme: to 10.1.0.0/16 overlaps segment acme/web "
        "(10.1.10.0/24, line 6): a CIDR end names addresses outside the tenant; name the "
        "tenant's own VMs by group"),
    "a CIDR with host bits": (
        {RULE_CIDR: '      - {from: web, to: "198.51.100.1/24", allow: [tcp/443]}'},
        "p.yaml:13: rule 2 of tenant acme: to 198.51.100.1/24 has host bits set (did you "
        "mean 198.51.100.0/24?)"),
    "a malformed CIDR": (
        {RULE_CIDR: '      - {from: web, to: "198.51.100.0/33", allow: [tcp/443]}'},
        "p.yaml:13: rule 2 of tenant acme: to '198.51.100.0/33' is neither a group, any, "
        "external nor an IPv4 CIDR like 198.51.100.0/24"),
    # names
    "a group named external": (
        {"      web: {labels: {tier: web}}": "      web: {labels: {tier: web}}\n"
                                           "      external: {vms: [web1]}"},
        "p.yaml:11: group acme/external: the name 'external' is reserved (it means every "
        "address outside the tenant)"),
    "a group named like a CIDR": (
        {"      web: {labels: {tier: web}}": "      web: {labels: {tier: web}}\n"
                                           "      3tier: {vms: [web1]}"},
        "p.yaml:11: group acme/3tier: a group name must not start with a digit or hold a "
        "'/' (a rule end written so is an IPv4 CIDR)"),
    "a VM MAC in the uplink range": (
        {'"02:00:00:00:10:12"': '"0e:01:00:31:00:01"'},
        "p.yaml:22: vm web2: mac 0e:01:00:31:00:01 is in the range reserved for gateway "
        "uplink MACs (0e:01:xx:xx:xx:xx)"),
}


@pytest.mark.parametrize("case", list(POLICY_REFUSALS))
def test_policy_refusal(case: str, topology: Topology) -> None:
    changes, message = POLICY_REFUSALS[case]
    assert policy_problems(edited(POLICY, changes), topology) == [message]


def test_nat_addresses_need_a_gateway(topology: Topology) -> None:
    no_gateway = parse_topology("version: 1\nswitches:\n  hv1: {dpid: 1, role: hypervisor, "
                                "tunnel_ip: 198.51.100.1}\n", "t.yaml")
    assert policy_problems(POLICY, no_gateway) == [
        "p.yaml:4: tenant acme: snat 203.0.113.10 needs a gateway, but the topology has "
        "none (a switch with role: gateway and an uplink)",
        "p.yaml:16: tenant beta: snat 203.0.113.100-203.0.113.103 needs a gateway, but the "
        "topology has none (a switch with role: gateway and an uplink)",
        "p.yaml:21: vm web1: floating_ip 203.0.113.20 needs a gateway, but the topology has "
        "none (a switch with role: gateway and an uplink)",
        "p.yaml:26: vm b1: floating_ip 203.0.113.30 needs a gateway, but the topology has "
        "none (a switch with role: gateway and an uplink)",
    ]
    without = POLICY.replace(SNAT, "").replace('    snat: "203.0.113.100 - 203.0.113.103"\n', "")
    without = without.replace(", floating_ip: 203.0.113.20", "").replace(
        ",\n       floating_ip: 203.0.113.30", "")
    assert parse_policy(without, "p.yaml", no_gateway).tenants["acme"].snat is None


def test_check_exits_2_on_a_nat_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    (tmp_path / "t.yaml").write_text(TOPOLOGY)
    (tmp_path / "p.yaml").write_text(edited(POLICY, {FIP_B1: "floating_ip: 203.0.113.20}"}))
    code = main(["check", "-p", str(tmp_path / "p.yaml"), "-t", str(tmp_path / "t.yaml")])
    out = capsys.readouterr()
    assert code == 2
    assert f"{tmp_path / 'p.yaml'}:26: vm b1: floating_ip 203.0.113.20 is already used" in \
        out.err + out.out


def test_the_example_passes_check(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "-p", str(TOPOLOGIES / "northsouth.policy.yaml"),
                 "-t", str(TOPOLOGIES / "northsouth.topology.yaml")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 warnings" in out
    policy = load_policy(TOPOLOGIES / "northsouth.policy.yaml",
                         load_topology(TOPOLOGIES / "northsouth.topology.yaml"))
    shop = policy.tenants["shop"]
    assert shop.snat is not None and any(vm.floating_ip for vm in policy.vms.values())
    assert any(r.inbound for r in shop.rules) and any(r.outbound for r in shop.rules)


# -- lint --------------------------------------------------------------------------


def _warnings(text: str, topology: Topology) -> list[str]:
    return [str(w) for w in lint_policy(parse_policy(text, "p.yaml", topology))]


def test_rules_that_name_the_outside_are_not_no_effect_when_some_vm_can_use_them(
        topology: Topology) -> None:
    assert [w for w in _warnings(POLICY, topology) if "[no-effect]" in w] == []


def test_an_outbound_rule_no_source_can_use(topology: Topology) -> None:
    text = edited(POLICY, {SNAT: "", FIP: "floating_ip: 203.0.113.20, waive: [unreachable]}"})
    text = text.replace(", floating_ip: 203.0.113.20", "")
    assert [w for w in _warnings(text, topology) if "[no-effect]" in w] == [
        "p.yaml:11: rule 1 of tenant acme (external -> web): no VM of group web has a "
        "floating_ip, and only those can be reached from outside, so the rule has no effect "
        "[no-effect]",
        "p.yaml:12: rule 2 of tenant acme (web -> 198.51.100.0/24): no VM of group web can go "
        "out: none of them has a floating_ip and tenant acme has no snat, so the rule has no "
        "effect [no-effect]",
        "p.yaml:13: rule 3 of tenant acme (any -> external): no VM of any can go out: none of "
        "them has a floating_ip and tenant acme has no snat, so the rule has no effect "
        "[no-effect]",
    ]


def test_a_floating_ip_alone_lets_its_vm_go_out(topology: Topology) -> None:
    """No snat: web1 still goes out with its floating IP; db1 (unrouted) never does."""
    text = edited(POLICY, {SNAT: ""})
    assert [w for w in _warnings(text, topology) if "[no-effect]" in w] == []
    text = edited(text, {RULE_CIDR: "      - {from: db1only, to: external, allow: [udp/53]}",
                         "      web: {labels: {tier: web}}":
                         "      web: {labels: {tier: web}}\n      db1only: {vms: [db1]}"})
    assert [w for w in _warnings(text, topology) if "[no-effect]" in w] == [
        "p.yaml:13: rule 2 of tenant acme (db1only -> external): no VM of group db1only "
        "can go out: none of them has a floating_ip and tenant acme has no snat, so the "
        "rule has no effect [no-effect]"]


def test_a_snat_tenant_whose_sources_sit_in_unrouted_segments(topology: Topology) -> None:
    text = edited(POLICY, {RULE_CIDR: "      - {from: dbs, to: external, allow: [udp/53]}",
                           "      web: {labels: {tier: web}}":
                           "      web: {labels: {tier: web}}\n      dbs: {vms: [db1]}"})
    assert [w for w in _warnings(text, topology) if "[no-effect]" in w] == [
        "p.yaml:14: rule 2 of tenant acme (dbs -> external): no VM of group dbs can go out: "
        "none of them is in a routed VLAN segment (gateway and vlan), so the rule has no "
        "effect [no-effect]"]


def test_no_effect_on_an_outside_rule_is_waivable(topology: Topology) -> None:
    text = edited(POLICY, {FIP: "}"}).replace(", }", "}")
    assert [w for w in _warnings(text, topology) if "[no-effect]" in w] == [
        "p.yaml:12: rule 1 of tenant acme (external -> web): no VM of group web has a "
        "floating_ip, and only those can be reached from outside, so the rule has no effect "
        "[no-effect]"]
    waived = edited(text, {RULE_IN: "      - {from: external, to: web, allow: [tcp/443], "
                                    "waive: [no-effect]}"})
    assert [w for w in _warnings(waived, topology) if "[no-effect]" in w] == []


def test_a_vm_reached_only_from_outside_is_not_unreachable(topology: Topology) -> None:
    """web1 and web2 are reached by no VM rule here; web1 has a floating IP and an
    inbound rule reaches it, web2 has none."""
    text = edited(POLICY, {"      - {from: any, to: external, allow: [udp/53]}\n": ""})
    unreachable = [w for w in _warnings(text, topology) if "[unreachable]" in w]
    assert unreachable == [
        "p.yaml:21: vm web2: no rule lets any VM reach it (tenant acme denies by default) "
        "[unreachable]",
        "p.yaml:23: vm db1: no rule lets any VM reach it (tenant acme denies by default) "
        "[unreachable]",
        "p.yaml:24: vm b1: no rule lets any VM reach it (tenant beta denies by default) "
        "[unreachable]",
    ]


# -- re-reading an edited file -----------------------------------------------------


def _same_as_a_full_read(reader: PolicyRereader, text: str, topology: Topology) -> str:
    try:
        full: object = parse_policy(text, "p.yaml", topology)
    except LoadError as exc:
        full = [str(p) for p in exc.problems]
    try:
        again: object = reader.read(text, "p.yaml", topology)
    except LoadError as exc:
        again = [str(p) for p in exc.problems]
    assert again == full
    return reader.last_mode


def test_rereading_checks_nat_addresses_across_the_policy(topology: Topology) -> None:
    """A VM entry or a tenant entry re-read alone would not see the other entries'
    NAT addresses: an edit that changes one is read in full, others stay incremental."""
    reader = PolicyRereader()
    reader.read(POLICY, "p.yaml", topology)
    clash = edited(POLICY, {FIP_B1: "floating_ip: 203.0.113.20}"})
    assert _same_as_a_full_read(reader, clash, topology) == "full"
    pool = edited(POLICY, {SNAT: "    snat: 203.0.113.20\n"})
    assert _same_as_a_full_read(reader, pool, topology) == "full"
    moved = edited(POLICY, {"labels: {tier: web}, host: hv1}": "labels: {tier: web}}"})
    assert _same_as_a_full_read(reader, moved, topology) == "incremental"


def test_rereading_keeps_floating_ips_of_entries_it_moves(topology: Topology) -> None:
    """A line added to a tenant moves every VM: the moved VMs keep all they had."""
    reader = PolicyRereader()
    reader.read(POLICY, "p.yaml", topology)
    longer = edited(POLICY, {"      web: {labels: {tier: web}}":
                             "      web: {labels: {tier: web}}\n      ops: {vms: [web2]}"})
    assert _same_as_a_full_read(reader, longer, topology) == "incremental"
    policy = reader.read(longer, "p.yaml", topology)
    assert policy.vms["web1"].floating_ip == IPv4Address("203.0.113.20")
    assert policy.vms["web1"].line == 21  # one below where it was


def test_rules_naming_the_outside_are_compared_for_overlap(topology: Topology) -> None:
    """A CIDR lies within `external` and within a wider CIDR; a rule out and a rule in
    never cover each other; under default: allow only such rules are compared."""
    extra = ('      - {from: any, to: external, allow: [udp/53]}\n'
             '      - {from: web, to: "198.51.100.128/25", allow: [tcp/443]}\n'
             '      - {from: web, to: external, allow: [tcp/443]}\n'
             '      - {from: "198.51.100.0/24", to: web, allow: [tcp/443]}\n')
    text = edited(POLICY, {"      - {from: any, to: external, allow: [udp/53]}\n": extra})
    found = [w for w in _warnings(text, topology) if "[duplicate]" in w or "[covered]" in w]
    assert found == [
        "p.yaml:13: rule 2 of tenant acme (web -> 198.51.100.0/24): allows nothing that "
        "rule 5 (web -> external, line 16) does not already allow [covered]",
        "p.yaml:15: rule 4 of tenant acme (web -> 198.51.100.128/25): allows nothing that "
        "rule 2 (web -> 198.51.100.0/24, line 13) does not already allow [covered]",
        "p.yaml:17: rule 6 of tenant acme (198.51.100.0/24 -> web): allows nothing that "
        "rule 1 (external -> web, line 12) does not already allow [covered]",
    ]
    allowing = edited(text, {"    snat: 203.0.113.10\n": "    snat: 203.0.113.10\n"
                                                        "    default: allow\n"})
    assert len([w for w in _warnings(allowing, topology) if "[covered]" in w]) == 3
