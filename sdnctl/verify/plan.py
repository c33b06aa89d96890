"""`sdnctl plan`: the reachability a policy edit adds and removes, before it is applied.

Exact, not sampled: for every ordered VM pair, what the old network lets it open
and what the new one does are compared as whole sets of services
(`sdnctl.policy.services.ServiceSet`: TCP and UDP port ranges, ICMP echo, every
other IP packet), so the answer is in ranges (`tcp/8101-9000`) and covers every
port of every protocol.

In both families: a pair whose VMs both have an IPv6 address (in either policy)
is compared in IPv4 and in IPv6. A change that is the same in both is reported
once, unqualified; what differs between them (a rule gaining `family: ipv6`, a
segment gaining `subnet6` or `gateway6`) is reported per family (`tcp/443
(ipv6)`). A pair with IPv6 in neither policy speaks IPv4 alone, and its changes
are unqualified.

What a network lets a pair open is the policy's `reach` (DESIGN.md §2, as
`sdnctl.verify.semantics` reads it) where the pair can meet at all: both VMs
placed on a hypervisor of the topology, and the fabric (or a VXLAN tunnel)
connecting the two (`sdnctl.topology.paths.Carriage`). That the compiled flows do
exactly this is what the compiler's property tests and `sdnctl verify --offline`
check; plan does not simulate them again, so its cost follows the edit, not the
network.

The work is done per class of VMs: VMs of one tenant in the same segment, in the
same rule endpoints (groups) of the old and of the new policy, are allowed the
same services by both, so one set difference per class pair stands for all of its
VM pairs. Only tenants the edit touches (their definition, or one of their VMs)
are looked at. VM pairs are then listed, less those the fabric cannot carry, and
every pair with a VM placed differently is judged on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sdnctl.bindings import planned_bindings
from sdnctl.policy.model import ANY, Default, Policy
from sdnctl.policy.services import EMPTY, FULL, ServiceRange, ServiceSet
from sdnctl.topology.model import Topology
from sdnctl.topology.paths import Carriage, carriage

Triple = tuple[str, str, str]  # (source VM, destination VM, service range [+ family])
MAX_LISTED = 3  # VM pairs named per change in the text output


@dataclass(frozen=True, slots=True)
class ClassKey:
    """What the services a VM may open to or accept from a tenant-mate depend on,
    in one policy."""

    tenant: str
    segment: str
    routed: bool
    overlay: bool  # the segment has a VNI (tunnels may carry it)
    groups: tuple[str, ...]  # the rule endpoints naming it (ANY aside), sorted
    ip6: bool = False  # the VM has an IPv6 address
    routed6: bool = False  # its segment has a gateway6

    def label(self) -> str:
        return f"{self.segment}[{','.join(self.groups)}]" if self.groups else self.segment


@dataclass(frozen=True, slots=True)
class Change:
    """VM pairs of one tenant that gain (`added`) or lose one range of services."""

    added: bool
    service: ServiceRange
    tenant: str
    src: str  # class labels (`ClassKey.label`)
    dst: str
    pairs: tuple[tuple[str, str], ...]  # sorted
    family: int | None = None  # 4 or 6: in that family only; None: in every one the pair has

    @property
    def what(self) -> str:
        """The service range, with its family when the change is one family's."""
        return service_text(self.service, self.family)

    def to_text(self) -> str:
        sign, what = ("+", "now allowed") if self.added else ("-", "now denied")
        shown = ", ".join(f"{a}→{b}" for a, b in self.pairs[:MAX_LISTED])
        more = f", +{len(self.pairs) - MAX_LISTED}" if len(self.pairs) > MAX_LISTED else ""
        n = len(self.pairs)
        return (f"{sign} {self.what} {what} {self.tenant}: {self.src}→{self.dst} "
                f"({n} VM pair{'s' if n != 1 else ''}: {shown}{more})")

    def to_json(self) -> dict[str, object]:
        return {"added": self.added, "service": str(self.service),
                "family": f"ipv{self.family}" if self.family else "both", "tenant": self.tenant,
                "from": self.src, "to": self.dst, "pairs": [list(p) for p in self.pairs]}


def service_text(service: ServiceRange, family: int | None) -> str:
    """`tcp/443`, or `tcp/443 (ipv6)` for a change in one family only."""
    return str(service) if family is None else f"{service} (ipv{family})"


