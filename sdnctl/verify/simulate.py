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

Tables are indexed (`_Table`): a lookup costs a dict probe per match *shape*, not
a scan of every flow, so a packet's cost does not grow with the VMs a switch
serves. A switch without conntrack (the fabric) is memoised on the fields its
flows and groups read or write (`_Switch`).

One field of an injected packet may be an `Unknown`: a value standing for every
address no flow of the run singled out. Each lookup that compares it with
values (`_Index.hits`) records them in the Unknown as exclusions instead of
matching; for every concrete value outside the exclusions, the concrete run
takes exactly the same steps (nothing else ever inspects the value: arithmetic
or text conversion raises `Inconclusive`). `sdnctl.verify.pairs` uses one such
run for all the addresses of other tenants that a source's flows never name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TypeAlias, cast

from sdnctl.flows import (
    CT_BITS,
    OFPP_CONTROLLER,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Action,
    Conjunction,
    Controller,
    Ct,
    DecTtl,
    Flow,
    FlowSet,
    Goto,
    Group,
    GroupAction,
    Match,
    Meter,
    Move,
    Nat,
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

Packet: TypeAlias = "dict[str, int | str | Unknown]"  # an Unknown only in `inject_unknown`

MAX_HOPS = 32
MAX_RECIRCULATIONS = 16
_MAC_FIELDS = {"eth_src", "eth_dst", "arp_sha", "arp_tha", "ipv6_nd_sll"}
_IP_FIELDS = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "tun_src", "tun_dst"}
_IP6_FIELDS = {"ipv6_src", "ipv6_dst", "ipv6_nd_target"}


_DEFAULT_ZERO = frozenset({"metadata", "reg4", "reg5", "reg6", "reg7", "vlan_vid", "tun_id",
                           "ct_mark"})
_MAC_INT: dict[str, int] = {}  # conversions of text addresses, cached: probes repeat them
_IP_INT: dict[str, int] = {}


class Inconclusive(Exception):  # noqa: N818 - a verdict, not a failure
    """A run with an `Unknown` did something the exclusion argument does not cover."""


class NatClash(Inconclusive):
    """A translation OVS would make by searching free ports, which is not modelled."""


class Unknown:
    """A packet field's value, standing for every value not excluded.

    Lookups that compare it with flow values exclude those (`exclude`), so that a
    run with an Unknown is the run of every concrete value outside `excluded`.
    It equals only itself; any other use of it (arithmetic, text) is refused."""

    __slots__ = ("field", "exact", "masked")

    def __init__(self, field: str) -> None:
        self.field = field
        self.exact: list[Collection[int]] = []  # sets of excluded values
        self.masked: list[tuple[int, Collection[int]]] = []  # (mask, values & mask)

    def exclude(self, mask: int | None, values: Collection[int]) -> None:
        if mask is None:
            self.exact.append(values)
        else:
            self.masked.append((mask, values))

    def exclude_value(self, value: int | str) -> None:
        self.exact.append((_to_int(self.field, value),))

    def excluded(self, value: int) -> bool:
        return (any(value in vals for vals in self.exact)
                or any(value & mask in vals for mask, vals in self.masked))

    def __int__(self) -> int:
        raise Inconclusive(f"{self.field}: an unknown value used as a number")

    def __str__(self) -> str:
        raise Inconclusive(f"{self.field}: an unknown value used as text")

    def __repr__(self) -> str:
        return f"Unknown({self.field})"


def _to_int(name: str, value: int | str) -> int:
    if isinstance(value, int):
        return value
    if name in _MAC_FIELDS:
        got = _MAC_INT.get(value)
        if got is None:
            got = _MAC_INT[value] = int(value.replace(":", ""), 16)
        return got
    if name in _IP_FIELDS:
        got = _IP_INT.get(value)
        if got is None:
            got = _IP_INT[value] = int(ipaddress.IPv4Address(value))
        return got
    if name in _IP6_FIELDS:
        got = _IP_INT.get(value)
        if got is None:
            got = _IP_INT[value] = int(ipaddress.IPv6Address(value))
        return got
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


def _packet_value(pkt: Packet, name: str) -> int | Unknown | None:
    """A packet field as a match compares it; None: absent (matches nothing)."""
    raw = pkt.get(name)
    if raw is None:
        # Unset metadata/registers read as zero, as in OVS; absent header fields never match.
        return 0 if name in _DEFAULT_ZERO else None
    if raw.__class__ is int:  # `x.__class__ is C` narrows x for mypy; a cast costs a call
        got = raw
    elif raw.__class__ is Unknown:
        return raw
    else:
        got = _to_int(name, cast(str, raw))  # neither int nor Unknown: text
    if name == "vlan_vid" and got:
        got |= OFPVID_PRESENT  # packets carry the bare VID; OXM sets the present bit
    return got


