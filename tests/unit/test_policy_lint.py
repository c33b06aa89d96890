"""Lint warnings: legal policies that probably do not say what the operator meant."""

from __future__ import annotations

from pathlib import Path

from sdnctl.policy.lint import lint_policy
from sdnctl.policy.load import load_policy, parse_policy

TOPOLOGIES = Path(__file__).resolve().parent.parent.parent / "topologies"

POLICY = """\
version: 1
tenants:
  acme:
    segments:
      web: {vlan: 10, subnet: 10.1.10.0/24, gateway: 10.1.10.1}
      app: {vlan: 20, subnet: 10.1.20.0/24, gateway: 10.1.20.1}
      db:  {vlan: 30, subnet: 10.1.30.0/24}
    groups:
      web:   {labels: {tier: web}}
      app:   {vms: [app1]}
      db:    {labels: {tier: db}}
      ghost: {labels: {tier: nothing}}
    rules:
      - {from: web, to: app, allow: [tcp/8080]}
      - {from: ghost, to: app, allow: [tcp/22]}
      - {from: app, to: db, allow: [tcp/5432]}
      - {from: db, to: db, allow: [tcp/5432]}
      - {from: web, to: web, allow: [icmp]}  # fine: web1 and web2 share a segment
vms:
  web1: {tenant: acme, segment: web, mac: "02:00:00:00:10:11", ip: 10.1.10.11,
         labels: {tier: web}}
  web2: {tenant: acme, segment: web, mac: "02:00:00:00:10:12", ip: 10.1.10.12,
         labels: {tier: web}}
  app1: {tenant: acme, segment: app, mac: "02:00:00:00:20:11", ip: 10.1.20.11}
  db1:  {tenant: acme, segment: db, mac: "02:00:00:00:30:11", ip: 10.1.30.11,
         labels: {tier: db}}
"""

NEVER = "can never take effect"


def test_examples_that_mean_what_they_say_have_no_warnings() -> None:
    assert lint_policy(load_policy(TOPOLOGIES / "single.policy.yaml")) == []
    # The jump host opens connections; nobody is meant to open one to it.
    [warning] = lint_policy(load_policy(TOPOLOGIES / "three-tier.policy.yaml"))
    assert warning.message == (
        "vm jump1: no rule lets any VM reach it (tenant acme denies by default) [unreachable]")


def test_leaf_spine_ops_rule_can_never_take_effect() -> None:
    # ops is only rops, alone in the unrouted mgmt segment: nobody to reach.
    path = str(TOPOLOGIES / "leaf-spine.policy.yaml")
    warnings = lint_policy(load_policy(path))
    assert [w.message.split(":")[0] for w in warnings] == [
        "rule 3 of tenant red (ops -> any)", "vm rops"]
    warning = warnings[0]
    assert (warning.file, warning.line) == (path, 18)
    assert warning.message.startswith(f"rule 3 of tenant red (ops -> any): {NEVER}")


def test_small_policy_warnings() -> None:
    warnings = lint_policy(parse_policy(POLICY, "p.yaml"))
    assert [(w.line, w.message.split(":")[0]) for w in warnings] == [
        (12, "group acme/ghost"),
        (15, "rule 2 of tenant acme (ghost -> app)"),
        (16, "rule 3 of tenant acme (app -> db)"),
        (17, "rule 4 of tenant acme (db -> db)"),
        (25, "vm db1"),  # the app -> db rule cannot take effect: db1 is unreachable
    ]
    by_line = {w.line: w.message for w in warnings}
    assert by_line[12] == "group acme/ghost: matches no VM [empty-group]"
    assert by_line[15] == ("rule 2 of tenant acme (ghost -> app): from group ghost matches "
                           "no VM, so the rule has no effect [no-effect]")
    # app is routed but db is not: the rule crosses into a segment without a gateway.
    assert NEVER in by_line[16]
    # db's only member would have to reach itself.
    assert NEVER in by_line[17]


def test_routing_the_unrouted_segment_silences_the_warning() -> None:
    routed = POLICY.replace("subnet: 10.1.30.0/24}", "subnet: 10.1.30.0/24, gateway: 10.1.30.1}")
    lines = [w.line for w in lint_policy(parse_policy(routed, "p.yaml"))]
    assert 16 not in lines and 12 in lines


EXPOSURE = """\
version: 1
tenants:
  shop:
    segments:
      front: {vlan: 10, subnet: 10.1.10.0/24, gateway: 10.1.10.1}
      back:  {vlan: 20, subnet: 10.1.20.0/24, gateway: 10.1.20.1}
    groups:
      web: {labels: {tier: web}}
      db:  {labels: {tier: db}}
      app: {labels: {tier: app}}
    rules:
      - {from: web, to: app, allow: [tcp/8080]}
      - {from: app, to: db, allow: [tcp/5432]}
      - {from: web, to: db, allow: [tcp/5432]}
vms:
  web1: {tenant: shop, segment: front, mac: "02:00:00:00:10:11", ip: 10.1.10.11,
         labels: {tier: web, exposure: public}}
  app1: {tenant: shop, segment: back, mac: "02:00:00:00:20:11", ip: 10.1.20.11,
         labels: {tier: app}}
  db1:  {tenant: shop, segment: back, mac: "02:00:00:00:20:12", ip: 10.1.20.12,
         labels: {tier: db, sensitivity: high}}
"""


