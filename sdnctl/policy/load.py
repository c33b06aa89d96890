"""Policy file (DESIGN.md §2) → validated `Policy`, or every problem at `file:line`.

Reading happens in dependency order: tenants and their segments, then VMs (they
name segments), then groups (they name VMs), then rules (they name groups). An
object with a problem is still remembered by name so that whatever refers to it
does not get a second, misleading "unknown ..." error. The `Policy` is built only
when no problem at all was found.

Every message reads `<object>: <problem>`, e.g. `segment acme/web: vlan 5000 is out
of range 1..4094`, where the object is `policy`, `tenant T`, `segment T/S`,
`group T/G`, `rule N of tenant T` (N counts from 1 in file order) or `vm V`.
"""

from __future__ import annotations

import re
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sdnctl.addresses import parse_address
from sdnctl.pipeline import tenant_id
from sdnctl.policy.drafts import (
    SegmentDraft,
    TenantDraft,
    VMDraft,
    build_tenant,
    build_vm,
)
from sdnctl.policy.lint import WAIVABLE
from sdnctl.policy.load6 import check_ip6s, read_family, read_segment6, read_vm6
from sdnctl.policy.load_ns import (
    check_nat_addresses,
    check_rule_ends,
    names_addresses,
    read_cidr_end,
    read_floating_ip,
    read_snat,
)
from sdnctl.policy.model import (
    ANY,
    EXTERNAL,
    MAX_VNI,
    Default,
    Group,
    Policy,
    Rule,
    Service,
    parse_service,
)
from sdnctl.policy.values import (
    listing,
    mac_trouble,
    placement_trouble,
    read_dns,
    read_labels,
    subnet_trouble,
)
from sdnctl.topology.model import Role, Topology
from sdnctl.yamlsrc import (
    LineDict,
    LineList,
    Report,
    describe,
    is_int,
    load_yaml,
    read_source,
)

TOP_KEYS = ("version", "tenants", "vms")
TENANT_KEYS = ("default", "segments", "groups", "rules", "waive", "dns", "snat",
               "log_denied")
SEGMENT_KEYS = ("vlan", "vni", "subnet", "gateway", "dns", "subnet6", "gateway6")
GROUP_KEYS = ("labels", "vms", "waive")
RULE_KEYS = ("from", "to", "allow", "waive", "family", "log")
VM_KEYS = ("tenant", "segment", "mac", "ip", "labels", "host", "rate_limit_mbps", "waive",
           "ip6", "floating_ip")

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$")
_SMALLEST_SUBNET = 30  # a /31 or /32 has no room for a VM besides network/broadcast
# A meter band's rate is a 32-bit count of kbit/s (OpenFlow 1.3 ofp_meter_band);
# the compiler asks for rate_limit_mbps * 1000.
MAX_RATE_MBPS = (2**32 - 1) // 1000


def load_policy(path: str | Path, topology: Topology | None = None) -> Policy:
    """Read and validate a policy file; LoadError lists every problem (file = `path`)."""
    return parse_policy(read_source(path), str(path), topology)


def parse_policy(text: str, source: str, topology: Topology | None = None) -> Policy:
    """Validate policy text; with a `topology`, each VM's `host` must be a hypervisor of it."""
    report = Report(source)
    policy = _PolicyReader(report, topology).read(load_yaml(text, source))
    report.raise_if_any()
    assert policy is not None  # built whenever nothing was reported
    return policy


