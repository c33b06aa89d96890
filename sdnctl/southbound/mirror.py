"""Port mirroring for `sdnctl mirror start | stop | list`: OVSDB Mirror records.

A mirror copies one VM's frames to a capture port on the VM's own bridge: an
existing port (`--to PORT`: an internal port for tcpdump on the hypervisor, a
monitoring VM of the same tenant) or a veth into a namespace that sdnctl makes
(`--netns NS`). Directions are the VM's: `out` is what the VM sends (OVS
`select_src_port`: frames the bridge receives on the VM's port, as the VM sent
them), `in` is what it receives (`select_dst_port`: frames the bridge outputs to
the VM's port, after the pipeline allowed them), `both` is both.

Tenant safety rests on two facts. OVS reserves a mirror's output port for the
mirror: nothing but the selected frames is output to it, and what arrives on it is
discarded. And the selection is the VM's own port, whose traffic is the VM's by
construction (port security drops anything else it sends; the pipeline delivers it
only what the policy allows). So the one way to leak is a capture end that another
tenant can read, which is refused (`Refused`, exit 2): a VM port of another tenant
or of a VM the policy does not name, a namespace holding such a VM, a fabric link,
a patch or tunnel port (frames would leave the hypervisor), the VM's own port, a
port that already is another mirror's output.

The capture end must be on the VM's bridge: OVS mirrors within one bridge, and
mirroring a VM on another hypervisor than the capture point is not provided (run
the command on the VM's hypervisor). The mirror follows the port, not the VM: after
a migration it selects nothing until started again where the VM now is.

State lives in OVSDB only (Mirror rows named `sdnctl-VM`, tagged with
`external_ids`; capture interfaces tagged `sdnctl-mirror=VM`), so it survives a
daemon or ovs-vswitchd restart, the daemon shows it (/status `mirrors`), and
`mirror stop` finds everything it made without a state file of its own.
"""

from __future__ import annotations

import contextlib
import enum
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdnctl.policy.model import Policy
from sdnctl.southbound.ovsdb import CAPTURE_KEY, MIRROR_VM_KEY, VM_ID_KEY
from sdnctl.southbound.ovsdb import MIRROR_DIRECTION_KEY as DIRECTION_KEY
from sdnctl.southbound.ovsdb_write import OvsdbError, OvsdbWriter
from sdnctl.southbound.vmlinks import (
    Attachment,
    Kind,
    Refused,
    WireError,
    ensure_link,
    get_link,
    kernel,
    remove_netns_if_empty,
)
from sdnctl.southbound.vmwire import (
    CREATED_KEY,
    NETNS_KEY,
    Outcome,
    resolve_vm,
    vm_key,
    wire_failures,
)
from sdnctl.tools import require
from sdnctl.topology.model import Topology

NAME_PREFIX = "sdnctl-"
CAPTURE_MTU = 9000  # a mirrored frame is never cut short by the capture end
SAFE_KINDS = ("", "system", "tap", "internal")  # stay on this machine; not patch or tunnel

_COLUMNS = {
    "Bridge": ["mirrors"],
    "Interface": ["type"],
    "Mirror": ["name", "select_src_port", "select_dst_port", "output_port", "select_all",
               "statistics", "external_ids"],
}


class Direction(enum.StrEnum):
    IN = "in"  # frames delivered to the VM
    OUT = "out"  # frames the VM sends
    BOTH = "both"

    @property
    def selects(self) -> tuple[str, ...]:
        """The Mirror columns that select the VM's port for this direction."""
        return {Direction.IN: ("select_dst_port",), Direction.OUT: ("select_src_port",),
                Direction.BOTH: ("select_src_port", "select_dst_port")}[self]


def mirror_name(vm: str) -> str:
    return f"{NAME_PREFIX}{vm}"


def capture_ifnames(vm: str) -> tuple[str, str]:
    """(host end on the bridge, end in the namespace) of a `--netns` capture."""
    key = vm_key(vm)
    return f"mr-{key}", f"cap-{key}"


# ---- tenant safety (pure) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortView:
    """What OVSDB says about one port (and its one interface)."""

    bridge: str
    name: str
    ofport: int | None
    kind: str  # Interface.type
    external_ids: Mapping[str, str]


