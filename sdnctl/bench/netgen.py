"""Synthetic topology and policy files for the lab benchmarks, as YAML-ready dicts.

The benchmarks write these to files because the daemon and the peers (Faucet)
read files; `load` turns a pair back into validated objects. Every generator is
deterministic: the same arguments give the same files, so runs compare.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import yaml

from sdnctl.policy.load import parse_policy
from sdnctl.policy.model import Policy
from sdnctl.topology.load import parse_topology
from sdnctl.topology.model import Topology

Doc = dict[str, Any]
TIERS = ("web", "app", "db")
LEAF_DPIDS = (0x101, 0x102)


def three_tier_topology() -> Doc:
    """hv1 and hv2 behind one leaf: the default lab's shape (topologies/three-tier)."""
    return {
        "version": 1,
        "switches": {"hv1": {"dpid": 1, "role": "hypervisor"},
                     "hv2": {"dpid": 2, "role": "hypervisor"},
                     "leaf": {"dpid": 16, "role": "fabric"}},
        "links": [{"a": "hv1:10", "b": "leaf:1"}, {"a": "hv2:10", "b": "leaf:2"}],
    }


def single_topology() -> Doc:
    return {"version": 1, "switches": {"hv1": {"dpid": 1, "role": "hypervisor"}}, "links": []}


def leaf_pair_topology(n_hv: int, dual_homed: bool = True) -> Doc:
    """`n_hv` hypervisors under two linked leaves (n_hv + 2 switches).

    Dual-homed: each hypervisor has port 10 to leaf1 and port 11 to leaf2, so
    every hypervisor-to-hypervisor path has a loop-free backup. Single-homed:
    hypervisors alternate between the leaves, which reach each other over one link.
    """
    switches: Doc = {f"leaf{i + 1}": {"dpid": d, "role": "fabric"}
                     for i, d in enumerate(LEAF_DPIDS)}
    links = [{"a": "leaf1:1", "b": "leaf2:1"}]
    for h in range(1, n_hv + 1):
        switches[f"hv{h}"] = {"dpid": h, "role": "hypervisor"}
        if dual_homed:
            links.append({"a": f"hv{h}:10", "b": f"leaf1:{10 + h}"})
            links.append({"a": f"hv{h}:11", "b": f"leaf2:{10 + h}"})
        else:
            links.append({"a": f"hv{h}:10", "b": f"leaf{1 + h % 2}:{10 + h}"})
    return {"version": 1, "switches": switches, "links": links}


def _vm(tenant_no: int, index: int, host: str, labels: Mapping[str, str]) -> Doc:
    return {
        "tenant": f"t{tenant_no}", "segment": "net",
        "mac": f"02:00:00:{tenant_no:02x}:{index >> 8:02x}:{index & 0xFF:02x}",
        "ip": str(IPv4Address(f"10.{tenant_no}.0.0") + 10 + index),
        "labels": dict(labels), "host": host,
    }


def tiered_policy(n_vms: int, hosts: Sequence[str], tenants: int = 2,
                  extra_rules: Sequence[Doc] = ()) -> Doc:
    """`tenants` tenants of one segment each (vlan 10, 20, ...), VMs in three tiers.

    One segment per tenant keeps the policy inside what Faucet can express too
    (micro-segmentation with routing between a tenant's segments it cannot do).
    A tenant's k-th VM goes to hosts[k % len(hosts)] and is in tier k % 3, so every
    tenant and every tier spans the hypervisors.
    Rules: any->web tcp/80 + icmp, web->app tcp/8080 + icmp, app->db tcp/5432.
    """
    tenant_docs: Doc = {}
    vms: Doc = {}
    for t in range(1, tenants + 1):
        tenant_docs[f"t{t}"] = {
            "default": "deny",
            "segments": {"net": {"vlan": 10 * t, "subnet": f"10.{t}.0.0/16"}},
            "groups": {tier: {"labels": {"tier": tier}} for tier in TIERS},
            "rules": [
                {"from": "any", "to": "web", "allow": ["tcp/80", "icmp"]},
                {"from": "web", "to": "app", "allow": ["tcp/8080", "icmp"]},
                {"from": "app", "to": "db", "allow": ["tcp/5432"]},
                *[r for r in extra_rules if r.get("tenant", "t1") == f"t{t}"],
            ],
        }
        for rule in tenant_docs[f"t{t}"]["rules"]:
            rule.pop("tenant", None)
    for i in range(n_vms):
        t = 1 + i % tenants
        idx = i // tenants
        tier = TIERS[idx % 3]
        vms[f"t{t}{tier}{idx}"] = _vm(t, idx, hosts[idx % len(hosts)], {"tier": tier})
    return {"version": 1, "tenants": tenant_docs, "vms": vms}


def pair_policy(vms: Mapping[str, str], services: Sequence[str]) -> Doc:
    """One tenant, one segment, `vms` name -> host, every VM may open `services` to any."""
    return {
        "version": 1,
        "tenants": {"t1": {"default": "deny",
                           "segments": {"net": {"vlan": 10, "subnet": "10.1.0.0/16"}},
                           "rules": [{"from": "any", "to": "any", "allow": list(services)}]}},
        "vms": {name: _vm(1, i, host, {}) for i, (name, host) in enumerate(vms.items())},
    }


def growth_policy(n_src: int, n_dst: int, k_services: int, host: str = "hv1") -> Doc:
    """One rule from a group of `n_src` VMs to a group of `n_dst` VMs with K services.

    Services are tcp/2000, tcp/2002, ...: single ports, not adjacent, so none merge
    into a masked range and each costs exactly one match.
    """
    vms: Doc = {}
    for i in range(n_src + n_dst):
        role = "src" if i < n_src else "dst"
        vms[f"{role}{i}"] = _vm(1, i, host, {"role": role})
    return {
        "version": 1,
        "tenants": {"t1": {
            "default": "deny",
            "segments": {"net": {"vlan": 10, "subnet": "10.1.0.0/16"}},
            "groups": {"src": {"labels": {"role": "src"}}, "dst": {"labels": {"role": "dst"}}},
            "rules": [{"from": "src", "to": "dst",
                       "allow": [f"tcp/{2000 + 2 * i}" for i in range(k_services)]}],
        }},
        "vms": vms,
    }


def dump(doc: Doc) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)


def write(doc: Doc, path: Path) -> Path:
    """Write atomically (rename), as an editor would: the daemon never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dump(doc))
    tmp.replace(path)
    return path


def load(policy: Doc, topology: Doc) -> tuple[Policy, Topology]:
    topo = parse_topology(dump(topology), "<topology>")
    return parse_policy(dump(policy), "<policy>", topo), topo


# Datapath ids no example topology uses, so a benchmark's lab has no twin elsewhere
# (`names.rebase_dpids(topology, DPID_BASE)`; the daemon finds VM ports by dpid).
DPID_BASE = 0xBE7C << 32
