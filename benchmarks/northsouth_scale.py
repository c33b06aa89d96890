"""What north–south costs the compiler, on the scattered data centre.

    .venv/bin/python benchmarks/northsouth_scale.py [N_VMS]   (default 5000)

The benchmark data centre (`sdnctl.bench.datacentre`, tenants of 125 VMs
scattered over every hypervisor: the hostile layout), compiled twice in one
process: as it is, and with two gateways (one per leaf of the first pair, both
uplinks on 100.64.0.0/10) where every tenant goes out: a SNAT address, a
floating IP on every tenth VM, and three rules with external ends
(`external -> web tcp/443`, `any -> external udp/53`, `app -> 198.51.100.0/24
tcp/443`). Prints the full compile time and flows of both, what north–south adds
per VM and on each gateway, and the incremental cost of two live events: a VM
given a floating IP, and the active uplink of half the tenants cut.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bench.datacentre import datacentre  # noqa: E402
from sdnctl.bindings import planned_bindings  # noqa: E402
from sdnctl.compile.compiler import compile_network  # noqa: E402
from sdnctl.compile.context import NetworkView  # noqa: E402
from sdnctl.compile.exits import ns_plan  # noqa: E402
from sdnctl.compile.incremental import IncrementalCompiler  # noqa: E402
from sdnctl.policy.model import Policy, Proto, Rule, Service, SnatPool  # noqa: E402
from sdnctl.topology.model import (  # noqa: E402
    Link,
    PortRef,
    Role,
    Switch,
    Topology,
    Uplink,
    uplink_mac,
)

POOL = int(IPv4Address("100.64.16.0"))  # SNAT addresses from here, floating IPs from +65536


def with_gateways(topo: Topology) -> Topology:
    switches = dict(topo.switches)
    links = list(topo.links)
    for i, leaf in enumerate(("leaf0a", "leaf0b")):
        name = f"border{i + 1}"
        dpid = 0x30000 + i
        uplink = Uplink(name, 1, IPv4Interface(f"100.64.0.{2 + i}/10"),
                        IPv4Address("100.64.0.1"), uplink_mac(dpid, 1),
                        next_hop_mac="02:aa:00:00:00:01")
        switches[name] = Switch(name, dpid, Role.GATEWAY, uplinks=(uplink,))
        links.append(Link(PortRef(name, 2), PortRef(leaf, 200 + i)))
    return Topology(MappingProxyType(switches), tuple(links))


def going_out(policy: Policy) -> Policy:
    tenants = {}
    for n, (name, t) in enumerate(sorted(policy.tenants.items())):
        rules = t.rules + (
            Rule(name, "external", "web", (Service(Proto.TCP, 443, 443),)),
            Rule(name, "any", "external", (Service(Proto.UDP, 53, 53),)),
            Rule(name, "app", "198.51.100.0/24", (Service(Proto.TCP, 443, 443),)),
        )
        snat = IPv4Address(POOL + n)
        tenants[name] = dataclasses.replace(t, rules=rules, snat=SnatPool(snat, snat))
    vms = {}
    for i, (name, vm) in enumerate(sorted(policy.vms.items())):
        routed = policy.segment_of(vm).routed
        fip = IPv4Address(POOL + 65536 + i) if routed and i % 10 == 0 else None
        vms[name] = dataclasses.replace(vm, floating_ip=fip)
    return Policy(MappingProxyType(tenants), MappingProxyType(vms))


def timed(fn, *args):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - started


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    policy, topo = datacentre(n, "scattered")
    bindings = planned_bindings(policy, topo)
    plain, t_plain = timed(compile_network, policy, topo, bindings)
    ns_topo = with_gateways(topo)
    ns_policy = going_out(policy)
    ns_bindings = planned_bindings(ns_policy, ns_topo)
    ns, t_ns = timed(compile_network, ns_policy, ns_topo, ns_bindings)
    flows_plain = sum(fs.n_flows for fs in plain.values())
    hv_ns = sum(fs.n_flows for name, fs in ns.items() if not name.startswith("border"))
    plan = ns_plan(NetworkView(ns_policy, ns_topo, ns_bindings))
    fips = sum(1 for vm in ns_policy.vms.values() if vm.floating_ip)
    print(f"{n} VMs scattered, {len(policy.tenants)} tenants, {fips} floating IPs, "
          f"{len(plan.tenants)} tenants going out")
    print(f"full compile: {t_plain:.2f} s without north–south, {t_ns:.2f} s with "
          f"(x{t_ns / t_plain:.2f})")
    print(f"flows on hypervisors and fabric: {flows_plain} without, {hv_ns} with "
          f"(+{(hv_ns - flows_plain) / n:.2f} per VM)")
    for g in ("border1", "border2"):
        exits = sum(1 for t in plan.tenants.values() if t.exit and t.exit.switch == g)
        print(f"{g}: {ns[g].n_flows} flows, {len(ns[g].groups)} groups, exit of {exits} "
              "tenants")
    compiler = IncrementalCompiler()
    compiler(ns_policy, ns_topo, ns_bindings)
    vm = next(v for v in sorted(ns_policy.vms) if ns_policy.vms[v].floating_ip is None
              and ns_policy.segment_of(ns_policy.vms[v]).routed)
    vms = dict(ns_policy.vms)
    vms[vm] = dataclasses.replace(vms[vm], floating_ip=IPv4Address(POOL + 200000))
    edited = Policy(ns_policy.tenants, MappingProxyType(vms))
    _, t_fip = timed(compiler, edited, ns_topo, ns_bindings)
    print(f"give {vm} a floating IP: {t_fip * 1000:.0f} ms "
          f"({compiler.last_scope.describe() if compiler.last_scope else ''})")
    cut = frozenset({ns_topo.switches["border1"].uplinks[0].ref})
    _, t_cut = timed(compiler, edited, ns_topo, ns_bindings, cut)
    print(f"border1's uplink cut: {t_cut * 1000:.0f} ms to recompile "
          f"({compiler.last_scope.describe() if compiler.last_scope else ''})")


if __name__ == "__main__":
    main()