def parse_service_text(text: str) -> tuple[ServiceRange, int | None]:
    """The inverse of `service_text`."""
    service, _, family = text.partition(" (ipv")
    return ServiceRange.parse(service), int(family.rstrip(")")) if family else None


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    vm_pairs: int  # ordered VM pairs compared: those of the tenants the edit touches

    @property
    def added(self) -> tuple[Triple, ...]:
        return self._triples(True)

    @property
    def removed(self) -> tuple[Triple, ...]:
        return self._triples(False)

    def _triples(self, added: bool) -> tuple[Triple, ...]:
        return tuple(sorted((a, b, c.what) for c in self.changes if c.added is added
                            for a, b in c.pairs))

    def to_json(self) -> dict[str, object]:
        return {"added": [list(t) for t in self.added], "removed": [list(t) for t in self.removed],
                "changes": [c.to_json() for c in self.changes]}

    def to_text(self) -> str:
        compared = (f"{self.vm_pairs} VM pairs of the tenants it touches compared"
                    if self.vm_pairs else "no tenant changed")
        if not self.changes:
            return f"no change in reachability ({compared})"
        lines = [c.to_text() for c in self.changes]
        lines.append(f"{len(self.added)} added, {len(self.removed)} removed "
                     f"(VM pair × service range; {compared})")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Allowed:
    """What a pair may open, in each family (`v6` empty when either VM has no IPv6)."""

    v4: ServiceSet
    v6: ServiceSet
    dual: bool = False  # both VMs have an IPv6 address

    def __bool__(self) -> bool:
        """Whether the pair may open anything, in either family."""
        return bool(self.v4 or self.v6)


NOTHING = Allowed(EMPTY, EMPTY)


class AllowedServices:
    """What one policy lets VMs of `tenants` open to each other, as ServiceSets per
    family (`allowed` per class pair, `reach` per VM pair where the fabric connects
    them), and where its VMs are placed."""

    def __init__(self, policy: Policy, topology: Topology, fabric: Carriage,
                 tenants: set[str]) -> None:
        self.policy, self.fabric = policy, fabric
        self.host = {n: ref.switch for n, ref in planned_bindings(policy, topology).ports.items()}
        self.keys: dict[str, ClassKey] = {}
        for t in sorted(tenants & policy.tenants.keys()):
            tenant = policy.tenants[t]
            ends = sorted(({r.src for r in tenant.rules} | {r.dst for r in tenant.rules}) - {ANY})
            members = {g: policy.members(t, g) for g in ends}
            for vm in policy.vms_of(t):
                seg = policy.segment_of(vm)
                self.keys[vm.name] = ClassKey(
                    t, seg.name, seg.routed, seg.overlay,
                    tuple(g for g in ends if vm.name in members[g]),
                    vm.ip6 is not None and seg.subnet6 is not None, seg.routed6)
        self._allowed: dict[tuple[ClassKey, ClassKey], Allowed] = {}

    def allowed(self, a: ClassKey | None, b: ClassKey | None) -> Allowed:
        """What a VM of class a may open to another VM of class b."""
        if a is None or b is None or a.tenant != b.tenant:
            return NOTHING
        got = self._allowed.get((a, b))
        if got is None:
            dual = a.ip6 and b.ip6
            got = self._allowed[(a, b)] = Allowed(
                self._compute(a, b, 4), self._compute(a, b, 6) if dual else EMPTY, dual)
        return got

    def _compute(self, a: ClassKey, b: ClassKey, family: int) -> ServiceSet:
        routed = (a.routed and b.routed) if family == 4 else (a.routed6 and b.routed6)
        if a.segment != b.segment and not routed:
            return EMPTY
        tenant = self.policy.tenants[a.tenant]
        if tenant.default is Default.ALLOW:
            return FULL
        src, dst = {ANY, *a.groups}, {ANY, *b.groups}
        return ServiceSet.of(s for r in tenant.rules if r.src in src and r.dst in dst
                             and r.covers(family) for s in r.services)

    def carried(self, a: str, b: str) -> bool:
        """Can a connection between the two open: the request into b's segment and
        the reply into a's (tunnels carry a segment only if it is an overlay)? The
        same in both families."""
        ha, hb = self.host.get(a), self.host.get(b)
        if ha is None or hb is None:
            return False
        return self.fabric.connected(ha, hb, self.keys[a].overlay and self.keys[b].overlay)

    def reach(self, a: str, b: str) -> Allowed:
        """What VM a may open to VM b (nothing when either is not in this policy)."""
        if a == b or a not in self.keys or b not in self.keys or not self.carried(a, b):
            return NOTHING
        return self.allowed(self.keys[a], self.keys[b])


def touched_tenants(old: Policy, new: Policy) -> set[str]:
    """Tenants whose definition or some VM the edit changes (or adds, or removes)."""
    out = {t for t in old.tenants.keys() | new.tenants.keys()
           if old.tenants.get(t) != new.tenants.get(t)}
    if old.vms is not new.vms:
        for name in old.vms.keys() | new.vms.keys():
            a, b = old.vms.get(name), new.vms.get(name)
            if a != b:
                out.update(vm.tenant for vm in (a, b) if vm is not None)
    return out


