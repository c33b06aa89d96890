"""What the controller app does as one of several replicas (`sdnctl run --etcd`).

Every switch connects to every replica. The election (sdnctl/ha/election.py) says
which replica leads; here that becomes OpenFlow roles:

- On connect a replica first asks the switch for its role: MASTER with its
  generation id when leading, SLAVE with the leader's otherwise. Then it reads
  what the switch holds, as always (a SLAVE may read).
- Only the leader writes, and only to a switch that acknowledged it as MASTER with
  the current generation, while its lease is vouched for (`_may_write`, checked by
  `_push`, the one place that writes).
- Taking over: MASTER to every connected switch; once a switch acknowledges, it is
  read again and sent the difference (a switch that already holds the right table
  receives nothing but a barrier). Stepping down: SLAVE to every switch, at once.
- A switch refusing MASTER as stale (a newer generation claimed it) or a write as
  IS_SLAVE is not written to again until it acknowledges MASTER anew.

Without `--etcd` (`state.daemon.ha` is None) none of this runs: no role request is sent
and the switch keeps its default role (EQUAL), as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from os_ken.controller import event, ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3 as ofp

from sdnctl.ha.model import HaView, Revision, role_to_ask
from sdnctl.live.state import ControllerState, SwitchState

ROLE_NAMES = {ofp.OFPCR_ROLE_MASTER: "master", ofp.OFPCR_ROLE_SLAVE: "slave",
              ofp.OFPCR_ROLE_EQUAL: "equal", ofp.OFPCR_ROLE_NOCHANGE: "nochange"}


class EventHa(event.EventBase):
    """The election's view changed (role, leader, generation, refusal)."""

    def __init__(self, view: HaView) -> None:
        super().__init__()
        self.view = view


class ReplicaMixin:
    """OpenFlow roles for replicas; mixed into ControllerApp."""

    state: ControllerState
    name: str
    send_event: Callable[[str, Any], Any]
    _switch_of: Callable[[Any], SwitchState | None]
    _start_dump: Callable[[SwitchState], None]
    _push: Callable[[SwitchState], None]
    _ha_seen: HaView | None

    # ---- inputs ------------------------------------------------------------------
    def post_ha(self, view: HaView) -> None:
        """The election's callback (its own thread): queued for the app."""
        self.send_event(self.name, EventHa(view))

    def _publish_revision(self) -> None:
        """Tell the election which files this replica enforces now."""
        st = self.state
        if st.daemon.ha is not None and st.topology_info is not None:
            st.daemon.ha.set_local(Revision(st.policy_info.sha256, st.topology_info.sha256))

    # ---- roles -------------------------------------------------------------------
    def _claim_role(self, sw: SwitchState) -> None:
        """Ask `sw` for the role this replica should have now (nothing without --etcd)."""
        ha = self.state.daemon.ha
        dp = sw.datapath
        if ha is None or dp is None:
            return
        ask = role_to_ask(ha.view())
        role = ofp.OFPCR_ROLE_MASTER if ask.master else ofp.OFPCR_ROLE_SLAVE
        req = dp.ofproto_parser.OFPRoleRequest(dp, role, ask.generation)
        dp.send_msg(req)  # sets req.xid
        sw.on_role_asked(req.xid, ask)

    def _may_write(self, sw: SwitchState) -> bool:
        ha = self.state.daemon.ha
        if ha is None:
            return True
        return (ha.leading() and sw.role == "master"
                and sw.role_generation == ha.view().generation)

    @set_ev_cls(ofp_event.EventOFPRoleReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _role_reply(self, ev: Any) -> None:
        with self.state.lock:
            msg = ev.msg
            sw = self._switch_of(msg.datapath)
            role = ROLE_NAMES.get(msg.role, f"role {msg.role}")
            if sw is None or not sw.on_role_reply(msg.xid, role, msg.generation_id):
                return  # a reply to an older request: the newer one decides
            if role != "master":
                logging.getLogger("controller").info(
                    "%s: role %s acknowledged (generation %d)", sw.name, role.upper(),
                    msg.generation_id)
                return
            view = self.state.daemon.ha.view() if self.state.daemon.ha else None
            after = ""
            if view is not None and view.leading_since is not None:
                after = f", {sw.role_at - view.leading_since:.2f} s after the lease was won"
            self.state.record("role", f"{sw.name}: role MASTER acknowledged (generation "
                              f"{msg.generation_id}){after}")
            self._push(sw)  # reads the switch again (needs_dump), then sends the diff

    def _role_refused(self, sw: SwitchState, msg: Any) -> bool:
        """An error for our role request (True), or for a write a SLAVE may not make:
        either way stop writing to `sw` until it acknowledges MASTER."""
        if msg.type == ofp.OFPET_BAD_REQUEST and msg.code == ofp.OFPBRC_IS_SLAVE:
            if sw.on_told_slave():
                self.state.record("role", f"{sw.name}: the switch says this replica is a "
                                  "SLAVE (another replica claimed it): no more writes",
                                  logging.WARNING)
            return False  # also the batch's error, as any refused write
        if msg.type != ofp.OFPET_ROLE_REQUEST_FAILED:
            return False
        refused, asked = sw.on_role_refused(msg.xid)
        if not refused:
            return False
        what = "MASTER" if asked is not None and asked.master else "SLAVE"
        gen = asked.generation if asked is not None else "?"
        why = ("stale generation: a newer leader has claimed the switch"
               if msg.code == ofp.OFPRRFC_STALE else
               ofp.ofp_error_code_to_str(msg.type, msg.code))
        self.state.record("role", f"{sw.name}: role {what} with generation {gen} refused "
                          f"({why})", logging.WARNING if what == "MASTER" else logging.INFO)
        return True

    # ---- the election's view -----------------------------------------------------
    @set_ev_cls(EventHa)
    def _ha_changed(self, ev: EventHa) -> None:
        with self.state.lock:
            self._apply_view(ev.view)

    def _apply_view(self, view: HaView) -> None:
        old, self._ha_seen = self._ha_seen, view
        st = self.state
        connected = [sw for sw in st.switches.values() if sw.connected]
        took_over = view.leading and (old is None or not old.leading
                                      or old.generation != view.generation)
        if took_over:
            st.record("ha", f"leading as generation {view.generation} ({view.reason}): "
                      f"claiming {len(connected)} connected switches", logging.WARNING)
            for sw in connected:
                sw.unprogram(reread=True)  # read it again once it acknowledges MASTER
                self._claim_role(sw)
        elif old is not None and old.leading and not view.leading:
            st.record("ha", f"stepped down ({view.reason}): no more writes, SLAVE asked "
                      f"of {len(connected)} switches", logging.WARNING)
            for sw in connected:
                sw.unprogram(reread=False)
                self._claim_role(sw)
        elif not view.leading and (old is None or old.leader != view.leader
                                   or old.generation != view.generation):
            st.record("ha", f"following: {view.leader or 'nobody'} leads"
                      + (f" (generation {view.generation})" if view.generation else ""))
            for sw in connected:
                if sw.role != "slave":  # e.g. refused as stale before we knew the leader
                    self._claim_role(sw)
        if view.refusal != (old.refusal if old else None):
            if view.refusal:
                st.record("ha", f"will not take over: {view.refusal}", logging.WARNING)
            elif old is not None:
                st.record("ha", "files match the published revision again: may take over")
