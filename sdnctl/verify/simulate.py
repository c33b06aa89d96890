"""A packet simulator over FlowSets: one engine for tests, explain, plan and verify.

`Simulator.inject` walks a packet through a switch's pipeline table by table
(OpenFlow 1.3 semantics, OVS conjunctive matches, conntrack with zones and
commits, fast-failover groups), follows links to the next switch, and reports
every step it took and where copies of the packet ended up. It reads FlowSets
only, so the same code checks compiled flows and flows dumped from a live switch.

Tunnels: a packet output to a hypervisor's VXLAN port (the topology's
`tunnel_port`) travels, keyed by its `tun_id`, to the hypervisor whose
`tunnel_ip` is its `tun_dst`, and enters that one's VXLAN port with `tun_id`,
`tun_src` and `tun_dst` set, as OVS does on decapsulation. The underlay is not
modelled: two tunnel endpoints always reach each other.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from sdnctl.flows import (
    CT_BITS,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Conjunction,
    Ct,
    DecTtl,
    Flow,
    FlowSet,
    Goto,
    GroupAction,
    Match,
    Meter,
    Move,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    SetField,
    WriteMetadata,
    parse_ct_state,
)
from sdnctl.pipeline import PIPELINE, TABLE_ID
from sdnctl.topology.model import PortRef, Topology

Packet = dict[str, int | str]

MAX_HOPS = 32
MAX_RECIRCULATIONS = 16
_MAC_FIELDS = {"eth_src", "eth_dst", "arp_sha", "arp_tha"}
_IP_FIELDS = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "tun_src", "tun_dst"}


def _to_int(name: str, value: int | str) -> int:
    if isinstance(value, int):
        return value
    if name in _MAC_FIELDS:
        return int(value.replace(":", ""), 16)
    if name in _IP_FIELDS:
        return int(ipaddress.IPv4Address(value))
    return int(value, 0)


@dataclass(frozen=True, slots=True)
class _Cond:
    field: str
    value: int
    mask: int | None  # None: exact


def _compile_match(match: Match) -> tuple[_Cond, ...]:
    conds = []
    for name, value in match:
        if name == "ct_state":
            assert isinstance(value, str)
            v, m = parse_ct_state(value)
            conds.append(_Cond(name, v, m))
        elif isinstance(value, tuple):
            conds.append(_Cond(name, _to_int(name, value[0]), _to_int(name, value[1])))
        elif name == "vlan_vid":
            # An exact VID in the IR is bare (0 = untagged); compare in OXM form.
            vid = _to_int(name, value)
            conds.append(_Cond(name, vid | OFPVID_PRESENT if vid else 0, None))
        else:
            conds.append(_Cond(name, _to_int(name, value), None))
    return tuple(conds)


def _matches(conds: tuple[_Cond, ...], pkt: Packet) -> bool:
    for c in conds:
        raw = pkt.get(c.field)
        if raw is None:
            # Unset metadata/registers read as zero, as in OVS; absent header fields never match.
            if c.field in ("metadata", "reg5", "reg6", "reg7", "vlan_vid", "tun_id"):
                raw = 0
            else:
                return False
        got = _to_int(c.field, raw)
        if c.field == "vlan_vid" and got:
            got |= OFPVID_PRESENT  # packets carry the bare VID; OXM sets the present bit
        if c.mask is None:
            if got != c.value:
                return False
        elif got & c.mask != c.value & c.mask:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Step:
    """One flow that a packet hit, and where."""

    switch: str
    stage: str
    flow: Flow | None  # None: no flow matched (table miss without a miss flow)
    note: str = ""


@dataclass
class Trace:
    steps: list[Step] = field(default_factory=list)
    delivered: list[tuple[PortRef, Packet]] = field(default_factory=list)  # out of VM ports
    dropped_at: list[Step] = field(default_factory=list)


@dataclass
class Conntrack:
    """Committed connections per (switch, zone), as original-direction 5-tuples."""

    tables: dict[tuple[str, int], set[tuple[object, ...]]] = field(default_factory=dict)

    @staticmethod
    def _tuple(pkt: Packet) -> tuple[object, ...] | None:
        if pkt.get("eth_type") != 0x0800:
            return None
        proto = pkt.get("ip_proto")
        if proto == 6:
            sport, dport = pkt.get("tcp_src"), pkt.get("tcp_dst")
        elif proto == 17:
            sport, dport = pkt.get("udp_src"), pkt.get("udp_dst")
        else:
            sport = dport = pkt.get("icmp_id", 0)
        return (proto, pkt.get("ipv4_src"), sport, pkt.get("ipv4_dst"), dport)

    def lookup(self, switch: str, zone: int, pkt: Packet) -> int:
        t = self._tuple(pkt)
        if t is None:
            return CT_BITS["inv"] | CT_BITS["trk"]
        table = self.tables.get((switch, zone), set())
        rev = (t[0], t[3], t[4], t[1], t[2])
        if t in table:
            return CT_BITS["est"] | CT_BITS["trk"]
        if rev in table:
            return CT_BITS["est"] | CT_BITS["rpl"] | CT_BITS["trk"]
        if t[0] == 6 and not int(pkt.get("tcp_syn", 1)):
            return CT_BITS["inv"] | CT_BITS["trk"]  # a TCP connection starts with SYN
        return CT_BITS["new"] | CT_BITS["trk"]

    def commit(self, switch: str, zone: int, pkt: Packet) -> None:
        t = self._tuple(pkt)
        if t is None:
            return
        table = self.tables.setdefault((switch, zone), set())
        rev = (t[0], t[3], t[4], t[1], t[2])
        if rev not in table:
            table.add(t)


class Simulator:
    """Walks packets through the FlowSets of a whole network."""

    def __init__(
        self,
        flowsets: Mapping[str, FlowSet],
        topology: Topology,
        down_ports: frozenset[PortRef] = frozenset(),
    ) -> None:
        self.flowsets = flowsets
        self.topology = topology
        self.down_ports = down_ports
        self._tables: dict[tuple[str, int], list[tuple[Flow, tuple[_Cond, ...]]]] = {}
        for name, fs in flowsets.items():
            for f in fs.flows:  # FlowSet keeps flows sorted by table, then priority
                self._tables.setdefault((name, f.table), []).append((f, _compile_match(f.match)))
        self._groups = {(name, g.group_id): g for name, fs in flowsets.items() for g in fs.groups}
        self._links: dict[PortRef, PortRef] = {}
        for link in topology.links:
            self._links[link.a] = link.b
            self._links[link.b] = link.a
        endpoints = topology.tunnel_endpoints()
        self._tunnel_ports = {
            PortRef(name, topology.switches[name].tunnel_port): str(ip)
            for name, ip in endpoints.items()
        }
        self._tunnel_at = {
            str(ip): PortRef(name, topology.switches[name].tunnel_port)
            for name, ip in endpoints.items()
        }

    # -- one table --------------------------------------------------------------

    def lookup(self, switch: str, table: int, pkt: Packet) -> Flow | None:
        """The flow a packet hits in one table, with OVS conjunction semantics."""
        entries = self._tables.get((switch, table), [])
        i = 0
        while i < len(entries):
            prio = entries[i][0].priority
            level = []
            while i < len(entries) and entries[i][0].priority == prio:
                level.append(entries[i])
                i += 1
            plain = [f for f, c in level if not _is_clause(f) and _matches(c, pkt)]
            if plain:
                return plain[0]
            done = _complete_conjunctions(level, pkt)
            if done:
                with_id = dict(pkt, conj_id=min(done))
                for f, c in entries:
                    if f.match.get("conj_id") is not None and _matches(c, with_id):
                        return f
        return None

    # -- one switch ---------------------------------------------------------------

    def _run_switch(
        self, switch: str, in_port: int, pkt: Packet, ct: Conntrack, trace: Trace
    ) -> list[tuple[int, Packet]]:
        """Run the pipeline from table 0; return (out_port, packet) copies."""
        outputs: list[tuple[int, Packet]] = []
        pkt = dict(pkt, in_port=in_port)
        work: list[tuple[int, Packet]] = [(0, pkt)]
        recirculations = 0
        while work:
            table, p = work.pop(0)
            while table is not None:
                flow = self.lookup(switch, table, p)
                stage = PIPELINE[table].name
                step = Step(switch, stage, flow)
                trace.steps.append(step)
                if flow is None or not flow.actions:
                    trace.dropped_at.append(step)
                    break
                next_table: int | None = None
                for act in flow.actions:
                    match act:
                        case Goto(stage=s):
                            next_table = TABLE_ID[s]
                        case Ct(zone=z, commit=c, table=t):
                            zone = int(p.get(z, 0)) & 0xFFFF if isinstance(z, str) else z
                            if c:
                                ct.commit(switch, zone, p)
                            if t is not None:
                                recirculations += 1
                                if recirculations <= MAX_RECIRCULATIONS:
                                    state = ct.lookup(switch, zone, p)
                                    work.append((TABLE_ID[t], dict(p, ct_state=state)))
                        case Output(port=port):
                            outputs.append((int(p["in_port"]) if port == OFPP_IN_PORT else port,
                                            dict(p)))
                        case GroupAction(group_id=gid):
                            outputs.extend(self._run_group(switch, gid, p))
                        case _:
                            p = _apply(act, p)
                table = next_table
        return outputs

    def _run_group(self, switch: str, gid: int, pkt: Packet) -> list[tuple[int, Packet]]:
        group = self._groups.get((switch, gid))
        if group is None:
            return []
        buckets = group.buckets
        if group.type == "ff":
            live = [
                b for b in buckets
                if b.watch_port is None or PortRef(switch, b.watch_port) not in self.down_ports
            ]
            buckets = tuple(live[:1])
        out: list[tuple[int, Packet]] = []
        for bucket in buckets:
            p = dict(pkt)
            for act in bucket.actions:
                if isinstance(act, Output):
                    out.append((act.port, dict(p)))
                else:
                    p = _apply(act, p)
        return out

    # -- the network -----------------------------------------------------------

    def inject(self, at: PortRef, pkt: Packet, ct: Conntrack | None = None) -> Trace:
        """Send `pkt` into switch `at.switch` on port `at.port`; follow it everywhere."""
        ct = ct if ct is not None else Conntrack()
        trace = Trace()
        queue: list[tuple[PortRef, Packet, int]] = [(at, pkt, 0)]
        while queue:
            where, p, hops = queue.pop(0)
            if hops > MAX_HOPS or where.switch not in self.flowsets:
                continue
            for port, out in self._run_switch(where.switch, where.port, p, ct, trace):
                ref = PortRef(where.switch, port)
                if ref in self.down_ports:
                    continue
                peer = self._links.get(ref)
                clean = {k: v for k, v in out.items() if k not in _PIPELINE_STATE}
                if ref in self._tunnel_ports:
                    far = self._tunnel_at.get(str(out.get("tun_dst", "")))
                    if far is not None:  # decapsulated there with the tunnel's metadata
                        queue.append((far, dict(
                            clean, tun_id=int(out.get("tun_id", 0)),
                            tun_src=self._tunnel_ports[ref], tun_dst=str(out["tun_dst"]),
                        ), hops + 1))
                    continue
                if peer is None:
                    trace.delivered.append((ref, clean))
                elif peer not in self.down_ports:
                    queue.append((peer, clean, hops + 1))
        return trace


_PIPELINE_STATE = {
    "in_port", "metadata", "reg5", "reg6", "reg7", "ct_state", "conj_id",
    "tun_id", "tun_src", "tun_dst",  # tunnel metadata: set again only on decapsulation
}


def _is_clause(flow: Flow) -> bool:
    return bool(flow.actions) and isinstance(flow.actions[0], Conjunction)


def _complete_conjunctions(
    level: list[tuple[Flow, tuple[_Cond, ...]]], pkt: Packet
) -> set[int]:
    """Conjunction ids for which the packet matches a flow of every clause."""
    seen: dict[int, set[int]] = {}
    sizes: dict[int, int] = {}
    for f, conds in level:
        if not _is_clause(f) or not _matches(conds, pkt):
            continue
        for act in f.actions:
            assert isinstance(act, Conjunction)
            seen.setdefault(act.id, set()).add(act.clause)
            sizes[act.id] = act.n_clauses
    return {cid for cid, clauses in seen.items() if len(clauses) == sizes[cid]}


def _apply(act: object, p: Packet) -> Packet:
    match act:
        case SetField(field=f, value=v):
            return dict(p, **{f: v})
        case Move(src=s, dst=d):
            return dict(p, **{d: p.get(s, 0)})
        case WriteMetadata(value=v, mask=m):
            old = int(p.get("metadata", 0))
            return dict(p, metadata=(old & ~m) | (v & m))
        case PushVlan():
            return dict(p, vlan_vid=0)  # the VID is set by the following set_field
        case PopVlan():
            return {k: v for k, v in p.items() if k != "vlan_vid"}
        case PushMpls():
            return dict(p, eth_type=0x8847, mpls_label=0, mpls_payload_type=p.get("eth_type"))
        case PopMpls(ethertype=e):
            rest = {k: v for k, v in p.items() if k not in ("mpls_label", "mpls_payload_type")}
            return dict(rest, eth_type=e)
        case DecTtl():
            return dict(p, ip_ttl=int(p.get("ip_ttl", 64)) - 1)
        case Meter():
            return p
    raise TypeError(f"cannot simulate {act!r}")