def plan_edit(old: Policy, new: Policy, topology: Topology) -> Plan:
    tenants = touched_tenants(old, new)
    fabric = carriage(topology)
    before = AllowedServices(old, topology, fabric, tenants)
    after = AllowedServices(new, topology, fabric, tenants)
    names = sorted(before.keys.keys() | after.keys.keys())
    # A VM placed differently (or in one policy only) is judged pair by pair; the
    # others by class, since where they sit is the same on both sides.
    moved = {n for n in names if before.host.get(n) != after.host.get(n)
             or _tenant(before.keys.get(n)) != _tenant(after.keys.get(n))}
    classes: dict[tuple[ClassKey, ClassKey], list[str]] = {}
    for n in names:
        if n not in moved:
            classes.setdefault((before.keys[n], after.keys[n]), []).append(n)
    found: dict[tuple[bool, ServiceRange, int | None, str, str, str], list[tuple[str, str]]] = {}

    def note(pairs: list[tuple[str, str]], was: Allowed, now: Allowed) -> None:
        """`pairs` (all of one class pair, or one pair) went from `was` to `now`."""
        a, b = pairs[0]
        ka, kb = after.keys.get(a) or before.keys[a], after.keys.get(b) or before.keys[b]
        for added, d4, d6 in ((True, now.v4.minus(was.v4), now.v6.minus(was.v6)),
                              (False, was.v4.minus(now.v4), was.v6.minus(now.v6))):
            for family, diff in per_family(d4, d6, was.dual or now.dual):
                for r in diff.ranges():
                    found.setdefault((added, r, family, ka.tenant, ka.label(), kb.label()),
                                     []).extend(pairs)

    by_tenant: dict[str, list[tuple[ClassKey, ClassKey]]] = {}
    for key in classes:
        by_tenant.setdefault(key[0].tenant, []).append(key)
    for group in by_tenant.values():
        for ka in group:
            for kb in group:
                was, now = before.allowed(ka[0], kb[0]), after.allowed(ka[1], kb[1])
                if (ka[0].overlay and kb[0].overlay) != (ka[1].overlay and kb[1].overlay):
                    # Tunnels carry the pair on one side only.
                    for a, b in _pairs(classes[ka], classes[kb]):
                        was_ab, now_ab = before.reach(a, b), after.reach(a, b)
                        if was_ab != now_ab:
                            note([(a, b)], was_ab, now_ab)
                    continue
                if was == now:
                    continue
                # Not moved, same overlay: carried alike on both sides.
                pairs = [(a, b) for a, b in _pairs(classes[ka], classes[kb])
                         if before.carried(a, b)]
                if pairs:
                    note(pairs, was, now)
    for m in sorted(moved):
        for other in names:
            for a, b in ((m, other), (other, m)):
                if a == b or (a in moved and b in moved and a != m):
                    continue  # a pair of two moved VMs is judged once, from its source
                was, now = before.reach(a, b), after.reach(a, b)
                if was != now:
                    note([(a, b)], was, now)
    changes = tuple(Change(added, r, t, s, d, tuple(sorted(p)), family)
                    for (added, r, family, t, s, d), p in sorted(found.items(), key=_order))
    from sdnctl.verify.plan_outside import outside_changes  # it builds on this module

    changes += outside_changes(old, new, tenants)
    return Plan(changes, len(names) * (len(names) - 1))


def per_family(d4: ServiceSet, d6: ServiceSet, dual: bool
               ) -> tuple[tuple[int | None, ServiceSet], ...]:
    """A change as (family, services): what both families share once, unqualified,
    and the rest per family. A pair without IPv6 on either side has IPv4 alone."""
    if not dual:
        return ((None, d4),)
    both = d4.minus(d4.minus(d6))  # d4 ∩ d6
    return ((None, both), (4, d4.minus(both)), (6, d6.minus(both)))


def _tenant(key: ClassKey | None) -> str | None:
    return key.tenant if key is not None else None


def _pairs(xs: Iterable[str], ys: Iterable[str]) -> Iterator[tuple[str, str]]:
    ys = list(ys)
    for x in xs:
        for y in ys:
            if x != y:
                yield x, y


def _order(item: tuple[tuple[bool, ServiceRange, int | None, str, str, str],
                        list[tuple[str, str]]]) -> tuple[object, ...]:
    (added, r, family, t, s, d), _ = item
    return (t, s, d, not added, family or 0, r)
