"""The os-ken app (OpenFlow 1.3): events in -> compile -> diff -> southbound out.

Per switch it tracks the FlowSet it should hold (`desired`) and the one it is known
to hold (`installed`, read back from the switch on every connect, then advanced on
every acknowledged update). Every update is the difference between the two, so a
switch that reconnects already holding the right table receives nothing but a
barrier: it is never flushed.

One update per switch is in flight at a time: changes that arrive meanwhile mark
the switch dirty and go out, as one new diff, when the barrier reply comes back.
A switch counts as programmed when the barrier that ends an error-free update is
answered.

All mutable state lives in `ControllerState`, which the daemon's status API reads
from its own thread: os-ken 4 runs apps on real threads by default (its "native"
hub), so every handler holds the state's lock.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import event, ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    HANDSHAKE_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.ofproto import ofproto_v1_3 as ofp

from sdnctl.bindings import Bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.diff import diff_flowsets
from sdnctl.flows import FlowSet
from sdnctl.policy.model import Policy
from sdnctl.southbound import ofp as sb
from sdnctl.southbound.ovsdb import BindingSnapshot
from sdnctl.topology.model import Topology

log = logging.getLogger("controller")

CompileFn = Callable[[Policy, Topology, Bindings], dict[str, FlowSet]]
MAX_EVENTS = 50


@dataclass
class _Dump:
    """Replies being collected from a switch that just connected."""

    flows: list[Any] = field(default_factory=list)
    groups: list[Any] = field(default_factory=list)
    meters: list[Any] = field(default_factory=list)
    pending: set[str] = field(default_factory=lambda: {"flows", "groups", "meters"})


@dataclass
class _Batch:
    """One update on the wire, up to and including its barrier."""

    before: FlowSet | None
    target: FlowSet
    labels: dict[int, str]
    barrier_xid: int
    started: float
    summary: str
    errors: list[str] = field(default_factory=list)


@dataclass
class SwitchState:
    name: str
    dpid: int
    datapath: Any = None
    programmed: bool = False
    desired: FlowSet | None = None  # normalized (sdnctl.southbound.ofp.normalize_flowset)
    installed: FlowSet | None = None  # what the switch is known to hold, normalized
    foreign: list[sb.ForeignFlow] = field(default_factory=list)
    flow_mods_sent: int = 0
    last_update: float | None = None
    dump: _Dump | None = None
    batch: _Batch | None = None
    dirty: bool = False
    needs_dump: bool = False  # after a failed update: what the switch holds is unknown
    ports_down: set[int] = field(default_factory=set)  # from port status since connect
    connected_at: float | None = None

    @property
    def connected(self) -> bool:
        return self.datapath is not None

    def status(self) -> dict[str, object]:
        fs = self.desired
        return {
            "dpid": self.dpid,
            "connected": self.connected,
            "programmed": self.programmed,
            "flows": len(fs.flows) if fs else 0,
            "groups": len(fs.groups) if fs else 0,
            "meters": len(fs.meters) if fs else 0,
            "last_update": self.last_update,
            "flow_mods_sent": self.flow_mods_sent,
            "ports_down": sorted(self.ports_down),
        }


@dataclass
class PolicyInfo:
    file: str
    sha256: str
    loaded_at: float
    text: str = ""  # the file as loaded: `sdnctl plan` diffs an edit against it


class ControllerState:
    """Everything the daemon knows, shared by the app and the status API."""

    def __init__(
        self,
        policy: Policy,
        topology: Topology,
        policy_info: PolicyInfo,
        snapshot: BindingSnapshot | None = None,
        started_at: float | None = None,
        compile_fn: CompileFn = compile_network,
        use_bundles: bool = True,
    ) -> None:
        self.policy = policy
        self.topology = topology
        self.policy_info = policy_info
        self.snapshot = snapshot or BindingSnapshot(Bindings())
        self.started_at = time.monotonic() if started_at is None else started_at
        self.compile_fn = compile_fn
        self.use_bundles = use_bundles
        self.switches = {
            sw.name: SwitchState(sw.name, sw.dpid) for sw in topology.switches.values()
        }
        self.events: collections.deque[dict[str, object]] = collections.deque(maxlen=MAX_EVENTS)
        self.lock = threading.RLock()

    def record(self, kind: str, message: str, level: int = logging.INFO) -> None:
        log.log(level, message)
        self.events.append({"time": time.time(), "kind": kind, "message": message})

    def since_start(self) -> float:
        return time.monotonic() - self.started_at

    def recompile(self) -> list[SwitchState]:
        """Compile for the current policy and bindings; the switches whose FlowSet changed.

        A compiler failure keeps the last good FlowSets (and is reported)."""
        try:
            compiled = self.compile_fn(self.policy, self.topology, self.snapshot.bindings)
            normalized = {name: sb.normalize_flowset(fs) for name, fs in compiled.items()}
        except Exception as exc:
            log.exception("compile failed")
            self.record("compile-error", f"compile failed, keeping the last flows: {exc}",
                        logging.ERROR)
            return []
        changed = []
        for name, fs in normalized.items():
            sw = self.switches.get(name)
            if sw is not None and fs != sw.desired:
                sw.desired = fs
                changed.append(sw)
        return changed

    def status(self) -> dict[str, object]:
        with self.lock:
            return self._status()

    def _status(self) -> dict[str, object]:
        bindings = self.snapshot.bindings.ports
        return {
            "policy": {
                "file": self.policy_info.file,
                "sha256": self.policy_info.sha256,
                "loaded_at": self.policy_info.loaded_at,
            },
            "switches": {name: sw.status() for name, sw in sorted(self.switches.items())},
            "bindings": {vm: str(ref) for vm, ref in sorted(bindings.items())},
            "unknown_ports": [p.as_json() for p in self.snapshot.problems],
            "events": list(self.events),
        }


def _locked(handler: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(handler)
    def wrapper(self: ControllerApp, ev: Any) -> None:
        with self.state.lock:
            handler(self, ev)

    return wrapper


class EventBindings(event.EventBase):
    """OVSDB says the live bindings changed."""

    def __init__(self, snapshot: BindingSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class ControllerApp(app_manager.OSKenApp):  # type: ignore[misc]
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = "sdnctl"
        self.state: ControllerState = kwargs["sdnctl_state"]
        self._bundle_id = 0
        self.state.recompile()

    # ---- inputs from the daemon --------------------------------------------------
    def post_bindings(self, snapshot: BindingSnapshot) -> None:
        """Callable from any thread (the OVSDB monitor's): queued for the app's event loop."""
        self.send_event(self.name, EventBindings(snapshot))

    @set_ev_cls(EventBindings)
    @_locked
    def _bindings_changed(self, ev: EventBindings) -> None:
        old, new = self.state.snapshot, ev.snapshot
        self.state.snapshot = new
        for problem in sorted(set(new.problems) - set(old.problems)):
            self.state.record("unknown-port", f"port refused: {problem}", logging.WARNING)
        if new.bindings == old.bindings:
            return
        self.state.record("bindings", "bindings: " + _binding_change(old.bindings, new.bindings))
        for sw in self.state.recompile():
            self._push(sw)

    # ---- switch lifecycle --------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @_locked
    def _features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        topo_sw = self.state.topology.by_dpid(dp.id)
        if topo_sw is None:
            self.state.record(
                "unknown-switch",
                f"dpid {dp.id:#x} from {dp.address[0]} is not in the topology: left alone",
                logging.WARNING,
            )
            return
        sw = self.state.switches[topo_sw.name]
        sw.datapath, sw.programmed, sw.batch, sw.dirty = dp, False, None, False
        sw.ports_down = set()
        sw.connected_at = time.monotonic()
        self.state.record("connect", f"{sw.name} (dpid {dp.id:#x}) connected from {dp.address[0]}")
        self._start_dump(sw)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    @_locked
    def _dead(self, ev: Any) -> None:
        sw = self._switch_of(ev.datapath)
        if sw is None:
            return
        sw.datapath, sw.programmed, sw.dump, sw.batch, sw.dirty = None, False, None, None, False
        self.state.record("disconnect", f"{sw.name} disconnected", logging.WARNING)
        self.on_switch_down(sw)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @_locked
    def _port_status(self, ev: Any) -> None:
        sw = self._switch_of(ev.msg.datapath)
        if sw is None:
            return
        desc = ev.msg.desc
        reasons = {ofp.OFPPR_ADD: "added", ofp.OFPPR_DELETE: "deleted"}
        reason = reasons.get(ev.msg.reason, "modified")
        up = not (desc.state & ofp.OFPPS_LINK_DOWN) and not (desc.config & ofp.OFPPC_PORT_DOWN)
        if ev.msg.reason == ofp.OFPPR_DELETE:
            up = False
        name = desc.name.decode(errors="replace") if isinstance(desc.name, bytes) else desc.name
        if up:
            sw.ports_down.discard(desc.port_no)
        else:
            sw.ports_down.add(desc.port_no)
        link = "up" if up else "down"
        self.state.record("port", f"{sw.name} port {desc.port_no} ({name}) {reason}, link {link}")
        self.on_port_change(sw, desc.port_no, up)

    def on_port_change(self, sw: SwitchState, port_no: int, up: bool) -> None:
        """Hook: link-failure handling (recompute around a dead fabric link) goes here."""

    def on_switch_down(self, sw: SwitchState) -> None:
        """Hook: a whole switch gone is a link failure for each of its neighbours."""

    # ---- reading what a switch holds ---------------------------------------------
    def _start_dump(self, sw: SwitchState) -> None:
        sw.dump, sw.needs_dump = _Dump(), False
        for req in sb.state_requests(sw.datapath):
            sw.datapath.send_msg(req)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @_locked
    def _flow_stats(self, ev: Any) -> None:
        self._collect(ev.msg, "flows")

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @_locked
    def _group_desc(self, ev: Any) -> None:
        self._collect(ev.msg, "groups")

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @_locked
    def _meter_config(self, ev: Any) -> None:
        self._collect(ev.msg, "meters")

    def _collect(self, msg: Any, kind: str) -> None:
        sw = self._switch_of(msg.datapath)
        if sw is None or sw.dump is None:
            return
        getattr(sw.dump, kind).extend(msg.body)
        if msg.flags & ofp.OFPMPF_REPLY_MORE:
            return
        sw.dump.pending.discard(kind)
        if sw.dump.pending:
            return
        dump, sw.dump = sw.dump, None
        flow_owners, group_owners, meter_owners = sb.owners_of(sw.desired or FlowSet(sw.name, ()))
        flows, foreign = sb.parse_flow_stats(dump.flows, flow_owners)
        sw.installed = FlowSet.build(
            sw.name,
            flows,
            sb.parse_group_desc(dump.groups, group_owners),
            sb.parse_meter_config(dump.meters, meter_owners),
        )
        sw.foreign = foreign
        log.info(
            "%s holds %d flows, %d groups, %d meters (%d not ours)",
            sw.name, len(flows), len(sw.installed.groups), len(sw.installed.meters), len(foreign),
        )
        self._push(sw)

    # ---- writing -----------------------------------------------------------------
    def _push(self, sw: SwitchState) -> None:
        """Send the switch the difference between what it holds and what it should hold."""
        if sw.datapath is None or sw.dump is not None:
            return  # not connected, or still reading: the dump's end pushes
        if sw.desired is None:
            self.state.record("error", f"{sw.name}: no compiled flows; switch left as it is",
                              logging.ERROR)
            return
        if sw.batch is not None:
            sw.dirty = True
            return
        if sw.needs_dump:
            self._start_dump(sw)
            return
        diff = diff_flowsets(sw.installed, sw.desired)
        foreign = sb.foreign_to_delete(sw.foreign, sw.desired)
        if diff.empty and not foreign and sw.programmed:
            return
        bundle_id = None
        if self.state.use_bundles:
            self._bundle_id = (self._bundle_id + 1) & 0xFFFFFFFF
            bundle_id = self._bundle_id
        plan = sb.plan_update(sw.datapath, diff, sw.installed, foreign, bundle_id)
        labels: dict[int, str] = {}
        for out in plan:
            sw.datapath.send_msg(out.msg)
            labels[out.msg.xid] = out.label
        n_mods = sum(o.is_flow_mod for o in plan)
        sw.flow_mods_sent += n_mods
        summary = diff.summary() + (f", {len(foreign)} foreign flows deleted" if foreign else "")
        sw.batch = _Batch(sw.installed, sw.desired, labels, plan[-1].msg.xid, time.monotonic(),
                          summary)
        sw.foreign = [ff for ff in sw.foreign if ff not in foreign]
        sw.dirty = False
        if n_mods or len(diff):
            log.info("%s: sending %s", sw.name, summary)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @_locked
    def _barrier(self, ev: Any) -> None:
        sw = self._switch_of(ev.msg.datapath)
        if sw is None or sw.batch is None or ev.msg.xid != sw.batch.barrier_xid:
            return
        batch, sw.batch = sw.batch, None
        took = time.monotonic() - batch.started
        if batch.errors:
            # A bundle is all or nothing, but meters sit outside it: read the switch again
            # before the next update rather than trust either version.
            sw.programmed, sw.needs_dump = False, True
            sw.installed = batch.before
            self.state.record(
                "error",
                f"{sw.name}: update rejected ({len(batch.errors)} errors): {batch.errors[0]}",
                logging.ERROR,
            )
            return
        sw.installed = batch.target
        sw.last_update = time.time()
        if not sw.programmed:
            sw.programmed = True
            self.state.record(
                "programmed",
                f"{sw.name} programmed: {len(batch.target.flows)} flows "
                f"({batch.summary}) in {took * 1000:.0f} ms, "
                f"{self.state.since_start():.2f} s after daemon start",
            )
        else:
            self.state.record(
                "update", f"{sw.name} updated: {batch.summary} in {took * 1000:.0f} ms"
            )
        if sw.dirty:
            self._push(sw)

    @set_ev_cls(
        ofp_event.EventOFPErrorMsg, [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER]
    )
    @_locked
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        sw = self._switch_of(msg.datapath)
        where = sw.name if sw else f"dpid {msg.datapath.id}"
        label = sw.batch.labels.get(msg.xid, "") if sw and sw.batch else ""
        text = f"{where}: switch error {_error_name(msg)}" + (f" for {label}" if label else "")
        if sw and sw.batch:
            sw.batch.errors.append(text)
        self.state.record("error", text, logging.ERROR)

    def _switch_of(self, dp: Any) -> SwitchState | None:
        for sw in self.state.switches.values():
            if sw.datapath is dp and dp is not None:
                return sw
        return None


def _error_name(msg: Any) -> str:
    if msg.type == ofp.OFPET_EXPERIMENTER:
        return f"experimenter {msg.experimenter:#x} type {msg.exp_type}"
    return f"{ofp.ofp_error_type_to_str(msg.type)}/{ofp.ofp_error_code_to_str(msg.type, msg.code)}"


def _binding_change(old: Bindings, new: Bindings) -> str:
    parts = [
        f"+{vm}@{ref}" for vm, ref in sorted(new.ports.items()) if old.ports.get(vm) != ref
    ] + [f"-{vm}" for vm in sorted(old.ports) if vm not in new.ports]
    return " ".join(parts) or "(none)"
