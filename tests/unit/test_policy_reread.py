"""Re-reading an edited policy gives exactly what a full read gives.

The property: for random edits of random policies (VMs, rules, groups and segments
changed, added or removed; comments and whitespace; broken YAML; duplicate keys; bad
values), `PolicyRereader.read` returns a policy equal to `parse_policy`'s, with the
same lines and the same order, or raises the same problems, after any sequence of
earlier edits (good or refused). The edits are applied in sequence to one reader,
so a refused edit followed by a good one is exercised too.
"""

from __future__ import annotations

import inspect
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from sdnctl.bench.datacentre import datacentre, leaf_spine, policy_doc
from sdnctl.policy.load import _PolicyReader, parse_policy
from sdnctl.policy.model import Policy
from sdnctl.policy.reread import PolicyRereader
from sdnctl.topology.load import parse_topology
from sdnctl.topology.model import Topology
from sdnctl.yamlsrc import LoadError

TOPOLOGIES = Path(__file__).resolve().parent.parent.parent / "topologies"
SOURCE = "edit.yaml"
TOPOLOGY = leaf_spine(4)  # hypervisors hv0..hv3; leaf0a, spine0, ... are fabric


def _shape(policy: Policy) -> Any:
    """Everything a read decides, lines and file order included (Policy's own
    equality leaves lines out)."""
    return (
        policy,
        policy.source,
        [(t.name, t.line, [(s.name, s.line) for s in t.segments.values()],
          [(g.name, g.line) for g in t.groups.values()], [r.line for r in t.rules])
         for t in policy.tenants.values()],
        [(vm.name, vm.line) for vm in policy.vms.values()],
    )


def _outcome(read: Any) -> Any:
    try:
        return "ok", _shape(read())
    except LoadError as exc:
        return "refused", [str(p) for p in exc.problems]


def _check(reader: PolicyRereader, text: str, topology: Topology | None) -> str:
    full = _outcome(lambda: parse_policy(text, SOURCE, topology))
    again = _outcome(lambda: reader.read(text, SOURCE, topology))
    assert again == full, text
    return reader.last_mode


# -- random policies ------------------------------------------------------------------


def _random_doc(rng: random.Random) -> dict[str, Any]:
    tenants: dict[str, Any] = {}
    vms: dict[str, Any] = {}
    for t in range(rng.randint(1, 3)):
        name = f"t{t}"
        segments = {}
        for s in range(rng.randint(1, 3)):
            seg: dict[str, Any] = {"vlan": 10 * t + s + 1, "subnet": f"10.{t}.{s}.0/24"}
            if rng.random() < 0.7:
                seg["gateway"] = f"10.{t}.{s}.1"
            segments[f"s{s}"] = seg
        members = []
        for v in range(rng.randint(0, 6)):
            vm_name = f"{name}v{v}"
            s = rng.randrange(len(segments))
            vm: dict[str, Any] = {"tenant": name, "segment": f"s{s}",
                                  "mac": f"02:00:00:00:{t:02x}:{v:02x}",
                                  "ip": f"10.{t}.{s}.{10 + v}"}
            if rng.random() < 0.7:
                vm["labels"] = {"tier": rng.choice(["a", "b"])}
            if rng.random() < 0.8:
                vm["host"] = f"hv{rng.randrange(4)}"
            if rng.random() < 0.3:
                vm["rate_limit_mbps"] = rng.choice([10, 100])
            vms[vm_name] = vm
            members.append(vm_name)
        groups: dict[str, Any] = {"ga": {"labels": {"tier": "a"}}, "gb": {"labels": {"tier": "b"}}}
        if members:
            groups["ops"] = {"vms": rng.sample(members, rng.randint(1, len(members)))}
        rules = [{"from": rng.choice([*groups, "any"]), "to": rng.choice([*groups, "any"]),
                  "allow": rng.sample(["tcp/80", "icmp", "udp/53", "tcp/8000-8100"],
                                      rng.randint(1, 3))}
                 for _ in range(rng.randint(0, 4))]
        tenants[name] = {"default": rng.choice(["deny", "allow"]), "segments": segments,
                         "groups": groups, "rules": rules}
    doc: dict[str, Any] = {"version": 1}
    order = ["tenants", "vms"] if rng.random() < 0.7 else ["vms", "tenants"]
    for key in order:
        doc[key] = tenants if key == "tenants" else vms
    return doc


