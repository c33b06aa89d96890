"""North–south: a tenant's traffic with addresses outside it, through gateways.

Which tenants go out, and through which uplink (their *exit*), is
`sdnctl.compile.exits`; this module writes the flows.

On a hypervisor (the tenant's "exit" part, shared by every hypervisor hosting it):
`ct_out` marks a VM's packet for an address outside every segment of its tenant
with reg4 = SIDE_OUT (the `acl` stage then needs a north–south rule for it: the
tenant's default covers VM-to-VM traffic only), and `l3_route` sends such a
packet, sent to its segment's gateway MAC, to the exit's gateway: TTL − 1, the
segment's VLAN tag and the gateway's MPLS label, through the same path groups as
traffic between hypervisors.

On a gateway (its local part), in the tenant's own conntrack zone there:

- From a trunk, a tenant's frame is untagged into that zone with reg4 = SIDE_OUT;
  `ct_out` applies existing translations (`ct(nat)`); `acl` sends established
  and related packets out of the uplink, and commits a new connection with
  source NAT (the VM's floating IP, else the tenant's pool) as it sends it out.
  The policy was checked where the connection started.
- From the uplink, only IPv4 to a NAT address this uplink answers for enters,
  into the address's tenant's zone with reg4 = SIDE_IN; `ct_out` undoes
  translations (replies become packets to the VM); `acl` passes replies and
  judges everything else by the tenant's inbound rules (conjunctions: source
  CIDR, destination floating IP, service); `l3_route` commits a new allowed
  connection with destination NAT to the VM's address and routes it with the
  tenant's shared routes, across the fabric to the VM's hypervisor.
- ARP on the uplink is answered for the uplink's address and its NAT addresses;
  the next hop's ARP frames are copied to the controller (through a meter) when
  its MAC is not configured, which learns it.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Network

from sdnctl.compile.acl import (
    ETH_IP,
    PRIO_INVALID,
    PRIO_RULE,
    PRIO_TENANT_DEFAULT,
    PRIO_TENANT_REVOKE,
    Clauses,
    rule_ids,
    rule_owner,
    service_matches,
    tenant_rules,
)
from sdnctl.compile.context import ROUTED_BIT, TENANT_MASK, NetworkView
from sdnctl.compile.exits import NsPlan, NsTenant, ns_plan
from sdnctl.flows import (
    OFPP_CONTROLLER,
    OFPP_IN_PORT,
    Action,
    Conjunction,
    Ct,
    DecTtl,
    Flow,
    Goto,
    GroupAction,
    Match,
    MatchValue,
    Meter,
    MeterBand,
    Move,
    Nat,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    SetField,
    WriteMetadata,
    cidr,
)
from sdnctl.pipeline import (
    MARK_ALLOWED,
    MARK_REVOKED,
    REG_SEGMENT,
    REG_SIDE,
    REG_ZONE,
    SIDE_IN,
    SIDE_OUT,
    gateway_mac,
)
from sdnctl.topology.model import Uplink

ETH_ARP = 0x0806
ETH_MPLS = 0x8847
ARP_REQUEST = 1
ARP_REPLY = 2
UPLINK_METER = 0x40000  # a gateway's copies of the next hop's ARP to the controller
UPLINK_ARP_PPS = 20
UPLINK_ARP_BURST = 40
PRIO_EXIT = 150  # l3_route on a hypervisor: below the routes to VMs (200)
PRIO_INTERNAL = 105  # ct_out: the tenant's own subnets stay inside
PRIO_MARK_OUT = 104  # ct_out: anything else of the tenant is going out
PRIO_DNAT = 250  # l3_route on a gateway: above the routes it then takes
PRIO_LEAVE = 240  # l3_route on a gateway: out of the uplink, from an outside address
PRIO_PASS = 200
PRIO_FLOATING = 160
PRIO_SNAT = 150
PRIO_UPLINK = 200
PRIO_UPLINK_DROP = 100
PRIO_NOWHERE = 106  # ct_out: above the tenant's own subnets, which it may overlap
PRIO_NOT_EXTERNAL = 290  # acl on a gateway: below +inv, above everything else
PRIO_SPOOFED_INSIDE = PRIO_NOT_EXTERNAL
# Addresses that are nobody's outside: "this network", loopback, link-local,
# multicast, reserved and broadcast. Never sent out, never taken in as a source.
NOWHERE = tuple(IPv4Network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16",
                                          "224.0.0.0/4", "240.0.0.0/4"))


def _tenant_match(tid: int) -> dict[str, MatchValue]:
    return {"metadata": (tid, TENANT_MASK), "eth_type": ETH_IP}


def _entering(t: NsTenant) -> WriteMetadata:
    return WriteMetadata(t.tid | ROUTED_BIT, ROUTED_BIT | TENANT_MASK)


# -- hypervisors: the tenant's "exit" part ------------------------------------------


def exit_flows(view: NetworkView, tenant: str) -> Iterator[Flow]:
    """Shared by every hypervisor with a VM of `tenant`: mark what goes out, and
    send it to the tenant's exit."""
    t = ns_plan(view).tenants.get(tenant)
    if t is None:
        return
    owner = f"tenant:{tenant}"
    match = _tenant_match(t.tid)
    for net in NOWHERE:
        yield Flow("ct_out", PRIO_NOWHERE, Match.of(match, ipv4_dst=cidr(net)), (), owner)
    for seg in sorted(view.policy.tenants[tenant].segments.values(), key=lambda s: s.id):
        yield Flow("ct_out", PRIO_INTERNAL, Match.of(match, ipv4_dst=cidr(seg.subnet)),
                   (Ct(zone=REG_ZONE, table="acl"),), owner)
    yield Flow("ct_out", PRIO_MARK_OUT, Match.of(match),
               (SetField(REG_SIDE, SIDE_OUT), Ct(zone=REG_ZONE, table="acl")), owner)
    if t.exit is None:
        return  # nowhere to go: `l3_route` drops what is sent to a gateway MAC
    gateway = t.exit.switch
    label = view.fabric_labels[gateway]
    group = view.path_groups[gateway]
    for seg in t.segments:
        assert seg.vlan is not None
        yield Flow(
            "l3_route", PRIO_EXIT,
            Match.of({REG_SIDE: SIDE_OUT, REG_SEGMENT: seg.id},
                     metadata=(t.tid | ROUTED_BIT, ROUTED_BIT | TENANT_MASK),
                     eth_type=ETH_IP, eth_dst=gateway_mac(seg.id)),
            (DecTtl(), PushVlan(), SetField("vlan_vid", seg.vlan), PushMpls(),
             SetField("mpls_label", label), GroupAction(group)),
            owner,
        )


