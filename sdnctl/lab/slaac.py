"""IPv6 in a lab VM, as a Linux guest boots it: the router's advertisement does the rest.

The lab builds its hosts with IPv6 off (nothing to say before the controller has
programmed the switches). `start_ipv6` turns it on in every VM whose segment has a
`subnet6`, the way a cloud image is set up for this controller (docs/policy.md,
"IPv6"): EUI-64 addresses, no privacy addresses, router advertisements accepted,
router solicitations every second until one is answered. A VM whose `ip6` is the
EUI-64 one takes it by SLAAC from the controller's advertisement; a VM with another
`ip6` has it set by hand (SLAAC cannot build it), and still takes its default
route and MTU from the advertisement. `wait_ipv6` waits until every such VM holds
its address (duplicate address detection done) and, in a segment with a
`gateway6`, its default route via the distributed router.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sdnctl.lab.plan import HOST_INTF, HostPlan, LabError

if TYPE_CHECKING:
    from mininet.node import Node

IPV6_TIMEOUT = 20.0  # seconds for every VM's address: DAD twice, a solicitation or two
POLL_S = 0.1

# What a guest needs (docs/policy.md): addresses port security knows, and eager
# router solicitation (the default is three, 4 s apart, then silence).
GUEST_SYSCTLS = {
    "addr_gen_mode": 0,  # eui64
    "use_tempaddr": 0,
    "accept_ra": 1,
    "router_solicitations": -1,
    "router_solicitation_interval": 1,
    "router_solicitation_max_interval": 1,
}


def start_ipv6(hosts: Mapping[str, Node], plans: Sequence[HostPlan],
               iface: str = HOST_INTF) -> list[str]:
    """Turn IPv6 on in every VM of `plans` that has an `ip6`; the VMs it did, by name."""
    started = []
    for h in plans:
        if h.ip6 is None:
            continue
        knobs = dict(GUEST_SYSCTLS, autoconf=1 if h.slaac else 0, disable_ipv6=0)
        host = hosts[h.vm]
        host.cmd("sysctl -qw " + " ".join(f"net.ipv6.conf.{iface}.{k}={v}"
                                          for k, v in knobs.items()))
        if not h.slaac:
            out = host.cmd(f"ip -6 addr add {h.ip6}/{h.prefixlen6} dev {iface}")
            if out.strip():
                raise LabError(f"{h.vm}: cannot set {h.ip6}/{h.prefixlen6}: {out.strip()}")
        started.append(h.vm)
    return started


def ipv6_ready(host: Node, h: HostPlan, iface: str = HOST_INTF) -> bool:
    """Whether the VM holds its `ip6` (not tentative) and, when its segment has a
    `gateway6`, a default route via the router's link-local address."""
    addresses = host.cmd(f"ip -6 addr show dev {iface}")
    line = next((x for x in addresses.splitlines() if f" {h.ip6}/{h.prefixlen6} " in x), None)
    if line is None or "tentative" in line:
        return False
    if h.gateway6 is None:
        return True
    return f"via {h.router6} " in host.cmd("ip -6 route show default")


def wait_ipv6(hosts: Mapping[str, Node], plans: Sequence[HostPlan], names: Sequence[str],
              timeout: float = IPV6_TIMEOUT, iface: str = HOST_INTF) -> dict[str, float]:
    """Seconds until each VM in `names` was ready (`ipv6_ready`); LabError naming
    the VMs that were not after `timeout`."""
    by_vm = {h.vm: h for h in plans}
    started = time.monotonic()
    pending, ready = list(names), {}
    while pending and time.monotonic() - started < timeout:
        for vm in list(pending):
            if ipv6_ready(hosts[vm], by_vm[vm], iface):
                ready[vm] = time.monotonic() - started
                pending.remove(vm)
        if pending:
            time.sleep(POLL_S)
    if pending:
        details = "; ".join(
            f"{vm} (wants {by_vm[vm].ip6}/{by_vm[vm].prefixlen6}"
            + (f" via {by_vm[vm].router6}" if by_vm[vm].gateway6 else "")
            + f"): {' '.join(hosts[vm].cmd(f'ip -6 -br addr show dev {iface}').split())}"
            for vm in pending)
        raise LabError(f"no IPv6 after {timeout:.0f} s: {details}")
    return ready
