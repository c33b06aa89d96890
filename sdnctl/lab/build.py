"""Build a LabPlan in Mininet on the machine's Open vSwitch, and tear it down again.

Effectful edge: imports mininet and runs ovs-vsctl. Switches are userspace
(`datapath_type=netdev`, there is no OVS kernel module), OpenFlow 1.3 only, fail
mode secure (nothing forwards until the controller says so), and connect to the
controller at `controller`. VMs are bound the way a hypervisor would bind them, in
OVSDB: `Interface.external_ids:vm-id` and `attached-mac` on the switch-side port.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from mininet.net import Mininet
from mininet.node import Host, Node, OVSSwitch, RemoteController

from sdnctl.lab.internet import add_internet, configure_internet
from sdnctl.lab.ovs import vsctl
from sdnctl.lab.plan import HOST_INTF, LabError, LabPlan
from sdnctl.lab.underlay import build_underlay, underlay_bridges, underlay_clashes
from sdnctl.tools import LAB_TOOLS, require

LAB_MARK = "sdnctl-lab"  # Bridge.external_ids key: which lab (prefix) made this bridge


class _DaemonController(RemoteController):
    """RemoteController without the telnet check: the daemon starts after the net."""

    def checkListening(self) -> None:
        return


@dataclass
class Lab:
    """A built lab: the Mininet net and its nodes, by the names the policy uses."""

    plan: LabPlan
    net: Mininet
    hosts: dict[str, Host] = field(default_factory=dict)  # VM name -> host
    switches: dict[str, OVSSwitch] = field(default_factory=dict)  # topology switch -> switch
    internet: Host | None = None  # the host behind the uplinks, when there are gateways


def check_names_free(plan: LabPlan) -> list[str]:
    """Clashes with what already exists on this machine, as messages (none: free).

    Mininet deletes a bridge or interface of the same name before creating its own,
    which would silently destroy someone else's: refuse instead. Also refuse when
    another bridge would make the daemon's VM bindings ambiguous (_twin_vm_ports).
    Every lab builder asks this first, so it also checks that the programs a lab runs
    are here: LabError naming each missing one and its Debian package.
    """
    require(*LAB_TOOLS, what="the Mininet lab", error=LabError)
    existing = set(vsctl("list-br").split())
    problems = [
        f"a bridge named {bridge!r} already exists (another lab? use another prefix)"
        for bridge in (*plan.bridges.values(), *underlay_bridges(plan))
        if bridge in existing
    ]
    problems += [
        f"an interface named {name!r} already exists (another lab? use another prefix)"
        for name in plan.interfaces
        if Path("/sys/class/net", name).exists() and name not in existing
    ]
    return problems + underlay_clashes(plan) + _twin_vm_ports(plan)


def _ovsdb_rows(table: str, *columns: str) -> list[dict[str, Any]]:
    doc = json.loads(vsctl("--format=json", f"--columns={','.join(columns)}", "list", table))
    return [dict(zip(doc["headings"], row, strict=True)) for row in doc["data"]]


def _atoms(value: Any) -> list[Any]:
    """An OVSDB JSON column as a list: ["set", [...]] or a single atom."""
    if isinstance(value, list) and value and value[0] == "set":
        return list(value[1])
    return [value]


def _twin_vm_ports(plan: LabPlan) -> list[str]:
    """Ports of other bridges that carry one of our dpids and claim one of our VMs.

    The daemon finds VM ports in OVSDB by datapath id, machine-wide: such a port
    makes the VM look plugged twice, and the daemon then binds neither copy (the
    lab would time out or blame the policy). Refuse up front instead.
    """
    dpids = {f"{dpid:016x}": sw for sw, dpid in plan.dpids.items()}
    vms = {h.vm for h in plan.hosts}
    claims = {}
    for row in _ovsdb_rows("Interface", "_uuid", "name", "external_ids"):
        vm = dict(row["external_ids"][1]).get("vm-id")
        if vm in vms:
            claims[row["_uuid"][1]] = (row["name"], vm)
    if not claims:
        return []
    port_ifaces = {
        row["_uuid"][1]: [i[1] for i in _atoms(row["interfaces"])]
        for row in _ovsdb_rows("Port", "_uuid", "interfaces")
    }
    problems = []
    for row in _ovsdb_rows("Bridge", "name", "datapath_id", "ports"):
        dpid = next(iter(_atoms(row["datapath_id"])), None)
        if row["name"] in plan.bridges.values() or dpid not in dpids:
            continue
        for port in _atoms(row["ports"]):
            for iface in port_ifaces.get(port[1], []):
                if iface in claims:
                    name, vm = claims[iface]
                    problems.append(
                        f"bridge {row['name']!r} has datapath id {dpid} (our {dpids[dpid]!r}) and"
                        f" port {name!r} bound to VM {vm!r}: the daemon cannot tell the two"
                        " apart (another lab of this topology is running?)"
                    )
    return problems


def build_lab(plan: LabPlan, controller: tuple[str, int],
              more_controllers: Sequence[tuple[str, int]] = ()) -> Lab:
    """Create, start and bind the lab; on any failure tear down what was made.

    `more_controllers`: further controller addresses every switch also connects to
    (replicas, sdnctl/ha/); set at creation, as changing them later flushes the tables."""
    problems = check_names_free(plan)
    if problems:
        raise LabError("refusing to build the lab:\n  " + "\n  ".join(problems))
    lab = _start_net(plan, [controller, *more_controllers], "secure")
    try:
        _configure_switch_ends(plan)
        build_underlay(plan)  # overlay tunnel endpoints, if the topology has any
        _bind_vms(plan)
        check_bridges(plan)
    except BaseException:
        stop_lab(lab)
        raise
    return lab


def build_standalone(plan: LabPlan) -> Lab:
    """The plan's switches, links and hosts without a controller (fail mode standalone)
    and without VM bindings: a network for a baseline that is not sdnctl's."""
    lab = _start_net(plan, [], "standalone")
    try:
        check_bridges(plan)
    except BaseException:
        stop_lab(lab)
        raise
    return lab


