"""The JSON documents the dashboard page reads, computed from a `View`.

    network   switches (role, layer for drawing, connected, flows, in sync), links
              (and whether down), VMs (tenant, segment, IP, MAC, planned host, where
              bound, what the controller answered it: DHCP and "time exceeded", and
              what its meter dropped), unbound VMs, the enforced policy
    matrix    sdnctl.dashboard.matrix
    explain   sdnctl.verify.explain over the live (or intent) FlowSets, as JSON and text
    edits     the last enforced reloads (switches and flow-mods they changed, and the
              reachability they added and removed, as `sdnctl plan` computes it) and
              refused or no-op reloads, newest first

`Dashboard` holds the caches: the matrix is recomputed only when a FlowSet, the
bindings, the down links or the policy changed; an edit's plan once per edit.
A request with a bad query raises `BadQuery` (the API answers 400).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

import networkx as nx

from sdnctl.compile.context import NetworkView
from sdnctl.compile.exits import ns_plan
from sdnctl.diff import diff_flowsets
from sdnctl.flows import FlowSet
from sdnctl.policy.model import Policy, Service, parse_service
from sdnctl.topology.model import Role, Topology
from sdnctl.verify.explain import explain, explain_outside
from sdnctl.verify.plan import plan_edit
from sdnctl.verify.semantics import probe_services

from .matrix import matrix_doc
from .view import INTENT, View, take_view

if TYPE_CHECKING:
    from sdnctl.live.state import ControllerState, EnforcedEdit

MAX_PLAN_VMS = 200  # beyond this an edit's reachability is left to `sdnctl plan`
MAX_LISTED = 50  # reachability lines listed per edit and direction
MAX_QUERY_ECHO = 80  # characters of a bad query value repeated in the error
SOURCES = ("live", "intent")
EDIT_EVENTS = ("refused", "reload", "compile-error")  # events that are edits without a plan

Doc = dict[str, object]
Query = dict[str, str]


class BadQuery(ValueError):
    """The request's query cannot be answered; the message says why (HTTP 400)."""


def _echo(value: str) -> str:
    return repr(value if len(value) <= MAX_QUERY_ECHO else value[:MAX_QUERY_ECHO] + "...")


# ---- network -------------------------------------------------------------------------


def switch_layers(topology: Topology) -> dict[str, int]:
    """Hops from the nearest hypervisor (0 for hypervisors): the row a switch is drawn
    in, hypervisors at the bottom. A switch no hypervisor reaches goes one row above."""
    g = topology.graph()
    hvs = [s.name for s in topology.switches.values() if s.role is Role.HYPERVISOR]
    dist = dict(nx.multi_source_dijkstra_path_length(g, hvs)) if hvs else {}
    top = max(dist.values(), default=0) + 1
    return {name: int(dist.get(name, top)) for name in sorted(topology.switches)}


def network_doc(view: View) -> Doc:
    topo, policy, ports = view.topology, view.policy, view.bindings.ports
    layers = switch_layers(topo)
    switches = []
    for name, sw in sorted(topo.switches.items()):
        st = view.switches.get(name, {})
        switches.append({
            "name": name, "dpid": f"{sw.dpid:#x}", "role": sw.role.value,
            "layer": layers[name], "live_from": view.live_from.get(name),
            "in_sync": None if view.live_from.get(name) in (None, INTENT)  # nothing read
            else view.live.get(name) == view.intent.get(name),
            "vms": sorted(vm for vm, ref in ports.items() if ref.switch == name),
            **{k: st.get(k) for k in ("connected", "programmed", "flows", "flows_installed",
                                      "groups", "meters", "updates", "last_update",
                                      "ports_down")},
        })
    links = [{"a": str(link.a), "b": str(link.b),
              "down": link.a in view.down_ports or link.b in view.down_ports}
             for link in topo.links]
    answered = view.answers.get("by_vm", {})
    assert isinstance(answered, dict)
    vms = []
    for name, vm in sorted(policy.vms.items()):
        ref = ports.get(name)
        seg = policy.segment_of(vm)
        vms.append({
            "name": name, "tenant": vm.tenant, "segment": vm.segment,
            "vlan": seg.vlan, "vni": seg.vni,
            "ip": str(vm.ip), "mac": vm.mac, "host": vm.host,
            "at": str(ref) if ref else None, "switch": ref.switch if ref else None,
            "labels": dict(vm.labels),
            "answers": answered.get(name),  # None: the controller never heard from it
            "floating_ip": str(vm.floating_ip) if vm.floating_ip else None,
        })
    return {
        **view.status,
        "policy_sha": view.policy_sha,
        "switches": switches, "links": links, "vms": vms,
        "unbound": [v["name"] for v in vms if v["at"] is None],
        "services": [str(s) for s in probe_services(policy)],
        "tenants": sorted(policy.tenants),
        "north_south": north_south_doc(view),
    }


