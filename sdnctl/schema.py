"""JSON Schemas (draft 2020-12) of the policy and topology files, for editors and CI.

An editor that knows the schema (`# yaml-language-server: $schema=...` on a file's
first line) completes keys, shows what each one means and flags what the schema
can see: unknown keys, wrong types, a VLAN out of 1..4094, a malformed service.
The loaders stay the judge: what needs more than one value at a time (a VLAN
reused, a gateway outside its subnet, an unknown group) only `sdnctl check` says.

The schemas use the loaders' own limits and are kept in step with their key
lists by tests/unit/test_formats.py. Only keywords that draft-07 tools also read
are used (`if`/`then` rather than `dependentRequired`), so older editors agree.
Beside the standard keywords, `patternErrorMessage` (read by the YAML language
server, ignored by validators) makes an editor say what was expected ("a
service: tcp/80, ...") instead of quoting a regular expression.
"""

from __future__ import annotations

from typing import Any

# The loaders' own limits, private to them: read here rather than written twice.
from sdnctl.policy.lint import WAIVABLE
from sdnctl.policy.load import _SMALLEST_SUBNET, MAX_RATE_MBPS
from sdnctl.policy.load_ns import MAX_SNAT_POOL
from sdnctl.policy.model import ANY, EXTERNAL, MAX_VNI
from sdnctl.policy.values import MAX_DNS_SERVERS, UPLINK_MAC_PREFIX
from sdnctl.topology.load import (
    _SWITCH_NAME_RE,
    MAX_DPID,
    MAX_PORT,
    MAX_UNDERLAY_MTU,
    MIN_UNDERLAY_MTU,
    ROLES,
)
from sdnctl.topology.load_uplink import MAX_VLAN, SMALLEST_UPLINK_SUBNET
from sdnctl.topology.model import DEFAULT_UNDERLAY_MTU, TUNNEL_PORT

DRAFT = "https://json-schema.org/draft/2020-12/schema"
MAX_L4_PORT = 65535

Schema = dict[str, Any]

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_UNICAST_MAC = r"^[0-9a-fA-F][02468aceACE](?::[0-9a-fA-F]{2}){5}$"  # low bit clear


def integer_pattern(most: int) -> str:
    """A regular expression (no anchors) for the decimal integers 1..most, leading
    zeros allowed as the loaders allow them.

    >>> import re
    >>> byte = re.compile(integer_pattern(255))
    >>> [n for n in (0, 1, 9, 10, 99, 100, 255, 256, 1000) if byte.fullmatch(str(n))]
    [1, 9, 10, 99, 100, 255]
    >>> bool(byte.fullmatch("0080"))
    True
    """
    text = str(most)
    width = len(text)
    shorter = [f"[1-9][0-9]{{0,{width - 2}}}"] if width > 1 else []
    same_width = [text]  # `most` itself, then everything below it digit by digit
    for i, digit in enumerate(text):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            top = int(digit) - 1
            choice = str(low) if top == low else f"[{low}-{top}]"
            rest = width - i - 1
            same_width.append(text[:i] + choice + (f"[0-9]{{{rest}}}" if rest else ""))
    return "0*(?:" + "|".join(same_width + shorter) + ")"


def _whole(pattern: str) -> str:
    """Anchored, with the surrounding blanks the loaders strip."""
    return rf"^\s*(?:{pattern})\s*$"


def _service_pattern() -> str:
    port = integer_pattern(MAX_L4_PORT)
    return _whole(rf"icmp|any|(?:tcp|udp)/{port}(?:-{port})?")


def _names(item: Schema, what: str, pattern: str = r"\S",
           expected: str = "names must not be empty") -> Schema:
    """A mapping of names (non-blank strings, or what `pattern` allows) to `item`;
    empty or null is allowed."""
    names: Schema = {"type": "string", "pattern": pattern, "patternErrorMessage": expected}
    return {"type": ["object", "null"], "description": what,
            "propertyNames": names, "additionalProperties": item}