def _random_text(rng: random.Random) -> str:
    if rng.random() < 0.3:
        name = rng.choice(["three-tier", "leaf-spine", "single", "multi-tenant", "overlay"])
        return (TOPOLOGIES / f"{name}.policy.yaml").read_text()
    doc = _random_doc(rng)
    style = rng.choice([False, None])  # block everywhere, or leaves in flow style
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=style,
                          indent=rng.choice([2, 4]), width=rng.choice([80, 200]))


# -- random edits ---------------------------------------------------------------------

JUNK = ["  x: [1, 2", "{", ": - :", "\tfoo: 1", "  &a bad: 1", "  b: *a", "---", "...",
        "vms: 3", "  ? x", "      - |", "  bad", "  'q: 1", '  "open', "#", "  ", "%YAML 1.1"]
VALUES = ["hv1", "hv9", "leaf0a", "10.0.0.300", "10.0.0.5", "02:00:00:00:00:01", "tcp/99999",
          "tcp/80", "icmp", "nope", "any", "ga", "gb", "ops", "5000", "12", "-1", "true", "~",
          "[]", "{}", "deny", "allow", "s0", "s1", "t0", "t1", "10.0.0.0/24", "10.1.0.0/16"]


def _entry_blocks(lines: list[str], indent: int) -> list[tuple[int, int]]:
    """(first, end) line ranges of the entries at `indent` (an approximation of the
    real structure: good enough to pick something to copy or delete)."""
    starts = [i for i, line in enumerate(lines)
              if line.startswith(" " * indent) and line[indent:indent + 1] not in ("", " ", "#")
              and not line.lstrip().startswith("-")]
    blocks = []
    for a, b in zip(starts, [*starts[1:], len(lines)]):  # noqa: B905
        end = a + 1
        while end < b and lines[end].startswith(" " * (indent + 1)):
            end += 1
        blocks.append((a, end))
    return blocks


def _edit(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    kind = rng.randrange(9)
    if kind == 0:  # a value changed
        line = lines[i]
        if ":" in line:
            lines[i] = line[:line.index(":") + 1] + " " + rng.choice(VALUES)
        elif line.lstrip().startswith("- "):
            lines[i] = line[:line.index("-") + 2] + rng.choice(VALUES)
    elif kind == 1:  # an entry copied (a duplicate, or renamed), maybe with new values
        blocks = _entry_blocks(lines, rng.choice([2, 4, 6, 8]))
        if blocks:
            a, b = rng.choice(blocks)
            copy = lines[a:b]
            if rng.random() < 0.7:
                head = copy[0]
                colon = head.index(":") if ":" in head else len(head)
                copy[0] = head[:colon].rstrip() + f"x{rng.randrange(99)}" + head[colon:]
            for n, line in enumerate(copy):
                if rng.random() < 0.3 and ("mac" in line or "ip:" in line or "vlan" in line):
                    copy[n] = line.replace("0", str(rng.randrange(10)), 1)
            at = rng.choice(blocks)[rng.randrange(2)]
            lines[at:at] = copy
    elif kind == 2:  # an entry removed
        blocks = _entry_blocks(lines, rng.choice([2, 4, 6, 8]))
        if blocks:
            a, b = rng.choice(blocks)
            del lines[a:b]
    elif kind == 3:  # a comment or blank line, anywhere, at any indentation
        lines.insert(i, " " * rng.choice([0, 1, 2, 4, 6]) + rng.choice(["# note", "", "   "]))
    elif kind == 4:  # trailing whitespace or a comment after a value
        lines[i] = lines[i] + rng.choice(["  ", " # why", "\t"])
    elif kind == 5:  # broken YAML or a structure the split must not trust
        lines.insert(i, rng.choice(JUNK))
    elif kind == 6:  # a line removed or repeated (duplicate keys, broken entries)
        if rng.random() < 0.5:
            del lines[i]
        else:
            lines.insert(i, lines[i])
    elif kind == 7:  # an indentation change
        lines[i] = lines[i][rng.choice([1, 2]):] if lines[i].startswith("  ") else " " + lines[i]
    else:  # one character changed
        if lines[i]:
            c = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:c] + rng.choice("0159az:-{}[]# ,'\"") + lines[i][c + 1:]
    return "\n".join(lines)


