"""The faucet.yaml that comes closest to an sdnctl policy: VLANs, port ACLs, a stack.

    .venv/bin/python -m benchmarks.peers.faucet_yaml -p POLICY -t TOPOLOGY > faucet.yaml

Mapping (what Faucet can express):
- a segment is a VLAN; a VM port is an access port of its segment's VLAN;
- a fabric link is a stack link (Faucet computes one loop-free tree over them;
  the first fabric switch is the stack root);
- each VM port gets its own input ACL: ARP from its own MAC, and for every rule
  where the VM is a source, one entry per (destination VM, service), matched on
  the VM's own MAC and IP (port security) and the destination's IP; `allow`
  tenants get one entry for the whole subnet.

What it cannot express, and what is done instead (listed in `notes`):
- stateful rules: Faucet has no conntrack in its ACLs' usual use, so replies are
  allowed statelessly, one entry per (source VM, service) on each destination
  port (reply packets from the service port). Unlike sdnctl, that lets a
  destination VM open connections *from* the service port to the sources;
- routing between a tenant's segments with micro-segmentation: Faucet routes
  between VLANs (faucet_vips), but its port ACLs see the routed packet before the
  router with the gateway MAC, so per-VM rules across segments are approximate;
  rules across segments are left out here (the benchmark policies use one
  segment per tenant);
- rate limits are skipped (Faucet meters exist but need a meter per VM and
  an ACL entry to use it);
- ARP is flooded by Faucet (sdnctl answers it from the bindings).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from sdnctl.bindings import Bindings, planned_bindings
from sdnctl.policy.load import load_policy
from sdnctl.policy.model import VM, Default, Policy, Proto, Service
from sdnctl.topology.load import load_topology
from sdnctl.topology.model import Role, Topology

Doc = dict[str, Any]
ETH_IP, ETH_ARP = 0x0800, 0x0806
IP_PROTO = {Proto.TCP: 6, Proto.UDP: 17, Proto.ICMP: 1}


@dataclass
class FaucetConfig:
    doc: Doc
    acl_rules: int  # ACL entries over all ports
    notes: list[str] = field(default_factory=list)


def _service_fields(svc: Service, reply: bool) -> Iterator[Doc]:
    """The match fields of one service (a port range as one entry per port)."""
    if svc.proto is Proto.ANY:
        yield {}
        return
    base: Doc = {"ip_proto": IP_PROTO[svc.proto]}
    if svc.proto is Proto.ICMP:
        yield {**base, "icmpv4_type": 0 if reply else 8}
        return
    key = f"{svc.proto.value}_{'src' if reply else 'dst'}"
    for port in range(svc.port_lo, svc.port_hi + 1):
        yield {**base, key: port}


def _port_acl(policy: Policy, vm: VM, notes: set[str]) -> list[Doc]:
    own = {"eth_src": vm.mac, "dl_type": ETH_IP, "ipv4_src": str(vm.ip)}
    seg = policy.segment_of(vm)
    entries: list[Doc] = [{"dl_type": ETH_ARP, "eth_src": vm.mac, "arp_spa": str(vm.ip)}]
    tenant = policy.tenants[vm.tenant]
    if tenant.default is Default.ALLOW:
        entries.append({**own, "ipv4_dst": str(seg.subnet)})
    else:
        for rule in tenant.rules:
            srcs, dsts = (policy.members(vm.tenant, rule.src), policy.members(vm.tenant, rule.dst))
            for svc in rule.services:
                if vm.name in srcs:  # forward: this VM opens the connection
                    for d in sorted(dsts - {vm.name}):
                        peer = policy.vms[d]
                        if policy.segment_of(peer) != seg:
                            notes.add(f"rule {rule.src}->{rule.dst} of {vm.tenant} crosses "
                                      "segments: not expressed (no routed micro-segmentation)")
                            continue
                        for f in _service_fields(svc, reply=False):
                            entries.append({**own, "ipv4_dst": str(peer.ip), **f})
                if vm.name in dsts:  # stateless reply towards each possible opener
                    for s in sorted(srcs - {vm.name}):
                        peer = policy.vms[s]
                        if policy.segment_of(peer) != seg:
                            continue
                        for f in _service_fields(svc, reply=True):
                            entries.append({**own, "ipv4_dst": str(peer.ip), **f})
    unique = list({yaml.safe_dump(e, sort_keys=True): e for e in entries}.values())
    return [{"rule": {**e, "actions": {"allow": 1}}} for e in unique]


def faucet_config(policy: Policy, topology: Topology,
                  bindings: Bindings | None = None) -> FaucetConfig:
    bindings = bindings or planned_bindings(policy, topology)
    notes: set[str] = {
        "stateful rules: replies allowed statelessly (by source port / ICMP echo reply)",
        "ARP is flooded in the VLAN by Faucet, not answered from bindings",
    }
    if any(vm.rate_limit_mbps for vm in policy.vms.values()):
        notes.add("rate_limit_mbps: not expressed")
    vlans = {f"{t.name}-{s.name}": {"vid": s.vlan} for t in policy.tenants.values()
             for s in t.segments.values()}
    acls: Doc = {}
    interfaces: dict[str, Doc] = {sw: {} for sw in topology.switches}
    for name in sorted(bindings.ports):
        ref, vm = bindings.ports[name], policy.vms[name]
        acl = f"vm-{name}"
        acls[acl] = _port_acl(policy, vm, notes)
        interfaces[ref.switch][ref.port] = {
            "name": name, "native_vlan": f"{vm.tenant}-{vm.segment}", "acls_in": [acl]}
    for link in topology.links:
        for end, other in ((link.a, link.b), (link.b, link.a)):
            interfaces[end.switch][end.port] = {
                "name": f"to-{other.switch}", "stack": {"dp": other.switch, "port": other.port}}
    fabric = sorted(n for n, s in topology.switches.items() if s.role is Role.FABRIC)
    dps: Doc = {}
    for name, sw in sorted(topology.switches.items()):
        dp: Doc = {"dp_id": sw.dpid, "hardware": "Open vSwitch",
                   "interfaces": dict(sorted(interfaces[name].items()))}
        if topology.links and fabric and name == fabric[0]:
            dp["stack"] = {"priority": 1}
        dps[name] = dp
    doc = {"vlans": vlans, "acls": acls, "dps": dps}
    return FaucetConfig(doc, sum(len(a) for a in acls.values()), sorted(notes))


def growth_acl_rules(n_src: int, n_dst: int, k: int) -> dict[str, int]:
    """ACL entries faucet_config makes for benchmarks' growth policy, without building it."""
    return {"forward": n_src * n_dst * k, "reply": n_src * n_dst * k, "arp": n_src + n_dst}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-p", "--policy", required=True)
    ap.add_argument("-t", "--topology", required=True)
    args = ap.parse_args(argv)
    topo = load_topology(args.topology)
    cfg = faucet_config(load_policy(args.policy, topo), topo)
    for note in cfg.notes:
        print(f"# not expressed: {note}")
    print(f"# {cfg.acl_rules} ACL entries")
    yaml.safe_dump(cfg.doc, sys.stdout, sort_keys=False, default_flow_style=None, width=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
