"""What the controller app does besides programming: it watches.

- Packet-ins from stage `dhcp` are DHCP requests, answered by `sdnctl/app/dhcp.py`;
  from stage `arp`, a gateway's next hops answering, learnt by `sdnctl/app/uplinks.py`.
  Those from stage `acl` are the connection log's metered copies
  (`sdnctl/app/connlog.py`). Any other is counted per switch and dropped (no
  packet-out, nothing learnt), with a rate-limited log line (sdnctl.live.counters):
  the pipeline sends nothing else to the controller, so one arriving means a flow
  outside the policy sent it.
- Live reads: `read_switch` (any thread; the API's `/flows/SWITCH?source=switch`)
  asks a switch for its flows, groups and meters and waits for the answer, which
  `sdnctl verify` compares with intent.
- The flow-stats poll (`poll_stats`, every few seconds from the daemon) feeds the
  dropped-by-policy counters behind /metrics.

Requests go out from the app's own thread (as events), holding the state lock, so
a reply cannot be handled before its read is registered.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

from os_ken.controller import event, ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3 as ofp

from sdnctl.api import SwitchReadError
from sdnctl.live.reads import KINDS, Read, Waiter
from sdnctl.live.state import ControllerState, SwitchState
from sdnctl.pipeline import table_id
from sdnctl.southbound import ofp as sb
from sdnctl.southbound.livedump import drop_samples, dump_to_json

DHCP_TABLE = table_id("dhcp")
ARP_TABLE = table_id("arp")
ACL_TABLE = table_id("acl")
PACKET_IN_REASONS = {ofp.OFPR_NO_MATCH: "table miss", ofp.OFPR_ACTION: "output to controller",
                     ofp.OFPR_INVALID_TTL: "invalid TTL"}


class EventRead(event.EventBase):
    """Read what `switch` holds (`kinds` of flows, groups, meters); `done(read)` after."""

    def __init__(self, switch: str, kinds: Sequence[str], done: Callable[[Read], None]) -> None:
        super().__init__()
        self.switch = switch
        self.kinds = tuple(kinds)
        self.done = done


class EventPoll(event.EventBase):
    """Time to read every connected switch's flow stats."""


