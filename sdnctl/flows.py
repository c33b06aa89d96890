"""The flow intermediate representation: what the compiler emits and everything else reads.

Field names follow the OpenFlow OXM names used by os-ken and ovs-fields(7)
(`eth_src`, `ipv4_dst`, `tcp_dst`, `ct_state`, `reg6`, `conj_id`), so the
southbound passes them through and the ofctl printer renames only a few.

A `Flow` is identified, as in OpenFlow, by (stage, priority, match); its `owner`
names what in the policy it exists for (`vm:web1`, `rule:acme:3`, `segment:10`,
`base`), and its cookie is derived from the owner so live flows can be traced back.
"""

from __future__ import annotations

import functools
import hashlib
import json
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Network

from sdnctl.pipeline import STAGE_OF_TABLE, TABLE_ID, check_goto

# A match value: an int, a string (MAC, IPv4 address, ct_state flags such as
# "+est+trk"), or a (value, mask) pair of the same kind.
MatchValue = int | str | tuple[int, int] | tuple[str, str]

OFPP_IN_PORT = 0xFFFFFFF8
OFPP_CONTROLLER = 0xFFFFFFFD
OFPVID_PRESENT = 0x1000

# conntrack state bits, as ovs-fields(7) numbers them; `ct_state` is written "+est+trk".
CT_BITS = {"new": 0x01, "est": 0x02, "rel": 0x04, "rpl": 0x08, "inv": 0x10, "trk": 0x20}


def parse_ct_state(text: str) -> tuple[int, int]:
    """"+est+trk" -> (value, mask) over CT_BITS."""
    value = mask = 0
    for chunk in text.replace("-", " -").replace("+", " +").split():
        bit = CT_BITS[chunk[1:]]
        mask |= bit
        if chunk[0] == "+":
            value |= bit
    return value, mask


# Fields a match may name; anything else is a compiler bug caught at build time.
# `ip_frag` is OVS's fragment field (bit 0: a fragment, bit 1: not the first), so
# `ip_frag=(1, 1)` matches every fragment; `ip_ttl` is the IP TTL (IPv6's hop
# limit: OVS's nw_ttl). `tun_id` is the VNI of a frame that arrived through a
# tunnel (0 otherwise); the tunnel's far end is chosen with the action
# `SetField("tun_dst", ip)`. IPv6 fields come last (ovs-fields(7) names):
# `ipv6_nd_target` and `ipv6_nd_sll` are a neighbour solicitation's target and
# source link-layer address option; `mpls_tc` says what an MPLS label carries on
# the fabric (0: IPv4, 1: IPv6), since popping the label must name the payload.
MATCH_FIELDS = (
    "in_port", "tun_id", "metadata", "reg4", "reg5", "reg6", "reg7", "conj_id", "ct_state",
    "ct_mark",
    "eth_type", "eth_src", "eth_dst", "vlan_vid", "mpls_label",
    "arp_op", "arp_spa", "arp_tpa", "arp_sha",
    "ip_proto", "ip_frag", "ip_ttl", "ipv4_src", "ipv4_dst", "tcp_dst", "udp_src", "udp_dst",
    "icmpv4_type",
    "ipv6_src", "ipv6_dst", "icmpv6_type", "ipv6_nd_target", "ipv6_nd_sll", "mpls_tc",
)
_FIELD_ORDER = {f: i for i, f in enumerate(MATCH_FIELDS)}


def cidr(net: IPv4Network) -> MatchValue:
    """An IPv4 prefix as a match value: the address alone for a /32, else
    (network, netmask) like every masked field."""
    if net.prefixlen == 32:
        return str(net.network_address)
    return (str(net.network_address), str(net.netmask))


