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

`compute_bindings` is the pure rule over plain records; `OvsdbMonitor` keeps a
replica of the three tables it needs (the columns it reads, as plain dicts, kept
current by an OVSDB `monitor` session of its own: `_Session`), in its own daemon
thread, and calls back with a new `BindingSnapshot` whenever the result changes.
Not `ovs.db.idl`: with thousands of interfaces its pure-Python JSON parser and
per-row conversions made the first read take 6 s at 20,000 VMs and every later
change 1.8 s (docs/benchmarks.md §9); with the standard library's parser and
plain dicts the first read takes 1.2 s (mostly ovsdb-server sending it) and a
change ~0.1 s.
The callback runs in that thread: the daemon's hands the snapshot to the os-ken
app's event queue, which is thread-safe (os-ken 4's default hub is real threads).
Snapshots are numbered (`seq`), so the app can drop one that a policy reload's own
`rebind` has already superseded.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import ovs.jsonrpc
import ovs.poller
import ovs.stream

from sdnctl.bindings import Bindings
from sdnctl.gcpause import gc_paused
from sdnctl.policy.model import Policy
from sdnctl.topology.model import PortRef, Role, Topology

log = logging.getLogger("ovsdb")

DEFAULT_REMOTE = "unix:/var/run/openvswitch/db.sock"
VM_ID_KEY = "vm-id"
OFPP_MAX = 0xFF00  # ports from here up are reserved (LOCAL is 0xfffe)
VM_PORT_KINDS = ("", "system", "tap")  # what a VM NIC looks like; not tunnels, patches
MAC_KEY = "attached-mac"
# A capture end `sdnctl mirror start --netns` made (the VM it captures for): not a VM
# port, nor an unclaimed one (sdnctl/southbound/mirror.py).
CAPTURE_KEY = "sdnctl-mirror"
MIRROR_VM_KEY = "sdnctl-mirror-vm"  # Mirror.external_ids: the mirrored VM
MIRROR_DIRECTION_KEY = "sdnctl-mirror-direction"

