"""What the running controller knows, shared by the os-ken app and the status API.

Per switch it tracks the FlowSet it should hold (`desired`) and the one it is known
to hold (`installed`, read back from the switch on every connect, then advanced on
every acknowledged update). The app (`sdnctl/app/controller.py`) turns their difference
into messages; this module only keeps the books and answers `status()`.

The inputs that decide `desired` are the enforced policy and topology (replaced
only by a reload that validated), the live bindings from OVSDB, the link and
uplink ports known to be down, and the uplinks' next hops learned by ARP
(`sdnctl/live/uplinks.py`). `recompile` derives every switch's FlowSet from them again and
names the switches whose FlowSet changed.

os-ken 4 runs apps on real threads by default (its "native" hub) and the status
API has its own: every reader and writer holds `lock`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sdnctl.bindings import Bindings
from sdnctl.compile.context import NetworkView
from sdnctl.compile.exits import NsPlan, build_plan
from sdnctl.compile.incremental import IncrementalCompiler
from sdnctl.flows import FlowSet
from sdnctl.ha.election import Election
from sdnctl.live.connlimits import ConnLimits, zone_limits
from sdnctl.live.connlog import ConnectionLog
from sdnctl.live.counters import Counters
from sdnctl.live.dhcp import DhcpResponder
from sdnctl.live.history import EditStart, EnforcedEdit, History
from sdnctl.live.links import LinkState
from sdnctl.live.reads import Read
from sdnctl.live.uplinks import UplinkState
from sdnctl.policy.model import Policy
from sdnctl.southbound import ofp as sb
from sdnctl.southbound.ovsdb import BindingSnapshot, OvsdbHealth
from sdnctl.topology.model import PortRef, Topology

log = logging.getLogger("controller")



class CompileFailed(Exception):
    """The compiler raised: nothing of that compile was adopted."""


class CompileFn(Protocol):
    def __call__(
        self, policy: Policy, topology: Topology, bindings: Bindings,
        down_ports: frozenset[PortRef] = ...,
    ) -> dict[str, FlowSet]: ...


Rebind = Callable[[Policy, Topology], BindingSnapshot]


class Limiter(Protocol):
    """Applies conntrack zone limits (sdnctl.southbound.ctlimits.ZoneLimiter)."""

    def submit(self, limits: Mapping[int, int]) -> None: ...

    def status(self) -> dict[str, object]: ...


@dataclass
class Dump:
    """Replies being collected from a switch that just connected."""

    flows: list[Any] = field(default_factory=list)
    groups: list[Any] = field(default_factory=list)
    meters: list[Any] = field(default_factory=list)
    pending: set[str] = field(default_factory=lambda: {"flows", "groups", "meters"})


@dataclass
class Batch:
    """One update on the wire, up to and including its barrier."""

    before: FlowSet | None
    target: FlowSet
    labels: dict[int, sb.Outgoing]  # xid -> what it carried (its `label` names it)
    barrier_xid: int
    started: float  # monotonic, when sent
    summary: str
    since: float  # monotonic, when the change it carries was first seen
    errors: list[str] = field(default_factory=list)


@dataclass
class SwitchState:
    """One switch of the topology as the daemon knows it: its connection, what it
    should hold and what it is known to hold, the update in flight, its ports, its
    OpenFlow role (with replicas), the reads in flight.

    Fields are read by anyone holding the state lock and written only here, by the
    transitions below (`on_connect`, `on_disconnect`, `on_barrier`, ...), which the
    app calls as OpenFlow events arrive: connect and disconnect reset the same
    things (`_reset_connection`), so nothing of one connection leaks into the next.
    """

    name: str
    dpid: int
    datapath: Any = None
    programmed: bool = False
    desired: FlowSet | None = None  # as compiled: already in normal form
    installed: FlowSet | None = None  # what the switch is known to hold, normalized
    foreign: list[sb.ForeignFlow] = field(default_factory=list)
    flow_mods_sent: int = 0
    last_update: float | None = None  # wall clock of the last acknowledged update
    last_update_s: float | None = None  # from the change being seen to its barrier reply
    dump: Dump | None = None
    batch: Batch | None = None
    dirty: bool = False
    pending_since: float | None = None  # monotonic: oldest change not yet sent
    needs_dump: bool = False  # after a failed update: what the switch holds is unknown
    ports_known: bool = False  # its port description arrived since it connected
    port_replies: list[Any] = field(default_factory=list)  # port-desc parts so far
    await_ports: bool = False  # first update held until the port description is in
    ports_down: set[int] = field(default_factory=set)  # any port, as last reported
    connected_at: float | None = None
    connected_since: float | None = None  # wall clock of the connection
    address: str = ""  # where the connection comes from
    reads: dict[int, Read] = field(default_factory=dict)  # xid -> stats read in flight
    polling: bool = False  # a flow-stats poll is in flight
    updates: int = 0  # updates acknowledged (barrier replies of error-free updates)
    last_flow_mods: int = 0  # flow-mods of the last update sent
    packet_ins: int = 0
    # OpenFlow role, with replicas (sdnctl.ha): as the switch last acknowledged it
    role: str | None = None  # "master" | "slave" | "equal" | "refused"; None: not asked
    role_generation: int | None = None
    role_at: float | None = None  # wall clock of that acknowledgement
    role_xid: int | None = None  # the role request in flight (its reply or error)
    role_asked: Any = None  # sdnctl.ha.model.RoleAsk of that request

    @property
    def connected(self) -> bool:
        return self.datapath is not None

    # ---- the connection ----------------------------------------------------------
    def on_connect(self, datapath: Any, address: str) -> list[Read]:
        """A new connection (also a reconnect): nothing of the old one is kept. The
        reads still waiting on the old connection are returned, for the caller to fail."""
        reads = self._reset_connection(datapath)
        self.connected_at = self.pending_since = time.monotonic()
        self.connected_since, self.address = time.time(), address
        return reads

    def on_disconnect(self) -> list[Read]:
        """The connection is gone; the reads that were waiting on it are returned.
        Not a link failure: the switch forwards on (fail_mode=secure) and its
        neighbours report their own ports if its links really died."""
        reads = self._reset_connection(None)
        self.connected_at = self.connected_since = self.pending_since = None
        self.address = ""
        return reads

    def _reset_connection(self, datapath: Any) -> list[Read]:
        """Everything that belongs to one connection, back to its start."""
        reads = list({id(r): r for r in self.reads.values()}.values())
        self.datapath, self.programmed, self.dirty = datapath, False, False
        self.dump = self.batch = None
        self.needs_dump = self.ports_known = self.await_ports = self.polling = False
        self.port_replies, self.ports_down, self.reads = [], set(), {}
        self.role = self.role_xid = self.role_asked = None
        return reads

    def rename(self, name: str) -> None:
        """The topology reload renamed this switch (same dpid)."""
        self.name = name

    # ---- what it should hold -----------------------------------------------------
    def want(self, desired: FlowSet, since: float) -> None:
        """A compile changed what it should hold, because of a change seen at `since`."""
        self.desired = desired
        self.mark_changed(since)

    def mark_changed(self, since: float) -> None:
        """`desired` moved because of a change seen at `since` (monotonic)."""
        if self.pending_since is None or since < self.pending_since:
            self.pending_since = since

    # ---- reading what it holds ---------------------------------------------------
    def start_dump(self) -> None:
        self.dump, self.needs_dump = Dump(), False

    def collect_dump(self, kind: str, body: list[Any], more: bool) -> Dump | None:
        """One reply of the dump; the whole dump once its last reply is in."""
        if self.dump is None:
            return None
        getattr(self.dump, kind).extend(body)
        if more:
            return None
        self.dump.pending.discard(kind)
        if self.dump.pending:
            return None
        dump, self.dump = self.dump, None
        return dump

    def on_installed_read(self, installed: FlowSet, foreign: list[sb.ForeignFlow]) -> None:
        self.installed, self.foreign = installed, foreign

    def hold_for_ports(self) -> None:
        """Its first update waits for the port description (`on_ports`)."""
        self.await_ports = True

    # ---- ports ---------------------------------------------------------------------
    def collect_ports(self, body: list[Any], more: bool) -> list[Any] | None:
        """One reply of the port description; every part once the last is in."""
        self.port_replies.extend(body)
        if more:
            return None
        replies, self.port_replies = self.port_replies, []
        return replies

    def on_ports(self, down: set[int]) -> bool:
        """The port description is in: True if the first update was waiting for it."""
        self.ports_known, self.ports_down = True, down
        waiting, self.await_ports = self.await_ports, False
        return waiting

    def on_port_status(self, port_no: int, up: bool) -> None:
        if up:
            self.ports_down.discard(port_no)
        else:
            self.ports_down.add(port_no)

    # ---- updates -------------------------------------------------------------------
    def mark_dirty(self) -> None:
        """Changed while an update is in flight: another goes out after its barrier."""
        self.dirty = True

    def take_pending_since(self, now: float) -> float:
        """When the oldest change not yet sent was seen (`now` if none); cleared."""
        since = self.pending_since if self.pending_since is not None else now
        self.pending_since = None
        return since

    def on_sent(self, batch: Batch, flow_mods: int,
                foreign_deleted: list[sb.ForeignFlow]) -> None:
        self.flow_mods_sent += flow_mods
        self.last_flow_mods = flow_mods
        self.batch = batch
        self.foreign = [ff for ff in self.foreign if ff not in foreign_deleted]
        self.dirty = False

    def on_error(self, text: str) -> None:
        """The switch refused a message of the update in flight."""
        if self.batch is not None:
            self.batch.errors.append(text)

    def on_barrier(self, xid: int) -> Batch | None:
        """The update whose barrier this is, now over (None: not ours)."""
        if self.batch is None or xid != self.batch.barrier_xid:
            return None
        batch, self.batch = self.batch, None
        return batch

    def on_update_failed(self, batch: Batch) -> None:
        """A bundle is all or nothing, but meters sit outside it: read the switch again
        before the next update rather than trust either version."""
        self.programmed, self.needs_dump = False, True
        self.installed = batch.before
        self.mark_changed(batch.since)

    def on_update_done(self, batch: Batch, now: float) -> bool:
        """`batch` acknowledged without errors; True if this made it programmed."""
        self.installed = batch.target
        self.updates += 1
        self.last_update = time.time()
        self.last_update_s = now - batch.since
        first, self.programmed = not self.programmed, True
        return first

    def unprogram(self, reread: bool) -> None:
        """Leadership changed (replicas): not programmed by this replica any more;
        `reread`: read what it holds again before writing."""
        self.programmed = False
        self.needs_dump = self.needs_dump or reread

    # ---- roles (replicas) ------------------------------------------------------------
    def on_role_asked(self, xid: int, ask: Any) -> None:
        self.role_xid, self.role_asked = xid, ask
        if (self.role == "master") != ask.master or self.role_generation != ask.generation:
            self.role = None  # not acknowledged yet

    def on_role_reply(self, xid: int, role: str, generation: int) -> bool:
        """The switch acknowledged a role: False if it answers an older request."""
        if xid != self.role_xid:
            return False
        self.role, self.role_generation, self.role_at = role, generation, time.time()
        self.role_xid = None
        return True

    def on_role_refused(self, xid: int) -> tuple[bool, Any]:
        """(True, what was asked) if `xid` is the role request in flight, now refused."""
        if xid != self.role_xid:
            return False, None
        asked, self.role, self.role_xid = self.role_asked, "refused", None
        return True, asked

    def on_told_slave(self) -> bool:
        """A write refused as IS_SLAVE: True if this replica believed it was MASTER."""
        if self.role != "master":
            return False
        self.role = "slave"
        return True

    # ---- reads and counters ------------------------------------------------------------
    def add_read(self, xid: int, read: Read) -> None:
        self.reads[xid] = read

    def read_of(self, xid: int | None) -> Read | None:
        return self.reads.get(xid) if xid is not None else None

    def end_read(self, read: Read) -> None:
        for xid in read.xids:
            self.reads.pop(xid, None)

    def start_poll(self) -> None:
        self.polling = True

    def end_poll(self) -> None:
        self.polling = False

    def on_packet_in(self) -> None:
        self.packet_ins += 1

    def status(self) -> dict[str, object]:
        fs = self.desired
        return {
            "dpid": self.dpid,
            "connected": self.connected,
            "programmed": self.programmed,
            "address": self.address if self.connected else None,
            "connected_since": self.connected_since if self.connected else None,
            "flows": fs.n_flows if fs else 0,  # what it should hold
            "flows_installed": self.installed.n_flows if self.installed else None,
            "groups": len(fs.groups) if fs else 0,
            "meters": len(fs.meters) if fs else 0,
            "last_update": self.last_update,
            "last_update_s": self.last_update_s,
            "updates": self.updates,
            "flow_mods_sent": self.flow_mods_sent,
            "last_flow_mods": self.last_flow_mods,
            "ports_down": sorted(self.ports_down),
            "packet_ins": self.packet_ins,
            "role": self.role,
            "role_at": self.role_at,
        }


@dataclass
class PolicyInfo:
    """One enforced input file (the policy, or the topology)."""

    file: str
    sha256: str
    loaded_at: float  # wall clock
    text: str = ""  # the file as loaded: `GET /policy`, and `sdnctl plan` diffs against it
    saved_at: float | None = None  # the file's mtime when read

    def as_json(self) -> dict[str, object]:
        return {"file": self.file, "sha256": self.sha256, "loaded_at": self.loaded_at,
                "saved_at": self.saved_at}


@dataclass(frozen=True, slots=True)
class Inputs:
    """The enforced input files: replaced together, by a reload that compiled."""

    policy: Policy
    policy_info: PolicyInfo
    topology: Topology
    topology_info: PolicyInfo | None = None


@dataclass
class DaemonParts:
    """What the daemon plugs into the state (nothing, in tests and benchmarks)."""

    rebind: Rebind | None = None  # the OVSDB monitor's: bindings under a reloaded policy
    ovsdb: OvsdbHealth | None = None  # the OVSDB monitor's connection
    mirrors: Callable[[], list[dict[str, object]]] | None = None  # OVSDB's Mirror rows
    ipfix: Callable[[], dict[str, object]] | None = None  # `--ipfix`: the export's state
    ha: Election | None = None  # with replicas (`--etcd`); None: the only one
    # `--vm-conn-limit`/`--tenant-nat-limit`: conntrack zone limits, and who sets them
    conn_limits: ConnLimits = field(default_factory=ConnLimits)
    limiter: Limiter | None = None
    info: dict[str, object] = field(default_factory=dict)  # listen, api, tls, startup


class ControllerState:
    """Everything the daemon knows, shared by the app and the status API: the enforced
    `inputs`, the live `snapshot` of bindings and the `links`, the `switches` (and the
    `strangers`), what the last compile made of them, the `history` (events, edits,
    rollout), the `counters`, and the `daemon`'s parts. Every reader and writer holds
    `lock`; `compile_lock` serialises compiles, which run with `lock` released."""

    def __init__(
        self,
        policy: Policy,
        topology: Topology,
        policy_info: PolicyInfo,
        snapshot: BindingSnapshot | None = None,
        started_at: float | None = None,
        compile_fn: CompileFn | None = None,
        use_bundles: bool = True,
        topology_info: PolicyInfo | None = None,
    ) -> None:
        self.inputs = Inputs(policy, policy_info, topology, topology_info)
        self.snapshot = snapshot or BindingSnapshot(Bindings())
        # False until OVSDB has answered: no switch is programmed from "no VM bound".
        self.bindings_ready = True
        self.links = LinkState()
        self.switches = {
            sw.name: SwitchState(sw.name, sw.dpid) for sw in topology.switches.values()
        }
        self.strangers: dict[int, Any] = {}  # dpid -> datapath of switches not in the topology
        # Compiling. Its own incremental compiler by default: unchanged switches come
        # back as the same FlowSet objects, which are then neither re-normalised nor compared.
        self.compile_fn: CompileFn = compile_fn or IncrementalCompiler()
        self._compiled: dict[str, FlowSet] = {}  # compile_fn's last output, as returned
        self.last_compile: dict[str, object] | None = None  # scope and time, for /status
        self.down_ports: frozenset[PortRef] = frozenset()  # as last compiled
        # VM -> wall clock since when it has been unbound, as far as this daemon has
        # seen (the clock starts with the daemon): the sprawl lint reads it.
        self.unbound_since: dict[str, float] = {}
        self.use_bundles = use_bundles
        self.history = History()
        self.counters = Counters()
        self.dhcp = DhcpResponder()  # answers the metered DHCP path (sdnctl/app/dhcp.py)
        self.uplinks = UplinkState()  # next hops learned, exits announced (sdnctl/app/uplinks.py)
        self._limited: tuple[object, tuple[int, ...]] | None = None  # zones last limited
        # Records the acl stage's metered copies (sdnctl/app/connlog.py); the daemon
        # gives it a file with --connection-log.
        self.connlog = ConnectionLog()
        self.daemon = DaemonParts()
        self.started_at = time.monotonic() if started_at is None else started_at
        self.lock = threading.RLock()
        self.compile_lock = threading.Lock()  # one compile at a time, the lock released

    # ---- the enforced inputs (replaced by `adopt` only) ------------------------------
    @property
    def policy(self) -> Policy:
        return self.inputs.policy

    @property
    def policy_info(self) -> PolicyInfo:
        return self.inputs.policy_info

    @property
    def topology(self) -> Topology:
        return self.inputs.topology

    @property
    def topology_info(self) -> PolicyInfo | None:
        return self.inputs.topology_info

    def adopt(self, inputs: Inputs) -> list[SwitchState]:
        """Enforce other inputs from now on (a reload, or going back to the last good
        ones); with another topology, the switches follow it (`set_topology`): the
        connected strangers it adopted are returned."""
        topology_changed = inputs.topology is not self.inputs.topology
        self.inputs = inputs
        if not topology_changed:
            return []
        self.uplinks.forget_gone(inputs.topology)
        return self._follow_topology(inputs.topology)

    def record(self, kind: str, message: str, level: int = logging.INFO) -> None:
        self.history.record(kind, message, level)

    def edit_started(self) -> EditStart:
        """Call before adopting a reload; hand the result to `edit_enforced` after recompiling."""
        desired = {name: sw.desired for name, sw in self.switches.items()}
        return EditStart(self.policy, self.policy_info.sha256, desired)

    def edit_enforced(self, start: EditStart, what: str, changed: list[SwitchState]) -> None:
        """Remember an enforced reload (bounded: MAX_EDITS) for the dashboard."""
        flowsets = {sw.name: (start.desired.get(sw.name), sw.desired) for sw in changed}
        self.history.enforced(EnforcedEdit(time.time(), what, start.policy, self.policy,
                                           start.sha256, self.policy_info.sha256,
                                           self.topology, flowsets))

    def tenant_of(self, owner: str) -> str:
        """The tenant a flow owner belongs to ("" for shared flows such as `base`)."""
        kind, _, rest = owner.partition(":")
        if kind == "vm":
            vm = self.policy.vms.get(rest)
            return vm.tenant if vm else ""
        if kind in ("tenant", "rule"):
            return rest.partition(":")[0]
        if kind == "segment" and rest.isdigit():
            for tenant in self.policy.tenants.values():
                if any(seg.id == int(rest) for seg in tenant.segments.values()):
                    return tenant.name
        return ""

    def since_start(self) -> float:
        return time.monotonic() - self.started_at

    def recompile(self, since: float | None = None, *, strict: bool = False) -> list[SwitchState]:
        """Compile for the current policy, topology, bindings and down links; the
        switches whose FlowSet changed, marked as changed at `since` (default now).

        The compile runs with `lock` released (called by a handler that holds it),
        so the status API and the dashboard keep answering from the last state; its
        result is swapped in under the lock. A compiler failure keeps the last good
        FlowSets and is reported; with `strict` it raises CompileFailed instead, for
        a caller that must not adopt what it was compiling (a reload)."""
        down = self.links.down_ports(self.topology)
        policy, topology, bindings = self.policy, self.topology, self.compile_bindings()
        started = time.perf_counter()
        try:
            with self._unlocked(), self.compile_lock:
                compiled = self.compile_fn(policy, topology, bindings, down_ports=down)
                plan = self._exits(policy, topology, bindings, down)
                # The compiler spells every field as a switch reads it back
                # (tests/unit/test_normal_form.py), so what it gives is what each
                # switch should hold, as is: unchanged switches are the same objects.
                moved = {name: fs for name, fs in compiled.items()
                         if fs is not self._compiled.get(name)}
        except Exception as exc:
            log.exception("compile failed")
            if strict:
                raise CompileFailed(f"compile failed: {exc}") from exc
            self.record("compile-error", f"compile failed, keeping the last flows: {exc}",
                        logging.ERROR)
            return []
        if self.topology is not topology:
            # A topology reload landed while this compiled: its own recompile follows.
            return []
        self.down_ports = down
        self._compiled = compiled
        self._note_unbound()
        self._limit_zones(bindings, plan)
        relocated = self.uplinks.note_exits(plan) if plan is not None else []
        if relocated:
            self.record("exits", "tenants moved to another exit: " + "; ".join(relocated),
                        logging.WARNING)
        scope = getattr(self.compile_fn, "last_scope", None)
        self.last_compile = {
            "took_ms": round((time.perf_counter() - started) * 1000, 1),
            "scope": scope.describe() if scope is not None else "full compile",
            "switches_recompiled": len(scope.switches) if scope is not None else len(compiled),
        }
        when = time.monotonic() if since is None else since
        changed = []
        for name, fs in moved.items():
            sw = self.switches.get(name)
            # Parts are rebuilt only when their content changed: other parts, other tables.
            if sw is not None and (sw.desired is None or not fs.same_parts(sw.desired)):
                sw.want(fs, when)
                changed.append(sw)
        return changed

    def compile_bindings(self) -> Bindings:
        """What the compiler binds: OVSDB's VM ports and the uplinks' learned next hops."""
        bindings = self.snapshot.bindings
        if bindings.neighbours == self.uplinks.neighbours:
            return bindings
        return dataclasses.replace(bindings, neighbours=self.uplinks.neighbours)

    def _limit_zones(self, bindings: Bindings, plan: NsPlan | None) -> None:
        """Hand the connection limits of the bound VMs' and going tenants' zones to
        the limiter (with `--vm-conn-limit`/`--tenant-nat-limit`), when they moved."""
        parts = self.daemon
        if parts.limiter is None:
            return
        nat = tuple(sorted(t.zone for t in plan.tenants.values())) if plan else ()
        key = (bindings.ports, nat)
        if self._limited is not None and self._limited[0] is key[0] and self._limited[1] == nat:
            return
        self._limited = key
        parts.limiter.submit(zone_limits(bindings, plan, parts.conn_limits))

    def _exits(self, policy: Policy, topology: Topology, bindings: Bindings,
               down: frozenset[PortRef]) -> NsPlan | None:
        """Where each tenant goes out after this compile (None: no gateway uplinks)."""
        if not topology.uplinks():
            return None
        exits = getattr(self.compile_fn, "exits", None)
        plan = exits() if exits is not None else None
        return plan if plan is not None else build_plan(
            NetworkView(policy, topology, bindings, down))

    @contextlib.contextmanager
    def _unlocked(self) -> Iterator[None]:
        """Release `lock` for the duration if this thread holds it (however deeply)."""
        try:
            saved = self.lock._release_save()  # type: ignore[attr-defined]
        except RuntimeError:  # not held here: nothing to release
            yield
            return
        try:
            yield
        finally:
            self.lock._acquire_restore(saved)  # type: ignore[attr-defined]

    def _note_unbound(self) -> None:
        bound, now = self.snapshot.bindings.ports, time.time()
        self.unbound_since = {
            name: self.unbound_since.get(name, now)
            for name in self.policy.vms.keys() - bound.keys()
        }

    def set_topology(self, topology: Topology) -> list[SwitchState]:
        """Adopt a reloaded topology (the policy stays); see `_follow_topology`."""
        return self.adopt(Inputs(self.policy, self.policy_info, topology, self.topology_info))

    def _follow_topology(self, topology: Topology) -> list[SwitchState]:
        """The switches follow a reloaded topology; the connected strangers it adopted.

        A switch keeps its state (connection, what it holds) while its dpid stays in
        the topology, even if renamed. One that left the topology is let go, its
        flows left as they are; if still connected it becomes a stranger."""
        by_dpid = {sw.dpid: sw for sw in self.switches.values()}
        switches: dict[str, SwitchState] = {}
        adopted = []
        for topo_sw in topology.switches.values():
            sw = by_dpid.pop(topo_sw.dpid, None)
            if sw is None:
                sw = SwitchState(topo_sw.name, topo_sw.dpid)
                dp = self.strangers.pop(topo_sw.dpid, None)
                if dp is not None:
                    sw.on_connect(dp, _address_of(dp))
                    adopted.append(sw)
            elif sw.name != topo_sw.name:
                self.links.forget_switch(sw.name)
                sw.rename(topo_sw.name)
            switches[topo_sw.name] = sw
        for gone in by_dpid.values():
            self.record("switch-removed",
                        f"{gone.name} (dpid {gone.dpid:#x}) left the topology: flows left as "
                        "they are", logging.WARNING)
            self.links.forget_switch(gone.name)
            if gone.datapath is not None:
                self.strangers[gone.dpid] = gone.datapath
        self.switches = switches
        return adopted

    def start_rollout(self, sha256: str, detected_at: float, changed: list[SwitchState]) -> None:
        self.history.start_rollout(sha256, detected_at, {sw.name for sw in changed
                                                         if sw.connected})

    def rollout_progress(self, sw: SwitchState, batch: Batch) -> None:
        """`sw` acknowledged `batch`: if it carried the new policy, one switch less to wait for."""
        self.history.rollout_progress(sw.name, batch.started)

    def status(self) -> dict[str, object]:
        with self.lock:
            return self._status()

    def _conn_limits_status(self) -> dict[str, object]:
        parts = self.daemon
        if parts.limiter is None:
            return {"enabled": False}
        return {"enabled": True, "vm": parts.conn_limits.vm,
                "tenant_nat": parts.conn_limits.tenant_nat, **parts.limiter.status()}

    def _status(self) -> dict[str, object]:
        bindings = self.snapshot.bindings.ports
        policy: dict[str, object] = self.policy_info.as_json()
        policy["last_refused"] = self.history.last_refused
        rollout = self.history.rollout
        if rollout is not None and rollout.sha256 == self.policy_info.sha256:
            policy["enforced_in_s"] = rollout.took_s  # from the edit being seen
            policy["enforced_at"] = rollout.done_at
        vms = {
            name: {"tenant": vm.tenant, "segment": vm.segment,
                   "at": str(bindings[name]) if name in bindings else None,
                   "unbound_since": self.unbound_since.get(name)}
            for name, vm in sorted(self.policy.vms.items())
        }
        return {
            "daemon": dict(self.daemon.info, uptime_s=self.since_start()),
            "policy": policy,
            "topology": self.topology_info.as_json() if self.topology_info else None,
            "switches": {name: sw.status() for name, sw in sorted(self.switches.items())},
            "strangers": [f"{dpid:#x}" for dpid in sorted(self.strangers)],
            "bindings": {vm: str(ref) for vm, ref in sorted(bindings.items())},
            "vms": vms,
            "unbound": [name for name, vm in vms.items() if vm["at"] is None],
            "bindings_ready": self.bindings_ready,
            "ovsdb": self.daemon.ovsdb.as_json() if self.daemon.ovsdb is not None else None,
            "mirrors": self.daemon.mirrors() if self.daemon.mirrors is not None else [],
            "ipfix": self.daemon.ipfix() if self.daemon.ipfix is not None else None,
            "connection_log": self.connlog.snapshot(),
            "down_ports": [str(ref) for ref in sorted(self.down_ports)],
            "uplinks": self.uplinks.status(self.topology, self.down_ports),
            "conn_limits": self._conn_limits_status(),
            "last_compile": self.last_compile,
            "unknown_ports": [p.as_json() for p in self.snapshot.problems],
            "unclaimed_ports": [p.as_json() for p in self.snapshot.unclaimed],
            "counters": self.counters.snapshot(),
            "events": list(self.history.events),
            "ha": self.daemon.ha.status() if self.daemon.ha is not None else {"enabled": False},
        }


def _address_of(datapath: Any) -> str:
    """`host:port` of an os-ken datapath's peer."""
    address = getattr(datapath, "address", None)
    return f"{address[0]}:{address[1]}" if address else ""
