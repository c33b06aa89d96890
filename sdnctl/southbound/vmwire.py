"""VM wiring for `sdnctl vm plug | unplug | migrate`: what to do, in which order.

The kernel side (pyroute2) is in `vmlinks`, the OVSDB side in `ovsdb_write`.

Plug creates the VM's interface and binds it:
- `--tap` (a real hypervisor): a persistent tap carrying the VM's MAC, for the
  hypervisor to attach the guest to;
- `--netns NS` (labs): a veth pair whose far end sits in namespace NS (created if
  missing) with the VM's MAC, IP/prefix and default route via the segment's gateway
  (if it has one), IPv6 off and tx checksum offload off (TCP through the userspace
  datapath needs it).
The host end joins the bridge of the VM's switch (the bridge whose datapath id is the
switch's dpid, or `--bridge`) with `external_ids:vm-id` and `attached-mac`, which is
what the daemon binds, plus `sdnctl-*` keys that let unplug and migrate find the
namespace again and know whether plug created it.

Names (at most 15 characters, stable): a VM name of up to 10 letters, digits, `_`
or `-` is its own key; any other name keys as its first 4 characters (others as
`_`) + `.` + 5 hex digits of its SHA-256, so the two forms never collide. Each VM has
two name slots, used alternately by successive migrations: host end `vm-KEY` with
`eth0` in the namespace, and `vm-KEY.m` with `eth1`.

Migration makes the new interface before it breaks the old one: the new link is
fully configured and added to the new bridge with no vm-id, then ONE OVSDB
transaction sets vm-id on it and deletes the old port. The daemon thus never sees
the VM claimed by two ports (which it cannot bind both) nor by none, and the move
costs only the controller's reprogramming (measured: 10-40 ms of ping loss). In a
namespace the new veth is created beside the old one with the same address (the
kernel keeps using the old routes, added first), a standby default route (metric 1)
and a copy of the old neighbour cache (no ARP round trip); deleting the old pair then
hands everything to the new interface at once, and the default route gets metric 0.

Everything is idempotent: each step compares what exists with what should and
changes only the difference, and says what it changed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from sdnctl.policy.model import Policy
from sdnctl.southbound.ovsdb_write import (
    NewPort,
    OvsdbError,
    OvsdbWriter,
    PortChanges,
    PortInfo,
    binding_ids,
)
from sdnctl.southbound.vmlinks import (
    STANDBY_METRIC,
    Attachment,
    Kind,
    Refused,
    WireError,
    configure_guest,
    copy_neighbours,
    drop_strays,
    ensure_link,
    get_link,
    kernel,
    remove_netns_if_empty,
    require_tools,
    settle_route,
)
from sdnctl.topology.model import Role, Topology

DEFAULT_MTU = 1500
KIND_KEY = "sdnctl-kind"  # tap | netns
NETNS_KEY = "sdnctl-netns"
CREATED_KEY = "sdnctl-netns-created"  # "true": plug made the namespace, unplug may remove it
GUEST_IFNAMES = ("eth0", "eth1")
_LITERAL_KEY = re.compile(r"^[A-Za-z0-9_-]{1,10}$")


# ---- names and what the policy says (pure) -------------------------------------------


def vm_key(vm: str) -> str:
    if _LITERAL_KEY.match(vm):
        return vm
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", vm)[:4]
    return f"{prefix}.{hashlib.sha256(vm.encode()).hexdigest()[:5]}"


def host_ifnames(vm: str) -> tuple[str, str]:
    """The VM's two host-side interface names (slot 0, slot 1)."""
    key = vm_key(vm)
    return f"vm-{key}", f"vm-{key}.m"


@dataclass(frozen=True, slots=True)
class VmTarget:
    """A VM and the hypervisor switch it goes to, as the policy and topology say."""

    vm: str
    mac: str
    address: IPv4Interface  # IP/prefix of its segment
    gateway: IPv4Address | None
    switch: str
    dpid: int


def _listing(names: Any, limit: int = 12) -> str:
    items = sorted(names)
    return ", ".join(items[:limit]) + (", ..." if len(items) > limit else "")


def resolve_vm(policy: Policy, vm: str) -> None:
    if vm not in policy.vms:
        raise Refused(f"{policy.source}: unknown VM {vm!r} (known: {_listing(policy.vms)})")


