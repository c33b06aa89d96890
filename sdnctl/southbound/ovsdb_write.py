"""Write VM ports into OVSDB through the `ovs` IDL (no ovs-vsctl, no output parsing).

`OvsdbWriter` keeps a replica of the three tables a VM port touches (Bridge, Port,
Interface) and applies a `PortChanges` (ports to add, external_ids to set, ports to
delete) as ONE OVSDB transaction: so a VM's binding can move from one port to
another atomically, and the daemon never sees the VM claimed by two ports (which
it would refuse, binding neither) nor by none.

Every port written here has exactly one interface of the same name, like
`ovs-vsctl add-port` makes.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

with warnings.catch_warnings():
    # ovs.poller probes for eventlet, whose import prints a deprecation notice on
    # every `sdnctl vm` run; we never use eventlet here.
    warnings.filterwarnings("ignore", message=r"(?s)\s*Eventlet is deprecated")
    import ovs.db.idl
    import ovs.poller

    from sdnctl.southbound.ovsdb import MAC_KEY, VM_ID_KEY, fetch_schema

_COLUMNS = {
    "Open_vSwitch": ["next_cfg", "cur_cfg"],
    "Bridge": ["name", "datapath_id", "other_config", "ports"],
    "Port": ["name", "interfaces"],
    "Interface": ["name", "ofport", "error", "external_ids"],
}
_RETRIES = 5  # TRY_AGAIN: someone else changed a row we read; rebuild and retry


class OvsdbError(Exception):
    """OVSDB could not be reached, or refused or timed out on what we asked."""


@dataclass(frozen=True, slots=True)
class BridgeInfo:
    name: str
    dpid: int | None  # from `datapath_id` (or `other_config:datapath-id` until it is set)


@dataclass(frozen=True, slots=True)
class PortInfo:
    bridge: str
    name: str  # port and interface name
    ofport: int | None
    external_ids: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class NewPort:
    bridge: str
    name: str
    external_ids: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PortChanges:
    """What one transaction does; applied in the order add, set, delete."""

    add: tuple[NewPort, ...] = ()
    set_ids: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: MappingProxyType({}))  # interface -> keys to set
    delete: tuple[str, ...] = ()  # port names

    def __bool__(self) -> bool:
        return bool(self.add or self.set_ids or self.delete)


def binding_ids(vm: str, mac: str) -> dict[str, str]:
    """The external_ids that bind an interface to a VM, as `ovsdb.py` reads them."""
    return {VM_ID_KEY: vm, MAC_KEY: mac}


def _one(value: Any) -> Any:
    """An optional OVSDB column reads as [] or [x]."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _parse_dpid(text: str | None) -> int | None:
    try:
        return int(text, 16) if text else None
    except ValueError:
        return None