def _start_net(plan: LabPlan, controllers: Sequence[tuple[str, int]], fail_mode: str) -> Lab:
    net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False)
    lab = Lab(plan, net)
    try:
        _add_nodes(lab, controllers, fail_mode)
        net.build()
        net.start()
        for h in plan.hosts:
            _configure_host(lab.hosts[h.vm], h.gateway)
        if lab.internet is not None and plan.internet is not None:
            configure_internet(lab.internet, plan.internet)
    except BaseException:
        stop_lab(lab)
        raise
    return lab


def _add_nodes(lab: Lab, controllers: Sequence[tuple[str, int]], fail_mode: str) -> None:
    plan, net = lab.plan, lab.net
    for i, (ip, port) in enumerate(controllers):
        net.addController(plan.controller + (f"r{i}" if i else ""),
                          controller=_DaemonController, ip=ip, port=port)
    for sw, bridge in plan.bridges.items():
        lab.switches[sw] = net.addSwitch(
            bridge,
            cls=OVSSwitch,
            dpid=f"{plan.dpids[sw]:016x}",
            datapath="user",
            protocols="OpenFlow13",
            failMode=fail_mode,
        )
    by_bridge = {bridge: lab.switches[sw] for sw, bridge in plan.bridges.items()}
    for link in plan.links:
        net.addLink(
            by_bridge[link.a_bridge], by_bridge[link.b_bridge],
            port1=link.a_port, port2=link.b_port,
            intfName1=link.a_intf, intfName2=link.b_intf,
        )
    for h in plan.hosts:
        host = net.addHost(h.name, ip=f"{h.ip}/{h.prefixlen}", mac=h.mac)
        lab.hosts[h.vm] = host
        # The host is node1 so Mininet creates eth0 inside its namespace, where the
        # name is free, and the switch end in the root namespace.
        net.addLink(
            host, lab.switches[h.switch], port1=0, port2=h.port,
            intfName1=HOST_INTF, intfName2=h.intf, addr1=h.mac,
        )
    if plan.internet is not None:
        lab.internet = add_internet(net, plan.internet, lab.switches)