def resolve_target(policy: Policy, topology: Topology, vm: str, switch: str | None) -> VmTarget:
    """The VM and its switch (the policy's `host` when `switch` is None); Refused if unknown."""
    resolve_vm(policy, vm)
    spec = policy.vms[vm]
    switch = switch or spec.host
    if switch is None:
        raise Refused(f"{policy.source}: vm {vm} has no host: give --host SWITCH")
    sw = topology.switches.get(switch)
    if sw is None:
        raise Refused(f"{topology.source}: unknown switch {switch!r} "
                      f"(known: {_listing(topology.switches)})")
    if sw.role is not Role.HYPERVISOR:
        raise Refused(f"{topology.source}: switch {switch!r} is a {sw.role.value} switch, "
                      "not a hypervisor: VMs plug into hypervisors only")
    segment = policy.segment_of(spec)
    return VmTarget(vm, spec.mac, IPv4Interface(f"{spec.ip}/{segment.subnet.prefixlen}"),
                    segment.gateway, switch, sw.dpid)


def _attachment_ids(att: Attachment, created_ns: bool) -> dict[str, str]:
    """The bookkeeping keys that let unplug and migrate find the namespace again."""
    ids = {KIND_KEY: att.kind.value}
    if att.netns:
        ids |= {NETNS_KEY: att.netns, CREATED_KEY: "true" if created_ns else "false"}
    return ids


@dataclass(slots=True)
class Outcome:
    """What a command did: a one-line summary, then each change (none: nothing changed)."""

    summary: str = ""
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join([self.summary] + [f"  {c}" for c in self.changes]
                         + [f"note: {n}" for n in self.notes])


@contextlib.contextmanager
def wire_failures() -> Iterator[None]:
    """Kernel and OVSDB failures as WireError, with a hint where one helps."""
    try:
        yield
    except NetlinkError as exc:
        hint = " (sdnctl vm needs root)" if exc.code == errno.EPERM else ""
        raise WireError(f"netlink: {exc.args[-1]}{hint}") from exc
    except OvsdbError as exc:
        raise WireError(str(exc)) from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise WireError(str(exc)) from exc


# ---- OVSDB side ------------------------------------------------------------------------


def _pick_bridge(db: OvsdbWriter, target: VmTarget, explicit: str | None,
                 notes: list[str]) -> str:
    bridges = db.bridges()
    if explicit:
        found = [b for b in bridges if b.name == explicit]
        if not found:
            raise Refused(f"no OVS bridge named {explicit!r} "
                          f"(bridges: {_listing(b.name for b in bridges) or 'none'})")
        if found[0].dpid != target.dpid:
            notes.append(f"bridge {explicit} has datapath id {found[0].dpid or 0:016x}, not "
                         f"{target.switch}'s {target.dpid:016x}: the daemon will not bind it")
        return explicit
    matches = [b.name for b in bridges if b.dpid == target.dpid]
    if not matches:
        raise Refused(f"no OVS bridge has datapath id {target.dpid:016x} (switch "
                      f"{target.switch}); set other-config:datapath-id or give --bridge")
    if len(matches) > 1:
        raise Refused(f"several OVS bridges have datapath id {target.dpid:016x} (switch "
                      f"{target.switch}): {', '.join(matches)}; give --bridge")
    return matches[0]


def _bound_ids(target: VmTarget) -> dict[str, str]:
    return binding_ids(target.vm, target.mac)


def _missing(have: Mapping[str, str], want: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in want.items() if have.get(k) != v}


def _our_ports(db: OvsdbWriter, vm: str) -> list[PortInfo]:
    """The VM's ports under its sdnctl names; Refused if a port of another name claims
    the VM (made by something else: a second claim would unbind the VM)."""
    names = host_ifnames(vm)
    ports = db.ports_named(names, vm_id=vm)
    foreign = [p for p in ports if p.name not in names]
    if foreign:
        raise Refused(f"{vm} is bound by port {foreign[0].name} on bridge {foreign[0].bridge}, "
                      "which sdnctl vm did not make: remove that port or its vm-id first")
    return ports


def _where(port: PortInfo, ofport: int | None = None) -> str:
    ofport = ofport or port.ofport
    return f"bridge {port.bridge}, port {port.name}" + (
        f", OpenFlow port {ofport}" if ofport else "")


# ---- the three commands ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlugOptions:
    kind: Kind = Kind.TAP
    netns: str | None = None
    mtu: int | None = None  # None: DEFAULT_MTU (plug) or the old interface's (migrate)
    bridge: str | None = None  # None: the bridge whose datapath id is the switch's dpid
    ovsdb: str = "unix:/var/run/openvswitch/db.sock"


