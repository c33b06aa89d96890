"""Mutation run: deliberate bugs in the compiler and the simulator, each of which some
behavioural test must catch.

Each mutant is one textual edit (file, the text to find, its replacement) applied to
a copy of the repository in a temporary folder, never to the tree itself; the
behavioural unit tests (simulator-based; golden-file text comparisons excluded,
since a text diff proves nothing about behaviour) then run on that copy. A mutant
is killed when a test fails; the table names the first test that did. Exit status
1 when any mutant survives (or an edit no longer applies: re-target it), else 0.

    .venv/bin/python tests/mutate.py            # every mutant (make mutate)
    .venv/bin/python tests/mutate.py -k acl     # those whose name contains "acl"
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Behavioural tests only: the pipeline asked through the simulator, never flow text.
TESTS = [
    "tests/unit/test_security_behaviour.py",
    "tests/unit/test_security_behaviour6.py",
    "tests/unit/test_revocation.py",
    "tests/unit/test_compile_behaviour.py",
    "tests/unit/test_semantics_property.py",
    "tests/unit/test_mirror.py",
    "tests/unit/test_nat_actions.py",
    "tests/unit/test_northsouth_behaviour.py",
    "tests/unit/test_uplinks_live.py",
    "tests/unit/test_connlog.py",
]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    find: str
    replace: str
    why: str


PS = "sdnctl/compile/port_security.py"
ACL = "sdnctl/compile/acl.py"
CT = "sdnctl/compile/conntrack.py"
SIM = "sdnctl/verify/simulate.py"
ND = "sdnctl/compile/nd.py"
ANSWER = "sdnctl/nd/answer.py"
MIRROR = "sdnctl/southbound/mirror.py"
NS = "sdnctl/compile/northsouth.py"
UPLINKS = "sdnctl/live/uplinks.py"
CONNLIMITS = "sdnctl/live/connlimits.py"
CONNLOG = "sdnctl/compile/connlog.py"

MUTANTS = [
    # -- compiler: north–south
    Mutant("ns-one-zone-for-all-tenants", "sdnctl/compile/exits.py",
           "zones[name] = NAT_ZONE_BASE + slot", "zones[name] = NAT_ZONE_BASE",
           "tenants with the same inside addresses share NAT state on a gateway"),
    Mutant("ns-inbound-unjudged", NS,
           "metadata=(t.tid, TENANT_MASK)), (), owner)",
           "metadata=(t.tid, TENANT_MASK)), (Goto(\"l3_route\"),), owner)",
           "what comes in through a floating IP passes without a rule"),
    Mutant("ns-cidr-ignored", ACL, "            if net.prefixlen:\n",
           "            if False:\n", "a rule to a CIDR allows every external address"),
    Mutant("ns-inbound-cidr-ignored", NS,
           "else dict(outside, ipv4_src=cidr(src))", "else dict(outside)",
           "a rule from a CIDR admits every external address"),
    Mutant("ns-uplink-admits-any", NS,
           "eth_type=ETH_IP, eth_dst=uplink.mac, ipv4_dst=str(addr)),",
           "eth_type=ETH_IP, eth_dst=uplink.mac),",
           "the outside can address VMs by their inside addresses"),
    Mutant("ns-spoofed-inside-source", NS, "PRIO_SPOOFED_INSIDE = PRIO_NOT_EXTERNAL",
           "PRIO_SPOOFED_INSIDE = 90", "a packet from outside may claim an address inside "
           "the tenant"),
    Mutant("ns-nowhere-goes-out", NS, "PRIO_NOWHERE = 106", "PRIO_NOWHERE = 99",
           "loopback, multicast and broadcast destinations are sent out"),
    Mutant("ns-default-allow-goes-out", ACL,
           "inside = {REG_SIDE: SIDE_INSIDE} if goes_out else {}",
           "inside = {REG_SIDE: (0, 0)} if goes_out else {}",
           "a default-allow tenant lets anything out without a rule"),
    # -- compiler: port security
    Mutant("ps-no-ipv4-src", PS, "eth_type=ETH_IP, ipv4_src=str(vm.ip))", "eth_type=ETH_IP)",
           "a VM may send with any IPv4 source"),
    Mutant("ps-no-eth-src", PS, '"eth_src": vm.mac, ', "",
           "a VM may send with any source MAC"),
    Mutant("ps-no-arp-sha", PS, "arp_spa=str(vm.ip), arp_sha=vm.mac)", "arp_spa=str(vm.ip))",
           "ARP with a foreign sender MAC passes"),
    Mutant("ps-no-arp-spa", PS, "arp_spa=str(vm.ip), arp_sha=vm.mac)", "arp_sha=vm.mac)",
           "ARP with a foreign sender IP passes"),
    Mutant("ps-no-vlan-check", PS, ', "vlan_vid": 0}', "}", "tagged frames pass from a VM"),
    # -- compiler: IPv6 port security and neighbour discovery
    Mutant("nd-no-ipv6-src", ND, "Match.of(own, ipv6_src=str(vm.ip6)), to_ct, owner)",
           "Match.of(own), to_ct, owner)", "a VM may send IPv6 from any source address"),
    Mutant("nd-no-eth-src", ND, '"eth_src": vm.mac, "vlan_vid": 0,\n',
           '"vlan_vid": 0,\n', "IPv6 with any source MAC passes"),
    Mutant("nd-no-vlan-check", ND, '"eth_src": vm.mac, "vlan_vid": 0,\n',
           '"eth_src": vm.mac,\n', "tagged IPv6 passes from a VM"),
    Mutant("nd-no-icmp6-guard", ND,
           "               Match.of(in_port=port, eth_type=ETH_IP6, ip_proto=ICMPV6), (), owner)",
           "               Match.of(in_port=port, eth_type=ETH_IP6, ip_proto=ICMPV6, ip_frag=3),"
           " (), owner)", "RAs, NAs, redirects and MLD from a VM are left to conntrack"),
    Mutant("nd-no-dhcp6-guard", ND, "ip_proto=UDP, udp_src=DHCP6_SERVER_PORT)",
           "ip_proto=UDP, udp_src=DHCP6_SERVER_PORT, ip_frag=3)",
           "DHCPv6 server messages pass from a VM"),
    Mutant("nd-solicit-any-source", ND,
           "Match.of(icmp, ipv6_src=source, icmpv6_type=kind), to_controller",
           'Match.of(icmp, ipv6_src=(source, "::"), icmpv6_type=kind), to_controller',
           "solicitations from any source reach the controller"),
    Mutant("nd-dad-to-controller", ND, "(ND_NEIGHBOR_SOLICIT, (str(vm.ip6), ll))",
           "(ND_NEIGHBOR_SOLICIT, (str(vm.ip6), ll, UNSPECIFIED))",
           "duplicate address detection probes reach the controller"),
    Mutant("nd-answers-any-source", ANSWER, "if asked.source not in (vm.ip6, link_local(vm.mac)):",
           "if False:", "the controller answers a solicitation from a forged source"),
    Mutant("nd-answers-with-asker-mac", ANSWER, "return other.mac, False",
           "return vm.mac, False", "the controller answers with the wrong MAC"),
    Mutant("nd-answers-unbound", ANSWER, "and other.name in bindings.ports):", "):",
           "the controller answers for VMs that are not bound"),
    Mutant("l2-ip6-no-mpls-tc", "sdnctl/compile/l2.py", 'SetField("mpls_tc", MPLS_TC_IP6), ', "",
           "IPv6 across the fabric is popped as IPv4 at the far end"),
    Mutant("acl6-source-clause-on-dst", ACL, "Match.of(tenant_match6, ipv6_src=str(vm.ip6))",
           "Match.of(tenant_match6, ipv6_dst=str(vm.ip6))",
           "IPv6 rule sources matched on the destination address"),
    Mutant("acl6-family-ignored", "sdnctl/policy/model.py",
           "return self.family is None or self.family == family", "return True",
           "a rule for one family allows both"),
    Mutant("sim-icmp6-reply-opens", SIM, "return pkt.get(\"icmpv6_type\") in ICMP6_REPLY_OF",
           "return True", "any ICMPv6 may open a connection in the simulator"),
    # -- compiler: ACL and conntrack
    Mutant("acl-no-commit", ACL,
           "_COMMIT = (Ct(zone=REG_ZONE, commit=True, mark=MARK_ALLOWED), Goto(\"l3_route\"))",
           "_COMMIT = (Goto(\"l3_route\"),)", "new connections are not committed at the source"),
    Mutant("acl-commit-no-mark", ACL,
           "_COMMIT = (Ct(zone=REG_ZONE, commit=True, mark=MARK_ALLOWED), Goto(\"l3_route\"))",
           "_COMMIT = (Ct(zone=REG_ZONE, commit=True), Goto(\"l3_route\"))",
           "an allowed packet does not clear a revoked mark"),
    Mutant("acl-revoke-without-mark", ACL,
           "(Ct(zone=REG_ZONE, commit=True, mark=MARK_REVOKED),), f\"tenant:{tenant}\")",
           "(), f\"tenant:{tenant}\")", "a revoked connection is dropped but not marked"),
    Mutant("acl-no-revoke", ACL, "PRIO_TENANT_REVOKE = 101", "PRIO_TENANT_REVOKE = 99",
           "established packets no rule allows are not revoked (below the tenant drop)"),
    Mutant("deliver-revoked-below-est", CT, "PRIO_REVOKED = 250", "PRIO_REVOKED = 150",
           "replies of a revoked connection are delivered"),
    Mutant("deliver-no-commit", CT, "(Ct(zone=lv.port, commit=True), Output(lv.port))",
           "(Output(lv.port),)", "new connections are not committed at the destination"),
    Mutant("acl-no-inv-drop", ACL,
           '    yield Flow("acl", PRIO_INVALID, Match.of(ct_state="+inv+trk"), (), "base")\n', "",
           "no +inv drop"),
    Mutant("acl-rule-above-inv", ACL, "PRIO_RULE = 150", "PRIO_RULE = 350",
           "rules above the +inv drop"),
    Mutant("acl-default-above-est", ACL, "PRIO_TENANT_DEFAULT = 100", "PRIO_TENANT_DEFAULT = 250",
           "the tenant's drop above the est/rel flows"),
    Mutant("acl-no-reply-pass", ACL, 'Match.of(ct_state="+est+rpl+trk"), (Goto("l3_route"),)',
           'Match.of(ct_state="+est+rpl+trk"), ()', "replies are not passed"),
    Mutant("acl-source-clause-on-dst", ACL,
           "Match.of(tenant_match, ipv4_src=str(view.policy.vms[n].ip))",
           "Match.of(tenant_match, ipv4_dst=str(view.policy.vms[n].ip))",
           "rule sources matched on the destination address"),
    Mutant("acl-default-allow-drops", ACL, "Match.of({**tenant_match, **inside}), _COMMIT,",
           "Match.of({**tenant_match, **inside}), (),",
           "a default-allow tenant drops its connections"),
    Mutant("ct-out-passes-fragments", CT,
           '        yield Flow("ct_out", PRIO_FRAGMENT, fragments(eth), (), "base")\n',
           "        pass\n",
           "IP fragments reach the sender's conntrack (OVS may hold and misdeliver them)"),
    Mutant("ct-in-passes-fragments", CT,
           '        yield Flow("ct_in", PRIO_FRAGMENT, fragments(eth), (), "base")\n',
           "        pass\n",
           "IP fragments reach the receiver's conntrack"),
    Mutant("ttl-any-destination", "sdnctl/compile/dhcp.py",
           "ipv4_src=str(vm.ip), eth_dst=gateway_mac(lv.segment.id),", "ipv4_src=str(vm.ip),",
           "TTL-1 packets inside a segment go to the controller instead of the VM"),
    Mutant("ttl-unmetered", "sdnctl/compile/dhcp.py",
           "ip_ttl=TTL_EXPIRES),\n                   (Meter(vm_dhcp_meter(port)), Goto(\"dhcp\"))",
           "ip_ttl=TTL_EXPIRES),\n                   (Goto(\"dhcp\"),)",
           "a VM's expired packets reach the controller without its own meter"),
    Mutant("hop-limit-not-answered", ND, "    yield from hop_limit_port_flows(lv)\n", "",
           "IPv6 with hop limit 1 to the router is dropped silently (no time exceeded)"),
    Mutant("hop-limit-any-destination", ND,
           "ipv6_src=str(vm.ip6), eth_dst=gateway_mac(lv.segment.id),", "ipv6_src=str(vm.ip6),",
           "IPv6 with hop limit 1 inside a segment goes to the controller instead of the VM"),
    Mutant("hop-limit-unmetered", ND,
           "(Meter(vm_nd_meter(port)), Goto(\"dhcp\")), f\"vm:{vm.name}\")",
           "(Goto(\"dhcp\"),), f\"vm:{vm.name}\")",
           "a VM's expired IPv6 packets reach the controller without its own meter"),
    Mutant("ct-in-source-zone", CT, '(Ct(zone=lv.port, table="deliver"),)',
           '(Ct(zone=REG_ZONE, table="deliver"),)', "ct_in in the sender's zone"),
    Mutant("route-no-dec-ttl", "sdnctl/compile/route.py", "DecTtl(), ", "",
           "the router does not decrement TTL"),
    Mutant("arp-answers-own-mac", "sdnctl/compile/arp.py", 'SetField("arp_sha", mac)',
           'SetField("arp_sha", "02:00:00:00:00:00")', "ARP answers name a wrong MAC"),
    # -- simulator
    Mutant("sim-synack-opens", SIM,
           "tcp_valid(flags) and core & (TCP_SYN | TCP_ACK) != TCP_SYN | TCP_ACK",
           "tcp_valid(flags)", "a SYN-ACK opens a connection (the old model)"),
    Mutant("sim-commit-ignored", SIM,
           "str(nat.first), table)\n            table.add(t)\n",
           "str(nat.first), table)\n",
           "ct(commit) does nothing"),
    Mutant("sim-mark-ignored", SIM, "if t is None or not self.marks:", "if True:",
           "ct_mark always reads 0"),
    Mutant("sim-reply-new", SIM,
           "                self.answered.add((switch, zone, orig))\n"
           "                return CT_BITS[\"est\"] | CT_BITS[\"rpl\"] | CT_BITS[\"trk\"]",
           "                return CT_BITS[\"new\"] | CT_BITS[\"trk\"]", "a reply is +new"),
    # -- simulator: NAT (tests/unit/test_nat_actions.py; held to OVS by test_sim_nat_ovs)
    Mutant("sim-nat-untranslated-reply", SIM,
           "if self._holds(rev, table) and (not self.nats or (switch, zone, rev) not in "
           "self.nats):",
           "if self._holds(rev, table):",
           "a translated connection's reply is found untranslated too"),
    Mutant("sim-nat-reply-kept", SIM,
           "return ({\"ipv4_dst\": str(orig[1])} if kind == \"src\" "
           "else {\"ipv4_src\": str(orig[3])})",
           "return {}", "a reply to a translated connection is not translated back"),
    Mutant("sim-nat-seen-without-table", SIM, "p[_PENDING[name]] = value", "p[name] = value",
           "after a ct without table the pipeline matches the translated header"),
    Mutant("sim-inv-is-new", SIM,
           "        if not self._opens(pkt):\n            return CT_BITS[\"inv\"]",
           "        if not self._opens(pkt):\n            return CT_BITS[\"new\"]",
           "what cannot open a connection is +new"),
    Mutant("sim-lowest-priority-wins", SIM, "if best is None or bucket[0][0] < best[0]:",
           "if best is None or bucket[0][0] > best[0]:", "the lowest-priority match wins"),
    Mutant("sim-conjunction-one-clause", SIM,
           "if len(clauses) == sizes[cid]}", "if clauses}", "one clause completes a conjunction"),
    Mutant("sim-output-to-in-port", SIM,
           '                        elif port != p["in_port"]:  # OpenFlow: only IN_PORT',
           '                        else:  # OpenFlow: only IN_PORT',
           "output:N sends back out of the port a frame came in on"),
    Mutant("sim-dec-ttl-never-stops", SIM,
           'elif act.__class__ is DecTtl and int(p.get("ip_ttl", 64)) <= 1:',
           'elif act.__class__ is DecTtl and int(p.get("ip_ttl", 64)) < -1:',
           "a packet whose TTL runs out goes on"),
    Mutant("sim-set-field-ignored", SIM,
           "        p[act.field] = act.value\n", "        pass\n",
           "set_field does nothing"),
    Mutant("sim-ff-ignores-liveness", SIM, "buckets = tuple(live[:1])",
           "buckets = tuple(buckets[:1])", "fast-failover takes the first bucket, live or not"),
    Mutant("sim-push-mpls-keeps-type", SIM, "p.update(eth_type=0x8847, mpls_label=0, mpls_tc=0)",
           "p.update(mpls_label=0, mpls_tc=0)", "push_mpls leaves the ethertype"),
    # -- mirroring: who may receive a VM's mirrored frames (sdnctl/southbound/mirror.py)
    Mutant("mirror-other-tenant-port", MIRROR,
           "        if policy.vms[owner].tenant != tenant:\n            return (f\"{where} is VM",
           "        if False:\n            return (f\"{where} is VM",
           "another tenant's VM port may be a mirror's capture port"),
    Mutant("mirror-other-tenant-netns", MIRROR,
           "        if policy.vms[owner].tenant != tenant:\n            return (f\"namespace",
           "        if False:\n            return (f\"namespace",
           "a namespace holding another tenant's VM may receive a mirror"),
    # -- daemon: gateway uplinks (next hops learned, exits announced) and NAT exhaustion
    Mutant("nexthop-any-sender", UPLINKS, "arp.sender_ip != uplink.next_hop", "False",
           "any host on the uplink subnet could make itself the next hop (ARP spoofing)"),
    Mutant("garp-where-it-left", UPLINKS, "if self.answering.get(addr) != uplink.name:",
           "if False:", "a gateway announces addresses that moved on: the router follows "
           "the wrong exit"),
    Mutant("connlimit-no-vm-zones", CONNLIMITS, "out[ref.port] = limits.vm", "pass",
           "one VM may fill its hypervisor's connection table"),
    # -- connection logs: a copy never changes what happens to the packet
    Mutant("connlog-copy-drops-allowed", CONNLOG,
           "actions = (*head, log_copy(), last) if isinstance(last, Goto)",
           "actions = (*head, log_copy()) if isinstance(last, Goto)",
           "a logged rule's new connection is copied but no longer goes on"),
    Mutant("connlog-copies-established", CONNLOG,
           'Match.of(conj_id=cid, eth_type=eth, ct_state="+new+trk")',
           'Match.of(conj_id=cid, eth_type=eth, ct_state="+trk")',
           "every packet of a logged connection is copied, not its first"),
    Mutant("connlog-deny-forwards", CONNLOG,
           "               (log_copy(),), f\"tenant:{tenant}\")",
           "               (log_copy(), Goto(\"l3_route\")), f\"tenant:{tenant}\")",
           "a denied first packet that is logged goes on instead of being dropped"),
]


def apply(tree: Path, m: Mutant) -> None:
    path = tree / m.path
    text = path.read_text()
    n = text.count(m.find)
    if n != 1:
        raise LookupError(f"{m.name}: {m.path} has the text {n} times, not once: re-target it")
    path.write_text(text.replace(m.find, m.replace))


def copy_tree(dst: Path) -> None:
    for name in ("sdnctl", "tests", "topologies", "pyproject.toml"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst / name)


def run_tests(tree: Path) -> tuple[int, str]:
    """Run the behavioural tests on `tree` (its own sdnctl first on the path)."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    env.pop("CI", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-W", "ignore",
         *TESTS], cwd=tree, env=env, capture_output=True, text=True)
    failed = re.search(r"^FAILED (\S+)", done.stdout, re.M)
    return done.returncode, failed.group(1) if failed else done.stdout.strip()[-200:]