def test_public_reaching_sensitive_directly_is_flagged_on_the_rule():
    msgs = [str(w) for w in lint_policy(parse_policy(EXPOSURE, "e.yaml"))]
    assert msgs == [
        "e.yaml:14: rule 3 of tenant shop (web -> db): lets public VMs reach sensitive ones "
        "directly: web1 -> db1 [exposure]",
        "e.yaml:16: vm web1: no rule lets any VM reach it (tenant shop denies by default) "
        "[unreachable]",
    ]


def test_going_through_a_tier_is_not_flagged():
    through_app = EXPOSURE.replace("      - {from: web, to: db, allow: [tcp/5432]}\n", "")
    msgs = [str(w) for w in lint_policy(parse_policy(through_app, "e.yaml"))]
    assert not any("sensitive" in m for m in msgs)


OVERLAP = """\
version: 1
tenants:
  acme:
    segments:
      web: {vlan: 10, subnet: 10.1.10.0/24, gateway: 10.1.10.1}
      app: {vlan: 20, subnet: 10.1.20.0/24, gateway: 10.1.20.1}
    groups:
      web:   {labels: {tier: web}}
      front: {vms: [web1, web2]}
      app:   {labels: {tier: app}}
    rules:
      - {from: web, to: app, allow: [tcp/8000-9000, icmp]}
      - {from: front, to: app, allow: [icmp, tcp/8000-9000]}
      - {from: web, to: app, allow: [tcp/8080]}
      - {from: web, to: app, allow: [tcp/8080-9001]}
      - {from: any, to: app, allow: [tcp/22]}
      - {from: web, to: app, allow: [tcp/22]}
      - {from: app, to: web, allow: [tcp/80]}
vms:
  web1: {tenant: acme, segment: web, mac: "02:00:00:00:10:11", ip: 10.1.10.11,
         labels: {tier: web}}
  web2: {tenant: acme, segment: web, mac: "02:00:00:00:10:12", ip: 10.1.10.12,
         labels: {tier: web}}
  app1: {tenant: acme, segment: app, mac: "02:00:00:00:20:11", ip: 10.1.20.11,
         labels: {tier: app}}
"""


def test_duplicate_and_covered_rules_are_named_with_the_rule_that_covers_them():
    msgs = [str(w) for w in lint_policy(parse_policy(OVERLAP, "o.yaml"))]
    assert msgs == [
        # Same VMs (front is exactly web), same services in another order: a duplicate.
        "o.yaml:13: rule 2 of tenant acme (front -> app): allows exactly what rule 1 "
        "(web -> app, line 12) allows [duplicate]",
        "o.yaml:14: rule 3 of tenant acme (web -> app): allows nothing that rule 1 "
        "(web -> app, line 12) does not already allow [covered]",
        # One port beyond rule 1's range: not covered.
        "o.yaml:17: rule 6 of tenant acme (web -> app): allows nothing that rule 5 "
        "(any -> app, line 16) does not already allow [covered]",
    ]


def test_a_waived_warning_is_counted_apart_and_an_unwaived_one_stays():
    from sdnctl.policy.lint import lint_all

    waived = OVERLAP.replace("allow: [tcp/8080]}", "allow: [tcp/8080], waive: [covered]}")
    lint = lint_all(parse_policy(waived, "o.yaml"))
    assert [w.line for w in lint.warnings] == [13, 17]
    assert [(w.line, w.message.endswith("[covered]")) for w in lint.waived] == [(14, True)]
    # A waiver for another code waives nothing.
    other = OVERLAP.replace("allow: [tcp/8080]}", "allow: [tcp/8080], waive: [no-effect]}")
    assert [w.line for w in lint_all(parse_policy(other, "o.yaml")).warnings] == [13, 14, 17]


def test_every_kind_of_object_waives_its_own_warnings():
    from sdnctl.policy.lint import lint_all

    text = (POLICY.replace("ghost: {labels: {tier: nothing}}",
                           "ghost: {labels: {tier: nothing}, waive: [empty-group]}")
            .replace("{from: db, to: db, allow: [tcp/5432]}",
                     "{from: db, to: db, allow: [tcp/5432], waive: [no-effect]}")
            .replace("\n         labels: {tier: db}}",
                     "\n         labels: {tier: db}, waive: [unreachable]}"))
    lint = lint_all(parse_policy(text, "p.yaml"))
    assert [w.line for w in lint.warnings] == [15, 16]
    assert [w.line for w in lint.waived] == [12, 17, 25]
    shop = EXPOSURE.replace("tenants:\n  shop:\n", "tenants:\n  shop:\n    default: allow\n"
                            "    waive: [exposure]\n")
    lint = lint_all(parse_policy(shop, "e.yaml"))
    assert lint.warnings == [] and [w.message.split(":")[0] for w in lint.waived] == [
        "tenant shop"]


