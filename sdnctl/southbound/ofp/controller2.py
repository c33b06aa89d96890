"""OVS's `controller(meter_id=N)` (NXAST_CONTROLLER2 with a meter id property).

os-ken 4.x knows NXAST_CONTROLLER2 but not its meter id property (OVS added it
after os-ken's list), and its parser fails on a property it does not know. This
class encodes and decodes the action with the properties OVS writes for it
(max_len, reason, controller id, meter id); it takes os-ken's place for that
subtype, so a dumped flow with a metered controller action parses. A property
the IR cannot carry (userdata, pause, another reason or controller) is kept in
`other`, and the decoder refuses the action (sdnctl.southbound.ofp.actions).
"""

from __future__ import annotations

import struct
from typing import Any

from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

PROP_MAX_LEN = nicira_ext.NXAC2PT_MAX_LEN
PROP_CONTROLLER_ID = nicira_ext.NXAC2PT_CONTROLLER_ID
PROP_REASON = nicira_ext.NXAC2PT_REASON
PROP_METER_ID = 5  # NXAC2PT_METER_ID in OVS's nicira-ext.h
NO_LIMIT = 0xFFFF  # max_len: the whole packet


def _prop(kind: int, value: bytes) -> bytes:
    """One property: type, length (header + value), value, padded to 8 bytes."""
    body = struct.pack("!HH", kind, 4 + len(value)) + value
    return body + b"\0" * (-len(body) % 8)


def _default(kind: int, value: bytes) -> bool:
    """A property that says what the IR means anyway: reason `action`, controller 0."""
    if kind == PROP_REASON:
        return value[:1] == bytes([ofp.OFPR_ACTION])
    return kind == PROP_CONTROLLER_ID and value[:2] == b"\0\0"


class NXActionMeteredController(parser.NXAction):  # type: ignore[misc,name-defined]
    """NXAST_CONTROLLER2 as the IR uses it: the whole packet, through meter `meter_id`."""

    _subtype = nicira_ext.NXAST_CONTROLLER2

    def __init__(self, meter_id: int | None = None, max_len: int = NO_LIMIT,
                 other: bool = False, type_: Any = None, len_: Any = None,
                 vendor: Any = None, subtype: Any = None) -> None:
        super().__init__()
        self.meter_id = meter_id
        self.max_len = max_len
        self.other = other  # a property the IR does not carry

    @classmethod
    def parser(cls, buf: bytes) -> NXActionMeteredController:
        meter_id: int | None = None
        max_len, other = NO_LIMIT, False
        offset = 6  # padding after the subtype
        while offset + 4 <= len(buf):
            kind, length = struct.unpack_from("!HH", buf, offset)
            if length < 4:
                break
            value = bytes(buf[offset + 4:offset + length])
            if kind == PROP_METER_ID and len(value) == 4:
                (meter_id,) = struct.unpack("!I", value)
            elif kind == PROP_MAX_LEN and len(value) >= 2:
                (max_len,) = struct.unpack_from("!H", value)
            elif not _default(kind, value):
                other = True
            offset += length + (-length % 8)
        return cls(meter_id, max_len, other)

    def serialize_body(self) -> bytearray:
        body = bytearray(6)
        if self.max_len != NO_LIMIT:
            body += _prop(PROP_MAX_LEN, struct.pack("!H", self.max_len))
        if self.meter_id is not None:
            body += _prop(PROP_METER_ID, struct.pack("!I", self.meter_id))
        return body


# Parse every NXAST_CONTROLLER2 with this class (os-ken's raises on the meter id).
parser.NXAction.register(NXActionMeteredController)
