"""/metrics is valid Prometheus text format (0.0.4), parsed strictly here, and says
what the state holds."""

from __future__ import annotations

import math
import re
from pathlib import Path

from sdnctl.bindings import planned_bindings
from sdnctl.live.state import Batch, ControllerState, PolicyInfo
from sdnctl.metrics import Family, render, render_metrics
from sdnctl.policy.load import load_policy
from sdnctl.southbound.livedump import DropSample
from sdnctl.southbound.ovsdb import BindingSnapshot
from sdnctl.topology.load import load_topology

ROOT = Path(__file__).resolve().parents[2]
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(rf"^(?P<name>{NAME})(?:\{{(?P<labels>{LABEL}(?:,{LABEL})*)?\}})?"
                    r" (?P<value>\S+)(?: (?P<ts>-?\d+))?$")


def parse(text: str) -> dict[str, dict]:
    """{family: {"type", "help", "samples": {labels-tuple: value}}}; AssertionError on any
    line the format does not allow."""
    assert text.endswith("\n")
    families: dict[str, dict] = {}
    for n, line in enumerate(text.splitlines(), 1):
        where = f"line {n}: {line!r}"
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, kind, name, *rest = line.split(" ", 3)
            assert re.fullmatch(NAME, name), where
            fam = families.setdefault(name, {"samples": {}})
            key = kind.lower()
            assert key not in fam, f"{where}: second {kind}"
            assert not fam["samples"], f"{where}: {kind} after samples"
            fam[key] = rest[0] if rest else ""
            if key == "type":
                assert fam["type"] in ("counter", "gauge", "histogram", "summary", "untyped")
            continue
        assert line and not line.startswith("#"), where
        m = SAMPLE.match(line)
        assert m, where
        name, value = m["name"], m["value"]
        assert name in families and "type" in families[name], f"{where}: no TYPE before"
        labels = tuple(re.findall(LABEL, m["labels"] or ""))
        assert len({k for k, _ in labels}) == len(labels), f"{where}: repeated label"
        float(value)  # NaN, +Inf allowed by float()
        assert labels not in families[name]["samples"], f"{where}: duplicate series"
        families[name]["samples"][labels] = float(value)
    for name, fam in families.items():
        assert "help" in fam and "type" in fam, name
        if fam["type"] == "counter":
            assert name.endswith("_total"), name
            assert all(v >= 0 for v in fam["samples"].values()), name
    return families


def state() -> ControllerState:
    topo = load_topology(ROOT / "topologies" / "three-tier.topology.yaml")
    policy = load_policy(ROOT / "topologies" / "three-tier.policy.yaml", topo)
    st = ControllerState(policy, topo, PolicyInfo("p.yaml", "0" * 64, 1700000000.0),
                         BindingSnapshot(planned_bindings(policy, topo)))
    st.recompile()
    return st


def test_metrics_parse_and_report_the_state() -> None:
    st = state()
    hv1 = st.switches["hv1"]
    hv1.on_connect(object(), "127.0.0.1:40000")
    for _ in range(2):  # two updates acknowledged, 57 flow-mods in all
        batch = Batch(None, hv1.desired, {}, 1, 100.0, "", since=100.0)
        hv1.on_sent(batch, 57 if hv1.updates == 0 else 0, [])
        hv1.on_update_done(hv1.on_barrier(1), now=100.012)
    st.counters.reload("ok")
    st.counters.reload("refused")
    st.counters.packet_in("hv1", "x")
    st.counters.record_poll("hv1", 57, [DropSample("k", "acme", "acl", 7, 700),
                                        DropSample("j", "", "arp", 2, 120)])
    fams = parse(render_metrics(st))
    assert fams["sdnctl_switches_connected"]["samples"][()] == 1
    assert fams["sdnctl_switches_configured"]["samples"][()] == 3
    assert fams["sdnctl_switch_connected"]["samples"][(("switch", "hv2"),)] == 0
    assert fams["sdnctl_switch_flows"]["samples"][(("switch", "hv1"),)] == len(
        hv1.desired.flows)
    assert fams["sdnctl_switch_flows_installed"]["samples"] == {(("switch", "hv1"),): 57}
    assert fams["sdnctl_switch_flow_mods_total"]["samples"][(("switch", "hv1"),)] == 57
    assert fams["sdnctl_switch_updates_total"]["samples"][(("switch", "hv1"),)] == 2
    assert fams["sdnctl_switch_programmed"]["samples"][(("switch", "hv1"),)] == 1
    assert math.isclose(
        fams["sdnctl_switch_last_update_seconds"]["samples"][(("switch", "hv1"),)], 0.012)
    assert fams["sdnctl_policy_reloads_total"]["samples"] == {
        (("result", "ok"),): 1, (("result", "refused"),): 1, (("result", "unchanged"),): 0}
    assert fams["sdnctl_packet_ins_total"]["samples"] == {(("switch", "hv1"),): 1}
    assert fams["sdnctl_dropped_packets_total"]["samples"] == {
        (("tenant", "acme"), ("stage", "acl")): 7, (("tenant", ""), ("stage", "arp")): 2}
    assert fams["sdnctl_vms"]["samples"][(("state", "bound"),)] == 5
    assert fams["sdnctl_policy_last_load_timestamp_seconds"]["samples"][()] == 1700000000
    assert "sdnctl_ovsdb_connected" not in fams  # no monitor: nothing to say


def test_ovsdb_connection_is_a_gauge_and_its_comebacks_a_counter() -> None:
    from sdnctl.southbound.ovsdb import OvsdbHealth

    st = state()
    st.daemon.ovsdb = OvsdbHealth("unix:/run/db.sock")
    st.daemon.ovsdb.down("cannot connect: No such file or directory")
    fams = parse(render_metrics(st))
    assert fams["sdnctl_ovsdb_connected"]["type"] == "gauge"
    assert fams["sdnctl_ovsdb_connected"]["samples"][()] == 0
    assert fams["sdnctl_ovsdb_reconnects_total"]["samples"][()] == 0
    st.daemon.ovsdb.up()  # the first session: no comeback
    st.daemon.ovsdb.down("connection closed")
    st.daemon.ovsdb.up()
    fams = parse(render_metrics(st))
    assert fams["sdnctl_ovsdb_connected"]["samples"][()] == 1
    assert fams["sdnctl_ovsdb_reconnects_total"]["type"] == "counter"
    assert fams["sdnctl_ovsdb_reconnects_total"]["samples"][()] == 1


def test_label_values_are_escaped_and_the_parser_catches_mistakes() -> None:
    text = render([Family("x_total", "counter", "h").add(1, v='a"b\\c\nd'),
                   Family("y", "gauge", "h").add(math.nan).add(0.25, k="v")])
    fams = parse(text)
    assert fams["x_total"]["samples"] == {(("v", 'a\\"b\\\\c\\nd'),): 1}
    assert math.isnan(fams["y"]["samples"][()])
    for bad in ("x 1\n", "# TYPE x counter\n# HELP x h\nx 1\n",  # counter without _total
                '# HELP y h\n# TYPE y gauge\ny{a="1",a="2"} 1\n',
                "# HELP y h\n# TYPE y gauge\ny 1\ny 2\n", "# HELP y h\n# TYPE y gauge\ny one\n",
                '# HELP y h\n# TYPE y gauge\ny{a="\\x"} 1\n'):
        try:
            parse(bad)
        except (AssertionError, ValueError):
            continue
        raise AssertionError(f"accepted {bad!r}")
