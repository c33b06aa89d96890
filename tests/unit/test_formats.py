"""The file formats are described three times — the loaders, the JSON Schemas, the docs —
and the three agree.

- every key a loader accepts is in the schema at the same place and in the matching
  section of docs/policy.md or docs/topology.md, and neither has a key it refuses;
- docs/schema/*.json is exactly what `sdnctl schema` prints;
- the examples (topologies/, the lab's data, the README's, the docs') validate and load;
- whatever the schema refuses, the loader refuses too (a schema stricter than the
  loader would put false errors in an editor), and documents refused for what a
  schema can say (unknown key, wrong type, out of range) are refused by both;
- the docs' error examples print what they say, and no user-facing text points at a
  file the project does not ship.
"""

from __future__ import annotations

import copy
import doctest
import json
import re
import shlex
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import sdnctl.schema
from sdnctl.bench import netgen
from sdnctl.cli import build_parser, main
from sdnctl.policy import load as policy_load
from sdnctl.policy.load import parse_policy
from sdnctl.policy.model import parse_service
from sdnctl.schema import SCHEMAS, integer_pattern, policy_schema, topology_schema
from sdnctl.topology import load as topology_load
from sdnctl.topology.load import parse_topology
from sdnctl.topology.model import Topology
from sdnctl.yamlsrc import LoadError

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TOPOLOGIES = ROOT / "topologies"

# Where each key list of a loader lives: the section of the doc that documents it,
# and the path from the file's root to the mapping that holds those keys ("*": any
# name of a mapping, or any item of a list).
POLICY_LEVELS = {
    "Top level": ((), policy_load.TOP_KEYS),
    "Tenants": (("tenants", "*"), policy_load.TENANT_KEYS),
    "Segments": (("tenants", "*", "segments", "*"), policy_load.SEGMENT_KEYS),
    "Groups": (("tenants", "*", "groups", "*"), policy_load.GROUP_KEYS),
    "Rules": (("tenants", "*", "rules", "*"), policy_load.RULE_KEYS),
    "VMs": (("vms", "*"), policy_load.VM_KEYS),
}
TOPOLOGY_LEVELS = {
    "Top level": ((), topology_load.TOP_KEYS),
    "Switches": (("switches", "*"), topology_load.SWITCH_KEYS),
    "Uplinks": (("switches", "*", "uplink"), topology_load.UPLINK_KEYS),
    "Links": (("links", "*"), topology_load.LINK_KEYS),
}
FORMATS = {
    "policy": (policy_schema, POLICY_LEVELS, DOCS / "policy.md"),
    "topology": (topology_schema, TOPOLOGY_LEVELS, DOCS / "topology.md"),
}
# Every key list the loaders define: a new one must be placed in the tables above.
KEY_LISTS = {(module.__name__, name)
             for module in (policy_load, topology_load) for name in dir(module)
             if name.endswith("_KEYS") and not name.startswith(("_", "REQUIRED"))}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The object schema `node` names: through `$ref`s, and for "one object or a list
    of them" (`anyOf`, like a gateway's `uplink`), the object."""
    while "$ref" in node or "anyOf" in node and "properties" not in node:
        if "anyOf" in node:
            node = node["anyOf"][0]
            continue
        ref = node["$ref"]
        assert ref.startswith("#/$defs/"), ref
        node = schema["$defs"][ref.removeprefix("#/$defs/")]
    return node


