"""The incremental compiler equals a full compile and recompiles only what an edit reaches."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdnctl.bindings import Bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.compile.incremental import IncrementalCompiler
from sdnctl.diff import diff_flowsets
from sdnctl.flows import FlowSet
from sdnctl.policy.load import parse_policy
from sdnctl.policy.model import ANY, VM, Default, Group, Policy, Rule, Segment, SnatPool, Tenant
from sdnctl.topology.model import PortRef, Role, Topology
from tests.unit.netgen import (
    LABELS,
    SERVICES,
    floating_ip,
    networks,
    north_south_rule,
    topology_of,
)

EDITS = ["rule", "drop_rule", "default", "labels", "group_list", "move", "unbind", "stranger",
         "gateway", "vlan", "drop_vm", "add_vm", "vm_ip", "vm_segment", "new_tenant",
         "drop_tenant", "link_down", "links_up", "nothing", "snat", "floating_ip", "ns_rule",
         "uplink_down"]


def _replace_tenant(policy: Policy, name: str, **changes: object) -> Policy:
    tenants = dict(policy.tenants)
    tenants[name] = dataclasses.replace(policy.tenants[name], **changes)
    return Policy(MappingProxyType(tenants), policy.vms)


def _replace_vms(policy: Policy, vms: dict[str, VM]) -> Policy:
    return Policy(policy.tenants, MappingProxyType(vms))


@st.composite
def edited(draw: st.DrawFn, policy: Policy, topo: Topology, bindings: Bindings,
           down: frozenset[PortRef]) -> tuple[Policy, Bindings, frozenset[PortRef], str]:
    """One random edit of the kind the daemon sees: a policy reload, a binding
    change from OVSDB, or a link going down or up."""
    kind = draw(st.sampled_from(EDITS))
    tenant = draw(st.sampled_from(sorted(policy.tenants)))
    vm = draw(st.sampled_from(sorted(policy.vms)))
    hosts = sorted(n for n, s in topo.switches.items() if s.role is Role.HYPERVISOR)
    ports = dict(bindings.ports)
    if kind == "rule":
        groups = [*policy.tenants[tenant].groups, ANY]
        rule = Rule(tenant, draw(st.sampled_from(groups)), draw(st.sampled_from(groups)),
                    (draw(st.sampled_from(SERVICES)),))
        policy = _replace_tenant(policy, tenant, rules=(*policy.tenants[tenant].rules, rule))
    elif kind == "default":
        flip = {Default.DENY: Default.ALLOW, Default.ALLOW: Default.DENY}
        policy = _replace_tenant(policy, tenant, default=flip[policy.tenants[tenant].default])
    elif kind == "labels":
        vms = dict(policy.vms)
        vms[vm] = dataclasses.replace(
            vms[vm], labels=MappingProxyType({"tier": draw(st.sampled_from(LABELS))}))
        policy = _replace_vms(policy, vms)
    elif kind == "move":
        ports[vm] = PortRef(draw(st.sampled_from(hosts)), draw(st.integers(200, 203)))
        if list(ports.values()).count(ports[vm]) > 1:
            del ports[vm]  # two VMs on one port is refused upstream; unbind instead
    elif kind == "unbind":
        ports.pop(vm, None)
    elif kind == "stranger":  # a port bound to a VM the policy does not know
        ports["nobody"] = PortRef(draw(st.sampled_from(hosts)), 250)
    elif kind == "gateway":
        segs = dict(policy.tenants[tenant].segments)
        name = draw(st.sampled_from(sorted(segs)))
        seg = segs[name]
        gateway = None if seg.gateway else seg.subnet.network_address + 1
        segs[name] = dataclasses.replace(seg, gateway=gateway)
        policy = _replace_tenant(policy, tenant, segments=MappingProxyType(segs))
    elif kind == "drop_vm" and not any(vm in g.vms for t in policy.tenants.values()
                                       for g in t.groups.values()):
        if sum(1 for v in policy.vms.values() if v.tenant == policy.vms[vm].tenant) > 1:
            vms = dict(policy.vms)
            del vms[vm]
            policy = _replace_vms(policy, vms)
            ports.pop(vm, None)
    elif kind == "vlan":  # a segment renumbered
        segs = dict(policy.tenants[tenant].segments)
        name = draw(st.sampled_from(sorted(segs)))
        if segs[name].vlan is not None:
            used = {s.vlan for t in policy.tenants.values() for s in t.segments.values()}
            segs[name] = dataclasses.replace(segs[name], vlan=max(v or 0 for v in used) + 1)
            policy = _replace_tenant(policy, tenant, segments=MappingProxyType(segs))
    elif kind == "new_tenant":
        policy, ports = _new_tenant(draw, policy, topo, ports)
    elif kind == "drop_tenant" and len(policy.tenants) > 1:
        gone = {n for n, v in policy.vms.items() if v.tenant == tenant}
        policy = Policy(MappingProxyType({n: t for n, t in policy.tenants.items() if n != tenant}),
                        MappingProxyType({n: v for n, v in policy.vms.items() if n not in gone}))
        ports = {n: r for n, r in ports.items() if n not in gone}
    elif kind == "drop_rule" and policy.tenants[tenant].rules:
        rules = policy.tenants[tenant].rules
        gone = draw(st.integers(0, len(rules) - 1))
        policy = _replace_tenant(policy, tenant, rules=rules[:gone] + rules[gone + 1:])
    elif kind == "group_list" and "picked" in policy.tenants[tenant].groups:
        groups = dict(policy.tenants[tenant].groups)  # an explicit member list changes
        members = tuple(sorted(v.name for v in policy.vms_of(tenant)))
        picked = tuple(draw(st.lists(st.sampled_from(members), max_size=2, unique=True)))
        groups["picked"] = dataclasses.replace(groups["picked"], vms=picked)
        policy = _replace_tenant(policy, tenant, groups=MappingProxyType(groups))
    elif kind in ("add_vm", "vm_ip", "vm_segment"):
        policy, ports = _vm_edit(draw, kind, policy, topo, ports, tenant, vm)
    elif kind == "link_down" and topo.links:
        link = draw(st.sampled_from(topo.links))
        down = down | {link.a, link.b}
    elif kind == "links_up":
        down = frozenset()
    elif kind == "snat" and topo.uplinks():
        first = IPv4Address("203.0.113.40")
        pool = None if policy.tenants[tenant].snat else SnatPool(first, first)
        if pool is None or all(t.snat != pool for t in policy.tenants.values()):
            policy = _replace_tenant(policy, tenant, snat=pool)
    elif kind == "floating_ip" and topo.uplinks():
        vms = dict(policy.vms)
        old = vms[vm]
        seg = policy.segment_of(old)
        if seg.routed and seg.vlan is not None:
            vms[vm] = dataclasses.replace(old, floating_ip=None if old.floating_ip
                                          else floating_ip(old))
            policy = _replace_vms(policy, vms)
    elif kind == "ns_rule" and topo.uplinks():
        groups = [*policy.tenants[tenant].groups, ANY]
        rule = north_south_rule(draw, tenant, groups)
        policy = _replace_tenant(policy, tenant, rules=(*policy.tenants[tenant].rules, rule))
    elif kind == "uplink_down" and topo.uplinks():
        down = down | {draw(st.sampled_from(topo.uplinks())).ref}
    return policy, Bindings(MappingProxyType(ports)), down, kind


def _plain_segments(policy: Policy, tenant: str) -> list[str]:
    """Segments a VM may join on any hypervisor: a VLAN, and no route into an
    overlay-only segment (which the loader allows only on tunnel endpoints)."""
    segs = policy.tenants[tenant].segments
    overlay_routed = any(s.vlan is None and s.routed for s in segs.values())
    return sorted(n for n, s in segs.items()
                  if s.vlan is not None and not (overlay_routed and s.routed))


def _free_ip(policy: Policy, tenant: str, segment: str, start: int) -> IPv4Address:
    subnet = policy.tenants[tenant].segments[segment].subnet
    used = {vm.ip for vm in policy.vms_of(tenant)}
    return next(ip for k in range(start, 250) if (ip := subnet.network_address + k) not in used)


def _vm_edit(draw: st.DrawFn, kind: str, policy: Policy, topo: Topology,
             ports: dict[str, PortRef], tenant: str, vm: str
             ) -> tuple[Policy, dict[str, PortRef]]:
    """A VM added (and bound), readdressed, or moved to another segment."""
    vms = dict(policy.vms)
    hosts = sorted(n for n, s in topo.switches.items() if s.role is Role.HYPERVISOR)
    if kind == "add_vm":
        segs = _plain_segments(policy, tenant)
        if not segs:
            return policy, ports
        seg = draw(st.sampled_from(segs))
        name = f"new{len(vms)}"
        vms[name] = VM(name, tenant, seg, f"02:00:00:00:ff:{len(vms):02x}",
                       _free_ip(policy, tenant, seg, 100),
                       MappingProxyType({"tier": draw(st.sampled_from(LABELS))}), hosts[0],
                       None)
        port = PortRef(draw(st.sampled_from(hosts)), 220 + len(vms))
        if port not in ports.values():
            ports[name] = port
    elif kind == "vm_ip":
        old = vms[vm]
        vms[vm] = dataclasses.replace(old, ip=_free_ip(policy, old.tenant, old.segment, 150))
    else:  # vm_segment
        old = vms[vm]
        segs = [s for s in _plain_segments(policy, old.tenant) if s != old.segment]
        overlay = policy.segment_of(old).vlan is None
        if not segs or overlay:
            return policy, ports
        seg = draw(st.sampled_from(segs))
        vms[vm] = dataclasses.replace(old, segment=seg,
                                      ip=_free_ip(policy, old.tenant, seg, 160))
    return _replace_vms(policy, vms), ports


def _new_tenant(draw: st.DrawFn, policy: Policy, topo: Topology, ports: dict[str, PortRef]
                ) -> tuple[Policy, dict[str, PortRef]]:
    """A tenant with one routed VLAN segment, two VMs and a rule, bound somewhere."""
    name = f"n{len(policy.tenants)}"
    if name in policy.tenants:
        return policy, ports
    vlan = 1 + max((s.vlan or 0) for t in policy.tenants.values() for s in t.segments.values())
    seg = Segment(name, "s", vlan, IPv4Network("10.0.0.0/24"), IPv4Address("10.0.0.1"))
    groups = {"web": Group(name, "web", MappingProxyType({"tier": "web"}))}
    tenant = Tenant(name, Default.DENY, MappingProxyType({"s": seg}), MappingProxyType(groups),
                    (Rule(name, ANY, "web", (draw(st.sampled_from(SERVICES)),)),))
    hosts = sorted(n for n, s in topo.switches.items() if s.role is Role.HYPERVISOR)
    vms = dict(policy.vms)
    for i in range(2):
        vm = VM(f"{name}v{i}", name, "s", f"02:00:00:00:ee:{len(policy.tenants) * 2 + i:02x}",
                IPv4Address(f"10.0.0.{20 + i}"), MappingProxyType({"tier": "web"}), hosts[0],
                None)
        vms[vm.name] = vm
        port = PortRef(draw(st.sampled_from(hosts)), 240 + len(vms))
        if port not in ports.values():
            ports[vm.name] = port
    return Policy(MappingProxyType(dict(policy.tenants, **{name: tenant})),
                  MappingProxyType(vms)), ports


def flat(fs: FlowSet) -> FlowSet:
    """The same tables as one fragment: what a diff of whole tables compares."""
    return FlowSet.of(fs.switch, fs.flows, fs.groups, fs.meters)


def assert_same_diff(old: FlowSet, new: FlowSet) -> None:
    """The diff by fragments sends exactly what comparing whole tables would."""
    fast, slow = diff_flowsets(old, new), diff_flowsets(flat(old), flat(new))
    for name in ("add", "modify", "delete"):
        got = sorted(getattr(fast, name), key=lambda f: f.sort_key)
        want = sorted(getattr(slow, name), key=lambda f: f.sort_key)
        assert got == want, (new.switch, name)
    for name in ("add_groups", "modify_groups", "delete_groups", "add_meters",
                 "modify_meters", "delete_meters"):
        assert sorted(map(repr, getattr(fast, name))) == sorted(map(repr, getattr(slow, name)))
    assert fast.recookied == slow.recookied


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.data())
def test_every_edit_sequence_compiles_like_a_full_compile(net, data):
    policy, topo, bindings = net
    down: frozenset[PortRef] = frozenset()
    compiler = IncrementalCompiler()
    previous = compiler(policy, topo, bindings, down)
    assert previous == compile_network(policy, topo, bindings, down)
    for _ in range(6):
        policy, bindings, new_down, kind = data.draw(edited(policy, topo, bindings, down))
        got = compiler(policy, topo, bindings, new_down)
        want = compile_network(policy, topo, bindings, new_down)
        assert got == want, (kind, compiler.last_scope)
        scope = compiler.last_scope
        assert scope is not None
        assert not scope.full, (kind, scope)  # links too: only the paths are redone
        for name, fs in got.items():
            fs.check()
            assert_same_diff(previous[name], fs)
            if name not in scope.switches:  # untouched switches keep their very object
                assert fs is previous[name]
        previous, down = got, new_down


def _two_tenants_apart() -> tuple[Policy, Topology, Bindings]:
    """A leaf-spine network where tenant t0 lives on hv1 only and t1 on hv2 only."""
    topo = topology_of("leafspine")

    text = """
