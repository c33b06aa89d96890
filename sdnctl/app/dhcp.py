"""The OpenFlow side of DHCP: packet-ins from stage `dhcp` in, packet-outs back.

The answer itself comes from `sdnctl.live.dhcp` (bindings, policy, counters); this
mixin only reads the packet-in, sends the answer out of exactly the port the
request came in on, and reads the DHCP meters' drop counters with each stats poll.
"""

from __future__ import annotations

from typing import Any

from os_ken.controller import ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls

from sdnctl.live.state import ControllerState, SwitchState
from sdnctl.pipeline import table_id
from sdnctl.southbound import ofp as sb

DHCP_TABLE = table_id("dhcp")


class DhcpMixin:
    """Mixed into ControllerApp."""

    state: ControllerState

    def _dhcp_packet_in(self, msg: Any, sw: SwitchState) -> None:
        """A request the switch's meters let through: answer it on its port, or not."""
        try:
            in_port = int(msg.match["in_port"])
        except (KeyError, TypeError, ValueError):
            return
        st = self.state
        with st.lock:
            policy, topology, bindings = st.policy, st.topology, st.snapshot.bindings
        reply = st.dhcp.handle(policy, topology, bindings, sw.name, in_port, bytes(msg.data))
        if reply is not None:
            msg.datapath.send_msg(sb.packet_out(msg.datapath, in_port, reply))

    def _poll_dhcp_meters(self, sw: SwitchState) -> None:
        """With each stats poll: the meters' counters, and router advertisements when
        they are due (`DhcpResponder.due_adverts`)."""
        if sw.datapath is None:
            return
        sw.datapath.send_msg(sb.meter_stats_request(sw.datapath))
        st = self.state
        with st.lock:
            policy, topology, bindings = st.policy, st.topology, st.snapshot.bindings
        for port, frame in st.dhcp.due_adverts(policy, topology, bindings, sw.name):
            sw.datapath.send_msg(sb.packet_out(sw.datapath, port, frame))

    @set_ev_cls(ofp_event.EventOFPMeterStatsReply, MAIN_DISPATCHER)
    def _meter_stats(self, ev: Any) -> None:
        st = self.state
        with st.lock:
            sw = next((s for s in st.switches.values() if s.datapath is ev.msg.datapath), None)
            bindings = st.snapshot.bindings
        if sw is not None:
            drops = sb.meter_band_drops(ev.msg.body)
            st.dhcp.record_meter_drops(sw.name, bindings, drops)
            st.connlog.record_meter_drops(sw.name, drops)  # the connection log's meter