# A group name: not blank, not `any` or `external`, and nothing a rule end would read
# as addresses (a leading digit, a '/').
_GROUP_NAME = rf"^(?!(?:{ANY}|{EXTERNAL})$)(?![0-9])[^/]*[^/\s][^/]*$"


def _list(item: Schema, what: str, non_empty: bool = False) -> Schema:
    if non_empty:
        return {"type": "array", "minItems": 1, "description": what, "items": item}
    return {"type": ["array", "null"], "description": what, "items": item}


def _integer(most: int, what: str) -> Schema:
    return {"type": "integer", "minimum": 1, "maximum": most, "description": what}


def _string(what: str, pattern: str | None = None, expected: str = "") -> Schema:
    """A string; with a `pattern`, `expected` says in words what the pattern wants."""
    schema: Schema = {"type": "string", "description": what}
    if pattern is not None:
        schema["pattern"] = pattern
        schema["patternErrorMessage"] = f"expected {expected}"
    return schema


def _address(what: str) -> Schema:
    return _string(what, _whole(_IPV4), "an IPv4 address like 10.1.10.11")


def _object(what: str, properties: Schema, required: list[str], **more: Any) -> Schema:
    return {"type": "object", "description": what, "required": required,
            "properties": properties, "additionalProperties": False, **more}


_VERSION: Schema = {"const": 1, "description": "The format's version: always 1."}


def _waive(kind: str) -> Schema:
    codes = WAIVABLE[kind]
    return _list({"enum": list(codes)}, f"Lint warnings about this {kind} not to print "
                 f"(`sdnctl check` counts them apart): {', '.join(codes)}.")
_LABELS: Schema = {
    "type": ["object", "null"],
    "description": "name: value pairs; both are strings (quote numbers and booleans).",
    "additionalProperties": {"type": "string"},
}


# -- policy -----------------------------------------------------------------------------


def _dns(what: str) -> Schema:
    return {**_list(_address("A unicast IPv4 address."), what), "uniqueItems": True,
            "maxItems": MAX_DNS_SERVERS}


def _segment() -> Schema:
    prefix = f"(?:{integer_pattern(_SMALLEST_SUBNET)}|0+)"
    subnet = _whole(rf"{_IPV4}/(?:{prefix}|{_IPV4})")
    return _object(
        "One L2 domain (a VLAN, a VXLAN overlay, or both) with its IPv4 subnet.",
        {
            "vlan": _integer(MAX_VLAN, "802.1Q VLAN id on fabric trunks; unique in the "
                             "policy. A segment needs vlan, vni or both."),
            "vni": _integer(MAX_VNI, "VXLAN network identifier between hypervisors with a "
                            "tunnel_ip; unique in the policy."),
            "subnet": _string(f"IPv4 network like 10.1.10.0/24, no host bits, at most "
                              f"/{_SMALLEST_SUBNET}; must not overlap the tenant's other "
                              "segments.", subnet, "an IPv4 network like 10.1.10.0/24 "
                              f"(at most /{_SMALLEST_SUBNET})"),
            "gateway": _address("The distributed router's address in this segment (inside "
                                "the subnet, not its network or broadcast address). Without "
                                "it the segment is never routed."),
            "dns": _dns("DNS servers DHCP hands to the segment's VMs; instead of the "
                        "tenant's."),
            "subnet6": _string("IPv6 network like 2001:db8:10::/64 (a /64 recommended: "
                               "VMs without ip6 get their EUI-64 address in it), no host "
                               "bits, at most /120; must not overlap the tenant's other "
                               "segments. Without it the segment carries no IPv6."),
            "gateway6": _string("The distributed router's IPv6 address in this segment "
                                "(inside subnet6, not its first address). Without it the "
                                "segment is not routed for IPv6."),
        },
        ["subnet"],
        anyOf=[{"required": ["vlan"]}, {"required": ["vni"]}],
    )