@pytest.mark.parametrize("seed", range(40))
def test_random_edits_read_like_a_full_read(seed: int) -> None:
    rng = random.Random(seed)
    modes: dict[str, int] = {}
    for _ in range(10):
        reader = PolicyRereader()
        topology = TOPOLOGY if rng.random() < 0.8 else None
        text = _random_text(rng)
        _check(reader, text, topology)
        for _ in range(rng.randint(1, 8)):
            if rng.random() < 0.5:
                text = _edit(rng, text)  # edits pile up: most end refused
            else:
                good = text if reader._last is None else reader._last.text
                text = _edit(rng, good)  # an edit of the last good text
            mode = _check(reader, text, topology)
            modes[mode] = modes.get(mode, 0) + 1
    assert modes.get("full", 0) > 0


def test_the_random_edits_take_the_incremental_path_often() -> None:
    """Else the property above would only compare the full read with itself: most good
    edits of a good text (and many refused ones, tried first) go the incremental way."""
    rng = random.Random(7)
    modes: dict[str, int] = {}
    for _ in range(30):
        reader = PolicyRereader()
        text = yaml.safe_dump(_random_doc(rng), sort_keys=False)
        if not _ok(text):
            continue
        reader.read(text, SOURCE, TOPOLOGY)
        for _ in range(8):
            new = _edit(rng, text)
            if _ok(new) and new != text:
                mode = _check(reader, new, TOPOLOGY)
                modes[mode] = modes.get(mode, 0) + 1
                text = new
    assert modes.get("incremental", 0) >= 2 * modes.get("full", 0), modes


def _ok(text: str) -> bool:
    return _outcome(lambda: parse_policy(text, SOURCE, TOPOLOGY))[0] == "ok"


# -- the edits the daemon sees most, on a data centre file ----------------------------


@pytest.fixture(scope="module")
def datacentre_text() -> tuple[str, Topology]:
    policy, topology = datacentre(250, "scattered")
    return yaml.safe_dump(policy_doc(policy), sort_keys=False, width=200), topology


def _vm_block_end(text: str, name: str) -> int:
    start = text.index(f"\n  {name}:\n") + 1
    return text.index("\n  t", start + 1) + 1


DATACENTRE_EDITS = {
    "a rule gains a port": lambda t: t.replace("      - tcp/8000-8100\n",
                                               "      - tcp/8000-8100\n      - tcp/9000\n", 1),
    "a group gains a member": lambda t: t.replace(
        "          tier: db\n    rules:", "          tier: db\n      ops:\n        vms:\n"
        "        - t0vm3\n    rules:", 1),
    "a VM added": lambda t: t.replace(
        "  t1vm5:\n", "  t1vmNEW:\n    tenant: t1\n    segment: db\n    mac: 02:00:00:ff:00:01\n"
        "    ip: 10.2.9.9\n    host: hv3\n  t1vm5:\n", 1),
    "a VM removed": lambda t: t[:t.index("\n  t1vm5:\n") + 1] + t[_vm_block_end(t, "t1vm5"):],
    "a comment": lambda t: t.replace("  t1vm5:\n", "  # the new one\n  t1vm5:\n", 1),
}


