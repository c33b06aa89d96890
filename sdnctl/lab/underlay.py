"""The lab's overlay underlay: where VXLAN tunnels between hypervisors terminate.

Effectful edge (ovs-vsctl, ovs-ofctl, ovs-appctl, ip). Each hypervisor with a
`tunnel_ip` gets

- a VXLAN port on its bridge at the topology's `tunnel_port`, with
  `remote_ip=flow` and `key=flow` (the controller's flows choose the far end and
  the VNI) and `local_ip` = its tunnel address;
- an underlay bridge (`<bridge>-ul`, userspace, standalone, no controller) whose
  LOCAL interface holds the tunnel address as a /32.

Why it works on one ovs-vswitchd (see docs/decisions.md, "Overlay lab"): OVS's
userspace ("native") tunnelling routes an encapsulated frame by its own route
table, which mirrors the kernel's; the kernel holds every tunnel address as a
local address, so the frame for hypervisor B is pushed, VXLAN header and all,
into B's underlay bridge as if from its LOCAL port. One flow there sends UDP/4789
from LOCAL back to LOCAL, and an output to a bridge's LOCAL port of a frame for
one of OVS's tunnel endpoints is where OVS decapsulates (`tnl_pop`): the frame
comes out of B's VXLAN port with `tun_id` = the VNI and `tun_src` = A. Each
underlay bridge's neighbour entry for its own address is set by hand, since no
ARP is ever answered on these bridges.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Iterable

from sdnctl.lab.plan import LabError, LabPlan, TunnelPlan

VXLAN_UDP_PORT = 4789
ROUTE_WAIT = 5.0  # seconds for OVS to learn a new tunnel address from the kernel


def _run(*cmd: str) -> str:
    done = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


def vsctl_args_for(tunnel: TunnelPlan) -> list[str]:
    """ovs-vsctl arguments (one transaction) creating the underlay bridge and the
    VXLAN port of one hypervisor."""
    return [
        "--", "add-br", tunnel.underlay,
        "--", "set", "Bridge", tunnel.underlay, "datapath_type=netdev", "fail_mode=standalone",
        "--", "add-port", tunnel.bridge, tunnel.intf,
        "--", "set", "Interface", tunnel.intf, "type=vxlan", f"ofport_request={tunnel.port}",
        "options:remote_ip=flow", "options:key=flow", f"options:local_ip={tunnel.ip}",
    ]


def build_underlay(plan: LabPlan) -> None:
    """Create every tunnel endpoint of the plan (after the hypervisor bridges exist)."""
    if not plan.tunnels:
        return
    args = [a for t in plan.tunnels for a in vsctl_args_for(t)]
    _run("ovs-vsctl", "--timeout=10", *args[1:])
    for t in plan.tunnels:
        # The root namespace must not talk on the underlay (IPv6 autoconf, DAD).
        with open(f"/proc/sys/net/ipv6/conf/{t.underlay}/disable_ipv6", "w") as f:
            f.write("1")
        _run("ip", "addr", "add", f"{t.ip}/32", "dev", t.underlay)
        _run("ip", "link", "set", t.underlay, "up")
        _run("ovs-ofctl", "add-flow", t.underlay,
             f"priority=10,in_port=LOCAL,udp,tp_dst={VXLAN_UDP_PORT},actions=in_port")
    _wait_for_routes(plan.tunnels)
    for t in plan.tunnels:
        mac = _run("cat", f"/sys/class/net/{t.underlay}/address").strip()
        _run("ovs-appctl", "tnl/neigh/set", t.underlay, str(t.ip), mac)
        port = _run("ovs-vsctl", "get", "Interface", t.intf, "ofport").strip()
        if port != str(t.port):
            raise LabError(f"{t.intf} got OpenFlow port {port}, planned {t.port}")


def _wait_for_routes(tunnels: Iterable[TunnelPlan]) -> None:
    """OVS learns addresses from the kernel asynchronously: wait until it routes to
    every tunnel address through the right underlay bridge."""
    want = {f"{t.ip}/32 dev {t.underlay}" for t in tunnels}
    deadline = time.monotonic() + ROUTE_WAIT
    while True:
        routes = _run("ovs-appctl", "ovs/route/show")
        missing = {w for w in want if w not in routes}
        if not missing:
            return
        if time.monotonic() > deadline:
            raise LabError(f"OVS never learned the tunnel routes {sorted(missing)}")
        time.sleep(0.1)


def underlay_clashes(plan: LabPlan) -> list[str]:
    """Tunnel addresses this machine already uses or reaches through a route of its own
    (an address, a connected subnet, a gateway), as messages: the lab would take them
    over as local addresses and cut the machine off from them while it runs."""
    if not plan.tunnels:
        return []
    addrs = json.loads(_run("ip", "-j", "addr"))
    routes = json.loads(_run("ip", "-j", "route"))
    used = {ipaddress.IPv4Address(a["local"]) for link in addrs
            for a in link.get("addr_info", []) if a.get("family") == "inet"}
    used |= {ipaddress.IPv4Address(r["gateway"]) for r in routes if "gateway" in r}
    nets = [ipaddress.IPv4Network(r["dst"], strict=False) for r in routes
            if r.get("dst") not in (None, "default")]
    problems = []
    for t in plan.tunnels:
        if t.ip in used or any(t.ip in net for net in nets):
            problems.append(f"tunnel_ip {t.ip} of {t.switch} is an address or route this "
                            "machine already uses: pick another (e.g. 198.51.100.0/24)")
    return problems


def underlay_bridges(plan: LabPlan) -> list[str]:
    return [t.underlay for t in plan.tunnels]