def _group() -> Schema:
    return _object(
        "VMs of the tenant whose labels include all of `labels`, plus the VMs in `vms`.",
        {
            "labels": {**_LABELS, "description": "Every VM of the tenant whose labels "
                       "include all of these is a member."},
            "vms": _list(_string("A VM of this tenant."), "VMs that are members by name."),
            "waive": _waive("group"),
        },
        [],
        anyOf=[
            {"required": ["labels"], "properties": {"labels": {"minProperties": 1}}},
            {"required": ["vms"], "properties": {"vms": {"minItems": 1}}},
        ],
    )


def _rule() -> Schema:
    end = (f"A group of the tenant, `{ANY}` (every VM of the tenant), `{EXTERNAL}` (every "
           "address outside the tenant) or an IPv4 CIDR outside the tenant's segments "
           "(\"198.51.100.0/24\"); not both ends outside.")
    return _object(
        "Allow connections opened by `from` members towards `to` members; replies pass.",
        {
            "from": _string(f"Who opens the connection. {end}"),
            "to": _string(f"Who accepts it. {end}"),
            "allow": _list(
                _string("tcp/PORT, udp/PORT, tcp/LO-HI, udp/LO-HI (ports 1..65535), icmp "
                        "(echo, in IPv4 and IPv6) or any (every IP packet).", _service_pattern(),
                        "a service: tcp/80, udp/53, tcp/8000-8100 (ports 1..65535), icmp "
                        "or any"),
                "The services allowed.", non_empty=True),
            "waive": _waive("rule"),
            "family": {"enum": ["ipv4", "ipv6"], "description": "Allow the services in "
                       "this IP family only; without it the rule covers both. A rule with "
                       "an end outside the tenant is IPv4 only."},
            "log": {"type": "boolean", "default": False,
                    "description": "Record every new connection this rule allows in the "
                    "daemon's connection log."},
        },
        ["from", "to", "allow"],
    )


def _tenant() -> Schema:
    return _object(
        "A tenant: its segments, groups and allow rules. Tenants never reach each other.",
        {
            "default": {"enum": ["deny", "allow"], "default": "deny",
                        "description": "VM-to-VM traffic inside the tenant that no rule "
                        "allows: deny (default) or allow."},
            "segments": _names({"$ref": "#/$defs/segment"}, "Segments by name."),
            "groups": _names({"$ref": "#/$defs/group"}, f"Groups by name; `{ANY}` and "
                             f"`{EXTERNAL}` are reserved, and a name neither starts with a "
                             "digit nor holds a '/' (rule ends so written are CIDRs).",
                             _GROUP_NAME, f"a group name: not empty, not {ANY!r} or "
                             f"{EXTERNAL!r}, no leading digit, no '/'"),
            "rules": _list({"$ref": "#/$defs/rule"}, "Allow rules; order does not matter."),
            "waive": _waive("tenant"),
            "dns": _dns("DNS servers DHCP hands to the tenant's VMs (a segment's own dns "
                        "wins)."),
            "snat": _string(f"The source address of the tenant's VMs going out: one IPv4 "
                            f"address, or a range \"FIRST-LAST\" of at most {MAX_SNAT_POOL}. "
                            "Unicast, used nowhere else in the policy, outside every "
                            "tenant's segments, in a gateway uplink's subnet. Without it "
                            "only VMs with a floating_ip go out.",
                            _whole(rf"{_IPV4}(?:\s*-\s*{_IPV4})?"),
                            "an IPv4 address like 203.0.113.10 or a range like "
                            "203.0.113.10-203.0.113.19"),
            "log_denied": {"type": "boolean", "default": False,
                           "description": "Record the first packet of every connection "
                           "the tenant's VMs open that no rule allows, in the daemon's "
                           "connection log."},
        },
        ["segments"],
    )


