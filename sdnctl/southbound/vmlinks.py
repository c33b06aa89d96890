"""The kernel side of VM wiring, with pyroute2: taps, veth pairs into namespaces, the
VM's address, default route and neighbour cache, and the namespaces themselves.

Each function compares what exists with what should and changes only the difference,
appending one line per change to `changes` (so a second run reports nothing).
`ethtool` and `sysctl` inside a namespace go through `ip netns exec`: the ioctl and
/proc paths they use belong to the namespace of the calling thread.
"""

from __future__ import annotations

import contextlib
import enum
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from socket import AF_INET
from typing import Any

from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns
from pyroute2.netlink.rtnl.ndmsg import NUD_FAILED, NUD_INCOMPLETE, NUD_NOARP, NUD_STALE

from sdnctl.tools import require

STANDBY_METRIC = 1  # a new interface's default route while the old one still exists
_IFF_UP = 1


class Refused(Exception):
    """What the policy, the topology or the current wiring does not allow (exit 2)."""


class WireError(Exception):
    """The system could not do what was asked (exit 1)."""


class Kind(enum.StrEnum):
    TAP = "tap"
    NETNS = "netns"


@dataclass(frozen=True, slots=True)
class Attachment:
    """One way a VM is attached: the host end, and for a namespace its far end."""

    kind: Kind
    host_if: str
    netns: str | None = None
    guest_if: str | None = None


class Kernel:
    """pyroute2 handles on the host namespace and, if any, the VM's namespace."""

    def __init__(self, netns: str | None, create: bool) -> None:
        self.created = False
        if netns and netns not in pr_netns.listnetns():
            if not create:
                raise WireError(f"namespace {netns} does not exist")
            pr_netns.create(netns)
            self.created = True
        self.host = IPRoute()
        self.guest = IPRoute(netns=netns, flags=0) if netns else None

    def close(self) -> None:
        self.host.close()
        if self.guest is not None:
            self.guest.close()


@contextlib.contextmanager
def kernel(netns: str | None, create: bool = False) -> Iterator[Kernel]:
    k = Kernel(netns, create)
    try:
        yield k
    finally:
        k.close()


def get_link(ipr: IPRoute, name: str) -> Any:
    idx = ipr.link_lookup(ifname=name)
    return ipr.link("get", index=idx[0])[0] if idx else None


def link_kind(link: Any) -> str | None:
    info = link.get("IFLA_LINKINFO")
    return info.get("IFLA_INFO_KIND") if info else None


def _settle(ipr: IPRoute, link: Any, label: str, mac: str | None, mtu: int,
            changes: list[str]) -> None:
    """MAC (if given), MTU and up, each only if it differs."""
    wanted: dict[str, Any] = {}
    if mac and link.get("IFLA_ADDRESS") != mac:
        wanted["address"] = mac
    if link.get("IFLA_MTU") != mtu:
        wanted["mtu"] = mtu
    if not link["flags"] & _IFF_UP:
        wanted["state"] = "up"
    if wanted:
        ipr.link("set", index=link["index"], **wanted)
        shown = ", ".join(f"{k} {v}" for k, v in wanted.items()).replace("address", "mac")
        changes.append(f"{label}: set {shown}")


def _quiet_ipv6(netns: str | None, ifname: str) -> None:
    """IPv6 off before the link goes up: the policy is IPv4-only and port security
    would drop the router solicitations and DAD probes anyway."""
    if netns is None:
        knob = Path("/proc/sys/net/ipv6/conf", ifname, "disable_ipv6")
        if knob.exists():
            knob.write_text("1")
    else:
        _ns_exec(netns, "sysctl", "-qw", f"net/ipv6/conf/{ifname}/disable_ipv6=1", check=False)


def _ns_exec(netns: str, *argv: str, check: bool = True) -> str:
    done = subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True,
                          text=True, timeout=10, check=False)
    if check and done.returncode != 0:
        raise WireError(f"{' '.join(argv)} in namespace {netns}: {done.stderr.strip()}")
    return done.stdout


def ensure_link(k: Kernel, att: Attachment, mac: str | None, mtu: int, changes: list[str]) -> bool:
    """The attachment's link(s) exist with MAC (on the VM's side), MTU and up; True if
    (re)created. Refused if the namespace holds another VM's interface of that name."""
    link = get_link(k.host, att.host_if)
    created = False
    if att.kind is Kind.TAP:
        if link is not None and link_kind(link) != "tun":
            k.host.link("del", index=link["index"])
            changes.append(f"deleted {att.host_if} (a {link_kind(link)} device, not a tap)")
            link = None
        if link is None:
            k.host.link("add", ifname=att.host_if, kind="tuntap", mode="tap",
                        ifr={"no_pi": True})
            _quiet_ipv6(None, att.host_if)
            changes.append(f"created tap {att.host_if}")
            link, created = get_link(k.host, att.host_if), True
        _settle(k.host, link, att.host_if, mac, mtu, changes)
        return created

    assert k.guest is not None and att.netns and att.guest_if
    guest = get_link(k.guest, att.guest_if)
    paired = (link is not None and guest is not None and link_kind(link) == "veth"
              and link.get("IFLA_LINK") == guest["index"]
              and guest.get("IFLA_LINK") == link["index"])
    if guest is not None and not paired:
        raise Refused(f"namespace {att.netns} already has an interface {att.guest_if} that is "
                      "not paired with " + att.host_if + " (one VM per namespace)")
    if link is not None and not paired:
        k.host.link("del", index=link["index"])
        changes.append(f"deleted {att.host_if} (not paired with {att.netns}:{att.guest_if})")
    if not paired:
        k.host.link("add", ifname=att.host_if, kind="veth",
                    peer={"ifname": att.guest_if, "net_ns_fd": att.netns})
        _quiet_ipv6(None, att.host_if)
        _quiet_ipv6(att.netns, att.guest_if)
        changes.append(f"created veth {att.host_if} <-> {att.netns}:{att.guest_if}")
        link, guest, created = get_link(k.host, att.host_if), get_link(k.guest, att.guest_if), True
    _settle(k.host, link, att.host_if, None, mtu, changes)
    _settle(k.guest, guest, f"{att.netns}:{att.guest_if}", mac, mtu, changes)
    return created