class _PolicyReader:
    def __init__(self, report: Report, topology: Topology | None) -> None:
        self.r = report
        self.topology = topology
        self.tenants: dict[str, TenantDraft] = {}
        self.vms: dict[str, VMDraft] = {}
        self.vlans: dict[int, SegmentDraft] = {}
        self.vnis: dict[int, SegmentDraft] = {}
        self.macs: dict[str, VMDraft] = {}

    def read(self, data: Any) -> Policy | None:
        top = self.r.top_level(data, "policy", TOP_KEYS, ("version", "tenants"),
                               "version: 1, tenants and vms")
        if top is None:
            return None
        tenants = self.r.mapping(top.get("tenants"), top.key_line("tenants"), "policy", "tenants")
        for name, body, line in self.r.names(tenants or LineDict(), "policy", "tenant"):
            self._tenant(name, body, line)
        vms = self.r.mapping(top.get("vms"), top.key_line("vms"), "policy", "vms")
        for name, body, line in self.r.names(vms or LineDict(), "policy", "vm"):
            self._vm(name, body, line)
        self._check_ips()
        check_ip6s(self.r, self.vms.values())
        self._check_nat()
        for tenant in self.tenants.values():
            if not tenant.broken:
                self._groups(tenant)
                self._rules(tenant)
        self._check_tenant_ids()
        return None if self.r.problems else self._build()

    # -- tenants and segments -------------------------------------------------------

    def _tenant(self, name: str, body: Any, line: int) -> None:
        where = f"tenant {name}"
        if not isinstance(body, LineDict):
            self.r.add(line, f"{where}: must be a mapping with keys "
                             f"{', '.join(TENANT_KEYS)}, got {describe(body)}")
            self.tenants[name] = TenantDraft(name, line, LineDict(line), broken=True)
            return
        self.r.check_keys(body, where, TENANT_KEYS, ("segments",), line)
        tenant = TenantDraft(name, line, body)
        self.tenants[name] = tenant
        if "default" in body:
            tenant.default = self._default(body["default"], body.key_line("default"), where)
        tenant.waive = self._waive(body, "tenant", where)
        if "dns" in body:
            tenant.dns = read_dns(self.r, body["dns"], body.key_line("dns"), where)
        if "snat" in body:
            tenant.snat_line = body.key_line("snat")
            tenant.snat = read_snat(self.r, body["snat"], tenant.snat_line, where)
        tenant.log_denied = self._flag(body, "log_denied", where)
        segments = self.r.mapping(body.get("segments"), body.key_line("segments"), where,
                                  "segments")
        for seg_name, seg_body, seg_line in self.r.names(segments or LineDict(), where,
                                                         "segment"):
            self._segment(tenant, seg_name, seg_body, seg_line)

    def _default(self, value: Any, line: int, where: str) -> Default:
        if value in ("allow", "deny"):
            return Default(value)
        self.r.add(line, f"{where}: default must be allow or deny, got {describe(value)}")
        return Default.DENY

    def _segment(self, tenant: TenantDraft, name: str, body: Any, line: int) -> None:
        seg = SegmentDraft(tenant.name, name, line)
        tenant.segments[name] = seg  # known by name even if broken: no cascading errors
        if not isinstance(body, LineDict):
            self.r.add(line, f"{seg.where}: must be a mapping with keys "
                             f"{', '.join(SEGMENT_KEYS)}, got {describe(body)}")
            return
        self.r.check_keys(body, seg.where, SEGMENT_KEYS, ("subnet",), line)
        if "vlan" not in body and "vni" not in body:
            self.r.add(line, f"{seg.where}: missing required key 'vlan' or 'vni' "
                             "(a VLAN segment, an overlay segment, or both)")
        if "vlan" in body:
            seg.vlan = self._vlan(seg, body["vlan"], body.key_line("vlan"))
        if "vni" in body:
            seg.vni = self._vni(seg, body["vni"], body.key_line("vni"))
        if "subnet" in body:
            seg.subnet = self._subnet(seg, body["subnet"], body.key_line("subnet"))
            self._check_overlap(tenant, seg, body.key_line("subnet"))
        if "gateway" in body:
            seg.gateway = self._gateway(seg, body["gateway"], body.key_line("gateway"))
        if "dns" in body:
            seg.dns = read_dns(self.r, body["dns"], body.key_line("dns"), seg.where)
        read_segment6(self.r, tenant, seg, body)

    def _vlan(self, seg: SegmentDraft, value: Any, line: int) -> int | None:
        return self._segment_number(seg, "vlan", 4094, self.vlans, value, line)

    def _vni(self, seg: SegmentDraft, value: Any, line: int) -> int | None:
        return self._segment_number(seg, "vni", MAX_VNI, self.vnis, value, line)

    def _segment_number(self, seg: SegmentDraft, key: str, most: int,
                        used: dict[int, SegmentDraft], value: Any, line: int) -> int | None:
        """A vlan or vni: an integer 1..most that no other segment of the policy has."""
        if not is_int(value):
            self.r.add(line, f"{seg.where}: {key} must be an integer 1..{most}, "
                             f"got {describe(value)}")
            return None
        if not 1 <= value <= most:
            self.r.add(line, f"{seg.where}: {key} {value} is out of range 1..{most}")
            return None
        first = used.setdefault(value, seg)
        if first is not seg:
            self.r.add(line, f"{seg.where}: {key} {value} is already used by "
                             f"{first.where} (line {first.line})")
        return int(value)

    def _subnet(self, seg: SegmentDraft, value: Any, line: int) -> IPv4Network | None:
        if not isinstance(value, str) or "/" not in value:
            self.r.add(line, f"{seg.where}: subnet must be an IPv4 network like "
                             f"10.1.10.0/24, got {describe(value)}")
            return None
        try:
            subnet = IPv4Network(value.strip())
        except (AddressValueError, NetmaskValueError):
            self.r.add(line, f"{seg.where}: subnet {value!r} is not an IPv4 network like "
                             "10.1.10.0/24")
            return None
        except ValueError:  # host bits set: say which network was probably meant
            loose = IPv4Network(value.strip(), strict=False)
            self.r.add(line, f"{seg.where}: subnet {value} has host bits set "
                             f"(did you mean {loose}?)")
            return None
        if subnet.prefixlen > _SMALLEST_SUBNET:
            self.r.add(line, f"{seg.where}: subnet {subnet} is too small "
                             f"(at most /{_SMALLEST_SUBNET})")
            return None
        trouble = subnet_trouble(subnet)
        if trouble:
            self.r.add(line, f"{seg.where}: subnet {subnet} {trouble}")
            return None
        return subnet

    def _check_overlap(self, tenant: TenantDraft, seg: SegmentDraft, line: int) -> None:
        if seg.subnet is None:
            return
        for other in tenant.segments.values():
            if other is not seg and other.subnet is not None and other.subnet.overlaps(
                seg.subnet
            ):
                self.r.add(line, f"{seg.where}: subnet {seg.subnet} overlaps {other.where} "
                                 f"({other.subnet}, line {other.line})")
                return

    def _gateway(self, seg: SegmentDraft, value: Any, line: int) -> IPv4Address | None:
        gateway = parse_address(value)
        if gateway is None:
            self.r.add(line, f"{seg.where}: gateway must be an IPv4 address, "
                             f"got {describe(value)}")
            return None
        if seg.subnet is not None:
            trouble = placement_trouble(gateway, seg.subnet)
            if trouble:
                self.r.add(line, f"{seg.where}: gateway {gateway} {trouble}")
        return gateway

    # -- VMs ------------------------------------------------------------------------

    def _vm(self, name: str, body: Any, line: int) -> None:
        vm = VMDraft(name, line)
        self.vms[name] = vm
        where = f"vm {name}"
        if not isinstance(body, LineDict):
            self.r.add(line, f"{where}: must be a mapping with keys "
                             f"{', '.join(VM_KEYS)}, got {describe(body)}")
            return
        self.r.check_keys(body, where, VM_KEYS, ("tenant", "segment", "mac", "ip"), line)
        self._vm_place(vm, body, where)
        if "mac" in body:
            vm.mac = self._mac(vm, body["mac"], body.key_line("mac"), where)
        if "ip" in body:
            vm.ip_line = body.key_line("ip")
            vm.ip = self._vm_ip(vm, body["ip"], body.key_line("ip"), where)
        if "labels" in body:
            vm.labels = read_labels(self.r, body["labels"], body.key_line("labels"), where)
        if "host" in body:
            vm.host = self._host(body["host"], body.key_line("host"), where)
            self._check_tunnel(vm, body.key_line("host"), where)
        if "rate_limit_mbps" in body:
            vm.rate_limit_mbps = self._rate(body["rate_limit_mbps"],
                                            body.key_line("rate_limit_mbps"), where)
        vm.waive = self._waive(body, "vm", where)
        read_vm6(self.r, vm, self._segment_of(vm), body, where)
        if "floating_ip" in body:
            vm.floating_ip_line = body.key_line("floating_ip")
            vm.floating_ip = read_floating_ip(self.r, body["floating_ip"], vm.floating_ip_line,
                                              where, self._segment_of(vm))

    def _vm_place(self, vm: VMDraft, body: LineDict, where: str) -> None:
        """Tenant and segment; the segment is checked only within a known tenant."""
        if "tenant" in body:
            vm.tenant = self._name_in(body, "tenant", where, self.tenants, "")
        if "segment" not in body or vm.tenant is None or self.tenants[vm.tenant].broken:
            return
        segments = self.tenants[vm.tenant].segments
        vm.segment = self._name_in(body, "segment", where, segments, f" of tenant {vm.tenant}")

    def _name_in(self, body: LineDict, key: str, where: str, known: Any, of: str) -> str | None:
        """body[key] if it names one of `known`; else report it (at the key's line)."""
        value = body[key]
        line = body.key_line(key)
        if not isinstance(value, str):
            self.r.add(line, f"{where}: {key} must be a {key} name, got {describe(value)}")
            return None
        if value not in known:
            self.r.add(line, f"{where}: unknown {key} {value!r}{of} "
                             f"({key}s: {listing(known)})")
            return None
        return value

    def _mac(self, vm: VMDraft, value: Any, line: int, where: str) -> str | None:
        if not isinstance(value, str) or not _MAC_RE.match(value):
            self.r.add(line, f"{where}: mac must look like 02:00:00:00:10:11, "
                             f"got {describe(value)}")
            return None
        mac = value.lower()
        trouble = mac_trouble(mac)
        if trouble:
            self.r.add(line, f"{where}: mac {mac} {trouble}")
            return None
        first = self.macs.setdefault(mac, vm)
        if first is not vm:
            self.r.add(line, f"{where}: mac {mac} is already used by vm {first.name} "
                             f"(line {first.line})")
        return mac

    def _vm_ip(self, vm: VMDraft, value: Any, line: int, where: str) -> IPv4Address | None:
        ip = parse_address(value)
        if ip is None:
            self.r.add(line, f"{where}: ip must be an IPv4 address, got {describe(value)}")
            return None
        seg = self._segment_of(vm)
        if seg is None or seg.subnet is None:
            return ip
        trouble = placement_trouble(ip, seg.subnet, seg.where)
        if not trouble and ip == seg.gateway:
            trouble = f"is the gateway of {seg.where}"
        if not trouble and seg.gateway is None and ip == seg.subnet.broadcast_address - 1:
            # DHCP answers a segment without a gateway from this address.
            trouble = (f"is reserved as the DHCP server address of {seg.where} "
                       "(the last usable address of a segment without a gateway)")
        if trouble:
            self.r.add(line, f"{where}: ip {ip} {trouble}")
        return ip

    def _segment_of(self, vm: VMDraft) -> SegmentDraft | None:
        if vm.tenant is None or vm.segment is None:
            return None
        return self.tenants[vm.tenant].segments[vm.segment]

    def _check_nat(self) -> None:
        """snat and floating_ip addresses, across tenants and VMs (and the topology's
        gateway uplinks): sdnctl.policy.load_ns."""
        check_nat_addresses(self.r, self.tenants.values(), self.vms.values(), self.topology)

    def _check_ips(self) -> None:
        """An IP names one VM inside its tenant (tenants may reuse each other's)."""
        first: dict[tuple[str, IPv4Address], VMDraft] = {}
        for vm in self.vms.values():
            if vm.tenant is None or vm.ip is None:
                continue
            other = first.setdefault((vm.tenant, vm.ip), vm)
            if other is not vm:
                self.r.add(vm.ip_line, f"vm {vm.name}: ip {vm.ip} is already used by "
                                              f"vm {other.name} (line {other.line})")

    def _host(self, value: Any, line: int, where: str) -> str | None:
        if not isinstance(value, str):
            self.r.add(line, f"{where}: host must be a switch name, got {describe(value)}")
            return None
        if self.topology is None:
            return value
        switch = self.topology.switches.get(value)
        if switch is None:
            self.r.add(line, f"{where}: host {value!r} is not a switch of the topology "
                             f"(switches: {listing(self.topology.switches)})")
        elif switch.role is not Role.HYPERVISOR:
            self.r.add(line, f"{where}: host {value!r} is a {switch.role.value} switch, "
                             "not a hypervisor")
        return value

    def _check_tunnel(self, vm: VMDraft, line: int, where: str) -> None:
        """Overlay-only segments (vni, no vlan) cross between hypervisors in tunnels
        alone: a VM's host needs a tunnel endpoint when the VM is in one, or when its
        routed segment is routed to one (routing happens at the first hop, here)."""
        seg = self._segment_of(vm)
        if self.topology is None or seg is None or vm.host is None or vm.tenant is None:
            return
        switch = self.topology.switches.get(vm.host)
        if switch is None or switch.role is not Role.HYPERVISOR or switch.tunnel_ip is not None:
            return
        if seg.vni is not None and seg.vlan is None:
            self.r.add(line, f"{where}: host {vm.host!r} has no tunnel_ip, but {seg.where} "
                             "is an overlay segment (vni, no vlan)")
            return
        if seg.gateway is None and seg.gateway6 is None:
            return
        for other in self.tenants[vm.tenant].segments.values():
            routed = ((seg.gateway is not None and other.gateway is not None)
                      or (seg.gateway6 is not None and other.gateway6 is not None))
            if other.vni is not None and other.vlan is None and routed:
                self.r.add(line, f"{where}: host {vm.host!r} has no tunnel_ip, but {seg.where} "
                                 f"is routed to {other.where}, an overlay segment "
                                 "(vni, no vlan)")
                return

    def _flag(self, body: LineDict, key: str, where: str) -> bool:
        """An optional true/false key (absent: false)."""
        if key not in body:
            return False
        value = body[key]
        if not isinstance(value, bool):
            self.r.add(body.key_line(key), f"{where}: {key} must be true or false, "
                                           f"got {describe(value)}")
            return False
        return value

    def _waive(self, body: LineDict, kind: str, where: str) -> frozenset[str]:
        """The lint warnings `body` waives: a list of codes this kind of object may
        waive (sdnctl.policy.lint.WAIVABLE)."""
        if "waive" not in body:
            return frozenset()
        line = body.key_line("waive")
        items = self.r.sequence(body["waive"], line, where, "waive")
        codes: set[str] = set()
        allowed = WAIVABLE[kind]
        for index, item in enumerate(items or ()):
            item_line = items.item_line(index) if items else line
            if item in allowed:
                codes.add(item)
            else:
                self.r.add(item_line, f"{where}: waive names {describe(item)}, not a warning "
                                      f"a {kind} can waive ({', '.join(allowed)})")
        return frozenset(codes)

    def _rate(self, value: Any, line: int, where: str) -> int | None:
        if not is_int(value) or value <= 0:
            self.r.add(line, f"{where}: rate_limit_mbps must be a positive integer "
                             f"(Mbit/s), got {describe(value)}")
            return None
        if value > MAX_RATE_MBPS:
            self.r.add(line, f"{where}: rate_limit_mbps {value} is more than an OpenFlow "
                             f"meter can encode (at most {MAX_RATE_MBPS}: a meter band's "
                             "rate is a 32-bit count of kbit/s)")
            return None
        return int(value)

    # -- groups and rules -----------------------------------------------------------

    def _groups(self, tenant: TenantDraft) -> None:
        where = f"tenant {tenant.name}"
        body = tenant.body
        groups = self.r.mapping(body.get("groups"), body.key_line("groups"), where, "groups")
        for name, value, line in self.r.names(groups or LineDict(), where, "group"):
            tenant.group_names.add(name)
            group = self._group(tenant, name, value, line)
            if group is not None:
                tenant.groups[name] = group

    def _group(self, tenant: TenantDraft, name: str, body: Any, line: int) -> Group | None:
        where = f"group {tenant.name}/{name}"
        if name == ANY:
            self.r.add(line, f"{where}: the name {ANY!r} is reserved "
                             "(it means every VM of the tenant)")
        elif name == EXTERNAL:
            self.r.add(line, f"{where}: the name {EXTERNAL!r} is reserved "
                             "(it means every address outside the tenant)")
        elif names_addresses(name):
            self.r.add(line, f"{where}: a group name must not start with a digit or hold a "
                             "'/' (a rule end written so is an IPv4 CIDR)")
        if not isinstance(body, LineDict):
            self.r.add(line, f"{where}: must be a mapping with keys "
                             f"{', '.join(GROUP_KEYS)}, got {describe(body)}")
            return None
        self.r.check_keys(body, where, GROUP_KEYS, (), line)
        labels = read_labels(self.r, body.get("labels"), body.key_line("labels"), where)
        vms = self._group_vms(tenant, body.get("vms"), body.key_line("vms"), where)
        if not body.get("labels") and not body.get("vms"):
            self.r.add(line, f"{where}: names no labels and no vms")
        return Group(tenant.name, name, MappingProxyType(labels), vms, line,
                     self._waive(body, "group", where))

    def _group_vms(self, tenant: TenantDraft, value: Any, line: int,
                   where: str) -> tuple[str, ...]:
        items = self.r.sequence(value, line, where, "vms")
        names: dict[str, None] = {}  # ordered, without repeats
        for index, item in enumerate(items or ()):
            item_line = items.item_line(index) if items else line
            vm = self.vms.get(item) if isinstance(item, str) else None
            if not isinstance(item, str):
                self.r.add(item_line, f"{where}: vms must be VM names, got {describe(item)}")
            elif vm is None:
                self.r.add(item_line, f"{where}: unknown vm {item!r}")
            elif vm.tenant is not None and vm.tenant != tenant.name:
                self.r.add(item_line, f"{where}: vm {item} belongs to tenant {vm.tenant}, "
                                      f"not {tenant.name}")
            else:
                names[item] = None
        return tuple(names)

    def _rules(self, tenant: TenantDraft) -> None:
        body = tenant.body
        rules = self.r.sequence(body.get("rules"), body.key_line("rules"),
                                f"tenant {tenant.name}", "rules")
        if rules is None:
            return
        for index, value in enumerate(rules):
            rule = self._rule(tenant, index + 1, value, rules.item_line(index))
            if rule is not None:
                tenant.rules.append(rule)

    def _rule(self, tenant: TenantDraft, number: int, body: Any, line: int) -> Rule | None:
        where = f"rule {number} of tenant {tenant.name}"
        if not isinstance(body, LineDict):
            self.r.add(line, f"{where}: must be a mapping with keys "
                             f"{', '.join(RULE_KEYS)}, got {describe(body)}")
            return None
        self.r.check_keys(body, where, RULE_KEYS, ("from", "to", "allow"), line)
        src = self._rule_end(tenant, body, "from", where)
        dst = self._rule_end(tenant, body, "to", where)
        services = self._services(body, where) if "allow" in body else ()
        waive = self._waive(body, "rule", where)
        family = read_family(self.r, body, where)
        log = self._flag(body, "log", where)
        if not check_rule_ends(self.r, src, dst, family, line, where):
            return None
        if src is None or dst is None or not services:
            return None
        if names_addresses(src) or names_addresses(dst):
            family = 4  # traffic to and from outside the tenant is IPv4 only
        return Rule(tenant.name, src, dst, services, line, waive, family, log)

    def _rule_end(self, tenant: TenantDraft, body: LineDict, key: str,
                  where: str) -> str | None:
        if key not in body:
            return None
        value = body[key]
        line = body.key_line(key)
        if not isinstance(value, str):
            self.r.add(line, f"{where}: {key} must be a group name, any, {EXTERNAL} or an "
                             f"IPv4 CIDR, got {describe(value)}")
            return None
        if value in (ANY, EXTERNAL) or value in tenant.group_names:
            return value
        if names_addresses(value):
            return read_cidr_end(self.r, tenant, value, key, line, where)
        known = listing([ANY, *tenant.group_names])
        self.r.add(line, f"{where}: {key} names unknown group {value!r} (groups: {known})")
        return None

    def _services(self, body: LineDict, where: str) -> tuple[Service, ...]:
        line = body.key_line("allow")
        items = body["allow"]
        if not isinstance(items, LineList) or not items:
            self.r.add(line, f"{where}: allow must be a non-empty list of services like "
                             f"[tcp/80, icmp], got {describe(items)}")
            return ()
        services: dict[Service, None] = {}  # file order, without repeats
        ok = True
        for index, item in enumerate(items):
            service = self._service(item, items.item_line(index), where)
            ok = ok and service is not None
            if service is not None:
                services[service] = None
        return tuple(services) if ok else ()

    def _service(self, item: Any, line: int, where: str) -> Service | None:
        if not isinstance(item, str):
            self.r.add(line, f"{where}: service must be a string like tcp/80, "
                             f"got {describe(item)}")
            return None
        try:
            return parse_service(item)
        except ValueError as exc:
            self.r.add(line, f"{where}: {exc}")
            return None

    # -- whole policy ---------------------------------------------------------------

    def _check_tenant_ids(self) -> None:
        """Flows tell tenants apart by tenant_id(name) alone: two ids must never meet."""
        seen: dict[int, TenantDraft] = {}
        for tenant in self.tenants.values():
            other = seen.setdefault(tenant_id(tenant.name), tenant)
            if other is not tenant:
                self.r.add(tenant.line, f"tenant {tenant.name}: its tenant id "
                                        f"{tenant_id(tenant.name):#010x} collides with tenant "
                                        f"{other.name} (line {other.line}); rename one")

    def _build(self) -> Policy:
        tenants = {name: build_tenant(t) for name, t in self.tenants.items()}
        vms = {name: build_vm(vm) for name, vm in self.vms.items()}
        return Policy(MappingProxyType(tenants), MappingProxyType(vms), self.r.source)