def _vm() -> Schema:
    return _object(
        "A VM: where it lives in the policy and its one interface's addresses.",
        {
            "tenant": _string("The tenant it belongs to."),
            "segment": _string("A segment of its tenant."),
            "mac": _string("Unicast MAC like \"02:00:00:00:10:11\" (quote it), unique; "
                           "not all zeros, not in 0e:00:00:00:xx:xx or 0e:00:01:xx:xx:xx "
                           f"(gateway MACs) nor {UPLINK_MAC_PREFIX}xx:xx:xx:xx (uplink MACs).",
                           _UNICAST_MAC,
                           "a unicast MAC like 02:00:00:00:10:11 (first octet even)"),
            "ip": _address("IPv4 address inside its segment's subnet, unique in the tenant, "
                           "not the gateway."),
            "labels": {**_LABELS, "description": "Labels that groups select by."},
            "host": _string("The hypervisor switch it is placed on (used by the lab and "
                            "`sdnctl vm plug`; the controller trusts only live bindings)."),
            "rate_limit_mbps": {"type": "integer", "minimum": 1, "maximum": MAX_RATE_MBPS,
                                "description": "Caps what the VM sends, in Mbit/s (at most "
                                "what a meter band's 32-bit kbit/s rate encodes)."},
            "waive": _waive("vm"),
            "ip6": _string("IPv6 address inside its segment's subnet6, unique in the "
                           "tenant, not the gateway6. Default in a /64: the EUI-64 address "
                           "built from the MAC (as SLAAC does)."),
            "floating_ip": _address("Its 1:1 NAT address outside: connections from outside "
                                    "that a rule allows reach the VM at it, and the VM goes "
                                    "out with it as source. Unicast, used nowhere else, "
                                    "outside every tenant's segments, in a gateway uplink's "
                                    "subnet; the VM's segment has a gateway and a vlan."),
        },
        ["tenant", "segment", "mac", "ip"],
    )


def policy_schema() -> Schema:
    """The JSON Schema of a policy file."""
    return {
        "$schema": DRAFT,
        "title": "sdnctl policy",
        "description": "Tenants, their segments, groups and allow rules, and the VMs. "
                       "Reference: docs/policy.md.",
        "type": "object",
        "required": ["version", "tenants"],
        "properties": {
            "version": _VERSION,
            "tenants": _names({"$ref": "#/$defs/tenant"}, "Tenants by name."),
            "vms": _names({"$ref": "#/$defs/vm"}, "VMs by name."),
        },
        "additionalProperties": False,
        "$defs": {"tenant": _tenant(), "segment": _segment(), "group": _group(),
                  "rule": _rule(), "vm": _vm()},
    }


# -- topology ---------------------------------------------------------------------------


def _uplink() -> Schema:
    prefix = f"(?:{integer_pattern(SMALLEST_UPLINK_SUBNET)}|0+)"
    return _object(
        "A gateway's port facing the external router.",
        {
            "port": _integer(MAX_PORT, "The OpenFlow port number; no link, tunnel or other "
                             "uplink may use it."),
            "ip": _string("The gateway's own address on the uplink subnet, with the "
                          f"subnet's prefix length (203.0.113.2/24; at most "
                          f"/{SMALLEST_UPLINK_SUBNET}); not its network or broadcast "
                          "address; unique.",
                          _whole(rf"{_IPV4}/(?:{prefix}|{_IPV4})"),
                          "an address with its prefix like 203.0.113.2/24"),
            "next_hop": _address("The external router's address: inside the uplink subnet, "
                                 "not the uplink's own ip."),
            "vlan": _integer(MAX_VLAN, "The 802.1Q tag on the uplink, if the external side "
                             "is tagged. Default: untagged."),
            "next_hop_mac": _string("The external router's MAC, unicast (quote it). "
                                    "Default: learned by ARP.", _UNICAST_MAC,
                                    "a unicast MAC like 02:00:5e:00:01:01 (first octet "
                                    "even)"),
        },
        ["port", "ip", "next_hop"],
    )


