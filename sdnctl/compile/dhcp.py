"""Stage `dhcp`, and the port-security flows that lead to it: the metered controller path.

The only path to the controller, for two things the controller answers from the
policy: DHCP, and the distributed router's "time exceeded". From a VM port, the
bound VM's own DHCP client messages (UDP 68->67, from its MAC, from 0.0.0.0 or its
own address), and its packets to its segment's gateway MAC whose TTL is 1 (a
router would have to discard them: traceroute's first hop, `ping -t 1`), go
through a per-VM meter (`port_security`), then through the switch's meter
(`dhcp`), then to the controller, which answers on that port (`sdnctl.app.dhcp`). OpenFlow 1.3
allows one meter instruction per flow, hence two stages. A storm from one VM is
cut to its own rate in the switch; a storm from many to the switch's rate; the
controller never sees more than that. DHCP server messages (UDP source port 67)
from a VM port are dropped: no VM answers for the network.

Cost: 3 flows per local VM (4 on a routed segment), 2 flows and 1 + (local VMs)
meters per hypervisor. The two kinds share the meters: a VM's DHCP and its expired
packets together get 5 a second.
"""

from __future__ import annotations

from collections.abc import Iterator

from sdnctl.compile.context import LocalVM, NetworkView
from sdnctl.flows import OFPP_CONTROLLER, Flow, Goto, Match, MatchValue, Meter, MeterBand, Output
from sdnctl.pipeline import gateway_mac

ETH_IP = 0x0800
UDP = 17
DHCP_CLIENT_PORT = 68
DHCP_SERVER_PORT = 67
PRIO_DHCP = 250  # above port security's allow (200): decided before any other IP flow
PRIO_TTL = 240  # below DHCP (a renewal sent to the gateway is DHCP), above the allow
TTL_EXPIRES = 1  # what dec_ttl would discard; OVS cannot mask nw_ttl, and a TTL of 0
# (which no sender should use) is left to dec_ttl, which drops it silently

# Meter ids: a VM's rate-limit meter is its port number (< 0xFF00); the DHCP meters
# sit above all of those, and stay below OVS's userspace limit of 2**18 meters.
DHCP_METER_BASE = 0x20000
SWITCH_DHCP_METER = DHCP_METER_BASE  # port 0 is no VM's
# A real client sends a handful of messages a minute; a VM gets a burst of 10 and 5
# a second after that, a switch 100 a second, which one Python controller answers
# without breaking step.
VM_DHCP_PPS, VM_DHCP_BURST = 5, 10
SWITCH_DHCP_PPS, SWITCH_DHCP_BURST = 100, 100


def vm_dhcp_meter(port: int) -> int:
    return DHCP_METER_BASE + port


def dhcp_port_flows(lv: LocalVM) -> Iterator[Flow]:
    """Port security's DHCP flows for one local VM (stage `port_security`)."""
    vm, port = lv.vm, lv.port
    owner = f"vm:{vm.name}"
    request: dict[str, MatchValue] = {
        "in_port": port, "eth_src": vm.mac, "vlan_vid": 0, "eth_type": ETH_IP,
        "ip_proto": UDP, "udp_src": DHCP_CLIENT_PORT, "udp_dst": DHCP_SERVER_PORT}
    for source in ("0.0.0.0", str(vm.ip)):  # asking for a lease; renewing one
        yield Flow("port_security", PRIO_DHCP, Match.of(request, ipv4_src=source),
                   (Meter(vm_dhcp_meter(port)), Goto("dhcp")), owner)
    # A VM answering as a DHCP server, whatever addresses it claims.
    yield Flow("port_security", PRIO_DHCP,
               Match.of(in_port=port, eth_type=ETH_IP, ip_proto=UDP, udp_src=DHCP_SERVER_PORT),
               (), owner)
    if lv.segment.routed:  # its own packets that the router would let expire
        yield Flow("port_security", PRIO_TTL,
                   Match.of(in_port=port, eth_src=vm.mac, vlan_vid=0, eth_type=ETH_IP,
                            ipv4_src=str(vm.ip), eth_dst=gateway_mac(lv.segment.id),
                            ip_ttl=TTL_EXPIRES),
                   (Meter(vm_dhcp_meter(port)), Goto("dhcp")), owner)


def compile_dhcp(view: NetworkView, switch: str) -> Iterator[Flow]:
    """Stage `dhcp`: two flows per hypervisor with VMs (the controller tells DHCP from
    expired packets by what the packet is)."""
    if not view.local_vms(switch):
        return
    to_controller = (Meter(SWITCH_DHCP_METER), Output(OFPP_CONTROLLER))
    yield Flow("dhcp", 100,
               Match.of(eth_type=ETH_IP, ip_proto=UDP, udp_dst=DHCP_SERVER_PORT),
               to_controller, "base")
    yield Flow("dhcp", 90, Match.of(eth_type=ETH_IP, ip_ttl=TTL_EXPIRES), to_controller, "base")


def dhcp_meters(view: NetworkView, switch: str) -> Iterator[MeterBand]:
    local = view.local_vms(switch)
    if not local:
        return
    yield MeterBand(SWITCH_DHCP_METER, SWITCH_DHCP_PPS, SWITCH_DHCP_BURST, "base", pktps=True)
    for lv in local:
        yield MeterBand(vm_dhcp_meter(lv.port), VM_DHCP_PPS, VM_DHCP_BURST,
                        f"vm:{lv.vm.name}", pktps=True)
