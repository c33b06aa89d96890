"""A leaf-spine with two gateways where two tenants share the inside address 10.0.1.11
(red: a pool and rf1's floating IP; blue: default allow, a pool), built in code."""
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface
from types import MappingProxyType

from sdnctl.policy.load import load_policy
from sdnctl.policy.model import Rule, SnatPool, parse_service
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import Link, PortRef, Role, Switch, Topology, Uplink, uplink_mac


def net():
    topo = load_topology("topologies/leaf-spine.topology.yaml")
    sw = dict(topo.switches)
    links = list(topo.links)
    for name, dpid, leaf, port in (("border1", 0x30, "leaf1", 20), ("border2", 0x31, "leaf2", 20)):
        up = Uplink(name, 1, IPv4Interface(f"203.0.113.{dpid - 0x30 + 2}/24"),
                    IPv4Address("203.0.113.1"), uplink_mac(dpid, 1),
                    next_hop_mac="02:aa:00:00:00:01")
        sw[name] = Switch(name, dpid, Role.GATEWAY, uplinks=(up,))
        links.append(Link(PortRef(name, 2), PortRef(leaf, port)))
    topo = Topology(MappingProxyType(sw), tuple(links), topo.source, topo.underlay_mtu)
    pol = load_policy("topologies/leaf-spine.policy.yaml", topo)
    tenants = dict(pol.tenants)
    red = tenants["red"]
    red = replace(red, snat=SnatPool(IPv4Address("203.0.113.10"), IPv4Address("203.0.113.11")),
                  rules=red.rules + (
                      Rule("red", "front", "198.51.100.0/24", (parse_service("tcp/443"),)),
                      Rule("red", "external", "front", (parse_service("tcp/80"),)),
                  ))
    one = IPv4Address("203.0.113.12")
    blue = replace(tenants["blue"], snat=SnatPool(one, one),
                   rules=(Rule("blue", "any", "external", (parse_service("any"),)),))
    tenants["red"], tenants["blue"] = red, blue
    vms = dict(pol.vms)
    vms["rf1"] = replace(vms["rf1"], floating_ip=IPv4Address("203.0.113.20"))
    pol = replace(pol, tenants=MappingProxyType(tenants), vms=MappingProxyType(vms))
    return pol, topo