def _switch() -> Schema:
    return _object(
        "An Open vSwitch bridge: a hypervisor (VMs plug into it), a fabric switch, or "
        "a gateway (uplinks to an external router).",
        {
            "dpid": _integer(MAX_DPID, "OpenFlow datapath id (decimal or 0x hex), unique."),
            "role": {"enum": list(ROLES),
                     "description": "hypervisor: VMs plug into it; fabric: it only "
                     "carries traffic between switches; gateway: a border switch with "
                     "uplinks to an external router."},
            "tunnel_ip": _address("A hypervisor's underlay IPv4 address for VXLAN, unicast "
                                  "and unique."),
            "tunnel_port": {**_integer(MAX_PORT, "OpenFlow port number of the VXLAN port; "
                                       "no link may use it."), "default": TUNNEL_PORT},
            "uplink": {"description": "A gateway's uplink, or a list of them: its exits to "
                       "the external router. Required on a gateway, refused elsewhere.",
                       "anyOf": [{"$ref": "#/$defs/uplink"},
                                 {"type": "array", "minItems": 1,
                                  "items": {"$ref": "#/$defs/uplink"}}]},
        },
        ["dpid", "role"],
        allOf=[
            {"if": {"required": ["tunnel_port"]}, "then": {"required": ["tunnel_ip"]}},
            {"if": {"required": ["role"],
                    "properties": {"role": {"enum": ["fabric", "gateway"]}}},
             # No string matches both this and the address pattern; said as a pattern
             # so that editors print the reason (they print none for `not`).
             "then": {"properties": {"tunnel_ip": {
                 "pattern": "^$", "patternErrorMessage": "tunnel_ip is for hypervisors; "
                 "a fabric switch or gateway carries no tunnel endpoint"}}}},
            {"if": {"required": ["role"], "properties": {"role": {"const": "gateway"}}},
             "then": {"required": ["uplink"]},
             "else": {"if": {"required": ["role"]}, "then": {"not": {"required": ["uplink"]}}}},
        ],
    )


def _link() -> Schema:
    end = _string("\"switch:port\": a switch of this file and an OpenFlow port number "
                  f"1..{MAX_PORT}; a port carries one link.",
                  rf"^[^:\s]+:{integer_pattern(MAX_PORT)}$",
                  f"\"switch:port\" like \"hv1:10\" (port 1..{MAX_PORT})")
    return _object("A cable between two switches (no self-links, no parallel links).",
                   {"a": end, "b": end}, ["a", "b"])


def topology_schema() -> Schema:
    """The JSON Schema of a topology file."""
    return {
        "$schema": DRAFT,
        "title": "sdnctl topology",
        "description": "The switches and the links between them. Reference: "
                       "docs/topology.md.",
        "type": "object",
        "required": ["version", "switches"],
        "properties": {
            "version": _VERSION,
            "switches": {
                "type": ["object", "null"],
                "description": "Switches by name (it becomes the OVS bridge name).",
                "propertyNames": {
                    "type": "string", "pattern": _SWITCH_NAME_RE.pattern,
                    "patternErrorMessage": "a switch name is a letter, then up to 14 letters, "
                    "digits, '_' or '-' (it becomes an OVS bridge name)"},
                "additionalProperties": {"$ref": "#/$defs/switch"},
            },
            "links": _list({"$ref": "#/$defs/link"}, "Links between switches."),
            "underlay_mtu": {"type": "integer", "minimum": MIN_UNDERLAY_MTU,
                             "maximum": MAX_UNDERLAY_MTU, "default": DEFAULT_UNDERLAY_MTU,
                             "description": "MTU of the fabric links and the tunnel "
                             "underlay; DHCP tells VMs what fits inside it."},
        },
        "additionalProperties": False,
        "$defs": {"switch": _switch(), "uplink": _uplink(), "link": _link()},
    }


SCHEMAS = {"policy": policy_schema, "topology": topology_schema}
