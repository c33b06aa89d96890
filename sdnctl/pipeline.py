"""The OpenFlow 1.3 pipeline, declared once as data.

Every stage has a name, one job, and the stages it may `goto`. Table ids come
from the position in `PIPELINE` only; code, golden files and `explain` speak of
stages by name. `sdnctl.flows.Flow` checks each goto against this declaration.

Registers (ovs-fields(7)) carried between stages:

- `metadata`: tenant id (`tenant_id()`), so overlapping subnets never meet.
- `reg4`: which side of the data centre's edge the packet is going to or coming from
  (`SIDE_*`): 0 between VMs, 1 towards outside (a VM's packet to an external
  address), 2 from outside (entered through a gateway uplink).
- `reg5`: conntrack zone of the VM the packet came from (its OpenFlow port number).
- `reg6`: the segment (`Segment.id`: its VLAN, or 2**24 + its VNI) the packet lives in.
- `reg7`: the local VM port a packet is being delivered to.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    job: str
    next: tuple[str, ...]  # stages this one may goto


PIPELINE: tuple[Stage, ...] = (
    Stage(
        "port_security",
        "classify by in_port; drop frames whose MAC, IP, ARP sender or tag is not the bound "
        "VM's; load tenant/segment/zone; meter the VM; untag frames from trunks; "
        "the bound VM's DHCP requests go through its DHCP meter to `dhcp`, DHCP answers "
        "from a VM are dropped; its IPv6 neighbour and router solicitations go through its "
        "ND meter to `dhcp`; other ICMPv6 but echo and errors is dropped",
        ("arp", "ct_out", "l2_forward", "dhcp"),
    ),
    Stage("arp", "answer ARP for VMs and gateways from the bindings; drop the rest", ()),
    Stage("ct_out", "send IP from a VM through conntrack in the VM's zone (marking what goes "
          "outside the tenant); on a gateway, through the tenant's zone, translated",
          ("acl",)),
    Stage(
        "acl",
        "established/related pass; new connections pass only if a rule (conjunction) or "
        "the tenant default allows them, and are committed in the source zone. On a "
        "gateway: what goes out is committed with source NAT and sent out of the uplink; "
        "what comes in is judged by the tenant's inbound rules",
        ("l3_route",),
    ),
    Stage(
        "l3_route",
        "distributed router: frames to a gateway MAC are routed to the destination VM's "
        "segment (TTL decremented, MACs rewritten), or to the tenant's exit gateway when "
        "going out; others stay in their segment. On a gateway: a new connection to a "
        "floating IP is committed with destination NAT and routed again, translated",
        ("l2_forward", "l3_route"),
    ),
    Stage(
        "l2_forward",
        "by segment and destination MAC: deliver to a local VM or send tagged towards "
        "the VM's hypervisor (fast-failover group)",
        ("ct_in",),
    ),
    Stage("ct_in", "send IP towards a local VM through conntrack in that VM's zone", ("deliver",)),
    Stage("deliver",
          "commit new connections in the destination zone, drop revoked ones, output to the VM",
          ()),
    # Last, so that adding it renumbered no table: a stage's place is not its order of use.
    Stage("dhcp",
          "DHCP requests, neighbour and router solicitations from bound VMs: through the "
          "switch's DHCP or ND meter to the controller, which answers from the policy",
          ()),
)

STAGE_BY_NAME: dict[str, Stage] = {s.name: s for s in PIPELINE}
TABLE_ID: dict[str, int] = {s.name: i for i, s in enumerate(PIPELINE)}
STAGE_OF_TABLE: dict[int, str] = {i: s.name for i, s in enumerate(PIPELINE)}

REG_SIDE = "reg4"
SIDE_INSIDE = 0
SIDE_OUT = 1  # a VM's packet for an address outside its tenant
SIDE_IN = 2  # a packet from outside, through a gateway uplink
REG_ZONE = "reg5"
REG_SEGMENT = "reg6"
REG_OUT_PORT = "reg7"
METADATA_MASK = 0xFFFFFFFF
# ct_mark of a connection in its opener's zone: `acl` sets MARK_REVOKED on an
# established connection no rule allows any more, and `deliver` then drops its
# replies; an allowed packet commits MARK_ALLOWED again.
MARK_ALLOWED = 0
MARK_REVOKED = 1


def table_id(stage: str) -> int:
    return TABLE_ID[stage]


def check_goto(src: str, dst: str) -> None:
    """Raise ValueError unless the pipeline declares `src -> dst`."""
    if dst not in STAGE_BY_NAME[src].next:
        raise ValueError(f"stage {src} may not goto {dst} (allowed: {STAGE_BY_NAME[src].next})")


def tenant_id(tenant: str) -> int:
    """A stable 32-bit id for a tenant, derived from its name alone.

    Derived rather than numbered so that adding a tenant never renumbers others
    (which would rewrite every flow of every tenant on an edit). The policy loader
    refuses the astronomically unlikely collision.
    """
    return zlib.crc32(tenant.encode()) or 1


def gateway_mac(segment_id: int) -> str:
    """The MAC the distributed router answers with for a segment's gateway.

    `0e:` is locally administered unicast; `0e:00` then the 32-bit segment id
    (`Segment.id`) makes it unique per segment: a VLAN segment's gateway is
    `0e:00:00:00:` + its VLAN, an overlay-only segment's `0e:00:01:` + its VNI.
    The policy loader refuses VM MACs in both ranges.
    """
    raw = f"{segment_id:08x}"
    return "0e:00:" + ":".join(raw[i:i + 2] for i in range(0, 8, 2))


GATEWAY_MAC_PREFIX = "0e:00:00:00:"  # gateways of VLAN segments
OVERLAY_GATEWAY_MAC_PREFIX = "0e:00:01:"  # gateways of overlay-only segments