# One table, indexed. Flows are grouped by *shape*: which fields they match and
# with which masks. Within a shape a flow matches a packet exactly when the
# packet's (masked) values equal the flow's, so one dict lookup per shape finds
# every flow of that shape the packet matches. A table of thousands of flows has
# a handful of shapes, so a lookup costs O(shapes), not O(flows), and the result
# is the one the linear scan of OpenFlow's definition gives (see `lookup`).
_Shape = tuple[tuple[str, int | None], ...]


class _Index:
    __slots__ = ("shapes", "buckets", "getters", "_partial")

    def __init__(self) -> None:
        self.shapes: list[_Shape] = []
        # Keys are ints; `fast_hits` probes with whatever the packet holds (object).
        self.buckets: list[dict[tuple[object, ...], list[tuple[int, Flow]]]] = []
        self.getters: list[Callable[[dict[object, object]], tuple[object, ...]]] = []
        # (shape, position) -> key without that position -> the values there
        self._partial: dict[tuple[int, int], dict[tuple[int, ...], set[int]]] = {}

    def add(self, order: int, flow: Flow, shape: _Shape, key: tuple[int, ...]) -> None:
        try:
            i = self.shapes.index(shape)
        except ValueError:
            i = len(self.shapes)
            self.shapes.append(shape)
            self.buckets.append({})
            self.getters.append(_key_getter(shape))
        self.buckets[i].setdefault(key, []).append((order, flow))

    def fast_hits(self, values: dict[object, object]) -> list[list[tuple[int, Flow]]]:
        """`hits` for a packet without Unknowns, `values` holding every slot."""
        out = []
        for getter, buckets in zip(self.getters, self.buckets, strict=True):
            key = getter(values)
            if None not in key:
                bucket = buckets.get(key)
                if bucket:
                    out.append(bucket)
        return out

    def hits(self, values: dict[str, int | Unknown | None], pkt: Packet, symbolic: bool = False
             ) -> list[list[tuple[int, Flow]]]:
        """The buckets of flows that match `pkt`, one per shape at most (each in
        table order). With `symbolic`, a field of `pkt` may be an Unknown: a shape
        that compares it matches nothing, and excludes the values it compares with."""
        out = []
        for i, (shape, buckets) in enumerate(zip(self.shapes, self.buckets, strict=True)):
            key: list[int] = []
            unknown = -1
            for name, mask in shape:
                if name in values:
                    got = values[name]
                else:
                    got = values[name] = _packet_value(pkt, name)
                if got is None:
                    break
                if symbolic and got.__class__ is Unknown:
                    unknown = len(key)
                    key.append(0)
                    continue
                got = cast(int, got)  # an Unknown only in a symbolic run (above)
                key.append(got if mask is None else got & mask)
            else:
                if unknown < 0:
                    bucket = buckets.get(tuple(key))
                    if bucket:
                        out.append(bucket)
                    continue
                name, mask = shape[unknown]
                del key[unknown]
                seen = self._partial_index(i, unknown).get(tuple(key))
                if seen:
                    cast(Unknown, values[name]).exclude(mask, seen)  # the one at `unknown`
        return out

    def _partial_index(self, i: int, pos: int) -> dict[tuple[int, ...], set[int]]:
        index = self._partial.get((i, pos))
        if index is None:
            index = self._partial[(i, pos)] = {}
            for key in self.buckets[i]:
                key = cast("tuple[int, ...]", key)  # as `add` stored it
                index.setdefault(key[:pos] + key[pos + 1:], set()).add(key[pos])
        return index


def _key_getter(shape: _Shape) -> Callable[[dict[object, object]], tuple[object, ...]]:
    """A function from a packet's slot values (a field, or (field, mask) for a masked
    one) to the key of `shape`."""
    slots = tuple(name if mask is None else (name, mask) for name, mask in shape)
    if not slots:
        return lambda values: ()
    if len(slots) == 1:
        slot = slots[0]
        return lambda values: (values[slot],)
    return itemgetter(*slots)


# What a flow is to an index: (flow, shape, key, is a clause, matches conj_id).
_Entry = tuple[Flow, _Shape, tuple[int, ...], bool, bool]


def _entry(flow: Flow) -> _Entry:
    ordered = sorted(_compile_match(flow.match), key=lambda c: c.field)
    shape = tuple((c.field, c.mask) for c in ordered)
    key = tuple(c.value if c.mask is None else c.value & c.mask for c in ordered)
    return flow, shape, key, _is_clause(flow), any(c.field == "conj_id" for c in ordered)