def _configure_host(host: Host, gateway: IPv4Address | None) -> None:
    # Checksum offload off: on the userspace datapath the kernel leaves TCP
    # checksums to a NIC that does not exist, and conntrack marks the SYNs +inv.
    host.cmd(f"ethtool -K {HOST_INTF} tx off")
    # No IPv6 chatter (router solicitations, DAD) for port security to drop.
    host.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
    if gateway is not None:
        out = host.cmd(f"ip route replace default via {gateway} dev {HOST_INTF}")
        if out.strip():
            raise LabError(f"{host.name}: cannot add default route via {gateway}: {out.strip()}")


# Frames between hypervisors carry a VLAN tag and an MPLS label: 8 bytes more than
# the VM sent. Like any overlay, the fabric needs the larger MTU, or full-size
# packets between hypervisors are dropped without a word.
FABRIC_MTU = 1600


def _configure_switch_ends(plan: LabPlan) -> None:
    """Fabric links get FABRIC_MTU; the root namespace stays silent on switch ports."""
    fabric = [name for link in plan.links for name in (link.a_intf, link.b_intf)]
    for name in fabric:
        _ip("link", "set", "dev", name, "mtu", str(FABRIC_MTU))
    if fabric:
        vsctl(*[arg for name in fabric
                for arg in ("--", "set", "Interface", name, f"mtu_request={FABRIC_MTU}")][1:])
    # The host kernel would otherwise send IPv6 router solicitations out of the
    # switch ends of the veths, straight into the VMs, bypassing OVS.
    uplinks = list(plan.internet.interfaces) if plan.internet is not None else []
    for name in fabric + [h.intf for h in plan.hosts] + uplinks:
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
            f.write("1")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _bind_vms(plan: LabPlan) -> None:
    """What a hypervisor does when it plugs a VM: name the port's VM in OVSDB."""
    args: list[str] = []
    for h in plan.hosts:
        args += ["--", "set", "Interface", h.intf,
                 f'external_ids:vm-id="{h.vm}"', f'external_ids:attached-mac="{h.mac}"']
    for bridge in plan.bridges.values():
        args += ["--", "set", "Bridge", bridge, f'external_ids:{LAB_MARK}="{plan.prefix}"']
    if args:
        vsctl(*args[1:])


def check_bridges(plan: LabPlan) -> None:
    """A bridge that is not netdev is accepted by OVS but forwards nothing: catch it."""
    for bridge in plan.bridges.values():
        kind = vsctl("get", "Bridge", bridge, "datapath_type").strip('"')
        if kind != "netdev":
            raise LabError(f"bridge {bridge} has datapath_type {kind!r}, not 'netdev'")
        for h in plan.hosts:
            if h.bridge == bridge:
                ofport = vsctl("get", "Interface", h.intf, "ofport")
                if ofport != str(h.port):
                    raise LabError(f"{h.intf} got OpenFlow port {ofport}, planned {h.port}")


def stop_lab(lab: Lab) -> None:
    """Tear down everything the lab made, even if Mininet's own stop fails midway.

    Mininet's stop is the normal path; afterwards every bridge, interface and node
    shell of the plan is removed again by name or PID, which is a no-op when
    Mininet got them all. Never `mn -c`: it would take other people's bridges too.
    """
    nodes: list[Node] = list(lab.net.values())
    for node in nodes:
        # A node interrupted in the middle of cmd() (Ctrl-C) refuses new commands.
        node.waiting = False
    try:
        lab.net.stop()
    finally:
        bridges = list(lab.plan.bridges.values()) + underlay_bridges(lab.plan)
        with contextlib.suppress(LabError):
            vsctl(*[a for b in bridges for a in ("--", "--if-exists", "del-br", b)][1:])
        for name in lab.plan.interfaces:
            if Path("/sys/class/net", name).exists():
                subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
        for node in nodes:
            shell = getattr(node, "shell", None)
            if shell is not None and shell.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(shell.pid, signal.SIGKILL)
                shell.wait()
