"""Field widths, constants and matches: the IR's match <-> OFPMatch."""

from __future__ import annotations

import ipaddress
from typing import Any

from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from sdnctl.flows import (
    CT_BITS,
    MATCH_FIELDS,
    OFPVID_PRESENT,
    Match,
    MatchValue,
    parse_ct_state,
)

Datapath = Any  # os-ken Datapath or ProtocolDesc; os-ken ships no type hints
OfpMsg = Any

# Field widths in bits: full masks collapse to exact matches, moves copy whole fields.
FIELD_BITS: dict[str, int] = {
    "in_port": 32, "metadata": 64, "reg4": 32, "reg5": 32, "reg6": 32, "reg7": 32, "conj_id": 32,
    "ct_state": 32, "ct_mark": 32, "eth_type": 16, "eth_src": 48, "eth_dst": 48, "vlan_vid": 13,
    "arp_op": 16, "arp_spa": 32, "arp_tpa": 32, "arp_sha": 48, "arp_tha": 48,
    "ip_proto": 8, "ip_frag": 2, "ip_ttl": 8, "ipv4_src": 32, "ipv4_dst": 32, "tcp_dst": 16,
    "udp_src": 16, "udp_dst": 16, "icmpv4_type": 8, "mpls_label": 20, "tun_id": 64, "tun_dst": 32,
    "ipv6_src": 128, "ipv6_dst": 128, "icmpv6_type": 8, "ipv6_nd_target": 128,
    "ipv6_nd_sll": 48, "mpls_tc": 3,
}
# IR name -> os-ken OXM name where they differ (ovs-fields(7) says tun_id, OpenFlow
# 1.3 calls it tunnel_id; tun_dst is Nicira's tun_ipv4_dst).
OFP_NAME: dict[str, str] = {"tun_id": "tunnel_id", "tun_dst": "tun_ipv4_dst", "ip_ttl": "nw_ttl"}
# Nicira fields whose prerequisite (an IP eth_type) os-ken would write after them.
AFTER_PREREQUISITES = frozenset({"ip_frag", "nw_ttl"})
IR_NAME: dict[str, str] = {v: k for k, v in OFP_NAME.items()}
_MAC_FIELDS = {"eth_src", "eth_dst", "arp_sha", "arp_tha", "ipv6_nd_sll"}
_IP_FIELDS = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "tun_dst"}
_IP6_FIELDS = {"ipv6_src", "ipv6_dst", "ipv6_nd_target"}

# ct_state bits (ovs-fields(7)), in the order flags are printed; one table for the
# simulator and the southbound.
CT_STATE_BITS: dict[str, int] = CT_BITS

GROUP_TYPES: dict[str, int] = {
    "all": ofp.OFPGT_ALL, "select": ofp.OFPGT_SELECT,
    "indirect": ofp.OFPGT_INDIRECT, "ff": ofp.OFPGT_FF,
}
_GROUP_TYPE_NAMES = {v: k for k, v in GROUP_TYPES.items()}

BUNDLE_FLAGS = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
_ALL_COOKIE_BITS = 0xFFFF_FFFF_FFFF_FFFF
_CT_ZONE_BITS = nicira_ext.ofs_nbits(0, 15)


class Unrepresentable(ValueError):
    """A switch entry the IR cannot express (unknown table, field, action or form)."""


# ---- match ------------------------------------------------------------------------


def ct_state_to_ofp(text: str) -> tuple[int, int]:
    """`"+est+trk"` -> (value, mask) as NXM ct_state takes them; ValueError if malformed."""
    try:
        return parse_ct_state(text)
    except (KeyError, IndexError):
        raise ValueError(f"bad ct_state {text!r}") from None


def ct_state_from_ofp(value: int, mask: int) -> str:
    """(value, mask) -> `"+new-est+trk"`, flags in the fixed CT_STATE_BITS order."""
    unknown = mask & ~sum(CT_STATE_BITS.values())
    if unknown:
        raise Unrepresentable(f"ct_state mask {mask:#x} has flags the IR does not name")
    return "".join(
        ("+" if value & bit else "-") + name
        for name, bit in CT_STATE_BITS.items()
        if mask & bit
    )


def _full_mask(name: str) -> int:
    return (1 << FIELD_BITS[name]) - 1


