"""`lab experiment --json` results get their plots: loss over time and the latency
distribution, drawn from the JSON document (sdnctl/render/experiments.py)."""

from __future__ import annotations

import json

import pytest

from sdnctl.lab.experiments import loss
from sdnctl.lab.experiments.loss import StreamLog
from sdnctl.lab.experiments.result import ExperimentResult

plt_image = pytest.importorskip("matplotlib.image")
from sdnctl.render.experiments import plot_paths, write_experiment_plots  # noqa: E402

LOST_RGB = (0xE4, 0x1A, 0x1C)


def _stream(seconds: float, outage: tuple[float, float], interval: float = 0.01) -> StreamLog:
    """Probes every `interval` from t=100, unanswered during `outage` (relative times)."""
    sent, recv = [], {}
    for seq in range(int(seconds / interval)):
        t = 100.0 + seq * interval
        sent.append((seq, t))
        if not outage[0] <= t - 100.0 < outage[1]:
            recv[seq] = t + 0.001
    return StreamLog(interval, tuple(sent), recv)


def _doc() -> dict:
    edit = ExperimentResult("policy-edit")
    log = _stream(3.0, (1.2, 1.5))
    edit.timelines["watched"] = loss.timeline(log, [(101.2, "edit"), (102.0, "edit")])
    edit.runs = [{"new_flow_works_ms": v, "denied_flow_stops_ms": v * 2, "lost": 3}
                 for v in (40.0, 55.5, 210.0)]
    cut = ExperimentResult("link-cut")
    cut.runs = [{"loss_window_ms": 12.0}, {"loss_window_ms": None}]
    skipped = ExperimentResult("vswitchd-restart", skipped="Open vSwitch is shared")
    return {"runs": 3, "experiments": [r.to_json() for r in (edit, cut, skipped)]}


def _colours(path) -> set[tuple[int, int, int]]:
    pixels = (plt_image.imread(path)[:, :, :3] * 255).round().astype(int)
    return {tuple(int(c) for c in px) for px in pixels.reshape(-1, 3)[::7]}


def test_results_get_a_loss_plot_and_a_latency_plot_next_to_their_json(tmp_path) -> None:
    path = tmp_path / "results.json"
    doc = json.loads(json.dumps(_doc()))  # as written and read back
    written = write_experiment_plots(doc, path)
    loss_png, latency_png = plot_paths(path)
    assert written == [loss_png, latency_png]
    assert (loss_png.name, latency_png.name) == ("results-loss.png", "results-latency.png")
    for png in written:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width = plt_image.imread(png).shape[:2]
        assert width >= 600 and height >= 200
        assert len(_colours(png)) > 20  # drawn, not blank
    # The outage shows: the lost colour is in the loss plot, and a median bar in the other.
    assert LOST_RGB in _colours(loss_png)
    assert LOST_RGB in _colours(latency_png)


def test_only_what_the_results_hold_is_drawn(tmp_path) -> None:
    doc = _doc()
    for e in doc["experiments"]:
        e["timelines"] = {}
    assert write_experiment_plots(doc, tmp_path / "r.json") == [tmp_path / "r-latency.png"]
    assert write_experiment_plots({"experiments": []}, tmp_path / "s.json") == []
    assert not (tmp_path / "s-loss.png").exists()


def test_a_timeline_bins_sent_and_lost_probes_and_places_events() -> None:
    t = loss.timeline(_stream(3.0, (1.2, 1.5)), [(101.2, "edit")], bin_s=0.1)
    assert len(t["sent"]) == 30 and sum(t["sent"]) == 300
    assert sum(t["lost"]) == 30 and t["lost"][12:15] == [10, 10, 10]
    assert t["lost"][:12] == [0] * 12 and t["events"] == [[1.2, "edit"]]
