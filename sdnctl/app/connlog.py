"""The OpenFlow side of the connection log: the `acl` stage's metered copies in.

The record itself is made by `sdnctl.live.connlog` (which rule or tenant, which
VMs, the 5-tuple); this mixin reads the packet-in and hands it over. Nothing is
sent back: the packet went on (allowed) or was dropped (denied) in the switch.
"""

from __future__ import annotations

from typing import Any

from sdnctl.live.state import ControllerState, SwitchState
from sdnctl.pipeline import table_id

ACL_TABLE = table_id("acl")


class ConnlogMixin:
    """Mixed into ControllerApp."""

    state: ControllerState

    def _connlog_packet_in(self, msg: Any, sw: SwitchState) -> None:
        try:
            in_port: int | None = int(msg.match["in_port"])
        except (KeyError, TypeError, ValueError):
            in_port = None
        st = self.state
        with st.lock:
            policy, bindings = st.policy, st.snapshot.bindings
        st.connlog.add(policy, bindings, sw.name, in_port, int(msg.cookie), bytes(msg.data))
