"""Live VM bindings from OVSDB: who is plugged where, as the switches themselves say.

An Interface with `external_ids:vm-id=NAME` and an ofport > 0, on a bridge whose
`datapath_id` is a switch of the topology, binds VM NAME to (switch, ofport).
The controller trusts nothing else about placement (DESIGN.md §2).

A port is left unbound (so the pipeline drops its traffic) and reported when its
vm-id names no VM of the policy, when its `external_ids:attached-mac` disagrees with
the policy's MAC, when it sits on a fabric link port, or when two ports claim the
same VM. Of two claims, the one that already held the binding keeps it (a move
plugs the new port before unplugging the old: the VM keeps working at the old place
until then, and moves when the old port goes); with no such claim, neither binds.

`compute_bindings` is the pure rule over plain records; `OvsdbMonitor` keeps an
`ovs.db.idl` replica of the three tables it needs, polls it in its own daemon
thread, and calls back with a new `BindingSnapshot` whenever the result changes.
The callback runs in that thread: the daemon's hands the snapshot to the os-ken
app's event queue, which is thread-safe (os-ken 4's default hub is real threads).
Snapshots are numbered (`seq`), so the app can drop one that a policy reload's own
`rebind` has already superseded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import ovs.db.idl
import ovs.jsonrpc
import ovs.poller
import ovs.stream

from sdnctl.bindings import Bindings
from sdnctl.policy.model import Policy
from sdnctl.topology.model import PortRef, Role, Topology

log = logging.getLogger("ovsdb")

DEFAULT_REMOTE = "unix:/var/run/openvswitch/db.sock"
VM_ID_KEY = "vm-id"
OFPP_MAX = 0xFF00  # ports from here up are reserved (LOCAL is 0xfffe)
VM_PORT_KINDS = ("", "system", "tap")  # what a VM NIC looks like; not tunnels, patches
MAC_KEY = "attached-mac"

_COLUMNS = {
    "Bridge": ["name", "datapath_id", "ports"],
    "Port": ["name", "interfaces"],
    "Interface": ["name", "ofport", "external_ids", "type"],
}


@dataclass(frozen=True, slots=True)
class InterfaceRecord:
    """What OVSDB says about one interface (plain data, no IDL rows)."""

    bridge: str
    datapath_id: int | None
    interface: str
    ofport: int | None
    external_ids: dict[str, str] = field(default_factory=dict)
    kind: str = ""  # Interface.type: "" (system), "tap", "internal", "vxlan", "patch"...


@dataclass(frozen=True, slots=True, order=True)
class PortProblem:
    """A port with a vm-id that gets no binding, and why."""

    switch: str
    port: int
    interface: str
    vm: str
    reason: str

    def __str__(self) -> str:
        return f"{self.switch}:{self.port} ({self.interface}) vm-id={self.vm}: {self.reason}"

    def as_json(self) -> dict[str, object]:
        return {
            "switch": self.switch, "port": self.port, "interface": self.interface,
            "vm": self.vm, "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class BindingSnapshot:
    bindings: Bindings
    problems: tuple[PortProblem, ...] = ()
    # VM-like ports (system or tap) of hypervisors that carry no vm-id at all: plugged,
    # bound to nothing, dropping everything (sprawl, or a plug that half failed).
    unclaimed: tuple[PortProblem, ...] = ()
    seq: int = field(default=0, compare=False)  # order of computation (monitor), 0: unknown


def compute_bindings(
    records: Iterable[InterfaceRecord],
    policy: Policy,
    topology: Topology,
    previous: Bindings | None = None,
) -> BindingSnapshot:
    """The live bindings and the refused ports, from OVSDB interface records.

    `previous`: the bindings in force; a VM claimed by several ports stays where it
    was bound if that port is among the claims (the others are reported)."""
    claims: dict[str, list[tuple[PortRef, str]]] = {}
    problems: list[PortProblem] = []
    unclaimed: list[PortProblem] = []
    for rec in records:
        vm = rec.external_ids.get(VM_ID_KEY)
        if rec.datapath_id is None or not rec.ofport or not 0 < rec.ofport < OFPP_MAX:
            continue  # not ready yet (no ofport), or the bridge's own LOCAL port
        sw = topology.by_dpid(rec.datapath_id)
        if sw is None:
            continue  # a bridge this controller does not manage
        ref = PortRef(sw.name, rec.ofport)
        if not vm:
            if (sw.role is Role.HYPERVISOR and rec.kind in VM_PORT_KINDS
                    and ref.port not in topology.link_ports(sw.name)):
                unclaimed.append(PortProblem(ref.switch, ref.port, rec.interface, "",
                                             "no vm-id: bound to no VM"))
            continue

        mac = rec.external_ids.get(MAC_KEY)
        if vm not in policy.vms:
            reason = "vm-id names no VM of the policy"
        elif ref.port in topology.link_ports(sw.name):
            reason = "port is a fabric link in the topology"
        elif mac and mac.lower() != policy.vms[vm].mac:
            reason = f"attached-mac {mac} is not the policy's {policy.vms[vm].mac}"
        else:
            claims.setdefault(vm, []).append((ref, rec.interface))
            continue
        problems.append(PortProblem(ref.switch, ref.port, rec.interface, vm, reason))
    ports: dict[str, PortRef] = {}
    for vm, where in claims.items():
        if len(where) == 1:
            ports[vm] = where[0][0]
            continue
        held = previous.ports.get(vm) if previous else None
        if held in [r for r, _ in where]:
            ports[vm] = held
            reason = f"vm-id already bound at {held}"
            problems += [PortProblem(r.switch, r.port, iface, vm, reason)
                         for r, iface in where if r != held]
            continue
        reason = "vm-id claimed by several ports: " + ", ".join(sorted(str(r) for r, _ in where))
        problems += [PortProblem(r.switch, r.port, iface, vm, reason) for r, iface in where]
    bindings = Bindings(MappingProxyType(dict(sorted(ports.items()))))
    return BindingSnapshot(bindings, tuple(sorted(problems)), tuple(sorted(unclaimed)))


def _one(value: Any) -> Any:
    """An optional OVSDB column reads as [] or [x]."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def records_from_idl(idl: ovs.db.idl.Idl) -> list[InterfaceRecord]:
    records = []
    for bridge in idl.tables["Bridge"].rows.values():
        dpid_text = _one(bridge.datapath_id)
        try:
            dpid = int(dpid_text, 16) if dpid_text else None
        except ValueError:
            dpid = None
        for port in bridge.ports:
            for iface in port.interfaces:
                ofport = _one(iface.ofport)
                records.append(
                    InterfaceRecord(
                        bridge=bridge.name,
                        datapath_id=dpid,
                        interface=iface.name,
                        ofport=int(ofport) if ofport is not None else None,
                        external_ids=dict(iface.external_ids),
                        kind=iface.type or "",
                    )
                )
    return records