class ObserverMixin:
    """Packet-ins, live reads and the stats poll; mixed into ControllerApp."""

    state: ControllerState
    name: str
    send_event: Callable[[str, Any], Any]
    _switch_of: Callable[[Any], SwitchState | None]
    _dhcp_packet_in: Callable[[Any, SwitchState], None]
    _uplink_packet_in: Callable[[Any, SwitchState], None]
    _connlog_packet_in: Callable[[Any, SwitchState], None]
    _poll_dhcp_meters: Callable[[SwitchState], None]
    _poll_round: list[str]  # switches still to read in this round of the stats poll

    # ---- packet-ins --------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        msg = ev.msg
        with self.state.lock:
            sw = self._switch_of(msg.datapath)
        if sw is not None and msg.table_id == DHCP_TABLE and msg.reason == ofp.OFPR_ACTION:
            self._dhcp_packet_in(msg, sw)  # the metered DHCP path: answered, not counted here
            return
        if sw is not None and msg.table_id == ARP_TABLE and msg.reason == ofp.OFPR_ACTION:
            self._uplink_packet_in(msg, sw)  # a gateway's next hop answering: learnt
        if sw is not None and msg.table_id == ACL_TABLE and msg.reason == ofp.OFPR_ACTION:
            self._connlog_packet_in(msg, sw)  # a metered copy for the connection log
            return
        with self.state.lock:
            if sw is not None:
                sw.on_packet_in()
            name = sw.name if sw else f"dpid {msg.datapath.id or 0:#x}"
        try:
            in_port = msg.match["in_port"]
        except (KeyError, TypeError):
            in_port = "?"
        reason = PACKET_IN_REASONS.get(msg.reason, f"reason {msg.reason}")
        self.state.counters.packet_in(
            name, f"{reason}, table {msg.table_id}, cookie {msg.cookie:#x}, in_port {in_port}, "
                  f"{msg.total_len} bytes")
        # Dropped: no packet-out, and no flow asks the switch to buffer, so nothing waits.

    # ---- live reads --------------------------------------------------------------
    def read_switch(self, name: str, timeout: float) -> dict[str, object]:
        """What `name` holds now, as IR JSON (sdnctl.southbound.livedump); blocks up to
        `timeout` s. Raises SwitchReadError. Call from any thread but the app's."""
        waiter = Waiter()
        started = time.monotonic()

        def done(read: Read) -> None:  # app thread, lock held: hand over, convert outside
            sw = self.state.switches.get(name)
            waiter.set({"read": read, "desired": sw.desired if sw else None}, read.error)

        self.send_event(self.name, EventRead(name, KINDS, done))
        if not waiter.wait(timeout):
            raise SwitchReadError("504 Gateway Timeout", f"{name} did not answer within "
                                  f"{timeout:.0f} s")
        if waiter.error or waiter.result is None:
            raise SwitchReadError("503 Service Unavailable", waiter.error or "no answer")
        read, desired = waiter.result["read"], waiter.result["desired"]
        assert isinstance(read, Read)
        out = dump_to_json(name, read.replies["flows"], read.replies["groups"],
                           read.replies["meters"], desired)  # type: ignore[arg-type]
        out["read_in_s"] = time.monotonic() - started
        return out

    @set_ev_cls(EventRead)
    def _read(self, ev: EventRead) -> None:
        with self.state.lock:
            read = Read(ev.switch, set(ev.kinds), ev.done)
            sw = self.state.switches.get(ev.switch)
            if sw is None or sw.datapath is None:
                read.fail(f"{ev.switch} is not connected")
                return
            self._start_read(sw, read)

    def _start_read(self, sw: SwitchState, read: Read) -> None:
        requests = dict(zip(KINDS, sb.state_requests(sw.datapath), strict=True))
        for kind in sorted(read.pending):
            req = requests[kind]
            sw.datapath.send_msg(req)  # sets req.xid
            read.xids.add(req.xid)
            sw.add_read(req.xid, read)

    def _collect_read(self, sw: SwitchState, msg: Any, kind: str) -> bool:
        """A stats reply that belongs to a read: collect it (True), else False."""
        read = sw.read_of(getattr(msg, "xid", None))
        if read is None:
            return False
        if read.add(kind, list(msg.body), bool(msg.flags & ofp.OFPMPF_REPLY_MORE)):
            sw.end_read(read)
            read.done(read)
        return True

    def _fail_read(self, sw: SwitchState, xid: int, why: str) -> bool:
        """The switch refused a read's request: end that read."""
        read = sw.read_of(xid)
        if read is None:
            return False
        sw.end_read(read)
        read.fail(why)
        return True

    def _fail_reads(self, sw: SwitchState, reads: list[Read], why: str) -> None:
        """The reads a connection's end left unanswered (SwitchState.on_connect/on_disconnect)."""
        for read in reads:
            read.fail(why)
        self.state.counters.forget_switch(sw.name)

    # ---- the stats poll ----------------------------------------------------------
    def poll_stats(self) -> None:
        """Read every connected switch's flow stats (callable from any thread)."""
        self.send_event(self.name, EventPoll())

    @set_ev_cls(EventPoll)
    def _poll(self, ev: EventPoll) -> None:
        """A round of flow-stats reads: one switch at a time. Thousands of switches'
        replies at once would fill the app's event queue, stall os-ken's receive
        threads behind it, and leave echoes unanswered until connections drop."""
        with self.state.lock:
            queued = set(self._poll_round)
            self._poll_round += [name for name in sorted(self.state.switches)
                                 if name not in queued]
            if not any(sw.polling for sw in self.state.switches.values()):
                self._poll_next()

    def _poll_next(self) -> None:
        while self._poll_round:
            sw = self.state.switches.get(self._poll_round.pop(0))
            if sw is None or sw.datapath is None or sw.polling:
                continue
            if not sw.programmed or sw.batch is not None:
                continue  # being programmed: its counters can wait for the next round
            sw.start_poll()
            self._start_read(sw, Read(sw.name, {"flows"}, functools.partial(self._polled, sw)))
            self._poll_dhcp_meters(sw)
            return

    def _polled(self, sw: SwitchState, read: Read) -> None:
        sw.end_poll()
        self._poll_next()
        if read.error:
            with self.state.counters.lock:
                self.state.counters.poll_failures += 1
            return
        owners = {f.cookie: f.owner for f in sw.desired.flows} if sw.desired else {}
        stats = read.replies["flows"]
        self.state.counters.record_poll(sw.name, len(stats),
                                        drop_samples(stats, owners, self.state.tenant_of))