def north_south_doc(view: View) -> Doc:
    """Each tenant that goes out: its outside addresses and the uplink it goes out
    by now (as the compiler chose it from the live uplinks), and every uplink."""
    plan = ns_plan(NetworkView(view.policy, view.topology, view.bindings, view.down_ports))
    tenants = [{
        "tenant": t.name,
        "snat": str(t.snat) if t.snat is not None else None,
        "floating": {vm.name: str(fip) for vm, fip in t.floating},
        "exit": t.exit.name if t.exit is not None else None,
    } for t in plan.tenants.values()]
    uplinks = [{
        "uplink": u.name, "ip": str(u.ip), "next_hop": str(u.next_hop),
        "down": u.ref in view.down_ports,
        "next_hop_mac": u.next_hop_mac or view.bindings.neighbours.get(u.name),
    } for u in view.topology.uplinks()]
    return {"tenants": tenants, "uplinks": uplinks}


# ---- explain ---------------------------------------------------------------------------


def _vm(policy: Policy, query: Query, key: str) -> str:
    name = query.get(key)
    if not name:
        raise BadQuery(f"{key}=VM is needed (from, to and service, e.g. "
                       "?from=web1&to=app1&service=tcp/8080)")
    if name not in policy.vms:
        raise BadQuery(f"{key}={_echo(name)}: no such VM in the enforced policy")
    return name


def _service(text: str | None) -> Service:
    if not text:
        raise BadQuery("service=SERVICE is needed (tcp/80, udp/53, icmp, any)")
    try:
        return parse_service(text)
    except ValueError as exc:
        raise BadQuery(f"service={_echo(text)}: {exc}") from None


def _source(query: Query) -> str:
    source = query.get("source", "live")
    if source not in SOURCES:
        raise BadQuery(f"source={_echo(source)}: expected one of {', '.join(SOURCES)}")
    return source


def _outside(query: Query, key: str) -> str | None:
    """An IPv4 address outside, if `key` names one (not a VM)."""
    text = query.get(key) or ""
    try:
        IPv4Address(text)
    except ValueError:
        return None
    return text


def explain_doc(view: View, query: Query) -> Doc:
    outside = [k for k in ("from", "to") if _outside(query, k)]
    if len(outside) == 1:  # a connection with the outside, through a gateway
        vm = _vm(view.policy, query, "to" if outside == ["from"] else "from")
        address = str(query.get(outside[0]))
        src, dst = (address, vm) if outside == ["from"] else (vm, address)
        service, source = _service(query.get("service")), _source(query)
        flowsets = view.live if source == "live" else view.intent
        ex = explain_outside(flowsets, view.policy, view.topology, view.bindings, src, dst,
                             service)
        return {**ex.to_json(), "source": source, "text": ex.to_text(),
                "mismatch": ex.result.reached != ex.promised}
    src, dst = _vm(view.policy, query, "from"), _vm(view.policy, query, "to")
    if src == dst:
        raise BadQuery(f"from and to are both {src!r}: pick two VMs")
    service, source = _service(query.get("service")), _source(query)
    flowsets = view.live if source == "live" else view.intent
    ex = explain(flowsets, view.policy, view.topology, view.bindings, src, dst, service)
    return {**ex.to_json(), "source": source, "text": ex.to_text(),
            "mismatch": ex.result.reached != ex.promised}


# ---- edits ------------------------------------------------------------------------------


def _flow_mods(flowsets: Mapping[str, tuple[FlowSet | None, FlowSet | None]]) -> Doc:
    per_switch = {}
    total = 0
    for name, (old, new) in sorted(flowsets.items()):
        if new is None:
            continue
        d = diff_flowsets(old, new)
        per_switch[name] = d.summary()
        total += len(d)
    return {"switches": sorted(flowsets), "flow_mods": total, "per_switch": per_switch}


def _plan(edit: EnforcedEdit) -> Doc:
    vms = set(edit.before.vms) | set(edit.after.vms)
    if len(vms) > MAX_PLAN_VMS:
        return {"skipped": f"{len(vms)} VMs: run `sdnctl plan` for this edit's reachability"}
    try:
        plan = plan_edit(edit.before, edit.after, edit.topology)
    except Exception as exc:  # a policy the compiler chokes on is a daemon event, not a 500
        return {"error": f"could not compute the plan: {exc}"}
    return {
        "added": [list(t) for t in plan.added[:MAX_LISTED]],
        "removed": [list(t) for t in plan.removed[:MAX_LISTED]],
        "n_added": len(plan.added), "n_removed": len(plan.removed), "vm_pairs": plan.vm_pairs,
    }


