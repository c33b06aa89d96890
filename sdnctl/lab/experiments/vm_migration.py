"""Experiment `vm-migration`: move a VM to another hypervisor and back, under traffic.

A peer VM streams to the moving VM (one long-lived connection, and a new
connection per probe); the VM's downtime is the longest run of lost probes around
a move. Two ways to move (sdnctl/lab/experiments/vm_moves.py):

  vm-migrate  `sdnctl vm migrate` on a VM wired by `sdnctl vm plug --netns`
  rebind      the VM's vm-id moved by one OVSDB transaction to a second link of the
              same Mininet host, which switches to it (no `sdnctl vm` needed)

Either way only the hypervisors' tables change (fabric switches forward by the
destination hypervisor's label); the daemon sees the binding move in OVSDB.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Protocol

from sdnctl.lab.experiments import loss
from sdnctl.lab.experiments.cast import Cast, migration
from sdnctl.lab.experiments.result import ExperimentResult, median, ms, worst
from sdnctl.lab.experiments.session import Session, say
from sdnctl.lab.experiments.stream import Flow, streams, warm_up
from sdnctl.policy.model import Service

NAME = "vm-migration"
AFTER_S = 1.0  # watched after each move
VARIANTS = ("vm-migrate", "rebind")


class Mover(Protocol):
    @property
    def vm(self) -> str: ...
    @property
    def home(self) -> str: ...
    def nodes(self) -> dict[str, object]: ...
    def addresses(self) -> dict[str, str]: ...
    def setup(self, peer: str, service: Service) -> None: ...
    def move(self, to: str) -> float: ...
    def teardown(self) -> None: ...


def vm_cli_available() -> bool:
    """Is `sdnctl vm` (sdnctl/southbound/vmwire.py) there?"""
    return importlib.util.find_spec("sdnctl.southbound.vmwire") is not None


def run(session: Session, runs: int = 3, variants: tuple[str, ...] = ()) -> ExperimentResult:
    result = ExperimentResult(NAME)
    if not variants:
        variants = VARIANTS if vm_cli_available() else ("rebind",)
        if not vm_cli_available():
            result.notes.append("vm-migrate not measured: sdnctl/southbound/vmwire.py is missing")
    cast = Cast(session.policy, session.topology, session.plan)
    plan = migration(cast)
    for variant in variants:
        from sdnctl.lab.experiments.vm_moves import RebindMover, VmCliMover

        mover: Mover
        if variant == "vm-migrate":
            mover = VmCliMover(session, plan.vm, cast.host_of(plan.vm))
        else:
            mover = RebindMover(session, plan.vm, plan.target)
        _run_variant(session, mover, plan.flow, plan.target, runs, variant, result)
    return result


def _run_variant(session: Session, mover: Mover, template: Flow, away: str, runs: int,
                 variant: str, result: ExperimentResult) -> None:
    from sdnctl.lab.experiments.vm_moves import wait_bound

    key = variant.replace("-", "_")
    marks = []
    try:
        mover.setup(template.src, template.service)
        flow = Flow(template.src, mover.vm, template.service)
        hosts = {**session.hosts, **mover.nodes()}
        addresses = {**session.addresses, **mover.addresses()}
        with streams(hosts, addresses) as s:  # type: ignore[arg-type]
            warm_up(s, flow)
            long_lived = s.start(flow)
            fresh = s.start(flow, fresh=True)
            time.sleep(0.3)
            for i in range(runs):
                to = away if i % 2 == 0 else mover.home
                start = time.monotonic()
                took = mover.move(to)
                bound = wait_bound(session, mover.vm, to)
                time.sleep(AFTER_S)
                marks.append((start, took, time.monotonic() - start - AFTER_S, bound, to,
                              time.monotonic()))
            logs = {"long": long_lived.stop(), "fresh": fresh.stop()}
    finally:
        mover.teardown()
    per_run = []
    for start, took, _waited, bound, to, end in marks:
        per_run.append({
            "variant": variant,
            "to": to,
            "downtime_ms": ms(loss.longest_window_s(loss.gaps(logs["long"], start, end),
                                                    logs["long"])),
            "lost": loss.count_lost(logs["long"], start, end),
            "downtime_new_connections_ms": ms(loss.longest_window_s(
                loss.gaps(logs["fresh"], start, end), logs["fresh"])),
            "move_command_ms": ms(took),
            "bound_after_ms": ms(took + bound),
        })
    result.runs += per_run
    result.timelines[f"long-lived ({variant})"] = loss.timeline(
        logs["long"], [(m[0], "move") for m in marks])
    result.setup[key] = (f"{mover.vm} between {mover.home} and {away}, streamed to from"
                         f" {template.src} ({template.service}), {runs} moves")
    down = [r["downtime_ms"] for r in per_run]
    result.add(f"{key}_downtime_ms", median(down), "ms", "< 200",
               f"median longest outage of one connection around a move (worst {worst(down)})")
    result.add(f"{key}_lost", median([r["lost"] for r in per_run]), "packets", "",
               "median probes lost per move")
    fresh_down = [r["downtime_new_connections_ms"] for r in per_run]
    result.add(f"{key}_downtime_new_connections_ms", median(fresh_down), "ms", "",
               f"the same for a new connection per probe (worst {worst(fresh_down)})")
    result.add(f"{key}_command_ms", median([r["move_command_ms"] for r in per_run]), "ms", "",
               "median wall time of the move itself" + (
                   " (`sdnctl vm migrate`, Python start included)" if key == "vm_migrate"
                   else " (OVSDB transaction + the VM switching links)"))
    say(f"{NAME} ({variant}): downtimes {down} ms")
