"""Stages `ct_out`, `ct_in` and `deliver`: conntrack on both ends of a connection.

A connection is tracked in the zone of the VM that sends (`ct_out`, zone from
reg5) and again in the zone of the VM that receives (`ct_in`/`deliver`, zone =
its port), so a reply is `+est` wherever it enters a pipeline, whether the two
VMs share a hypervisor or not. One zone per VM port keeps tenants with
overlapping addresses apart.

IP fragments are dropped before either conntrack: OVS 3.1's userspace conntrack
holds fragments to reassemble them and later hands held ones (expired or left
over) to whatever batch of packets passes conntrack next, anywhere in the
datapath, which then takes that batch's actions: a fragment the ACL would
refuse can leave through another connection's `output` (measured: the
ip-fragments attack followed 15 s later by an allowed ping reached `rf2`). A
fragment that never reaches conntrack is never held. Fragmented traffic is
therefore not carried at all (fail closed); VMs are given an MTU that fits.
IPv6 is tracked the same way, in the same zones, with its fragments (any packet
with a fragment header) dropped first too; its flows exist only for VMs with an
IPv6 address, so a policy without `subnet6` compiles as it did before.

`deliver` also drops what arrives for a connection revoked in the receiver's zone
(ct_mark set by the `acl` stage where the receiver opened it): the replies of a
connection an edit no longer allows.
"""

from __future__ import annotations

from collections.abc import Iterator

from sdnctl.compile.context import LocalVM, NetworkView
from sdnctl.compile.nd import has_ip6
from sdnctl.flows import Ct, Flow, Match, Output
from sdnctl.pipeline import MARK_REVOKED, REG_OUT_PORT, REG_ZONE

PRIO_REVOKED = 250
PRIO_FRAGMENT = 110  # above the conntrack flows of ct_out and ct_in (100)

ETH_IP = 0x0800


ETH_IP6 = 0x86DD


def families(lv: LocalVM) -> tuple[int, ...]:
    """The ethertypes a local VM is tracked in: IPv4, and IPv6 if it has an address."""
    return (ETH_IP, ETH_IP6) if has_ip6(lv) else (ETH_IP,)


def fragments(eth: int) -> Match:
    """Every fragment of the family (OVS's ip_frag bit 0: an IPv4 fragment, or IPv6
    with a fragment header)."""
    return Match.of(eth_type=eth, ip_frag=(1, 1))


def _switch_families(view: NetworkView, switch: str) -> tuple[int, ...]:
    local = view.local_vms(switch)
    if not local:
        return ()
    return (ETH_IP, ETH_IP6) if any(has_ip6(lv) for lv in local) else (ETH_IP,)


def compile_ct_out(view: NetworkView, switch: str) -> Iterator[Flow]:
    for eth in _switch_families(view, switch):
        yield Flow("ct_out", PRIO_FRAGMENT, fragments(eth), (), "base")
        yield Flow(
            "ct_out", 100, Match.of(eth_type=eth), (Ct(zone=REG_ZONE, table="acl"),), "base"
        )


def compile_ct_in(view: NetworkView, switch: str) -> Iterator[Flow]:
    for eth in _switch_families(view, switch):
        yield Flow("ct_in", PRIO_FRAGMENT, fragments(eth), (), "base")
    for lv in view.local_vms(switch):
        for eth in families(lv):
            yield Flow(
                "ct_in", 100, Match.of({REG_OUT_PORT: lv.port}, eth_type=eth),
                (Ct(zone=lv.port, table="deliver"),), f"vm:{lv.vm.name}",
            )


def compile_deliver(view: NetworkView, switch: str) -> Iterator[Flow]:
    for eth in _switch_families(view, switch):
        for state in ("+est+trk", "+rel+trk"):
            yield Flow("deliver", PRIO_REVOKED,
                       Match.of(eth_type=eth, ct_state=state, ct_mark=MARK_REVOKED), (),
                       "base")
    for lv in view.local_vms(switch):
        owner = f"vm:{lv.vm.name}"
        for eth in families(lv):
            to_vm = {REG_OUT_PORT: lv.port, "eth_type": eth}
            yield Flow(
                "deliver", 200, Match.of(to_vm, ct_state="+new+trk"),
                (Ct(zone=lv.port, commit=True), Output(lv.port)), owner,
            )
            for state in ("+est+trk", "+rel+trk"):
                yield Flow("deliver", 200, Match.of(to_vm, ct_state=state),
                           (Output(lv.port),), owner)