def schema_at(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The object schema reached from the root by `path`."""
    node = schema
    for step in path:
        node = _resolve(schema, node)
        if step == "*":
            node = node["items"] if "items" in node else node["additionalProperties"]
        else:
            node = node["properties"][step]
    return _resolve(schema, node)


def doc_keys(doc: Path, section: str) -> list[str]:
    """The keys in the first column of the tables of `## section`, up to the next
    heading (a `### ` subsection is not part of it)."""
    text = doc.read_text()
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^##+ |\Z)", text, re.M | re.S)
    assert match, f"{doc.name} has no section '## {section}'"
    return re.findall(r"^\| `([a-z_0-9]+)` \|", match.group(1), re.M)


def validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(SCHEMAS[kind]())


def schema_errors(kind: str, data: Any) -> list[str]:
    return [e.message for e in validator(kind).iter_errors(data)]


def yaml_blocks(text: str, fence: str = "yaml") -> list[str]:
    return re.findall(rf"^```{fence}\n(.*?)^```$", text, re.M | re.S)


THREE_TIER_TOPOLOGY = parse_topology((TOPOLOGIES / "three-tier.topology.yaml").read_text(),
                                     "three-tier.topology.yaml")


def loader_refuses(kind: str, text: str, topology: Topology | None = None) -> list[str]:
    """The loader's messages for `text` (empty if it accepts it)."""
    try:
        if kind == "policy":
            parse_policy(text, "x.yaml", topology)
        else:
            parse_topology(text, "x.yaml")
    except LoadError as exc:
        return [p.message for p in exc.problems]
    return []


# -- keys: loader, schema and docs name the same ones, at the same level -------------


def test_every_key_list_of_the_loaders_has_a_place_here() -> None:
    placed = {(module.__name__, name)
              for module, levels in ((policy_load, POLICY_LEVELS),
                                     (topology_load, TOPOLOGY_LEVELS))
              for name in dir(module)
              if any(getattr(module, name) is keys for _, keys in levels.values())}
    assert placed == KEY_LISTS


@pytest.mark.parametrize("kind", FORMATS)
def test_schema_has_exactly_the_loaders_keys_at_each_level(kind: str) -> None:
    build, levels, _ = FORMATS[kind]
    schema = build()
    for section, (path, keys) in levels.items():
        node = schema_at(schema, path)
        assert list(node["properties"]) == list(keys), section
        assert node["additionalProperties"] is False, section  # unknown keys are refused
        assert set(node.get("required", ())) <= set(keys), section


@pytest.mark.parametrize("kind", FORMATS)
def test_docs_document_exactly_the_loaders_keys_in_the_right_section(kind: str) -> None:
    _, levels, doc = FORMATS[kind]
    for section, (_, keys) in levels.items():
        assert sorted(doc_keys(doc, section)) == sorted(keys), f"{doc.name} ## {section}"


@pytest.mark.parametrize("kind", FORMATS)
def test_schema_marks_required_exactly_the_keys_the_loader_requires(kind: str) -> None:
    """Remove each key from every object of an example: the loader says "missing
    required key" for it exactly when the schema lists it as required."""
    build, levels, _ = FORMATS[kind]
    schema = build()
    checked = set()
    for example in ("overlay", "northsouth"):
        data = yaml.safe_load((TOPOLOGIES / f"{example}.{kind}.yaml").read_text())
        for section, (path, keys) in levels.items():
            required = set(schema_at(schema, path).get("required", ()))
            for route, node in _objects(data, path):
                for key in keys:
                    if key not in node:
                        continue
                    doc = copy.deepcopy(data)
                    del _objects_by_route(doc, route)[key]
                    messages = loader_refuses(kind, yaml.safe_dump(doc))
                    said = any(m.endswith(f"missing required key {key!r}") for m in messages)
                    assert said == (key in required), (section, key, messages)
                    checked.add((section, key))
    assert {s for s, _ in checked} == set(levels)  # the examples exercise every level


def _objects(data: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(route, object) for every object the path reaches in `data`."""
    def walk(node: Any, rest: tuple[str, ...], route: tuple[Any, ...]) -> Iterator[Any]:
        if not rest:
            if isinstance(node, list):  # one object or a list of them: each of them
                for index, item in enumerate(node):
                    yield (*route, index), item
            else:
                yield route, node
            return
        step, more = rest[0], rest[1:]
        if step == "*":
            items = node.items() if isinstance(node, dict) else enumerate(node or ())
            for key, child in items:
                yield from walk(child, more, (*route, key))
        elif isinstance(node, dict) and step in node:
            yield from walk(node[step], more, (*route, step))
    yield from walk(data, path, ())


def _objects_by_route(data: Any, route: tuple[Any, ...]) -> Any:
    for step in route:
        data = data[step]
    return data


# -- the committed schemas are the generated ones ------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_committed_schema_is_what_sdnctl_schema_prints(kind: str, capsys) -> None:
    assert main(["schema", kind]) == 0
    printed = capsys.readouterr().out
    committed = (DOCS / "schema" / f"{kind}.schema.json").read_text()
    assert printed == committed, "regenerate docs/schema/ with: make schema"
    jsonschema.Draft202012Validator.check_schema(json.loads(printed))


def test_schema_module_doctests() -> None:
    result = doctest.testmod(sdnctl.schema)
    assert result.attempted > 0 and result.failed == 0


# -- examples: everything shipped as an example validates and loads ------------------


def _shipped_examples() -> list[tuple[Path, Path | None]]:
    """(file, the topology it goes with, for a policy) for every example the project ships."""
    found: list[tuple[Path, Path | None]] = []
    for path in sorted(TOPOLOGIES.glob("*.yaml")):
        topo = TOPOLOGIES / path.name.replace(".policy.", ".topology.")
        found.append((path, topo if topo != path else None))
    lab_data = ROOT / "sdnctl" / "lab"
    hostile = lab_data / "attacks/data/hostile.topology.yaml"
    found += [(lab_data / "experiments/data/live.policy.yaml",
               TOPOLOGIES / "leaf-spine.topology.yaml"),
              (lab_data / "attacks/data/hostile.policy.yaml", hostile), (hostile, None)]
    return found


@pytest.mark.parametrize("path,topology", _shipped_examples(), ids=lambda p: getattr(p, "name", ""))
def test_shipped_examples_validate_and_load(path: Path, topology: Path | None) -> None:
    kind = path.name.rsplit(".", 2)[-2]
    text = path.read_text()
    assert schema_errors(kind, yaml.safe_load(text)) == []
    topo = parse_topology(topology.read_text(), str(topology)) if topology else None
    assert loader_refuses(kind, text, topo) == []


@pytest.mark.parametrize("path", sorted(TOPOLOGIES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_files_name_their_schema_on_the_first_line(path: Path) -> None:
    kind = path.name.rsplit(".", 2)[-2]
    first = path.read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema=../docs/schema/{kind}.schema.json"
    assert (path.parent / first.split("=", 1)[1]).resolve() == \
        DOCS / "schema" / f"{kind}.schema.json"


def test_readme_first_example_validates_and_loads() -> None:
    blocks = yaml_blocks((ROOT / "README.md").read_text())
    policy, topology = blocks[0], blocks[1]
    assert policy.startswith("# policy.yaml") and topology.startswith("# topology.yaml")
    assert schema_errors("policy", yaml.safe_load(policy)) == []
    assert schema_errors("topology", yaml.safe_load(topology)) == []
    topo = parse_topology(topology, "topology.yaml")
    assert len(parse_policy(policy, "policy.yaml", topo).vms) == 2


@pytest.mark.parametrize("kind", FORMATS)
def test_docs_complete_examples_validate_and_load(kind: str) -> None:
    """Every yaml block of the doc that is a whole file (has `version: 1`) and is not
    an error example validates and loads (policies against the three-tier topology)."""
    blocks = [b for b in yaml_blocks(FORMATS[kind][2].read_text())
              if re.search(r"^version: 1$", b, re.M) and not b.startswith("# bad.")]
    assert blocks
    for block in blocks:
        assert schema_errors(kind, yaml.safe_load(block)) == []
        assert loader_refuses(kind, block, THREE_TIER_TOPOLOGY) == []


def test_generated_policies_validate() -> None:
    """The benchmarks' generated data centres (many tenants, labels, rate limits)."""
    topology = netgen.leaf_pair_topology(4)
    policy = netgen.tiered_policy(60, [f"hv{i}" for i in range(1, 5)], tenants=3)
    assert schema_errors("topology", topology) == []
    assert schema_errors("policy", policy) == []
    assert schema_errors("policy", netgen.growth_policy(5, 5, 4)) == []


# -- refusals: the schema refuses only what the loader refuses -----------------------

_BASE = {kind: yaml.safe_load((TOPOLOGIES / f"three-tier.{kind}.yaml").read_text())
         for kind in ("policy", "topology")}

Edit = Callable[[dict[str, Any]], None]


def _set(*path_and_value: Any) -> Edit:
    *path, value = path_and_value

    def edit(doc: dict[str, Any]) -> None:
        node = doc
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    return edit


def _drop(*path: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        node = doc
        for step in path[:-1]:
            node = node[step]
        del node[path[-1]]
    return edit


SEG = ("tenants", "acme", "segments", "web")
GROUPS = ("tenants", "acme", "groups")
RULE = ("tenants", "acme", "rules", 0)
VM = ("vms", "web1")
SW = ("switches", "hv1")
LINK = ("links", 0)
UPLINK = {"port": 1, "ip": "203.0.113.2/24", "next_hop": "203.0.113.1"}

# Refused by the loader, and by the schema too: what a schema can say.
SCHEMA_REFUSES = {
    "policy": {
        "unknown top key": _set("vlans", {}),
        "unknown tenant key": _set("tenants", "acme", "defaults", "deny"),
        "unknown segment key": _set(*SEG, "gatway", "10.1.10.1"),
        "unknown group key": _set(*GROUPS, "web", "label", {"tier": "web"}),
        "unknown rule key": _set(*RULE, "ports", [80]),
        "unknown vm key": _set(*VM, "vlan", 10),
        "version 2": _set("version", 2),
        "version as text": _set("version", "1"),
        "tenants missing": _drop("tenants"),
        "segments missing": _drop("tenants", "acme", "segments"),
        "vlan 0": _set(*SEG, "vlan", 0),
        "vlan 4095": _set(*SEG, "vlan", 4095),
        "vlan as text": _set(*SEG, "vlan", "10"),
        "vlan true": _set(*SEG, "vlan", True),
        "vni too big": _set(*SEG, "vni", 1 << 24),
        "neither vlan nor vni": _drop(*SEG, "vlan"),
        "subnet without prefix": _set(*SEG, "subnet", "10.1.10.0"),
        "subnet /31": _set(*SEG, "subnet", "10.1.10.0/31"),
        "subnet as number": _set(*SEG, "subnet", 10),
        "gateway not an address": _set(*SEG, "gateway", "10.1.10.256"),
        "default permit": _set("tenants", "acme", "default", "permit"),
        "group named any": _set(*GROUPS, "any", {"vms": ["jump1"]}),
        "group with nothing": _set(*GROUPS, "web", {}),
        "label value a number": _set(*GROUPS, "web", {"labels": {"tier": 1}}),
        "rules a mapping": _set("tenants", "acme", "rules", {}),
        "rule without allow": _drop(*RULE, "allow"),
        "allow empty": _set(*RULE, "allow", []),
        "allow a string": _set(*RULE, "allow", "tcp/80"),
        "port 0": _set(*RULE, "allow", ["tcp/0"]),
        "port 65536": _set(*RULE, "allow", ["tcp/65536"]),
        "unknown protocol": _set(*RULE, "allow", ["http"]),
        "half a range": _set(*RULE, "allow", ["tcp/80-"]),
        "two ports": _set(*RULE, "allow", ["tcp/80,443"]),
        "from a list": _set(*RULE, "from", ["web", "app"]),
        "vm without mac": _drop(*VM, "mac"),
        "multicast mac": _set(*VM, "mac", "01:00:00:00:10:11"),
        "short mac": _set(*VM, "mac", "02:00:00:00:10"),
        "ip out of range": _set(*VM, "ip", "10.1.10.300"),
        "ip with leading zero": _set(*VM, "ip", "10.1.10.011"),
        "rate limit 0": _set(*VM, "rate_limit_mbps", 0),
        "rate limit as text": _set(*VM, "rate_limit_mbps", "fast"),
        "labels a list": _set(*VM, "labels", ["web"]),
        "host a number": _set(*VM, "host", 1),
        "group named external": _set(*GROUPS, "external", {"vms": ["jump1"]}),
        "group named like a CIDR": _set(*GROUPS, "10net", {"vms": ["jump1"]}),
        "group name with a slash": _set(*GROUPS, "web/app", {"vms": ["jump1"]}),
        "snat not an address": _set("tenants", "acme", "snat", "203.0.113"),
        "snat a list": _set("tenants", "acme", "snat", ["203.0.113.10"]),
        "snat a number": _set("tenants", "acme", "snat", 10),
        "floating_ip not an address": _set(*VM, "floating_ip", "203.0.113.256"),
        "floating_ip with a prefix": _set(*VM, "floating_ip", "203.0.113.20/32"),
        "external end as a list": _set(*RULE, "to", ["external"]),
    },
    "topology": {
        "unknown top key": _set("hosts", {}),
        "unknown switch key": _set(*SW, "ports", 4),
        "unknown link key": _set(*LINK, "speed", "10G"),
        "switches missing": _drop("switches"),
        "dpid 0": _set(*SW, "dpid", 0),
        "dpid 2**64": _set(*SW, "dpid", 1 << 64),
        "dpid as text": _set(*SW, "dpid", "1"),
        "role spine": _set(*SW, "role", "spine"),
        "no role": _drop(*SW, "role"),
        "name too long": _set("switches", "hypervisor-one-x", {"dpid": 9, "role": "fabric"}),
        "name starts with a digit": _set("switches", "1hv", {"dpid": 9, "role": "fabric"}),
        "tunnel_port without tunnel_ip": _set(*SW, "tunnel_port", 100),
        "tunnel_port 65280": _set(*SW, "tunnel_port", 65280),
        "tunnel_ip not an address": _set(*SW, "tunnel_ip", "198.51.100"),
        "tunnel_ip on a fabric switch": _set("switches", "leaf", "tunnel_ip", "198.51.100.9"),
        "link end without port": _set(*LINK, "a", "hv1"),
        "link port 0": _set(*LINK, "a", "hv1:0"),
        "link port 65280": _set(*LINK, "a", "hv1:65280"),
        "link without b": _drop(*LINK, "b"),
        "links a mapping": _set("links", {}),
        "gateway without uplink": _set("switches", "gw", {"dpid": 9, "role": "gateway"}),
        "uplink on a hypervisor": _set(*SW, "uplink", UPLINK),
        "uplink on a fabric switch": _set("switches", "leaf", "uplink", UPLINK),
        "tunnel_ip on a gateway": _set("switches", "gw", {
            "dpid": 9, "role": "gateway", "uplink": UPLINK, "tunnel_ip": "198.51.100.9"}),
        "uplink ip without prefix": _set("switches", "gw", {
            "dpid": 9, "role": "gateway", "uplink": {**UPLINK, "ip": "203.0.113.2"}}),
        "uplink /31": _set("switches", "gw", {
            "dpid": 9, "role": "gateway", "uplink": {**UPLINK, "ip": "203.0.113.2/31"}}),
        "uplink without next_hop": _set("switches", "gw", {
            "dpid": 9, "role": "gateway", "uplink": {"port": 1, "ip": "203.0.113.2/24"}}),
        "uplink vlan 4095": _set("switches", "gw", {
            "dpid": 9, "role": "gateway", "uplink": {**UPLINK, "vlan": 4095}}),
        "uplink port 0": _set("switches", "gw", {
            "dpid": 9, "role": "gateway", "uplink": {**UPLINK, "port": 0}}),
        "multicast next_hop_mac": _set("switches", "gw", {
            "dpid": 9, "role": "gateway",
            "uplink": {**UPLINK, "next_hop_mac": "01:00:5e:00:00:01"}}),
        "empty uplink list": _set("switches", "gw", {"dpid": 9, "role": "gateway", "uplink": []}),
        "unknown uplink key": _set("switches", "gw", {
            "dpid": 9, "role": "gateway", "uplink": [{**UPLINK, "mtu": 1500}]}),
    },
}


@pytest.mark.parametrize("kind,name", [(k, n) for k, cases in SCHEMA_REFUSES.items()
                                       for n in cases])
def test_both_refuse(kind: str, name: str) -> None:
    doc = copy.deepcopy(_BASE[kind])
    SCHEMA_REFUSES[kind][name](doc)
    assert schema_errors(kind, doc), "the schema accepts it"
    assert loader_refuses(kind, yaml.safe_dump(doc)), "the loader accepts it"


_ODD_VALUES = (None, 0, 1, -1, 4095, 65280, 1 << 24, True, "", "x", "any", "tcp/80",
               "10.1.10.5", "10.1.10.0/24", "02:00:00:00:10:99", "hv1:3", [], ["x"], {},
               {"a": "b"})


def _mutants(doc: Any) -> Iterator[Any]:
    """`doc` with one value replaced by an odd one, or one key removed, everywhere."""
    def routes(node: Any, route: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        items = node.items() if isinstance(node, dict) else \
            enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            yield (*route, key)
            yield from routes(child, (*route, key))
    for route in routes(doc, ()):
        parent = _objects_by_route(doc, route[:-1])
        if isinstance(parent, dict):
            mutant = copy.deepcopy(doc)
            del _objects_by_route(mutant, route[:-1])[route[-1]]
            yield mutant
        for value in _ODD_VALUES:
            mutant = copy.deepcopy(doc)
            _objects_by_route(mutant, route[:-1])[route[-1]] = value
            yield mutant


# Small documents that use every key once (the mutation test below costs per value).
EVERY_KEY = {
    "policy": """\
version: 1
tenants:
  acme:
    default: deny
    waive: [exposure]
    dns: [10.1.0.2]
    snat: 203.0.113.10-203.0.113.11
    log_denied: true
    segments:
      web: {vlan: 10, vni: 5010, subnet: 10.1.10.0/24, gateway: 10.1.10.1, dns: [10.1.10.53],
            subnet6: "2001:db8:10::/64", gateway6: "2001:db8:10::1"}
    groups:
      web: {labels: {tier: web}, vms: [web2], waive: [empty-group]}
    rules:
      - {from: any, to: web, allow: [tcp/80, icmp], waive: [covered], family: ipv6, log: true}
      - {from: external, to: web, allow: [tcp/443]}
      - {from: web, to: "198.51.100.0/24", allow: [udp/53], family: ipv4}
vms:
  web1: {tenant: acme, segment: web, mac: "02:00:00:00:10:11", ip: 10.1.10.11,
         labels: {tier: web}, host: hv1, rate_limit_mbps: 100, waive: [unreachable],
         floating_ip: 203.0.113.20}
  web2: {tenant: acme, segment: web, mac: "02:00:00:00:10:12", ip: 10.1.10.12,
         ip6: "2001:db8:10::12"}
""",
    "topology": """\
version: 1
underlay_mtu: 1600
switches:
  hv1: {dpid: 1, role: hypervisor, tunnel_ip: 198.51.100.1, tunnel_port: 100}
  leaf: {dpid: 16, role: fabric}
  gw: {dpid: 48, role: gateway, uplink: {port: 1, ip: 203.0.113.2/24, next_hop: 203.0.113.1,
                                         vlan: 7, next_hop_mac: "02:00:5e:00:01:01"}}
links:
  - {a: "hv1:10", b: "leaf:1"}
  - {a: "gw:10", b: "leaf:2"}
""",
}


def test_every_key_documents_use_every_key() -> None:
    for kind, (_, levels, _) in FORMATS.items():
        data = yaml.safe_load(EVERY_KEY[kind])
        for path, keys in levels.values():
            used = {key for _, node in _objects(data, path) for key in node}
            assert used == set(keys), (kind, path)


@pytest.mark.parametrize("kind", FORMATS)
def test_schema_never_refuses_what_the_loader_accepts(kind: str) -> None:
    """Over every single-value change of an example: schema refuses => loader refuses.
    Both verdicts are exercised (the changes are not all refused, nor all accepted)."""
    base = yaml.safe_load(EVERY_KEY[kind])
    check = validator(kind)
    verdicts = set()
    for mutant in _mutants(base):
        schema_ok = check.is_valid(mutant)
        loader_ok = not loader_refuses(kind, yaml.safe_dump(mutant))
        assert schema_ok or not loader_ok, yaml.safe_dump(mutant)
        verdicts.add((schema_ok, loader_ok))
    assert {(True, True), (False, False), (True, False)} <= verdicts


def test_service_pattern_matches_exactly_what_the_loader_parses() -> None:
    pattern = re.compile(
        policy_schema()["$defs"]["rule"]["properties"]["allow"]["items"]["pattern"])
    candidates = ["icmp", "any", " icmp ", "tcp", "udp/", "tcp/80", "udp/53", "tcp/080",
                  "tcp/8000-8100", "tcp/65535", "tcp/65536", "tcp/0", "tcp/-80", "tcp/80-",
                  "sctp/9", "TCP/80", "tcp/ 80", "tcp/80 ", "icmp/8", "any/1", "tcp/1-65535",
                  "udp/99999", "tcp/٣", "tcp/1e3"]
    for text in candidates:
        try:
            parse_service(text)
            parsed = True
        except ValueError:
            parsed = False
        assert bool(pattern.search(text)) == parsed, text
    # The one thing a pattern cannot see: a reversed range.
    assert pattern.search("tcp/100-80")
    with pytest.raises(ValueError, match="reversed"):
        parse_service("tcp/100-80")


@pytest.mark.parametrize("most", [9, 10, 30, 255, 4094, 65279, 65535])
def test_integer_pattern_is_exactly_one_to_most(most: int) -> None:
    pattern = re.compile(integer_pattern(most))
    for n in range(0, most * 2 + 20):
        assert bool(pattern.fullmatch(str(n))) == (1 <= n <= most), n
        assert bool(pattern.fullmatch("0" + str(n))) == (1 <= n <= most), n


# -- the docs' error examples are real ----------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_docs_error_example_prints_what_the_doc_says(kind: str, tmp_path, monkeypatch,
                                                     capsys) -> None:
    text = FORMATS[kind][2].read_text()
    match = re.search(r"^```yaml\n# (bad\.\w+\.yaml)\n(.*?)^```\n\n```console\n"
                      r"\$ (sdnctl .*?)\n(.*?)\$ echo \$\?\n(\d+)\n```", text, re.M | re.S)
    assert match, "no error example (```yaml # bad.*.yaml, then ```console)"
    name, body, command, output, code = match.groups()
    (tmp_path / name).write_text(f"# {name}\n{body}")
    for other in TOPOLOGIES.glob("three-tier.*.yaml"):
        shutil.copy(other, tmp_path / other.name)
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(command)[1:]) == int(code)
    captured = capsys.readouterr()
    assert captured.err + captured.out == output


# -- nothing user-facing points at a file the project does not ship -----------------


def _help_texts() -> Iterator[str]:
    parser = build_parser()
    stack = [parser]
    while stack:
        p = stack.pop()
        yield p.format_help()
        for action in p._actions:
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                stack += [c for c in choices.values() if hasattr(c, "format_help")]


def test_no_user_facing_text_mentions_the_design_contract() -> None:
    texts = {str(p.relative_to(ROOT)): p.read_text()
             for p in [ROOT / "README.md", *sorted(DOCS.glob("*.md")),
                       ROOT / "mininet" / "README.md"]}
    texts.update({f"--help {n}": t for n, t in enumerate(_help_texts())})
    assert len(texts) > 20  # every subcommand's help was seen
    for where, text in texts.items():
        assert "DESIGN" not in text, where