# -- gateways: their local part ----------------------------------------------------


def gateway_flows(view: NetworkView, switch: str) -> Iterator[Flow]:
    plan = ns_plan(view)
    yield from _trunk_ingress(view, plan, switch)
    for uplink in view.topology.switches[switch].uplinks:
        yield from _uplink(view, plan, uplink)
    yield Flow("ct_out", 110, Match.of(eth_type=ETH_IP, ip_frag=(1, 1)), (), "base")
    yield Flow("ct_out", 100, Match.of(eth_type=ETH_IP),
               (Ct(zone=REG_ZONE, nat=Nat(), table="acl"),), "base")
    yield Flow("acl", PRIO_INVALID, Match.of(ct_state="+inv+trk"), (), "base")
    for net in NOWHERE:  # spoofed sources from outside
        yield Flow("acl", PRIO_NOT_EXTERNAL,
                   Match.of({REG_SIDE: SIDE_IN}, eth_type=ETH_IP, ipv4_src=cidr(net)), (), "base")
    for state in ("+est+trk", "+rel+trk"):
        yield Flow("acl", PRIO_INVALID - 50, Match.of(ct_state=state, ct_mark=MARK_REVOKED),
                   (), "base")
    for state in ("+est+rpl+trk", "+rel+trk"):
        yield Flow("acl", PRIO_PASS, Match.of({REG_SIDE: SIDE_IN}, ct_state=state),
                   (Goto("l3_route"),), "base")
    for t in plan.tenants.values():
        if t.exit is not None and t.exit.switch == switch:
            yield from _going_out(view, t, t.exit)
        yield from _coming_in(view, t)


def gateway_meters(view: NetworkView, switch: str) -> Iterator[MeterBand]:
    if any(u.next_hop_mac is None for u in view.topology.switches[switch].uplinks):
        yield MeterBand(UPLINK_METER, UPLINK_ARP_PPS, UPLINK_ARP_BURST, "base", pktps=True)


def next_hop_mac(view: NetworkView, uplink: Uplink) -> str | None:
    """Configured, or learned from the next hop's ARP (the daemon's bindings)."""
    return uplink.next_hop_mac or view.bindings.neighbours.get(uplink.name)