class OvsdbWriter:
    """An IDL connection for reading bridges and ports and writing VM ports.

    Use as a context manager; every blocking wait is bounded by `timeout_s`.
    """

    def __init__(self, remote: str, timeout_s: float = 10.0,
                 more_columns: Mapping[str, list[str]] | None = None) -> None:
        self.remote = remote
        self.timeout_s = timeout_s
        try:
            helper = ovs.db.idl.SchemaHelper(schema_json=fetch_schema(remote, timeout_s))
        except (ConnectionError, OSError) as exc:
            raise OvsdbError(str(exc)) from exc
        wanted = {table: list(columns) for table, columns in _COLUMNS.items()}
        for table, columns in (more_columns or {}).items():  # mirrors, IPFIX: their modules
            wanted[table] = sorted(set(wanted.get(table, [])) | set(columns))
        for table, columns in wanted.items():
            helper.register_columns(table, columns)
        self._idl = ovs.db.idl.Idl(remote, helper)
        self._run_until(self._idl.has_ever_connected, "the first OVSDB replica")

    def __enter__(self) -> OvsdbWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._idl.close()

    # -- reading -------------------------------------------------------------------
    def bridges(self) -> list[BridgeInfo]:
        self._idl.run()
        out = []
        for row in self._table("Bridge"):
            dpid = _parse_dpid(_one(row.datapath_id)) or _parse_dpid(
                row.other_config.get("datapath-id"))
            out.append(BridgeInfo(row.name, dpid))
        return sorted(out, key=lambda b: b.name)

    def ports_named(self, names: Iterable[str], vm_id: str | None = None) -> list[PortInfo]:
        """The ports (on any bridge) whose interface has one of `names` or, if given,
        `external_ids:vm-id=vm_id`; by name."""
        self._idl.run()
        wanted = set(names)
        out = []
        for bridge in self._table("Bridge"):
            for port in bridge.ports:
                for iface in port.interfaces:
                    if iface.name in wanted or (
                            vm_id is not None and iface.external_ids.get(VM_ID_KEY) == vm_id):
                        ofport = _one(iface.ofport)
                        out.append(PortInfo(bridge.name, iface.name,
                                            int(ofport) if ofport is not None else None,
                                            MappingProxyType(dict(iface.external_ids))))
        return sorted(out, key=lambda p: p.name)

    # -- writing -------------------------------------------------------------------
    def commit(self, changes: PortChanges) -> None:
        """Apply `changes` in one transaction (retried if a row we read changed)."""
        if changes:
            self.transact(lambda txn: self._build(txn, changes), "sdnctl vm")

    def transact(self, build: Callable[[ovs.db.idl.Transaction], None], comment: str,
                 applied: bool = False) -> None:
        """Run `build(txn)` on fresh rows and commit it as one transaction (rebuilt and
        retried if a row it read changed meanwhile). `build` may read `rows(TABLE)`.
        `applied`: also wait until ovs-vswitchd has applied it (as `ovs-vsctl` does, by
        `next_cfg`/`cur_cfg`), not only until OVSDB has stored it."""
        for _ in range(_RETRIES):
            self._idl.run()
            txn = ovs.db.idl.Transaction(self._idl)
            txn.add_comment(comment)
            build(txn)
            root = next(iter(self._table("Open_vSwitch")), None) if applied else None
            if root is not None:
                root.increment("next_cfg")
            status = self._commit_block(txn)
            if status in (txn.SUCCESS, txn.UNCHANGED):
                if root is not None and status == txn.SUCCESS:
                    self._wait_cfg(txn.get_increment_new_value())
                return
            if status != txn.TRY_AGAIN:
                raise OvsdbError(f"OVSDB {self.remote}: transaction failed: {txn.get_error()}")
        raise OvsdbError(f"OVSDB {self.remote}: transaction kept conflicting, gave up")

    def wait_change(self, timeout_s: float) -> None:
        """Until OVSDB sends a change (or `timeout_s`)."""
        seqno = self._idl.change_seqno
        deadline = time.monotonic() + timeout_s
        while self._idl.change_seqno == seqno and time.monotonic() < deadline:
            self._idl.run()
            if self._idl.change_seqno != seqno:
                return
            self._block(None)

    def _wait_cfg(self, cfg: int) -> None:
        def done() -> bool:
            root = next(iter(self._table("Open_vSwitch")), None)
            return root is not None and int(root.cur_cfg) >= cfg

        self._run_until(done, "sign that ovs-vswitchd applied the change")

    def rows(self, table: str, fresh: bool = True) -> list[Any]:
        """The replica's rows of `table` (IDL rows: read attributes, write in `transact`);
        inside `transact`'s `build`, `fresh=False` (the replica is frozen meanwhile)."""
        if fresh:
            self._idl.run()
        return self._table(table)

    def table(self, table: str) -> Any:
        """The IDL table, for `txn.insert`."""
        return self._idl.tables[table]

    def wait_ofport(self, name: str) -> int:
        """The OpenFlow port OVS gives interface `name`; OvsdbError with OVS's reason
        if it refuses the interface, or after the timeout."""
        found: list[int] = []

        def ready() -> bool:
            for row in self._table("Interface"):
                if row.name != name:
                    continue
                ofport, error = _one(row.ofport), _one(row.error)
                if error:
                    raise OvsdbError(f"OVS refuses interface {name}: {error}")
                if ofport is not None and int(ofport) > 0:
                    found.append(int(ofport))
                    return True
            return False

        self._run_until(ready, f"an OpenFlow port number for {name}")
        return found[0]

    # -- internals -----------------------------------------------------------------
    def _table(self, name: str) -> list[Any]:
        return list(self._idl.tables[name].rows.values())

    def _build(self, txn: ovs.db.idl.Transaction, changes: PortChanges) -> None:
        bridges = {row.name: row for row in self._table("Bridge")}
        ifaces = {row.name: row for row in self._table("Interface")}
        for new in changes.add:
            bridge = bridges.get(new.bridge)
            if bridge is None:
                raise OvsdbError(f"OVSDB {self.remote}: no bridge {new.bridge!r}")
            iface = txn.insert(self._idl.tables["Interface"])
            iface.name = new.name
            iface.external_ids = dict(new.external_ids)
            port = txn.insert(self._idl.tables["Port"])
            port.name = new.name
            port.interfaces = [iface]
            bridge.addvalue("ports", port.uuid)
        for name, ids in changes.set_ids.items():
            if name not in ifaces:
                raise OvsdbError(f"OVSDB {self.remote}: no interface {name!r}")
            for key, value in ids.items():
                ifaces[name].setkey("external_ids", key, value)
        doomed = set(changes.delete)
        for bridge in bridges.values():
            for port in bridge.ports:
                if port.name in doomed:
                    # Dropping the reference is enough: OVSDB garbage-collects the
                    # Port and its Interface (both are non-root tables).
                    bridge.delvalue("ports", port.uuid)

    def _commit_block(self, txn: ovs.db.idl.Transaction) -> Any:
        deadline = time.monotonic() + self.timeout_s
        while True:
            status = txn.commit()
            if status != txn.INCOMPLETE:
                return status
            if time.monotonic() > deadline:
                txn.abort()
                raise OvsdbError(f"OVSDB {self.remote}: no answer to a transaction "
                                 f"within {self.timeout_s:g} s")
            self._idl.run()
            self._block(txn)

    def _run_until(self, done: Any, what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            self._idl.run()
            if done():
                return
            if time.monotonic() > deadline:
                raise OvsdbError(f"OVSDB {self.remote}: no {what} within {self.timeout_s:g} s")
            self._block(None)

    def _block(self, txn: ovs.db.idl.Transaction | None) -> None:
        poller = ovs.poller.Poller()
        self._idl.wait(poller)
        if txn is not None:
            txn.wait(poller)
        poller.timer_wait(100)  # re-check the deadline at least every 100 ms
        poller.block()