class _Table:
    """One switch table: plain flows, conjunction clauses, and flows on conj_id."""

    __slots__ = ("plain", "clauses", "by_conj", "fields", "masked", "memo", "asked")

    MAX_MEMO = 1024  # remembered answers per table; it starts afresh beyond

    def __init__(self, entries: list[_Entry]) -> None:
        self.plain, self.clauses, self.by_conj = _Index(), _Index(), _Index()
        fields: set[str] = set()
        masked: set[tuple[str, int]] = set()
        for order, (f, shape, key, clause, on_conj) in enumerate(entries):  # table order
            (self.clauses if clause else self.plain).add(order, f, shape, key)
            if on_conj:
                self.by_conj.add(order, f, shape, key)
            for name, mask in shape:
                fields.add(name)
                if mask is not None:
                    masked.add((name, mask))
        self.fields = tuple(sorted(fields))
        self.masked = tuple(sorted(masked))
        # A lookup depends on the fields the table's flows match and nothing else:
        # the same values (as the packet carries them) get the same answer. A table
        # whose answers do not repeat (the acl: one per source, destination and
        # service) stops remembering them after a while.
        self.memo: dict[tuple[object, ...], Flow | None] | None = {}
        self.asked = 0  # lookups since the memo last started afresh

    def _values(self, pkt: Packet) -> dict[object, object]:
        values: dict[object, object] = {name: _packet_value(pkt, name) for name in self.fields}
        for name, mask in self.masked:
            got = values[name]
            # An int: a run with Unknowns is symbolic and never comes here (a cast is a call).
            values[(name, mask)] = None if got is None else got & mask  # type: ignore[operator]
        return values

    def lookup(self, pkt: Packet, symbolic: bool = False) -> Flow | None:
        """OpenFlow's answer, as a scan of the table in priority order gives it: at each
        priority, highest first, a plain flow that matches wins; else, if the packet
        completes a conjunction at that priority (a matching flow in every clause),
        the first flow matching conj_id = the smallest completed id wins, if any."""
        if symbolic:
            values: dict[str, int | Unknown | None] = {}
            plain = self.plain.hits(values, pkt, True)
            return self._decide(pkt, plain, values, None, True)
        memo = self.memo
        if memo is None:
            return self._decide(pkt, None, None, self._values(pkt), False)
        key = tuple([pkt.get(name) for name in self.fields])
        self.asked += 1
        try:
            return memo[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value: no memo
            return self._decide(pkt, None, None, self._values(pkt), False)
        if len(memo) >= self.MAX_MEMO:  # full: every entry a miss since the last start
            if self.asked < 2 * self.MAX_MEMO:  # fewer hits than misses: not worth it
                self.memo = None
            memo.clear()
            self.asked = 0
        flow = self._decide(pkt, None, None, self._values(pkt), False)
        if self.memo is not None:
            memo[key] = flow
        return flow

    def _decide(self, pkt: Packet, plain: list[list[tuple[int, Flow]]] | None,
                values: dict[str, int | Unknown | None] | None,
                fast: dict[object, object] | None, symbolic: bool) -> Flow | None:
        # Symbolic: `plain` and `values` are given; else `fast` is.
        if not symbolic:
            plain = self.plain.fast_hits(cast("dict[object, object]", fast))
        best: tuple[int, Flow] | None = None
        for bucket in cast("list[list[tuple[int, Flow]]]", plain):  # given, or made above
            if best is None or bucket[0][0] < best[0]:
                best = bucket[0]
        if self.clauses.shapes:
            floor = best[1].priority if best is not None else -1
            levels: dict[int, list[tuple[int, Flow]]] = {}
            clauses = (self.clauses.hits(cast("dict[str, int | Unknown | None]", values), pkt, True)
                       if symbolic else self.clauses.fast_hits(cast("dict[object, object]", fast)))
            for bucket in clauses:
                for order, f in bucket:
                    if f.priority > floor:  # at the plain winner's priority, it wins
                        levels.setdefault(f.priority, []).append((order, f))
            for prio in sorted(levels, reverse=True):
                done = _complete_conjunctions(sorted(levels[prio], key=lambda e: e[0]))
                if done:
                    with_id = dict(pkt, conj_id=min(done))
                    found = [b[0] for b in self.by_conj.hits({}, with_id, symbolic)]
                    if found:
                        return min(found, key=lambda e: e[0])[1]
        return best[1] if best is not None else None


@dataclass
class _Switch:
    """A switch's tables and groups, built on first use, and whether its pipeline
    can be memoised: a switch without conntrack computes its outputs from the
    packet's `keys` fields alone (every field its flows and groups match, read or
    write), so one run stands for every packet that agrees on them."""

    tables: dict[int, _Table]
    groups: dict[int, Group]
    keys: tuple[str, ...] | None  # None: conntrack is used, no memo
    keyset: frozenset[str]
    memo: dict[tuple[object, ...], tuple[list[tuple[int, Packet]], list[Step], list[Step]]]


_MISSING = object()


def _fields_of(actions: tuple[object, ...], out: set[str]) -> bool:
    """Add the fields `actions` read or write to `out`; False if one is conntrack."""
    for act in actions:
        match act:
            case Ct():
                return False
            case SetField(field=f):
                out.add(f)
            case Move(src=src, dst=dst):
                out.update((src, dst))
            case WriteMetadata():
                out.add("metadata")
            case PushVlan() | PopVlan():
                out.add("vlan_vid")
            case PushMpls() | PopMpls():
                out.update(("eth_type", "mpls_label", "mpls_tc", "mpls_payload_type"))
            case DecTtl():
                out.add("ip_ttl")
            case Output() | GroupAction() | Meter() | Goto() | Conjunction() | Controller():
                pass  # the packet's fields as they are
            case _:
                raise TypeError(f"cannot simulate {act!r}")
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


# TCP flags (ovs-fields(7) `tcp_flags`): a packet without the field is a SYN.
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
_TCP_CORE_FLAGS = 0x3F  # FIN SYN RST PSH ACK URG; ECE and CWR never change a verdict
# ICMP requests that may open a connection, and the reply type that answers each.
ICMP_REPLY_OF = {8: 0, 13: 14, 15: 16}
_ICMP_REQUEST_OF: dict[object, int] = {reply: request for request, reply in ICMP_REPLY_OF.items()}
# ICMPv6: only an echo request (128) opens one; its reply is 129. Neighbour
# discovery and every other type outside a connection are `+inv`.
ICMP6_REPLY_OF = {128: 129}
_ICMP6_REQUEST_OF: dict[object, int] = {reply: request for request, reply in ICMP6_REPLY_OF.items()}
ICMPV6 = 58


def tcp_valid(flags: int) -> bool:
    """Whether OVS 3.1's userspace conntrack accepts a TCP segment with `flags` at all
    (as measured on this OVS, tests/integration/test_sim_ovs.py): a bare SYN, a bare
    RST, or ACK with anything but SYN together with FIN or RST. Else it is `+inv`."""
    core = flags & _TCP_CORE_FLAGS
    if core in (TCP_SYN, TCP_RST):
        return True
    return bool(core & TCP_ACK) and not (core & TCP_SYN and core & (TCP_FIN | TCP_RST))


def tcp_opens(flags: int) -> bool:
    """Whether such a segment may start a connection: a valid one but a SYN-ACK (so
    a bare SYN, a bare RST, or mid-stream pickup: ACK without SYN)."""
    core = flags & _TCP_CORE_FLAGS
    return tcp_valid(flags) and core & (TCP_SYN | TCP_ACK) != TCP_SYN | TCP_ACK


@dataclass
class Conntrack:
    """Committed connections per (switch, zone), as original-direction 5-tuples,
    and the ct_mark of those a commit marked (unmarked ones read 0).

    States follow OVS's userspace conntrack: a connection is `+est` once committed,
    except that, until its first reply, a UDP/ICMP/other packet or a TCP SYN in the
    original direction is still `+new`; a reply is `+est+rpl`. A packet that cannot
    open a connection (`tcp_opens`, an ICMP other than a request) and belongs to
    none is `+inv`, and so is anything that is not IPv4 or IPv6.

    NAT, as OVS 3.1's userspace conntrack does it for IPv4: a commit with
    `nat(src|dst=range)` that creates a connection records its translation, and the
    connection's reply tuple is the translated one, so a reply is found only as
    translated (its untranslated form is another connection). `translation` says
    what a ct with `nat` does to a packet of a translated connection: originals get
    the translation, replies the reverse one. Modelled: the range's first address
    (OVS chooses one of a range by a hash with a per-process random basis: only a
    one-address range is exact), ports and ICMP ids kept. OVS keeps them too
    unless the translated reply tuple is already some other connection's, when it
    searches other addresses and ports: the simulator raises `NatClash` there
    rather than guess. ICMP errors about a translated connection (`+rel`) are not
    translated here (OVS rewrites the packet inside them).
    """

    tables: dict[tuple[str, int], set[tuple[object, ...]]] = field(default_factory=dict)
    marks: dict[tuple[str, int, tuple[object, ...]], int] = field(default_factory=dict)
    unknowns: bool = False  # may hold an Unknown (`Simulator.inject_unknown`)
    answered: set[tuple[str, int, tuple[object, ...]]] = field(default_factory=set)
    # (switch, zone, original tuple) -> (kind, address): the translated connections,
    # and (switch, zone, reply tuple) -> original tuple for each of them.
    nats: dict[tuple[str, int, tuple[object, ...]], tuple[str, str]] = field(
        default_factory=dict)
    unnat: dict[tuple[str, int, tuple[object, ...]], tuple[object, ...]] = field(
        default_factory=dict)

    @staticmethod
    def _tuple(pkt: Packet) -> tuple[object, ...] | None:
        if pkt.get("eth_type") != 0x0800:
            return Conntrack._tuple6(pkt)
        proto = pkt.get("ip_proto")
        sport: object
        dport: object
        if proto == 6:
            sport, dport = pkt.get("tcp_src"), pkt.get("tcp_dst")
        elif proto == 17:
            sport, dport = pkt.get("udp_src"), pkt.get("udp_dst")
        elif proto == 1:  # an echo request and its reply share (id, request type)
            kind = pkt.get("icmpv4_type")
            sport = dport = (pkt.get("icmp_id", 0), _ICMP_REQUEST_OF.get(kind, kind))
        else:
            sport = dport = 0
        return (proto, pkt.get("ipv4_src"), sport, pkt.get("ipv4_dst"), dport)

    @staticmethod
    def _tuple6(pkt: Packet) -> tuple[object, ...] | None:
        """IPv6's 5-tuple, the same shape (addresses never equal an IPv4 one)."""
        if pkt.get("eth_type") != 0x86DD:
            return None
        proto = pkt.get("ip_proto")
        sport: object
        dport: object
        if proto == 6:
            sport, dport = pkt.get("tcp_src"), pkt.get("tcp_dst")
        elif proto == 17:
            sport, dport = pkt.get("udp_src"), pkt.get("udp_dst")
        elif proto == ICMPV6:
            kind = pkt.get("icmpv6_type")
            sport = dport = (pkt.get("icmp_id", 0), _ICMP6_REQUEST_OF.get(kind, kind))
        else:
            sport = dport = 0
        return (proto, pkt.get("ipv6_src"), sport, pkt.get("ipv6_dst"), dport)

    @staticmethod
    def _opens(pkt: Packet) -> bool:
        """Whether `pkt` may start a connection (else, outside one, it is `+inv`)."""
        proto = pkt.get("ip_proto")
        if proto == 6:
            return tcp_opens(int(pkt.get("tcp_flags", TCP_SYN)))
        if proto == 1:
            return pkt.get("icmpv4_type") in ICMP_REPLY_OF
        if proto == ICMPV6 and pkt.get("eth_type") == 0x86DD:
            return pkt.get("icmpv6_type") in ICMP6_REPLY_OF
        return True

    def lookup(self, switch: str, zone: int, pkt: Packet) -> int:
        t = self._tuple(pkt)
        if t is None:
            return CT_BITS["inv"] | CT_BITS["trk"]
        table = self.tables.get((switch, zone), set())
        if t[0] == 6 and not tcp_valid(int(pkt.get("tcp_flags", TCP_SYN))):
            return CT_BITS["inv"] | CT_BITS["trk"]
        if self._holds(t, table):
            if (switch, zone, t) not in self.answered and self._new_again(pkt):
                return CT_BITS["new"] | CT_BITS["trk"]
            return CT_BITS["est"] | CT_BITS["trk"]
        if self._is_reply(pkt):
            orig = self._reply_of(switch, zone, t, table)
            if orig is not None:
                self.answered.add((switch, zone, orig))
                return CT_BITS["est"] | CT_BITS["rpl"] | CT_BITS["trk"]
        if not self._opens(pkt):
            return CT_BITS["inv"] | CT_BITS["trk"]
        return CT_BITS["new"] | CT_BITS["trk"]

    @staticmethod
    def _new_again(pkt: Packet) -> bool:
        """A packet of an unanswered connection, in its direction, that OVS still
        calls `+new`: any but TCP, and a TCP SYN (a retransmission)."""
        if pkt.get("ip_proto") != 6:
            return True
        return int(pkt.get("tcp_flags", TCP_SYN)) & _TCP_CORE_FLAGS == TCP_SYN

    @staticmethod
    def _is_reply(pkt: Packet) -> bool:
        """ICMP: only a reply type answers a request (another request is its own)."""
        if pkt.get("ip_proto") == ICMPV6 and pkt.get("eth_type") == 0x86DD:
            return pkt.get("icmpv6_type") in _ICMP6_REQUEST_OF
        return pkt.get("ip_proto") != 1 or pkt.get("icmpv4_type") in _ICMP_REQUEST_OF

    def _reply_of(self, switch: str, zone: int, t: tuple[object, ...],
                  table: set[tuple[object, ...]]) -> tuple[object, ...] | None:
        """The original tuple of the connection `t` is the reply tuple of, or None."""
        if self.unnat:
            orig = self.unnat.get((switch, zone, t))
            if orig is not None:
                return orig
        rev = (t[0], t[3], t[4], t[1], t[2])
        if self._holds(rev, table) and (not self.nats or (switch, zone, rev) not in self.nats):
            return rev
        return None

    def commit(self, switch: str, zone: int, pkt: Packet, mark: int | None = None,
               nat: Nat | None = None) -> None:
        """Commit `pkt`'s connection; one it creates gets `nat`'s translation, if any
        (a connection committed before keeps what it had)."""
        t = self._tuple(pkt)
        if t is None:
            return
        table = self.tables.setdefault((switch, zone), set())
        orig = self._reply_of(switch, zone, t, table)
        if orig is not None:
            t = orig
        elif not self._holds(t, table):
            if not self._opens(pkt):
                return  # OVS never commits a packet that cannot open a connection
            if nat is not None and nat.kind is not None and pkt.get("eth_type") == 0x0800:
                self._translate_new(switch, zone, t, nat.kind, str(nat.first), table)
            table.add(t)
        if mark is not None:
            self.marks[(switch, zone, t)] = mark

    def _translate_new(self, switch: str, zone: int, t: tuple[object, ...], kind: str,
                       address: str, table: set[tuple[object, ...]]) -> None:
        proto, src, sport, dst, dport = t
        reply = ((proto, dst, dport, address, sport) if kind == "src"
                 else (proto, address, dport, src, sport))
        clash = ((switch, zone, reply) in self.unnat or self._holds(reply, table)
                 or self._reply_of(switch, zone, reply, table) is not None)
        if clash:
            raise NatClash(f"{switch} zone {zone}: nat({kind}={address}) of {t} would reuse "
                           f"{reply}, another connection's; OVS would pick other ports")
        self.nats[(switch, zone, t)] = (kind, address)
        self.unnat[(switch, zone, reply)] = t

    def translation(self, switch: str, zone: int, pkt: Packet) -> dict[str, str]:
        """What `ct(..., nat)` rewrites in `pkt`: the fields of its connection's
        translation, in `pkt`'s direction (none for a connection without one)."""
        if not self.nats:
            return {}
        t = self._tuple(pkt)
        if t is None:
            return {}
        got = self.nats.get((switch, zone, t))
        if got is not None:
            kind, address = got
            return {"ipv4_src" if kind == "src" else "ipv4_dst": address}
        orig = self.unnat.get((switch, zone, t))
        if orig is None or not self._is_reply(pkt):
            return {}
        kind, _ = self.nats[(switch, zone, orig)]
        # A reply goes back to the address the original came from (src) or was sent to.
        return ({"ipv4_dst": str(orig[1])} if kind == "src" else {"ipv4_src": str(orig[3])})

    def mark(self, switch: str, zone: int, pkt: Packet) -> int:
        """The ct_mark of the connection `pkt` belongs to (0 when none is set)."""
        t = self._tuple(pkt)
        if t is None or not self.marks:
            return 0
        marks = self.marks
        got = marks.get((switch, zone, t))
        if got is not None:
            return got
        # A reply: its connection is found by its reply tuple (translated, with NAT).
        orig = self.unnat.get((switch, zone, t)) if self.unnat else None
        if orig is None:
            orig = (t[0], t[3], t[4], t[1], t[2])
            if self.nats and (switch, zone, orig) in self.nats:
                return 0  # the untranslated reverse of a translated one: another
        return marks.get((switch, zone, orig), 0)

    def _holds(self, t: tuple[object, ...], table: set[tuple[object, ...]]) -> bool:
        return _holds(t, table) if self.unknowns else t in table


def _holds(t: tuple[object, ...], table: set[tuple[object, ...]]) -> bool:
    """`t in table`, where an Unknown equals only itself: it differs from each
    concrete value it is compared with, which is therefore excluded."""
    if t in table:
        return True
    if not any(x.__class__ is Unknown for x in t) and not any(
            x.__class__ is Unknown for e in table for x in e):
        return False
    for e in table:
        for x, y in zip(t, e, strict=True):
            if x is y:
                continue
            if x.__class__ is Unknown or y.__class__ is Unknown:
                if x.__class__ is Unknown and y.__class__ is Unknown:
                    raise Inconclusive("two unknown values compared")
                u, c = (x, y) if x.__class__ is Unknown else (y, x)
                # c: the concrete address the Unknown stands beside
                cast(Unknown, u).exclude_value(cast("int | str", c))
                break
            if x != y:
                break
        else:
            return True
    return False


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
        self._switches: dict[str, _Switch] = {}  # built on first use: a probe visits few
        self._entries: dict[int, _Entry] = {}  # id(flow) -> its entry (the flow keeps it)
        self._steps: dict[tuple[str, int, int], Step] = {}  # steps are values (by id(flow))
        self._symbolic = False  # inside `inject_unknown`
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

    def _switch(self, name: str) -> _Switch:
        sw = self._switches.get(name)
        if sw is None:
            fs = self.flowsets[name]
            entries = self._entries
            by_table: dict[int, list[_Entry]] = {}
            for f in fs.flows:  # FlowSet keeps flows sorted by table, then priority
                e = entries.get(id(f))
                if e is None:  # a flow of a part shared by many switches: compiled once
                    e = entries[id(f)] = _entry(f)
                by_table.setdefault(f.table, []).append(e)
            keys: set[str] | None = {"in_port"}
            for f in fs.flows:
                if keys is None or not _fields_of(f.actions, keys):
                    keys = None
                    break
                keys.update(name for name, _ in f.match)
            for g in fs.groups if keys is not None else ():
                for bucket in g.buckets:
                    if keys is not None and not _fields_of(bucket.actions, keys):
                        keys = None
            sw = self._switches[name] = _Switch(
                {t: _Table(es) for t, es in by_table.items()},
                {g.group_id: g for g in fs.groups},
                tuple(sorted(keys)) if keys is not None else None, frozenset(keys or ()), {})
        return sw

    def lookup(self, switch: str, table: int, pkt: Packet) -> Flow | None:
        """The flow a packet hits in one table, with OVS conjunction semantics."""
        t = self._switch(switch).tables.get(table)
        return t.lookup(pkt, self._symbolic) if t is not None else None

    # -- one switch ---------------------------------------------------------------

    def _run_switch(
        self, switch: str, in_port: int, pkt: Packet, ct: Conntrack, trace: Trace
    ) -> list[tuple[int, Packet]]:
        """Run the pipeline from table 0; return (out_port, packet) copies."""
        sw = self._switch(switch)
        pkt = dict(pkt, in_port=in_port)
        if int(pkt.get("ip_frag", 0)) & 1:
            # OVS's "normal" fragment handling: every fragment, the first too, is
            # looked up with its L4 fields zero (measured: an ICMPv6 first fragment
            # does not match icmpv6_type=its type).
            for name in _FRAGMENT_ZEROED:
                if name in pkt:
                    pkt[name] = 0
        if sw.keys is None or self._symbolic:
            return self._pipeline(switch, pkt, ct, trace)
        key = tuple(pkt.get(k, _MISSING) for k in sw.keys)
        hit = sw.memo.get(key)
        if hit is None:
            sub = Trace()
            outputs = self._pipeline(switch, pkt, ct, sub)
            hit = sw.memo[key] = (
                [(port, {k: v for k, v in out.items() if k in sw.keyset})
                 for port, out in outputs],
                sub.steps, sub.dropped_at)
        outputs, steps, dropped = hit
        trace.steps += steps
        trace.dropped_at += dropped
        # Fields outside `keys` were neither read nor written: they pass as they came.
        rest = {k: v for k, v in pkt.items() if k not in sw.keyset}
        return [(port, {**rest, **out}) for port, out in outputs]

    def _pipeline(self, switch: str, pkt: Packet, ct: Conntrack, trace: Trace
                  ) -> list[tuple[int, Packet]]:
        outputs: list[tuple[int, Packet]] = []
        work: list[tuple[int, Packet]] = [(0, pkt)]
        recirculations = 0
        steps = self._steps
        table: int | None
        while work:
            table, p = work.pop(0)
            while table is not None:
                flow = self.lookup(switch, table, p)
                key = (switch, table, id(flow))
                step = steps.get(key)
                if step is None:
                    step = steps[key] = Step(switch, PIPELINE[table].name, flow)
                trace.steps.append(step)
                if flow is None or not flow.actions:
                    trace.dropped_at.append(step)
                    break
                next_table: int | None = None
                copied = False
                for act in flow.actions:
                    # `act.__class__ is C` narrows `act` for mypy (a cast would cost a call).
                    if act.__class__ is Goto:
                        next_table = TABLE_ID[act.stage]
                    elif act.__class__ is Output:
                        port = act.port
                        if port == OFPP_IN_PORT:
                            outputs.append((int(p["in_port"]), _as_sent(p)))
                        elif port != p["in_port"]:  # OpenFlow: only IN_PORT sends it back
                            outputs.append((port, _as_sent(p)))
                    elif act.__class__ is Ct:
                        z = act.zone
                        zone = int(p.get(z, 0)) & 0xFFFF if isinstance(z, str) else z
                        # Conntrack sees the packet as it is (a translation still
                        # pending from an earlier ct without table included).
                        dp = _in_datapath(p)
                        # The state is the one the packet found: a packet that creates
                        # a connection by committing it is +new (measured, a TCP ACK
                        # too: tests/integration/test_sim_nat_ovs.py).
                        state = ct.lookup(switch, zone, dp) if act.table is not None else 0
                        if act.commit:
                            ct.commit(switch, zone, dp, act.mark, act.nat)
                        changes = ct.translation(switch, zone, dp) if act.nat else None
                        if act.table is not None:
                            recirculations += 1
                            if recirculations <= MAX_RECIRCULATIONS:
                                mark = ct.mark(switch, zone, dp)
                                if changes:
                                    dp = dict(dp, **changes)
                                work.append((TABLE_ID[act.table],
                                             dict(dp, ct_state=state, ct_mark=mark)))
                        else:
                            # Without `table` the pipeline goes on with the packet
                            # untracked (OVS clears its conntrack fields) and matching
                            # the headers from before a translation, which OVS makes in
                            # the datapath packet (measured: tests/integration/
                            # test_sim_nat_ovs.py): kept aside, applied when it leaves.
                            if not copied:
                                p, copied = dict(p), True
                            p["ct_state"] = p["ct_mark"] = 0
                            for name, value in (changes or {}).items():
                                p[_PENDING[name]] = value
                    elif act.__class__ is GroupAction:
                        outputs.extend(self._run_group(switch, act.group_id, p))
                    elif act.__class__ is Controller:  # a copy; the packet goes on
                        outputs.append((OFPP_CONTROLLER, dict(p)))
                    elif act.__class__ is DecTtl and int(p.get("ip_ttl", 64)) <= 1:
                        # OVS stops the packet here (an invalid-TTL packet-in, which
                        # no controller asked for): nothing after it happens.
                        trace.dropped_at.append(step)
                        next_table = None
                        break
                    elif act.__class__ is not Meter:
                        if not copied:  # the packet as it came may be someone else's
                            p, copied = dict(p), True
                        _apply_in_place(act, p)
                table = next_table
        return outputs

    def _run_group(self, switch: str, gid: int, pkt: Packet) -> list[tuple[int, Packet]]:
        group = self._switch(switch).groups.get(gid)
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
                    if act.port == OFPP_IN_PORT:
                        out.append((int(p["in_port"]), _as_sent(p)))
                    elif act.port != p["in_port"]:  # as in a flow: never back by number
                        out.append((act.port, _as_sent(p)))
                else:
                    _apply_in_place(act, p)
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


    def inject_unknown(self, at: PortRef, pkt: Packet) -> Trace:
        """`inject` with an `Unknown` in `pkt` (and a fresh conntrack): the trace of
        every packet that puts a value outside the Unknown's exclusions there
        (afterwards), or Inconclusive."""
        self._symbolic = True
        try:
            return Simulator.inject(self, at, pkt, Conntrack(unknowns=True))
        finally:
            self._symbolic = False


# What OVS zeroes (its transport ports, which for ICMP are type and code); TCP
# flags stay as they are.
_FRAGMENT_ZEROED = ("tcp_src", "tcp_dst", "udp_src", "udp_dst", "icmpv4_type", "icmpv6_type")
_PIPELINE_STATE = {
    "in_port", "metadata", "reg4", "reg5", "reg6", "reg7", "ct_state", "conj_id",
    "tun_id", "tun_src", "tun_dst",  # tunnel metadata: set again only on decapsulation
}


# A translation a ct without `table` made: under these keys until the packet leaves
# (or recirculates), since the pipeline still matches the fields from before it.
_PENDING = {"ipv4_src": "nat:ipv4_src", "ipv4_dst": "nat:ipv4_dst"}


def _as_sent(p: Packet) -> Packet:
    """A copy of `p` as the datapath holds it: pending translations applied."""
    out = dict(p)
    if "nat:ipv4_src" in p or "nat:ipv4_dst" in p:
        for name, key in _PENDING.items():
            if key in out:
                out[name] = out.pop(key)
    return out


def _in_datapath(p: Packet) -> Packet:
    """`p` as the datapath holds it, not copied when nothing is pending (most runs)."""
    return _as_sent(p) if "nat:ipv4_src" in p or "nat:ipv4_dst" in p else p


def _is_clause(flow: Flow) -> bool:
    return bool(flow.actions) and isinstance(flow.actions[0], Conjunction)


def _complete_conjunctions(level: list[tuple[int, Flow]]) -> set[int]:
    """Conjunction ids for which `level` (matching clause flows of one priority, in
    table order) holds a flow of every clause."""
    seen: dict[int, set[int]] = {}
    sizes: dict[int, int] = {}
    for _, f in level:
        for act in f.actions:
            assert isinstance(act, Conjunction)
            seen.setdefault(act.id, set()).add(act.clause)
            sizes[act.id] = act.n_clauses
    return {cid for cid, clauses in seen.items() if len(clauses) == sizes[cid]}


def _apply_in_place(act: Action, p: Packet) -> None:
    # `act.__class__ is C` narrows `act` for mypy (a cast would cost a call).
    if act.__class__ is SetField:
        p[act.field] = act.value
        if act.field in _PENDING:  # written after a translation: the write wins
            p.pop(_PENDING[act.field], None)
    elif act.__class__ is Move:
        p[act.dst] = p.get(act.src, 0)
        if act.dst in _PENDING:
            p.pop(_PENDING[act.dst], None)
    elif act.__class__ is WriteMetadata:
        old = int(p.get("metadata", 0))
        p["metadata"] = (old & ~act.mask) | (act.value & act.mask)
    elif act.__class__ is PushVlan:
        p["vlan_vid"] = 0  # the VID is set by the following set_field
    elif act.__class__ is PopVlan:
        p.pop("vlan_vid", None)
    elif act.__class__ is PushMpls:
        payload = p.get("eth_type")
        p.update(eth_type=0x8847, mpls_label=0, mpls_tc=0)
        # No eth_type: None, which reads as absent (typed Packet values exclude None).
        p["mpls_payload_type"] = payload  # type: ignore[assignment]
    elif act.__class__ is PopMpls:
        p.pop("mpls_label", None)
        p.pop("mpls_tc", None)
        p.pop("mpls_payload_type", None)
        p["eth_type"] = act.ethertype
    elif act.__class__ is DecTtl:
        p["ip_ttl"] = int(p.get("ip_ttl", 64)) - 1
    elif act.__class__ is not Meter:
        raise TypeError(f"cannot simulate {act!r}")
