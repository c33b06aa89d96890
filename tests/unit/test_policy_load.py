"""The policy loader: example files load into the right model; bad input is refused."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from sdnctl.policy.load import load_policy, parse_policy
from sdnctl.policy.model import ANY, Default, Policy, Proto, Service, parse_service
from sdnctl.topology.load import load_topology
from sdnctl.yamlsrc import LoadError

REPO = Path(__file__).resolve().parent.parent.parent
TOPOLOGIES = REPO / "topologies"
EXAMPLES = ["three-tier", "leaf-spine", "single"]

SMALL = """\
version: 1
tenants:
  acme:
    segments:
      web: {vlan: 10, subnet: 10.1.10.0/24, gateway: 10.1.10.1}
      db: {vlan: 30, subnet: 10.1.30.0/24}
    groups:
      web: {labels: {tier: web}}
    rules:
      - {from: any, to: web, allow: [tcp/80, icmp, tcp/80, udp/53]}
vms:
  web1: {tenant: acme, segment: web, mac: MAC, ip: 10.1.10.11, labels: {tier: web}}
"""


def small(mac: str = '"02:00:00:00:10:11"', replace: dict[str, str] | None = None) -> str:
    """SMALL with its MAC, and each `old` text replaced by `new` (which must be there)."""
    text = SMALL.replace("MAC", mac)
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def problems(text: str) -> list[str]:
    with pytest.raises(LoadError) as caught:
        parse_policy(text, "p.yaml")
    return [str(p) for p in caught.value.problems]


@pytest.fixture(scope="module")
def three_tier() -> Policy:
    topology = load_topology(TOPOLOGIES / "three-tier.topology.yaml")
    return load_policy(TOPOLOGIES / "three-tier.policy.yaml", topology)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_policies_load_against_their_topology(name: str) -> None:
    topology = load_topology(TOPOLOGIES / f"{name}.topology.yaml")
    path = str(TOPOLOGIES / f"{name}.policy.yaml")
    policy = load_policy(path, topology)
    assert policy.source == path
    assert policy.vms and policy.tenants


def test_three_tier_segments(three_tier: Policy) -> None:
    acme = three_tier.tenants["acme"]
    assert acme.default is Default.DENY
    assert acme.line == 5
    web = acme.segments["web"]
    assert (web.vlan, web.subnet, web.gateway, web.line) == (
        10, IPv4Network("10.1.10.0/24"), IPv4Address("10.1.10.1"), 8,
    )
    assert [s.vlan for s in acme.segments.values()] == [10, 20, 30]


def test_three_tier_group_members(three_tier: Policy) -> None:
    members = {g: three_tier.members("acme", g) for g in ("web", "app", "db", "admin", ANY)}
    assert members == {
        "web": {"web1", "web2"},
        "app": {"app1"},
        "db": {"db1"},
        "admin": {"jump1"},
        ANY: {"web1", "web2", "app1", "db1", "jump1"},
    }
    admin = three_tier.tenants["acme"].groups["admin"]
    assert (admin.vms, dict(admin.labels), admin.line) == (("jump1",), {}, 15)


def test_three_tier_rules(three_tier: Policy) -> None:
    rules = three_tier.tenants["acme"].rules
    assert [(r.src, r.dst, r.line) for r in rules] == [
        (ANY, "web", 17), ("web", "app", 18), ("app", "db", 19), ("admin", ANY, 20),
    ]
    assert rules[0].services == (
        Service(Proto.TCP, 80, 80), Service(Proto.TCP, 443, 443), Service(Proto.ICMP),
    )
    assert all(r.tenant == "acme" for r in rules)


def test_three_tier_vms(three_tier: Policy) -> None:
    web1 = three_tier.vms["web1"]
    assert web1.tenant == "acme" and web1.segment == "web"
    assert web1.mac == "02:00:00:00:10:11"
    assert web1.ip == IPv4Address("10.1.10.11")
    assert dict(web1.labels) == {"tier": "web"}
    assert (web1.host, web1.rate_limit_mbps, web1.line) == ("hv1", 200, 22)
    assert three_tier.vms["web2"].rate_limit_mbps is None
    assert [vm.line for vm in three_tier.vms.values()] == [22, 24, 26, 28, 30]


def test_leaf_spine_allows_overlap_and_ip_reuse_across_tenants() -> None:
    policy = load_policy(TOPOLOGIES / "leaf-spine.policy.yaml")
    assert policy.tenants["red"].segments["front"].subnet == \
        policy.tenants["blue"].segments["net"].subnet
    assert policy.vms["rf1"].ip == policy.vms["bx1"].ip
    assert policy.tenants["red"].segments["mgmt"].gateway is None
    assert policy.tenants["blue"].default is Default.ALLOW
    assert policy.tenants["blue"].groups == {} and policy.tenants["blue"].rules == ()


def test_model_is_read_only(three_tier: Policy) -> None:
    with pytest.raises(TypeError):
        three_tier.vms["x"] = three_tier.vms["web1"]  # type: ignore[index]


def test_services_keep_file_order_without_repeats() -> None:
    rule = parse_policy(small(), "p.yaml").tenants["acme"].rules[0]
    assert rule.services == tuple(parse_service(s) for s in ("tcp/80", "icmp", "udp/53"))


def test_default_is_deny_when_absent() -> None:
    assert parse_policy(small(), "p.yaml").tenants["acme"].default is Default.DENY


def test_mac_is_normalised_to_lower_case() -> None:
    policy = parse_policy(small('"02:AB:cd:00:10:EF"'), "p.yaml")
    assert policy.vms["web1"].mac == "02:ab:cd:00:10:ef"


def test_unquoted_mac_that_looks_sexagesimal_stays_a_mac() -> None:
    # YAML 1.1 would read 12:00:00:00:10:11 as the base-60 integer 9331200611.
    policy = parse_policy(small("12:00:00:00:10:11"), "p.yaml")
    assert policy.vms["web1"].mac == "12:00:00:00:10:11"
    assert parse_policy(small("02:00:00:00:10:11"), "p.yaml").vms["web1"].mac == \
        "02:00:00:00:10:11"


def test_unknown_keys_are_named_with_the_allowed_ones() -> None:
    text = small(replace={"gateway: 10.1.10.1": "gatway: 10.1.10.1",
                    "ip: 10.1.10.11,": "ip: 10.1.10.11, rate_limit: 5,"})
    assert problems(text) == [
        "p.yaml:5: segment acme/web: unknown key 'gatway', did you mean 'gateway'? "
        "(allowed: vlan, vni, subnet, gateway, dns, subnet6, gateway6)",
        "p.yaml:12: vm web1: unknown key 'rate_limit', did you mean 'rate_limit_mbps'? "
        "(allowed: tenant, segment, mac, ip, labels, host, rate_limit_mbps, waive, ip6, "
        "floating_ip)",
    ]


def test_duplicate_yaml_key_is_an_error() -> None:
    text = small(replace={"      db: {vlan: 30": "      web: {vlan: 30"})
    assert problems(text) == ["p.yaml:6: duplicate key 'web' (first on line 5)"]


def test_host_is_checked_only_against_a_topology() -> None:
    text = small(replace={"ip: 10.1.10.11,": "ip: 10.1.10.11, host: nowhere,"})
    assert parse_policy(text, "p.yaml").vms["web1"].host == "nowhere"
    topology = load_topology(TOPOLOGIES / "single.topology.yaml")
    with pytest.raises(LoadError) as caught:
        parse_policy(text, "p.yaml", topology)
    assert [str(p) for p in caught.value.problems] == [
        "p.yaml:12: vm web1: host 'nowhere' is not a switch of the topology (switches: hv1)"
    ]


def test_empty_optional_sections_are_allowed() -> None:
    text = "version: 1\ntenants:\n  t:\n    segments:\n    groups:\n    rules:\nvms:\n"
    policy = parse_policy(text, "p.yaml")
    assert policy.vms == {} and policy.tenants["t"].segments == {}


def test_gateway_and_vm_on_the_same_address_is_refused() -> None:
    assert problems(small(replace={"ip: 10.1.10.11": "ip: 10.1.10.1"})) == [
        "p.yaml:12: vm web1: ip 10.1.10.1 is the gateway of segment acme/web"
    ]


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(LoadError) as caught:
        load_policy(missing)
    assert [(p.file, p.line) for p in caught.value.problems] == [(str(missing), 0)]
    assert "cannot read file" in caught.value.problems[0].message


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"version: 1\n# caf\xe9\n")
    with pytest.raises(LoadError) as caught:
        load_policy(bad)
    assert [str(p) for p in caught.value.problems] == [f"{bad}:2: file is not valid UTF-8"]