class Match(tuple[tuple[str, MatchValue], ...]):
    """An immutable, canonically ordered set of field matches."""

    __slots__ = ()

    @classmethod
    def of(cls, fields: Mapping[str, MatchValue] | None = None, **kw: MatchValue) -> Match:
        items = dict(fields or {}, **kw)
        for name in items:
            if name not in _FIELD_ORDER:
                raise ValueError(f"unknown match field {name!r}")
        return cls(sorted(items.items(), key=lambda kv: _FIELD_ORDER[kv[0]]))

    def as_dict(self) -> dict[str, MatchValue]:
        return dict(self)

    def get(self, name: str) -> MatchValue | None:
        for k, v in self:
            if k == name:
                return v
        return None


# ---- actions and instructions --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Output:
    port: int


@dataclass(frozen=True, slots=True)
class GroupAction:
    group_id: int


@dataclass(frozen=True, slots=True)
class SetField:
    field: str
    value: int | str


@dataclass(frozen=True, slots=True)
class Move:
    """Copy a whole field onto another (NXAST_REG_MOVE)."""

    src: str
    dst: str


@dataclass(frozen=True, slots=True)
class PushVlan:
    pass


@dataclass(frozen=True, slots=True)
class PopVlan:
    pass


@dataclass(frozen=True, slots=True)
class DecTtl:
    pass


@dataclass(frozen=True, slots=True)
class PushMpls:
    """Push an MPLS label stack entry (ethertype 0x8847), after any VLAN tag."""


@dataclass(frozen=True, slots=True)
class PopMpls:
    """Pop the MPLS label; `ethertype` is what the payload is (0x0800 for IPv4)."""

    ethertype: int


@dataclass(frozen=True, slots=True)
class Nat:
    """The NAT part of a ct action (ovs-actions(7) `nat`).

    `kind` "src" or "dst" with the IPv4 range `first`..`last`: a connection being
    committed gets that translation. `kind` None (plain `nat`): a packet of a
    connection that has a translation gets it (a reply, the reverse one); nothing
    happens to others.
    """

    kind: str | None = None
    first: str | None = None
    last: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in (None, "src", "dst"):
            raise ValueError(f"nat: kind must be src, dst or None, got {self.kind!r}")
        if (self.kind is None) != (self.first is None):
            raise ValueError("nat: an address range goes with src or dst, and only then")
        if self.last is not None and self.first is None:
            raise ValueError("nat: a range needs its first address")


@dataclass(frozen=True, slots=True)
class Ct:
    """Conntrack: zone is a number or a register name whose low 16 bits hold it.

    With `table`, the packet is recirculated to that stage with ct_state set. With
    `commit` and `mark`, the connection's ct_mark is set to `mark` as it is committed
    (ovs-ofctl: `exec(set_field:MARK->ct_mark)`). With `nat`, the packet is
    translated (`Nat`); a translation is set up only by a commit.
    """

    zone: int | str
    commit: bool = False
    table: str | None = None
    mark: int | None = None
    nat: Nat | None = None

    def __post_init__(self) -> None:
        if self.mark is not None and not self.commit:
            raise ValueError("ct: a mark is set only by a commit")
        if self.nat is not None and self.nat.kind is not None and not self.commit:
            raise ValueError("ct: a src or dst translation is set up only by a commit")


@dataclass(frozen=True, slots=True)
class Controller:
    """Send a copy of the packet to the controller through meter `meter_id` (OVS's
    `controller(meter_id=N)`), and go on with the packet: what the meter refuses is
    not sent, but the packet itself is never dropped by it (a `Meter` instruction
    would drop the packet too)."""

    meter_id: int


@dataclass(frozen=True, slots=True)
class Conjunction:
    id: int
    clause: int  # 1-based
    n_clauses: int


@dataclass(frozen=True, slots=True)
class Meter:
    """Instruction: pass the packet through meter `meter_id` first."""

    meter_id: int


@dataclass(frozen=True, slots=True)
class WriteMetadata:
    value: int
    mask: int


@dataclass(frozen=True, slots=True)
class Goto:
    stage: str


