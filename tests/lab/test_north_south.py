"""North–south on real OVS in the Mininet lab: the internet behind two gateways, the
matrix's external rows and columns, and the hostile-VM suite's north–south attacks.

The data centre is tests/unit/nsnet.py (leaf-spine, border1 and border2 on
203.0.113.0/24; red and blue share 10.0.1.0/24; rf1 has a floating IP). The lab's
switches are loaded with the compiled flows (sdnctl.lab.static): these tests prove
the data plane; `sdnctl lab run` drives the same probes through the daemon. What
each attack proves is in docs/threat-model.md.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from sdnctl.lab.attacks.northsouth import (
    HOLD_PORT,
    NS_ATTACKS,
    NS_CONTROLS,
    NsLab,
    NsResult,
    Roles,
    format_ns_table,
    own_tenant_names,
    run_exhaustion,
    run_ns_attack,
)
from sdnctl.lab.outside import INTERNET, format_outside, judge_outside, outside_probes
from sdnctl.lab.outside_probe import run_outside
from sdnctl.lab.probe import probe_matrix
from sdnctl.lab.report import format_summary, judge_probes
from sdnctl.verify.semantics import probe_services
from tests.lab.labkit import assert_nothing_left
from tests.unit.nsnet import net

pytestmark = [pytest.mark.lab, pytest.mark.needs("tcpdump")]

# bx2 (blue: anything out, one pool address shared with bx1) attacks; rf1 is
# published on 203.0.113.20 (tcp/80 from anywhere) and may reach tcp/443 outside.
ROLES = Roles(attacker="bx2", floating="rf1", witness="bx1", inbound_port=80,
              outbound_port=443)
EXHAUSTION = 2000  # connections held by one VM: "thousands", in a few seconds
EXHAUSTION_RATE = 500.0


@pytest.fixture(scope="module")
def ns() -> Iterator[NsLab]:
    from sdnctl.lab.attacks.northsouth import ns_attack_lab

    policy, topo = net()
    # Tenant names of our own: gateway zones come from them (own_tenant_names).
    policy = own_tenant_names(policy, secrets.token_hex(2))
    with ns_attack_lab(policy, topo, ROLES) as running:
        prefix, interfaces = running.plan.prefix, running.plan.interfaces
        yield running
    assert_nothing_left(prefix, interfaces)


def test_matrix_with_the_internet_equals_the_semantics(ns: NsLab) -> None:
    services = probe_services(ns.policy)
    vms = tuple(h.vm for h in ns.plan.hosts)
    addresses = {h.vm: str(h.ip) for h in ns.plan.hosts}
    inside = judge_probes(ns.policy, vms, services,
                          probe_matrix(ns.lab.hosts, addresses, services))
    assert ns.plan.internet is not None
    probes = outside_probes(ns.policy, vms, services)
    outside = judge_outside(probes, run_outside(ns.lab.hosts, ns.internet, ns.plan.internet,
                                                probes), vms, services)
    print(format_outside(outside))
    assert inside.failures == 0, format_summary(inside)
    assert outside.failures == 0, format_summary(outside)
    reached = [j.probe for j in outside.judged if j.probe.reached]
    # Every kind of promised cell got through: out (as the NAT address), in, hairpin.
    out = {p.src: p.detail for p in reached if p.dst == INTERNET}
    assert "seen as 203.0.113.20" in out["rf1"] and "seen as 203.0.113.12" in out["bx1"]
    assert any(p.src == INTERNET and p.dst == "rf1@fip" for p in reached)
    assert any(p.src == "bx2" and p.dst == "rf1@fip" for p in reached)
    assert not [p for p in reached if p.src == INTERNET and not p.dst.endswith("@fip")]


@pytest.fixture(scope="module")
def attacks(ns: NsLab) -> dict[str, NsResult]:
    results = {a.name: run_ns_attack(ns, a) for a in (*NS_CONTROLS, *NS_ATTACKS)}
    print(format_ns_table(list(results.values())))
    return results


def test_the_captures_see_allowed_marked_frames(attacks: dict[str, NsResult]) -> None:
    """Without this, 0 leaked could mean deaf captures."""
    assert attacks["ns-control"].delivered == {INTERNET: 1}
    assert attacks["ns-control-in"].delivered == {"rf1": 1}


@pytest.mark.parametrize("name", [a.name for a in NS_ATTACKS])
def test_nothing_leaks_and_allowed_traffic_flows(attacks: dict[str, NsResult],
                                                 name: str) -> None:
    result = attacks[name]
    assert result.sent > 0
    assert result.leaks == {}, f"{name} leaked: {result.leaks}"
    assert result.liveness == [], f"after {name}: {result.liveness}"


def test_nat_exhaustion_by_one_vm_leaves_the_others_connecting(ns: NsLab) -> None:
    result = run_exhaustion(ns, EXHAUSTION, EXHAUSTION_RATE)
    f = result.figures
    print(f"{result.name}: {f}")
    # On a loaded machine a few connects time out (3 s); the rest are held.
    assert f["opened"] >= 0.9 * EXHAUSTION, f
    # Held, in the tenant's own zone on the gateway: the entries the attack took.
    assert f["gateway_zone_peak"] >= 0.9 * f["opened"], f
    assert f["witness_rounds"] >= 2 and result.liveness == [], result.liveness


NAT_LIMIT = 300


def test_a_tenant_nat_limit_caps_the_attacker_and_spares_other_tenants(ns: NsLab) -> None:
    """With its tenant's gateway zone limited (what the daemon sets per tenant), the
    flood gets no further than the limit: connections over it never open. The other
    tenant's VM and the internet's connections to it keep working; the attacker's
    own tenant mate shares the exhausted zone (that is what a tenant limit means)."""
    result = run_exhaustion(ns, 1000, EXHAUSTION_RATE, nat_limit=NAT_LIMIT, port=HOLD_PORT + 1)
    f = result.figures
    print(f"{result.name}: {f}")
    assert f["opened"] <= NAT_LIMIT and f["gateway_zone_peak"] <= NAT_LIMIT, f
    assert f["opened"] >= 0.5 * NAT_LIMIT, f  # the limit, not something else, stopped it
    assert f.get(f"failures_{ROLES.floating}", 0) == 0, result.liveness
    assert not [line for line in result.liveness if line.startswith("internet")], \
        result.liveness


BUG_COOKIE = "0xbadbad"


def test_a_hole_in_port_security_would_show(ns: NsLab, attacks: dict[str, NsResult]) -> None:
    """The harness can fail: with the attacker's port accepting any IPv4 source (a
    copy of its own port-security flow without `nw_src`, one priority higher),
    spoofed frames get through and are caught. (They reach the attacker's tenant
    mate, blue allowing everything inside; the way out stays shut even then, as
    the ACL matches a rule's VMs by their addresses too.)"""
    import re
    import subprocess

    from sdnctl.lab.attacks.northsouth import NS_ATTACKS

    host = ns.plan.host(ROLES.attacker)
    ofctl = ["ovs-ofctl", "-O", "OpenFlow13"]
    dump = subprocess.run([*ofctl, "--no-stats", "dump-flows", host.bridge,
                           f"table=0,in_port={host.port},ip"],
                          capture_output=True, text=True, check=True).stdout
    (own,) = [ln for ln in dump.splitlines() if "priority=200" in ln and "nw_src" in ln]
    hole = re.sub(r"cookie=\S+ ", "", own.strip())
    hole = re.sub(r",?nw_src=[0-9.]+", "", hole).replace("priority=200", "priority=201")
    subprocess.run([*ofctl, "add-flow", host.bridge, f"cookie={BUG_COOKIE},table=0,{hole}"],
                   check=True, capture_output=True)
    try:
        spoof = next(a for a in NS_ATTACKS if a.name == "ns-spoof-external-source")
        result = run_ns_attack(ns, spoof)
    finally:
        subprocess.run([*ofctl, "del-flows", host.bridge, f"cookie={BUG_COOKIE}/-1"],
                       check=True, capture_output=True)
    assert result.leaks.get(ROLES.witness, 0) > 0, result
    assert attacks["ns-spoof-external-source"].leaks == {}  # and without the hole, none