def _trunk_ingress(view: NetworkView, plan: NsPlan, switch: str) -> Iterator[Flow]:
    """A tenant's frames sent here by its hypervisors: into the tenant's zone."""
    label = view.fabric_labels[switch]
    for trunk in view.trunk_ports(switch):
        for t in plan.tenants.values():
            for seg in t.segments:
                assert seg.vlan is not None  # `segments` are VLAN segments
                yield Flow(
                    "port_security", PRIO_UPLINK,
                    Match.of(in_port=trunk, vlan_vid=seg.vlan, eth_type=ETH_MPLS,
                             mpls_label=label),
                    (PopMpls(ETH_IP), PopVlan(), SetField(REG_SEGMENT, seg.id),
                     SetField(REG_ZONE, t.zone), SetField(REG_SIDE, SIDE_OUT), _entering(t),
                     Goto("ct_out")),
                    f"tenant:{t.name}",
                )


def _tagged(uplink: Uplink) -> MatchValue:
    return uplink.vlan if uplink.vlan is not None else 0


def _untag(uplink: Uplink) -> tuple[Action, ...]:
    return (PopVlan(),) if uplink.vlan is not None else ()


def _tag(uplink: Uplink) -> tuple[Action, ...]:
    if uplink.vlan is None:
        return ()
    return (PushVlan(), SetField("vlan_vid", uplink.vlan))


def _uplink(view: NetworkView, plan: NsPlan, uplink: Uplink) -> Iterator[Flow]:
    owner = f"uplink:{uplink.name}"
    port = uplink.port
    here: dict[str, MatchValue] = {"in_port": port, "vlan_vid": _tagged(uplink)}
    yield Flow("port_security", PRIO_UPLINK, Match.of(here, eth_type=ETH_ARP),
               (*_untag(uplink), Goto("arp")), owner)
    answered = [(uplink.ip.ip, None)] + [(a, t) for a, t in plan.on_exit(uplink)]
    for addr, t in answered:
        if t is not None:
            yield Flow(
                "port_security", PRIO_UPLINK,
                Match.of(here, eth_type=ETH_IP, eth_dst=uplink.mac, ipv4_dst=str(addr)),
                (*_untag(uplink), SetField(REG_ZONE, t.zone), SetField(REG_SIDE, SIDE_IN),
                 SetField("eth_dst", t.entry_mac), _entering(t), Goto("ct_out")),
                f"tenant:{t.name}",
            )
        yield Flow(
            "arp", PRIO_UPLINK,
            Match.of(in_port=port, eth_type=ETH_ARP, arp_op=ARP_REQUEST, arp_tpa=str(addr)),
            (Move("eth_src", "eth_dst"),
             SetField("eth_src", uplink.mac), SetField("arp_op", ARP_REPLY),
             Move("arp_sha", "arp_tha"), SetField("arp_sha", uplink.mac),
             Move("arp_spa", "arp_tpa"), SetField("arp_spa", str(addr)),
             *_tag(uplink), Output(OFPP_IN_PORT)),
            owner,
        )
    if uplink.next_hop_mac is None:
        # The next hop's answers to the controller's requests teach it the MAC (and
        # keep teaching it, should the router be replaced).
        yield Flow(
            "arp", PRIO_UPLINK - 1,
            Match.of(in_port=port, eth_type=ETH_ARP, arp_op=ARP_REPLY,
                     arp_spa=str(uplink.next_hop)),
            (Meter(UPLINK_METER), Output(OFPP_CONTROLLER)), owner,
        )
    yield Flow("port_security", PRIO_UPLINK_DROP, Match.of(in_port=port), (), owner)


def _out(view: NetworkView, uplink: Uplink) -> tuple[Action, ...] | None:
    mac = next_hop_mac(view, uplink)
    if mac is None:
        return None
    return (SetField("eth_src", uplink.mac), SetField("eth_dst", mac), *_tag(uplink),
            Output(uplink.port))


