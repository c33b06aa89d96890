"""Stand-ins for os-ken's objects, to drive the controller app by hand (no switch,
no event loop): a datapath that records what it is sent, and an event."""

from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser


class FakeDatapath:
    """Records what the app sends, numbering messages as os-ken's Datapath does."""

    def __init__(self, dpid: int, state: str | None = None) -> None:
        self.id, self.address = dpid, ("127.0.0.1", 1)
        self.ofproto, self.ofproto_parser = ofproto_v1_3, ofproto_v1_3_parser
        self.state = state
        self.xid = 0
        self.sent: list = []

    def send_msg(self, msg) -> bool:
        if msg.xid is None:
            self.xid += 1
            msg.set_xid(self.xid)
        msg.serialize()
        self.sent.append(msg)
        return True

    def take(self) -> list[str]:
        """The names of the messages sent since the last call."""
        names, self.sent = [type(m).__name__ for m in self.sent], []
        return names


class Ev:
    """An os-ken event: whatever attributes a handler reads."""

    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)
