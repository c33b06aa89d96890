"""Re-reading an edited policy file at the cost of what changed, not of the file's size.

`PolicyRereader.read` gives exactly what `parse_policy` gives (the same `Policy`,
with the same lines, or the same `LoadError`), but remembers its last good read:
when the new text differs from it only inside the entries of `tenants:` or of
`vms:`, it parses and checks only those entries and reuses the rest.

How an edit is located: the two texts' common prefix and suffix bound the change;
the entries of the split mapping that touch it (an entry's block runs from its
key's line, at the mapping's indentation, to the next key's line) are parsed
again, alone, padded with empty lines so that libyaml reports the file's own line
numbers. Entries before the change keep their model objects; entries after it
keep them too, moved by the change's line count.

What is checked again: an edited VM entry in full, in the context of the tenants
and the topology (the same `_PolicyReader` code as a full read), plus the
policy-wide rules it takes part in (MAC and IP uniqueness, explicit group
members). An edited tenant entry in full, its groups and rules included, provided
its segments and default come out exactly as before (else every VM of it would
need checking again: that is a full read).

Anything else is a full read: no good read yet, another topology or file name, a
change outside one split mapping or spanning both, a tenant added, removed or
renamed, a segment changed, anchors or aliases (`&`, `*`), block scalars, tabs,
line breaks other than `\\n`, a line at an entry's indentation that is not a new
entry, a fragment libyaml will not parse alone, and any problem at all (so every
refused edit is reported by the full read, with its exact lines and wording).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from itertools import islice
from types import MappingProxyType
from typing import Any, cast

from sdnctl.policy.drafts import (
    SegmentDraft,
    TenantDraft,
    VMDraft,
    build_segment,
    build_tenant,
    build_vm,
)
from sdnctl.policy.load import _PolicyReader
from sdnctl.policy.model import VM, Policy, Tenant
from sdnctl.topology.model import Topology
from sdnctl.yamlsrc import LineDict, Report, load_yaml, try_load_yaml

SPLIT_KEYS = ("tenants", "vms")  # the top-level mappings re-read entry by entry

# Characters whose meaning reaches beyond one entry (anchors and aliases) or that
# move line numbers in ways a newline count does not see.
_UNSAFE_FILE = re.compile("[&*\r\x85\u2028\u2029]")
# ... and, inside re-parsed entries, block scalars and tabs (rare; not worth the risk).
_UNSAFE_ENTRY = re.compile("[&*\r\x85\u2028\u2029\t|>]")
_TOP_LINE = re.compile(r"^[^ \n#]", re.M)  # a top-level key (or a document marker)
_CONTENT_LINE = re.compile(r"^ *[^ \n#]", re.M)
_COMPARE_STEPS = (1 << 16, 1 << 12, 1 << 8, 1 << 4, 1)


@dataclass(frozen=True, slots=True, repr=False)  # no 20k-VM reprs in logs
class _Section:
    """Where the entries of one split mapping start in one text."""

    indent: int  # columns before each entry's key
    starts: list[int]  # offset of each entry's first line, in file order
    lines: list[int]  # ... and its line number
    names: list[str]
    end: int  # offset just past the mapping: the next top-level line, or the end of text


@dataclass(frozen=True, slots=True, repr=False)  # no 20k-VM reprs in logs
class _GoodRead:
    """The last text that was read without a problem, and what is kept about it."""

    text: str
    source: str
    topology: Topology | None
    policy: Policy
    sections: dict[str, _Section]
    macs: dict[str, VM]  # every VM by MAC
    ips: set[tuple[str, IPv4Address]]  # (tenant, ip) of every VM
    listed: frozenset[str]  # VMs some group names explicitly


class PolicyRereader:
    """Reads successive versions of one policy file; see the module docstring.

    Only a good read is remembered, so a refused edit followed by a good one is
    re-read against the last good text."""

    def __init__(self) -> None:
        self._last: _GoodRead | None = None
        self.last_mode = ""  # "full", "incremental" or "unchanged": for tests and benchmarks

    def read(self, text: str, source: str, topology: Topology | None = None) -> Policy:
        """What `parse_policy(text, source, topology)` returns or raises."""
        last = self._last
        if last is not None and last.source == source and _same_topology(last.topology,
                                                                          topology):
            if text == last.text:
                self.last_mode = "unchanged"
                return last.policy
            good = _reread(last, text)
            if good is not None:
                self._last = good
                self.last_mode = "incremental"
                return good.policy
        self.last_mode = "full"
        data = load_yaml(text, source)
        report = Report(source)
        policy = _PolicyReader(report, topology).read(data)
        report.raise_if_any()
        assert policy is not None  # built whenever nothing was reported
        self._last = _index(text, source, topology, data, policy)
        return policy


def _same_topology(a: Topology | None, b: Topology | None) -> bool:
    """Whether a policy checks the same against both (only the switches matter)."""
    if a is None or b is None:
        return a is b
    return a is b or a.switches == b.switches


# -- indexing a full read ---------------------------------------------------------


def _index(text: str, source: str, topology: Topology | None, data: Any,
           policy: Policy) -> _GoodRead | None:
    """What a later re-read needs; None when this text cannot be split safely."""
    if _UNSAFE_FILE.search(text) or not isinstance(data, LineDict):
        return None
    line_starts = [0, *(m.end() for m in re.finditer("\n", text))]
    sections: dict[str, _Section] = {}
    for key in SPLIT_KEYS:
        section = _find_section(text, line_starts, data, key)
        if section is None:
            return None
        sections[key] = section
    vms = policy.vms.values()
    return _GoodRead(
        text, source, topology, policy, sections,
        {vm.mac: vm for vm in vms}, {(vm.tenant, vm.ip) for vm in vms},
        _listed(policy),
    )


def _find_section(text: str, line_starts: list[int], data: LineDict,
                  key: str) -> _Section | None:
    """The entries of top-level mapping `key`, if every entry line the text shows is
    exactly an entry the parser found (else the split cannot be trusted)."""
    mapping = data.get(key)
    if not isinstance(mapping, LineDict) or not mapping:
        return None
    header = re.compile(rf"{key}:[ ]*(?:#[^\n]*)?\n").match(text,
                                                            line_starts[data.key_line(key) - 1])
    if header is None:
        return None
    top = _TOP_LINE.search(text, header.end())
    end = top.start() if top else len(text)
    first = line_starts[mapping.key_line(next(iter(mapping))) - 1]
    indent = _indent_at(text, first)
    if indent == 0:
        return None
    starts = _entry_starts(text, header.end(), end, indent)
    if starts is None:
        return None
    lines = [bisect_right(line_starts, s) for s in starts]
    if lines != [mapping.key_line(name) for name in mapping]:
        return None
    return _Section(indent, starts, lines, list(mapping), end)


def _indent_at(text: str, start: int) -> int:
    n = start
    while n < len(text) and text[n] == " ":
        n += 1
    return n - start


def _entry_starts(text: str, lo: int, hi: int, indent: int) -> list[int] | None:
    """Offsets of the lines in [lo, hi) that start an entry at `indent`; None when some
    line there holds content left of `indent` (the mapping would end there)."""
    if re.compile(rf"^ {{0,{indent - 1}}}[^ \n#]", re.M).search(text, lo, hi):
        return None
    return [m.start() for m in re.compile(rf"^ {{{indent}}}[^ \n#]", re.M).finditer(text, lo, hi)]


def _listed(policy: Policy) -> frozenset[str]:
    return frozenset(name for t in policy.tenants.values() for g in t.groups.values()
                     for name in g.vms)


# -- re-reading -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)  # no 20k-VM reprs in logs
class _Edit:
    """Entries [first, last] of one section replaced by what a fragment holds."""

    key: str
    first: int
    last: int
    lo: int  # offset of the fragment (the same in both texts)
    hi_old: int  # offset just past the replaced entries in the old text
    hi_new: int
    starts: list[int]  # the fragment's entries, in the new text
    entry_lines: list[int]
    entries: LineDict  # the fragment, parsed (keys in file order, file lines)
    lines: int  # lines added (negative: removed)
    chars: int  # characters added


def _reread(last: _GoodRead, new: str) -> _GoodRead | None:
    edit = _locate(last, new)
    if edit is None:
        return None
    if edit.key == "vms":
        return _reread_vms(last, new, edit)
    return _reread_tenants(last, new, edit)


def _locate(last: _GoodRead, new: str) -> _Edit | None:
    """The one section whose entries hold the whole change, parsed again; or None."""
    old = last.text
    p = _common_prefix(old, new)
    q_old = len(old) - _common_suffix(old, new, min(len(old), len(new)) - p)
    key = next((k for k, sec in last.sections.items()
                if sec.starts[0] <= p and q_old <= sec.end), None)
    if key is None:
        return None
    sec = last.sections[key]
    first = max(bisect_left(sec.starts, p) - 1, 0)  # the entry ending at p too
    last_entry = bisect_right(sec.starts, q_old) - 1
    lo = sec.starts[first]
    hi_old = sec.starts[last_entry + 1] if last_entry + 1 < len(sec.starts) else sec.end
    chars = len(new) - len(old)
    hi_new = hi_old + chars
    if hi_new < lo or (hi_new < len(new) and new[hi_new - 1] != "\n"):
        return None
    if _UNSAFE_ENTRY.search(new, lo, hi_new):
        return None
    starts = _entry_starts(new, lo, hi_new, sec.indent)
    if starts is None:
        return None
    content = _CONTENT_LINE.search(new, lo, starts[0] if starts else hi_new)
    if content is not None:  # something before the first entry: it belongs to another
        return None
    if not starts and first == 0 and last_entry + 1 == len(sec.starts):
        return None  # the mapping became empty
    line_lo = sec.lines[first]
    ok, data = try_load_yaml("\n" * (line_lo - 1) + new[lo:hi_new], last.source)
    if not ok:
        return None
    entries = data if data is not None else LineDict()
    if not isinstance(entries, LineDict) or len(entries) != len(starts):
        return None
    line, at = line_lo, lo
    entry_lines = []
    for start, name in zip(starts, entries, strict=True):
        line += new.count("\n", at, start)
        at = start
        entry_lines.append(line)
        if entries.key_line(name) != line or not isinstance(name, str) or not name.strip():
            return None
    kept = set(sec.names[:first]) | set(sec.names[last_entry + 1:])
    if not kept.isdisjoint(entries):
        return None  # a name used twice: the full read reports the duplicate
    lines = new.count("\n", lo, hi_new) - old.count("\n", lo, hi_old)
    return _Edit(key, first, last_entry, lo, hi_old, hi_new, starts, entry_lines, entries,
                 lines, chars)


def _common_prefix(a: str, b: str) -> int:
    n, most = 0, min(len(a), len(b))
    for step in _COMPARE_STEPS:  # long slices first: the comparisons run in C
        while n + step <= most and a[n:n + step] == b[n:n + step]:
            n += step
    return n


def _common_suffix(a: str, b: str, most: int) -> int:
    """Characters that end both texts alike, at most `most`."""
    n, la, lb = 0, len(a), len(b)
    for step in _COMPARE_STEPS:
        while n + step <= most and a[la - n - step:la - n] == b[lb - n - step:lb - n]:
            n += step
    return n


def _next_sections(last: _GoodRead, edit: _Edit) -> dict[str, _Section]:
    """Every section's entries in the new text: the edited one spliced, any later one
    moved by the characters and lines added."""
    sections: dict[str, _Section] = {}
    for key, sec in last.sections.items():
        if key == edit.key:
            after = edit.last + 1
            starts = [s + edit.chars for s in sec.starts[after:]]
            lines = [n + edit.lines for n in sec.lines[after:]]
            sections[key] = _Section(
                sec.indent,
                sec.starts[:edit.first] + edit.starts + starts,
                sec.lines[:edit.first] + edit.entry_lines + lines,
                sec.names[:edit.first] + list(edit.entries) + sec.names[after:],
                sec.end + edit.chars,
            )
        elif sec.starts[0] > edit.lo:
            sections[key] = _Section(sec.indent, [s + edit.chars for s in sec.starts],
                                     [n + edit.lines for n in sec.lines], sec.names,
                                     sec.end + edit.chars)
        else:
            sections[key] = sec
    return sections


def _is_after(last: _GoodRead, key: str, edit: _Edit) -> bool:
    return last.sections[key].starts[0] > edit.lo


def _reread_vms(last: _GoodRead, new: str, edit: _Edit) -> _GoodRead | None:
    policy = last.policy
    sec = last.sections["vms"]
    removed = [policy.vms[name] for name in sec.names[edit.first:edit.last + 1]]
    reader = _PolicyReader(Report(last.source), last.topology)
    reader.tenants = cast(Any, _TenantDrafts(policy.tenants))
    macs = dict(last.macs)
    ips = set(last.ips)
    for vm in removed:
        del macs[vm.mac]
        ips.discard((vm.tenant, vm.ip))
    reader.macs = cast(Any, macs)  # the reader only asks a clash's .name and .line
    for name, body in edit.entries.items():
        reader._vm(name, body, edit.entries.key_line(name))
    if reader.r.problems:
        return None
    if _nat_of_vms(removed) != _nat_of_vms(reader.vms.values()):
        return None  # NAT addresses are checked across the policy: the full read does
    for draft in reader.vms.values():
        key = (cast(str, draft.tenant), cast(IPv4Address, draft.ip))
        if key in ips:
            return None  # an IP used twice in a tenant: the full read says by whom
        ips.add(key)
    for vm in removed:  # a group naming it must still find it in the same tenant
        again = reader.vms.get(vm.name)
        if vm.name in last.listed and (again is None or again.tenant != vm.tenant):
            return None

    vms: dict[str, VM] = dict(islice(policy.vms.items(), edit.first))
    for name, draft in reader.vms.items():
        vm = build_vm(draft)
        before = policy.vms.get(name)
        vms[name] = before if before == vm and before is not None and (
            before.line == vm.line) else vm
        macs[vm.mac] = vms[name]
    after = islice(policy.vms.items(), edit.last + 1, None)
    if not edit.lines:
        vms.update(after)
    else:
        vms.update((name, _moved_vm(vm, edit.lines)) for name, vm in after)
        macs = {vm.mac: vm for vm in vms.values()}
    tenants = policy.tenants
    if edit.lines and _is_after(last, "tenants", edit):
        tenants = MappingProxyType({n: _moved_tenant(t, edit.lines) for n, t in tenants.items()})
    result = Policy(tenants, MappingProxyType(vms), policy.source)
    return _GoodRead(new, last.source, last.topology, result, _next_sections(last, edit),
                     macs, ips, last.listed)


def _reread_tenants(last: _GoodRead, new: str, edit: _Edit) -> _GoodRead | None:
    policy = last.policy
    names = last.sections["tenants"].names[edit.first:edit.last + 1]
    if list(edit.entries) != names:
        return None  # a tenant added, removed or renamed
    reader = _PolicyReader(Report(last.source), last.topology)
    reader.vms = cast(Any, policy.vms)  # groups ask a named VM's .tenant only
    for name, body in edit.entries.items():
        reader._tenant(name, body, edit.entries.key_line(name))
    if reader.r.problems:
        return None
    for name, draft in reader.tenants.items():
        before = policy.tenants[name]
        if draft.default != before.default or list(draft.segments) != list(before.segments):
            return None
        if any(build_segment(s) != before.segments[n] for n, s in draft.segments.items()):
            return None  # its VMs would need checking again
        if draft.snat != before.snat:
            return None  # NAT addresses are checked across the policy: the full read does
        reader._groups(draft)
        reader._rules(draft)
    if reader.r.problems:
        return None

    olds = list(policy.tenants.values())
    tenants: dict[str, Tenant] = {t.name: t for t in olds[:edit.first]}
    for name, draft in reader.tenants.items():
        tenants[name] = build_tenant(draft)
    for t in olds[edit.last + 1:]:
        tenants[t.name] = _moved_tenant(t, edit.lines)
    vms = policy.vms
    macs = last.macs
    if edit.lines and _is_after(last, "vms", edit):
        vms = MappingProxyType({n: _moved_vm(vm, edit.lines) for n, vm in vms.items()})
        macs = {vm.mac: vm for vm in vms.values()}
    result = Policy(MappingProxyType(tenants), vms, policy.source)
    return _GoodRead(new, last.source, last.topology, result, _next_sections(last, edit),
                     macs, last.ips, _listed(result))


def _nat_of_vms(vms: Iterable[VM | VMDraft]) -> list[tuple[str, IPv4Address]]:
    """The floating IPs among `vms`, by VM: while they stay the same, the checks
    across the policy's NAT addresses (sdnctl.policy.load_ns) say what they said."""
    return sorted((vm.name, vm.floating_ip) for vm in vms if vm.floating_ip is not None)