# The action vocabulary, declared once. Everything that reads actions is an
# interpreter of it: the ofctl/JSON printers here, `sdnctl.flowjson` (JSON back),
# the OpenFlow encoder/decoder (`sdnctl.southbound.ofp.actions`) and the simulator
# (`sdnctl.verify.simulate`). A new action is a class here plus a case in each;
# tests/unit/test_action_vocabulary.py fails until every interpreter has one.
Action = (
    Output | GroupAction | SetField | Move | PushVlan | PopVlan | PushMpls | PopMpls | DecTtl
    | Ct | Conjunction | Meter | WriteMetadata | Goto | Controller
)
ACTIONS: tuple[type, ...] = typing.get_args(Action)
ACTION_BY_NAME: dict[str, type] = {cls.__name__: cls for cls in ACTIONS}


@functools.lru_cache(maxsize=1 << 16)
def cookie_of(owner: str) -> int:
    """A stable 64-bit cookie for an owner name (top bit clear, never zero)."""
    digest = hashlib.blake2b(owner.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF) or 1


@dataclass(frozen=True, slots=True)
class Flow:
    stage: str
    priority: int
    match: Match
    actions: tuple[Action, ...]
    owner: str = "base"
    cookie: int = field(default=0, compare=False)
    # What identifies the flow in the switch (its table, priority and match), and its
    # place in a FlowSet: computed once, since every diff and sort asks.
    key: tuple[str, int, Match] = field(init=False, repr=False, compare=False)
    sort_key: tuple[int, int, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.stage not in TABLE_ID:
            raise ValueError(f"unknown stage {self.stage!r}")
        object.__setattr__(self, "key", (self.stage, self.priority, self.match))
        object.__setattr__(self, "sort_key",
                           (TABLE_ID[self.stage], -self.priority, repr(self.match)))
        if not self.cookie:
            object.__setattr__(self, "cookie", cookie_of(self.owner))
        _check_instruction_order(self.actions)
        for i, act in enumerate(self.actions):
            if isinstance(act, Goto):
                check_goto(self.stage, act.stage)
                if i != len(self.actions) - 1:
                    raise ValueError("goto must be the last action")
            if isinstance(act, Ct) and act.table is not None:
                check_goto(self.stage, act.table)
        if any(isinstance(a, Conjunction) for a in self.actions) and not all(
            isinstance(a, Conjunction) for a in self.actions
        ):
            raise ValueError("a flow with conjunction actions may have no other action")

    @property
    def table(self) -> int:
        return TABLE_ID[self.stage]


def _check_instruction_order(actions: tuple[Action, ...]) -> None:
    """OpenFlow 1.3 order: meter, apply-actions, write-metadata, goto (each optional).

    The IR keeps that order so a flow reads the way the switch runs it.
    """
    last = 0
    for act in actions:
        rank = _INSTRUCTION_RANK.get(type(act), 1)
        if rank < last:
            break
        last = rank
    else:
        return
    raise ValueError(f"instructions out of order (meter, actions, metadata, goto): {actions}")


_INSTRUCTION_RANK: dict[type, int] = {Meter: 0, WriteMetadata: 2, Goto: 3}


@dataclass(frozen=True, slots=True)
class Bucket:
    actions: tuple[Action, ...]
    watch_port: int | None = None


@dataclass(frozen=True, slots=True)
class Group:
    group_id: int
    type: str  # "ff" (fast failover), "all", "select", "indirect"
    buckets: tuple[Bucket, ...]
    owner: str = "base"


@dataclass(frozen=True, slots=True)
class MeterBand:
    """One drop band. `rate_kbps`/`burst_kb` are packets/s and packets when `pktps`
    (the DHCP meters count requests, not bytes)."""

    meter_id: int
    rate_kbps: int
    burst_kb: int
    owner: str = "base"
    pktps: bool = False


FlowKey = tuple[str, int, Match]


def _check_unique(where: str, flows: list[Flow]) -> None:
    for before, after in zip(flows, flows[1:], strict=False):
        if before.key == after.key:
            raise ValueError(f"{where}: two flows share table/priority/match: {before.key}")


@dataclass(frozen=True, eq=False)
class Fragment:
    """A piece of a switch's tables, computed once and shared by every switch that
    holds the same content (a segment's ARP answers, a tenant's routes, ...).

    `key` names what it is (`("arp", 10)`, `("acl", "acme", (3, 7))`); identity is
    what callers compare: an unchanged fragment is the very same object.
    """

    key: tuple[object, ...]
    flows: tuple[Flow, ...]
    groups: tuple[Group, ...] = ()
    meters: tuple[MeterBand, ...] = ()

    @classmethod
    def build(
        cls,
        key: tuple[object, ...],
        flows: Iterable[Flow],
        groups: Iterable[Group] = (),
        meters: Iterable[MeterBand] = (),
    ) -> Fragment:
        """Sort deterministically and refuse two flows with the same identity."""
        ordered = sorted(flows, key=_flow_sort_key)
        _check_unique(str(key), ordered)
        return cls(
            key,
            tuple(ordered),
            tuple(sorted(groups, key=lambda g: g.group_id)),
            tuple(sorted(meters, key=lambda m: m.meter_id)),
        )

    @cached_property
    def by_key(self) -> dict[FlowKey, Flow]:
        return {f.key: f for f in self.flows}


class FlowSet:
    """Everything one switch should hold: flows, groups and meters.

    A composition: `local` (what only this switch holds) and `parts` (fragments,
    most of them shared with other switches). A flow of `local` replaces a flow
    of a part with the same table, priority and match (a VM delivered here rather
    than sent towards its hypervisor); parts never overlap each other. `flows` is
    the flat, sorted view, made on first use.
    """

    __slots__ = ("switch", "local", "parts", "masked", "__dict__")

    def __init__(self, switch: str, local: Fragment, parts: tuple[Fragment, ...] = (),
                 masked: int = 0) -> None:
        self.switch = switch
        self.local = local
        self.parts = parts
        self.masked = masked  # flows of `parts` that a `local` flow replaces

    __hash__ = None  # type: ignore[assignment]  # equal by content (__eq__), so unhashable; typeshed wants a method

    @classmethod
    def build(
        cls,
        switch: str,
        flows: Iterable[Flow],
        groups: Iterable[Group] = (),
        meters: Iterable[MeterBand] = (),
    ) -> FlowSet:
        """A FlowSet of one fragment; sorted, and two flows with the same identity refused."""
        return cls(switch, Fragment.build(("local", switch), flows, groups, meters))

    @classmethod
    def of(
        cls,
        switch: str,
        flows: Iterable[Flow],
        groups: Iterable[Group] = (),
        meters: Iterable[MeterBand] = (),
    ) -> FlowSet:
        """As given (read back from a switch, which cannot hold duplicates): no check."""
        return cls(switch, Fragment(("local", switch), tuple(flows), tuple(groups),
                                    tuple(meters)))

    def fragments(self) -> tuple[Fragment, ...]:
        return (self.local, *self.parts)

    @cached_property
    def flows(self) -> tuple[Flow, ...]:
        if not self.parts:
            return self.local.flows
        out = list(self.local.flows)
        if self.masked:
            mine = self.local.by_key
            for part in self.parts:
                out += [f for f in part.flows if f.key not in mine]
        else:
            for part in self.parts:
                out += part.flows
        out.sort(key=_flow_sort_key)
        return tuple(out)

    @cached_property
    def groups(self) -> tuple[Group, ...]:
        if not self.parts:
            return self.local.groups
        return tuple(sorted((g for frag in self.fragments() for g in frag.groups),
                            key=lambda g: g.group_id))

    @cached_property
    def meters(self) -> tuple[MeterBand, ...]:
        if not self.parts:
            return self.local.meters
        return tuple(sorted((m for frag in self.fragments() for m in frag.meters),
                            key=lambda m: m.meter_id))

    @property
    def n_flows(self) -> int:
        """len(flows), without flattening."""
        return sum(len(frag.flows) for frag in self.fragments()) - self.masked

    def same_parts(self, other: FlowSet) -> bool:
        """Made of the very same fragments: equal without looking at a flow."""
        return (self.local is other.local and len(self.parts) == len(other.parts)
                and all(a is b for a, b in zip(self.parts, other.parts, strict=True)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FlowSet):
            return NotImplemented
        if self is other or (self.switch == other.switch and self.same_parts(other)):
            return True
        return (self.switch == other.switch and self.flows == other.flows
                and self.groups == other.groups and self.meters == other.meters)

    def __repr__(self) -> str:
        return (f"FlowSet({self.switch!r}, {self.n_flows} flows, {len(self.parts)} parts, "
                f"{len(self.groups)} groups, {len(self.meters)} meters)")

    def in_stage(self, stage: str) -> list[Flow]:
        return [f for f in self.flows if f.stage == stage]

    def check(self) -> None:
        """Raise unless parts never overlap, and `masked` counts what `local` replaces
        (tests call this on every compiled FlowSet)."""
        seen: dict[FlowKey, tuple[object, ...]] = {}
        for part in self.parts:
            for f in part.flows:
                if f.key in seen:
                    raise ValueError(f"{self.switch}: {f.key} in both {seen[f.key]} and {part.key}")
                seen[f.key] = part.key
        masked = sum(1 for k in self.local.by_key if k in seen)
        if masked != self.masked:
            raise ValueError(f"{self.switch}: local replaces {masked} flows, says {self.masked}")
        ids = [g.group_id for frag in self.fragments() for g in frag.groups]
        if len(ids) != len(set(ids)):
            raise ValueError(f"{self.switch}: a group id in two fragments")


def _flow_sort_key(f: Flow) -> tuple[int, int, str]:
    return f.sort_key


# ---- rendering -------------------------------------------------------------------

# IR name -> ovs-ofctl name where they differ.
_OFCTL_FIELD = {
    "eth_type": "dl_type",
    "ipv4_src": "nw_src",
    "ipv4_dst": "nw_dst",
    "ip_proto": "nw_proto",
    "tcp_dst": "tp_dst",
    "udp_src": "tp_src",
    "udp_dst": "tp_dst",
    "icmpv4_type": "icmp_type",
    "ip_ttl": "nw_ttl",
    "ipv6_nd_target": "nd_target",
    "ipv6_nd_sll": "nd_sll",
}
_NXM_NAME = {
    "eth_src": "NXM_OF_ETH_SRC[]",
    "eth_dst": "NXM_OF_ETH_DST[]",
    "arp_sha": "NXM_NX_ARP_SHA[]",
    "arp_tha": "NXM_NX_ARP_THA[]",
    "arp_spa": "NXM_OF_ARP_SPA[]",
    "arp_tpa": "NXM_OF_ARP_TPA[]",
    "reg4": "NXM_NX_REG4[]",
    "reg5": "NXM_NX_REG5[]",
    "reg6": "NXM_NX_REG6[]",
    "reg7": "NXM_NX_REG7[]",
}
_HEX_FIELDS = {"metadata", "reg4", "reg5", "reg6", "reg7", "eth_type", "tun_id"}


def _render_value(name: str, value: MatchValue) -> str:
    if isinstance(value, tuple):
        if isinstance(value[0], int) and isinstance(value[1], int):
            return f"{hex(value[0])}/{hex(value[1])}"  # masks read best in hex
        return f"{_render_value(name, value[0])}/{_render_value(name, value[1])}"
    if isinstance(value, int) and name in _HEX_FIELDS:
        return hex(value)
    return str(value)


# ovs-ofctl reads `ip_frag` only by name: (value, mask) -> that name.
_IP_FRAG_NAME = {(0, 1): "no", (0, 3): "no", (1, 1): "yes", (1, 3): "first",
                 (3, 3): "later", (0, 2): "not_later"}


def render_match_ofctl(match: Match) -> str:
    parts = []
    for name, value in match:
        if name == "ip_frag":
            value = typing.cast("int | tuple[int, int]", value)  # ip_frag is numeric
            pair = value if isinstance(value, tuple) else (value, 3)
            parts.append(f"ip_frag={_IP_FRAG_NAME[pair]}")
            continue
        if name == "vlan_vid":
            # ovs-ofctl speaks 802.1Q through vlan_tci (VID plus the CFI/present bit).
            value = typing.cast("int | tuple[int, int]", value)  # a VID is a number
            if isinstance(value, tuple):
                parts.append(f"vlan_tci={hex(value[0])}/{hex(value[1] | 0x1000)}")
            elif value == 0:
                parts.append("vlan_tci=0x0000/0x1fff")
            else:
                parts.append(f"vlan_tci={hex(value | OFPVID_PRESENT)}/0x1fff")
            continue
        parts.append(f"{_OFCTL_FIELD.get(name, name)}={_render_value(name, value)}")
    return ",".join(parts)


def render_nat_ofctl(nat: Nat) -> str:
    """`nat`, `nat(src=A)` or `nat(dst=A-B)`, as ovs-ofctl writes them."""
    if nat.kind is None:
        return "nat"
    span = nat.first if nat.last in (None, nat.first) else f"{nat.first}-{nat.last}"
    return f"nat({nat.kind}={span})"


def render_action_ofctl(act: Action, named: bool = False) -> str:
    """ovs-ofctl syntax; with `named`, tables appear by stage name (for people and goldens)."""
    match act:
        case Output(port=p):
            return "IN_PORT" if p == OFPP_IN_PORT else (
                "CONTROLLER:65535" if p == OFPP_CONTROLLER else f"output:{p}"
            )
        case GroupAction(group_id=g):
            return f"group:{g}"
        case SetField(field="vlan_vid", value=v):
            return f"set_field:{int(v) | OFPVID_PRESENT}->vlan_vid"
        case SetField(field=f, value=v):
            if f in _NXM_NAME and isinstance(v, int):
                return f"load:{hex(v)}->{_NXM_NAME[f]}"
            if isinstance(v, int) and f in _HEX_FIELDS:
                return f"set_field:{hex(v)}->{f}"
            return f"set_field:{v}->{f}"
        case Move(src=s, dst=d):
            return f"move:{_NXM_NAME[s]}->{_NXM_NAME[d]}"
        case PushVlan():
            return "push_vlan:0x8100"
        case PopVlan():
            return "pop_vlan"
        case PushMpls():
            return "push_mpls:0x8847"
        case PopMpls(ethertype=e):
            return f"pop_mpls:{e:#06x}"
        case DecTtl():
            return "dec_ttl"
        case Ct(zone=z, commit=c, table=t, mark=mark, nat=nat):
            args = ["commit"] if c else []
            if t is not None:
                args.append(f"table={t if named else TABLE_ID[t]}")
            zone = f"NXM_NX_{z.upper()}[0..15]" if isinstance(z, str) else str(z)
            args.append(f"zone={zone}")
            if mark is not None:
                args.append(f"exec(set_field:{hex(mark)}->ct_mark)")
            if nat is not None:
                args.append(render_nat_ofctl(nat))
            return f"ct({','.join(args)})"
        case Conjunction(id=i, clause=c, n_clauses=n):
            return f"conjunction({i},{c}/{n})"
        case Meter(meter_id=m):
            return f"meter:{m}"
        case Controller(meter_id=m):
            return f"controller(meter_id={m})"
        case WriteMetadata(value=v, mask=m):
            return f"write_metadata:{hex(v)}/{hex(m)}"
        case Goto(stage=s):
            return f"goto:{s}" if named else f"goto_table:{TABLE_ID[s]}"
    raise TypeError(f"unknown action {act!r}")


def render_flow_named(flow: Flow) -> str:
    """A flow as people read it: stage names instead of table numbers, owner instead
    of cookie. Golden files use this, so adding a stage rewrites none of them."""
    actions = ",".join(render_action_ofctl(a, named=True) for a in flow.actions) or "drop"
    match = render_match_ofctl(flow.match) or "*"
    return f"{flow.stage} priority={flow.priority} owner={flow.owner} {match} actions={actions}"


def render_flow_ofctl(flow: Flow) -> str:
    """One line `ovs-ofctl -O OpenFlow13 add-flows` accepts."""
    match = render_match_ofctl(flow.match)
    head = f"table={flow.table},priority={flow.priority},cookie={hex(flow.cookie)}"
    if match:
        head += "," + match
    actions = ",".join(render_action_ofctl(a) for a in flow.actions) or "drop"
    return f"{head} actions={actions}"


def render_group_ofctl(group: Group) -> str:
    kind = {"ff": "fast_failover"}.get(group.type, group.type)
    buckets = []
    for b in group.buckets:
        watch = f"watch_port:{b.watch_port}," if b.watch_port is not None else ""
        buckets.append(f"bucket={watch}" + ",".join(render_action_ofctl(a) for a in b.actions))
    return f"group_id={group.group_id},type={kind}," + ",".join(buckets)


def render_meter_ofctl(meter: MeterBand) -> str:
    unit = "pktps" if meter.pktps else "kbps"
    return (
        f"meter={meter.meter_id},{unit},burst,"
        f"band=type=drop,rate={meter.rate_kbps},burst_size={meter.burst_kb}"
    )


def render_flowset_ofctl(fs: FlowSet, cache: dict[int, str] | None = None) -> str:
    """Meters and groups as comments (ovs-ofctl adds them with add-meter/add-group),
    then one flow per line. `cache` (id of a flow -> its line), shared between the
    switches of one network while their FlowSets are alive, renders a flow that
    many switches hold once."""
    lines = [f"# switch {fs.switch}: {len(fs.flows)} flows"]
    lines += [f"# meter: {render_meter_ofctl(m)}" for m in fs.meters]
    lines += [f"# group: {render_group_ofctl(g)}" for g in fs.groups]
    if cache is None:
        lines += [render_flow_ofctl(f) for f in fs.flows]
    else:
        for f in fs.flows:
            line = cache.get(id(f))
            if line is None:
                line = cache[id(f)] = render_flow_ofctl(f)
            lines.append(line)
    return "\n".join(lines) + "\n"


def action_to_json(act: Action) -> dict[str, object]:
    """`{"type": "Ct", "zone": ..., "nat": {"kind": "src", "first": ..., "last": null}}`:
    the action's fields, a nested `Nat` as an object of its own fields."""
    out: dict[str, object] = {"type": type(act).__name__}
    for name in act.__slots__:
        value = getattr(act, name)
        if isinstance(value, Nat):
            value = {slot: getattr(value, slot) for slot in value.__slots__}
        out[name] = value
    return out


def flow_to_json(flow: Flow) -> dict[str, object]:
    return {
        "stage": flow.stage,
        "table": flow.table,
        "priority": flow.priority,
        "match": {k: list(v) if isinstance(v, tuple) else v for k, v in flow.match},
        "actions": [action_to_json(a) for a in flow.actions],
        "owner": flow.owner,
        "cookie": flow.cookie,
    }


def flowset_to_json(fs: FlowSet) -> dict[str, object]:
    return {
        "switch": fs.switch,
        "flows": [flow_to_json(f) for f in fs.flows],
        "groups": [
            {
                "group_id": g.group_id,
                "type": g.type,
                "buckets": [
                    {"watch_port": b.watch_port, "actions": [action_to_json(a) for a in b.actions]}
                    for b in g.buckets
                ],
                "owner": g.owner,
            }
            for g in fs.groups
        ],
        "meters": [
            {"meter_id": m.meter_id, "rate_kbps": m.rate_kbps, "burst_kb": m.burst_kb,
             "owner": m.owner, **({"pktps": True} if m.pktps else {})}
            for m in fs.meters
        ],
    }


def dumps_flowsets(flowsets: Iterable[FlowSet]) -> str:
    return json.dumps([flowset_to_json(fs) for fs in flowsets], indent=2)


def stage_of_table(table: int) -> str:
    return STAGE_OF_TABLE[table]
