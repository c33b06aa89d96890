"""Mirroring and flow export without a switch: who may receive a VM's mirrored frames
(the tenant-safety rules), the direction's OVSDB columns, the daemon's view of a
capture port, the status rendering, the IPFIX options and the command line's refusals."""

from __future__ import annotations

import pytest

from sdnctl.cli import main
from sdnctl.policy.load import parse_policy
from sdnctl.render.status import render_status
from sdnctl.southbound.ipfix import IpfixExport, parse_collector
from sdnctl.southbound.mirror import (
    Direction,
    PortView,
    capture_port_refusal,
    netns_refusal,
)
from sdnctl.southbound.ovsdb import CAPTURE_KEY, InterfaceRecord, compute_bindings
from sdnctl.topology.load import parse_topology

TOPOLOGY = """\
version: 1
switches:
  hv1: {dpid: 1, role: hypervisor}
  leaf: {dpid: 16, role: fabric}
links:
  - {a: "hv1:10", b: "leaf:1"}
"""
POLICY = """\
version: 1
tenants:
  t1:
    segments:
      web: {vlan: 10, subnet: 10.1.10.0/24}
  t2:
    segments:
      web: {vlan: 20, subnet: 10.1.10.0/24}
vms:
  a: {tenant: t1, segment: web, mac: "02:00:00:00:10:11", ip: 10.1.10.11, host: hv1}
  ids: {tenant: t1, segment: web, mac: "02:00:00:00:10:12", ip: 10.1.10.12, host: hv1}
  x: {tenant: t2, segment: web, mac: "02:00:00:00:20:11", ip: 10.1.10.11, host: hv1}
"""
TOPO = parse_topology(TOPOLOGY, "t.yaml")
POL = parse_policy(POLICY, "p.yaml", TOPO)
A_PORT = PortView("br1", "vm-a", 1, "", {"vm-id": "a"})


def port(name: str, ofport: int = 5, kind: str = "", bridge: str = "br1",
         **ids: str) -> PortView:
    return PortView(bridge, name, ofport, kind, {k.replace("_", "-"): v for k, v in ids.items()})


def refusal(capture: PortView, other_mirror: str | None = None) -> str | None:
    return capture_port_refusal(POL, TOPO, "a", A_PORT, capture, 1, other_mirror)


def test_a_capture_port_that_another_tenant_could_read_is_refused() -> None:
    assert "of tenant t2: a mirror of a (tenant t1) must not reach another tenant" in \
        refusal(port("vm-x", vm_id="x"))
    assert "which the policy does not name" in refusal(port("vm-ghost", vm_id="ghost"))
    assert "is a patch port" in refusal(port("p0", kind="patch"))
    assert "is a vxlan port" in refusal(port("t0", kind="vxlan"))
    assert "fabric link or tunnel port of hv1" in refusal(port("up0", ofport=10))
    assert "own bridge" in refusal(port("cap0", bridge="br2"))
    assert "a's own port" in refusal(port("vm-a", vm_id="a"))
    assert "already the output of mirror sdnctl-b" in refusal(port("cap0"), "sdnctl-b")


def test_a_capture_port_of_the_same_tenant_or_the_hypervisor_is_allowed() -> None:
    assert refusal(port("vm-ids", vm_id="ids")) is None  # an IDS VM of the tenant
    assert refusal(port("span0", kind="internal")) is None  # tcpdump on the hypervisor
    assert refusal(port("cap0")) is None


def test_a_namespace_holding_another_tenants_vm_is_refused() -> None:
    ports = [port("vm-x", vm_id="x", sdnctl_netns="nsx"),
             port("vm-ids", vm_id="ids", sdnctl_netns="nsids"),
             port("vm-g", vm_id="ghost", sdnctl_netns="nsg")]
    assert "holds VM x of tenant t2" in netns_refusal(POL, "a", "nsx", ports)
    assert "which the policy does not name" in netns_refusal(POL, "a", "nsg", ports)
    assert netns_refusal(POL, "a", "nsids", ports) is None
    assert netns_refusal(POL, "a", "fresh", ports) is None


