"""A data centre with every VM bound, without a hypervisor: files and a private OVSDB.

For running `sdnctl run` on thousands of bound VMs (benchmarks/daemon_scale.py,
tests/integration/test_daemon_startup.py): `policy_doc` and `topology_doc` write a
`sdnctl.bench.datacentre` network as the YAML files the daemon reads, and
`PrivateOvsdb` is an `ovsdb-server` of its own (own socket and database file in a
temp dir, no ovs-vswitchd, nothing shared with the machine's Open vSwitch) that
`populate` fills in one transaction: one Bridge per hypervisor with its
`datapath_id`, one Port and Interface per VM with `external_ids:vm-id`,
`attached-mac` and an `ofport` (columns ovs-vswitchd would write, written by hand
here), at the ports `planned_bindings` gives. `move_vm` moves one VM in one commit.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ovs.jsonrpc
import ovs.stream

from sdnctl.bindings import planned_bindings
from sdnctl.lab.names import rebase_dpid
from sdnctl.lab.session import stop_process
from sdnctl.policy.model import Policy
from sdnctl.tools import require
from sdnctl.topology.model import Role, Topology

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
DPID_BASE = 0xD5CA << 36  # datapath ids no example topology or other lab uses
DPID_BITS = 32  # the data centre's own dpids (spines from 0x10000) fit below DPID_BASE
Doc = dict[str, Any]


# ---- the files ------------------------------------------------------------------------


def policy_doc(policy: Policy) -> Doc:
    """The policy as the YAML document that loads back into it."""
    tenants: Doc = {}
    for t in policy.tenants.values():
        segments = {}
        for s in t.segments.values():
            seg: Doc = {"vlan": s.vlan, "vni": s.vni, "subnet": str(s.subnet),
                        "gateway": str(s.gateway) if s.gateway else None}
            segments[s.name] = {k: v for k, v in seg.items() if v is not None}
        groups = {}
        for g in t.groups.values():
            group: Doc = {"labels": dict(g.labels)} if g.labels else {}
            if g.vms:
                group["vms"] = list(g.vms)
            groups[g.name] = group
        tenants[t.name] = {
            "default": t.default.value, "segments": segments, "groups": groups,
            "rules": [{"from": r.src, "to": r.dst, "allow": [str(s) for s in r.services]}
                      for r in t.rules],
        }
    vms: Doc = {}
    for vm in policy.vms.values():
        doc: Doc = {"tenant": vm.tenant, "segment": vm.segment, "mac": vm.mac,
                    "ip": str(vm.ip), "labels": dict(vm.labels)}
        if vm.host:
            doc["host"] = vm.host
        if vm.rate_limit_mbps:
            doc["rate_limit_mbps"] = vm.rate_limit_mbps
        vms[vm.name] = doc
    return {"version": 1, "tenants": tenants, "vms": vms}


def topology_doc(topology: Topology, base: int = DPID_BASE) -> Doc:
    switches = {s.name: {"dpid": rebase_dpid(s.dpid, base, DPID_BITS), "role": s.role.value}
                for s in topology.switches.values()}
    links = [{"a": str(link.a), "b": str(link.b)} for link in topology.links]
    return {"version": 1, "switches": switches, "links": links}


# ---- a private OVSDB (no vswitchd) ------------------------------------------------------


class PrivateOvsdb:
    """`ovsdb-server` on its own socket and database file, as a child process."""

    def __init__(self, tmp: Path) -> None:
        require("ovsdb-tool", "ovsdb-server", what="a private OVSDB")
        self.db, self.sock = tmp / "conf.db", tmp / "db.sock"
        self.remote = f"unix:{self.sock}"
        subprocess.run(["ovsdb-tool", "create", str(self.db), SCHEMA], check=True)
        self.log = (tmp / "ovsdb-server.log").open("wb")
        self.proc = subprocess.Popen(
            ["ovsdb-server", str(self.db), f"--remote=punix:{self.sock}",
             f"--unixctl={tmp / 'ovsdb-server.ctl'}", "--no-chdir"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 10
        while not self.sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ovsdb-server did not start (see {tmp}/ovsdb-server.log)")
            time.sleep(0.02)

    def transact(self, ops: list[Doc]) -> list[Doc]:
        error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(self.remote), 5000)
        if error:
            raise ConnectionError(f"{self.remote}: {os.strerror(error)}")
        rpc = ovs.jsonrpc.Connection(stream)
        try:
            error, reply = rpc.transact_block(
                ovs.jsonrpc.Message.create_request("transact", ["Open_vSwitch", *ops]))
        finally:
            rpc.close()
        if error or reply.error:
            raise RuntimeError(f"transact: {error or reply.error}")
        results: list[Doc] = reply.result
        failed = [r for r in results if r and "error" in r]
        if failed:
            raise RuntimeError(f"transact: {failed[0]}")
        return results

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def _set(uuids: list[list[str]]) -> list[Any]:
    return ["set", uuids]


def _map(pairs: dict[str, str]) -> list[Any]:
    return ["map", [[k, v] for k, v in pairs.items()]]


@dataclass
class Plugged:
    """What was written to the private OVSDB: VM -> (hypervisor, ofport, Port uuid)."""

    ports: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    next_port: dict[str, int] = field(default_factory=dict)


def populate(db: PrivateOvsdb, policy: Policy, topology: Topology, base: int) -> Plugged:
    """One Bridge per hypervisor, one Port + Interface per VM, in one transaction."""
    bindings = planned_bindings(policy, topology).ports
    ops: list[Doc] = []
    order: list[str] = []
    by_hv: dict[str, list[list[str]]] = {}
    for i, (vm, ref) in enumerate(sorted(bindings.items())):
        ops.append({"op": "insert", "table": "Interface", "uuid-name": f"i{i}", "row": {
            "name": f"vm{i}", "ofport": ref.port,
            "external_ids": _map({"vm-id": vm, "attached-mac": policy.vms[vm].mac})}})
        ops.append({"op": "insert", "table": "Port", "uuid-name": f"p{i}", "row": {
            "name": f"vm{i}", "interfaces": ["named-uuid", f"i{i}"]}})
        order.append(vm)
        by_hv.setdefault(ref.switch, []).append(["named-uuid", f"p{i}"])
    bridges = []
    for sw in topology.switches.values():
        if sw.role is not Role.HYPERVISOR:
            continue
        ops.append({"op": "insert", "table": "Bridge", "uuid-name": f"b_{sw.name}", "row": {
            "name": sw.name, "datapath_id": f"{rebase_dpid(sw.dpid, base, DPID_BITS):016x}",
            "ports": _set(by_hv.get(sw.name, []))}})
        bridges.append(["named-uuid", f"b_{sw.name}"])
    ops.append({"op": "insert", "table": "Open_vSwitch", "row": {"bridges": _set(bridges)}})
    results = db.transact(ops)
    plugged = Plugged()
    for i, vm in enumerate(order):
        ref = bindings[vm]
        plugged.ports[vm] = (ref.switch, ref.port, results[2 * i + 1]["uuid"][1])
        plugged.next_port[ref.switch] = max(plugged.next_port.get(ref.switch, 0), ref.port + 1)
    return plugged


def move_vm(db: PrivateOvsdb, plugged: Plugged, policy: Policy, vm: str, to: str) -> int:
    """The VM's Port leaves its bridge and a new one with its vm-id joins `to`: one commit."""
    hv, _port, port_uuid = plugged.ports[vm]
    ofport = plugged.next_port[to]
    name = f"mv{ofport}{to}"
    results = db.transact([
        {"op": "mutate", "table": "Bridge", "where": [["name", "==", hv]],
         "mutations": [["ports", "delete", _set([["uuid", port_uuid]])]]},
        {"op": "insert", "table": "Interface", "uuid-name": "inew", "row": {
            "name": name, "ofport": ofport,
            "external_ids": _map({"vm-id": vm, "attached-mac": policy.vms[vm].mac})}},
        {"op": "insert", "table": "Port", "uuid-name": "pnew", "row": {
            "name": name, "interfaces": ["named-uuid", "inew"]}},
        {"op": "mutate", "table": "Bridge", "where": [["name", "==", to]],
         "mutations": [["ports", "insert", _set([["named-uuid", "pnew"]])]]},
    ])
    plugged.ports[vm] = (to, ofport, results[2]["uuid"][1])
    plugged.next_port[to] = ofport + 1
    return ofport