_COLUMNS = {
    "Bridge": ["name", "datapath_id", "ports", "mirrors"],
    "Port": ["name", "interfaces"],
    "Interface": ["name", "ofport", "external_ids", "type"],
    "Mirror": ["name", "select_src_port", "select_dst_port", "output_port", "statistics",
               "external_ids"],
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
    # Indexed once, not looked up per port: at 20,000 ports these lookups were most of it.
    by_dpid = {sw.dpid: sw for sw in topology.switches.values()}
    link_ports = {name: topology.link_ports(name) for name in topology.switches}
    held_at = previous.ports if previous else {}
    vms = policy.vms
    for rec in records:
        ofport = rec.ofport
        if rec.datapath_id is None or not ofport or not 0 < ofport < OFPP_MAX:
            continue  # not ready yet (no ofport), or the bridge's own LOCAL port
        sw = by_dpid.get(rec.datapath_id)
        if sw is None:
            continue  # a bridge this controller does not manage
        vm = rec.external_ids.get(VM_ID_KEY)
        if not vm:
            if (sw.role is Role.HYPERVISOR and rec.kind in VM_PORT_KINDS
                    and CAPTURE_KEY not in rec.external_ids  # a mirror's capture end
                    and ofport not in link_ports[sw.name]):
                unclaimed.append(PortProblem(sw.name, ofport, rec.interface, "",
                                             "no vm-id: bound to no VM"))
            continue
        held = held_at.get(vm)  # the same place keeps the same PortRef object
        ref = held if held is not None and held.port == ofport and held.switch == sw.name \
            else PortRef(sw.name, ofport)
        mac = rec.external_ids.get(MAC_KEY)
        if vm not in vms:
            reason = "vm-id names no VM of the policy"
        elif ofport in link_ports[sw.name]:
            reason = "port is a fabric link in the topology"
        elif mac and mac.lower() != vms[vm].mac:
            reason = f"attached-mac {mac} is not the policy's {vms[vm].mac}"
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


def _atoms(value: Any) -> list[Any]:
    """An OVSDB set as JSON (`["set", [...]]`, or a lone atom) -> its atoms."""
    if isinstance(value, list) and value and value[0] == "set":
        return list(value[1])
    return [value]


def _one(value: Any) -> Any:
    """An optional column (`["set", []]` or an atom) -> the atom or None."""
    atoms = _atoms(value)
    return atoms[0] if atoms else None


def _uuids(value: Any) -> list[str]:
    """A set of references (`["uuid", U]` atoms) -> the uuids."""
    return [a[1] for a in _atoms(value) if isinstance(a, list) and len(a) == 2]


def _string_map(value: Any) -> dict[str, str]:
    if isinstance(value, list) and value and value[0] == "map":
        return {str(k): str(v) for k, v in value[1]}
    return {}


def _dpid(text: Any) -> int | None:
    try:
        return int(text, 16) if isinstance(text, str) and text else None
    except ValueError:
        return None


class Replica:
    """The monitored columns of Bridge, Port and Interface, as OVSDB last sent them:
    table -> row uuid -> column -> value (OVSDB's JSON notation).

    The interface records are kept per bridge and rebuilt only for the bridges a
    change touched (a row of theirs, or of one of their ports or interfaces): a VM
    plugged or moved costs its bridges, not every interface of the machine."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in _COLUMNS}
        self._bridge_of_port: dict[str, str] = {}
        self._port_of_iface: dict[str, str] = {}
        self._records: dict[str, list[InterfaceRecord]] = {}  # bridge uuid -> its records
        self._dirty: set[str] = set()  # bridges whose records are stale
        self.changed_tables: set[str] = set()  # since the reader last cleared it

    def clear(self) -> None:
        for rows in self.tables.values():
            rows.clear()
        self._bridge_of_port.clear()
        self._port_of_iface.clear()
        self._records.clear()
        self._dirty.clear()

    def update(self, updates: Any) -> bool:
        """Apply a `<table-updates>` object; True if any row changed."""
        changed = False
        if not isinstance(updates, dict):
            return False
        for table, rows in updates.items():
            mine = self.tables.get(table)
            if mine is None or not isinstance(rows, dict):
                continue
            for uuid, change in rows.items():
                new = change.get("new") if isinstance(change, dict) else None
                old = mine.get(uuid)
                if new is None and old is None:
                    continue
                self._touch(table, uuid)  # where it was
                if new is None:
                    del mine[uuid]
                    row = None
                else:  # a modify may carry only some columns: merge
                    row = mine[uuid] = {**old, **new} if old is not None else dict(new)
                self._relink(table, uuid, old, row)
                self._touch(table, uuid)  # where it is now
                self.changed_tables.add(table)
                changed = True
        return changed

    def _touch(self, table: str, uuid: str) -> None:
        if table == "Interface":
            uuid = self._port_of_iface.get(uuid, "")
            table = "Port"
        if table == "Port":
            uuid = self._bridge_of_port.get(uuid, "")
        if uuid:
            self._dirty.add(uuid)

    def _relink(self, table: str, uuid: str, old: dict[str, Any] | None,
                row: dict[str, Any] | None) -> None:
        """Keep the reverse references (port -> bridge, interface -> port) current."""
        if table == "Bridge":
            column, owner_of = "ports", self._bridge_of_port
        elif table == "Port":
            column, owner_of = "interfaces", self._port_of_iface
        else:
            return
        for child in _uuids(old.get(column)) if old is not None else []:
            if owner_of.get(child) == uuid:
                del owner_of[child]
        for child in _uuids(row.get(column)) if row is not None else []:
            owner_of[child] = uuid

    def mirrors(self) -> list[dict[str, object]]:
        """Every bridge's Mirror rows as /status shows them (`MirrorView.as_json`)."""
        ports, ifaces = self.tables["Port"], self.tables["Interface"]
        netns_of: dict[str, str] = {}  # capture port -> its namespace
        for port in ports.values():
            for iface_uuid in _uuids(port.get("interfaces")):
                ids = _string_map((ifaces.get(iface_uuid) or {}).get("external_ids"))
                if CAPTURE_KEY in ids and "sdnctl-netns" in ids:
                    netns_of[str(port.get("name"))] = ids["sdnctl-netns"]
        out: list[dict[str, object]] = []
        for bridge in self.tables["Bridge"].values():
            for uuid in _uuids(bridge.get("mirrors")):
                row = self.tables["Mirror"].get(uuid)
                if row is None:
                    continue
                ids = _string_map(row.get("external_ids"))
                selected = {str(ports[p].get("name")) for column in ("select_src_port",
                            "select_dst_port") for p in _uuids(row.get(column)) if p in ports}
                output = [str(ports[p].get("name")) for p in _uuids(row.get("output_port"))
                          if p in ports]
                stats = _string_map(row.get("statistics"))
                out.append({
                    "name": str(row.get("name", "")), "bridge": str(bridge.get("name", "")),
                    "vm": ids.get(MIRROR_VM_KEY), "direction": ids.get(MIRROR_DIRECTION_KEY, "?"),
                    "selects": sorted(selected), "output": output[0] if output else None,
                    "netns": netns_of.get(output[0]) if output else None,
                    "tx_packets": int(stats["tx_packets"]) if "tx_packets" in stats else None,
                })
        return sorted(out, key=lambda m: (str(m["bridge"]), str(m["name"])))

    def records(self) -> list[InterfaceRecord]:
        bridges = self.tables["Bridge"]
        for uuid in self._dirty:
            bridge = bridges.get(uuid)
            if bridge is None:
                self._records.pop(uuid, None)
            else:
                self._records[uuid] = self._bridge_records(bridge)
        self._dirty.clear()
        return [rec for recs in self._records.values() for rec in recs]

    def _bridge_records(self, bridge: dict[str, Any]) -> list[InterfaceRecord]:
        ports, ifaces = self.tables["Port"], self.tables["Interface"]
        dpid = _dpid(_one(bridge.get("datapath_id")))
        name = str(bridge.get("name", ""))
        records = []
        for port_uuid in _uuids(bridge.get("ports")):
            port = ports.get(port_uuid)
            if port is None:
                continue
            for iface_uuid in _uuids(port.get("interfaces")):
                iface = ifaces.get(iface_uuid)
                if iface is None:
                    continue
                ofport = _one(iface.get("ofport"))
                records.append(InterfaceRecord(
                    bridge=name,
                    datapath_id=dpid,
                    interface=str(iface.get("name", "")),
                    ofport=int(ofport) if isinstance(ofport, int) else None,
                    external_ids=_string_map(iface.get("external_ids")),
                    kind=str(iface.get("type") or ""),
                ))
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


PROBE_S = 5.0  # tcp/ssl: an echo after this long without a message; give up after twice
RETRY_DECODE_S = 0.2  # a buffer not ending in "}" is still tried this often
MAX_BUFFER = 1 << 30  # bytes of one unfinished message before the session is dropped


def _ends_object(buf: bytearray) -> bool:
    """True if the last byte but whitespace is `}` (without copying `buf`)."""
    i = len(buf) - 1
    while i >= 0 and buf[i] in b" \t\r\n":
        i -= 1
    return i >= 0 and buf[i] == ord("}")


class _Session:
    """One `monitor` session on OVSDB: connect, ask for the columns of `_COLUMNS`, then
    keep `replica` current from the server's `update` notifications.

    JSON-RPC messages follow each other on the stream with nothing between them. The
    buffer is decoded (the standard library's C parser) when it ends with a `}`,
    which every message does, or at least every RETRY_DECODE_S: a message split across
    reads is therefore parsed about once, not once per read."""

    def __init__(self, remote: str, timeout_s: float = 5.0) -> None:
        error, stream = ovs.stream.Stream.open_block(
            ovs.stream.Stream.open(remote), int(timeout_s * 1000))
        if error:
            raise ConnectionError(f"OVSDB {remote}: cannot connect: {os.strerror(error)}")
        self.remote = remote
        self.stream = stream
        self.replica = Replica()
        self.ready = False  # the monitor's reply (every row) has been applied
        self._buf = bytearray()
        self._out = b""
        self._decoder = json.JSONDecoder()
        self._tried = 0.0
        self._probes = bool(ovs.stream.stream_or_pstream_needs_probes(remote))
        self._heard = time.monotonic()
        self._echo_sent = False
        columns = {table: {"columns": cols} for table, cols in _COLUMNS.items()}
        self._send({"id": "monitor", "method": "monitor",
                    "params": ["Open_vSwitch", None, columns]})

    def close(self) -> None:
        self.stream.close()

    def _send(self, msg: dict[str, Any]) -> None:
        self._out += json.dumps(msg).encode()
        self._flush()

    def _flush(self) -> None:
        while self._out:
            n = self.stream.send(self._out)
            if n == -errno.EAGAIN:
                return  # the rest goes when the stream can take it (`wait`)
            if n < 0:
                raise ConnectionError(f"OVSDB {self.remote}: send: {os.strerror(-n)}")
            self._out = self._out[n:]

    def run(self) -> bool:
        """Read what has arrived, apply it; True if the replica changed."""
        self.stream.run()
        self._flush()
        while True:
            error, data = self.stream.recv(1 << 20)
            if error == errno.EAGAIN:
                break
            if error:
                raise ConnectionError(f"OVSDB {self.remote}: {os.strerror(error)}")
            if not data:
                raise ConnectionError(f"OVSDB {self.remote}: connection closed")
            self._buf += data
            self._heard, self._echo_sent = time.monotonic(), False
            if len(self._buf) > MAX_BUFFER:
                raise ConnectionError(f"OVSDB {self.remote}: a message over "
                                      f"{MAX_BUFFER >> 20} MiB")
        changed = False
        for msg in self._messages():
            changed |= self._handle(msg)
        self._probe()
        return changed

    def _messages(self) -> list[Any]:
        if not self._buf:
            return []
        now = time.monotonic()
        if not _ends_object(self._buf) and now - self._tried < RETRY_DECODE_S:
            return []
        self._tried = now
        try:
            text = self._buf.decode()
        except UnicodeDecodeError:
            return []  # a character cut in two: the rest is on its way
        msgs, pos, end = [], 0, len(text)
        while True:
            while pos < end and text[pos].isspace():
                pos += 1
            if pos == end:
                break
            try:
                msg, pos = self._decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                break  # the rest of this message is on its way
            msgs.append(msg)
        if msgs:
            self._buf = bytearray(text[pos:].encode())
        return msgs

    def _handle(self, msg: Any) -> bool:
        if not isinstance(msg, dict):
            return False
        method = msg.get("method")
        if method == "update":
            params = msg.get("params") or [None, {}]
            return self.replica.update(params[-1])
        if method == "echo":
            self._send({"id": msg.get("id"), "result": msg.get("params"), "error": None})
            return False
        if msg.get("id") == "monitor":
            if msg.get("error") is not None:
                raise ConnectionError(f"OVSDB {self.remote}: monitor refused: {msg['error']}")
            self.replica.clear()
            self.replica.update(msg.get("result"))
            self.ready = True
            return True
        return False  # the answer to an echo of ours

    def _probe(self) -> None:
        if not self._probes:
            return  # unix: a dead server closes the socket
        idle = time.monotonic() - self._heard
        if idle > 2 * PROBE_S:
            raise ConnectionError(f"OVSDB {self.remote}: no answer for {idle:.0f} s")
        if idle > PROBE_S and not self._echo_sent:
            self._send({"id": "echo", "method": "echo", "params": []})
            self._echo_sent = True

    def wait(self, poller: ovs.poller.Poller) -> None:
        self.stream.run_wait(poller)
        self.stream.recv_wait(poller)
        if self._out:
            self.stream.send_wait(poller)
        if self._buf:  # an undecoded tail: try again soon even if nothing more comes
            poller.timer_wait(int(RETRY_DECODE_S * 1000))



Callback = Callable[[BindingSnapshot], None]
RETRY_S = 1.0  # between attempts to reach OVSDB again


class OvsdbHealth:
    """The monitor's connection to OVSDB as /status, /metrics and the log tell it:
    connected or not and since when, how often it came back, the last error.

    Written by the monitor's thread, read by any (`as_json` takes one consistent look).
    While disconnected, binding changes go unseen: the switches keep what they hold."""

    def __init__(self, remote: str) -> None:
        self.remote = remote
        self.connected = False
        self.since: float | None = None  # wall clock of the last connect or loss
        self.reconnects = 0  # sessions opened after a loss (not the first one)
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._ever = False
        self._lock = threading.Lock()

    def up(self) -> None:
        with self._lock:
            now, down_since, again = time.time(), self.since, self._ever
            self.connected, self.since, self._ever = True, now, True
            if again:
                self.reconnects += 1
        if again:
            down = f" after {now - down_since:.1f} s" if down_since is not None else ""
            log.warning("OVSDB %s: connection back%s (reconnect %d); reading the bindings "
                        "again", self.remote, down, self.reconnects)
        else:
            log.info("monitoring OVSDB %s", self.remote)

    def down(self, error: str, quiet: bool = False) -> None:
        """A failed attempt or a lost session: logged once per loss, not per retry
        (`quiet`: the caller has logged it already)."""
        with self._lock:
            was, first = self.connected, self.since is None
            self.last_error, self.last_error_at = error, time.time()
            if was or first:
                self.connected, self.since = False, self.last_error_at
        if quiet:
            return
        if was:
            log.error("OVSDB %s: connection lost (%s); binding changes go unseen until it "
                      "is back, retrying every %.0f s", self.remote, error, RETRY_S)
        elif first:
            log.error("OVSDB %s: %s; switches are held until it answers, retrying every "
                      "%.0f s", self.remote, error, RETRY_S)
        else:
            log.debug("OVSDB %s: still unreachable (%s)", self.remote, error)

    def as_json(self) -> dict[str, object]:
        with self._lock:
            return {"remote": self.remote, "connected": self.connected, "since": self.since,
                    "reconnects": self.reconnects, "last_error": self.last_error,
                    "last_error_at": self.last_error_at}


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
        self.health = OvsdbHealth(remote)
        self._mirrors: list[dict[str, object]] = []  # replaced whole, never changed in place

    @property
    def connected(self) -> bool:
        """A session with OVSDB is open (it may still be reading)."""
        return self.health.connected

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

    def mirrors(self) -> list[dict[str, object]]:
        """The Mirror rows of every bridge, as last read (sdnctl mirror's, and others)."""
        return self._mirrors

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
            with gc_paused():
                snap = compute_bindings(self._records, policy, topology, self._previous())
            self._seq += 1
            self._snapshot = replace(snap, seq=self._seq)
            return self._snapshot

    def _previous(self) -> Bindings | None:
        return self._snapshot.bindings if self._snapshot else None

    # -- the loop ----------------------------------------------------------------
    def _run(self) -> None:
        session = None
        while not self._stop.is_set():
            try:
                if session is None:
                    session = _Session(self.remote)
                    self.health.up()
                self._poll(session)
                continue
            except (ConnectionError, OSError) as exc:  # the server went, or never came
                self.health.down(str(exc).removeprefix(f"OVSDB {self.remote}: "))
            except Exception as exc:  # a bug, not the network: say where, then start over
                log.exception("OVSDB %s: unexpected error while monitoring; reconnecting",
                              self.remote)
                self.health.down(f"unexpected {type(exc).__name__}: {exc}", quiet=True)
            if session is not None:
                session.close()
                session = None
            self._stop.wait(RETRY_S)
        if session is not None:
            session.close()

    def _poll(self, session: _Session) -> None:
        changed = session.run()
        if changed and session.ready:
            tables = session.replica.changed_tables
            if tables & {"Mirror", "Bridge", "Port", "Interface"}:
                self._mirrors = session.replica.mirrors()
            # Mirror statistics change every few seconds: no reason to re-bind. (An
            # empty first read changes no table and still counts: it is the first.)
            if tables and tables <= {"Mirror"}:
                changed = False
            tables.clear()
        if (changed or self._force) and session.ready:
            self._force = False
            with self._lock, gc_paused():  # many small objects, none cyclic
                records = self._records = session.replica.records()
                snap = self._advance(compute_bindings(
                    records, self._policy, self._topology, self._previous()))
                self._ready.set()  # before notifying: see `subscribe`
            if snap is not None:
                # Outside the lock: a subscriber may block (a full event queue) on a
                # thread that is waiting in rebind() for this lock.
                self._notify(snap)
        poller = ovs.poller.Poller()
        session.wait(poller)
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
