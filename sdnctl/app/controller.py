"""The os-ken app (OpenFlow 1.3): events in -> compile -> diff -> southbound out.

Events in: switches connecting (their flows, groups, meters and ports are read
back), port status (fabric links and gateway uplinks going down or up), live
bindings from OVSDB, and reloaded or refused input files from the daemon's file
watcher. Each event that changes what a switch should hold leads to one update
per affected switch: the difference between what it holds and what it should
hold, as one atomic bundle closed by a barrier. Nothing is ever flushed: a switch
that reconnects already holding the right table receives nothing but a barrier.

One update per switch is in flight at a time: changes that arrive meanwhile mark
the switch dirty and go out, as one new diff, when the barrier reply comes back.
A switch counts as programmed when the barrier that ends an error-free update is
answered. Link changes are rate-limited (LINK_WINDOW_S): a link going down in a
quiet period is acted on at once (the switch's fast-failover group may need its
revalidator to notice, which takes tens of ms on a busy ovs-vswitchd); any other
change waits for the end of the window, so a flapping port costs at most one
recompile per window, and a returning link is used only once it stayed up that long.

All mutable state lives in `ControllerState` (sdnctl/live/state.py); every handler
holds its lock. Packet-ins, live reads for `verify` and the stats poll for
/metrics are in `sdnctl/app/observe.py`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
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

from sdnctl.app.connlog import ConnlogMixin
from sdnctl.app.dhcp import DhcpMixin
from sdnctl.app.observe import ObserverMixin
from sdnctl.app.replica import ReplicaMixin
from sdnctl.app.uplinks import UplinkMixin
from sdnctl.bindings import Bindings
from sdnctl.diff import diff_flowsets
from sdnctl.flows import FlowSet
from sdnctl.live.links import is_watched
from sdnctl.live.sources import Sources
from sdnctl.live.state import (
    Batch,
    CompileFailed,
    ControllerState,
    Inputs,
    PolicyInfo,
    SwitchState,
)
from sdnctl.live.watch import Change
from sdnctl.southbound import ofp as sb
from sdnctl.southbound.ovsdb import BindingSnapshot
from sdnctl.southbound.portdesc import port_desc_request, port_info, switch_ports
from sdnctl.topology.model import PortRef

__all__ = ["ControllerApp", "ControllerState", "EventBindings", "EventSources", "PolicyInfo",
           "SwitchState"]

log = logging.getLogger("controller")

LINK_WINDOW_S = 0.05


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


class EventSources(event.EventBase):
    """The input files changed (or SIGHUP): validated `sources`, or the `problems`."""

    def __init__(self, sources: Sources | None, problems: Sequence[str], change: Change) -> None:
        super().__init__()
        self.sources = sources
        self.problems = tuple(problems)
        self.change = change


class EventRelink(event.EventBase):
    """The link debounce window closed: recompute paths if the down links changed."""


class ControllerApp(ReplicaMixin, DhcpMixin, UplinkMixin, ConnlogMixin,  # type: ignore[misc]
                    ObserverMixin, app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = "sdnctl"
        self.state: ControllerState = kwargs["sdnctl_state"]
        self._bundle_id = 0
        self._relink_timer: threading.Timer | None = None
        self._relink_since: float | None = None  # first link change not yet recompiled
        self._relinked_at = float("-inf")  # monotonic, last recompile for links
        self._ha_seen = None  # the election's view as last acted on (replicas only)
        self._poll_round: list[str] = []  # the stats poll's switches still to read
        self.state.recompile()

    # ---- inputs from the daemon (callable from any thread: queued for the app) ---
    def post_bindings(self, snapshot: BindingSnapshot) -> None:
        self.send_event(self.name, EventBindings(snapshot))

    def post_sources(self, sources: Sources | None, problems: Sequence[str],
                     change: Change) -> None:
        self.send_event(self.name, EventSources(sources, problems, change))

    @set_ev_cls(EventBindings)
    @_locked
    def _bindings_changed(self, ev: EventBindings) -> None:
        st = self.state
        old, new = st.snapshot, ev.snapshot
        if new.seq < old.seq:
            return  # computed under the previous policy; a reload's rebind replaced it
        st.snapshot = new
        self._report_problems(old, new)
        first, st.bindings_ready = not st.bindings_ready, True
        if new.bindings != old.bindings:
            st.record("bindings", "bindings: " + _binding_change(old.bindings, new.bindings))
        elif not first:
            return
        for sw in st.recompile():
            self._push(sw)
        if first:  # switches held until OVSDB answered get their first update now
            for sw in st.switches.values():
                self._push(sw)

    def _report_problems(self, old: BindingSnapshot, new: BindingSnapshot) -> None:
        for problem in sorted(set(new.problems) - set(old.problems)):
            self.state.record("unknown-port", f"port refused: {problem}", logging.WARNING)

    @set_ev_cls(EventSources)
    @_locked
    def _sources_changed(self, ev: EventSources) -> None:
        if ev.sources is None:
            self._refuse(ev.problems, ev.change)
        else:
            self._enforce(ev.sources, ev.change)

    def _refuse(self, problems: Sequence[str], change: Change) -> None:
        """Keep enforcing the last good policy; say why, in the log and in the status."""
        st = self.state
        for problem in problems:
            log.error("refused: %s", problem)
        st.counters.reload("refused")
        st.history.refused(list(problems), {f.path: f.sha256 for f in change.files})
        st.record(
            "refused",
            f"{change.describe()}: edit refused ({len(problems)} problems), still enforcing "
            f"policy {st.policy_info.sha256[:12]}: {problems[0] if problems else '?'}",
            logging.ERROR,
        )

    def _enforce(self, src: Sources, change: Change) -> None:
        st = self.state
        pol, topo = src.policy_file, src.topology_file
        topology_changed = st.topology_info is None or topo.sha256 != st.topology_info.sha256
        if pol.sha256 == st.policy_info.sha256 and not topology_changed:
            st.record("reload", f"{change.describe()}: policy {pol.sha256[:12]} already "
                      "enforced, nothing to send")
            st.counters.reload("unchanged")
            return
        start = st.edit_started()  # what the edit replaces: the dashboard's "last edits"
        kept, kept_snapshot = st.inputs, st.snapshot
        now = time.time()
        adopted = st.adopt(Inputs(
            src.policy, PolicyInfo(pol.path, pol.sha256, now, pol.text(), pol.mtime),
            src.topology if topology_changed else st.topology,
            PolicyInfo(topo.path, topo.sha256, now, topo.text(), topo.mtime)
            if topology_changed else st.topology_info))
        new_snapshot = None
        if st.daemon.rebind is not None:  # the new policy may bind or refuse other ports
            new_snapshot = st.daemon.rebind(src.policy, src.topology)
            st.snapshot = new_snapshot
        try:
            changed = st.recompile(since=change.detected_at, strict=True)
        except CompileFailed as exc:
            # Valid files the compiler cannot turn into flows: refused like a bad edit,
            # the last good policy still enforced, nothing published.
            st.adopt(kept)
            st.snapshot = kept_snapshot
            self._refuse([str(exc)], change)
            return
        st.counters.reload("ok")
        for sw in adopted:
            # Read what it holds first: it is pushed only once its tables are known.
            st.record("connect", f"{sw.name} (dpid {sw.dpid:#x}) joined the topology")
            self._claim_role(sw)
            sw.datapath.send_msg(port_desc_request(sw.datapath))
            self._start_dump(sw)
        if new_snapshot is not None:
            self._report_problems(kept_snapshot, new_snapshot)
            if new_snapshot.bindings != kept_snapshot.bindings:
                st.record("bindings", "bindings: "
                          + _binding_change(kept_snapshot.bindings, new_snapshot.bindings))
        st.edit_enforced(start, change.describe(), changed)
        st.start_rollout(pol.sha256, change.detected_at, changed)
        st.record("policy", f"{change.describe()}: enforcing policy {pol.sha256[:12]}, "
                  f"{len(changed)} switches to update")
        self._publish_revision()
        for sw in changed:
            self._push(sw)

    # ---- switch lifecycle --------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @_locked
    def _features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        topo_sw = self.state.topology.by_dpid(dp.id)
        if topo_sw is None:
            self.state.strangers[dp.id] = dp
            self.state.record(
                "unknown-switch",
                f"dpid {dp.id:#x} from {dp.address[0]} is not in the topology: left alone",
                logging.WARNING,
            )
            return
        sw = self.state.switches[topo_sw.name]
        reads = sw.on_connect(dp, f"{dp.address[0]}:{dp.address[1]}")
        self._fail_reads(sw, reads, f"{sw.name} reconnected")  # replies went to the old one
        self.state.record("connect", f"{sw.name} (dpid {dp.id:#x}) connected from {dp.address[0]}")
        self._claim_role(sw)  # before anything else (replicas only)
        self._start_dump(sw)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    @_locked
    def _dead(self, ev: Any) -> None:
        for dpid, dp in list(self.state.strangers.items()):
            if dp is ev.datapath:
                del self.state.strangers[dpid]
        sw = self._switch_of(ev.datapath)
        if sw is None:
            return
        self._fail_reads(sw, sw.on_disconnect(), f"{sw.name} disconnected")
        self.state.record("disconnect", f"{sw.name} disconnected", logging.WARNING)

    # ---- ports and links ---------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @_locked
    def _port_desc(self, ev: Any) -> None:
        sw = self._switch_of(ev.msg.datapath)
        if sw is None:
            return
        replies = sw.collect_ports(ev.msg.body, bool(ev.msg.flags & ofp.OFPMPF_REPLY_MORE))
        if replies is None:
            return
        ports = switch_ports(replies)
        waiting = sw.on_ports({n for n, p in ports.items() if not p.live})
        self.state.links.report_switch(sw.name, {n: p.live for n, p in ports.items()})
        self._apply_links(time.monotonic())
        if waiting:
            self._push(sw)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @_locked
    def _port_status(self, ev: Any) -> None:
        sw = self._switch_of(ev.msg.datapath)
        if sw is None:
            return
        info = port_info(ev.msg.desc)
        reasons = {ofp.OFPPR_ADD: "added", ofp.OFPPR_DELETE: "deleted"}
        reason = reasons.get(ev.msg.reason, "modified")
        up = info.live and ev.msg.reason != ofp.OFPPR_DELETE
        sw.on_port_status(info.port_no, up)
        ref = PortRef(sw.name, info.port_no)
        topology = self.state.topology
        peer = topology.peer(ref)
        where = f" (link to {peer})" if peer else (" (uplink)" if is_watched(topology, ref)
                                                   else "")
        self.state.record("port", f"{sw.name} port {info.port_no} ({info.name}) {reason}, "
                          f"link {'up' if up else 'down'}{where}")
        was_live = self.state.links.is_live(ref)
        self.state.links.report_port(sw.name, info.port_no, up)
        if is_watched(topology, ref) and was_live != up:
            self._schedule_relink(urgent=not up)

    def _schedule_relink(self, urgent: bool) -> None:
        """Recompute now (a link went down, none recomputed within the window) or at the
        end of the window; changes meanwhile are coalesced."""
        now = time.monotonic()
        if self._relink_since is None:
            self._relink_since = now
        due = self._relinked_at + LINK_WINDOW_S if urgent else now + LINK_WINDOW_S
        if due <= now:
            if self._relink_timer is not None:
                self._relink_timer.cancel()
            self._relink(None)
        elif self._relink_timer is None:
            timer = threading.Timer(due - now, self.send_event, (self.name, EventRelink()))
            timer.daemon = True
            timer.start()
            self._relink_timer = timer

    @set_ev_cls(EventRelink)
    @_locked
    def _relink(self, ev: EventRelink | None) -> None:
        since, self._relink_since, self._relink_timer = self._relink_since, None, None
        self._relinked_at = time.monotonic()
        self._apply_links(since if since is not None else time.monotonic())

    def _apply_links(self, since: float) -> None:
        """If the set of down link ports moved, recompute paths and update every switch."""
        st = self.state
        down = st.links.down_ports(st.topology)
        if down == st.down_ports:
            return
        went = ", ".join(str(r) for r in sorted(down - st.down_ports)) or "none"
        back = ", ".join(str(r) for r in sorted(st.down_ports - down)) or "none"
        changed = st.recompile(since)
        st.record("links", f"link ports down: {went}; back up: {back}; "
                  f"paths recomputed, {len(changed)} switches to update")
        for sw in changed:
            self._push(sw)

    # ---- reading what a switch holds ---------------------------------------------
    def _start_dump(self, sw: SwitchState) -> None:
        sw.start_dump()
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
        if sw is None or self._collect_read(sw, msg, kind):
            return
        dump = sw.collect_dump(kind, msg.body, bool(msg.flags & ofp.OFPMPF_REPLY_MORE))
        if dump is None:
            return
        desired = sw.desired or FlowSet.of(sw.name, ())
        flow_owners, group_owners, meter_owners = sb.owners_of(desired)
        flows, foreign = sb.parse_flow_stats(dump.flows, flow_owners)
        installed = FlowSet.build(
            sw.name,
            flows,
            sb.parse_group_desc(dump.groups, group_owners),
            sb.parse_meter_config(dump.meters, meter_owners),
        )
        sw.on_installed_read(installed, foreign)
        log.info(
            "%s holds %d flows, %d groups, %d meters (%d not ours)",
            sw.name, len(flows), len(installed.groups), len(installed.meters), len(foreign),
        )
        if not sw.ports_known and getattr(sw.datapath, "state", None) == CONFIG_DISPATCHER:
            # os-ken has asked for the ports and moves to MAIN on the answer (barrier
            # replies are handled in MAIN only): wait for it, and compute the first
            # update with the links as they are.
            sw.hold_for_ports()
            return
        self._push(sw)

    # ---- writing -----------------------------------------------------------------
    def _push(self, sw: SwitchState) -> None:
        """Send the switch the difference between what it holds and what it should hold."""
        if sw.datapath is None or sw.dump is not None or sw.await_ports:
            return  # not connected, or still reading: the read's end pushes
        if not self._may_write(sw):
            return  # a follower, or not yet MASTER of this switch (replicas only)
        if not self.state.bindings_ready:
            return  # OVSDB has not answered: "no VM bound" would delete every VM's flows
        if sw.desired is None:
            self.state.record("error", f"{sw.name}: no compiled flows; switch left as it is",
                              logging.ERROR)
            return
        if sw.batch is not None:
            sw.mark_dirty()
            return
        if sw.needs_dump:
            self._start_dump(sw)
            return
        diff = diff_flowsets(sw.installed, sw.desired)
        foreign = sb.foreign_to_delete(sw.foreign, sw.desired)
        now = time.monotonic()
        since = sw.take_pending_since(now)
        if diff.empty and not foreign and sw.programmed:
            return
        bundle_id = None
        if self.state.use_bundles:
            self._bundle_id = (self._bundle_id + 1) & 0xFFFFFFFF
            bundle_id = self._bundle_id
        plan = sb.plan_update(sw.datapath, diff, foreign, bundle_id, sw.desired)
        labels: dict[int, sb.Outgoing] = {}  # labelled only if the switch refuses one
        xid = 0
        for out in plan:
            xid = sb.send_outgoing(sw.datapath, out)
            labels[xid] = out
        n_mods = sum(o.is_flow_mod for o in plan)
        summary = diff.summary() + (f", {len(foreign)} foreign flows deleted" if foreign else "")
        sw.on_sent(Batch(sw.installed, sw.desired, labels, xid, now, summary, since),
                   n_mods, foreign)
        if n_mods or len(diff):
            log.info("%s: sending %s", sw.name, summary)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @_locked
    def _barrier(self, ev: Any) -> None:
        sw = self._switch_of(ev.msg.datapath)
        batch = sw.on_barrier(ev.msg.xid) if sw is not None else None
        if sw is None or batch is None:
            return
        now = time.monotonic()
        took = now - batch.started
        if batch.errors:
            sw.on_update_failed(batch)
            self.state.record(
                "error",
                f"{sw.name}: update rejected ({len(batch.errors)} errors): {batch.errors[0]}",
                logging.ERROR,
            )
            return
        first = sw.on_update_done(batch, now)
        self.state.rollout_progress(sw, batch)
        self._uplink_programmed(sw, first)
        if first:
            self.state.record(
                "programmed",
                f"{sw.name} programmed: {batch.target.n_flows} flows "
                f"({batch.summary}) in {took * 1000:.0f} ms, "
                f"{self.state.since_start():.2f} s after daemon start",
            )
        else:
            self.state.record(
                "update", f"{sw.name} updated: {batch.summary} in {took * 1000:.0f} ms "
                f"({sw.last_update_s * 1000:.0f} ms since the change was seen)"
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
        out = sw.batch.labels.get(msg.xid) if sw and sw.batch else None
        label = out.label if out is not None else ""
        text = f"{where}: switch error {_error_name(msg)}" + (f" for {label}" if label else "")
        if sw and self._role_refused(sw, msg):
            return
        if sw and self._fail_read(sw, msg.xid, text):
            log.warning("%s", text)  # a refused read is the reader's problem, not an event
            return
        if sw:
            sw.on_error(text)
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