def configure_guest(k: Kernel, att: Attachment, address: IPv4Interface,
                    gateway: IPv4Address | None, metric: int, changes: list[str]) -> None:
    """lo up; the VM's address; default route via the gateway; tx offload off."""
    assert k.guest is not None and att.netns and att.guest_if
    where = f"{att.netns}:{att.guest_if}"
    lo = get_link(k.guest, "lo")
    if lo is not None and not lo["flags"] & _IFF_UP:
        k.guest.link("set", index=lo["index"], state="up")
        changes.append(f"{att.netns}:lo: set state up")
    index = k.guest.link_lookup(ifname=att.guest_if)[0]
    have = {(a.get("IFA_ADDRESS"), a["prefixlen"])
            for a in k.guest.get_addr(family=AF_INET, index=index)}
    ip, plen = str(address.ip), address.network.prefixlen
    if (ip, plen) not in have:
        k.guest.addr("add", index=index, address=ip, prefixlen=plen)
        changes.append(f"{where}: added address {address}")
    if gateway is not None:
        _ensure_default_route(k.guest, str(gateway), index, metric, where, changes)
    features = _ns_exec(att.netns, "ethtool", "-k", att.guest_if)
    if re.search(r"^tx-checksumming: on", features, re.M):
        _ns_exec(att.netns, "ethtool", "-K", att.guest_if, "tx", "off")
        changes.append(f"{where}: tx checksum offload off")


def _default_routes(ipr: IPRoute) -> list[tuple[str | None, int | None, int]]:
    return [(r.get("RTA_GATEWAY"), r.get("RTA_OIF"), r.get("RTA_PRIORITY") or 0)
            for r in ipr.route("dump", family=AF_INET)
            if r["dst_len"] == 0 and r.get("RTA_TABLE") == 254]


def _ensure_default_route(ipr: IPRoute, gateway: str, oif: int, metric: int, where: str,
                          changes: list[str]) -> None:
    """Default route via `gateway` out of `oif` at `metric`; at metric 0, the standby
    route of a finished migration goes."""
    routes = _default_routes(ipr)
    if (gateway, oif, metric) not in routes:
        ipr.route("replace", dst="default", gateway=gateway, oif=oif, priority=metric)
        changes.append(f"{where}: default route via {gateway}"
                       + (f" (metric {metric})" if metric else ""))
    if metric == 0 and (gateway, oif, STANDBY_METRIC) in routes:
        ipr.route("del", dst="default", gateway=gateway, oif=oif, priority=STANDBY_METRIC)


def copy_neighbours(ipr: IPRoute, old: int, new: int) -> int:
    """Copy the old interface's resolved ARP entries to the new one as STALE: the VM
    sends at once and re-confirms them later, instead of waiting on ARP."""
    n = 0
    for entry in ipr.neigh("dump", family=AF_INET):
        dst, lladdr = entry.get("NDA_DST"), entry.get("NDA_LLADDR")
        bad = entry["state"] & (NUD_FAILED | NUD_INCOMPLETE | NUD_NOARP)
        if entry["ifindex"] != old or not dst or not lladdr or bad:
            continue
        ipr.neigh("replace", dst=dst, lladdr=lladdr, ifindex=new, state=NUD_STALE)
        n += 1
    return n


def remove_netns_if_empty(netns: str, changes: list[str], notes: list[str]) -> None:
    """Remove `netns` unless something still lives in it (interfaces, processes)."""
    if netns not in pr_netns.listnetns():
        return
    with IPRoute(netns=netns, flags=0) as ipr:
        links = sorted(link.get("IFLA_IFNAME") for link in ipr.link("dump"))
    others = [name for name in links if name != "lo"]
    pids = pr_netns.ns_pids().get(netns, [])
    if others or pids:
        why = ", ".join([f"interfaces {', '.join(others)}"] * bool(others)
                        + [f"{len(pids)} processes"] * bool(pids))
        notes.append(f"kept namespace {netns}: it still has {why}")
        return
    pr_netns.remove(netns)
    changes.append(f"removed namespace {netns}")


def settle_route(ipr: IPRoute, gateway: str, att: Attachment, changes: list[str]) -> None:
    """The interface's standby default route becomes the default (metric 0)."""
    assert att.guest_if
    oif = ipr.link_lookup(ifname=att.guest_if)[0]
    _ensure_default_route(ipr, gateway, oif, 0, f"{att.netns}:{att.guest_if}", changes)


def drop_strays(ipr: IPRoute, names: tuple[str, ...], keep: str, changes: list[str]) -> None:
    """Delete the links named `names` other than `keep`: leftovers of an interrupted
    migration (a veth takes its namespace end, with its address and routes, along)."""
    for name in names:
        link = get_link(ipr, name)
        if name != keep and link is not None:
            ipr.link("del", index=link["index"])
            changes.append(f"deleted {name} (left over)")


def require_tools() -> None:
    """Namespaces need `ip` (for `ip netns exec`) and `ethtool`: check before touching
    anything rather than fail half-way."""
    require("ip", "ethtool", what="a VM in a namespace", error=WireError)