@pytest.mark.parametrize("edit", list(DATACENTRE_EDITS))
def test_common_edits_are_read_incrementally(datacentre_text: tuple[str, Topology],
                                             edit: str) -> None:
    text, topology = datacentre_text
    new = DATACENTRE_EDITS[edit](text)
    assert new != text
    reader = PolicyRereader()
    reader.read(text, SOURCE, topology)
    assert _check(reader, new, topology) == "incremental"


def test_a_vm_moved_to_another_host_is_read_incrementally(
        datacentre_text: tuple[str, Topology]) -> None:
    text, topology = datacentre_text
    at = text.index("    host: ", text.index("\n  t1vm7:\n"))
    end = text.index("\n", at)
    moved = text[:at] + "    host: hv0" + text[end:]
    reader = PolicyRereader()
    before = reader.read(text, SOURCE, topology)
    assert _check(reader, moved, topology) == "incremental"
    after = reader.read(moved, SOURCE, topology)
    assert after.vms["t1vm7"].host == "hv0" != before.vms["t1vm7"].host
    assert after.vms["t1vm8"] is before.vms["t1vm8"]  # unchanged entries are reused


def test_a_refused_edit_then_a_good_one(datacentre_text: tuple[str, Topology]) -> None:
    text, topology = datacentre_text
    reader = PolicyRereader()
    reader.read(text, SOURCE, topology)
    bad = text.replace("    host: hv", "    host: nowhere", 1)
    with pytest.raises(LoadError) as refused:
        reader.read(bad, SOURCE, topology)
    with pytest.raises(LoadError) as full:
        parse_policy(bad, SOURCE, topology)
    assert refused.value.problems == full.value.problems
    good = DATACENTRE_EDITS["a rule gains a port"](text)
    assert _check(reader, good, topology) == "incremental"


def test_a_segment_change_or_an_anchor_takes_the_full_read(
        datacentre_text: tuple[str, Topology]) -> None:
    text, topology = datacentre_text
    for new in (text.replace("subnet: 10.2.0.0/16", "subnet: 10.2.0.0/17", 1),
                text.replace("  t1vm5:\n    tenant: t1\n", "  t1vm5:\n    tenant: &t t1\n", 1)):
        reader = PolicyRereader()
        reader.read(text, SOURCE, topology)
        assert _check(reader, new, topology) == "full"


def test_another_topology_takes_the_full_read(datacentre_text: tuple[str, Topology]) -> None:
    text, topology = datacentre_text
    reader = PolicyRereader()
    reader.read(text, SOURCE, topology)
    fewer = parse_topology("version: 1\nswitches:\n  hv0: {dpid: 1, role: hypervisor}\n", "t")
    with pytest.raises(LoadError):  # hosts hv1.. are gone: refused, as a full read says
        reader.read(DATACENTRE_EDITS["a comment"](text), SOURCE, fewer)
    assert reader.last_mode == "full"


def test_the_full_reads_checks_are_the_ones_the_rereader_knows() -> None:
    """The re-reader repeats `_PolicyReader.read`'s policy-wide checks for the entries it
    re-reads (MAC and IP uniqueness, group members, tenant ids). A check added there
    must be added to sdnctl/policy/reread.py too; then update the list below."""
    calls = [line.strip() for line in inspect.getsource(_PolicyReader.read).splitlines()
             if "self._" in line]
    assert calls == [
        "self._tenant(name, body, line)",
        "self._vm(name, body, line)",
        "self._check_ips()",
        "self._check_nat()",
        "self._groups(tenant)",
        "self._rules(tenant)",
        "self._check_tenant_ids()",
        "return None if self.r.problems else self._build()",
    ]


# -- the daemon's reload path -----------------------------------------------------------


