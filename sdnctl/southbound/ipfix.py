"""Flow export: IPFIX from every switch's bridge, configured through OVSDB by the daemon
(`sdnctl run --ipfix HOST:PORT`).

Each bridge of this OVSDB whose datapath id is a switch of the topology gets an IPFIX
row (OVS's bridge sampling): the collector, the sampling rate (1: every packet, so the
packet and byte counts are exact), `obs_domain_id` = the low 32 bits of the switch's
dpid (a collector tells switches apart by the observation domain), the cache's active
timeout. Open vSwitch then exports, per flow, addresses, ports, protocol, MACs,
packet and byte counts, the flow direction (0: sampled as it entered the bridge, 1:
as it left) and the interface: `interfaceName` (IE 82) is the OVS interface the
packet was sampled on (`vm-NAME` for a VM plugged by `sdnctl vm plug`; any other's VM
is its `external_ids:vm-id`), `ingressInterface`/`egressInterface` are datapath port
numbers (`ovs-appctl dpctl/show`), not OpenFlow ports.

The rows are tagged `external_ids:sdnctl-switch`; a thread keeps every switch's bridge
configured (bridges that appear later, a topology reload) and the daemon's stop
removes the export again: the export is the daemon's, not a lasting switch setting.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from sdnctl.addresses import parse_address
from sdnctl.topology.model import Topology

log = logging.getLogger("ipfix")

SWITCH_KEY = "sdnctl-switch"
DEFAULT_ACTIVE_TIMEOUT_S = 10
RETRY_S = 2.0
_COLUMNS = {
    "Bridge": ["ipfix"],
    "IPFIX": ["targets", "sampling", "obs_domain_id", "obs_point_id", "cache_active_timeout",
              "external_ids"],
}


def parse_collector(text: str) -> str:
    """`IPV4:PORT`, checked (ValueError with the reason): what OVS's `targets` takes."""
    host, sep, port = text.rpartition(":")
    if not sep or parse_address(host) is None:
        raise ValueError(f"--ipfix {text!r}: give the collector as IPV4:PORT")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--ipfix {text!r}: port must be 1..65535")
    return f"{parse_address(host)}:{int(port)}"


@dataclass(frozen=True, slots=True)
class IpfixExport:
    collector: str  # IPV4:PORT
    sampling: int = 1  # one packet in N
    active_timeout_s: int = DEFAULT_ACTIVE_TIMEOUT_S

    def row(self, switch: str, dpid: int) -> dict[str, Any]:
        """The IPFIX row a switch's bridge gets."""
        return {"targets": [self.collector], "sampling": [self.sampling],
                "obs_domain_id": [dpid & 0xFFFFFFFF], "obs_point_id": [],
                "cache_active_timeout": [self.active_timeout_s],
                "external_ids": {SWITCH_KEY: switch}}

    def as_json(self) -> dict[str, object]:
        return {"collector": self.collector, "sampling": self.sampling,
                "active_timeout_s": self.active_timeout_s}


def _same(row: Any, want: dict[str, Any]) -> bool:
    for column, value in want.items():
        have = getattr(row, column)
        if isinstance(value, dict):
            if dict(have) != value:
                return False
        elif sorted(have if isinstance(have, list) else [have]) != sorted(value):
            return False
    return True


class IpfixExporter:
    """Keeps the IPFIX rows of every switch's bridge as `export` says, in a thread."""

    def __init__(self, remote: str, export: IpfixExport, topology: Topology) -> None:
        self.remote = remote
        self.export = export
        self._switches = {sw.dpid: sw.name for sw in topology.switches.values()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.configured: list[str] = []  # switches whose bridge exports, as last written
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ipfix", daemon=True)
        self._thread.start()

    def set_topology(self, topology: Topology) -> None:
        self._switches = {sw.dpid: sw.name for sw in topology.switches.values()}  # next round

    def status(self) -> dict[str, object]:
        return dict(self.export.as_json(), switches=list(self.configured),
                    last_error=self.last_error)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread, then remove the export from every bridge it configured."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        from sdnctl.southbound.ovsdb_write import OvsdbError, OvsdbWriter

        try:
            with OvsdbWriter(self.remote, timeout_s=timeout_s, more_columns=_COLUMNS) as db:
                db.transact(self._clear, "sdnctl run: IPFIX export off")
        except OvsdbError as exc:
            log.warning("could not remove the IPFIX export: %s", exc)

    # -- the loop --------------------------------------------------------------------
    def _run(self) -> None:
        # Here, not at the top: `sdnctl run --help` imports this module for its options.
        from sdnctl.southbound.ovsdb_write import OvsdbError, OvsdbWriter

        while not self._stop.is_set():
            try:
                with OvsdbWriter(self.remote, more_columns=_COLUMNS) as db:
                    while not self._stop.is_set():
                        db.transact(self._build, "sdnctl run: IPFIX export")
                        self.last_error = None
                        db.wait_change(1.0)  # a new bridge, or a row changed
            except OvsdbError as exc:
                if self.last_error != str(exc):
                    log.warning("IPFIX export: %s (retrying)", exc)
                self.last_error = str(exc)
                self._stop.wait(RETRY_S)

    def _build(self, txn: Any) -> None:
        configured = []
        for bridge in self._bridges(txn):
            dpid = _bridge_dpid(bridge)
            switch = self._switches.get(dpid) if dpid is not None else None
            if switch is None or dpid is None:
                continue
            want = self.export.row(switch, dpid)
            rows = bridge.ipfix if isinstance(bridge.ipfix, list) else [bridge.ipfix]
            current = rows[0] if rows else None
            if current is None or not _same(current, want):
                row = txn.insert(txn.idl.tables["IPFIX"])
                for column, value in want.items():
                    setattr(row, column, value)
                bridge.ipfix = [row]
                log.info("%s (bridge %s): IPFIX to %s, 1 packet in %d", switch, bridge.name,
                         self.export.collector, self.export.sampling)
            configured.append(switch)
        self.configured = sorted(configured)

    def _clear(self, txn: Any) -> None:
        for bridge in self._bridges(txn):
            rows = bridge.ipfix if isinstance(bridge.ipfix, list) else [bridge.ipfix]
            if rows and SWITCH_KEY in rows[0].external_ids:
                bridge.ipfix = []
        self.configured = []

    @staticmethod
    def _bridges(txn: Any) -> list[Any]:
        return list(txn.idl.tables["Bridge"].rows.values())


def _bridge_dpid(bridge: Any) -> int | None:
    value = bridge.datapath_id
    text = value[0] if isinstance(value, list) and value else value
    try:
        return int(text, 16) if text else None
    except ValueError:
        return None
