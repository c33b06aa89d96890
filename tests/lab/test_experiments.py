"""The live-change experiments' invariants, on real OVS (sdnctl/lab/experiments/).

One lab (leaf-spine, the experiments' own policy, the real daemon) serves every lab
test of this module; each experiment leaves it as it found it. Asserted, with the
figures printed:
- a policy edit loses no packet of a flow it does not touch, takes effect both ways,
  and a refused (invalid) edit changes no switch's tables and no packet's fate;
- with a backup path, cutting a link that carries a flow costs a short loss window;
- SIGKILL + restart of the controller loses nothing (last: if the restart broke the
  tables, the other tests would not be measuring what they claim).
The ovs-vswitchd restart is a benchmark only (benchmarks/live_changes.py).

The pure tests at the end check how loss is read from a probe log, without a lab.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sdnctl.lab.experiments import loss
from sdnctl.lab.experiments.loss import Gap, StreamLog
from sdnctl.lab.experiments.result import ExperimentResult

if TYPE_CHECKING:
    from sdnctl.lab.experiments.session import Session


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    # Only `lab` tests use it: tests/conftest.py has checked root, OVS and Mininet.
    from sdnctl.lab.experiments.session import open_session

    with open_session(replicas=2) as s:  # switches also dial a spare port: leader-kill
        prefix = s.plan.prefix
        interfaces = s.plan.interfaces
        yield s
    # Nothing of the lab may be left: no bridge, interface or host shell of its prefix.
    bridges = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True).stdout
    assert not [b for b in bridges.split() if b.startswith(prefix)]
    assert not [i for i in interfaces if Path("/sys/class/net", i).exists()]
    shells = subprocess.run(["pgrep", "-f", f"mininet:{prefix}"], capture_output=True, text=True)
    assert shells.stdout == ""


def _show(result: ExperimentResult) -> None:
    print("\n" + result.format())


@pytest.mark.lab
def test_policy_edit_spares_other_flows_and_refused_edit_changes_nothing(
        session: Session) -> None:
    from sdnctl.lab.experiments import policy_edit

    result = policy_edit.run(session, runs=2)
    _show(result)
    assert result.figure("watched_lost") == 0, "an edit cost packets of a flow it does not touch"
    # The edits took effect, both ways (the probes can tell a blocked flow from a working one).
    assert all(r["new_flow_works_ms"] is not None for r in result.runs), result.runs
    assert result.figure("denied_flow_answered_late") == 0
    # The refused edit: same tables, same policy, the watched flow did not notice.
    assert result.figure("refused_tables_unchanged") is True, result.notes
    assert result.figure("refused_policy_kept") is True
    assert result.figure("refused_watched_lost") == 0
    assert result.figure("after_refused_new_flow_works_ms") is not None
    # What the loss plot draws: the watched stream, its edits and the refused one.
    watched = result.timelines["watched"]
    assert sum(watched["sent"]) > 100 and sum(watched["lost"]) == 0
    assert [what for _, what in watched["events"]] == ["edit"] * 3 + ["refused edit"]


@pytest.mark.lab
def test_link_cut_with_backup_path_has_a_short_loss_window(session: Session) -> None:
    from sdnctl.lab.experiments import link_cut

    result = link_cut.run(session, runs=2, only=("dual_homed",))
    _show(result)
    window = result.figure("dual_homed_loss_window_ms")
    assert isinstance(window, float)
    assert window < 500, f"loss window {window} ms with a fast-failover backup"


@pytest.mark.lab
def test_controller_sigkill_and_restart_lose_nothing(session: Session) -> None:
    from sdnctl.lab.experiments import controller_restart

    result = controller_restart.run(session, runs=1)
    _show(result)
    assert result.figure("lost") == 0
    assert result.figure("lost_new_connections") == 0
    # Reconciliation must leave a correct table as it is.
    assert result.figure("tables_unchanged") is True, result.notes


@pytest.mark.lab
@pytest.mark.needs("etcd")
def test_leader_kill_hands_over_without_loss(session: Session) -> None:
    from sdnctl.lab.experiments import leader_kill

    result = leader_kill.run(session, runs=1)
    _show(result)
    assert result.figure("lost") == 0
    assert result.figure("lost_new_connections") == 0
    assert result.figure("flow_mods_by_new_leader") == 0
    assert result.figure("tables_unchanged") is True, result.notes
    takeover = result.figure("takeover_ms")
    assert isinstance(takeover, float) and takeover < 20_000  # TTL 2 s; generous when busy


# ---------------------------------------------------------------- pure: reading the log


def _log(answered: str, interval: float = 0.01) -> StreamLog:
    """A log from a picture: one character per probe, '.' answered, 'x' lost."""
    sent = tuple((i, i * interval) for i in range(len(answered)))
    recv = {i: i * interval + 0.001 for i, c in enumerate(answered) if c == "."}
    return StreamLog(interval, sent, recv)


def _as_tuples(gaps: list[Gap]) -> list[tuple[float, float | None, int]]:
    return [(g.first_lost_t, g.resumed_t, g.lost) for g in gaps]


def test_gaps_are_runs_of_lost_probes_timed_by_send_times() -> None:
    log = _log("...xx....xxx..")
    assert _as_tuples(loss.gaps(log)) == [(pytest.approx(0.03), pytest.approx(0.05), 2),
                                          (pytest.approx(0.09), pytest.approx(0.12), 3)]
    assert loss.longest_window_s(loss.gaps(log), log) == pytest.approx(0.03)
    assert loss.count_lost(log) == 5 and loss.count_sent(log) == 14


def test_a_gap_open_at_the_window_end_closes_where_traffic_resumes() -> None:
    log = _log("..xxxx..")
    assert _as_tuples(loss.gaps(log, 0.0, 0.035)) == [(pytest.approx(0.02),
                                                       pytest.approx(0.06), 2)]
    unresumed = _log("..xxx")
    assert _as_tuples(loss.gaps(unresumed)) == [(pytest.approx(0.02), None, 3)]
    assert loss.longest_window_s(loss.gaps(unresumed), unresumed) == pytest.approx(0.03)


def test_first_and_last_answered_after_an_event() -> None:
    allowed_later = _log("xxxx.....")
    assert loss.first_ok_after(allowed_later, 0.015) == pytest.approx(0.025)
    denied_later = _log("....xxxxx")
    assert loss.last_ok_after(denied_later, 0.015) == pytest.approx(0.015)
    assert loss.last_ok_after(denied_later, 0.05) == 0.0
    assert loss.first_ok_after(_log("xxx"), 0.0) is None
    assert loss.ok_after(denied_later, 0.02) == 2
