"""A small IPFIX collector (RFC 7011) for the flow-export test: UDP on loopback,
templates remembered per (observation domain, template id), data records decoded
into dicts keyed by information element name (the few the test reads; others by
number)."""

from __future__ import annotations

import socket
import struct
import threading
from ipaddress import IPv4Address

NAMES = {1: "octetDeltaCount", 2: "packetDeltaCount", 4: "protocolIdentifier",
         7: "sourceTransportPort", 8: "sourceIPv4Address", 10: "ingressInterface",
         11: "destinationTransportPort", 12: "destinationIPv4Address", 14: "egressInterface",
         56: "sourceMacAddress", 61: "flowDirection", 80: "destinationMacAddress",
         85: "octetTotalCount", 86: "packetTotalCount", 136: "flowEndReason",
         82: "interfaceName", 138: "observationPointId", 243: "dot1qVlanId",
         256: "ethernetType"}
ADDRESSES = {8, 12}
STRINGS = {82}
MACS = {56, 80}
TEMPLATE_SET, OPTIONS_TEMPLATE_SET = 2, 3


def _value(ie: int, raw: bytes) -> object:
    if ie in ADDRESSES and len(raw) == 4:
        return IPv4Address(raw)
    if ie in STRINGS:
        return raw.rstrip(b"\0").decode(errors="replace")
    if ie in MACS:
        return ":".join(f"{b:02x}" for b in raw)
    if len(raw) <= 8:
        return int.from_bytes(raw, "big")
    return raw


def parse_message(data: bytes, templates: dict) -> list[dict]:
    """The data records of one IPFIX message (each with `observationDomainId`);
    templates it carries are added to `templates`."""
    version, length, _time, _seq, domain = struct.unpack_from("!HHIII", data)
    assert version == 10, f"not IPFIX: version {version}"
    records, pos = [], 16
    while pos + 4 <= min(length, len(data)):
        set_id, set_len = struct.unpack_from("!HH", data, pos)
        body, end = pos + 4, pos + set_len
        if set_id in (TEMPLATE_SET, OPTIONS_TEMPLATE_SET):
            while body + 4 <= end:
                tid, count = struct.unpack_from("!HH", data, body)
                body += 4
                if set_id == OPTIONS_TEMPLATE_SET:
                    body += 2  # scope field count
                fields = []
                for _ in range(count):
                    ie, flen = struct.unpack_from("!HH", data, body)
                    body += 4
                    if ie & 0x8000:  # enterprise-specific: a private enterprise number follows
                        body += 4
                    fields.append((ie, flen))
                templates[(domain, tid)] = fields
        elif set_id >= 256 and (domain, set_id) in templates:
            fields = templates[(domain, set_id)]
            while body < end:
                record, start = {"observationDomainId": domain}, body
                for ie, flen in fields:
                    if flen == 0xFFFF:  # variable length
                        flen = data[body]
                        body += 1
                        if flen == 255:
                            flen = struct.unpack_from("!H", data, body)[0]
                            body += 2
                    if body + flen > end:
                        body = end  # padding
                        break
                    record[NAMES.get(ie & 0x7FFF, str(ie))] = _value(ie & 0x7FFF,
                                                                     data[body:body + flen])
                    body += flen
                else:
                    records.append(record)
                if body == start:
                    break
        pos = end if set_len else len(data)
    return records


class Collector:
    """Listens on 127.0.0.1 (a free port) in a thread; `records` grows as messages come."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.records: list[dict] = []
        self.messages = 0
        self.templates: dict = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.messages += 1
            self.records += parse_message(data, self.templates)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
