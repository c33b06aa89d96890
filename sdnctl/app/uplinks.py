"""The OpenFlow side of gateway uplinks: next-hop ARP out and in, gratuitous ARPs.

What to send and what a reply teaches is `sdnctl.live.uplinks`; this mixin sends
ARP requests for each uplink's next hop when its gateway is first programmed and
at every probe tick (`probe_next_hops`, every PROBE_EVERY_S from the daemon),
reads the replies the gateway copies to the controller from stage `arp`, and,
when a gateway acknowledges an update, sends the gratuitous ARPs for addresses
that moved to its uplinks. A reply that teaches a new MAC recompiles (the
gateways only) and pushes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from os_ken.controller import event
from os_ken.controller.handler import set_ev_cls

from sdnctl.live.arp import parse_arp
from sdnctl.live.state import ControllerState, SwitchState
from sdnctl.pipeline import table_id
from sdnctl.southbound import ofp as sb
from sdnctl.topology.model import PortRef

ARP_TABLE = table_id("arp")


class EventProbe(event.EventBase):
    """Time to ask every uplink's next hop for its MAC again."""


class UplinkMixin:
    """Mixed into ControllerApp."""

    state: ControllerState
    name: str
    send_event: Callable[[str, Any], Any]
    _push: Callable[[SwitchState], None]

    def probe_next_hops(self) -> None:
        """Ask every connected gateway's next hops (callable from any thread)."""
        self.send_event(self.name, EventProbe())

    @set_ev_cls(EventProbe)
    def _probe_all(self, ev: EventProbe) -> None:
        with self.state.lock:
            for sw in self.state.switches.values():
                if sw.programmed:
                    self._probe(sw)

    def _probe(self, sw: SwitchState) -> None:
        if sw.datapath is None:
            return
        for port, frame in self.state.uplinks.probes(self.state.topology, sw.name):
            sw.datapath.send_msg(sb.packet_out(sw.datapath, port, frame))

    def _uplink_programmed(self, sw: SwitchState, first: bool) -> None:
        """`sw` acknowledged an update: ask its next hops if it is new, and announce
        the addresses that moved to its uplinks."""
        if sw.datapath is None or not self.state.topology.switches[sw.name].uplinks:
            return
        if first:
            self._probe(sw)
        for port, frame in self.state.uplinks.take_announcements(sw.name):
            sw.datapath.send_msg(sb.packet_out(sw.datapath, port, frame))

    def _uplink_packet_in(self, msg: Any, sw: SwitchState) -> None:
        """ARP the gateway copied from an uplink (its next hop's replies, metered)."""
        try:
            in_port = int(msg.match["in_port"])
        except (KeyError, TypeError, ValueError):
            return
        st = self.state
        with st.lock:
            if not st.uplinks.learn(st.topology, PortRef(sw.name, in_port),
                                    parse_arp(bytes(msg.data))):
                return
            mac = st.uplinks.neighbours[f"{sw.name}:{in_port}"]
            st.record("next-hop", f"{sw.name}:{in_port}: next hop's MAC is {mac} (learned by "
                      "ARP); gateways recompiled", logging.INFO)
            for changed in st.recompile():
                self._push(changed)