def _normalize_value(name: str, value: MatchValue) -> MatchValue:
    """The form a switch reports: exact when the mask is full, bits outside it zeroed."""
    if name == "ct_state":
        if isinstance(value, tuple):
            return ct_state_from_ofp(int(value[0]), int(value[1]))
        return ct_state_from_ofp(*ct_state_to_ofp(str(value)))
    if name == "vlan_vid":
        return value
    if name in _IP_FIELDS:
        if isinstance(value, str) and "/" in value:
            net = ipaddress.IPv4Network(value, strict=False)
            value = (str(net.network_address), str(net.netmask))
        if isinstance(value, tuple):
            addr = int(ipaddress.IPv4Address(value[0]))
            mask = int(ipaddress.IPv4Address(value[1]))
            if mask == 0xFFFFFFFF:
                return str(ipaddress.IPv4Address(addr))
            return (str(ipaddress.IPv4Address(addr & mask)), str(ipaddress.IPv4Address(mask)))
        return str(ipaddress.IPv4Address(value))
    if name in _IP6_FIELDS:
        return _normalize_ip6(value)
    if name in _MAC_FIELDS:
        if isinstance(value, tuple):
            val, mask = _mac_int(str(value[0])), _mac_int(str(value[1]))
            if mask == _full_mask(name):
                return _mac_str(val)
            return (_mac_str(val & mask), _mac_str(mask))
        return str(value).lower()
    if isinstance(value, tuple):
        val, mask = int(value[0]), int(value[1])
        if mask == _full_mask(name):
            return val
        return (val & mask, mask)
    return value


def _normalize_ip6(value: MatchValue) -> MatchValue:
    """An IPv6 address in its compressed text form; masked: (address, mask), exact
    when the mask is full."""
    if isinstance(value, str) and "/" in value:
        net = ipaddress.IPv6Network(value, strict=False)
        value = (str(net.network_address), str(net.netmask))
    if isinstance(value, tuple):
        addr = int(ipaddress.IPv6Address(value[0]))
        mask = int(ipaddress.IPv6Address(value[1]))
        if mask == (1 << 128) - 1:
            return str(ipaddress.IPv6Address(addr))
        return (str(ipaddress.IPv6Address(addr & mask)), str(ipaddress.IPv6Address(mask)))
    return str(ipaddress.IPv6Address(value))


def _mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def _mac_str(n: int) -> str:
    raw = f"{n:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def normalize_match(match: Match) -> Match:
    return Match.of({name: _normalize_value(name, value) for name, value in match})


def ofp_fields(match: Match) -> dict[str, object]:
    """IR match -> os-ken's OXM names and user values (ct_state as bits, vlan_vid with
    OFPVID_PRESENT), in the IR's order."""
    fields: dict[str, object] = {}
    for name, value in normalize_match(match):
        if name == "ct_state":
            fields[name] = ct_state_to_ofp(str(value))
        elif name == "vlan_vid":
            fields[name] = _vlan_to_ofp(value)
        else:
            fields[OFP_NAME.get(name, name)] = value
    return fields


def match_to_ofp(match: Match) -> OfpMsg:
    """IR match -> OFPMatch."""
    fields = ofp_fields(match)
    built = parser.OFPMatch(**fields)
    if AFTER_PREREQUISITES.intersection(fields):
        # os-ken orders fields by OXM type, which puts Nicira's ip_frag and nw_ttl before
        # their prerequisite eth_type, and OVS refuses that (OFPBMC_BAD_PREREQ): put
        # them last.
        ordered = sorted(built.items(), key=lambda kv: kv[0] in AFTER_PREREQUISITES)
        built = parser.OFPMatch(_ordered_fields=ordered)
    return built


def _vlan_to_ofp(value: MatchValue) -> int | tuple[int, int]:
    """IR -> OXM. An exact IR VID is bare (0 = untagged); a masked IR match is already
    in OXM form, present bit included, e.g. (0x1000, 0x1000) for "any tag"."""
    if isinstance(value, tuple):
        return (int(value[0]), int(value[1]))
    vid = int(value)
    return vid | OFPVID_PRESENT if vid else 0


def _vlan_from_ofp(value: object) -> MatchValue:
    """OXM -> IR, the inverse of _vlan_to_ofp (a full mask reads as exact)."""
    if isinstance(value, tuple):
        val, mask = int(value[0]), int(value[1])
        if mask & 0x1FFF != 0x1FFF:
            return (val & mask, mask)
        value = val
    vid = int(value)  # type: ignore[call-overload]
    return vid & 0xFFF if vid & OFPVID_PRESENT else 0


def match_from_ofp(ofp_match: OfpMsg) -> Match:
    """OFPMatch -> IR match; raises Unrepresentable for fields the IR does not name."""
    fields: dict[str, MatchValue] = {}
    for raw_name, value in ofp_match.items():
        name = raw_name.removesuffix("_nxm")
        name = IR_NAME.get(name, name)
        if name not in MATCH_FIELDS:
            raise Unrepresentable(f"match field {raw_name}")
        if name == "ct_state":
            val, mask = value if isinstance(value, tuple) else (value, 0xFFFFFFFF)
            fields[name] = ct_state_from_ofp(val, mask)
        elif name == "vlan_vid":
            fields[name] = _vlan_from_ofp(value)
        else:
            fields[name] = tuple(value) if isinstance(value, (tuple, list)) else value
    return normalize_match(Match.of(fields))
