"""The fault suite's verdict (sdnctl/lab/experiments/faults.py), on made-up probe logs:
each bound the lab test asserts (tests/lab/test_faults.py) can fail."""

from __future__ import annotations

from sdnctl.lab.experiments.faults import Bound, Window, judge_window, lost_between
from sdnctl.lab.experiments.loss import StreamLog
from sdnctl.lab.experiments.prober import ACROSS, SAME, Leak, Probe
from sdnctl.lab.experiments.stream import Flow
from sdnctl.policy.model import Proto, Service

UDP = Service(Proto.UDP, 7000, 7000)
ACROSS_OK = Probe(Flow("w1", "a2", UDP), True, ACROSS)
LOCAL_OK = Probe(Flow("w3", "a3", UDP), True, SAME)
CUT_OK = Probe(Flow("a3", "a2", UDP), True, ACROSS)


def _log(picture: str, interval: float = 0.01) -> StreamLog:
    """One character per probe from t=0: '.' answered, 'x' lost."""
    sent = tuple((i, i * interval) for i in range(len(picture)))
    return StreamLog(interval, sent, {i: i * interval for i, c in enumerate(picture) if c == "."})


def _window(**kw: object) -> Window:
    return Window("f", start=0.0, end=1.0, start_wall=100.0, end_wall=101.0, **kw)  # type: ignore[arg-type]


def test_the_verdict_counts_a_lost_probe_against_a_zero_bound() -> None:
    logs = {ACROSS_OK: _log("....x....."), LOCAL_OK: _log("..........")}
    v = judge_window(_window(), logs, [], Bound(0))
    assert v.lost == 1 and v.broken == ("1 allowed probes lost (at most 0)",)
    assert judge_window(_window(), {LOCAL_OK: _log("......")}, [], Bound(0)).broken == ()


def test_the_verdict_bounds_the_outage_of_a_cut_probe_and_spares_the_others() -> None:
    cut = frozenset({"a3", "w3"})  # LOCAL_OK has both ends behind the cut: not cut
    logs = {CUT_OK: _log("..xxx....."), LOCAL_OK: _log("..........")}
    assert judge_window(_window(cut=cut), logs, [], Bound(0, 50.0)).broken == ()
    long_cut = {CUT_OK: _log("..xxxxxxxx.")}
    v = judge_window(_window(cut=cut), long_cut, [], Bound(0, 50.0))
    assert v.lost == 0 and v.lost_on_cut == 8 and "outage 80 ms > 50 ms" in v.broken[0]
    local_loss = {LOCAL_OK: _log("..x.......")}
    assert judge_window(_window(cut=cut), local_loss, [], Bound(0, 50.0)).lost == 1


def test_the_verdict_names_leaks_inside_its_window_and_changed_tables() -> None:
    leaks = [Leak("a2", 100.5, "tcp 22"), Leak("a2", 102.0, "later")]
    v = judge_window(_window(tables_changed=["x01hv1"]), {}, leaks, Bound(0))
    assert [leak.what for leak in v.leaks] == ["tcp 22"]
    assert v.broken == ("1 frames leaked, first: a2: tcp 22", "tables changed on x01hv1")
    assert judge_window(_window(tables_changed=["x01hv1"]), {}, [],
                        Bound(0, tables_same=False)).broken == ()


def test_loss_outside_every_window_is_counted() -> None:
    logs = {ACROSS_OK: _log("..x...x...")}
    assert lost_between(logs, [Window("f", start=0.0, end=0.05)]) == 1
    assert lost_between(logs, [Window("f", start=0.0, end=0.1)]) == 0


def test_the_probes_cover_both_places_both_directions_and_deny_what_the_policy_denies() -> None:
    from sdnctl.lab.experiments import DEFAULT_POLICY, DEFAULT_TOPOLOGY
    from sdnctl.lab.experiments.cast import Cast
    from sdnctl.lab.experiments.prober import choose_probes
    from sdnctl.lab.plan import plan_lab
    from sdnctl.policy.load import load_policy
    from sdnctl.topology.load import load_topology
    from sdnctl.verify.semantics import reach

    topology = load_topology(DEFAULT_TOPOLOGY)
    policy = load_policy(DEFAULT_POLICY, topology)
    plan = plan_lab(policy, topology, "u00")
    probes = choose_probes(Cast(policy, topology, plan))
    switch = {h.vm: h.switch for h in plan.hosts}
    for where in (SAME, ACROSS):
        mine = [p for p in probes if p.where == where]
        assert {p.flow.service.proto for p in mine if p.allowed} == {Proto.TCP, Proto.UDP,
                                                                      Proto.ICMP}
        assert len({(p.flow.src, p.flow.dst) for p in mine if p.allowed}) == 2  # both ways
        assert any(not p.allowed for p in mine)
        assert all((switch[p.flow.src] == switch[p.flow.dst]) == (where == SAME) for p in mine)
    for p in probes:  # the judge's truth is the policy's
        assert reach(policy, p.flow.src, p.flow.dst, p.flow.service) == p.allowed, p.name
        assert p.fresh or p.flow.service.proto is not Proto.TCP