def test_the_daemons_reloads_reuse_the_last_good_read(
        datacentre_text: tuple[str, Topology], tmp_path: Path) -> None:
    from sdnctl.bench.datacentre import topology_doc
    from sdnctl.live.sources import SourceReads, load_sources, read_version

    text, topology = datacentre_text
    policy_path, topology_path = tmp_path / "p.yaml", tmp_path / "t.yaml"
    topology_path.write_text(yaml.safe_dump(topology_doc(topology), sort_keys=False))
    policy_path.write_text(text)
    reads = SourceReads()
    first = load_sources(read_version(policy_path), read_version(topology_path), reads)
    modes = []
    good = DATACENTRE_EDITS["a rule gains a port"](text)
    for new in (good, good.replace("    host: hv", "    host: nowhere", 1),
                DATACENTRE_EDITS["a VM added"](good)):  # re-read against the last good
        policy_path.write_text(new)
        files = read_version(policy_path), read_version(topology_path)
        try:
            got: Any = _shape(load_sources(*files, reads).policy)
        except LoadError as exc:
            got = [str(p) for p in exc.problems]
        try:
            expected: Any = _shape(load_sources(*files).policy)
        except LoadError as exc:
            expected = [str(p) for p in exc.problems]
        assert got == expected
        modes.append(reads.policies.last_mode)
    assert modes == ["incremental", "full", "incremental"]
    again = load_sources(read_version(policy_path), read_version(topology_path), reads)
    assert again.topology is first.topology  # the same bytes: not parsed again


DUAL_STACK = """\
version: 1
tenants:
  t:
    dns: [10.0.0.53]
    segments:
      s: {vlan: 10, subnet: 10.0.0.0/24, gateway: 10.0.0.1, subnet6: "fd00::/64",
          gateway6: "fd00::1", dns: [10.0.0.54]}
    rules:
      - {from: any, to: any, allow: [icmp], family: ipv6}
vms:
  a: {tenant: t, segment: s, mac: "02:00:00:00:00:01", ip: 10.0.0.11, host: hv1}
  b: {tenant: t, segment: s, mac: "02:00:00:00:00:02", ip: 10.0.0.12, ip6: "fd00::12",
      host: hv2, waive: [unreachable]}
"""


def test_lines_moved_by_an_edit_keep_every_field() -> None:
    """An edit above a VM or tenant that only moves it (a blank line) is read
    incrementally and keeps its IPv6 address (given or EUI-64), waivers and DNS:
    the moved copies once lost every field added after the first model."""
    reader = PolicyRereader()
    before = reader.read(DUAL_STACK, SOURCE, TOPOLOGY)
    for new in (DUAL_STACK.replace("    dns:", "\n    dns:"),
                DUAL_STACK.replace("  t:\n", "\n  t:\n")):
        reader = PolicyRereader()
        reader.read(DUAL_STACK, SOURCE, TOPOLOGY)
        assert _check(reader, new, TOPOLOGY) == "incremental"
        after = reader.read(new, SOURCE, TOPOLOGY)
        assert after.vms["a"].ip6 is not None and after.vms["b"].ip6 == before.vms["b"].ip6
        assert after.vms["b"].waive == before.vms["b"].waive != frozenset()
        assert after.tenants["t"].dns == before.tenants["t"].dns != ()


def test_a_vm_edited_in_a_dual_stack_segment_keeps_its_ipv6_address() -> None:
    """A VM re-read on its own sees its segment as a draft: the draft must carry the
    segment's subnet6 (and DNS), or the VM's EUI-64 address is lost."""
    reader = PolicyRereader()
    reader.read(DUAL_STACK, SOURCE, TOPOLOGY)
    moved = DUAL_STACK.replace("ip: 10.0.0.11, host: hv1}", "ip: 10.0.0.11, host: hv2}")
    assert _check(reader, moved, TOPOLOGY) == "incremental"
    assert str(reader.read(moved, SOURCE, TOPOLOGY).vms["a"].ip6) == "fd00::ff:fe00:1"