def _going_out(view: NetworkView, t: NsTenant, uplink: Uplink) -> Iterator[Flow]:
    """Translated in `acl`, sent out by `l3_route` only from one of the tenant's
    outside addresses: a commit that could not translate (the tenant's NAT zone
    full: OVS 3.1 then passes the packet on as it was) must not put an inside
    address on the wire."""
    out = _out(view, uplink)
    if out is None:
        return  # the next hop is not known yet: nothing can leave
    owner = f"tenant:{t.name}"
    inside = Match.of({REG_SIDE: SIDE_OUT, **_tenant_match(t.tid)})
    for state in ("+est+trk", "+rel+trk"):  # translated by ct_out's ct(nat)
        yield Flow("acl", PRIO_PASS, Match.of(inside.as_dict(), ct_state=state),
                   (Goto("l3_route"),), owner)
    new = Match.of(inside.as_dict(), ct_state="+new+trk")
    for vm, fip in t.floating:
        yield Flow(
            "acl", PRIO_FLOATING, Match.of(new.as_dict(), ipv4_src=str(vm.ip)),
            (Ct(zone=REG_ZONE, commit=True, mark=MARK_ALLOWED, nat=Nat("src", str(fip)),
                table="l3_route"),), f"vm:{vm.name}",
        )
    if t.snat is not None:
        yield Flow(
            "acl", PRIO_SNAT, new,
            (Ct(zone=REG_ZONE, commit=True, mark=MARK_ALLOWED,
                nat=Nat("src", str(t.snat.first), str(t.snat.last)), table="l3_route"),),
            owner,
        )
    for addr in t.addresses:
        yield Flow("l3_route", PRIO_LEAVE, Match.of(inside.as_dict(), ipv4_src=str(addr)), out,
                   owner)


def _coming_in(view: NetworkView, t: NsTenant) -> Iterator[Flow]:
    """The tenant's inbound rules, judged here where the connection starts."""
    owner = f"tenant:{t.name}"
    outside: dict[str, MatchValue] = {**_tenant_match(t.tid), REG_SIDE: SIDE_IN}
    # From outside, a source inside the tenant is a lie (external means outside
    # every segment of the tenant): it would reach the VM looking like a tenant-mate.
    for seg in sorted(view.policy.tenants[t.name].segments.values(), key=lambda s: s.id):
        yield Flow("acl", PRIO_SPOOFED_INSIDE, Match.of(outside, ipv4_src=cidr(seg.subnet)),
                   (), owner)
    yield Flow("acl", PRIO_TENANT_DEFAULT, Match.of({REG_SIDE: SIDE_IN},
                                                   metadata=(t.tid, TENANT_MASK)), (), owner)
    yield Flow("acl", PRIO_TENANT_REVOKE, Match.of(outside, ct_state="+est+trk"),
               (Ct(zone=REG_ZONE, commit=True, mark=MARK_REVOKED),), owner)
    floating = {vm.name: fip for vm, fip in t.floating}
    for vm, fip in t.floating:
        yield Flow(
            "l3_route", PRIO_DNAT,
            Match.of({REG_SIDE: SIDE_IN}, metadata=(t.tid | ROUTED_BIT, ROUTED_BIT | TENANT_MASK),
                     eth_type=ETH_IP, ct_state="+new+trk", ipv4_dst=str(fip)),
            (Ct(zone=REG_ZONE, commit=True, mark=MARK_ALLOWED, nat=Nat("dst", str(vm.ip)),
                table="l3_route"),),
            f"vm:{vm.name}",
        )
    clauses = Clauses()
    ids = rule_ids(view)
    for rule in tenant_rules(view, t.name):
        src = rule.src_net
        if src is None:
            continue
        targets = sorted(n for n in view.members(t.name, rule.dst) if n in floating)
        if not targets:
            continue
        cid = ids[rule]
        src_match = dict(outside) if src.prefixlen == 0 else dict(outside, ipv4_src=cidr(src))
        clauses.add(Match.of(src_match), Conjunction(cid, 1, 3), rule_owner(rule))
        for name in targets:
            vm = view.policy.vms[name]
            for addr in (floating[name], vm.ip):  # before and after translation
                clauses.add(Match.of(outside, ipv4_dst=str(addr)), Conjunction(cid, 2, 3),
                            f"vm:{name}")
        for s in rule.services:
            for m in service_matches(s):
                # Tenant and service only, as on hypervisors: with the side too, `any`
                # would be the very match of an `external` source clause, and one flow
                # may not carry two clauses of one conjunction.
                clauses.add(Match.of(m, metadata=(t.tid, TENANT_MASK)),
                            Conjunction(cid, 3, 3), rule_owner(rule))
        yield Flow("acl", PRIO_RULE, Match.of(conj_id=cid, eth_type=ETH_IP, ct_state="+new+trk"),
                   (Goto("l3_route"),), rule_owner(rule))
        yield Flow("acl", PRIO_RULE, Match.of(conj_id=cid, eth_type=ETH_IP, ct_state="+est+trk"),
                   (Ct(zone=REG_ZONE, commit=True, mark=MARK_ALLOWED), Goto("l3_route")),
                   rule_owner(rule))
    yield from clauses.flows()