def capture_port_refusal(policy: Policy, topology: Topology, vm: str, vm_port: PortView,
                         capture: PortView, dpid: int | None,
                         other_mirror: str | None) -> str | None:
    """Why `capture` may not receive `vm`'s mirrored frames (None: it may).

    `dpid`: the capture bridge's datapath id; `other_mirror`: the name of a mirror
    that already outputs to `capture`, other than this VM's."""
    tenant = policy.vms[vm].tenant
    where = f"port {capture.name}"
    if capture.bridge != vm_port.bridge:
        return (f"{where} is on bridge {capture.bridge}, {vm} on {vm_port.bridge}: the capture "
                "port must be on the VM's own bridge (mirroring across hypervisors is not "
                "provided)")
    if capture.name == vm_port.name:
        return f"{where} is {vm}'s own port"
    if capture.kind not in SAFE_KINDS:
        return (f"{where} is a {capture.kind} port: mirrored frames would leave this "
                "hypervisor")
    switch = topology.by_dpid(dpid) if dpid is not None else None
    if switch is not None and capture.ofport is not None and (
            capture.ofport in topology.link_ports(switch.name)
            or capture.ofport == switch.tunnel_port):
        return f"{where} is a fabric link or tunnel port of {switch.name}"
    owner = capture.external_ids.get(VM_ID_KEY)
    if owner:
        if owner == vm:
            return f"{where} is {vm}'s own port"
        if owner not in policy.vms:
            return (f"{where} is bound to vm-id {owner}, which the policy does not name: its "
                    "tenant is unknown")
        if policy.vms[owner].tenant != tenant:
            return (f"{where} is VM {owner}'s port, of tenant {policy.vms[owner].tenant}: a "
                    f"mirror of {vm} (tenant {tenant}) must not reach another tenant")
    if other_mirror is not None:
        return f"{where} is already the output of mirror {other_mirror}"
    return None


def netns_refusal(policy: Policy, vm: str, netns: str, ports: list[PortView]) -> str | None:
    """Why namespace `netns` may not hold `vm`'s capture end: it holds a VM of another
    tenant, or one the policy does not name (plugged there by `sdnctl vm plug`)."""
    tenant = policy.vms[vm].tenant
    for port in ports:
        owner = port.external_ids.get(VM_ID_KEY)
        if not owner or port.external_ids.get(NETNS_KEY) != netns or owner == vm:
            continue
        if owner not in policy.vms:
            return (f"namespace {netns} holds vm-id {owner}, which the policy does not name: "
                    "its tenant is unknown")
        if policy.vms[owner].tenant != tenant:
            return (f"namespace {netns} holds VM {owner} of tenant {policy.vms[owner].tenant}: "
                    f"a mirror of {vm} (tenant {tenant}) must not reach another tenant")
    return None


# ---- reading OVSDB ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MirrorView:
    """One Mirror row as `mirror list` and the daemon show it."""

    name: str
    bridge: str
    vm: str | None  # None: not made by sdnctl
    direction: str
    selects: tuple[str, ...]  # the port names it selects (empty: the VM's port is gone)
    output: str | None
    capture_netns: str | None
    tx_packets: int | None

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "bridge": self.bridge, "vm": self.vm,
                "direction": self.direction, "selects": list(self.selects),
                "output": self.output, "netns": self.capture_netns,
                "tx_packets": self.tx_packets}


