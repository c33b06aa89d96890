"""/metrics: what an operator alerts on, in the Prometheus text format (0.0.4).

Every family has HELP and TYPE; counters end in `_total`; label values are
escaped (backslash, double quote, newline). Switch metrics carry `switch`;
drops carry `tenant` (empty for drop flows every tenant shares, e.g. the
priority-0 drop ending each table) and `stage`, the pipeline stage of the flow.
`tests/unit/test_metrics.py` parses the output.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdnctl.live.state import ControllerState

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if value != value:  # NaN
        return "NaN"
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


@dataclass
class Family:
    name: str
    kind: str  # "gauge" | "counter"
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Family:
        self.samples.append((tuple(labels.items()), value))
        return self

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in self.samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{self.name}{{{text}}} {_number(value)}" if text
                         else f"{self.name} {_number(value)}")
        return "\n".join(lines) + "\n"


def render(families: Iterable[Family]) -> str:
    return "".join(f.render() for f in families)


def render_metrics(state: ControllerState) -> str:
    """Everything, from one consistent look at the state."""
    with state.lock:
        families = list(_collect(state))
    return render(families)


def _collect(state: ControllerState) -> Iterable[Family]:
    switches = sorted(state.switches.values(), key=lambda s: s.name)
    counters = state.counters
    yield Family("sdnctl_up", "gauge", "The daemon answers.").add(1)
    yield Family("sdnctl_uptime_seconds", "gauge", "Seconds since the daemon started.").add(
        state.since_start())
    ha = state.daemon.ha
    yield Family("sdnctl_leader", "gauge",
                 "1 if this replica writes to the switches (the leader, or the only "
                 "replica), else 0.").add(1 if ha is None or ha.leading() else 0)
    yield Family("sdnctl_switches_configured", "gauge", "Switches in the topology.").add(
        len(switches))
    yield Family("sdnctl_switches_connected", "gauge", "Switches connected over OpenFlow.").add(
        sum(s.connected for s in switches))
    yield Family("sdnctl_switches_programmed", "gauge",
                 "Switches holding what they should (last update acknowledged).").add(
        sum(s.programmed for s in switches))

    def per_switch(name: str, kind: str, help_: str, values: Iterable[tuple[str, float]]
                   ) -> Family:
        fam = Family(name, kind, help_)
        for sw, value in values:
            fam.add(value, switch=sw)
        return fam

    yield per_switch("sdnctl_switch_connected", "gauge", "1 when the switch is connected.",
                     ((s.name, s.connected) for s in switches))
    yield per_switch("sdnctl_switch_programmed", "gauge", "1 when the switch is programmed.",
                     ((s.name, s.programmed) for s in switches))
    yield per_switch("sdnctl_switch_flows", "gauge", "Flows the switch should hold.",
                     ((s.name, len(s.desired.flows) if s.desired else 0) for s in switches))
    with counters.lock:
        reported = dict(counters.flows_reported)
        pins = {name: p.total for name, p in counters.packet_ins.items()}
        reloads = dict(counters.reloads)
        drops_p = dict(counters.drops_packets)
        drops_b = dict(counters.drops_bytes)
        polls, poll_failures, last_poll = (counters.polls, counters.poll_failures,
                                           counters.last_poll)
        tls_refused = counters.tls_refused
    yield per_switch("sdnctl_switch_flows_installed", "gauge",
                     "Flows the switch reported in the last flow-stats poll.",
                     ((s.name, reported[s.name]) for s in switches if s.name in reported))
    yield per_switch("sdnctl_switch_groups", "gauge", "Groups the switch should hold.",
                     ((s.name, len(s.desired.groups) if s.desired else 0) for s in switches))
    yield per_switch("sdnctl_switch_meters", "gauge", "Meters the switch should hold.",
                     ((s.name, len(s.desired.meters) if s.desired else 0) for s in switches))
    yield per_switch("sdnctl_switch_updates_total", "counter",
                     "Updates (diffs) the switch acknowledged.",
                     ((s.name, s.updates) for s in switches))
    yield per_switch("sdnctl_switch_flow_mods_total", "counter",
                     "Flow-mods sent to the switch (the sum of every reconcile diff).",
                     ((s.name, s.flow_mods_sent) for s in switches))
    yield per_switch("sdnctl_switch_last_update_flow_mods", "gauge",
                     "Flow-mods in the last update sent to the switch.",
                     ((s.name, s.last_flow_mods) for s in switches))
    yield per_switch("sdnctl_switch_last_update_seconds", "gauge",
                     "From a change being seen to the switch acknowledging it, last update.",
                     ((s.name, s.last_update_s) for s in switches if s.last_update_s is not None))
    yield per_switch("sdnctl_switch_last_update_timestamp_seconds", "gauge",
                     "When the switch last acknowledged an update (Unix time).",
                     ((s.name, s.last_update) for s in switches if s.last_update is not None))
    yield per_switch("sdnctl_switch_ports_down", "gauge", "Ports the switch reports down.",
                     ((s.name, len(s.ports_down)) for s in switches))
    yield per_switch("sdnctl_packet_ins_total", "counter",
                     "Packet-ins received and dropped (from a table that sends none by "
                     "design: not the metered DHCP and connection-log paths).",
                     sorted(pins.items()))
    log = state.connlog.snapshot()  # its own lock
    records = log["records"]
    assert isinstance(records, dict)
    fam = Family("sdnctl_connection_log_records_total", "counter",
                 "Connection-log records made, by verdict (sdnctl run --connection-log).")
    for verdict in ("allow", "deny"):
        fam.add(records[verdict], verdict=verdict)
    yield fam
    fam = Family("sdnctl_connection_log_lost_total", "counter",
                 "Connection-log records lost: dropped by the switches' log meters (meter), "
                 "by the writer's full queue (writer), or not parsed (unparsed).")
    for why, key in (("meter", "meter_drops"), ("writer", "writer_drops"),
                     ("unparsed", "unparsed")):
        fam.add(log[key], reason=why)  # type: ignore[arg-type]
    yield fam

    fam = Family("sdnctl_policy_reloads_total", "counter",
                 "Reloads of the input files: ok (enforced), refused (invalid), unchanged.")
    for outcome, n in sorted(reloads.items()):
        fam.add(n, result=outcome)
    yield fam
    yield Family("sdnctl_policy_last_load_timestamp_seconds", "gauge",
                 "When the enforced policy was loaded (Unix time).").add(
        state.policy_info.loaded_at)
    refused = state.history.last_refused or {}
    yield Family("sdnctl_policy_last_refused_timestamp_seconds", "gauge",
                 "When an edit was last refused (Unix time; 0: never).").add(
        float(refused.get("time", 0) or 0))  # type: ignore[arg-type]
    rollout = state.history.rollout
    if rollout is not None and rollout.took_s is not None:
        yield Family("sdnctl_policy_apply_seconds", "gauge",
                     "Last policy edit: from the edit being seen to every switch it changed "
                     "acknowledging it.").add(rollout.took_s)

    bound = state.snapshot.bindings.ports
    fam = Family("sdnctl_vms", "gauge", "VMs of the policy, bound to a port or not.")
    fam.add(sum(vm in bound for vm in state.policy.vms), state="bound")
    fam.add(sum(vm not in bound for vm in state.policy.vms), state="unbound")
    yield fam
    yield Family("sdnctl_unknown_ports", "gauge",
                 "Ports claiming a VM the policy refuses (unknown VM, wrong switch, ...).").add(
        len(state.snapshot.problems))
    yield Family("sdnctl_link_ports_down", "gauge",
                 "Fabric link ends and gateway uplinks down, routed around.").add(
        len(state.down_ports))
    if state.daemon.ovsdb is not None:
        ovsdb = state.daemon.ovsdb.as_json()
        yield Family("sdnctl_ovsdb_connected", "gauge",
                     "1 while the OVSDB binding monitor is connected (binding changes are "
                     "unseen otherwise).").add(bool(ovsdb["connected"]))
        yield Family("sdnctl_ovsdb_reconnects_total", "counter",
                     "Times the OVSDB connection came back after a loss.").add(
            int(ovsdb["reconnects"]))  # type: ignore[call-overload]

    fam_p = Family("sdnctl_dropped_packets_total", "counter",
                   "Packets dropped by policy flows (flow stats), by owning tenant and stage.")
    fam_b = Family("sdnctl_dropped_bytes_total", "counter",
                   "Bytes dropped by policy flows (flow stats), by owning tenant and stage.")
    for (tenant, stage), n in sorted(drops_p.items()):
        fam_p.add(n, tenant=tenant, stage=stage)
        fam_b.add(drops_b.get((tenant, stage), 0), tenant=tenant, stage=stage)
    yield fam_p
    yield fam_b
    yield Family("sdnctl_flow_stats_polls_total", "counter",
                 "Flow-stats replies received by the periodic poll.").add(polls)
    yield Family("sdnctl_flow_stats_poll_failures_total", "counter",
                 "Flow-stats polls that failed (switch gone or error).").add(poll_failures)
    if last_poll is not None:
        yield Family("sdnctl_flow_stats_last_poll_timestamp_seconds", "gauge",
                     "When the last flow-stats reply arrived (Unix time).").add(last_poll)
    yield Family("sdnctl_openflow_tls_handshakes_refused_total", "counter",
                 "OpenFlow TLS handshakes that failed (e.g. a certificate from another CA).").add(
        tls_refused)
    yield from _dhcp_families(state.dhcp.snapshot())
    yield from _uplink_families(state.uplinks.status(state.topology, state.down_ports))


def _uplink_families(uplinks: dict[str, Any]) -> Iterable[Family]:
    """Gateway uplinks: live, next hop known, tenants going out, ARP with the next hop."""
    gauges = (
        ("sdnctl_uplink_live", "1 while the uplink's port is up (it can be an exit).",
         lambda u: bool(u["live"])),
        ("sdnctl_uplink_next_hop_known", "1 when the next hop's MAC is configured or "
         "learned (nothing leaves by the uplink otherwise).", lambda u: bool(u["next_hop_mac"])),
        ("sdnctl_uplink_tenants", "Tenants going out by the uplink (their exit).",
         lambda u: len(u["tenants"])),
    )
    for name, help_, value in gauges:
        fam = Family(name, "gauge", help_)
        for uplink, u in uplinks.items():
            fam.add(value(u), uplink=uplink)
        yield fam
    counters = (
        ("sdnctl_uplink_arp_requests_total", "ARP requests sent for the next hop.",
         "arp_requests"),
        ("sdnctl_uplink_arp_replies_total", "The next hop's ARP replies heard.", "arp_replies"),
        ("sdnctl_uplink_arp_ignored_total", "ARP from the uplink that was not the next hop's "
         "reply (ignored).", "arp_ignored"),
        ("sdnctl_uplink_next_hop_learned_total", "Replies that taught a next-hop MAC not "
         "known before (each recompiles the gateways).", "next_hop_learned"),
        ("sdnctl_uplink_gratuitous_arps_total", "Gratuitous ARPs sent for addresses that "
         "moved to the uplink.", "garps"),
    )
    for name, help_, key in counters:
        fam = Family(name, "counter", help_)
        for uplink, u in uplinks.items():
            fam.add(u[key], uplink=uplink)
        yield fam


def _dhcp_families(dhcp: dict[str, Any]) -> Iterable[Family]:
    """Requests on the controller path by outcome, and its meters' drops (DHCP and
    ND apart), per VM and per switch."""
    for scope, label in (("by_vm", "vm"), ("by_switch", "switch")):
        requests = Family(f"sdnctl_dhcp_requests_{label}_total", "counter",
                          f"Requests that reached the controller on the DHCP path, per {label}, "
                          "by outcome (offer, ack, nak, ignored, malformed, time-exceeded, "
                          "nd-advert, nd-ignored, nd-malformed).")
        drops = Family(f"sdnctl_dhcp_meter_drops_{label}_total", "counter",
                       f"DHCP requests the {label}'s DHCP meter dropped in the switch.")
        nd_drops = Family(f"sdnctl_nd_meter_drops_{label}_total", "counter",
                          f"IPv6 solicitations (and expired IPv6 packets) the {label}'s ND meter "
                          "dropped in the switch.")
        for name, tally in dhcp[scope].items():
            for outcome, n in tally.items():
                if outcome == "meter_drops":
                    drops.add(n, **{label: name})
                elif outcome == "nd_meter_drops":
                    nd_drops.add(n, **{label: name})
                else:
                    requests.add(n, **{label: name}, outcome=outcome)
        yield requests
        yield drops
        yield nd_drops
    unbound = Family("sdnctl_dhcp_unbound_port_total", "counter",
                     "DHCP requests from ports bound to no VM (ignored), per switch.")
    for switch, n in dhcp["unbound_port"].items():
        unbound.add(n, switch=switch)
    yield unbound