def edit_doc(edit: EnforcedEdit, plan: Doc) -> Doc:
    return {
        "time": edit.time, "kind": "enforced", "what": edit.what,
        "from_sha": edit.before_sha, "to_sha": edit.after_sha,
        **_flow_mods(edit.flowsets), "reachability": plan,
    }


def edits_doc(view: View, plan_of: Callable[[EnforcedEdit], Doc] = _plan) -> Doc:
    items = [edit_doc(e, plan_of(e)) for e in view.edits]
    items += [{"time": e["time"], "kind": e["kind"], "what": e["message"]}
              for e in view.events if e.get("kind") in EDIT_EVENTS]
    items.sort(key=lambda d: float(d["time"]), reverse=True)  # type: ignore[arg-type]
    return {"policy": view.status["policy"], "edits": items}


# ---- the caches ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MatrixKey:
    """What a matrix depends on; FlowSets and policy compared by identity (they are
    replaced, never mutated, when they change)."""

    policy: Policy
    intent: tuple[tuple[str, FlowSet], ...]
    live: tuple[tuple[str, FlowSet], ...]
    view: View

    def same(self, other: _MatrixKey) -> bool:
        def ident(a: tuple[tuple[str, FlowSet], ...], b: tuple[tuple[str, FlowSet], ...]
                  ) -> bool:
            return len(a) == len(b) and all(x[0] == y[0] and x[1] is y[1]
                                            for x, y in zip(a, b, strict=True))
        return (self.policy is other.policy and ident(self.intent, other.intent)
                and ident(self.live, other.live)
                and self.view.bindings == other.view.bindings
                and self.view.down_ports == other.view.down_ports
                and self.view.topology is other.view.topology)


class Dashboard:
    """The documents for one daemon, with their caches (safe across API threads)."""

    def __init__(self, state: ControllerState) -> None:
        self.state = state
        self._lock = threading.Lock()  # one matrix computation at a time
        self._matrix: tuple[_MatrixKey, Doc] | None = None
        self._plans: dict[tuple[int, str, str], Doc] = {}  # id(edit) kept alive by the deque

    def view(self) -> View:
        return take_view(self.state)

    def network(self, _query: Query) -> Doc:
        return network_doc(self.view())

    def matrix(self, query: Query) -> Doc:
        view = self.view()
        services = probe_services(view.policy)
        if "service" in query:
            services = (_service(query["service"]),)
        key = _MatrixKey(view.policy, tuple(sorted(view.intent.items())),
                         tuple(sorted(view.live.items())), view)
        with self._lock:
            if "service" not in query and self._matrix and self._matrix[0].same(key):
                return self._matrix[1]
            doc = matrix_doc(view, services)
            if "service" not in query:
                self._matrix = (key, doc)
            return doc

    def explain(self, query: Query) -> Doc:
        return explain_doc(self.view(), query)

    def edits(self, _query: Query) -> Doc:
        view = self.view()
        with self._lock:
            live = {(id(e), e.before_sha, e.after_sha) for e in view.edits}
            self._plans = {k: v for k, v in self._plans.items() if k in live}

            def plan_of(edit: EnforcedEdit) -> Doc:
                key = (id(edit), edit.before_sha, edit.after_sha)
                if key not in self._plans:
                    self._plans[key] = _plan(edit)
                return self._plans[key]

            return edits_doc(view, plan_of)

    def connections(self, query: Query) -> Doc:
        """The connection log's last records, newest first (`limit`, default 100, and
        `verdict` allow|deny), with its counters (what the meters and the writer lost)."""
        limit_text = query.get("limit", "100")
        if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= 1000:
            raise BadQuery(f"limit={_echo(limit_text)}: a whole number from 1 to 1000")
        verdict = query.get("verdict")
        if verdict not in (None, "allow", "deny"):
            raise BadQuery(f"verdict={_echo(verdict or '')}: allow or deny")
        log = self.state.connlog  # its own lock
        return {"records": log.records(int(limit_text), verdict), "counters": log.snapshot()}

    def mirrors(self, _query: Query) -> Doc:
        """The mirrors on the daemon's OVSDB (its monitor's copy), for the mirror panel."""
        with self.state.lock:
            listing = self.state.daemon.mirrors
        return {"mirrors": listing() if listing is not None else []}

    def routes(self) -> dict[str, tuple[tuple[str, ...], Callable[[Query], Doc]]]:
        """path -> (query keys it takes, the document). Values are checked here."""
        return {
            "/network": ((), self.network),
            "/matrix": (("service",), self.matrix),
            "/explain": (("from", "to", "service", "source"), self.explain),
            "/edits": ((), self.edits),
            "/connections": (("limit", "verdict"), self.connections),
            "/mirrors": ((), self.mirrors),
        }