def fetch_schema(remote: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The Open_vSwitch schema as the server has it (so columns always match)."""
    error, stream = ovs.stream.Stream.open_block(
        ovs.stream.Stream.open(remote), int(timeout_s * 1000)
    )
    if error:
        raise ConnectionError(f"cannot connect to OVSDB at {remote}: {error}")
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        error, reply = rpc.transact_block(
            ovs.jsonrpc.Message.create_request("get_schema", ["Open_vSwitch"])
        )
    finally:
        rpc.close()
    if error or reply.error:
        raise ConnectionError(f"OVSDB {remote}: get_schema failed: {error or reply.error}")
    schema: dict[str, Any] = reply.result
    return schema


Callback = Callable[[BindingSnapshot], None]


class OvsdbMonitor:
    """Keeps the live bindings current and calls back on every change."""

    def __init__(
        self,
        remote: str,
        policy: Policy,
        topology: Topology,
        on_change: Callback | None = None,
        poll_ms: int = 500,
    ) -> None:
        self.remote = remote
        self._policy = policy
        self._topology = topology
        self._callbacks: list[Callback] = [on_change] if on_change else []
        self._poll_ms = poll_ms
        self._snapshot: BindingSnapshot | None = None
        self._records: list[InterfaceRecord] | None = None  # the last full read
        self._seq = 0
        # Held while computing a snapshot and making it current, so a reload's rebind and
        # the poller never interleave (the old policy's snapshot current after the new).
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._force = False
        self._thread: threading.Thread | None = None

    # -- public ------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ovsdb-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wait_ready(self, timeout_s: float) -> bool:
        """True once the first full replica has been read."""
        return self._ready.wait(timeout_s)

    def snapshot(self) -> BindingSnapshot:
        return self._snapshot or BindingSnapshot(Bindings())

    def subscribe(self, callback: Callback) -> None:
        """Call `callback` on every change from now on. A subscriber that finds
        `wait_ready(0)` false afterwards is sure to hear of the first snapshot."""
        self._callbacks.append(callback)

    def set_policy(self, policy: Policy) -> None:
        """A reloaded policy may turn refused ports into bindings, or back."""
        self._policy = policy
        self._force = True

    def rebind(self, policy: Policy, topology: Topology) -> BindingSnapshot:
        """Switch to a reloaded policy and topology and return the bindings under them
        at once, from the last read of OVSDB (no callback: the caller applies them)."""
        with self._lock:
            self._policy, self._topology = policy, topology
            if self._records is None:
                return self.snapshot()  # nothing read yet: the first read will publish
            snap = compute_bindings(self._records, policy, topology, self._previous())
            self._seq += 1
            self._snapshot = replace(snap, seq=self._seq)
            return self._snapshot

    def _previous(self) -> Bindings | None:
        return self._snapshot.bindings if self._snapshot else None

    # -- the loop ----------------------------------------------------------------
    def _run(self) -> None:
        idl = None
        while not self._stop.is_set():
            try:
                if idl is None:
                    idl = self._connect()
                self._poll(idl)
            except Exception as exc:  # keep monitoring whatever one pass hit
                log.error("OVSDB %s: %s; retrying", self.remote, exc)
                if idl is not None:
                    idl.close()
                idl = None
                self._stop.wait(1.0)
        if idl is not None:
            idl.close()

    def _connect(self) -> ovs.db.idl.Idl:
        helper = ovs.db.idl.SchemaHelper(schema_json=fetch_schema(self.remote))
        for table, columns in _COLUMNS.items():
            helper.register_columns(table, columns)
        log.info("monitoring OVSDB %s", self.remote)
        return ovs.db.idl.Idl(self.remote, helper)

    def _poll(self, idl: ovs.db.idl.Idl) -> None:
        seqno = idl.change_seqno
        idl.run()
        if (idl.change_seqno != seqno or self._force) and idl.has_ever_connected():
            self._force = False
            records = records_from_idl(idl)
            with self._lock:
                self._records = records
                snap = self._advance(compute_bindings(
                    records, self._policy, self._topology, self._previous()))
                self._ready.set()  # before notifying: see `subscribe`
            if snap is not None:
                # Outside the lock: a subscriber may block (a full event queue) on a
                # thread that is waiting in rebind() for this lock.
                self._notify(snap)
        poller = ovs.poller.Poller()
        idl.wait(poller)
        poller.timer_wait(self._poll_ms)
        poller.block()

    def _advance(self, snap: BindingSnapshot) -> BindingSnapshot | None:
        """Make `snap` current if it differs; the numbered snapshot to announce, if any."""
        if snap == self._snapshot:
            return None
        self._seq += 1
        self._snapshot = replace(snap, seq=self._seq)
        return self._snapshot

    def _notify(self, snap: BindingSnapshot) -> None:
        for cb in list(self._callbacks):
            try:
                cb(snap)
            except Exception:
                log.exception("binding callback failed")