def _one(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _port_view(bridge: str, port: Any) -> PortView:
    iface = next(iter(port.interfaces), None)
    if iface is None:
        return PortView(bridge, port.name, None, "", {})
    ofport = _one(iface.ofport)
    return PortView(bridge, port.name, int(ofport) if ofport else None, iface.type or "",
                    dict(iface.external_ids))


class _Ovsdb:
    """The rows a mirror command reads, looked up once per command."""

    def __init__(self, db: OvsdbWriter) -> None:
        self.db = db
        self.bridges = {row.name: row for row in db.rows("Bridge")}
        self.port_rows: dict[str, tuple[str, Any]] = {}  # port name -> (bridge, row)
        for bridge in self.bridges.values():
            for port in bridge.ports:
                self.port_rows[port.name] = (bridge.name, port)

    def view(self, name: str) -> PortView | None:
        found = self.port_rows.get(name)
        return _port_view(*found) if found else None

    def views(self) -> list[PortView]:
        return [_port_view(b, p) for b, p in self.port_rows.values()]

    def vm_ports(self, vm: str) -> list[PortView]:
        return [v for v in self.views() if v.external_ids.get(VM_ID_KEY) == vm]

    def mirrors(self) -> list[tuple[str, Any]]:
        return [(bridge.name, m) for bridge in self.bridges.values() for m in bridge.mirrors]

    def dpid(self, bridge: str) -> int | None:
        row = self.bridges[bridge]
        text = _one(row.datapath_id) or row.other_config.get("datapath-id")
        try:
            return int(text, 16) if text else None
        except ValueError:
            return None


def _mirror_view(bridge: str, row: Any, netns_of: Mapping[str, str]) -> MirrorView:
    ids = row.external_ids
    selects = sorted({p.name for p in list(row.select_src_port) + list(row.select_dst_port)})
    output = _one(row.output_port)
    out_name = output.name if output is not None else None
    return MirrorView(row.name, bridge, ids.get(MIRROR_VM_KEY), ids.get(DIRECTION_KEY, "?"),
                      tuple(selects), out_name, netns_of.get(out_name or ""),
                      row.statistics.get("tx_packets"))


def list_mirrors(ovsdb: str) -> list[MirrorView]:
    with wire_failures(), OvsdbWriter(ovsdb, more_columns=_COLUMNS) as db:
        rows = _Ovsdb(db)
        netns_of = {v.name: v.external_ids[NETNS_KEY] for v in rows.views()
                    if CAPTURE_KEY in v.external_ids and NETNS_KEY in v.external_ids}
        return sorted((_mirror_view(b, m, netns_of) for b, m in rows.mirrors()),
                      key=lambda m: (m.bridge, m.name))


# ---- start and stop ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capture:
    """Where the mirrored frames go: an existing port, or a namespace sdnctl wires."""

    port: str | None = None
    netns: str | None = None


def _the_vm_port(rows: _Ovsdb, vm: str, ovsdb: str) -> PortView:
    ports = rows.vm_ports(vm)
    if not ports:
        raise Refused(f"{vm} is not plugged into the Open vSwitch at {ovsdb}: run `sdnctl "
                      "mirror start` on the hypervisor the VM runs on (the capture end must be "
                      "on the VM's own bridge)")
    if len(ports) > 1:
        raise Refused(f"{vm} is claimed by ports {', '.join(p.name for p in ports)} (a "
                      "migration half-way?): finish it first")
    return ports[0]


def start_mirror(policy: Policy, topology: Topology, vm: str, capture: Capture,
                 direction: Direction, ovsdb: str) -> Outcome:
    """Mirror `vm`'s frames (`direction`) to `capture`; running it again changes nothing."""
    resolve_vm(policy, vm)
    out = Outcome()
    with wire_failures(), OvsdbWriter(ovsdb, more_columns=_COLUMNS) as db:
        rows = _Ovsdb(db)
        vm_port = _the_vm_port(rows, vm, ovsdb)
        if capture.netns:
            refusal = netns_refusal(policy, vm, capture.netns, rows.views())
            wanted = capture_ifnames(vm)[0]
        else:
            assert capture.port
            view = rows.view(capture.port)
            if view is None:
                raise Refused(f"no OVS port named {capture.port!r}")
            others = [m.name for _, m in rows.mirrors() if _one(m.output_port) is not None
                      and _one(m.output_port).name == view.name
                      and m.external_ids.get(MIRROR_VM_KEY) != vm]
            refusal = capture_port_refusal(policy, topology, vm, vm_port, view,
                                           rows.dpid(view.bridge), others[0] if others else None)
            wanted = view.name
        if refusal:
            raise Refused(refusal)
        mine = [m for _, m in rows.mirrors() if m.external_ids.get(MIRROR_VM_KEY) == vm]
        now = _one(mine[0].output_port) if mine else None
        if now is not None and now.name != wanted:  # before anything is made for it
            raise Refused(f"{vm} is already mirrored to port {now.name}: `sdnctl mirror "
                          f"stop {vm}` first")
        out_port = (_wire_netns_capture(db, rows, vm, vm_port, capture.netns, out)
                    if capture.netns else wanted)
        _write_mirror(db, vm, vm_port, out_port, direction, out)
    where = (f"namespace {capture.netns}, interface {capture_ifnames(vm)[1]}"
             if capture.netns else f"port {out_port}")
    out.summary = (f"{vm}: mirrored ({direction.value}) to {where} on bridge {vm_port.bridge}"
                   if out.changes else
                   f"{vm}: already mirrored ({direction.value}) to {where}; nothing changed")
    return out


def _wire_netns_capture(db: OvsdbWriter, rows: _Ovsdb, vm: str, vm_port: PortView, netns: str,
                        out: Outcome) -> str:
    """A veth from the VM's bridge into `netns` (created if missing); its host end's name."""
    host_if, guest_if = capture_ifnames(vm)
    existing = rows.view(host_if)
    if existing is not None and existing.bridge != vm_port.bridge:
        raise Refused(f"{vm}'s capture port {host_if} is on bridge {existing.bridge}, the VM "
                      f"on {vm_port.bridge}: `sdnctl mirror stop {vm}` first")
    if existing is not None and existing.external_ids.get(NETNS_KEY) != netns:
        raise Refused(f"{vm} is already mirrored to namespace "
                      f"{existing.external_ids.get(NETNS_KEY)}: `sdnctl mirror stop {vm}` first")
    att = Attachment(Kind.NETNS, host_if, netns, guest_if)
    with kernel(netns, create=True) as k:
        if k.created:
            out.changes.append(f"created namespace {netns}")
        recreated = ensure_link(k, att, None, CAPTURE_MTU, out.changes)
    created = k.created or (existing is not None
                            and existing.external_ids.get(CREATED_KEY) == "true")
    ids = {CAPTURE_KEY: vm, NETNS_KEY: netns, CREATED_KEY: "true" if created else "false"}
    bridge = rows.bridges[vm_port.bridge]

    def build(txn: Any) -> None:
        for port in list(bridge.ports):
            if port.name == host_if and recreated:  # OVS keeps a dead port for a new link
                bridge.delvalue("ports", port.uuid)
        if existing is None or recreated:
            iface = txn.insert(db.table("Interface"))
            iface.name = host_if
            iface.external_ids = ids
            port = txn.insert(db.table("Port"))
            port.name = host_if
            port.interfaces = [iface]
            bridge.addvalue("ports", port.uuid)

    if existing is None or recreated:
        db.transact(build, "sdnctl mirror")
        out.changes.append(f"added {host_if} to bridge {vm_port.bridge} (capture end, "
                           f"{netns}:{guest_if})")
    db.wait_ofport(host_if)
    return host_if


def _write_mirror(db: OvsdbWriter, vm: str, vm_port: PortView, out_port: str,
                  direction: Direction, out: Outcome) -> None:
    """The Mirror row, created or brought to `direction`, in one transaction."""
    changed: list[str] = []

    def build(txn: Any) -> None:
        changed.clear()
        bridges = {row.name: row for row in db.rows("Bridge", fresh=False)}
        bridge = bridges[vm_port.bridge]
        ports = {p.name: p for p in bridge.ports}
        selected, output = ports.get(vm_port.name), ports.get(out_port)
        if selected is None or output is None:
            raise OvsdbError(f"port {vm_port.name if selected is None else out_port} "
                             f"left bridge {vm_port.bridge} meanwhile")
        want: dict[str, Any] = {
            column: [selected] if column in direction.selects else []
            for column in ("select_src_port", "select_dst_port")}
        want["output_port"] = [output]
        want["external_ids"] = {MIRROR_VM_KEY: vm, DIRECTION_KEY: direction.value}
        row = next((m for m in bridge.mirrors
                    if m.external_ids.get(MIRROR_VM_KEY) == vm), None)
        if row is None:
            row = txn.insert(db.table("Mirror"))
            row.name = mirror_name(vm)
            for column, value in want.items():  # a new row's columns cannot be read yet
                setattr(row, column, value)
            bridge.addvalue("mirrors", row.uuid)
            changed.append(f"created mirror {mirror_name(vm)} on bridge {vm_port.bridge}")
            return
        for column, value in want.items():
            have = getattr(row, column)
            same = (dict(have) == value if isinstance(value, dict)
                    else sorted(p.uuid for p in have) == sorted(p.uuid for p in value))
            if not same:
                setattr(row, column, value)
                changed.append(f"mirror {mirror_name(vm)}: {column} set"
                               if column != "external_ids" else
                               f"mirror {mirror_name(vm)}: direction {direction.value}")

    db.transact(build, "sdnctl mirror", applied=True)
    out.changes += changed
    if changed:
        revalidate()


def revalidate() -> None:
    """Make the datapath follow a mirror change now. Open vSwitch 3.1 (userspace
    datapath) re-translates no cached datapath flow when only a Mirror row changes:
    measured, a removed mirror kept copying a busy VM's frames to its old output port,
    and a new one missed them, until the flows went idle (10 s). Purging the cached
    flows makes each flow's next packet take the new mirror set (one upcall per flow,
    on every bridge of this ovs-vswitchd; a mirror command is rare)."""
    require("ovs-appctl", what="a mirror change", error=WireError)
    done = subprocess.run(["ovs-appctl", "revalidator/purge"], capture_output=True, text=True,
                          timeout=10, check=False)
    if done.returncode != 0:
        raise WireError(f"ovs-appctl revalidator/purge: {done.stderr.strip()}")


def stop_mirrors(vm: str | None, ovsdb: str) -> Outcome:
    """Remove the mirror of `vm` (None: every mirror sdnctl made here) and the capture
    ends it made; a namespace it created goes too once empty."""
    out = Outcome()
    what = vm or "every sdnctl mirror"
    with wire_failures(), OvsdbWriter(ovsdb, more_columns=_COLUMNS) as db:
        rows = _Ovsdb(db)
        doomed = [(b, m) for b, m in rows.mirrors()
                  if MIRROR_VM_KEY in m.external_ids
                  and (vm is None or m.external_ids[MIRROR_VM_KEY] == vm)]
        captures = [v for v in rows.views() if CAPTURE_KEY in v.external_ids
                    and (vm is None or v.external_ids[CAPTURE_KEY] == vm)]
        if not doomed and not captures and not _stray_links(vm):
            out.summary = f"{what}: not mirrored; nothing to do"
            return out
        names = {m.name for _, m in doomed}
        capture_names = {v.name for v in captures}

        def build(_txn: Any) -> None:
            for bridge in db.rows("Bridge", fresh=False):
                for m in list(bridge.mirrors):
                    if m.name in names and MIRROR_VM_KEY in m.external_ids:
                        bridge.delvalue("mirrors", m.uuid)  # non-root: OVSDB collects it
                for port in list(bridge.ports):
                    if port.name in capture_names:
                        bridge.delvalue("ports", port.uuid)

        db.transact(build, "sdnctl mirror", applied=True)
        if doomed:
            revalidate()
        out.changes += [f"removed mirror {m.name} from bridge {b}" for b, m in doomed]
        out.changes += [f"removed port {v.name} from bridge {v.bridge}" for v in captures]
    with kernel(None) as k:
        for name in sorted({v.name for v in captures} | set(_stray_links(vm))):
            link = get_link(k.host, name)
            if link is not None:
                k.host.link("del", index=link["index"])  # a veth takes its far end along
                out.changes.append(f"deleted {name}")
    for netns in sorted({v.external_ids[NETNS_KEY] for v in captures
                         if v.external_ids.get(CREATED_KEY) == "true"}):
        remove_netns_if_empty(netns, out.changes, out.notes)
    out.summary = f"{what}: mirror stopped"
    return out


def _stray_links(vm: str | None) -> list[str]:
    """A capture veth left without its OVSDB port (a start interrupted half-way)."""
    if vm is None:
        return []
    name = capture_ifnames(vm)[0]
    with contextlib.suppress(WireError), kernel(None) as k:
        return [name] if get_link(k.host, name) is not None else []
    return []