version: 1
tenants:
  t0:
    segments: {web: {vlan: 10, subnet: 10.0.0.0/24, gateway: 10.0.0.1},
               app: {vlan: 11, subnet: 10.0.1.0/24, gateway: 10.0.1.1}}
    groups: {web: {labels: {tier: web}}, app: {labels: {tier: app}}}
    rules: [{from: web, to: app, allow: [tcp/8080]}]
  t1:
    segments: {web: {vlan: 20, subnet: 10.0.0.0/24}}
    groups: {web: {labels: {tier: web}}}
    rules: [{from: web, to: web, allow: [icmp]}]
vms:
  a: {tenant: t0, segment: web, mac: "02:00:00:00:00:01", ip: 10.0.0.10,
      labels: {tier: web}, host: hv1}
  b: {tenant: t0, segment: app, mac: "02:00:00:00:00:02", ip: 10.0.1.10,
      labels: {tier: app}, host: hv1}
  c: {tenant: t1, segment: web, mac: "02:00:00:00:00:03", ip: 10.0.0.10,
      labels: {tier: web}, host: hv2}
  d: {tenant: t1, segment: web, mac: "02:00:00:00:00:04", ip: 10.0.0.11,
      labels: {tier: web}, host: hv2}
"""
    policy = parse_policy(text, "<test>", topo)
    return policy, topo, Bindings(MappingProxyType({
        "a": PortRef("hv1", 100), "b": PortRef("hv1", 101),
        "c": PortRef("hv2", 100), "d": PortRef("hv2", 101)}))


def test_a_rule_edit_recompiles_only_the_hypervisors_of_its_tenant():
    policy, topo, bindings = _two_tenants_apart()
    compiler = IncrementalCompiler()
    before = compiler(policy, topo, bindings)
    rules = policy.tenants["t0"].rules
    edited_policy = _replace_tenant(policy, "t0", rules=(dataclasses.replace(
        rules[0], services=(*rules[0].services, *SERVICES[:1])),))
    after = compiler(edited_policy, topo, bindings)
    assert compiler.last_scope is not None
    assert compiler.last_scope.switches == ("hv1",)
    assert after["hv1"] != before["hv1"]
    assert all(after[n] is before[n] for n in after if n != "hv1")


def test_a_vm_moving_recompiles_where_it_was_and_where_it_goes():
    policy, topo, bindings = _two_tenants_apart()
    compiler = IncrementalCompiler()
    compiler(policy, topo, bindings)
    moved = dict(bindings.ports, a=PortRef("hv3", 100))
    got = compiler(policy, topo, Bindings(MappingProxyType(moved)))
    assert compiler.last_scope is not None
    assert compiler.last_scope.switches == ("hv1", "hv3")
    assert got == compile_network(policy, topo, Bindings(MappingProxyType(moved)))


def test_a_failed_compile_leaves_the_last_good_state():
    policy, topo, bindings = _two_tenants_apart()
    compiler = IncrementalCompiler()
    first = compiler(policy, topo, bindings)
    broken = _replace_vms(policy, dict(policy.vms, a=dataclasses.replace(
        policy.vms["a"], segment="nowhere")))
    try:
        compiler(broken, topo, bindings)
    except KeyError:
        pass
    else:
        raise AssertionError("a VM in an unknown segment should not compile")
    again = compiler(policy, topo, bindings)
    assert again == first
    assert compiler.last_scope is not None and compiler.last_scope.switches == ()


def test_the_daemon_state_recompiles_incrementally_and_says_so():
    from sdnctl.live.state import ControllerState, PolicyInfo
    from sdnctl.southbound.ovsdb import BindingSnapshot

    policy, topo, bindings = _two_tenants_apart()
    state = ControllerState(policy, topo, PolicyInfo("p.yaml", "", 0.0),
                            snapshot=BindingSnapshot(bindings))
    assert sorted(sw.name for sw in state.recompile()) == sorted(topo.switches)
    assert state.last_compile is not None
    assert state.last_compile["scope"].startswith("full compile")
    rules = policy.tenants["t1"].rules
    state.adopt(dataclasses.replace(state.inputs, policy=_replace_tenant(
        policy, "t1", rules=(dataclasses.replace(rules[0], services=tuple(SERVICES[:2])),))))
    changed = state.recompile()
    assert [sw.name for sw in changed] == ["hv2"]
    assert state.status()["last_compile"]["switches_recompiled"] == 1
    assert state.switches["hv2"].desired == normalize(compile_network(
        state.policy, topo, bindings)["hv2"])
    assert state.recompile() == []  # nothing changed: nothing to send


def normalize(fs):
    from sdnctl.southbound.ofp import normalize_flowset

    return normalize_flowset(fs)


def test_a_vm_filling_an_empty_group_activates_its_rules_where_the_sources_are():
    """t0's only app VM leaves: web->app applies nowhere. An app VM joins on another
    hypervisor: the rule must apply again on hv1, where the web VM is, although
    nothing bound on hv1 changed."""
    policy, topo, bindings = _two_tenants_apart()
    compiler = IncrementalCompiler()
    vms = {n: v for n, v in policy.vms.items() if n != "b"}
    ports = {n: r for n, r in bindings.ports.items() if n != "b"}
    no_app = _replace_vms(policy, vms)
    compiler(no_app, topo, Bindings(MappingProxyType(ports)))
    back = _replace_vms(policy, dict(vms, b=policy.vms["b"]))
    elsewhere = Bindings(MappingProxyType(dict(ports, b=PortRef("hv3", 100))))
    got = compiler(back, topo, elsewhere)
    assert got == compile_network(back, topo, elsewhere)
    assert any(f.match.get("conj_id") for f in got["hv1"].in_stage("acl"))
