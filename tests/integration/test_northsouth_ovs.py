"""North–south through real Open vSwitch: SNAT, floating IPs, inbound rules.

The compiled tables of a leaf-spine data centre with two gateways are loaded into
netdev bridges (patch ports for links); VMs are namespaces, and the "internet" is
one namespace behind both gateways' uplinks: the router (203.0.113.1) and a
server (198.51.100.10). Two tenants share the VM address 10.0.1.11 (red's rf1,
blue's bx1): their NAT must never mix them up.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.flows import render_flowset_ofctl
from sdnctl.lab.names import unique_name
from tests.integration.conftest import VmPort, add_vm, make_bridge, random_dpid, sh
from tests.unit.nsnet import net

pytestmark = pytest.mark.ovs

ROUTER_MAC = "02:aa:00:00:00:01"
SERVER = "198.51.100.10"

_WHOAMI = textwrap.dedent(
    """
    import socket, sys, threading
    def serve(port):
        srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port)); srv.listen(16)
        while True:
            c, peer = srv.accept()
            try:
                c.settimeout(2); c.recv(16); c.sendall(peer[0].encode())
            except OSError:
                pass
            c.close()
    for p in sys.argv[1:]:
        threading.Thread(target=serve, args=(int(p),)).start()
    print("ready", flush=True)
    """
)

_ASK = textwrap.dedent(
    """
    import socket, sys
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
        s.sendall(b"who\\n"); print(s.recv(64).decode())
    except OSError:
        sys.exit(1)
    """
)


def ask(ns: str, dst: str, port: int, timeout: float = 2.0) -> str | None:
    """Connect from namespace `ns`; the address the server saw us as, or None."""
    res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", _ASK, dst, str(port),
                          str(timeout)], capture_output=True, text=True, timeout=timeout + 10)
    return res.stdout.strip() if res.returncode == 0 else None


def whoami(cleanup, ns: str, *ports: int) -> None:
    proc = cleanup.process(subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", _WHOAMI, *map(str, ports)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
    assert proc.stdout is not None and proc.stdout.readline().startswith(b"ready")


def load(bridge: str, text: str, tmp) -> None:
    lines = text.splitlines()
    for line in lines:
        if line.startswith("# meter: "):
            sh(["ovs-ofctl", "-O", "OpenFlow13", "add-meter", bridge, line[9:]])
        elif line.startswith("# group: "):
            sh(["ovs-ofctl", "-O", "OpenFlow13", "add-group", bridge, line[9:]])
    path = tmp / f"{bridge}.flows"
    path.write_text("\n".join(ln for ln in lines if not ln.startswith("#")) + "\n")
    sh(["ovs-ofctl", "-O", "OpenFlow13", "add-flows", bridge, str(path)])


@pytest.fixture
def dc(cleanup, tmp_path):
    policy, topo = net()
    bindings = planned_bindings(policy, topo)
    flows = compile_network(policy, topo, bindings)
    bridges = {name: make_bridge(cleanup, random_dpid()) for name in topo.switches}
    for link in topo.links:
        a, b = unique_name(), unique_name()
        for end, me, peer in ((link.a, a, b), (link.b, b, a)):
            sh(["ovs-vsctl", "add-port", bridges[end.switch], me, "--", "set", "Interface", me,
                "type=patch", f"options:peer={peer}", f"ofport_request={end.port}"])
    vms: dict[str, VmPort] = {}
    for name, ref in bindings.ports.items():
        vm = policy.vms[name]
        seg = policy.segment_of(vm)
        vms[name] = add_vm(cleanup, bridges[ref.switch], ref.port, vm.mac,
                           f"{vm.ip}/{seg.subnet.prefixlen}", str(seg.gateway) if seg.gateway
                           else None)
    inet = cleanup.netns(unique_name())
    sh(["ip", "netns", "add", inet])
    sh(["ip", "-n", inet, "link", "add", "br0", "type", "bridge"])
    sh(["ip", "-n", inet, "link", "set", "br0", "address", ROUTER_MAC])
    sh(["ip", "-n", inet, "addr", "add", "203.0.113.1/24", "dev", "br0"])
    sh(["ip", "-n", inet, "addr", "add", f"{SERVER}/32", "dev", "lo"])
    for uplink in topo.uplinks():
        outer, inner = cleanup.veth(unique_name()), unique_name()
        sh(["ip", "link", "add", outer, "type", "veth", "peer", "name", inner])
        sh(["ip", "link", "set", inner, "netns", inet])
        sh(["ip", "-n", inet, "link", "set", inner, "master", "br0", "up"])
        sh(["ip", "netns", "exec", inet, "ethtool", "-K", inner, "tx", "off"])
        sh(["ip", "link", "set", outer, "up"])
        sh(["ovs-vsctl", "add-port", bridges[uplink.switch], outer, "--", "set", "Interface",
            outer, f"ofport_request={uplink.port}"])
    for dev in ("lo", "br0"):
        sh(["ip", "-n", inet, "link", "set", dev, "up"])
    sh(["ip", "netns", "exec", inet, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
    for name, fs in flows.items():
        load(bridges[name], render_flowset_ofctl(fs), tmp_path)
    return policy, vms, inet


def test_vms_go_out_with_their_nat_address(dc, cleanup):
    policy, vms, inet = dc
    whoami(cleanup, inet, 443)
    # rf1 has a floating IP: it goes out with it.
    assert ask(vms["rf1"].ns, SERVER, 443) == "203.0.113.20"
    # blue's bx1 has rf1's very address inside; it goes out with blue's pool.
    assert ask(vms["bx1"].ns, SERVER, 443) == "203.0.113.12"
    # red's back segment has no outbound rule.
    assert ask(vms["rb1"].ns, SERVER, 443, timeout=1.0) is None
    # red's rule names tcp/443 only.
    whoami(cleanup, inet, 8443)
    assert ask(vms["rf1"].ns, SERVER, 8443, timeout=1.0) is None


def test_outside_reaches_a_floating_ip_by_rule_only(dc, cleanup):
    policy, vms, inet = dc
    whoami(cleanup, vms["rf1"].ns, 80, 22)
    whoami(cleanup, vms["bx1"].ns, 80)
    # The VM sees the client's real address.
    assert ask(inet, "203.0.113.20", 80) == "203.0.113.1"
    assert ask(inet, "203.0.113.20", 22, timeout=1.0) is None
    # A pool address forwards nothing to anyone.
    assert ask(inet, "203.0.113.10", 80, timeout=1.0) is None
    assert ask(inet, "203.0.113.12", 80, timeout=1.0) is None
    # The VM's inside address is not reachable from outside at all.
    sh(["ip", "-n", inet, "route", "add", "10.0.1.0/24", "via", "203.0.113.2"])
    assert ask(inet, "10.0.1.11", 80, timeout=1.0) is None


def test_a_floating_ip_from_inside_goes_out_and_back_in(dc, cleanup):
    """Hairpin through the external router: both tenants' rules must allow it."""
    policy, vms, inet = dc
    whoami(cleanup, vms["rf1"].ns, 80)
    # blue may go anywhere outside; red lets anyone outside reach rf1 on tcp/80.
    assert ask(vms["bx2"].ns, "203.0.113.20", 80) == "203.0.113.12"
    # red's own VMs may go out to 198.51.100.0/24 only: not to their floating IP.
    assert ask(vms["rb1"].ns, "203.0.113.20", 80, timeout=1.0) is None
