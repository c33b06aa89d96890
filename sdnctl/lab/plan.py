"""What the lab will build, by name and port, decided before anything is touched.

Pure: (policy, topology, prefix) -> LabPlan. `build` turns a plan into Mininet
nodes; keeping the naming here lets it be checked (lengths, clashes) up front and
lets teardown know every name the lab may have created.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from sdnctl.bindings import planned_bindings
from sdnctl.pipeline import gateway_mac
from sdnctl.policy.ipv6 import SLAAC_PREFIX, eui64_address, link_local
from sdnctl.policy.model import Policy
from sdnctl.topology.model import Topology

IFNAMSIZ = 15  # Linux interface (and so OVS bridge) names are at most 15 characters
HOST_INTF = "eth0"  # the VM side of every VM link
_PREFIX = re.compile(r"[A-Za-z0-9_-]*")


class LabError(Exception):
    """The lab cannot be built or run as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class HostPlan:
    """One VM as a Mininet host, plugged into its `host` switch at the planned port."""

    vm: str  # the policy's VM name: what OVSDB's vm-id carries and reports show
    name: str  # the Mininet host name (prefix + vm)
    switch: str  # topology switch name
    bridge: str
    port: int  # OpenFlow port on the bridge, from planned_bindings
    intf: str  # switch-side interface name
    mac: str
    ip: IPv4Address
    prefixlen: int
    gateway: IPv4Address | None  # None: the segment is not routed, no default route
    ip6: IPv6Address | None = None  # None: the segment carries no IPv6
    prefixlen6: int = 0
    gateway6: IPv6Address | None = None  # None: not routed for IPv6
    # The distributed router's link-local address, a routed VM's IPv6 default route
    # (what the controller's router advertisements come from); None without gateway6.
    router6: IPv6Address | None = None

    @property
    def slaac(self) -> bool:
        """Whether the VM's `ip6` is what SLAAC builds from its MAC (else it is set
        by hand, as an operator would configure a given address)."""
        return self.ip6 is not None and self.ip6 == eui64(self)


@dataclass(frozen=True, slots=True)
class LinkPlan:
    """A fabric link with the topology's port numbers on both ends."""

    a_bridge: str
    a_port: int
    a_intf: str
    b_bridge: str
    b_port: int
    b_intf: str


@dataclass(frozen=True, slots=True)
class TunnelPlan:
    """A hypervisor's overlay tunnel endpoint: its VXLAN port and the underlay bridge
    whose LOCAL interface holds the tunnel address (sdnctl.lab.underlay)."""

    switch: str
    bridge: str  # the hypervisor's bridge, which gets the VXLAN port
    port: int  # OpenFlow port of the VXLAN port (the topology's tunnel_port)
    intf: str  # the VXLAN port's name
    underlay: str  # the underlay bridge's name
    ip: IPv4Address


@dataclass(frozen=True, slots=True)
class LabPlan:
    prefix: str
    bridges: Mapping[str, str]  # topology switch -> bridge name
    dpids: Mapping[str, int]  # topology switch -> datapath id
    links: tuple[LinkPlan, ...]
    hosts: tuple[HostPlan, ...]
    unplaced: tuple[str, ...]  # VMs with no hypervisor to plug into: not probed
    controller: str  # name of the Mininet controller node
    tunnels: tuple[TunnelPlan, ...] = ()  # hypervisors with a tunnel_ip

    @property
    def interfaces(self) -> tuple[str, ...]:
        """Every interface the lab creates in the root namespace (switch side)."""
        names = [h.intf for h in self.hosts]
        for link in self.links:
            names += [link.a_intf, link.b_intf]
        return tuple(names + [t.underlay for t in self.tunnels])

    def host(self, vm: str) -> HostPlan:
        for h in self.hosts:
            if h.vm == vm:
                return h
        raise KeyError(vm)


def eui64(h: HostPlan) -> IPv6Address | None:
    """The address SLAAC builds for this VM in its segment's /64, None in another."""
    if h.ip6 is None or h.prefixlen6 != SLAAC_PREFIX:
        return None
    return eui64_address(IPv6Network(f"{h.ip6}/{h.prefixlen6}", strict=False), h.mac)


def intf_name(bridge: str, port: int) -> str:
    """Mininet's own naming for a switch port, kept so `ovs-vsctl show` reads as usual."""
    return f"{bridge}-eth{port}"


def plan_lab(policy: Policy, topology: Topology, prefix: str = "") -> LabPlan:
    """Names and ports for every switch, link and placed VM; LabError if unbuildable."""
    problems: list[str] = []
    if not _PREFIX.fullmatch(prefix):
        problems.append(f"name prefix {prefix!r} may only use letters, digits, '-' and '_'")
    bridges = {sw: prefix + sw for sw in topology.switches}
    links = tuple(
        LinkPlan(
            bridges[link.a.switch], link.a.port, intf_name(bridges[link.a.switch], link.a.port),
            bridges[link.b.switch], link.b.port, intf_name(bridges[link.b.switch], link.b.port),
        )
        for link in topology.links
    )
    bindings = planned_bindings(policy, topology)
    hosts = []
    for vm in policy.vms.values():
        ref = bindings.ports.get(vm.name)
        if ref is None:
            continue
        segment = policy.segment_of(vm)
        bridge = bridges[ref.switch]
        hosts.append(
            HostPlan(
                vm=vm.name, name=prefix + vm.name, switch=ref.switch, bridge=bridge,
                port=ref.port, intf=intf_name(bridge, ref.port), mac=vm.mac, ip=vm.ip,
                prefixlen=segment.subnet.prefixlen, gateway=segment.gateway,
                ip6=vm.ip6, prefixlen6=segment.subnet6.prefixlen if segment.subnet6 else 0,
                gateway6=segment.gateway6,
                router6=link_local(gateway_mac(segment.id)) if segment.gateway6 else None,
            )
        )
    plan = LabPlan(
        prefix=prefix,
        bridges=bridges,
        dpids={sw: s.dpid for sw, s in topology.switches.items()},
        links=links,
        hosts=tuple(hosts),
        unplaced=tuple(vm for vm in policy.vms if vm not in bindings.ports),
        controller=prefix + "ctl",
        tunnels=tuple(
            TunnelPlan(sw, bridges[sw], topology.switches[sw].tunnel_port,
                       bridges[sw] + "-vx", bridges[sw] + "-ul", ip)
            for sw, ip in sorted(topology.tunnel_endpoints().items())
        ),
    )
    problems += _name_problems(plan)
    if problems:
        raise LabError("cannot build the lab:\n  " + "\n  ".join(problems))
    return plan


def _name_problems(plan: LabPlan) -> list[str]:
    problems = []
    for name in (*plan.bridges.values(), *plan.interfaces):
        if len(name) > IFNAMSIZ:
            problems.append(
                f"interface name {name!r} is {len(name)} characters, Linux allows {IFNAMSIZ}:"
                " use a shorter prefix or switch name"
            )
    # Mininet keeps one namespace of node names for hosts, switches and controllers.
    seen: dict[str, str] = {}
    nodes = [(b, "switch") for b in plan.bridges.values()]
    nodes += [(h.name, "VM") for h in plan.hosts] + [(plan.controller, "controller")]
    nodes += [(t.underlay, "underlay bridge") for t in plan.tunnels]
    for name, kind in nodes:
        if name in seen:
            problems.append(f"{kind} {name!r} has the same Mininet name as a {seen[name]}")
        seen[name] = kind
    return problems