def plug_vm(target: VmTarget, opts: PlugOptions) -> Outcome:
    out = Outcome()
    names = host_ifnames(target.vm)
    if opts.netns:
        require_tools()
    with wire_failures(), OvsdbWriter(opts.ovsdb) as db:
        bridge = _pick_bridge(db, target, opts.bridge, out.notes)
        ports = _our_ports(db, target.vm)
        if len(ports) > 1:
            raise Refused(f"{target.vm} is half-way through a migration ({ports[0].name} on "
                          f"{ports[0].bridge}, {ports[1].name} on {ports[1].bridge}): run "
                          "`sdnctl vm migrate` again to finish it, or unplug it")
        current = ports[0] if ports else None
        if current is not None and current.bridge != bridge:
            raise Refused(f"{target.vm} is plugged elsewhere ({_where(current)}): use "
                          f"`sdnctl vm migrate {target.vm} --to {target.switch}`")
        if current is not None:
            _refuse_other_kind(target.vm, current, opts)
        slot = names.index(current.name) if current else 0
        att = Attachment(opts.kind, names[slot], opts.netns,
                         GUEST_IFNAMES[slot] if opts.netns else None)
        with kernel(att.netns, create=True) as k:
            if k.created:
                out.changes.append(f"created namespace {att.netns}")
            drop_strays(k.host, names, att.host_if, out.changes)
            recreated = ensure_link(k, att, target.mac, opts.mtu or DEFAULT_MTU, out.changes)
            if att.netns:
                configure_guest(k, att, target.address, target.gateway, 0, out.changes)
        was_created = current is not None and current.external_ids.get(CREATED_KEY) == "true"
        ids = _attachment_ids(att, k.created or was_created) | _bound_ids(target)
        if current is not None and recreated:
            # OVS keeps a dead port for a link deleted and recreated under its name.
            db.commit(PortChanges(delete=(current.name,)))
            out.changes.append(f"removed port {current.name} (its interface was recreated)")
            current = None
        if current is None:
            db.commit(PortChanges(add=(NewPort(bridge, att.host_if, ids),)))
            out.changes.append(f"added {att.host_if} to bridge {bridge} "
                               f"(vm-id={target.vm}, attached-mac={target.mac})")
        elif fix := _missing(current.external_ids, ids):
            db.commit(PortChanges(set_ids={current.name: fix}))
            out.changes.append(f"{current.name}: set external_ids "
                               + ", ".join(f"{k}={v}" for k, v in fix.items()))
        ofport = db.wait_ofport(att.host_if)
    where = f"bridge {bridge}, port {att.host_if}, OpenFlow port {ofport}" + (
        f", namespace {att.netns}" if att.netns else "")
    out.summary = (f"{target.vm}: plugged on {target.switch} ({where})" if out.changes else
                   f"{target.vm}: already plugged on {target.switch} ({where}); nothing changed")
    return out


def _refuse_other_kind(vm: str, port: PortInfo, opts: PlugOptions) -> None:
    kind, netns = port.external_ids.get(KIND_KEY), port.external_ids.get(NETNS_KEY)
    if kind == opts.kind.value and netns == opts.netns:
        return
    now = f"namespace {netns}" if netns else (kind or "an unknown kind")
    asked = f"namespace {opts.netns}" if opts.netns else opts.kind.value
    raise Refused(f"{vm} is plugged as {now} ({_where(port)}), not {asked}: unplug it first")


def unplug_vm(vm: str, ovsdb: str) -> Outcome:
    out = Outcome()
    names = host_ifnames(vm)
    with wire_failures(), OvsdbWriter(ovsdb) as db, kernel(None) as k:
        ports = db.ports_named(names)
        links = [name for name in names if get_link(k.host, name) is not None]
        if not ports and not links:
            out.summary = f"{vm}: not plugged; nothing to do"
            return out
        if ports:
            db.commit(PortChanges(delete=tuple(p.name for p in ports)))
            out.changes += [f"removed port {p.name} from bridge {p.bridge}" for p in ports]
        for name in links:
            k.host.link("del", ifname=name)  # a veth takes its namespace end along
            out.changes.append(f"deleted {name}")
        for netns in sorted({p.external_ids[NETNS_KEY] for p in ports
                             if p.external_ids.get(NETNS_KEY)}):
            if any(p.external_ids.get(CREATED_KEY) == "true" for p in ports):
                remove_netns_if_empty(netns, out.changes, out.notes)
            else:
                out.notes.append(f"kept namespace {netns}: sdnctl did not create it")
    out.summary = f"{vm}: unplugged"
    return out


