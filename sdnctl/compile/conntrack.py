"""Stages `ct_out`, `ct_in` and `deliver`: conntrack on both ends of a connection.

A connection is tracked in the zone of the VM that sends (`ct_out`, zone from
reg5) and again in the zone of the VM that receives (`ct_in`/`deliver`, zone =
its port), so a reply is `+est` wherever it enters a pipeline, whether the two
VMs share a hypervisor or not. One zone per VM port keeps tenants with
overlapping addresses apart.

`deliver` also drops what arrives for a connection revoked in the receiver's zone
(ct_mark set by the `acl` stage where the receiver opened it): the replies of a
connection an edit no longer allows.
"""

from __future__ import annotations

from collections.abc import Iterator

from sdnctl.compile.context import NetworkView
from sdnctl.flows import Ct, Flow, Match, Output
from sdnctl.pipeline import MARK_REVOKED, REG_OUT_PORT, REG_ZONE

PRIO_REVOKED = 250

ETH_IP = 0x0800


def compile_ct_out(view: NetworkView, switch: str) -> Iterator[Flow]:
    if view.local_vms(switch):
        yield Flow(
            "ct_out", 100, Match.of(eth_type=ETH_IP), (Ct(zone=REG_ZONE, table="acl"),), "base"
        )


def compile_ct_in(view: NetworkView, switch: str) -> Iterator[Flow]:
    for lv in view.local_vms(switch):
        yield Flow(
            "ct_in", 100, Match.of({REG_OUT_PORT: lv.port}, eth_type=ETH_IP),
            (Ct(zone=lv.port, table="deliver"),), f"vm:{lv.vm.name}",
        )


def compile_deliver(view: NetworkView, switch: str) -> Iterator[Flow]:
    if view.local_vms(switch):
        for state in ("+est+trk", "+rel+trk"):
            yield Flow("deliver", PRIO_REVOKED,
                       Match.of(eth_type=ETH_IP, ct_state=state, ct_mark=MARK_REVOKED), (),
                       "base")
    for lv in view.local_vms(switch):
        owner = f"vm:{lv.vm.name}"
        to_vm = {REG_OUT_PORT: lv.port, "eth_type": ETH_IP}
        yield Flow(
            "deliver", 200, Match.of(to_vm, ct_state="+new+trk"),
            (Ct(zone=lv.port, commit=True), Output(lv.port)), owner,
        )
        for state in ("+est+trk", "+rel+trk"):
            yield Flow("deliver", 200, Match.of(to_vm, ct_state=state), (Output(lv.port),), owner)