def judge(m: Mutant) -> tuple[Mutant, str, float]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sdnctl-mutant-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        try:
            apply(tree, m)
        except LookupError as e:
            return m, f"NOT APPLIED: {e}", time.monotonic() - started
        code, where = run_tests(tree)
    verdict = f"killed by {where}" if code == 1 else f"SURVIVED (pytest exit {code})"
    if code not in (0, 1):
        verdict = f"ERROR (pytest exit {code}): {where}"
    return m, verdict, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only mutants whose name contains this")
    ap.add_argument("-j", type=int, default=2, help="mutants run at once (default 2)")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if args.k in m.name]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sdnctl-mutant-") as tmp:  # the control run
        copy_tree(Path(tmp))
        code, where = run_tests(Path(tmp))
        if code != 0:
            print(f"the unmutated tests fail ({where}): fix them first")
            return 2
    with ThreadPoolExecutor(max_workers=args.j) as pool:
        results = list(pool.map(judge, chosen))
    width = max(len(m.name) for m in chosen)
    for m, verdict, secs in results:
        print(f"{m.name:<{width}}  {secs:5.1f}s  {verdict}")
    bad = [m.name for m, verdict, _ in results if not verdict.startswith("killed")]
    print(f"{len(chosen)} mutants, {len(chosen) - len(bad)} killed, {len(bad)} not"
          f" ({', '.join(bad) or 'none'}); {time.monotonic() - started:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
