"""Run attacks against a running AttackLab and say what got through.

One attack = one window: captures start in every victim, the attacker agent
sends, canaries follow, captures stop; then the verdict (judge), allowed
traffic (liveness), ARP caches where the attack aimed at them, and whether the
daemon is still up and answering. The storm window also samples the status API,
the daemon's memory and the packet-ins, with the witnesses' traffic running.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sdnctl.client.api import ApiError, get_status
from sdnctl.compile.dhcp import VM_DHCP_BURST, VM_DHCP_PPS
from sdnctl.compile.nd import VM_ND_BURST, VM_ND_PPS
from sdnctl.lab.attacks import checks, measure
from sdnctl.lab.attacks.capture import start_captures, stop_captures
from sdnctl.lab.attacks.catalogue import Attack, Kind
from sdnctl.lab.attacks.judge import judge_frames
from sdnctl.lab.attacks.scene import ATTACKER, VICTIMS, WITNESSES
from sdnctl.lab.attacks.session import AttackLab

REPEAT = 5  # each crafted frame is sent this often (first: upcall path; then: flow cache)
SETTLE = 0.3  # seconds for the last frames to land before the captures stop
CONNECT_PORT = 8080


@dataclass
class StormFigures:
    sent: int = 0
    seconds: float = 0.0
    switch_rx: int = 0
    api_samples: int = 0
    api_failures: int = 0
    api_p50_ms: float = 0.0
    api_p99_ms: float = 0.0
    api_max_ms: float = 0.0
    rss_before_kb: int = 0
    rss_after_kb: int = 0
    hwm_after_kb: int = 0
    packet_ins: int = 0
    vswitchd_cpu_s: float | None = None  # CPU ovs-vswitchd used during the storm
    witness_checks: int = 0  # liveness rounds run during the storm
    witness_failures: list[str] = field(default_factory=list)
    dhcp_leases_s: list[float] = field(default_factory=list)  # DHCP witnesses' leases
    dhcp_failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


@dataclass
class AttackResult:
    attack: Attack
    sent: int = 0
    refused: int = 0  # frames the attacker's kernel would not send (runts)
    seconds: float = 0.0
    switch_rx: int = 0  # frames the attacker's switch port received
    leaks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # victim -> frames
    canaries: dict[str, int] = field(default_factory=dict)
    capture_drops: dict[str, int] = field(default_factory=dict)
    liveness: list[str] = field(default_factory=list)  # allowed traffic that failed
    neighbours: list[str] = field(default_factory=list)  # poisoned ARP, IPv6 state changed
    daemon_alive: bool = True
    storm: StormFigures | None = None

    @property
    def leaked(self) -> int:
        return sum(len(v) for v in self.leaks.values())

    @property
    def deaf_captures(self) -> list[str]:
        """Victims whose capture missed its canary or lost frames: no verdict there."""
        return [v for v in self.canaries
                if self.canaries[v] == 0 or self.capture_drops.get(v, 0) != 0]

    @property
    def passed(self) -> bool:
        return (self.leaked == 0 and not self.liveness and not self.neighbours
                and not self.deaf_captures and self.daemon_alive)


@dataclass
class SuiteReport:
    results: list[AttackResult]
    controller_outputs: list[str]  # flows/groups that could send to the controller
    packet_ins: int  # PACKET_IN messages the switches sent during the whole suite
    snooped: int  # OpenFlow messages seen on the controller connections (echoes: > 0)
    flows_changed: list[str]  # bridges whose flows or groups differ after the suite
    seconds: float = 0.0  # the whole suite's wall time (the per-VM meters' refill window)


def packet_in_budget(report: SuiteReport, ipv6_vms: int) -> int:
    """The most packet-ins the suite may cause if every one came through a VM's own
    meter: the attacker's DHCP meter (its DHCP requests and expiring packets) over
    the suite, the DHCP witnesses' clients (a DISCOVER and a REQUEST per lease, a
    few more for a retry), and the ND meter of each of the `ipv6_vms` VMs with an
    IPv6 address (the attacker's solicitations, the others' neighbour resolution)."""
    seconds = report.seconds + 2  # slack for the window's edges
    leases = sum(len(r.storm.dhcp_leases_s) + len(r.storm.dhcp_failures)
                 for r in report.results if r.storm is not None)
    return int(VM_DHCP_BURST + VM_DHCP_PPS * seconds + 4 * leases
               + ipv6_vms * (VM_ND_BURST + VM_ND_PPS * seconds))


def run_suite(lab: AttackLab, attacks: Iterable[Attack]) -> SuiteReport:
    bridges = tuple(lab.plan.bridges.values())
    outputs = measure.controller_outputs(bridges)
    before = measure.flow_tables(bridges)
    snoop = measure.PacketInSnoop(bridges).start()
    started = time.monotonic()
    try:
        results = [run_attack(lab, attack) for attack in attacks]
    finally:
        seen = snoop.stop()
    took = time.monotonic() - started
    # Nothing a VM sends may change switch state (no learning, no reactive flows).
    after = measure.flow_tables(bridges)
    changed = [b for b in bridges if before[b] != after[b]]
    return SuiteReport(results, outputs, seen.packet_ins, seen.messages, changed, took)


def run_attack(lab: AttackLab, attack: Attack) -> AttackResult:
    assert lab.agent is not None
    result = AttackResult(attack)
    marker, canary = os.urandom(8), os.urandom(8)
    command: dict[str, object] = {"attack": attack.name, "marker": marker.hex(),
                                  "seed": int.from_bytes(marker[:4], "big")}
    if attack.needs_connection:
        rb1 = lab.scene.vm("rb1")
        command["sport"] = lab.agent.ask({"op": "connect", "ip": rb1.ip,
                                          "port": CONNECT_PORT})["sport"]
    if attack.is_flood:
        command.update(op="flood", rate=attack.rate, seconds=attack.seconds)
    else:
        command.update(op="send", repeat=REPEAT)
    bridge, port = lab.bridge_of(ATTACKER)
    rx_before = measure.port_rx(bridge, port)
    victims = {v: lab.hosts[v] for v in VICTIMS}
    caps = start_captures(victims, lab.tmp, attack.name)
    try:
        if attack.kind in (Kind.STORM, Kind.DHCP_STORM):
            result.storm, answer = _storm(lab, command, dhcp=attack.kind is Kind.DHCP_STORM)
        else:
            answer = lab.agent.ask(command)
        result.switch_rx = measure.port_rx(bridge, port) - rx_before  # before the canaries
        checks.send_canaries(lab.hosts, lab.scene, list(victims), canary)
        time.sleep(SETTLE)
    finally:
        captured = stop_captures(caps)
    result.sent, result.refused = int(answer["sent"]), int(answer["refused"])
    result.seconds = float(answer["seconds"])
    for vm, cap in captured.items():
        verdict = judge_frames(cap.frames, vm, lab.scene, lab.policy, marker, canary)
        result.canaries[vm] = verdict.canaries
        result.capture_drops[vm] = cap.kernel_dropped
        if verdict.leaks:
            result.leaks[vm] = verdict.leaks
    if result.storm is not None:
        result.storm.switch_rx = result.switch_rx
    result.liveness = checks.check_liveness(lab.hosts, checks.liveness_targets(lab.scene))
    if attack.check_neighbours:
        result.neighbours = (checks.check_neighbours(lab.hosts, lab.scene)
                             + checks.check_neighbours6(lab.hosts, lab.scene))
    result.daemon_alive = daemon_answers(lab)
    return result


def daemon_answers(lab: AttackLab) -> bool:
    if lab.daemon is None or lab.daemon.poll() is not None:
        return False
    try:
        get_status(lab.api, timeout=2.0)
    except ApiError:
        return False
    return True


def _storm(lab: AttackLab, command: dict[str, object], dhcp: bool = False
           ) -> tuple[StormFigures, dict[str, Any]]:
    """The flood, with the API sampled, memory read and the witnesses talking meanwhile
    (with `dhcp`, the DHCP witnesses also take their leases, round after round)."""
    assert lab.agent is not None and lab.daemon is not None
    figures = StormFigures()
    pid = lab.daemon.pid
    figures.rss_before_kb = measure.memory_kb(pid).get("VmRSS", 0)
    snoop = measure.PacketInSnoop(tuple(lab.plan.bridges.values())).start()
    cpu_before = measure.vswitchd_cpu_seconds()
    sampler = measure.ApiSampler(lab.api).start()
    stop = threading.Event()
    witness_targets = {w: checks.liveness_targets(lab.scene)[w] for w in WITNESSES}

    def witnesses() -> None:
        while not stop.is_set():
            # No retry: during the storm a single lost probe should show.
            figures.witness_failures += checks.check_liveness(lab.hosts, witness_targets,
                                                              retries=0)
            figures.witness_checks += 1
            if dhcp and not stop.is_set():
                took, failed = checks.check_dhcp(lab.hosts, lab.scene)
                figures.dhcp_leases_s += took
                figures.dhcp_failures += failed

    talker = threading.Thread(target=witnesses, name="witnesses", daemon=True)
    talker.start()
    try:
        answer = lab.agent.ask(command)
    finally:
        stop.set()
        sampler.stop()
        talker.join(timeout=30)
        figures.packet_ins = snoop.stop().packet_ins
    cpu_after = measure.vswitchd_cpu_seconds()
    if cpu_before is not None and cpu_after is not None:
        figures.vswitchd_cpu_s = round(cpu_after - cpu_before, 2)
    figures.sent, figures.seconds = int(str(answer["sent"])), float(str(answer["seconds"]))
    figures.api_samples = len(sampler.latencies_ms)
    figures.api_failures = len(sampler.failures)
    figures.api_p50_ms = measure.percentile(sampler.latencies_ms, 50)
    figures.api_p99_ms = measure.percentile(sampler.latencies_ms, 99)
    figures.api_max_ms = max(sampler.latencies_ms, default=0.0)
    memory = measure.memory_kb(pid)
    figures.rss_after_kb = memory.get("VmRSS", 0)
    figures.hwm_after_kb = memory.get("VmHWM", 0)
    return figures, answer


# ------------------------------------------------------------------ output


def format_table(results: Iterable[AttackResult]) -> str:
    rows = [("attack", "kind", "frames sent", "switch rx", "leaked", "allowed traffic", "verdict")]
    for r in results:
        rows.append((
            r.attack.name, r.attack.kind.value, str(r.sent), str(r.switch_rx), str(r.leaked),
            "ok" if not r.liveness else f"{len(r.liveness)} failed",
            "PASS" if r.passed else "FAIL",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def format_storm(f: StormFigures) -> str:
    return "\n".join([
        f"storm: {f.sent} frames in {f.seconds:.2f} s ({f.rate:.0f} frames/s sent),"
        f" {f.switch_rx} received by the switch",
        f"status API during the storm: {f.api_samples} requests, p50 {f.api_p50_ms:.1f} ms,"
        f" p99 {f.api_p99_ms:.1f} ms, max {f.api_max_ms:.1f} ms, {f.api_failures} failed",
        f"daemon RSS: {f.rss_before_kb / 1024:.1f} MiB before, {f.rss_after_kb / 1024:.1f} MiB"
        f" after (peak {f.hwm_after_kb / 1024:.1f} MiB)",
        f"packet-ins sent by the switches during the storm: {f.packet_ins}",
        f"ovs-vswitchd CPU during the storm: {f.vswitchd_cpu_s} s"
        + (f" ({100 * f.vswitchd_cpu_s / f.seconds:.0f} % of a core, every bridge on the"
           " machine)" if f.vswitchd_cpu_s is not None and f.seconds else ""),
        f"witness traffic during the storm: {f.witness_checks} rounds,"
        f" {len(f.witness_failures)} probes failed",
        *([f"DHCP witnesses during the storm: {len(f.dhcp_leases_s)} leases (slowest"
           f" {max(f.dhcp_leases_s):.2f} s), {len(f.dhcp_failures)} failed"]
          if f.dhcp_leases_s or f.dhcp_failures else []),
    ])


def format_problems(results: Iterable[AttackResult]) -> str:
    lines = []
    for r in results:
        for vm, leaks in r.leaks.items():
            lines += [f"LEAK {r.attack.name} -> {vm}: {leak}" for leak in leaks[:10]]
        lines += [f"BLOCKED {r.attack.name}: {x}" for x in r.liveness]
        lines += [f"NEIGHBOUR {r.attack.name}: {x}" for x in r.neighbours]
        lines += [f"DEAF {r.attack.name}: capture in {v} saw {r.canaries.get(v)} canaries,"
                  f" lost {r.capture_drops.get(v)} frames" for v in r.deaf_captures]
        if not r.daemon_alive:
            lines.append(f"DAEMON {r.attack.name}: the daemon is gone or not answering")
    return "\n".join(lines)
