"""The lab's "internet": one host behind every gateway uplink.

When the topology has gateways, the lab adds a host (`<prefix>inet`) with one link
to each uplink port. Inside it, a Linux bridge joins those links, so two gateways
on one uplink subnet share it as they would share a real router's LAN; the bridge
holds every uplink's next hop address (the external router), forwards IPv4
(`ip_forward`), and the host's loopback holds the servers' and the client's
external addresses. Every probe from or to the outside starts or ends there.

The router's MAC is the uplinks' `next_hop_mac` when they name one (all must name
the same one: one bridge, one MAC), else ROUTER_MAC (the router the simulator's
`sdnctl.verify.outside` models), which the controller must learn.
An uplink with a `vlan` is refused: the lab's kernel has no 802.1Q module.

`plan_internet` is pure; `add_internet` and `configure_internet` run while the lab
is built (sdnctl.lab.build), and the host goes with the Mininet net at teardown.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING

from sdnctl.lab.plan import intf_name
from sdnctl.topology.model import Topology
from sdnctl.verify.outside import ROUTER_MAC  # the simulator's outside is this router

if TYPE_CHECKING:  # mininet is imported only when a lab is built
    from mininet.net import Mininet
    from mininet.node import Host, OVSSwitch

SERVER = IPv4Address("198.51.100.10")  # a server on the internet (documentation range)
CLIENT = IPv4Address("198.51.100.20")  # where the internet's own probes come from
BRIDGE = "br0"  # the router's LAN, inside its namespace


class InternetError(ValueError):
    """The topology's uplinks cannot be faced by the lab's one router."""


@dataclass(frozen=True, slots=True)
class UplinkEnd:
    """One link between the router and a gateway's uplink port."""

    switch: str  # the gateway
    bridge: str
    port: int  # the uplink's OpenFlow port
    intf: str  # the switch-side interface name (root namespace)
    inner: str  # the router-side interface name (inside the router)
    gateway_ip: IPv4Address  # the gateway's own address on the uplink


@dataclass(frozen=True, slots=True)
class InternetPlan:
    name: str  # the Mininet host
    mac: str  # the router's MAC on its bridge
    ends: tuple[UplinkEnd, ...]
    router_ips: tuple[IPv4Interface, ...]  # every next hop, with its uplink prefix
    server: IPv4Address
    client: IPv4Address

    @property
    def interfaces(self) -> tuple[str, ...]:
        """The switch-side interfaces it creates in the root namespace."""
        return tuple(e.intf for e in self.ends)


def plan_internet(topology: Topology, bridges: dict[str, str],
                  prefix: str) -> InternetPlan | None:
    """The internet host for `topology`'s uplinks; None when it has none."""
    uplinks = topology.uplinks()
    if not uplinks:
        return None
    tagged = [u.name for u in uplinks if u.vlan is not None]
    if tagged:
        raise InternetError(
            f"uplink {', '.join(tagged)} has a vlan: the lab's internet cannot face tagged"
            " uplinks (this kernel has no 802.1Q module)")
    macs = {u.next_hop_mac for u in uplinks if u.next_hop_mac is not None}
    if len(macs) > 1:
        raise InternetError(
            f"the uplinks name different next_hop_mac ({', '.join(sorted(macs))}): the lab's"
            " internet is one router with one MAC")
    ends = tuple(
        UplinkEnd(u.switch, bridges[u.switch], u.port, intf_name(bridges[u.switch], u.port),
                  f"up{i}", u.ip.ip)
        for i, u in enumerate(uplinks)
    )
    hops: dict[IPv4Address, IPv4Interface] = {}
    for u in uplinks:
        hops.setdefault(u.next_hop, IPv4Interface(f"{u.next_hop}/{u.ip.network.prefixlen}"))
    return InternetPlan(prefix + "inet", next(iter(macs), ROUTER_MAC), ends,
                        tuple(hops.values()), SERVER, CLIENT)


def route_inside(plan: InternetPlan, subnets: list[IPv4Network]) -> list[list[str]]:
    """`ip route` commands that point the data centre's own subnets at the first
    gateway: what an outside attacker would do to reach inside addresses directly."""
    via = plan.ends[0].gateway_ip
    return [["ip", "route", "replace", str(net), "via", str(via)]
            for net in sorted(set(subnets), key=lambda n: (int(n.network_address), n.prefixlen))]


# ---------------------------------------------------------------- the machine


def add_internet(net: Mininet, plan: InternetPlan,
                 switches: dict[str, OVSSwitch]) -> Host:
    """Add the router host and its links to `net` (before `net.build()`)."""
    host = net.addHost(plan.name, ip=None)
    for end in plan.ends:
        # The host is node1, so its end is made inside its namespace (free names).
        net.addLink(host, switches[end.switch], port2=end.port, intfName1=end.inner,
                    intfName2=end.intf)
    return host


def configure_internet(host: Host, plan: InternetPlan) -> None:
    """Bridge the uplink links, give the router its addresses, start forwarding."""
    script = [
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
        f"ip link add {BRIDGE} type bridge",
        f"ip link set {BRIDGE} address {plan.mac}",
    ]
    for end in plan.ends:
        script += [f"ip addr flush dev {end.inner}", f"ip link set {end.inner} master {BRIDGE} up",
                   f"ethtool -K {end.inner} tx off"]
    script += [f"ip addr add {ip} dev {BRIDGE}" for ip in plan.router_ips]
    script += [f"ip addr add {plan.server}/32 dev lo", f"ip addr add {plan.client}/32 dev lo",
               f"ip link set {BRIDGE} up", "ip link set lo up",
               f"ethtool -K {BRIDGE} tx off", "sysctl -qw net.ipv4.ip_forward=1"]
    for line in script:
        out = host.cmd(line + " 2>&1 >/dev/null || echo FAILED")
        if "FAILED" in out:
            raise InternetError(f"{plan.name}: {line}: {out.strip()}")