def migrate_vm(target: VmTarget, opts: PlugOptions) -> Outcome:
    out = Outcome()
    names = host_ifnames(target.vm)
    with wire_failures(), OvsdbWriter(opts.ovsdb) as db:
        bridge = _pick_bridge(db, target, opts.bridge, out.notes)
        ports = _our_ports(db, target.vm)
        if not ports:
            raise Refused(f"{target.vm} is not plugged anywhere: "
                          f"`sdnctl vm plug {target.vm} --host {target.switch}` instead")
        old = [p for p in ports if p.bridge != bridge]
        here = [p for p in ports if p.bridge == bridge]
        if not old:
            return _already_there(db, target, here[0], out)
        if len(old) > 1 or len(here) > 1:
            raise Refused(f"{target.vm} has ports {', '.join(p.name for p in ports)}: "
                          "unplug it and plug it again")
        src = old[0]
        if src.external_ids.get(KIND_KEY) not in {k.value for k in Kind}:
            raise Refused(f"{target.vm}'s port {src.name} was not made by `sdnctl vm plug`")
        slot = 1 - names.index(src.name)
        kind, netns = Kind(src.external_ids[KIND_KEY]), src.external_ids.get(NETNS_KEY)
        new = Attachment(kind, names[slot], netns, GUEST_IFNAMES[slot] if netns else None)
        old_guest = GUEST_IFNAMES[1 - slot] if netns else None
        if netns:
            require_tools()
        with kernel(netns) as k:
            old_link = get_link(k.host, src.name)
            mtu = opts.mtu or (old_link.get("IFLA_MTU") if old_link else None) or DEFAULT_MTU
            recreated = ensure_link(k, new, target.mac, mtu, out.changes)
            if netns:
                configure_guest(k, new, target.address, target.gateway, STANDBY_METRIC,
                                out.changes)
            pending = _attachment_ids(new, src.external_ids.get(CREATED_KEY) == "true")
            if here and recreated:  # OVS keeps a dead port for a recreated link
                db.commit(PortChanges(delete=(here[0].name,)))
                out.changes.append(f"removed port {here[0].name} (its interface was recreated)")
                here = []
            if not here:
                db.commit(PortChanges(add=(NewPort(bridge, new.host_if, pending),)))
                out.changes.append(f"added {new.host_if} to bridge {bridge} (not bound yet)")
            ofport = db.wait_ofport(new.host_if)
            if netns and old_guest and k.guest is not None:
                old_idx = k.guest.link_lookup(ifname=old_guest)
                new_idx = k.guest.link_lookup(ifname=new.guest_if)[0]
                n = copy_neighbours(k.guest, old_idx[0], new_idx) if old_idx else 0
                if n:
                    out.changes.append(f"{netns}:{new.guest_if}: copied {n} ARP entries")
            started = time.monotonic()
            db.commit(PortChanges(set_ids={new.host_if: _bound_ids(target)},
                                  delete=(src.name,)))
            if old_link is not None:
                k.host.link("del", index=old_link["index"])
            took_ms = (time.monotonic() - started) * 1000
            out.changes.append(f"moved vm-id={target.vm} from {src.name} (bridge {src.bridge}) "
                               f"to {new.host_if} in one transaction; deleted {src.name} "
                               f"({took_ms:.0f} ms)")
            if netns and target.gateway is not None and k.guest is not None:
                settle_route(k.guest, str(target.gateway), new, out.changes)
    out.summary = (f"{target.vm}: migrated to {target.switch} (bridge {bridge}, port "
                   f"{new.host_if}, OpenFlow port {ofport})")
    return out


def _already_there(db: OvsdbWriter, target: VmTarget, port: PortInfo, out: Outcome) -> Outcome:
    """Migrating to where the VM already is: finish an interrupted migration if need be
    (bind the new port, drop the old link, make the standby route the default)."""
    if fix := _missing(port.external_ids, _bound_ids(target)):
        db.commit(PortChanges(set_ids={port.name: fix}))
        out.changes.append(f"{port.name}: set external_ids "
                           + ", ".join(f"{k}={v}" for k, v in fix.items()))
    netns = port.external_ids.get(NETNS_KEY)
    with kernel(netns) as k:
        drop_strays(k.host, host_ifnames(target.vm), port.name, out.changes)
        if k.guest is not None and target.gateway is not None:
            slot = host_ifnames(target.vm).index(port.name)
            att = Attachment(Kind.NETNS, port.name, netns, GUEST_IFNAMES[slot])
            settle_route(k.guest, str(target.gateway), att, out.changes)
    ofport = db.wait_ofport(port.name)
    tail = "finished an interrupted migration" if out.changes else "nothing changed"
    out.summary = f"{target.vm}: already on {target.switch} ({_where(port, ofport)}); {tail}"
    return out