# ---- IPv6: gateway6 and family --------------------------------------------------------

POLICY6 = """\
version: 1
tenants:
  acme:
    segments:
      web: {vlan: 10, subnet: 10.1.10.0/24, gateway: 10.1.10.1,
            subnet6: "2001:db8:10::/64", gateway6: "2001:db8:10::1"}
      app: {vlan: 20, subnet: 10.1.20.0/24, gateway: 10.1.20.1,
            subnet6: "2001:db8:20::/64"}
      db:  {vlan: 30, subnet: 10.1.30.0/24, gateway: 10.1.30.1}
    groups:
      web: {labels: {tier: web}}
      app: {labels: {tier: app}}
      db:  {labels: {tier: db}}
    rules:
      - {from: web, to: app, allow: [tcp/8080]}
      - {from: web, to: app, allow: [tcp/8081], family: ipv4}
      - {from: app, to: db, allow: [tcp/5432], family: ipv6}
      - {from: web, to: app, allow: [tcp/8082], family: ipv6}
      - {from: web, to: web, allow: [icmp], family: ipv6}
      - {from: web, to: web, allow: [icmp], family: ipv4}
      - {from: any, to: db, allow: [icmp]}
vms:
  web1: {tenant: acme, segment: web, mac: "02:00:00:00:10:11", ip: 10.1.10.11,
         labels: {tier: web}}
  web2: {tenant: acme, segment: web, mac: "02:00:00:00:10:12", ip: 10.1.10.12,
         labels: {tier: web}}
  app1: {tenant: acme, segment: app, mac: "02:00:00:00:20:11", ip: 10.1.20.11,
         labels: {tier: app}}
  db1:  {tenant: acme, segment: db, mac: "02:00:00:00:30:11", ip: 10.1.30.11,
         labels: {tier: db}}
"""


def test_ipv6_rules_are_judged_in_ipv6() -> None:
    warnings = {w.line: w.message for w in lint_policy(parse_policy(POLICY6, "p.yaml"))}
    # web -> app in both families: IPv4 routes it, IPv6 cannot (app has no gateway6).
    assert warnings[15] == (
        "rule 1 of tenant acme (web -> app): VMs of segments web -> app meet in IPv4 only: "
        "IPv6 is routed between segments with a gateway6, and app has none (add one, or "
        "write the rule with family: ipv4) [ipv4-only]")
    assert 16 not in warnings  # said ipv4 on purpose
    # db has no subnet6: an IPv6 rule to it allows nothing.
    assert warnings[17] == (
        "rule 3 of tenant acme (app -> db): family ipv6, but no VM of group db has an IPv6 "
        "address (its segments have no subnet6), so the rule has no effect [no-effect]")
    # web and app both have IPv6, but app has no gateway6: never routed in IPv6.
    assert warnings[18].startswith("rule 4 of tenant acme (web -> app): can never take "
                                   "effect: no VM of group web shares a segment with another "
                                   "VM of group app in IPv6")
    # The same service to the same VMs in the two families: neither is a duplicate.
    assert 19 not in warnings and 20 not in warnings
    # db has IPv4 only: nothing to say about IPv6 there.
    assert 21 not in warnings


def test_an_ipv6_rule_in_a_tenant_without_ipv6_allows_nothing() -> None:
    text = POLICY.replace("{from: web, to: web, allow: [icmp]}",
                          "{from: web, to: web, allow: [icmp], family: ipv6}")
    warnings = {w.line: w.message for w in lint_policy(parse_policy(text, "p.yaml"))}
    assert warnings[18] == ("rule 5 of tenant acme (web -> web): family ipv6, but no segment "
                            "of tenant acme has a subnet6, so the rule has no effect "
                            "[no-effect]")


def test_a_gateway6_silences_the_ipv4_only_warning_and_routes_the_ipv6_rule() -> None:
    text = POLICY6.replace('subnet6: "2001:db8:20::/64"}',
                           'subnet6: "2001:db8:20::/64", gateway6: "2001:db8:20::1"}')
    warnings = {w.line: w.message for w in lint_policy(parse_policy(text, "p.yaml"))}
    assert 15 not in warnings and 18 not in warnings
    assert "[no-effect]" in warnings[17]  # db still has no IPv6


def test_ipv6_rules_of_one_family_are_covered_only_by_rules_of_that_family() -> None:
    text = POLICY6.replace("{from: web, to: web, allow: [icmp], family: ipv4}",
                           "{from: web, to: web, allow: [icmp]}")
    warnings = {w.line: w.message for w in lint_policy(parse_policy(text, "p.yaml"))}
    assert warnings[19].endswith("[covered]")  # the ipv6 one: within the both-families one
    assert 20 not in warnings