def test_directions_are_the_vms() -> None:
    assert Direction.OUT.selects == ("select_src_port",)  # what the bridge receives from it
    assert Direction.IN.selects == ("select_dst_port",)  # what the bridge sends to it
    assert set(Direction.BOTH.selects) == {"select_src_port", "select_dst_port"}


def test_a_capture_port_is_neither_a_vm_nor_an_unclaimed_port() -> None:
    records = [InterfaceRecord("br1", 1, "vm-a", 1, {"vm-id": "a"}),
               InterfaceRecord("br1", 1, "mr-a", 7, {CAPTURE_KEY: "a"}),
               InterfaceRecord("br1", 1, "stray", 8, {})]
    snap = compute_bindings(records, POL, TOPO)
    assert set(snap.bindings.ports) == {"a"}
    assert [p.interface for p in snap.unclaimed] == ["stray"]


def test_status_lists_mirrors() -> None:
    mirror = {"name": "sdnctl-a", "bridge": "br1", "vm": "a", "direction": "out",
              "selects": ["vm-a"], "output": "mr-a", "netns": "cap", "tx_packets": 12}
    text = render_status({"mirrors": [mirror]}, now=0)
    assert "mirrors (1)" in text
    line = next(x for x in text.splitlines() if "sdnctl-a" in x)
    assert line.split()[:5] == ["sdnctl-a", "br1", "a", "out", "vm-a"]
    assert "mr-a (netns cap)" in line and line.rstrip().endswith("12")
    assert "mirrors" not in render_status({"mirrors": []}, now=0)


def test_status_shows_the_ipfix_export() -> None:
    ipfix = {"collector": "10.0.0.9:4739", "sampling": 1, "switches": ["hv1", "hv2"],
             "last_error": None}
    assert "ipfix     to 10.0.0.9:4739, 1 packet in 1, from hv1, hv2" in \
        render_status({"ipfix": ipfix}, now=0)
    assert "ipfix" not in render_status({"ipfix": None}, now=0)


def test_ipfix_collector_and_rows() -> None:
    assert parse_collector("127.0.0.1:4739") == "127.0.0.1:4739"
    for bad in ("collector:4739", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "::1:9"):
        with pytest.raises(ValueError):
            parse_collector(bad)
    row = IpfixExport("10.0.0.9:4739", sampling=64).row("hv1", 0x5D7_1234_5678)
    assert row["obs_domain_id"] == [0x1234_5678] and row["sampling"] == [64]
    assert row["targets"] == ["10.0.0.9:4739"] and row["external_ids"] == {"sdnctl-switch": "hv1"}


@pytest.mark.parametrize("argv", [
    ["mirror", "start", "a", "-p", "p", "-t", "t"],  # neither --to nor --netns
    ["mirror", "start", "a", "-p", "p", "-t", "t", "--to", "x", "--netns", "n"],
    ["mirror", "start", "a", "-p", "p", "-t", "t", "--netns", "n", "--direction", "up"],
    ["mirror", "start", "a", "--netns", "n"],  # no -p / -t
    ["run", "-p", "p", "-t", "t", "--ipfix", "collector"],
    ["run", "-p", "p", "-t", "t", "--ipfix", "127.0.0.1:1", "--ipfix-sampling", "0"],
])
def test_bad_arguments_exit_2(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_mirror_start_refuses_an_unknown_vm_before_touching_ovsdb(tmp_path, capsys) -> None:
    (tmp_path / "t.yaml").write_text(TOPOLOGY)
    (tmp_path / "p.yaml").write_text(POLICY)
    code = main(["mirror", "start", "nobody", "--netns", "n", "-p", str(tmp_path / "p.yaml"),
                 "-t", str(tmp_path / "t.yaml"), "--ovsdb", "unix:/nonexistent/db.sock"])
    assert code == 2 and "unknown VM 'nobody'" in capsys.readouterr().err