# -- model objects, moved or seen as drafts -----------------------------------------


class _TenantDrafts(Mapping[str, TenantDraft]):
    """Valid tenants as drafts, made when a re-read VM asks for its tenant."""

    def __init__(self, tenants: Mapping[str, Tenant]) -> None:
        self._tenants = tenants
        self._drafts: dict[str, TenantDraft] = {}

    def __getitem__(self, name: str) -> TenantDraft:
        draft = self._drafts.get(name)
        if draft is None:
            draft = self._drafts[name] = _tenant_draft(self._tenants[name])
        return draft

    def __contains__(self, name: object) -> bool:
        return name in self._tenants

    def __iter__(self) -> Iterator[str]:
        return iter(self._tenants)

    def __len__(self) -> int:
        return len(self._tenants)


def _tenant_draft(t: Tenant) -> TenantDraft:
    """A valid tenant as the reader's VM checks see it (segments only)."""
    draft = TenantDraft(t.name, t.line, LineDict(t.line), default=t.default)
    for name, s in t.segments.items():
        draft.segments[name] = SegmentDraft(t.name, name, s.line, s.vlan, s.vni, s.subnet,
                                            s.gateway, s.dns, s.subnet6, s.gateway6)
    return draft


# `replace`, not the constructor: a moved object keeps every field it has (its
# IPv6 address, waivers, floating IP, DNS servers, SNAT pool), only its line moves.


def _moved_vm(vm: VM, lines: int) -> VM:
    return replace(vm, line=vm.line + lines) if lines else vm


def _moved_tenant(t: Tenant, lines: int) -> Tenant:
    if not lines:
        return t
    return replace(  # every other field (dns, snat, log_denied, ...) as it was
        t,
        segments=MappingProxyType({n: replace(s, line=s.line + lines)
                                   for n, s in t.segments.items()}),
        groups=MappingProxyType({n: replace(g, line=g.line + lines)
                                 for n, g in t.groups.items()}),
        rules=tuple(replace(r, line=r.line + lines) for r in t.rules),
        line=t.line + lines,
    )
